//! Digest orchestration: which subscribers are due now, what each gets,
//! and an idempotent, resumable delivery engine (R48–R60).
//!
//! A run: recover interrupted deliveries, plan (one row per subscriber and
//! local date, inserted idempotently), then repeatedly claim a batch with a
//! lease (committed), prepare each message and store its exact bytes
//! (committed), send, and commit each outcome right after the reply. No
//! transaction is open while SMTP talks. Subscribers are paged, never
//! loaded all at once.

mod picker;
pub mod schedule;
mod seal;
pub mod view;

pub use picker::RankPicker;
pub use seal::Sealer;

use crate::app::App;
use crate::config::UnknownPolicy;
use crate::deliver::{Composed, DeliverError, Outgoing};
use crate::domain::{EmailAddress, Paper, Preferences, SubscriberId, SubscriberState};
use crate::store::deliveries::{ClaimedDelivery, Prepared, RunCounts, SentDelivery};
use crate::store::subscribers::{Subscriber, SuppressionReason};
use crate::telemetry::Metrics;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::Rng;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use view::{subject_and_preheader, DigestView, PaperView};

/// One paper picked for a subscriber, with the reason shown under it.
#[derive(Debug, Clone)]
pub struct DigestPick {
    pub paper: Arc<Paper>,
    pub score: f64,
    pub reason: String,
    /// The subscriber topic that matched best, if any (subject line).
    pub topic: Option<String>,
}

/// Chooses a subscriber's papers from the run's candidates. Built once per
/// run over the same candidates and shared by every send task.
pub trait Picker: Send + Sync {
    /// At most `prefs.digest_size` picks, best first, none of them in
    /// `sent` (canonical ids already mailed to this subscriber).
    fn pick(&self, prefs: &Preferences, sent: &HashSet<String>) -> Vec<DigestPick>;
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Done,
    /// The error budget was exhausted; remaining deliveries wait for the
    /// next run.
    PausedErrors,
    /// Shutdown was requested; in-flight sends were finished and recorded.
    Interrupted,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::PausedErrors => "paused_errors",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// What a dry run would send to one subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunEntry {
    pub subscriber: i64,
    pub email: String,
    pub digest_date: NaiveDate,
    pub papers: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub counts: RunCounts,
    pub state: RunState,
    pub note: Option<String>,
    pub dry_run: Vec<DryRunEntry>,
}

/// Fault injection for the crash tests (R54): when the environment
/// variable `PAPERBOY_FAULT_INJECT` names this point, the process aborts
/// here, like a power cut. Read once per process (this sits on the
/// per-message path); never set in production.
fn fault_point(point: &str) {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("PAPERBOY_FAULT_INJECT").ok());
    if armed.as_deref() == Some(point) {
        eprintln!("fault injection: aborting at {point}");
        std::process::abort();
    }
}

/// Exponential backoff with jitter (R52):
/// `min(cap, base · 2^(n−1)) · U(0.8, 1.2)` after the n-th attempt.
pub fn next_attempt(
    attempt: i64,
    now: DateTime<Utc>,
    base: Duration,
    cap: Duration,
    rng: &mut impl Rng,
) -> DateTime<Utc> {
    let exp = (attempt.max(1) - 1).min(20) as u32;
    let raw = base.num_milliseconds().saturating_mul(1i64 << exp);
    let capped = raw.min(cap.num_milliseconds());
    let jitter: f64 = rng.gen_range(0.8..1.2);
    now + Duration::milliseconds((capped as f64 * jitter) as i64)
}

/// Paces sends to a global rate, halving it on rate-limit replies and
/// recovering additively on success (AIMD, R57).
#[derive(Debug)]
pub struct Pacer {
    max_rate: f64,
    state: tokio::sync::Mutex<(tokio::time::Instant, f64)>,
}

impl Pacer {
    pub fn new(per_second: u32) -> Pacer {
        Pacer {
            max_rate: per_second.max(1) as f64,
            state: tokio::sync::Mutex::new((tokio::time::Instant::now(), per_second.max(1) as f64)),
        }
    }

    /// Waits for the next send slot.
    pub async fn acquire(&self) {
        let (slot, now) = {
            let mut s = self.state.lock().await;
            let now = tokio::time::Instant::now();
            let slot = s.0.max(now);
            s.0 = slot + std::time::Duration::from_secs_f64(1.0 / s.1);
            (slot, now)
        };
        // A slot that is already due needs no timer: tokio rounds sleeps up
        // to the next millisecond, which alone would cap the rate at 1,000
        // a second.
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
    }

    pub async fn slow_down(&self) {
        let mut s = self.state.lock().await;
        s.1 = (s.1 / 2.0).max(0.5);
    }

    pub async fn speed_up(&self) {
        let mut s = self.state.lock().await;
        s.1 = (s.1 + 0.1).min(self.max_rate);
    }

    pub async fn rate(&self) -> f64 {
        self.state.lock().await.1
    }
}

/// The error budget of one run (R23).
#[derive(Debug, Default)]
struct Budget {
    consecutive_failures: u32,
    attempts: u64,
    hard_bounces: u64,
    paused: Option<String>,
}

/// Runs the digest for `now`: plan, then send what is due.
pub async fn run(app: &App, picker: &dyn Picker, now: DateTime<Utc>) -> anyhow::Result<RunReport> {
    let cfg = &app.config.digest;
    let started = Instant::now();
    let run_id = app.store.start_run(now).await?;
    let mut counts = RunCounts::default();

    let (_, unknown) = app.store.recover_expired_leases(now).await?;
    if unknown > 0 {
        tracing::warn!(unknown, policy = %cfg.unknown_policy, "deliveries interrupted mid-send have an unknown outcome");
    }
    counts.unknown += unknown;

    counts.planned = plan(app, now).await?;
    let state = send_due(app, picker, now, &mut counts).await;
    let (state, note) = match state {
        Ok(s) => s,
        Err(e) => {
            app.store
                .finish_run(
                    run_id,
                    &counts,
                    "interrupted",
                    Some(&format!("{e:#}")),
                    app.now(),
                )
                .await
                .ok();
            return Err(e);
        }
    };
    app.store
        .finish_run(run_id, &counts, state.as_str(), note.as_deref(), app.now())
        .await?;
    let summary = serde_json::json!({
        "at": crate::store::ts(app.now()),
        "for": crate::store::ts(now),
        "state": state,
        "counts": counts,
        "note": note,
        "seconds": started.elapsed().as_secs_f64(),
    });
    app.store
        .set_setting("last_digest_run", &summary.to_string())
        .await?;
    if counts.planned
        + counts.sent
        + counts.failed
        + counts.retried
        + counts.skipped
        + counts.unknown
        > 0
    {
        tracing::info!(
            planned = counts.planned,
            sent = counts.sent,
            retried = counts.retried,
            failed = counts.failed,
            skipped = counts.skipped,
            unknown = counts.unknown,
            state = state.as_str(),
            seconds = started.elapsed().as_secs_f64(),
            "digest run finished"
        );
        app.store.checkpoint().await.ok();
    }
    Ok(RunReport {
        counts,
        state,
        note,
        dry_run: Vec::new(),
    })
}

/// Pages through active subscribers and inserts a delivery for each one
/// due at `now` (R48, R59). Returns how many rows were new.
pub async fn plan(app: &App, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let window = Duration::hours(app.config.digest.catch_up_hours as i64);
    let mut after = SubscriberId(0);
    let mut planned = 0;
    loop {
        let page = app.store.active_subscribers_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let due: Vec<_> = page
            .iter()
            .filter_map(|s| {
                schedule::due_now(&s.preferences, now, window)
                    .map(|d| (s.id, d.digest_date, d.due_at))
            })
            .collect();
        planned += app.store.plan_deliveries(&due, now).await?;
    }
    Ok(planned)
}

/// What a run would do, without writing or sending anything.
pub async fn dry_run(
    app: &App,
    picker: &dyn Picker,
    now: DateTime<Utc>,
) -> anyhow::Result<RunReport> {
    let window = Duration::hours(app.config.digest.catch_up_hours as i64);
    let mut after = SubscriberId(0);
    let mut entries = Vec::new();
    let mut counts = RunCounts::default();
    loop {
        let page = app.store.active_subscribers_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for s in &page {
            let Some(due) = schedule::due_now(&s.preferences, now, window) else {
                continue;
            };
            if app.store.delivery_exists(s.id, due.digest_date).await? {
                continue;
            }
            counts.planned += 1;
            let sent = app.store.sent_paper_ids(s.id).await?;
            let picks = picker.pick(&s.preferences, &sent);
            if picks.is_empty() {
                counts.skipped += 1;
            }
            entries.push(DryRunEntry {
                subscriber: s.id.0,
                email: s.email.as_str().to_string(),
                digest_date: due.digest_date,
                papers: picks
                    .iter()
                    .map(|p| {
                        (
                            p.paper.id.to_string(),
                            p.paper.title.clone(),
                            p.reason.clone(),
                        )
                    })
                    .collect(),
            });
        }
    }
    Ok(RunReport {
        counts,
        state: RunState::Done,
        note: Some("dry run: nothing written, nothing sent".into()),
        dry_run: entries,
    })
}

/// A message ready to send for one claimed delivery.
struct Ready {
    claim: ClaimedDelivery,
    subscriber: Subscriber,
    composed: Composed,
    papers: Vec<String>,
}

async fn send_due(
    app: &App,
    picker: &dyn Picker,
    now: DateTime<Utc>,
    counts: &mut RunCounts,
) -> anyhow::Result<(RunState, Option<String>)> {
    let cfg = &app.config.digest;
    let batch = (cfg.concurrency * 16).clamp(16, 256);
    let shared_counts = Arc::new(Mutex::new(RunCounts::default()));
    let budget = Arc::new(Mutex::new(Budget::default()));
    // Accepted messages are recorded by one task, many per transaction,
    // instead of one write transaction per reply (see `record_sent`).
    let (sent_tx, sent_rx) = tokio::sync::mpsc::channel(RECORD_BATCH);
    let recorder = tokio::spawn(record_sent(app.clone(), sent_rx, shared_counts.clone()));
    // Prepared messages queue for the dispatcher, at most one batch ahead,
    // so rendering the next batch overlaps sending this one.
    let (ready_tx, ready_rx) = tokio::sync::mpsc::channel(batch as usize);
    let dispatcher = tokio::spawn(dispatch(
        app.clone(),
        ready_rx,
        now,
        budget.clone(),
        shared_counts.clone(),
        sent_tx,
    ));
    let produced = produce(app, picker, now, batch, &budget, &shared_counts, ready_tx).await;
    // Whatever ended production, every started send finishes and its
    // outcome is recorded before the run reports.
    let dispatched = dispatcher
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
    let recorded = recorder.await.map_err(anyhow::Error::from).and_then(|r| r);
    let paused = budget
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .paused
        .clone();
    let result = produced.and_then(|state| {
        let released = dispatched?;
        recorded?;
        // The producer may have queued everything before the dispatcher
        // paused or saw the shutdown and handed rows back.
        Ok(match (state, paused) {
            ((RunState::Done, _), Some(why)) if released > 0 => (RunState::PausedErrors, Some(why)),
            ((RunState::Done, _), None) if released > 0 => (
                RunState::Interrupted,
                Some("shutdown requested".to_string()),
            ),
            (state, _) => state,
        })
    });
    let c = *shared_counts.lock().unwrap_or_else(|e| e.into_inner());
    counts.sent += c.sent;
    counts.retried += c.retried;
    counts.failed += c.failed;
    counts.skipped += c.skipped;
    counts.unknown += c.unknown;
    result
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
const RECORD_BATCH: usize = 512;

/// Claims and prepares batch after batch until nothing is due, storing
/// each batch's bytes before handing its messages to the dispatcher.
async fn produce(
    app: &App,
    picker: &dyn Picker,
    now: DateTime<Utc>,
    batch: u32,
    budget: &Mutex<Budget>,
    counts: &Mutex<RunCounts>,
    ready: tokio::sync::mpsc::Sender<Ready>,
) -> anyhow::Result<(RunState, Option<String>)> {
    let cfg = &app.config.digest;
    let resend = app.config.unknown_policy()? == UnknownPolicy::Resend;
    let lease = Duration::seconds(cfg.lease_secs as i64);
    let sealer = Sealer::new(&app.links);
    loop {
        if app.shutdown.is_cancelled() {
            return Ok((
                RunState::Interrupted,
                Some("shutdown requested".to_string()),
            ));
        }
        if let Some(why) = budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .paused
            .clone()
        {
            return Ok((RunState::PausedErrors, Some(why)));
        }
        let claims = app
            .store
            .claim_deliveries(now, now + lease, batch, resend)
            .await?;
        if claims.is_empty() {
            return Ok((RunState::Done, None));
        }
        fault_point("after_claim");

        let (batch_ready, prepared, skipped, failed) =
            prepare(app, picker, &sealer, claims, now).await?;
        {
            let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
            c.skipped += skipped;
            c.failed += failed;
        }
        if failed > 0 {
            Metrics::add(&app.metrics.mail_failed, failed);
        }
        // The exact bytes are durable before the first byte goes out.
        app.store.prepare_deliveries(&prepared).await?;
        for r in batch_ready {
            ready
                .send(r)
                .await
                .map_err(|_| anyhow::anyhow!("the digest dispatcher stopped"))?;
        }
    }
}

/// Sends prepared messages, `digest.concurrency` at a time at the paced
/// rate, until the producer is done; then waits for every send. Returns
/// how many rows it handed back unsent (paused run or shutdown).
async fn dispatch(
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
async fn record_sent(
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

/// What a claimed delivery became before sending.
enum Prepare {
    Ready(Box<Ready>, Option<Prepared>),
    /// The message could not be built: to record as `failed`.
    Failed(i64, String),
}

/// Prepares a claimed batch: re-checks each subscriber (R53; one query
/// each for the batch's subscribers, suppressions and sent papers), then
/// reopens the stored message or picks, renders, composes and seals a new
/// one. Rendering runs on the blocking pool in one chunk per core.
/// Returns the messages to send, the new ones to store, how many were
/// skipped and how many failed (a message that could not be built is
/// recorded `failed`, so it counts as failed).
async fn prepare(
    app: &App,
    picker: &dyn Picker,
    sealer: &Sealer,
    claims: Vec<ClaimedDelivery>,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<Ready>, Vec<Prepared>, u64, u64)> {
    let store = &app.store;
    let ids: Vec<SubscriberId> = claims.iter().map(|c| c.subscriber_id).collect();
    let mut subs: HashMap<SubscriberId, Subscriber> = store
        .subscribers_by_ids(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut skips: Vec<(i64, &'static str)> = Vec::new();
    let mut live = Vec::with_capacity(claims.len());
    for claim in claims {
        match subs.remove(&claim.subscriber_id) {
            None => skips.push((claim.id, "subscriber deleted")),
            Some(s) if s.state != SubscriberState::Active => {
                skips.push((claim.id, "not active at send time"))
            }
            Some(s) => live.push((claim, s)),
        }
    }
    let emails: Vec<&EmailAddress> = live.iter().map(|(_, s)| &s.email).collect();
    let suppressed = store.suppressed_among(&emails).await?;
    let mut ready = Vec::with_capacity(live.len());
    let mut fresh = Vec::with_capacity(live.len());
    for ((claim, sub), suppressed) in live.into_iter().zip(suppressed) {
        if suppressed {
            skips.push((claim.id, "address suppressed"));
        } else if let Some(sealed) = &claim.message {
            // A retry or the single unknown-outcome resend: the identical bytes.
            let composed = Composed {
                envelope: app.composer.envelope_for(&sub.email)?,
                bytes: sealer.open(sealed)?,
                message_id: claim.message_id.clone().unwrap_or_default(),
            };
            let papers = claim.papers.clone();
            ready.push(Ready {
                claim,
                subscriber: sub,
                composed,
                papers,
            });
        } else {
            fresh.push((claim, sub));
        }
    }

    let fresh_ids: Vec<SubscriberId> = fresh.iter().map(|(_, s)| s.id).collect();
    let mut sent = store.sent_paper_ids_of(&fresh_ids).await?;
    let mut jobs = Vec::with_capacity(fresh.len());
    for (claim, sub) in fresh {
        let picks = picker.pick(&sub.preferences, &sent.remove(&sub.id).unwrap_or_default());
        if picks.is_empty() {
            skips.push((claim.id, "no matching papers today"));
        } else {
            jobs.push((claim, sub, picks));
        }
    }
    let mut prepared = Vec::with_capacity(jobs.len());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut chunks = Vec::new();
    while !jobs.is_empty() {
        let rest = jobs.split_off(jobs.len().saturating_sub(jobs.len().div_ceil(cores)));
        let (app, sealer) = (app.clone(), sealer.clone());
        chunks.push(tokio::task::spawn_blocking(move || {
            rest.into_iter()
                .map(|(claim, sub, picks)| build_digest(&app, &sealer, claim, sub, &picks, now))
                .collect::<anyhow::Result<Vec<Prepare>>>()
        }));
    }
    let mut failed = 0;
    for chunk in chunks {
        for p in chunk.await?? {
            match p {
                Prepare::Ready(r, p) => {
                    prepared.extend(p);
                    ready.push(*r);
                }
                Prepare::Failed(id, why) => {
                    store
                        .delivery_outcome(id, "failed", None, None, &why, None)
                        .await?;
                    failed += 1;
                }
            }
        }
    }
    for (id, why) in &skips {
        store
            .delivery_outcome(*id, "skipped", None, None, why, None)
            .await?;
    }
    Ok((ready, prepared, skips.len() as u64, failed))
}

/// Renders, composes and seals one new digest. Blocking: CPU only.
fn build_digest(
    app: &App,
    sealer: &Sealer,
    claim: ClaimedDelivery,
    sub: Subscriber,
    picks: &[DigestPick],
    now: DateTime<Utc>,
) -> anyhow::Result<Prepare> {
    let content = render_digest(app, &sub, picks, claim.digest_date)?;
    let message_id = app.composer.message_id(
        &app.links,
        "digest",
        &[
            claim.digest_date.to_string().as_bytes(),
            &sub.id.0.to_be_bytes(),
        ]
        .concat(),
        &claim.digest_date.format("%Y%m%d").to_string(),
    );
    let token = app.links.manage_token(sub.id, sub.token_generation);
    let composed = match app.composer.compose(&Outgoing {
        to: &sub.email,
        content: &content,
        message_id,
        unsubscribe_url: Some(app.links.unsubscribe_url(&token)),
        date: Some(now.max(claim.due_at)),
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(delivery = claim.id, subscriber = %sub.id, error = %e, "cannot build digest");
            return Ok(Prepare::Failed(claim.id, e.to_string()));
        }
    };
    let papers: Vec<String> = picks.iter().map(|p| p.paper.id.to_string()).collect();
    let prepared = Prepared {
        id: claim.id,
        message_id: composed.message_id.clone(),
        encrypted: sealer.seal(&composed.bytes)?,
        papers: papers.clone(),
    };
    Ok(Prepare::Ready(
        Box::new(Ready {
            claim,
            subscriber: sub,
            composed,
            papers,
        }),
        Some(prepared),
    ))
}

/// Renders one subscriber's digest.
pub fn render_digest(
    app: &App,
    sub: &Subscriber,
    picks: &[DigestPick],
    date: NaiveDate,
) -> anyhow::Result<crate::render::RenderedEmail> {
    let papers: Vec<PaperView> = picks
        .iter()
        .enumerate()
        .map(|(i, p)| PaperView::new(i + 1, &p.paper, p.reason.clone()))
        .collect();
    let fallback = picks.iter().all(|p| p.topic.is_none());
    let top_topic = picks.iter().find_map(|p| p.topic.as_deref());
    let (subject, preheader) = subject_and_preheader(&papers, top_topic);
    let token = app.links.manage_token(sub.id, sub.token_generation);
    let topics = &sub.preferences.topics;
    let view = DigestView {
        heading: if fallback {
            "Nothing matched your topics today; here is what is trending".into()
        } else {
            "Today's papers on your topics".to_string()
        },
        subject,
        preheader,
        date: date.format("%A, %-d %B %Y").to_string(),
        papers,
        topics: topics.clone(),
        fallback,
        manage_url: app.links.manage_url(&token),
        unsubscribe_url: app.links.unsubscribe_url(&token),
        home_url: app.links.home_url(),
        why: format!(
            "You receive this because you subscribed to paperboy digests{}. Change or stop them any time with the links above.",
            if topics.is_empty() {
                String::new()
            } else {
                format!(" on {}", topics.join(", "))
            }
        ),
    };
    Ok(app.renderer.email("digest", &view)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_respects_the_cap() {
        let now = Utc::now();
        let base = Duration::minutes(5);
        let cap = Duration::hours(2);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in 1..=12 {
            let d = next_attempt(n, now, base, cap, &mut rng) - now;
            let nominal = (base.num_seconds() * (1 << (n - 1))).min(cap.num_seconds()) as f64;
            let secs = d.num_milliseconds() as f64 / 1000.0;
            assert!(
                secs >= nominal * 0.8 - 0.001 && secs <= nominal * 1.2 + 0.001,
                "n={n}: {secs} vs {nominal}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_holds_the_global_rate_and_halves_it_on_rate_limits() {
        let p = Pacer::new(10);
        let start = tokio::time::Instant::now();
        for _ in 0..100 {
            p.acquire().await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!(took >= 9.8, "100 messages at 10/s took {took}s");
        p.slow_down().await;
        assert_eq!(p.rate().await, 5.0);
        p.speed_up().await;
        assert!(p.rate().await > 5.0 && p.rate().await < 10.0);
    }
}
