//! Digest orchestration: which subscribers are due now, what each gets,
//! and an idempotent, resumable delivery engine (R48–R60).
//!
//! A run: recover interrupted deliveries, plan (one row per subscriber and
//! local date, inserted idempotently), then repeatedly claim a batch with a
//! lease (committed), prepare each message and store its exact bytes
//! (committed), send, and commit each outcome right after the reply. No
//! transaction is open while SMTP talks. Subscribers are paged, never
//! loaded all at once.

//!
//! Files, one job each: `plan` (who is due: delivery rows and the dry
//! run), `produce` (claim, re-check, pick, render, store the bytes),
//! `dispatch` (paced, concurrent sends and their recorded outcomes),
//! `pacer` (global rate and retry backoff), `picker` (ranking over the
//! run's candidates), `schedule` (pure send-time arithmetic), `seal`
//! (stored bytes), `view` (what the templates see).

mod dispatch;
mod pacer;
mod picker;
mod plan;
mod produce;
pub mod schedule;
mod seal;
pub mod view;

pub use pacer::{next_attempt, Pacer};
pub use picker::RankPicker;
pub use plan::{dry_run, plan};
pub use produce::render_digest;
pub use seal::Sealer;

use crate::app::App;
use crate::domain::{Paper, Preferences};
use crate::store::deliveries::RunCounts;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dispatch::{dispatch, record_sent, Budget, RECORD_BATCH};
use produce::produce;

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

    /// [`Picker::pick`] adapted to the reader's feedback. A picker that
    /// does not learn ignores it.
    fn pick_with_feedback(
        &self,
        prefs: &Preferences,
        sent: &HashSet<String>,
        _feedback: &crate::rank::ReaderFeedback,
    ) -> Vec<DigestPick> {
        self.pick(prefs, sent)
    }
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
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) fn fault_point(point: &str) {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("PAPERBOY_FAULT_INJECT").ok());
    if armed.as_deref() == Some(point) {
        eprintln!("fault injection: aborting at {point}");
        std::process::abort();
    }
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
