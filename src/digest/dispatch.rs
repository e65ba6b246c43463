//! The dispatcher: sends prepared messages at the paced rate with bounded
//! concurrency, marks each row "send started" right before its SMTP
//! exchange, and records every outcome right after the reply (R50–R55).

use super::fault_point;
use super::pacer::{next_attempt, Pacer};
use super::produce::Ready;
use crate::app::App;
use crate::deliver::DeliverError;
use crate::store::deliveries::{RunCounts, SentDelivery};
use crate::store::subscribers::SuppressionReason;
use crate::telemetry::Metrics;
use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

/// The error budget of one run (R23).
#[derive(Debug, Default)]
pub(super) struct Budget {
    consecutive_failures: u32,
    attempts: u64,
    hard_bounces: u64,
    pub(super) paused: Option<String>,
}

/// What every send task of one run shares.
struct SendRun {
    pacer: Arc<Pacer>,
    budget: Arc<Mutex<Budget>>,
    counts: Arc<Mutex<RunCounts>>,
    sent: tokio::sync::mpsc::Sender<SentDelivery>,
    starts: Arc<StartMarker>,
}

/// Marks rows "send started" just before their SMTP exchange (R54), with
/// group commit: every send waits until its own row is durably marked,
/// and the marks of sends starting together share one transaction. The
/// guarantee is the same as one commit per row (no row is marked unless
/// its send is about to start), at a fraction of the writes.
pub struct StartMarker {
    tx: tokio::sync::mpsc::Sender<(i64, tokio::sync::oneshot::Sender<Result<(), String>>)>,
}

impl StartMarker {
    fn spawn(app: App) -> StartMarker {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(
            i64,
            tokio::sync::oneshot::Sender<Result<(), String>>,
        )>(1024);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            while rx.recv_many(&mut batch, 256).await > 0 {
                let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
                let result = app
                    .store
                    .deliveries_send_started(&ids, app.now())
                    .await
                    .map_err(|e| e.to_string());
                for (_, ack) in batch.drain(..) {
                    let _ = ack.send(result.clone());
                }
            }
        });
        StartMarker { tx }
    }

    /// Returns once `id` is durably marked as started.
    async fn mark(&self, id: i64) -> anyhow::Result<()> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.tx
            .send((id, ack))
            .await
            .map_err(|_| anyhow::anyhow!("the send-start marker stopped"))?;
        done.await
            .map_err(|_| anyhow::anyhow!("the send-start marker stopped"))?
            .map_err(|e| anyhow::anyhow!("cannot mark delivery {id} as started: {e}"))
    }
}

/// Most accepted messages recorded in one transaction.
pub(super) const RECORD_BATCH: usize = 512;

/// Sends prepared messages, `digest.concurrency` at a time at the paced
/// rate, until the producer is done; then waits for every send. Returns
/// how many rows it handed back unsent (paused run or shutdown).
pub(super) async fn dispatch(
    app: App,
    mut ready: tokio::sync::mpsc::Receiver<Ready>,
    now: DateTime<Utc>,
    budget: Arc<Mutex<Budget>>,
    counts: Arc<Mutex<RunCounts>>,
    sent: tokio::sync::mpsc::Sender<SentDelivery>,
) -> anyhow::Result<u64> {
    let cfg = &app.config.digest;
    let mut released = 0;
    let pacer = Arc::new(Pacer::new(cfg.max_per_second));
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency as usize));
    let starts = Arc::new(StartMarker::spawn(app.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut result = Ok(());
    while let Some(r) = ready.recv().await {
        let permit = sem.clone().acquire_owned().await?;
        let paused = budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .paused
            .is_some();
        if paused || app.shutdown.is_cancelled() {
            // Not sent: hand the row back; its prepared bytes stay
            // stored, so the next run sends exactly these.
            if let Err(e) = app.store.release_delivery(r.claim.id).await {
                result = Err(e.into());
                break;
            }
            released += 1;
            continue;
        }
        pacer.acquire().await;
        let (app, run) = (
            app.clone(),
            SendRun {
                pacer: pacer.clone(),
                budget: budget.clone(),
                counts: counts.clone(),
                sent: sent.clone(),
                starts: starts.clone(),
            },
        );
        tasks.spawn(async move {
            let _permit = permit;
            deliver_one(&app, r, now, &run).await
        });
        while let Some(res) = tasks.try_join_next() {
            result = result.and(res.map_err(anyhow::Error::from).and_then(|r| r));
        }
        if result.is_err() {
            break;
        }
    }
    // After an error: stop the producer and hand back what it queued, so
    // never-sent rows go back to pending instead of waiting out their
    // lease into `unknown`.
    ready.close();
    while let Ok(r) = ready.try_recv() {
        if let Err(e) = app.store.release_delivery(r.claim.id).await {
            tracing::warn!(delivery = r.claim.id, error = %e, "cannot release an unsent delivery");
        }
    }
    while let Some(res) = tasks.join_next().await {
        result = result.and(res.map_err(anyhow::Error::from).and_then(|r| r));
    }
    result.map(|()| released)
}

/// Records accepted messages as `sent`, all that have arrived since the
/// last commit in one transaction.
///
/// Crash safety: a message reaches this task only after the relay's 250
/// reply, and its row is `sending`, leased, with its prepared bytes
/// stored. If the process dies before the commit, lease recovery marks
/// the row `unknown` (R54) exactly as it would for a crash between the
/// reply and a per-message commit: no accepted message is ever silently
/// left unrecorded or re-sent as new. The window is only as long as one
/// commit of the previous group.
pub(super) async fn record_sent(
    app: App,
    mut rx: tokio::sync::mpsc::Receiver<SentDelivery>,
    counts: Arc<Mutex<RunCounts>>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        app.store.deliveries_sent(&batch, app.now()).await?;
        fault_point("after_commit");
        Metrics::add(&app.metrics.mail_sent, batch.len() as u64);
        counts.lock().unwrap_or_else(|e| e.into_inner()).sent += batch.len() as u64;
        batch.clear();
    }
    Ok(())
}

/// Sends one prepared message and records its outcome right after the
/// reply (R50–R55): failures here, acceptances via `record_sent`.
async fn deliver_one(app: &App, r: Ready, now: DateTime<Utc>, run: &SendRun) -> anyhow::Result<()> {
    let SendRun {
        pacer,
        budget,
        counts,
        sent,
        starts,
    } = run;
    let cfg = &app.config.digest;
    let id = r.claim.id;
    // Only from here on may a crash leave the outcome unknown; rows of the
    // batch not handed over yet go back to `pending` after a crash.
    starts.mark(id).await?;
    let result = app.transport.send(&r.composed).await;
    match result {
        Ok(()) => {
            fault_point("after_send");
            sent.send(SentDelivery {
                id,
                subscriber: r.subscriber.id,
                digest_date: r.claim.digest_date,
                papers: r.papers,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the sent-message recorder stopped"))?;
            pacer.speed_up().await;
            let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
            b.consecutive_failures = 0;
            b.attempts += 1;
        }
        Err(DeliverError::Timeout(msg)) => {
            // The relay may have taken the message: neither retry (a
            // possible duplicate) nor fail (a possible loss), but hand it
            // to digest.unknown_policy like an interrupted send (R54). The
            // relay just stalled, so the single resend waits for the
            // backoff instead of coming within this run.
            let next = next_attempt(
                r.claim.attempts,
                now,
                Duration::seconds(cfg.retry_base_secs as i64),
                Duration::seconds(cfg.retry_cap_secs as i64),
                &mut rand::thread_rng(),
            );
            app.store
                .delivery_outcome(
                    id,
                    "unknown",
                    None,
                    None,
                    &format!("outcome unknown: {msg}"),
                    Some(next),
                )
                .await?;
            counts.lock().unwrap_or_else(|e| e.into_inner()).unknown += 1;
            tracing::warn!(delivery = id, subscriber = %r.subscriber.id, error = %msg, "digest outcome unknown");
            let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
            b.attempts += 1;
            b.consecutive_failures += 1;
            if b.consecutive_failures >= cfg.max_consecutive_failures && b.paused.is_none() {
                b.paused = Some(format!(
                    "{} consecutive transport failures",
                    b.consecutive_failures
                ));
            }
        }
        Err(e) => {
            let (code, enhanced) = match &e {
                DeliverError::Transient { code, message } => {
                    (Some(*code), crate::deliver::enhanced_status(message))
                }
                DeliverError::Permanent { code, enhanced, .. } => (Some(*code), enhanced.clone()),
                _ => (None, None),
            };
            let msg = e.to_string();
            let stale = now - r.claim.due_at > Duration::hours(cfg.retry_max_age_hours as i64);
            if e.is_retryable() && !stale && !r.claim.unknown_resend {
                if e.is_rate_limit() {
                    pacer.slow_down().await;
                }
                let next = next_attempt(
                    r.claim.attempts,
                    now,
                    Duration::seconds(cfg.retry_base_secs as i64),
                    Duration::seconds(cfg.retry_cap_secs as i64),
                    &mut rand::thread_rng(),
                );
                app.store
                    .delivery_outcome(id, "retry", code, enhanced.as_deref(), &msg, Some(next))
                    .await?;
                Metrics::inc(&app.metrics.mail_retried);
                counts.lock().unwrap_or_else(|e| e.into_inner()).retried += 1;
                tracing::warn!(delivery = id, subscriber = %r.subscriber.id, error = %msg, "digest will be retried");
            } else {
                let why = if stale && e.is_retryable() {
                    format!("expired: {msg}")
                } else {
                    msg.clone()
                };
                app.store
                    .delivery_outcome(id, "failed", code, enhanced.as_deref(), &why, None)
                    .await?;
                Metrics::inc(&app.metrics.mail_failed);
                counts.lock().unwrap_or_else(|e| e.into_inner()).failed += 1;
                if e.is_hard_bounce() {
                    app.store
                        .suppress(
                            &r.subscriber.email,
                            SuppressionReason::HardBounce,
                            app.now(),
                        )
                        .await?;
                    tracing::warn!(subscriber = %r.subscriber.id, "hard bounce: address suppressed");
                } else {
                    tracing::warn!(delivery = id, subscriber = %r.subscriber.id, error = %msg, "digest failed");
                }
            }
            let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
            b.attempts += 1;
            if e.is_hard_bounce() {
                b.hard_bounces += 1;
            }
            if e.is_retryable() {
                b.consecutive_failures += 1;
            }
            if b.consecutive_failures >= cfg.max_consecutive_failures && b.paused.is_none() {
                b.paused = Some(format!(
                    "{} consecutive transport failures",
                    b.consecutive_failures
                ));
            }
            if b.attempts >= 50
                && (b.hard_bounces as f64 / b.attempts as f64) * 100.0 > cfg.max_bounce_percent
                && b.paused.is_none()
            {
                b.paused = Some(format!(
                    "hard-bounce rate {:.1}% above digest.max_bounce_percent",
                    b.hard_bounces as f64 * 100.0 / b.attempts as f64
                ));
            }
        }
    }
    Ok(())
}
