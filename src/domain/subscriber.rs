//! Subscribers and their preferences.

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Database id of a subscriber. Logs name subscribers by this id, never
/// by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriberId(pub i64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sub#{}", self.0)
    }
}

/// Lifecycle of a subscription: `pending → active ⇄ paused`, and
/// `unsubscribed` from any state. Only `active` subscribers get digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberState {
    Pending,
    Active,
    Paused,
    Unsubscribed,
}

impl SubscriberState {
    pub const ALL: [SubscriberState; 4] = [
        SubscriberState::Pending,
        SubscriberState::Active,
        SubscriberState::Paused,
        SubscriberState::Unsubscribed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberState::Pending => "pending",
            SubscriberState::Active => "active",
            SubscriberState::Paused => "paused",
            SubscriberState::Unsubscribed => "unsubscribed",
        }
    }

    pub fn parse(s: &str) -> Option<SubscriberState> {
        SubscriberState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// How often a subscriber wants a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "day")]
pub enum Frequency {
    Daily,
    /// Monday to Friday in the subscriber's time zone.
    Weekdays,
    /// Once a week on the given day.
    Weekly(#[serde(with = "weekday_serde")] Weekday),
}

mod weekday_serde {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::weekday_name(*d))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom("bad weekday"))
    }
}

pub fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

impl Frequency {
    /// Storage / form encoding: `daily`, `weekdays`, `weekly:monday`.
    pub fn encode(self) -> String {
        match self {
            Frequency::Daily => "daily".into(),
            Frequency::Weekdays => "weekdays".into(),
            Frequency::Weekly(d) => format!("weekly:{}", weekday_name(d)),
        }
    }

    pub fn decode(s: &str) -> Option<Frequency> {
        match s {
            "daily" => Some(Frequency::Daily),
            "weekdays" => Some(Frequency::Weekdays),
            _ => {
                let day = s.strip_prefix("weekly:")?;
                Weekday::from_str(day).ok().map(Frequency::Weekly)
            }
        }
    }

    /// Whether a digest is due on a local day of this weekday.
    pub fn includes(self, day: Weekday) -> bool {
        match self {
            Frequency::Daily => true,
            Frequency::Weekdays => !matches!(day, Weekday::Sat | Weekday::Sun),
            Frequency::Weekly(d) => d == day,
        }
    }
}

/// Limits on preference fields, shared by the web forms, the CLI and
/// imports so every entry point enforces the same rules.
pub mod limits {
    pub const MAX_TOPICS: usize = 20;
    pub const MAX_TOPIC_CHARS: usize = 100;
    pub const MAX_EXCLUDED: usize = 50;
    pub const MAX_AUTHORS: usize = 50;
    pub const MAX_CATEGORIES: usize = 30;
    pub const MAX_ITEM_CHARS: usize = 100;
    pub const MIN_DIGEST_SIZE: u8 = 1;
    pub const MAX_DIGEST_SIZE: u8 = 50;
}

/// What a subscriber wants to receive, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    /// Topic phrases, e.g. "speculative decoding".
    pub topics: Vec<String>,
    /// A paper mentioning any of these words is never picked.
    pub excluded: Vec<String>,
    /// Papers by these authors always qualify.
    pub authors: Vec<String>,
    /// If non-empty, only papers in one of these arXiv categories qualify.
    pub categories: Vec<String>,
    pub digest_size: u8,
    pub frequency: Frequency,
    pub send_time: NaiveTime,
    #[serde(with = "tz_serde")]
    pub time_zone: Tz,
    /// Send the top trending papers when nothing matches the topics.
    pub fallback_trending: bool,
}

/// When a subscriber's digest is due: the part of [`Preferences`] the
/// schedule reads, and all that planning loads per subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub frequency: Frequency,
    pub send_time: NaiveTime,
    pub time_zone: Tz,
}

impl Preferences {
    /// Daily digests of `digest_size` papers at `send_time` in
    /// `time_zone`, with nothing chosen yet: no topics, exclusions,
    /// authors or categories, no trending fallback. Callers set what they
    /// know with struct update syntax (`..Preferences::new(…)`).
    pub fn new(digest_size: u8, send_time: NaiveTime, time_zone: Tz) -> Preferences {
        Preferences {
            topics: Vec::new(),
            excluded: Vec::new(),
            authors: Vec::new(),
            categories: Vec::new(),
            digest_size,
            frequency: Frequency::Daily,
            send_time,
            time_zone,
            fallback_trending: false,
        }
    }

    pub fn timing(&self) -> Timing {
        Timing {
            frequency: self.frequency,
            send_time: self.send_time,
            time_zone: self.time_zone,
        }
    }
}

mod tz_serde {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A field-level problem with submitted preferences, shown next to the
/// field on the form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    /// The profile has nothing to look for ([`NOTHING_TO_SEND`]): entry
    /// points without the form's words (a command, an import) say it their
    /// own way.
    pub fn is_nothing_to_send(&self) -> bool {
        self.field == "topics" && self.message == NOTHING_TO_SEND
    }
}

/// Raw, untrusted preference input as it arrives from a form, CLI flags
/// or an import file. [`PreferencesInput::validate`] turns it into
/// [`Preferences`] or a list of field errors.
#[derive(Debug, Clone, Default)]
pub struct PreferencesInput {
    pub topics: String,
    pub excluded: String,
    pub authors: String,
    pub categories: String,
    pub digest_size: Option<String>,
    pub frequency: Option<String>,
    pub weekly_day: Option<String>,
    pub send_time: Option<String>,
    pub time_zone: Option<String>,
    pub fallback_trending: bool,
}

/// Splits a multi-line field into trimmed, whitespace-normalised,
/// de-duplicated (case-insensitively) entries.
pub fn split_lines(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(['\n', '\r', ',', ';']) {
        let item = super::normalize_whitespace(part);
        if !item.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&item)) {
            out.push(item);
        }
    }
    out
}

/// Like [`split_lines`] but keeps commas and semicolons: author names such
/// as "Lovelace, Ada" contain them, so only line breaks separate entries.
pub fn split_lines_only(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(['\n', '\r']) {
        let item = super::normalize_whitespace(part);
        if !item.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&item)) {
            out.push(item);
        }
    }
    out
}

/// Topics as a reader types, pastes or imports them: commas, semicolons
/// and line breaks all separate topics ("RAG, diffusion models; LLM
/// safety" is three). The one parser behind every form, preview, import
/// and command, so each path reads a field the same way.
///
/// A topic therefore never contains a comma or semicolon. Matching reads
/// a topic's words, not its punctuation, so "vision, language and action"
/// typed as one topic would find what "vision language and action" finds;
/// readers write it without the comma. The one exception is a comma
/// between two digits, part of a number ("1,000 GPUs"). Each entry has its
/// whitespace normalised, surrounding quotes (the form's hint shows topics
/// in quotes) and a leading list bullet removed; repeats (ignoring case)
/// are dropped.
pub fn parse_topics(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut piece = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let in_number = c == ','
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if matches!(c, '\n' | '\r' | ';' | ',') && !in_number {
            push_topic(&mut out, &piece);
            piece.clear();
        } else {
            piece.push(c);
        }
    }
    push_topic(&mut out, &piece);
    out
}

/// Adds one typed entry to `out`, cleaned, unless empty or a repeat.
fn push_topic(out: &mut Vec<String>, raw: &str) {
    let mut item = super::normalize_whitespace(raw);
    for bullet in ["- ", "* ", "\u{2022} "] {
        if let Some(rest) = item.strip_prefix(bullet) {
            item = rest.trim().to_string();
        }
    }
    const QUOTES: &[(char, char)] = &[
        ('"', '"'),
        ('\u{201c}', '\u{201d}'),
        ('\'', '\''),
        ('\u{2018}', '\u{2019}'),
    ];
    for (open, close) in QUOTES {
        let quoted = item.len() >= 2 && item.starts_with(*open) && item.ends_with(*close);
        if quoted {
            let inner = &item[open.len_utf8()..item.len() - close.len_utf8()];
            item = inner.trim().to_string();
            break;
        }
    }
    if !item.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&item)) {
        out.push(item);
    }
}

/// Why a profile would never get a digest: no topic, no followed author
/// and no category, and the reader has not chosen the trending papers
/// instead. Categories alone are followed (every paper in them qualifies);
/// beside topics or authors they narrow what those find.
pub const NOTHING_TO_SEND: &str = "Add at least one topic, follow an author or choose a \
category, or tick \u{201c}send the top trending papers\u{201d}: otherwise no digest would \
ever be sent.";

impl Preferences {
    /// Whether a digest run could ever find something to send: a topic, a
    /// followed author, a followed category, or the trending fallback.
    pub fn can_send(&self) -> bool {
        !self.topics.is_empty()
            || !self.authors.is_empty()
            || !self.categories.is_empty()
            || self.fallback_trending
    }
}

impl PreferencesInput {
    /// Validates against `defaults` for absent optional fields. Returns
    /// every problem at once so a form can show them all.
    pub fn validate(&self, defaults: &Preferences) -> Result<Preferences, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err =
            |field: &'static str, message: String| errors.push(FieldError { field, message });
        let lists = self.lists(&mut err);
        let digest_size = self.digest_size(defaults, &mut err);
        let frequency = self.frequency(defaults, &mut err);
        let send_time = match self.send_time.as_deref().map(str::trim) {
            None | Some("") => defaults.send_time,
            Some(s) => parse_send_time(s).unwrap_or_else(|| {
                err(
                    "send_time",
                    "Send time must look like 08:00 (24-hour clock).".into(),
                );
                defaults.send_time
            }),
        };
        let time_zone = match self.time_zone.as_deref().map(str::trim) {
            None | Some("") => defaults.time_zone,
            Some(s) => parse_time_zone(s).unwrap_or_else(|| {
                err(
                    "time_zone",
                    "Unknown time zone; use an IANA name such as Europe/Berlin or America/New_York."
                        .into(),
                );
                defaults.time_zone
            }),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let [topics, excluded, authors, categories] = lists;
        Ok(Preferences {
            topics,
            excluded,
            authors,
            categories,
            digest_size,
            frequency,
            send_time,
            time_zone,
            fallback_trending: self.fallback_trending,
        })
    }

    /// Topics, excluded words, authors and categories, parsed and checked
    /// against the limits, and the rule that a profile must have something
    /// to look for ([`NOTHING_TO_SEND`]).
    fn lists(&self, err: &mut impl FnMut(&'static str, String)) -> [Vec<String>; 4] {
        use limits::*;
        let topics = parse_topics(&self.topics);
        if topics.len() > MAX_TOPICS {
            err("topics", format!("At most {MAX_TOPICS} topics, please."));
        }
        if let Some(t) = topics.iter().find(|t| t.chars().count() > MAX_TOPIC_CHARS) {
            err(
                "topics",
                format!(
                    "Topic \"{}…\" is longer than {MAX_TOPIC_CHARS} characters.",
                    t.chars().take(30).collect::<String>()
                ),
            );
        }
        let excluded = split_lines(&self.excluded);
        check_list(err, "excluded", &excluded, MAX_EXCLUDED);
        let authors = split_lines_only(&self.authors);
        check_list(err, "authors", &authors, MAX_AUTHORS);
        let categories = split_lines(&self.categories);
        if topics.is_empty()
            && authors.is_empty()
            && categories.is_empty()
            && !self.fallback_trending
        {
            err("topics", NOTHING_TO_SEND.into());
        }
        check_list(err, "categories", &categories, MAX_CATEGORIES);
        if let Some(c) = categories.iter().find(|c| !is_category(c)) {
            err(
                "categories",
                format!("\"{c}\" is not an arXiv category such as cs.LG or hep-th."),
            );
        }
        [topics, excluded, authors, categories]
    }

    fn digest_size(
        &self,
        defaults: &Preferences,
        err: &mut impl FnMut(&'static str, String),
    ) -> u8 {
        use limits::{MAX_DIGEST_SIZE, MIN_DIGEST_SIZE};
        match self.digest_size.as_deref().map(str::trim) {
            None | Some("") => defaults.digest_size,
            Some(s) => match s.parse::<u8>() {
                Ok(n) if (MIN_DIGEST_SIZE..=MAX_DIGEST_SIZE).contains(&n) => n,
                _ => {
                    err(
                        "digest_size",
                        format!(
                            "Digest size must be a whole number from {MIN_DIGEST_SIZE} to {MAX_DIGEST_SIZE}."
                        ),
                    );
                    defaults.digest_size
                }
            },
        }
    }

    fn frequency(
        &self,
        defaults: &Preferences,
        err: &mut impl FnMut(&'static str, String),
    ) -> Frequency {
        match self.frequency.as_deref().map(str::trim) {
            None | Some("") => defaults.frequency,
            Some("weekly") => match self
                .weekly_day
                .as_deref()
                .map(str::trim)
                .and_then(|d| Weekday::from_str(d).ok())
            {
                Some(d) => Frequency::Weekly(d),
                None => {
                    err(
                        "weekly_day",
                        "Choose a day of the week for a weekly digest.".into(),
                    );
                    defaults.frequency
                }
            },
            Some(s) => Frequency::decode(s).unwrap_or_else(|| {
                err("frequency", "Choose daily, weekdays or weekly.".into());
                defaults.frequency
            }),
        }
    }

    /// The input a form shows for existing preferences.
    pub fn from_preferences(p: &Preferences) -> PreferencesInput {
        let (frequency, weekly_day) = match p.frequency {
            Frequency::Daily => ("daily".to_string(), None),
            Frequency::Weekdays => ("weekdays".to_string(), None),
            Frequency::Weekly(d) => ("weekly".to_string(), Some(weekday_name(d).to_string())),
        };
        PreferencesInput {
            topics: p.topics.join("\n"),
            excluded: p.excluded.join("\n"),
            authors: p.authors.join("\n"),
            categories: p.categories.join("\n"),
            digest_size: Some(p.digest_size.to_string()),
            frequency: Some(frequency),
            weekly_day,
            send_time: Some(p.send_time.format("%H:%M").to_string()),
            time_zone: Some(p.time_zone.name().to_string()),
            fallback_trending: p.fallback_trending,
        }
    }
}

fn check_list(
    err: &mut impl FnMut(&'static str, String),
    field: &'static str,
    items: &[String],
    max: usize,
) {
    if items.len() > max {
        err(field, format!("At most {max} entries, please."));
    }
    if items
        .iter()
        .any(|t| t.chars().count() > limits::MAX_ITEM_CHARS)
    {
        err(
            field,
            format!(
                "Entries must be at most {} characters.",
                limits::MAX_ITEM_CHARS
            ),
        );
    }
}

/// `HH:MM` on a 24-hour clock.
pub fn parse_send_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    if s.len() > 8 {
        return None;
    }
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .ok()
}

/// An IANA zone name (`Europe/Berlin`); `UTC` included.
pub fn parse_time_zone(s: &str) -> Option<Tz> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    s.parse::<Tz>().ok()
}

/// arXiv category shapes: `cs.LG`, `hep-th`, `math.AG`, `astro-ph.CO`,
/// `cond-mat.stat-mech`.
pub fn is_category(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let archive = parts.next().unwrap_or("");
    let ok_archive = !archive.is_empty()
        && archive.len() <= 12
        && archive.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && archive.as_bytes()[0].is_ascii_lowercase();
    let ok_sub = match parts.next() {
        None => true,
        Some(sub) => {
            !sub.is_empty()
                && sub.len() <= 12
                && sub.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
        }
    };
    ok_archive && ok_sub
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Preferences {
        Preferences {
            topics: vec![],
            excluded: vec![],
            authors: vec![],
            categories: vec![],
            digest_size: 10,
            frequency: Frequency::Daily,
            send_time: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            time_zone: Tz::UTC,
            fallback_trending: false,
        }
    }

    #[test]
    fn valid_preferences_are_normalised() {
        let input = PreferencesInput {
            topics: "speculative  decoding\r\nRAG\n\nrag\n".into(),
            excluded: "survey, benchmark".into(),
            categories: "cs.LG\ncs.CL".into(),
            digest_size: Some("5".into()),
            frequency: Some("weekly".into()),
            weekly_day: Some("monday".into()),
            send_time: Some("07:30".into()),
            time_zone: Some("Europe/Berlin".into()),
            ..Default::default()
        };
        let p = input.validate(&defaults()).unwrap();
        assert_eq!(p.topics, vec!["speculative decoding", "RAG"]);
        assert_eq!(p.excluded, vec!["survey", "benchmark"]);
        assert_eq!(p.frequency, Frequency::Weekly(Weekday::Mon));
        assert_eq!(p.send_time, NaiveTime::from_hms_opt(7, 30, 0).unwrap());
        assert_eq!(p.time_zone, chrono_tz::Europe::Berlin);
        let round = PreferencesInput::from_preferences(&p)
            .validate(&defaults())
            .unwrap();
        assert_eq!(round, p);
    }

    #[test]
    fn every_invalid_field_is_reported_together() {
        let input = PreferencesInput {
            topics: "x".repeat(101),
            categories: "not a category".into(),
            digest_size: Some("51".into()),
            frequency: Some("hourly".into()),
            send_time: Some("25:00".into()),
            time_zone: Some("Mars/Olympus_Mons".into()),
            ..Default::default()
        };
        let errs = input.validate(&defaults()).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "topics",
                "categories",
                "digest_size",
                "frequency",
                "send_time",
                "time_zone"
            ]
        );
    }

    #[test]
    fn commas_semicolons_and_new_lines_all_separate_topics() {
        assert_eq!(
            parse_topics("RAG, diffusion models, LLM safety"),
            vec!["RAG", "diffusion models", "LLM safety"]
        );
        assert_eq!(
            parse_topics("RAG; diffusion models\r\nLLM safety,,\n rag "),
            vec!["RAG", "diffusion models", "LLM safety"]
        );
        // A comma between digits belongs to a number.
        assert_eq!(
            parse_topics("training on 1,000 GPUs, RAG"),
            vec!["training on 1,000 GPUs", "RAG"]
        );
        // Typed the way the hint shows them, or pasted as a list.
        assert_eq!(
            parse_topics("\u{201c}speculative decoding\u{201d}, \"RAG\"\n- emergent misalignment\n\u{2022} world models"),
            vec!["speculative decoding", "RAG", "emergent misalignment", "world models"]
        );
        assert!(parse_topics(" ,;\n\"\" ").is_empty());
    }

    #[test]
    fn a_topic_with_a_comma_becomes_two_topics() {
        let input = PreferencesInput {
            topics: "vision, language and action".into(),
            ..Default::default()
        };
        let p = input.validate(&defaults()).unwrap();
        assert_eq!(p.topics, vec!["vision", "language and action"]);
    }

    #[test]
    fn a_profile_with_nothing_to_look_for_is_refused_on_its_topics_and_a_category_is_enough() {
        let nothing = PreferencesInput {
            topics: " \n, ".into(),
            excluded: "survey".into(),
            ..Default::default()
        };
        let errs = nothing.validate(&defaults()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "topics");
        assert_eq!(errs[0].message, NOTHING_TO_SEND);
        let category = PreferencesInput {
            categories: "cs.RO".into(),
            ..nothing.clone()
        };
        assert!(category.validate(&defaults()).unwrap().can_send());
        let trending = PreferencesInput {
            fallback_trending: true,
            ..nothing.clone()
        };
        assert!(trending.validate(&defaults()).unwrap().can_send());
        let author = PreferencesInput {
            authors: "Ada Lovelace".into(),
            ..nothing
        };
        assert!(author.validate(&defaults()).unwrap().can_send());
    }

    #[test]
    fn real_arxiv_categories_are_accepted() {
        let good = [
            "cs.LG",
            "hep-th",
            "math.AG",
            "astro-ph.CO",
            "cond-mat.stat-mech",
            "physics.chem-ph",
            "q-bio.NC",
        ];
        for c in good {
            assert!(is_category(c), "{c}");
        }
        for c in ["", "CS.LG", "cs.", ".LG", "cs.LG.x", "cs LG", "cs.<b>"] {
            assert!(!is_category(c), "{c}");
        }
    }

    #[test]
    fn frequency_encoding_round_trips() {
        for f in [
            Frequency::Daily,
            Frequency::Weekdays,
            Frequency::Weekly(Weekday::Sun),
        ] {
            assert_eq!(Frequency::decode(&f.encode()), Some(f));
        }
        assert_eq!(Frequency::decode("weekly:funday"), None);
    }
}
