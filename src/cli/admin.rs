//! The operator's one-off commands: `fetch`, `config check`,
//! `db backup` and `model fetch`.

use super::prepare_semantic;
use crate::app::{App, Overrides};
use crate::config::Config;
use crate::store::Store;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::path::Path;

/// `paperboy fetch`: every enabled source once (or only `source`), then
/// embeds what it stored.
pub(super) async fn fetch(
    config: Config,
    source: Option<String>,
    date: Option<chrono::NaiveDate>,
) -> anyhow::Result<()> {
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

/// `paperboy config check`: prints the configuration with secrets
/// redacted, after compiling the operator's templates.
pub(super) fn config_check(config: Config) -> anyhow::Result<()> {
    print!("{}", config.to_redacted_toml());
    // Operator templates are part of the configuration to check.
    crate::render::Renderer::with_overrides(config.templates.override_dir())
        .context("templates.dir")?;
    println!("# configuration OK");
    Ok(())
}

/// `paperboy db backup FILE`.
pub(super) async fn db_backup(config: Config, file: &Path) -> anyhow::Result<()> {
    let store = Store::open(&config.database).await?;
    store
        .backup_to(file)
        .await
        .with_context(|| format!("backing up to {}", file.display()))?;
    let check = Store::integrity_check(file).await?;
    if check != "ok" {
        bail!(
            "backup {} failed its integrity check: {check}",
            file.display()
        );
    }
    println!("backup written to {} (integrity check: ok)", file.display());
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download `rank.semantic.model` from the Hub into the data directory
    /// ahead of first use (sizes and hashes checked), then load it once.
    Fetch,
}

/// `paperboy model fetch`.
pub(super) async fn model(command: ModelCommand, config: Config) -> anyhow::Result<()> {
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
