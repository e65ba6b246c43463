//! The command line (`paperboy <command>`): the arguments and the
//! dispatch to one file per command group: the daemon's start-up and
//! shutdown ([`daemon`]), `preview`, `digest`, `subscribers …`, and the
//! operator's one-off commands (`fetch`, `config check`, `db backup`,
//! `model fetch`: [`admin`]).

mod admin;
mod daemon;
mod digest;
mod preview;
mod subscribers;

use crate::app::App;
use crate::config::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub use admin::ModelCommand;
pub use daemon::{run_daemon, serve, shutdown_signal};
pub use preview::PreviewWindow;
pub use subscribers::SubscribersCommand;

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
    /// The sentence-embedding model (relevance by meaning).
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Database commands.
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
        Command::Fetch { source, date } => admin::fetch(config, source, date).await,
        Command::Preview {
            topics,
            excluded,
            authors,
            limit,
            format,
            window,
        } => preview::preview(config, topics, excluded, authors, limit, format, window).await,
        Command::Digest { now, dry_run } => {
            digest::digest(config, now.map(|t| t.with_timezone(&chrono::Utc)), dry_run).await
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => admin::config_check(config),
        Command::Db {
            command: DbCommand::Backup { file },
        } => admin::db_backup(config, &file).await,
        Command::Subscribers { command } => subscribers::subscribers(command, config).await,
        Command::Model { command } => admin::model(command, config).await,
    }
}

/// For one-shot commands: loads the model (downloading it if needed) and
/// embeds the stored papers that have no vector yet. Never fails: without
/// a model the status says why, and ranking is lexical.
async fn prepare_semantic(app: &App) -> crate::embed::Status {
    let status = app.semantic.load().await;
    app.embed_papers().await;
    status
}
