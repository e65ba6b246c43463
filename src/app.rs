//! The one cloneable application context shared by web handlers, jobs
//! and CLI commands: configuration, store, renderer, mail composer and
//! transport, link builder, clock, metrics, and the shutdown signal.

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::deliver::{Composer, Transport};
use crate::links::Links;
use crate::render::Renderer;
use crate::store::Store;
use crate::telemetry::Metrics;
use anyhow::Context;
use std::ops::Deref;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug)]
pub struct App(Arc<AppInner>);

#[derive(Debug)]
pub struct AppInner {
    pub config: Config,
    pub store: Store,
    pub renderer: Renderer,
    pub composer: Composer,
    pub transport: Transport,
    pub links: Links,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    /// Fetches listings; one shared polite HTTP client.
    pub fetcher: crate::sources::Fetcher,
    /// Abbreviations and synonyms for ranking.
    pub synonyms: crate::rank::Synonyms,
    /// The sentence-embedding model and its background work.
    pub semantic: Arc<crate::embed::Semantic>,
    /// Held by a digest run, so cron ticks never overlap runs.
    pub digest_lock: tokio::sync::Mutex<()>,
    /// Held by a bounce-mailbox poll, so polls never overlap.
    pub bounce_poll: tokio::sync::Mutex<()>,
    /// Woken whenever transactional mail is queued.
    pub outbox_wake: Notify,
    /// Cancelled on SIGTERM/SIGINT: stop taking new work.
    pub shutdown: CancellationToken,
    /// Background work to wait for during a graceful shutdown.
    pub tasks: TaskTracker,
    /// Deliveries whose outcome became unknown when start-up reclaimed a
    /// dead process's leases; the next digest run reports them as its own.
    pub unknown_at_startup: std::sync::atomic::AtomicU64,
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// Optional replacements for the production parts, for tests.
#[derive(Default)]
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
    pub transport: Option<Transport>,
}

impl App {
    /// Opens the store (running migrations), loads the secret key, compiles
    /// templates and builds the transport. Fails with the reason when any
    /// part is unusable, so problems surface at start-up.
    /// The transport is built before the database is opened, so a
    /// configuration that cannot send creates no database or key.
    pub async fn build(config: Config, mut overrides: Overrides) -> anyhow::Result<App> {
        if overrides.transport.is_none() {
            overrides.transport =
                Some(Transport::from_config(&config).context("setting up the mail transport")?);
        }
        let store = Store::open(&config.database)
            .await
            .with_context(|| format!("opening database {}", config.database.path.display()))?;
        App::with_store(config, store, overrides)
    }

    pub fn with_store(config: Config, store: Store, overrides: Overrides) -> anyhow::Result<App> {
        let key = crate::links::load_or_create_key(
            config
                .security
                .secret_key
                .as_ref()
                .map(|k| k.expose().to_vec()),
            &config.database.path,
        )?;
        let links = Links::new(config.server.base_url.clone(), key);
        let renderer = Renderer::with_overrides(config.templates.override_dir())
            .context("compiling templates (templates.dir overrides included)")?;
        let composer = Composer::from_config(&config, &links.home_url())?;
        let transport = match overrides.transport {
            Some(t) => t,
            None => Transport::from_config(&config).context("setting up the mail transport")?,
        };
        let fetcher = crate::sources::Fetcher::new(&config.sources, store.clone())
            .context("setting up the HTTP client for sources")?;
        let synonyms = crate::rank::Synonyms::from_concepts(config.rank.synonyms.clone());
        let semantic = Arc::new(crate::embed::Semantic::new(
            config.rank.semantic.clone(),
            models_dir(&config.database.path),
        ));
        Ok(App(Arc::new(AppInner {
            clock: overrides.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            config,
            store,
            renderer,
            composer,
            transport,
            links,
            metrics: Metrics::default(),
            fetcher,
            synonyms,
            semantic,
            digest_lock: tokio::sync::Mutex::new(()),
            bounce_poll: tokio::sync::Mutex::new(()),
            outbox_wake: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            unknown_at_startup: std::sync::atomic::AtomicU64::new(0),
        })))
    }

    /// Loads the embedding model in the background (never blocking
    /// start-up), then embeds the papers that need it.
    pub fn start_semantic(&self) {
        let app = self.clone();
        self.tasks.spawn(async move {
            let loaded = tokio::select! {
                s = app.semantic.load() => s,
                _ = app.shutdown.cancelled() => return,
            };
            if let crate::embed::Status::Ready { .. } = loaded {
                app.embed_papers().await;
            }
        });
    }

    /// One background embedding pass (after a fetch, at start-up);
    /// failures are logged, never returned: ranking stays lexical for the
    /// papers without a vector.
    pub async fn embed_papers(&self) {
        let pass = self
            .semantic
            .embed_pending(&self.store, self.now(), &self.shutdown);
        if let Err(e) = pass.await {
            tracing::warn!(error = %format!("{e:#}"), "embedding papers failed; they rank lexically");
        }
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The parts that reading and recording mail feedback (bounces and
    /// complaints) use.
    pub fn bounces(&self) -> crate::bounces::Context<'_> {
        crate::bounces::Context {
            config: &self.config.bounces,
            store: &self.store,
            composer: &self.composer,
            links: &self.links,
            metrics: &self.metrics.bounces,
            clock: self.clock.as_ref(),
            poll_turn: &self.bounce_poll,
        }
    }
}

/// `[database]` as the store opens it. Here, above both, so neither the
/// configuration nor the store knows the other.
impl From<&crate::config::DatabaseConfig> for crate::store::StoreOptions {
    fn from(db: &crate::config::DatabaseConfig) -> Self {
        crate::store::StoreOptions {
            path: db.path.clone(),
            busy_timeout: db.busy_timeout,
            max_connections: db.max_connections,
            synchronous: db.synchronous,
        }
    }
}

/// Downloaded models live beside the database.
pub fn models_dir(db_path: &std::path::Path) -> std::path::PathBuf {
    db_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("models")
}
