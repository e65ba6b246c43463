//! The command line (`paperboy <command>`), and the daemon's start-up and
//! shutdown sequence.

use crate::app::{App, Overrides};
use crate::config::Config;
use crate::domain::{EmailAddress, Preferences, PreferencesInput, SubscriberState, Suppression};
use crate::store::subscribers::{
    ConsentInput, ConsentMethod, ImportCounts, Subscriber, SuppressionReason,
};
use crate::store::{InstanceLock, Store, StoreError};
use crate::subscriber_file::{write_rows, ImportRules, Planned, Row, RowError, RowReader};
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
    /// Run the web server and the scheduler (the main job). With
    /// `bounces.mailbox.enabled`, the bounce mailbox is polled once at
    /// start-up and then on its cron.
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
        /// A topic phrase; repeat for several, or separate them with commas.
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
        #[command(flatten)]
        window: PreviewWindow,
    },
    /// Plan and send the digests due now. Prints the counts, the run's
    /// state (`done` only when nothing due is left) and what is left.
    /// SIGINT/SIGTERM stop it gracefully: in-flight sends finish and are
    /// recorded, the rest wait for the next run, exit 0.
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

pub use crate::subscriber_file::DataFormat;

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
    crate::telemetry::init(&config.logging.level, config.logging.format);
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
            window,
        } => preview(config, topics, excluded, authors, limit, format, window).await,
        Command::Digest { now, dry_run } => {
            digest(config, now.map(|t| t.with_timezone(&chrono::Utc)), dry_run).await
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
            // Operator templates are part of the configuration to check.
            crate::render::Renderer::with_overrides(config.templates.override_dir())
                .context("templates.dir")?;
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
            if config.rank.semantic.local_dir().is_some() {
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
    let bind = config.server.bind;
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
    reclaim_leases(&app).await?;
    app.start_semantic();
    initial_fetch(&app).await;
    if app.config.bounces.mailbox.enabled {
        // Reports that arrived while the daemon was down are read now, not
        // at the first cron tick.
        app.tasks.spawn(crate::jobs::bounce_mailbox(app.clone()));
    }
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

/// At start-up of `serve` and `digest`, under the instance lock: every
/// delivery lease left belongs to a process that died, so it is recovered
/// now rather than when it expires.
async fn reclaim_leases(app: &App) -> anyhow::Result<()> {
    let (pending, unknown) = app.store.reclaim_leases_at_startup().await?;
    app.unknown_at_startup
        .fetch_add(unknown, std::sync::atomic::Ordering::Relaxed);
    if pending + unknown > 0 {
        tracing::warn!(
            back_to_pending = pending,
            unknown,
            policy = %app.config.digest.unknown_policy,
            "recovered deliveries an earlier process left leased"
        );
    }
    Ok(())
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

/// Which digest `paperboy preview` shows: the next one of a reader with
/// this frequency whose previous digest covered up to `--since`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewWindow {
    /// daily, weekdays, weekly (on Monday) or weekly:DAY, e.g.
    /// weekly:friday.
    #[arg(long, default_value = "daily", value_parser = parse_frequency)]
    frequency: crate::domain::Frequency,
    /// The last listing day the reader's previous digest covered
    /// (YYYY-MM-DD); without it, a first digest.
    #[arg(long)]
    since: Option<chrono::NaiveDate>,
}

fn parse_frequency(s: &str) -> Result<crate::domain::Frequency, String> {
    let s = s.trim().to_ascii_lowercase();
    let s = if s == "weekly" { "weekly:monday" } else { &s };
    crate::domain::Frequency::decode(s).ok_or_else(|| {
        format!("{s:?} is not a frequency: use daily, weekdays, weekly or weekly:DAY (e.g. weekly:friday)")
    })
}

impl PreviewWindow {
    /// The window of the reader's next digest, as of `today`.
    fn window(&self, config: &Config, today: chrono::NaiveDate) -> crate::domain::Window {
        let day = crate::domain::next_digest_day(self.frequency, today);
        crate::domain::window(self.frequency, self.since, day, config.window_limits())
    }
}

async fn preview(
    config: Config,
    topics: Vec<String>,
    excluded: Vec<String>,
    authors: Vec<String>,
    limit: usize,
    format: ListFormat,
    which: PreviewWindow,
) -> anyhow::Result<()> {
    // `--topic "RAG, diffusion models"` is two topics, as on the forms.
    let topics: Vec<String> = topics
        .iter()
        .flat_map(|t| crate::domain::parse_topics(t))
        .collect();
    if topics.is_empty() && authors.is_empty() {
        bail!("give at least one --topic or --author");
    }
    let app = App::build(config, Overrides::default()).await?;
    let now = app.now();
    let semantic = prepare_semantic(&app).await;
    let window = which.window(&app.config, now.date_naive());
    let picker = crate::digest::RankPicker::for_window(&app, &window, now).await?;
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
            println!(
                "{} digest of {}: papers listed {}",
                which.frequency.encode(),
                window.until.format("%A %-d %B"),
                window.describe()
            );
            if views.is_empty() {
                println!(
                    "{}",
                    preview_empty_text(&app, picker.candidates().len(), &window.describe()).await?
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

/// Why `paperboy preview` found nothing: no paper stored at all, none in
/// the candidate window, or candidates that these topics do not match.
async fn preview_empty_text(
    app: &App,
    candidates: usize,
    searched: &str,
) -> anyhow::Result<String> {
    Ok(if candidates > 0 {
        format!(
            "None of the {candidates} candidates listed {searched} matches these topics. Try broader words or fewer exclusions."
        )
    } else if app.store.papers_stored().await? == 0 {
        "No papers are stored yet. Run `paperboy fetch` first.".to_string()
    } else {
        format!("No stored paper was listed {searched}. Run `paperboy fetch` to get today's.")
    })
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
    let picker = crate::digest::WindowPickers::new();
    if dry_run {
        let report = crate::digest::dry_run(&app, &picker, now).await?;
        for e in &report.dry_run {
            println!(
                "{} (sub#{}) for {}: {} papers (listed {})",
                e.email,
                e.subscriber,
                e.digest_date,
                e.papers.len(),
                e.window.describe()
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
        reclaim_leases(&app).await?;
        app.transport.check().await;
        let report = run_until_signal(&app, &picker, now, shutdown_signal()).await?;
        let c = report.counts;
        println!(
            "digest run at {now}: planned {}, sent {}, retried {}, failed {}, skipped {}, unknown {} ({})",
            c.planned, c.sent, c.retried, c.failed, c.skipped, c.unknown,
            report.state.as_str()
        );
        if let Some(note) = report.note {
            println!("note: {note}");
        }
        let resend = app.config.digest.unknown_policy == crate::config::UnknownPolicy::Resend;
        let left = app.store.delivery_backlog(now, resend).await?;
        println!(
            "left: {} due, {} in flight, {} stuck, {} unknown outcome",
            left.due, left.in_flight, left.stuck, left.unknown
        );
        app.transport.shutdown().await;
    }
    app.store.close().await;
    Ok(())
}

/// One digest run that stops gracefully on `signal` (SIGINT / SIGTERM),
/// as `serve` does: no more claims, in-flight sends finish and are
/// recorded within `server.shutdown_grace_secs`, unsent claims go back to
/// `pending`, and the run is closed as `interrupted`. Past the grace
/// period it gives up with an error; the leases it leaves are reclaimed
/// at the next start.
async fn run_until_signal(
    app: &App,
    picker: &dyn crate::digest::Picker,
    now: chrono::DateTime<chrono::Utc>,
    signal: impl Future<Output = ()>,
) -> anyhow::Result<crate::digest::RunReport> {
    let run = crate::digest::run(app, picker, now);
    tokio::pin!(run);
    tokio::select! {
        report = &mut run => report,
        () = signal => {
            let grace = app.config.shutdown_grace();
            eprintln!(
                "interrupted: no new sends; finishing the ones in flight (up to {} s)",
                grace.as_secs()
            );
            app.shutdown.cancel();
            match tokio::time::timeout(grace, run).await {
                Ok(report) => report,
                Err(_) => bail!(
                    "in-flight sends did not finish within server.shutdown_grace_secs ({} s); \
                     their deliveries are recovered at the next start",
                    grace.as_secs()
                ),
            }
        }
    }
}

fn default_prefs(config: &Config) -> anyhow::Result<Preferences> {
    Ok(Preferences {
        topics: Vec::new(),
        excluded: Vec::new(),
        authors: Vec::new(),
        categories: Vec::new(),
        digest_size: config.digest.default_size,
        frequency: crate::domain::Frequency::Daily,
        send_time: config.digest.default_send_time,
        time_zone: config.digest.default_time_zone,
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
async fn subscribers(command: SubscribersCommand, config: Config) -> anyhow::Result<()> {
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
