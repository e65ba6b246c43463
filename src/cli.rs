//! The command line (`paperboy <command>`), and the daemon's start-up and
//! shutdown sequence.

use crate::app::{App, Overrides};
use crate::config::Config;
use crate::domain::{EmailAddress, Preferences, PreferencesInput, SubscriberState};
use crate::store::subscribers::{ConsentInput, ConsentMethod, Subscriber, SuppressionReason};
use crate::store::{InstanceLock, Store};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Parser)]
#[command(
    name = "paperboy",
    version,
    about = "Daily digests of trending research papers, per subscriber"
)]
pub struct Cli {
    /// Configuration file (TOML) layered over the built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server and the scheduler (the main job).
    Serve,
    /// Fetch paper listings from every enabled source once.
    Fetch {
        /// Only this source: huggingface, arxiv or arxiv-api (runs even
        /// when disabled in config).
        #[arg(long)]
        source: Option<String>,
        /// The listing day to fetch (YYYY-MM-DD; Hugging Face only).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// Show what a profile would receive from the stored papers now.
    Preview {
        /// A topic phrase; repeat for several.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Exclude papers mentioning this word; repeatable.
        #[arg(long = "exclude")]
        excluded: Vec<String>,
        /// Follow an author; repeatable.
        #[arg(long = "author")]
        authors: Vec<String>,
        /// Number of papers.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Plan and send the digests due now.
    Digest {
        /// Act as if it were this instant (RFC 3339), e.g. to catch up.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Show who would get which papers; write nothing, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Manage subscribers from the command line.
    Subscribers {
        #[command(subcommand)]
        command: SubscribersCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Database commands.
    /// The sentence-embedding model (relevance by meaning).
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Write a consistent online copy of the database (VACUUM INTO) and
    /// verify it with an integrity check.
    Backup {
        /// Destination file; must not exist yet.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DataFormat {
    /// Comma-separated values with a header row; lists joined with "; ".
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Add one subscriber. Without --confirmed the address gets a
    /// confirmation mail (sent by the running daemon).
    Add {
        email: String,
        /// A topic phrase; repeat for several.
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
    /// List subscribers.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Export all subscribers.
    Export {
        #[arg(long, value_enum, default_value = "csv")]
        format: DataFormat,
        /// Output file; standard output when absent.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Import subscribers from a CSV or JSON-lines file (the export format;
    /// only `email` is required). Existing addresses are skipped.
    Import {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "csv")]
        format: DataFormat,
        /// The list was opted in elsewhere: import as active, recorded as
        /// an operator import. Otherwise each address gets a confirmation.
        #[arg(long)]
        confirmed: bool,
    },
    /// Remove a subscriber and keep only a suppression hash, so the
    /// address is never mailed again unless it opts in anew.
    Remove { email: String },
}

/// Parses arguments, runs the command, returns the process exit code.
pub async fn main() -> i32 {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return 2;
        }
    };
    crate::telemetry::init(&config.logging.level, &config.logging.format);
    match run(cli.command, config).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Fetch { source, date } => {
            let source = source
                .map(|s| crate::sources::SourceName::parse(&s))
                .transpose()?;
            let app = App::build(config, Overrides::default()).await?;
            let report = app
                .fetcher
                .fetch(crate::sources::FetchRequest { source, date }, app.now())
                .await;
            println!("{report}");
            let semantic = prepare_semantic(&app).await;
            println!("Ranking {}", semantic.describe());
            app.store.close().await;
            if !report.is_ok() {
                bail!("at least one source failed");
            }
            Ok(())
        }
        Command::Preview {
            topics,
            excluded,
            authors,
            limit,
            format,
        } => preview(config, topics, excluded, authors, limit, format).await,
        Command::Digest { now, dry_run } => {
            digest(config, now.map(|t| t.with_timezone(&chrono::Utc)), dry_run).await
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
            println!("# configuration OK");
            Ok(())
        }
        Command::Db {
            command: DbCommand::Backup { file },
        } => {
            let store = Store::open(&config.database).await?;
            store
                .backup_to(&file)
                .await
                .with_context(|| format!("backing up to {}", file.display()))?;
            let check = Store::integrity_check(&file).await?;
            if check != "ok" {
                bail!(
                    "backup {} failed its integrity check: {check}",
                    file.display()
                );
            }
            println!("backup written to {} (integrity check: ok)", file.display());
            Ok(())
        }
        Command::Subscribers { command } => subscribers(command, config).await,
        Command::Model { command } => model(command, config).await,
    }
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download `rank.semantic.model` from the Hub into the data directory
    /// ahead of first use (sizes and hashes checked), then load it once.
    Fetch,
}

/// `paperboy model fetch`.
async fn model(command: ModelCommand, config: Config) -> anyhow::Result<()> {
    match command {
        ModelCommand::Fetch => {
            if config.rank.semantic.model_dir.is_some() {
                bail!("rank.semantic.model_dir is set: paperboy reads that folder and downloads nothing");
            }
            let semantic = crate::embed::Semantic::new(
                config.rank.semantic.clone(),
                crate::app::models_dir(&config.database.path),
            );
            let dir = semantic.fetch_model().await?;
            println!("{} is in {}", config.rank.semantic.model, dir.display());
            match semantic.load().await {
                crate::embed::Status::Ready { identity } => {
                    println!("loaded: {identity}");
                    Ok(())
                }
                other => bail!("downloaded, but {}", other.describe()),
            }
        }
    }
}

/// `paperboy serve`: takes the instance lock, builds the app, binds the
/// listener and runs until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let _lock = InstanceLock::acquire(&config.database.path)?;
    let bind = config.bind_addr()?;
    let app = App::build(config, Overrides::default()).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("config key `server.bind`: cannot listen on {bind}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        base_url = %app.links.home_url(),
        transport = ?app.transport,
        "paperboy serving"
    );
    run_daemon(app, listener, shutdown_signal()).await
}

/// Runs web server, outbox worker and scheduler until `signal` resolves,
/// then shuts down in stages: stop taking work, let in-flight work finish
/// within `server.shutdown_grace_secs`, close the transport and database.
pub async fn run_daemon(
    app: App,
    listener: tokio::net::TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    app.transport.check().await;
    app.store.outbox_retry_now(app.now()).await?;
    app.tasks.spawn(crate::transactional::run(app.clone()));
    app.store.recover_expired_leases(app.now()).await?;
    app.start_semantic();
    initial_fetch(&app).await;
    let mut sched = crate::jobs::start(&app, crate::jobs::schedule(&app)).await?;

    let token = app.shutdown.clone();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutdown requested; finishing in-flight work");
        token.cancel();
    });
    let web_stopped = crate::web::serve(
        app.clone(),
        listener,
        app.shutdown.clone().cancelled_owned(),
    );
    let grace = app.config.shutdown_grace();
    let result = web_stopped.await;

    if let Err(e) = sched.shutdown().await {
        tracing::warn!(error = %e, "scheduler did not stop cleanly");
    }
    app.tasks.close();
    if tokio::time::timeout(grace, app.tasks.wait()).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight work did not finish within the grace period"
        );
    }
    app.transport.shutdown().await;
    app.store.checkpoint().await.ok();
    app.store.close().await;
    tracing::info!("paperboy stopped");
    result.context("web server failed")
}

/// At start-up, fetch in the background when nothing is stored for today,
/// so the first digest and the subscribe page have papers.
async fn initial_fetch(app: &App) {
    if !app.config.sources.huggingface.enabled && !app.config.sources.arxiv.enabled {
        return;
    }
    let today = app.now().date_naive();
    match app.store.papers_listed_on(today).await {
        Ok(0) => {
            tracing::info!("no papers stored for today; fetching now");
            app.tasks.spawn(crate::jobs::fetch(app.clone(), None));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check stored papers"),
    }
}

/// Resolves on SIGINT or SIGTERM (`ctrl_c` alone misses SIGTERM, which is
/// what systemd and Docker send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

async fn preview(
    config: Config,
    topics: Vec<String>,
    excluded: Vec<String>,
    authors: Vec<String>,
    limit: usize,
    format: ListFormat,
) -> anyhow::Result<()> {
    if topics.is_empty() && authors.is_empty() {
        bail!("give at least one --topic or --author");
    }
    let app = App::build(config, Overrides::default()).await?;
    let now = app.now();
    let semantic = prepare_semantic(&app).await;
    let picker = crate::digest::RankPicker::for_preview(&app, now).await?;
    let mut profile = crate::rank::Profile::topics(topics);
    profile.excluded = excluded;
    profile.authors = authors;
    let picks = picker.preview(&app, &profile, limit.clamp(1, 100)).await;
    let views: Vec<_> = picks.iter().map(|p| p.view(picker.candidates())).collect();
    match format {
        ListFormat::Json => {
            eprintln!("Ranking {}", semantic.describe());
            println!("{}", serde_json::to_string_pretty(&views)?)
        }
        ListFormat::Text => {
            println!("Ranking {}", semantic.describe());
            if views.is_empty() {
                println!(
                    "No stored paper matches ({} candidates from the last {} days). Run `paperboy fetch` first?",
                    picker.candidates().len(),
                    app.config.digest.candidate_days
                );
            }
            for (i, v) in views.iter().enumerate() {
                println!(
                    "{:2}. {} [{}] score {:.2}\n    {}",
                    i + 1,
                    v.title,
                    v.id,
                    v.score,
                    v.reason
                );
            }
        }
    }
    app.store.close().await;
    Ok(())
}

/// For one-shot commands: loads the model (downloading it if needed) and
/// embeds the stored papers that have no vector yet. Never fails: without
/// a model the status says why, and ranking is lexical.
async fn prepare_semantic(app: &App) -> crate::embed::Status {
    let status = app.semantic.load().await;
    app.embed_papers().await;
    status
}

/// `paperboy digest`: one run now (or at `--now`), under the instance lock
/// so it never races a running daemon.
async fn digest(
    config: Config,
    now: Option<chrono::DateTime<chrono::Utc>>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let _lock = if dry_run {
        None
    } else {
        Some(InstanceLock::acquire(&config.database.path)?)
    };
    let app = App::build(config, Overrides::default()).await?;
    let now = now.unwrap_or_else(|| app.now());
    let semantic = prepare_semantic(&app).await;
    println!("Ranking {}", semantic.describe());
    let picker = crate::digest::RankPicker::for_run(&app, now).await?;
    if dry_run {
        let report = crate::digest::dry_run(&app, &picker, now).await?;
        for e in &report.dry_run {
            println!(
                "{} (sub#{}) for {}: {} papers",
                e.email,
                e.subscriber,
                e.digest_date,
                e.papers.len()
            );
            for (id, title, reason) in &e.papers {
                println!("    {id}  {title}\n          {reason}");
            }
        }
        println!(
            "dry run at {now}: {} due, {} with nothing to send; nothing written or sent",
            report.counts.planned, report.counts.skipped
        );
    } else {
        app.transport.check().await;
        let report = crate::digest::run(&app, &picker, now).await?;
        let c = report.counts;
        println!(
            "digest run at {now}: planned {}, sent {}, retried {}, failed {}, skipped {}, unknown {} ({})",
            c.planned, c.sent, c.retried, c.failed, c.skipped, c.unknown,
            serde_json::to_value(report.state)?.as_str().unwrap_or("")
        );
        if let Some(note) = report.note {
            println!("note: {note}");
        }
        app.transport.shutdown().await;
    }
    app.store.close().await;
    Ok(())
}

fn default_prefs(config: &Config) -> anyhow::Result<Preferences> {
    Ok(Preferences {
        topics: Vec::new(),
        excluded: Vec::new(),
        authors: Vec::new(),
        categories: Vec::new(),
        digest_size: config.digest.default_size,
        frequency: crate::domain::Frequency::Daily,
        send_time: config.default_send_time()?,
        time_zone: config.default_time_zone()?,
        fallback_trending: false,
    })
}

fn operator_consent(method: ConsentMethod) -> ConsentInput {
    ConsentInput {
        method,
        source: "cli".into(),
        consent_text_hash: crate::domain::hash_canonical("operator import via paperboy CLI"),
        ip: None,
    }
}

/// One subscriber as exported / imported.
#[derive(Debug, serde::Serialize, serde::Deserialize, Default)]
#[serde(default)]
struct Row {
    email: String,
    state: String,
    topics: String,
    excluded: String,
    authors: String,
    categories: String,
    digest_size: String,
    frequency: String,
    send_time: String,
    time_zone: String,
    fallback_trending: bool,
    created_at: String,
    confirmed_at: String,
}

impl Row {
    fn from_subscriber(s: &Subscriber) -> Row {
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
        }
    }

    /// Validates through the same rules as the web forms.
    fn preferences(&self, defaults: &Preferences) -> Result<Preferences, String> {
        let lines = |s: &str| s.split(';').map(str::trim).collect::<Vec<_>>().join("\n");
        let (frequency, weekly_day) = match self.frequency.split_once(':') {
            Some(("weekly", day)) => (Some("weekly".to_string()), Some(day.to_string())),
            _ => (Some(self.frequency.clone()), None),
        };
        PreferencesInput {
            topics: lines(&self.topics),
            excluded: lines(&self.excluded),
            authors: lines(&self.authors),
            categories: lines(&self.categories),
            digest_size: Some(self.digest_size.clone()),
            frequency,
            weekly_day,
            send_time: Some(self.send_time.clone()),
            time_zone: Some(self.time_zone.clone()),
            fallback_trending: self.fallback_trending,
        }
        .validate(defaults)
        .map_err(|errs| {
            errs.iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

async fn subscribers(command: SubscribersCommand, config: Config) -> anyhow::Result<()> {
    let app = App::build(config, Overrides::default()).await?;
    let store = &app.store;
    let links = app.links.clone();
    let hash_fn = move |id, generation| links.manage_token_hash(id, generation);
    let defaults = default_prefs(&app.config)?;
    match command {
        SubscribersCommand::Add {
            email,
            topics,
            confirmed,
            send_time,
            time_zone,
        } => {
            let email =
                EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{email:?}: {e}"))?;
            let prefs = PreferencesInput {
                topics: topics.join("\n"),
                send_time,
                time_zone,
                ..Default::default()
            }
            .validate(&defaults)
            .map_err(|errs| {
                anyhow::anyhow!(
                    "{}",
                    errs.iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            if let Some(reason) = store.suppression(&email).await? {
                if !reason.liftable_by_opt_in() {
                    bail!(
                        "{} is suppressed ({}); not adding it",
                        email.masked(),
                        reason.as_str()
                    );
                }
            }
            let state = if confirmed {
                SubscriberState::Active
            } else {
                SubscriberState::Pending
            };
            let id = store
                .add_subscriber(
                    &email,
                    &prefs,
                    state,
                    &operator_consent(ConsentMethod::OperatorImport),
                    &hash_fn,
                    app.now(),
                )
                .await
                .with_context(|| format!("adding {}", email.masked()))?;
            if confirmed {
                println!("added {} as {} (active, operator import)", email, id);
            } else {
                println!(
                    "added {} as {} (pending; the running daemon sends the confirmation)",
                    email, id
                );
            }
        }
        SubscribersCommand::List { state, format } => {
            let state = state
                .map(|s| {
                    SubscriberState::parse(&s).ok_or_else(|| {
                        anyhow::anyhow!(
                            "unknown state {s:?}; expected pending, active, paused or unsubscribed"
                        )
                    })
                })
                .transpose()?;
            let subs = store.list_subscribers(state).await?;
            let mut out = std::io::stdout().lock();
            for s in &subs {
                match format {
                    ListFormat::Text => writeln!(
                        out,
                        "{}\t{}\t{}\t{} {}\t{}",
                        s.id.0,
                        s.email,
                        s.state.as_str(),
                        s.preferences.send_time.format("%H:%M"),
                        s.preferences.time_zone.name(),
                        s.preferences.topics.join("; ")
                    )?,
                    ListFormat::Json => {
                        writeln!(out, "{}", serde_json::to_string(&Row::from_subscriber(s))?)?
                    }
                }
            }
        }
        SubscribersCommand::Export { format, output } => {
            let subs = store.list_subscribers(None).await?;
            let mut sink: Box<dyn Write> = match &output {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            write_rows(&mut sink, format, subs.iter().map(Row::from_subscriber))?;
            sink.flush()?;
            if let Some(p) = output {
                eprintln!("exported {} subscribers to {}", subs.len(), p.display());
            }
        }
        SubscribersCommand::Import {
            file,
            format,
            confirmed,
        } => {
            let rows = read_rows(&file, format)?;
            let (mut added, mut skipped) = (0, 0);
            let mut errors = Vec::new();
            for (line, row) in rows {
                let email = match EmailAddress::parse(&row.email) {
                    Ok(e) => e,
                    Err(e) => {
                        errors.push(format!("line {line}: {e}"));
                        continue;
                    }
                };
                let prefs = match row.preferences(&defaults) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(format!("line {line}: {e}"));
                        continue;
                    }
                };
                if store.subscriber_by_email(&email).await?.is_some()
                    || store
                        .suppression(&email)
                        .await?
                        .is_some_and(|r| !r.liftable_by_opt_in())
                {
                    skipped += 1;
                    continue;
                }
                let state = if confirmed {
                    SubscriberState::Active
                } else {
                    SubscriberState::Pending
                };
                store
                    .add_subscriber(
                        &email,
                        &prefs,
                        state,
                        &operator_consent(ConsentMethod::OperatorImport),
                        &hash_fn,
                        app.now(),
                    )
                    .await?;
                added += 1;
            }
            for e in &errors {
                eprintln!("{e}");
            }
            println!(
                "imported {added}, skipped {skipped} existing or suppressed, {} invalid",
                errors.len()
            );
            if !errors.is_empty() {
                bail!("{} rows were invalid and not imported", errors.len());
            }
        }
        SubscribersCommand::Remove { email } => {
            let email =
                EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("{email:?}: {e}"))?;
            match store.subscriber_by_email(&email).await? {
                Some(s) => {
                    store
                        .delete_subscriber(s.id, SuppressionReason::Manual, app.now())
                        .await?;
                    println!("removed {} and kept a suppression hash", email);
                }
                None => bail!("no subscriber with address {email}"),
            }
        }
    }
    app.store.close().await;
    Ok(())
}

fn write_rows(
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

/// Rows with their 1-based line (CSV: record) numbers, for error messages.
fn read_rows(path: &Path, format: DataFormat) -> anyhow::Result<Vec<(usize, Row)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    match format {
        DataFormat::Csv => {
            let mut r = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(text.as_bytes());
            for (i, rec) in r.deserialize::<Row>().enumerate() {
                let row = rec.with_context(|| format!("{}: record {}", path.display(), i + 1))?;
                rows.push((i + 2, row));
            }
        }
        DataFormat::Jsonl => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let row: Row = serde_json::from_str(line)
                    .with_context(|| format!("{}: line {}", path.display(), i + 1))?;
                rows.push((i + 1, row));
            }
        }
    }
    Ok(rows)
}
