//! The subscriber file: what `subscribers export` writes and `subscribers
//! import` reads. CSV with a header row (lists joined with "; ") or JSON
//! lines, one subscriber each; only `email` is required.
//!
//! Import reads the file as a stream, one record at a time, so memory does
//! not grow with the file. Every problem is reported with its line and,
//! where there is one, its column: unknown columns and values are errors,
//! never silently ignored or defaulted.

use crate::domain::{
    EmailAddress, Preferences, PreferencesInput, SubscriberState, Suppression, SuppressionReason,
};
use crate::store::subscribers::{NewSubscriber, Subscriber};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// The columns, in export order.
pub const COLUMNS: [&str; 15] = [
    "email",
    "state",
    "topics",
    "excluded",
    "authors",
    "categories",
    "digest_size",
    "frequency",
    "send_time",
    "time_zone",
    "fallback_trending",
    "created_at",
    "confirmed_at",
    "suppressed",
    "suppressed_at",
];

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFormat {
    /// Comma-separated values with a header row; lists joined with "; ".
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// One subscriber as exported; field order is [`COLUMNS`].
#[derive(Debug, serde::Serialize, Default, Clone, PartialEq)]
pub struct Row {
    pub email: String,
    pub state: String,
    pub topics: String,
    pub excluded: String,
    pub authors: String,
    pub categories: String,
    pub digest_size: String,
    pub frequency: String,
    pub send_time: String,
    pub time_zone: String,
    pub fallback_trending: bool,
    pub created_at: String,
    pub confirmed_at: String,
    /// Why the address is suppressed (`hard_bounce`, `soft_bounce_limit`,
    /// `complaint`…); empty when it is not. Nothing is sent to it, whatever
    /// `state` says, and an import skips the row.
    pub suppressed: String,
    pub suppressed_at: String,
}

impl Row {
    pub fn from_subscriber(s: &Subscriber, suppression: Option<&Suppression>) -> Row {
        let input = PreferencesInput::from_preferences(&s.preferences);
        let join = |v: &[String]| v.join("; ");
        Row {
            email: s.email.as_str().to_string(),
            state: s.state.as_str().to_string(),
            topics: join(&s.preferences.topics),
            excluded: join(&s.preferences.excluded),
            authors: join(&s.preferences.authors),
            categories: join(&s.preferences.categories),
            digest_size: s.preferences.digest_size.to_string(),
            frequency: s.preferences.frequency.encode(),
            send_time: input.send_time.unwrap_or_default(),
            time_zone: s.preferences.time_zone.name().to_string(),
            fallback_trending: s.preferences.fallback_trending,
            created_at: crate::store::ts(s.created_at),
            confirmed_at: s.confirmed_at.map(crate::store::ts).unwrap_or_default(),
            suppressed: suppression.map_or("", |x| x.reason.as_str()).to_string(),
            suppressed_at: suppression
                .map(|x| crate::store::ts(x.since))
                .unwrap_or_default(),
        }
    }
}

/// Writes rows in `format`.
pub fn write_rows(
    out: &mut dyn Write,
    format: DataFormat,
    rows: impl Iterator<Item = Row>,
) -> anyhow::Result<()> {
    match format {
        DataFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for r in rows {
                w.serialize(r)?;
            }
            w.flush()?;
        }
        DataFormat::Jsonl => {
            for r in rows {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            }
        }
    }
    Ok(())
}

/// One problem in an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (for CSV, the line the record starts on).
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column `{c}`: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

fn row_error(line: u64, column: Option<&str>, message: impl Into<String>) -> RowError {
    RowError {
        line,
        column: column.map(str::to_string),
        message: message.into(),
    }
}

/// What one valid row asks for.
#[derive(Debug, Clone)]
pub enum Planned {
    Add(NewSubscriber),
    /// `state = unsubscribed`: that person opted out; nothing is imported.
    Unsubscribed,
    /// A `suppressed` reason: the address must not be mailed; nothing is
    /// imported.
    Suppressed,
}

/// How valid rows are imported.
#[derive(Debug, Clone)]
pub struct ImportRules {
    /// The operator vouches for consent given elsewhere (`--confirmed`).
    pub confirmed: bool,
    pub defaults: Preferences,
}

/// A streaming reader of an import file: one record in memory at a time.
pub struct RowReader {
    inner: Inner,
}

enum Inner {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        /// The column of each field, by position.
        columns: Vec<&'static str>,
        record: csv::StringRecord,
    },
    Jsonl {
        reader: BufReader<File>,
        line: u64,
        buf: String,
    },
}

/// One record read: its line and its (column, value) pairs, or why it
/// could not be read.
type Record = (u64, Result<Vec<(&'static str, String)>, Vec<RowError>>);

/// One validated row: its line, and what it asks for or every problem in it.
pub type ValidatedRow = (u64, Result<Planned, Vec<RowError>>);

impl RowReader {
    /// Opens the file and, for CSV, checks the header: every column must be
    /// known and `email` present (errors name line 1 and the column).
    pub fn open(path: &Path, format: DataFormat) -> anyhow::Result<RowReader> {
        let file =
            File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let reader = BufReader::with_capacity(1 << 16, file);
        let inner = match format {
            DataFormat::Jsonl => Inner::Jsonl {
                reader,
                line: 0,
                buf: String::new(),
            },
            DataFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
                let headers = reader
                    .headers()
                    .map_err(|e| anyhow::anyhow!("{}: line 1: {e}", path.display()))?
                    .clone();
                let columns = csv_columns(&headers).map_err(|errs| {
                    let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                    anyhow::anyhow!("{}: {}", path.display(), list.join("; "))
                })?;
                Inner::Csv {
                    reader,
                    columns,
                    record: csv::StringRecord::new(),
                }
            }
        };
        Ok(RowReader { inner })
    }

    /// The next record as (column, value) pairs, `None` at the end. I/O
    /// errors end the import; malformed records are row errors.
    fn next_record(&mut self) -> anyhow::Result<Option<Record>> {
        match &mut self.inner {
            Inner::Csv {
                reader,
                columns,
                record,
            } => {
                let line = reader.position().line();
                match reader.read_record(record) {
                    Ok(false) => Ok(None),
                    Ok(true) => {
                        let line = record.position().map_or(line, |p| p.line());
                        if record.len() > columns.len() {
                            let err = row_error(
                                line,
                                None,
                                format!(
                                    "{} fields, but the header names {}",
                                    record.len(),
                                    columns.len()
                                ),
                            );
                            return Ok(Some((line, Err(vec![err]))));
                        }
                        let pairs = columns
                            .iter()
                            .zip(record.iter())
                            .map(|(c, v)| (*c, v.to_string()))
                            .collect();
                        Ok(Some((line, Ok(pairs))))
                    }
                    Err(e) if e.is_io_error() => Err(e.into()),
                    Err(e) => Ok(Some((
                        line,
                        Err(vec![row_error(line, None, e.to_string())]),
                    ))),
                }
            }
            Inner::Jsonl { reader, line, buf } => loop {
                buf.clear();
                if reader.read_line(buf)? == 0 {
                    return Ok(None);
                }
                *line += 1;
                if buf.trim().is_empty() {
                    continue;
                }
                return Ok(Some((*line, json_pairs(*line, buf))));
            },
        }
    }

    /// The next row, validated: `(line, what it asks for or every problem
    /// in it)`; `None` at the end of the file.
    pub fn next_row(&mut self, rules: &ImportRules) -> anyhow::Result<Option<ValidatedRow>> {
        Ok(self.next_record()?.map(|(line, rec)| {
            let planned = rec.and_then(|pairs| validate(line, pairs, rules));
            (line, planned)
        }))
    }
}

fn known_column(name: &str) -> Option<&'static str> {
    COLUMNS.iter().copied().find(|c| *c == name)
}

fn unknown_column(line: u64, name: &str) -> RowError {
    row_error(
        line,
        Some(name),
        format!("unknown column; expected {}", COLUMNS.join(", ")),
    )
}

fn csv_columns(headers: &csv::StringRecord) -> Result<Vec<&'static str>, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut columns = Vec::new();
    for name in headers.iter() {
        let name = name.trim();
        match known_column(name) {
            Some(c) if columns.contains(&c) => {
                errors.push(row_error(1, Some(c), "column appears twice"))
            }
            Some(c) => columns.push(c),
            None => errors.push(unknown_column(1, name)),
        }
    }
    if !columns.contains(&"email") {
        errors.push(row_error(1, Some("email"), "required column is missing"));
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(errors)
    }
}

/// A JSON line's fields as strings: strings as they are, numbers and
/// booleans as written, `null` as empty.
fn json_pairs(line: u64, text: &str) -> Result<Vec<(&'static str, String)>, Vec<RowError>> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| vec![row_error(line, None, format!("not a JSON object: {e}"))])?;
    let mut errors = Vec::new();
    let mut pairs = Vec::with_capacity(map.len());
    for (name, value) in map {
        let Some(column) = known_column(&name) else {
            errors.push(unknown_column(line, &name));
            continue;
        };
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                errors.push(row_error(line, Some(column), "expected a string"));
                continue;
            }
        };
        pairs.push((column, text));
    }
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(errors)
    }
}

/// Checks one record with the same rules as the web forms and decides
/// what it asks for. Returns every problem, not just the first.
fn validate(
    line: u64,
    pairs: Vec<(&'static str, String)>,
    rules: &ImportRules,
) -> Result<Planned, Vec<RowError>> {
    let (mut row, fallback) = row_of(pairs);
    let mut errors = Vec::new();
    match fallback.trim().to_ascii_lowercase().as_str() {
        "" | "false" => {}
        "true" => row.fallback_trending = true,
        other => errors.push(row_error(
            line,
            Some("fallback_trending"),
            format!("{other:?} is not true or false"),
        )),
    }
    let suppressed = row.suppressed.trim();
    if !suppressed.is_empty() && SuppressionReason::parse(suppressed).is_none() {
        errors.push(row_error(
            line,
            Some("suppressed"),
            format!(
                "unknown reason {suppressed:?}; expected empty or one of {}",
                SuppressionReason::ALL.map(|r| r.as_str()).join(", ")
            ),
        ));
    }
    check_timestamps(line, &row, &mut errors);
    let email = EmailAddress::parse(&row.email)
        .map_err(|e| errors.push(row_error(line, Some("email"), e.to_string())))
        .ok();
    let state = planned_state(&row.state, rules.confirmed)
        .map_err(|e| errors.push(row_error(line, Some("state"), e)))
        .ok();
    // A row that is skipped (suppressed, or unsubscribed) is never mailed,
    // so it needs nothing to look for; its other columns are still checked.
    let skipped = !suppressed.is_empty() || matches!(state, Some(None));
    let prefs = preferences(&row, &rules.defaults)
        .map_err(|errs| {
            errors.extend(
                errs.into_iter()
                    .filter(|(_, message)| !(skipped && message == NO_TOPICS))
                    .map(|(column, message)| row_error(line, Some(column), message)),
            )
        })
        .ok();
    if !errors.is_empty() {
        return Err(errors);
    }
    match (email, state, prefs) {
        (Some(_), Some(_), _) if !suppressed.is_empty() => Ok(Planned::Suppressed),
        (Some(_), Some(None), _) => Ok(Planned::Unsubscribed),
        (Some(email), Some(Some(state)), Some(prefs)) => Ok(Planned::Add(NewSubscriber {
            email,
            prefs,
            state,
        })),
        _ => Err(errors),
    }
}

/// The record's columns in a [`Row`], and its `fallback_trending` text.
fn row_of(pairs: Vec<(&'static str, String)>) -> (Row, String) {
    let mut row = Row::default();
    let mut fallback = String::new();
    for (column, value) in pairs {
        let slot = match column {
            "email" => &mut row.email,
            "state" => &mut row.state,
            "topics" => &mut row.topics,
            "excluded" => &mut row.excluded,
            "authors" => &mut row.authors,
            "categories" => &mut row.categories,
            "digest_size" => &mut row.digest_size,
            "frequency" => &mut row.frequency,
            "send_time" => &mut row.send_time,
            "time_zone" => &mut row.time_zone,
            "fallback_trending" => &mut fallback,
            "created_at" => &mut row.created_at,
            "suppressed" => &mut row.suppressed,
            "suppressed_at" => &mut row.suppressed_at,
            _ => &mut row.confirmed_at,
        };
        *slot = value;
    }
    (row, fallback)
}

/// `created_at`, `confirmed_at` and `suppressed_at` are empty or RFC 3339
/// timestamps.
fn check_timestamps(line: u64, row: &Row, errors: &mut Vec<RowError>) {
    for (column, value) in [
        ("created_at", &row.created_at),
        ("confirmed_at", &row.confirmed_at),
        ("suppressed_at", &row.suppressed_at),
    ] {
        if !value.trim().is_empty() && chrono::DateTime::parse_from_rfc3339(value.trim()).is_err() {
            errors.push(row_error(
                line,
                Some(column),
                format!("{value:?} is not an RFC 3339 timestamp"),
            ));
        }
    }
}

/// The state a row is imported in; `None` for an unsubscribed row. Only
/// `--confirmed` imports anyone as active (or paused): otherwise each
/// address gets a confirmation mail first.
fn planned_state(state: &str, confirmed: bool) -> Result<Option<SubscriberState>, String> {
    let vouched = |s| {
        if confirmed {
            s
        } else {
            SubscriberState::Pending
        }
    };
    match state.trim() {
        "" | "active" => Ok(Some(vouched(SubscriberState::Active))),
        "paused" => Ok(Some(vouched(SubscriberState::Paused))),
        "pending" => Ok(Some(SubscriberState::Pending)),
        "unsubscribed" => Ok(None),
        other => Err(format!(
            "unknown state {other:?}; expected pending, active, paused or unsubscribed"
        )),
    }
}

/// A row that would never get a digest: the forms' rule, in the file's
/// terms.
const NO_TOPICS: &str = "no topics, authors or categories, and fallback_trending is not true: \
this subscriber would never get a digest";

/// Validates the preference columns through the web forms' rules; errors
/// name their column.
fn preferences(
    row: &Row,
    defaults: &Preferences,
) -> Result<Preferences, Vec<(&'static str, String)>> {
    let lines = |s: &str| s.split(';').map(str::trim).collect::<Vec<_>>().join("\n");
    let (frequency, weekly_day) = match row.frequency.split_once(':') {
        Some(("weekly", day)) => (Some("weekly".to_string()), Some(day.to_string())),
        _ => (Some(row.frequency.clone()), None),
    };
    PreferencesInput {
        // Topics go through the one topic parser, which reads `;` (the
        // export's separator), commas and line breaks alike.
        topics: row.topics.clone(),
        excluded: lines(&row.excluded),
        authors: lines(&row.authors),
        categories: lines(&row.categories),
        digest_size: Some(row.digest_size.clone()),
        frequency,
        weekly_day,
        send_time: Some(row.send_time.clone()),
        time_zone: Some(row.time_zone.clone()),
        fallback_trending: row.fallback_trending,
    }
    .validate(defaults)
    .map_err(|errs| {
        errs.into_iter()
            .map(|e| {
                if e.is_nothing_to_send() {
                    return ("topics", NO_TOPICS.to_string());
                }
                let column = if e.field == "weekly_day" {
                    "frequency"
                } else {
                    e.field
                };
                (column, e.message)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn rules(confirmed: bool) -> ImportRules {
        ImportRules {
            confirmed,
            defaults: Preferences::new(
                5,
                NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                chrono_tz::UTC,
            ),
        }
    }

    fn read_all(
        text: &str,
        format: DataFormat,
        confirmed: bool,
    ) -> Vec<(u64, Result<Planned, Vec<RowError>>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        std::fs::write(&path, text).unwrap();
        let mut r = RowReader::open(&path, format).unwrap();
        let mut out = Vec::new();
        while let Some(row) = r.next_row(&rules(confirmed)).unwrap() {
            out.push(row);
        }
        out
    }

    fn errors(rows: &[(u64, Result<Planned, Vec<RowError>>)]) -> Vec<String> {
        rows.iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .flatten()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn an_unknown_state_is_an_error_naming_line_and_column() {
        let rows = read_all(
            "email,state,topics\nok@example.org,active,RAG\nroot@example.org,superuser,RAG\n",
            DataFormat::Csv,
            true,
        );
        assert_eq!(
            errors(&rows),
            vec![
                "line 3, column `state`: unknown state \"superuser\"; expected pending, active, \
                 paused or unsubscribed"
            ]
        );
    }

    #[test]
    fn an_unknown_csv_column_fails_the_header_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, "email,role\nok@example.org,admin\n").unwrap();
        let err = RowReader::open(&path, DataFormat::Csv)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("line 1, column `role`: unknown column"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_of_every_line_is_listed() {
        let text = "{\"email\":\"a@example.org\",\"topics\":\"RAG\"}\n\
                    {\"email\":\"not an address\",\"send_time\":\"25:99\",\"topics\":\"RAG\"}\n\
                    \n\
                    {\"email\":\"b@example.org\",\"role\":\"admin\"}\n\
                    {\"email\":\"c@example.org\",\"fallback_trending\":\"maybe\",\"topics\":\"RAG\"}\n\
                    not json\n";
        let rows = read_all(text, DataFormat::Jsonl, false);
        let errs = errors(&rows);
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs[0].starts_with("line 2, column `email`:"), "{errs:#?}");
        assert!(
            errs[1].starts_with("line 2, column `send_time`:"),
            "{errs:#?}"
        );
        assert!(errs[2].starts_with("line 4, column `role`: unknown column"));
        assert!(errs[3].starts_with("line 5, column `fallback_trending`:"));
        assert!(errs[4].starts_with("line 6: not a JSON object"));
        assert!(
            matches!(rows[0].1, Ok(Planned::Add(ref n)) if n.state == SubscriberState::Pending)
        );
    }

    #[test]
    fn states_are_imported_as_vouched_for() {
        let text = "email,state,topics\na@example.org,,RAG\nb@example.org,paused,RAG\n\
                    c@example.org,pending,RAG\nd@example.org,unsubscribed,RAG\n";
        let states = |confirmed| -> Vec<Option<SubscriberState>> {
            read_all(text, DataFormat::Csv, confirmed)
                .into_iter()
                .map(|(_, r)| match r.unwrap() {
                    Planned::Add(n) => Some(n.state),
                    Planned::Unsubscribed | Planned::Suppressed => None,
                })
                .collect()
        };
        use SubscriberState::*;
        assert_eq!(
            states(true),
            vec![Some(Active), Some(Paused), Some(Pending), None]
        );
        assert_eq!(
            states(false),
            vec![Some(Pending), Some(Pending), Some(Pending), None]
        );
    }

    #[test]
    fn a_row_exported_as_suppressed_is_never_imported() {
        // The suppressed row has no topics: a row that is skipped needs
        // nothing to look for.
        let text = "email,state,suppressed,suppressed_at,topics\n\
                    a@example.org,active,soft_bounce_limit,2026-12-01T08:00:00.000Z,\n\
                    b@example.org,active,,,RAG\n\
                    c@example.org,active,bounced,,RAG\n";
        let rows = read_all(text, DataFormat::Csv, true);
        assert!(matches!(rows[0].1, Ok(Planned::Suppressed)), "{rows:?}");
        assert!(matches!(rows[1].1, Ok(Planned::Add(_))), "{rows:?}");
        let errs = errors(&rows);
        assert!(
            errs.len() == 1 && errs[0].starts_with("line 4, column `suppressed`: unknown reason"),
            "{errs:?}"
        );
    }

    #[test]
    fn csv_lines_count_multi_line_records() {
        let text = "email,topics\na@example.org,\"rag;\nagents\"\nbad,x\n";
        let rows = read_all(text, DataFormat::Csv, true);
        assert_eq!(rows[1].0, 4, "{rows:?}");
    }
}
