//! Cron wiring only: each scheduled job calls a plain async function
//! elsewhere. A failing job logs and waits for its next tick; it never
//! takes the daemon down.

use crate::app::App;
use crate::sources::{FetchRequest, SourceName};
use crate::telemetry::Metrics;
use anyhow::Context;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_cron_scheduler::{Job, JobScheduler};

type JobFn = Arc<dyn Fn(App) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A named job: its config key (for messages), cron expression and body.
pub struct Scheduled {
    pub name: &'static str,
    pub cron: String,
    pub run: JobFn,
}

impl Scheduled {
    pub fn new<F, Fut>(name: &'static str, cron: &str, f: F) -> Scheduled
    where
        F: Fn(App) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Scheduled {
            name,
            cron: cron.to_string(),
            run: Arc::new(move |app| Box::pin(f(app))),
        }
    }
}

/// The daemon's cron jobs, from config.
pub fn schedule(app: &App) -> Vec<Scheduled> {
    let cfg = &app.config;
    let mut jobs = vec![
        Scheduled::new("digest", &cfg.digest.cron, digest_tick),
        Scheduled::new(
            "maintenance",
            // Hourly housekeeping: purge expired pending subscribers, old
            // rate rows and expired confirm tokens, then the
            // retention of `[retention]`.
            "0 17 * * * *",
            maintenance,
        ),
    ];
    if cfg.sources.huggingface.enabled {
        jobs.push(Scheduled::new(
            "fetch-huggingface",
            &cfg.sources.huggingface.cron,
            |app| fetch(app, Some(SourceName::HuggingFace)),
        ));
    }
    if cfg.sources.arxiv.enabled {
        jobs.push(Scheduled::new(
            "fetch-arxiv",
            &cfg.sources.arxiv.cron,
            |app| async move {
                fetch(app.clone(), Some(SourceName::Arxiv)).await;
                fetch(app, Some(SourceName::ArxivApi)).await;
            },
        ));
    }
    if cfg.bounces.mailbox.enabled {
        jobs.push(Scheduled::new(
            "bounce-mailbox",
            &cfg.bounces.mailbox.cron,
            bounce_mailbox,
        ));
    }
    jobs
}

/// Polls the bounce mailbox once and logs what it did (the poll itself
/// records its outcome for `/healthz` and `/metrics`).
pub async fn bounce_mailbox(app: App) {
    match crate::bounces::mailbox::poll(&app.bounces()).await {
        Ok(r) if r.read > 0 || r.left > 0 => tracing::info!(report = %r, "bounce mailbox polled"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "bounce mailbox poll failed"),
    }
}

/// Fetches one source (or all enabled ones) and logs the report.
pub async fn fetch(app: App, source: Option<SourceName>) {
    let report = app
        .fetcher
        .fetch(FetchRequest { source, date: None }, app.now())
        .await;
    for s in &report.sources {
        if s.is_ok() {
            Metrics::inc(&app.metrics.fetch_ok);
        } else {
            Metrics::inc(&app.metrics.fetch_errors);
        }
    }
    if report.is_ok() {
        tracing::info!(report = %report, "fetch finished");
    } else {
        tracing::error!(report = %report, "fetch failed");
    }
    // New papers get their vectors in the background; ingest is done.
    let embed = app.clone();
    app.tasks.spawn(async move { embed.embed_papers().await });
}

/// One scheduler tick: plan and send what is due now. Skipped while the
/// previous run is still going, and when nothing is due (no run is
/// recorded for an idle tick).
pub async fn digest_tick(app: App) {
    let Ok(_guard) = app.digest_lock.try_lock() else {
        tracing::debug!("previous digest run still going; tick skipped");
        return;
    };
    let now = app.now();
    match crate::digest::work_due(&app, now).await {
        Ok(false) => return,
        Ok(true) => {}
        // Let the run report it properly.
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot tell whether digests are due"),
    }
    let result = async {
        let picker = crate::digest::WindowPickers::new();
        crate::digest::run(&app, &picker, now).await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %format!("{e:#}"), "digest run failed");
    }
}

/// Housekeeping; see [`schedule`].
pub async fn maintenance(app: App) {
    let max_age = app.config.subscribe.pending_expiry;
    match app.store.purge_expired(max_age, app.now()).await {
        Ok(n) if n > 0 => tracing::info!(purged = n, "purged unconfirmed subscribers"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "maintenance job failed"),
    }
    prune(&app).await;
}

/// Retention: deletes what `[retention]` no longer keeps, in small batches.
async fn prune(app: &App) {
    match app.store.prune(&app.config.retention, app.now()).await {
        Ok(p) if p.total() > 0 => tracing::info!(pruned = ?p, "deleted old rows"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "retention failed"),
    }
}

/// Starts the scheduler with `jobs`. Each run is tracked so a graceful
/// shutdown waits for it; no new run starts once shutdown began.
pub async fn start(app: &App, jobs: Vec<Scheduled>) -> anyhow::Result<JobScheduler> {
    let sched = JobScheduler::new()
        .await
        .context("starting the scheduler")?;
    for job in jobs {
        let app = app.clone();
        let run = job.run.clone();
        let name = job.name;
        let j = Job::new_async(job.cron.as_str(), move |_id, _lock| {
            let app = app.clone();
            let run = run.clone();
            Box::pin(async move {
                if app.shutdown.is_cancelled() {
                    return;
                }
                tracing::debug!(job = name, "job starting");
                app.tasks.clone().spawn(run(app.clone())).await.ok();
            })
        })
        .with_context(|| format!("job {name}: bad cron expression {:?}", job.cron))?;
        sched
            .add(j)
            .await
            .with_context(|| format!("adding job {name}"))?;
    }
    sched.start().await.context("starting the scheduler")?;
    Ok(sched)
}
