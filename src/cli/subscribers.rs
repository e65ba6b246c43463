//! `paperboy subscribers …`: add, list, export, import and remove
//! subscribers.

use super::ListFormat;
use crate::app::{App, Overrides};
use crate::config::Config;
use crate::domain::{EmailAddress, Preferences, PreferencesInput, SubscriberState, Suppression};
use crate::store::subscribers::{
    ConsentInput, ConsentMethod, ImportCounts, Subscriber, SuppressionReason,
};
use crate::store::StoreError;
use crate::subscriber_file::{
    write_rows, DataFormat, ImportRules, Planned, Row, RowError, RowReader,
};
use anyhow::{bail, Context};
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Add one subscriber. Without --confirmed the address gets a
    /// confirmation mail (sent by the running daemon). A suppressed
    /// address (bounced, complained, removed or deleted by its owner) is
    /// refused: only the person's own opt-in on the subscribe page lifts
    /// a suppression.
    Add {
        email: String,
        /// A topic phrase; repeat for several, or separate them with commas
        /// ("RAG, diffusion models"). At least one is required.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Mark as confirmed without a confirmation mail, for operators
        /// migrating an existing opted-in list. Recorded in the consent
        /// record as an operator import.
        #[arg(long)]
        confirmed: bool,
        /// Local send time, HH:MM.
        #[arg(long)]
        send_time: Option<String>,
        /// IANA time zone, e.g. Europe/Berlin.
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// List subscribers: id, address, state, send time and zone, topics.
    /// A suppressed address (hard bounce, soft-bounce limit, complaint…)
    /// shows its state as `<state>, suppressed (<reason> since <date>)`
    /// in text, and `suppressed` / `suppressed_at` in JSON; nothing is sent
    /// to it whatever its state.
    List {
        /// Only this state: pending, active, paused, unsubscribed, or
        /// suppressed (any state, address suppressed).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Export all subscribers (the import format). Suppressed addresses
    /// carry their reason in `suppressed` (and `suppressed_at`); importing
    /// the file skips them.
    Export {
        #[arg(long, value_enum, default_value = "csv")]
        format: DataFormat,
        /// Output file; standard output when absent.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Import subscribers from a CSV or JSON-lines file (the export format:
    /// `email`, and `topics` or `authors` unless `fallback_trending` is
    /// true; topics separated by `;`, commas or line breaks). All or nothing: the whole file is
    /// checked first, every invalid line is listed, and nothing is written
    /// unless all are valid. Unknown columns and values are errors.
    /// Existing addresses are left unchanged; suppressed addresses (any
    /// reason, on this database's list or marked in the file's
    /// `suppressed` column) are never imported; rows with state
    /// `unsubscribed` are skipped. Each is counted.
    Import {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "csv")]
        format: DataFormat,
        /// The list was opted in elsewhere: import as active (or paused,
        /// per the `state` column), recorded as an operator import.
        /// Otherwise each address gets a confirmation mail.
        #[arg(long)]
        confirmed: bool,
        /// Import the valid rows and list the invalid ones, instead of
        /// importing nothing when any row is invalid.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Remove a subscriber and keep only a suppression hash, so the
    /// address is never mailed again unless it opts in anew.
    Remove { email: String },
}

fn default_prefs(config: &Config) -> anyhow::Result<Preferences> {
    Ok(Preferences::new(
        config.digest.default_size,
        config.digest.default_send_time,
        config.digest.default_time_zone,
    ))
}

fn operator_consent(method: ConsentMethod) -> ConsentInput {
    ConsentInput {
        method,
        source: "cli".into(),
        consent_text_hash: crate::domain::hash_canonical("operator import via paperboy CLI"),
        ip: None,
    }
}

async fn open_app(config: Config) -> anyhow::Result<App> {
    App::build(config, Overrides::default()).await
}

fn field_errors(errs: &[crate::domain::FieldError]) -> anyhow::Error {
    anyhow::anyhow!(
        "{}",
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

fn parse_email(raw: &str) -> anyhow::Result<EmailAddress> {
    EmailAddress::parse(raw).map_err(|e| anyhow::anyhow!("{raw:?}: {e}"))
}

/// `paperboy subscribers …`. Each command checks its input before it
/// opens the database, so a typo creates no data directory, database or
/// key.
pub(super) async fn subscribers(command: SubscribersCommand, config: Config) -> anyhow::Result<()> {
    let defaults = default_prefs(&config)?;
    match command {
        SubscribersCommand::Add {
            email,
            topics,
            confirmed,
            send_time,
            time_zone,
        } => {
            let email = parse_email(&email)?;
            let prefs = PreferencesInput {
                topics: topics.join("\n"),
                send_time,
                time_zone,
                ..Default::default()
            }
            .validate(&defaults)
            .map_err(|mut errs| {
                for e in errs.iter_mut().filter(|e| e.is_nothing_to_send()) {
                    e.message = "give at least one --topic: without one this subscriber \
                                 would never get a digest"
                        .into();
                }
                field_errors(&errs)
            })?;
            add_subscriber(open_app(config).await?, email, prefs, confirmed).await
        }
        SubscribersCommand::List { state, format } => {
            let filter = state.as_deref().map(ListFilter::parse).transpose()?;
            list_subscribers(open_app(config).await?, filter, format).await
        }
        SubscribersCommand::Export { format, output } => {
            export_subscribers(open_app(config).await?, format, output).await
        }
        SubscribersCommand::Import {
            file,
            format,
            confirmed,
            skip_invalid,
        } => {
            let rules = ImportRules {
                confirmed,
                defaults,
            };
            import_subscribers(config, &file, format, &rules, skip_invalid).await
        }
        SubscribersCommand::Remove { email } => {
            let email = parse_email(&email)?;
            let app = open_app(config).await?;
            let result = match app.store.subscriber_by_email(&email).await? {
                Some(s) => {
                    app.store
                        .delete_subscriber(s.id, SuppressionReason::Manual, app.now())
                        .await?;
                    println!("removed {} and kept a suppression hash", email);
                    Ok(())
                }
                None => Err(anyhow::anyhow!("no subscriber with address {email}")),
            };
            app.store.close().await;
            result
        }
    }
}

async fn add_subscriber(
    app: App,
    email: EmailAddress,
    prefs: Preferences,
    confirmed: bool,
) -> anyhow::Result<()> {
    let links = app.links.clone();
    let hash_fn = move |id, generation| links.manage_token_hash(id, generation);
    let state = if confirmed {
        SubscriberState::Active
    } else {
        SubscriberState::Pending
    };
    let added = app
        .store
        .add_subscriber(
            &email,
            &prefs,
            state,
            &operator_consent(ConsentMethod::OperatorImport),
            &hash_fn,
            app.now(),
        )
        .await;
    app.store.close().await;
    let id = match added {
        Ok(id) => id,
        Err(StoreError::Suppressed(reason)) => bail!(
            "{} is suppressed ({reason}); not adding it. Only the person's own opt-in on the \
             subscribe page lifts a suppression",
            email.masked()
        ),
        Err(e) => return Err(e).with_context(|| format!("adding {}", email.masked())),
    };
    if confirmed {
        println!("added {} as {} (active, operator import)", email, id);
    } else {
        println!(
            "added {} as {} (pending; the running daemon sends the confirmation)",
            email, id
        );
    }
    Ok(())
}

/// `subscribers list --state …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListFilter {
    State(SubscriberState),
    /// Suppressed addresses, whatever their state.
    Suppressed,
}

impl ListFilter {
    fn parse(s: &str) -> anyhow::Result<ListFilter> {
        if s == "suppressed" {
            return Ok(ListFilter::Suppressed);
        }
        SubscriberState::parse(s)
            .map(ListFilter::State)
            .ok_or_else(|| {
                anyhow::anyhow!(
                "unknown state {s:?}; expected pending, active, paused, unsubscribed or suppressed"
            )
            })
    }
}

/// The state column of `subscribers list`: the subscription state, and
/// the suppression when there is one.
fn state_text(s: &Subscriber, suppression: Option<&Suppression>) -> String {
    match suppression {
        None => s.state.as_str().to_string(),
        Some(x) => format!(
            "{}, suppressed ({} since {})",
            s.state.as_str(),
            x.reason.label(),
            x.since.format("%Y-%m-%d")
        ),
    }
}

async fn list_subscribers(
    app: App,
    filter: Option<ListFilter>,
    format: ListFormat,
) -> anyhow::Result<()> {
    let state = match filter {
        Some(ListFilter::State(s)) => Some(s),
        _ => None,
    };
    let subs = app.store.list_subscribers(state).await;
    let suppressed = app.store.suppressed_subscribers().await;
    app.store.close().await;
    let (subs, suppressed) = (subs?, suppressed?);
    let mut out = std::io::stdout().lock();
    for s in &subs {
        let suppression = suppressed.get(&s.id);
        if filter == Some(ListFilter::Suppressed) && suppression.is_none() {
            continue;
        }
        match format {
            ListFormat::Text => writeln!(
                out,
                "{}\t{}\t{}\t{} {}\t{}",
                s.id.0,
                s.email,
                state_text(s, suppression),
                s.preferences.send_time.format("%H:%M"),
                s.preferences.time_zone.name(),
                s.preferences.topics.join("; ")
            )?,
            ListFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string(&Row::from_subscriber(s, suppression))?
            )?,
        }
    }
    Ok(())
}

async fn export_subscribers(
    app: App,
    format: DataFormat,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let subs = app.store.list_subscribers(None).await;
    let suppressed = app.store.suppressed_subscribers().await;
    app.store.close().await;
    let (subs, suppressed) = (subs?, suppressed?);
    let mut sink: Box<dyn Write> = match &output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let rows = subs
        .iter()
        .map(|s| Row::from_subscriber(s, suppressed.get(&s.id)));
    write_rows(&mut sink, format, rows)?;
    sink.flush()?;
    if let Some(p) = output {
        eprintln!("exported {} subscribers to {}", subs.len(), p.display());
    }
    Ok(())
}

/// Rows per import transaction: thousands per commit keep a large import
/// fast, and each commit short enough that a running daemon's writes
/// wait at most a fraction of a second.
const IMPORT_BATCH: usize = 5_000;

/// What an import did, for its summary line.
#[derive(Debug, Default)]
struct ImportTally {
    counts: ImportCounts,
    unsubscribed: u64,
    invalid: u64,
}

/// Lists the row's problems on stderr; returns how many rows were invalid
/// (0 or 1).
fn report_invalid(path: &Path, errs: &[RowError]) -> u64 {
    for e in errs {
        eprintln!("{}: {e}", path.display());
    }
    1
}

/// Pass 1 of an all-or-nothing import: reads the whole file, lists every
/// invalid line, writes nothing. Returns the number of invalid rows.
fn check_import_file(path: &Path, format: DataFormat, rules: &ImportRules) -> anyhow::Result<u64> {
    let mut reader = RowReader::open(path, format)?;
    let mut invalid = 0;
    while let Some((_, row)) = reader.next_row(rules)? {
        if let Err(errs) = row {
            invalid += report_invalid(path, &errs);
        }
    }
    Ok(invalid)
}

/// `subscribers import`: unless `skip_invalid`, a first pass checks the
/// whole file and nothing is written (nor the database created) when any
/// row is invalid; then the file is streamed into the database in
/// transactions of [`IMPORT_BATCH`] rows.
async fn import_subscribers(
    config: Config,
    path: &Path,
    format: DataFormat,
    rules: &ImportRules,
    skip_invalid: bool,
) -> anyhow::Result<()> {
    if !skip_invalid {
        let invalid = check_import_file(path, format, rules)?;
        if invalid > 0 {
            bail!(
                "{invalid} invalid rows (listed above); nothing was imported. Fix them, or \
                 pass --skip-invalid to import only the valid rows"
            );
        }
    }
    let reader = RowReader::open(path, format)?;
    let app = open_app(config).await?;
    let result = load_import(&app, path, reader, rules, skip_invalid).await;
    app.store.close().await;
    let tally = result?;
    let c = tally.counts;
    println!(
        "imported {}, skipped {} existing, {} suppressed, {} unsubscribed, {} invalid",
        c.added, c.existing, c.suppressed, tally.unsubscribed, tally.invalid
    );
    Ok(())
}

/// Pass 2: streams valid rows into the database, a batch per commit.
async fn load_import(
    app: &App,
    path: &Path,
    mut reader: RowReader,
    rules: &ImportRules,
    skip_invalid: bool,
) -> anyhow::Result<ImportTally> {
    let links = app.links.clone();
    let hash_fn = move |id, generation| links.manage_token_hash(id, generation);
    let consent = operator_consent(ConsentMethod::OperatorImport);
    let mut tally = ImportTally::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    loop {
        let next = reader.next_row(rules)?;
        let end = next.is_none();
        match next {
            None => {}
            Some((_, Ok(Planned::Add(row)))) => batch.push(row),
            Some((_, Ok(Planned::Unsubscribed))) => tally.unsubscribed += 1,
            Some((_, Ok(Planned::Suppressed))) => tally.counts.suppressed += 1,
            Some((_, Err(errs))) if skip_invalid => tally.invalid += report_invalid(path, &errs),
            Some((line, Err(errs))) => {
                report_invalid(path, &errs);
                bail!(
                    "{} changed during the import: line {line} is invalid now; {} rows were \
                     imported before it",
                    path.display(),
                    tally.counts.added
                );
            }
        }
        if batch.len() >= IMPORT_BATCH || (end && !batch.is_empty()) {
            tally.counts += app
                .store
                .import_subscribers(&batch, &consent, &hash_fn, app.now())
                .await?;
            batch.clear();
        }
        if end {
            return Ok(tally);
        }
    }
}
