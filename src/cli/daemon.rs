//! `paperboy serve`: the daemon's start-up and its staged shutdown.

use crate::app::{App, Overrides};
use crate::config::Config;
use crate::store::InstanceLock;
use anyhow::Context;
use std::future::Future;

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
pub(super) async fn reclaim_leases(app: &App) -> anyhow::Result<()> {
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
