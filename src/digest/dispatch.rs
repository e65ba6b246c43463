//! The dispatcher: sends prepared messages at the paced rate with bounded
//! concurrency, has each row durably marked "send started" before its
//! message data goes out, and records every outcome right after the reply;
//! marks and acceptances go through the [`Journal`].

use super::budget::Budget;
use super::fault_point;
use super::journal::Journal;
use super::pacer::{next_attempt, DomainPacers, Pacer};
use super::produce::Ready;
use crate::app::App;
use crate::deliver::outcome::{classify, AttemptContext, Classified, Outcome};
use crate::store::deliveries::{AttemptEnd, SentDelivery};
use crate::store::runs::RunCounts;
use crate::store::subscribers::SuppressionReason;
use crate::telemetry::Metrics;
use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

/// What every send task of one run shares.
#[derive(Clone)]
struct SendRun {
    pacer: Arc<Pacer>,
    budget: Arc<Mutex<Budget>>,
    counts: Arc<Mutex<RunCounts>>,
    journal: Journal,
}

/// A message whose recipient domain cannot take it within this long is
/// deferred to a later tick rather than held: a slow domain never
/// holds up the others for more than this.
const DOMAIN_HORIZON: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends prepared messages, `digest.concurrency` at a time at the paced
/// rate, until the producer is done; then waits for every send. Returns
/// how many rows it handed back unsent (paused run or shutdown).
pub(super) async fn dispatch(
    app: App,
    mut ready: tokio::sync::mpsc::Receiver<Ready>,
    now: DateTime<Utc>,
    budget: Arc<Mutex<Budget>>,
    counts: Arc<Mutex<RunCounts>>,
    journal: Journal,
) -> anyhow::Result<u64> {
    let cfg = &app.config.digest;
    let run = SendRun {
        pacer: Arc::new(Pacer::new(cfg.max_per_second.get())),
        budget,
        counts,
        journal,
    };
    let limits = cfg.domain_limits.iter();
    let mut d = Dispatcher {
        sem: Arc::new(tokio::sync::Semaphore::new(cfg.concurrency as usize)),
        domains: DomainPacers::new(
            cfg.domain_rate.get(),
            limits.map(|(d, r)| (d.clone(), r.get())).collect(),
        ),
        app,
        now,
        run,
        tasks: tokio::task::JoinSet::new(),
        released: 0,
        deferred: 0,
    };
    let mut result = Ok(());
    while let Some(r) = ready.recv().await {
        match d.take(r).await {
            Ok(true) => d.reap(&mut result),
            Ok(false) => {}
            Err(e) => result = Err(e),
        }
        if result.is_err() {
            break;
        }
    }
    d.finish(ready, result).await
}

/// The dispatcher's state during one run.
struct Dispatcher {
    app: App,
    now: DateTime<Utc>,
    run: SendRun,
    /// One permit per send in flight.
    sem: Arc<tokio::sync::Semaphore>,
    domains: DomainPacers,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    /// Rows handed back unsent (paused run, shutdown).
    released: u64,
    /// Rows deferred by per-domain pacing.
    deferred: u64,
}

impl Dispatcher {
    /// Starts sending `r` (`true`), or hands it back unsent when the run
    /// is paused or shutting down, or defers it when its domain cannot
    /// take it soon (`false`).
    async fn take(&mut self, r: Ready) -> anyhow::Result<bool> {
        let permit = self.sem.clone().acquire_owned().await?;
        let paused = self
            .run
            .budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .paused()
            .is_some();
        let app = &self.app;
        if paused || app.shutdown.is_cancelled() {
            // Not sent: hand the row back; its prepared bytes stay
            // stored, so the next run sends exactly these.
            app.store.release_delivery(r.claim.id).await?;
            self.released += 1;
            return Ok(false);
        }
        let domain = self.domains.of(recipient_domain(&r));
        let slot = match domain.try_reserve(DOMAIN_HORIZON).await {
            Ok(slot) => slot,
            Err(at) => {
                let wait = at.saturating_duration_since(tokio::time::Instant::now());
                let until = self.now + Duration::from_std(wait).unwrap_or(Duration::zero());
                app.store.defer_delivery(r.claim.id, until).await?;
                self.deferred += 1;
                return Ok(false);
            }
        };
        self.run.pacer.acquire().await;
        let (app, now, run) = (app.clone(), self.now, self.run.clone());
        self.tasks.spawn(async move {
            let _permit = permit;
            super::pacer::wait_for(slot).await;
            deliver_one(&app, r, now, &run, &domain).await
        });
        Ok(true)
    }

    /// Collects the sends that have finished; the first error stays.
    fn reap(&mut self, result: &mut anyhow::Result<()>) {
        while let Some(res) = self.tasks.try_join_next() {
            let done = res.map_err(anyhow::Error::from).and_then(|r| r);
            *result = std::mem::replace(result, Ok(())).and(done);
        }
    }

    /// After the last message or an error: stops the producer and hands
    /// back what it queued, so never-sent rows go back to pending instead
    /// of waiting out their lease into `unknown`; then waits for every
    /// send.
    async fn finish(
        mut self,
        mut ready: tokio::sync::mpsc::Receiver<Ready>,
        mut result: anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        ready.close();
        while let Ok(r) = ready.try_recv() {
            if let Err(e) = self.app.store.release_delivery(r.claim.id).await {
                tracing::warn!(delivery = r.claim.id, error = %e, "cannot release an unsent delivery");
            }
        }
        while let Some(res) = self.tasks.join_next().await {
            result = result.and(res.map_err(anyhow::Error::from).and_then(|r| r));
        }
        if self.deferred > 0 {
            tracing::info!(
                deferred = self.deferred,
                "deliveries deferred to a later tick by per-domain pacing"
            );
        }
        result.map(|()| self.released)
    }
}

/// The recipient's domain as the pacers know it: lower-case, punycoded.
fn recipient_domain(r: &Ready) -> &str {
    let canonical = r.subscriber.email.canonical();
    canonical.rsplit_once('@').map_or(canonical, |(_, d)| d)
}

/// Sends one prepared message and records its outcome right after the
/// reply: failures here, acceptances through the [`Journal`]. What
/// the reply means is decided by the shared classifier.
async fn deliver_one(
    app: &App,
    r: Ready,
    now: DateTime<Utc>,
    run: &SendRun,
    domain: &Pacer,
) -> anyhow::Result<()> {
    let cfg = &app.config.digest;
    let id = r.claim.id;
    // The row is durably marked as started before the message data goes
    // out (the relay can take a message only at the data's end): only
    // from then on may a crash leave the outcome unknown; rows not marked
    // go back to `pending` after a crash. The mark's commit overlaps the
    // commands before the data.
    let marked = async {
        run.journal.started(id).await?;
        fault_point("before_send");
        Ok(())
    };
    let result = app.transport.send_when(&r.composed, marked).await?;
    let stale = now - r.claim.due_at > cfg.retry_max_age;
    let c = classify(
        &result,
        AttemptContext {
            may_retry: !stale && !r.claim.unknown_resend,
            expired: stale,
            unknown_on_timeout: true,
        },
    );
    if c.outcome == Outcome::Sent {
        fault_point("after_send");
        run.journal
            .sent(SentDelivery {
                id,
                subscriber: r.subscriber.id,
                digest_date: r.claim.digest_date,
                papers: r.papers,
            })
            .await?;
        run.pacer.speed_up().await;
        domain.speed_up().await;
    } else {
        record_failure(app, &r, now, &c, run, domain).await?;
    }
    run.budget
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(&c);
    Ok(())
}

/// Records an attempt that did not end `sent`, as classified.
async fn record_failure(
    app: &App,
    r: &Ready,
    now: DateTime<Utc>,
    c: &Classified,
    run: &SendRun,
    domain: &Pacer,
) -> anyhow::Result<()> {
    let cfg = &app.config.digest;
    let (id, sub) = (r.claim.id, r.subscriber.id);
    let backoff = || {
        next_attempt(
            r.claim.attempts,
            now,
            cfg.retry_base,
            cfg.retry_cap,
            &mut rand::thread_rng(),
        )
    };
    let end = match c.outcome {
        // The relay just stalled, so the single resend waits for the
        // backoff instead of coming within this run.
        Outcome::Unknown => AttemptEnd::Unknown { next: backoff() },
        Outcome::Retry { slow_down } => {
            if slow_down {
                // That domain's rate, not everyone's.
                domain.slow_down().await;
            }
            AttemptEnd::Retry { next: backoff() }
        }
        Outcome::Failed { .. } | Outcome::Suppress | Outcome::Sent => AttemptEnd::Failed,
    };
    app.store
        .delivery_outcome(id, end, c.code, c.enhanced.as_deref(), &c.detail)
        .await?;
    {
        let mut counts = run.counts.lock().unwrap_or_else(|e| e.into_inner());
        match c.outcome {
            Outcome::Unknown => {
                counts.unknown += 1;
                tracing::warn!(delivery = id, subscriber = %sub, error = %c.detail, "digest outcome unknown");
            }
            Outcome::Retry { .. } => {
                counts.retried += 1;
                Metrics::inc(&app.metrics.mail_retried);
                tracing::warn!(delivery = id, subscriber = %sub, error = %c.detail, "digest will be retried");
            }
            _ => {
                counts.failed += 1;
                Metrics::inc(&app.metrics.mail_failed);
            }
        }
    }
    if c.outcome == Outcome::Suppress {
        app.store
            .suppress(
                &r.subscriber.email,
                SuppressionReason::HardBounce,
                app.now(),
            )
            .await?;
        tracing::warn!(subscriber = %sub, "hard bounce: address suppressed");
    } else if matches!(c.outcome, Outcome::Failed { .. }) {
        tracing::warn!(delivery = id, subscriber = %sub, error = %c.detail, "digest failed");
    }
    Ok(())
}
