//! `paperboy digest`: one digest run from the command line, or a dry run.

use super::daemon::{reclaim_leases, shutdown_signal};
use super::prepare_semantic;
use crate::app::{App, Overrides};
use crate::config::Config;
use crate::store::InstanceLock;
use anyhow::bail;
use std::future::Future;

/// `paperboy digest`: one run now (or at `--now`), under the instance lock
/// so it never races a running daemon.
pub(super) async fn digest(
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
