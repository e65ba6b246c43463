//! Digest orchestration: which subscribers are due now, what each gets,
//! and an idempotent, resumable delivery engine.
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
//! `reader_feedback` (each reader's feedback with its papers' vectors),
//! `dispatch` (paced, concurrent sends and their recorded outcomes),
//! `journal` (the send path's group-committed marks and records),
//! `budget` (the run's error budget: too many transport failures stop
//! it), `pacer` (global and per-domain rate, retry backoff),
//! `render_pool` (niced threads that render), `picker` (ranking over the
//! run's candidates), `windows` (one picker per digest window, so readers
//! with different windows rank over their own candidates), `schedule`
//! (pure send-time arithmetic), `seal` (stored bytes), `view` (what the
//! templates see).

mod budget;
mod dispatch;
mod journal;
mod pacer;
mod picker;
mod plan;
mod produce;
pub mod reader_feedback;
mod render_pool;
pub mod schedule;
mod seal;
pub mod view;
mod windows;

pub use pacer::{next_attempt, Pacer};
pub use picker::RankPicker;
pub use plan::{dry_run, plan, work_due};
pub use produce::render_digest;
pub use seal::Sealer;
pub use windows::WindowPickers;

use crate::app::App;
use crate::domain::{Paper, Preferences};
pub use crate::store::runs::RunState;
use crate::store::runs::{BounceTally, RunCounts, RunSummary};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use budget::Budget;
use dispatch::dispatch;
use journal::Journal;
use produce::produce;

/// One paper picked for a subscriber, with the reason shown under it.
#[derive(Debug, Clone)]
pub struct DigestPick {
    pub paper: Arc<Paper>,
    pub score: f64,
    pub reason: String,
    /// The subscriber topic that matched best, or the followed category
    /// the paper is in, if any (subject line).
    pub topic: Option<String>,
}

/// Chooses a subscriber's papers from the candidates of their digest's
/// window. Built once per run and shared by every send task.
pub trait Picker: Send + Sync {
    /// At most `prefs.digest_size` picks from the papers listed in
    /// `window`, best first, none of them in `sent` (canonical ids already
    /// mailed to this subscriber).
    fn pick(
        &self,
        window: &crate::domain::Window,
        prefs: &Preferences,
        sent: &HashSet<String>,
    ) -> Vec<DigestPick>;

    /// Of `windows`, those whose candidates the engine must [`load`]
    /// before picking from them. By default none: the picker's candidates
    /// do not depend on the window.
    ///
    /// [`load`]: Picker::load
    fn missing(&self, _windows: &[crate::domain::Window]) -> Vec<crate::domain::Window> {
        Vec::new()
    }

    /// Takes the index over the candidates listed in `window` (with their
    /// vectors when a model is loaded), as [`Picker::missing`] asked.
    fn load(&self, _window: crate::domain::Window, _picker: RankPicker) {}

    /// [`Picker::pick`] adapted to the reader's feedback. A picker that
    /// does not learn ignores it.
    fn pick_with_feedback(
        &self,
        window: &crate::domain::Window,
        prefs: &Preferences,
        sent: &HashSet<String>,
        _feedback: &crate::rank::ReaderFeedback,
    ) -> Vec<DigestPick> {
        self.pick(window, prefs, sent)
    }
}

/// What a dry run would send to one subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunEntry {
    pub subscriber: i64,
    pub email: String,
    pub digest_date: NaiveDate,
    /// The listing days searched.
    pub window: crate::domain::Window,
    pub papers: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub counts: RunCounts,
    pub state: RunState,
    pub note: Option<String>,
    pub dry_run: Vec<DryRunEntry>,
}

/// Fault injection for the crash tests: when the environment
/// variable `PAPERBOY_FAULT_INJECT` names this point (`after_send`), or
/// its n-th pass (`after_send#37`), the process dies here like a power
/// cut: `std::process::abort`, or SIGKILL when `PAPERBOY_FAULT_KILL` is
/// set. Read once per process (this sits on the per-message path); never
/// set in production.
pub(crate) fn fault_point(point: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Armed {
        point: String,
        nth: u64,
        passes: AtomicU64,
        kill: bool,
    }
    static ARMED: std::sync::OnceLock<Option<Armed>> = std::sync::OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var("PAPERBOY_FAULT_INJECT").ok()?;
        let (point, nth) = match spec.split_once('#') {
            Some((p, n)) => (p.to_string(), n.parse().ok()?),
            None => (spec, 1),
        };
        Some(Armed {
            point,
            nth,
            passes: AtomicU64::new(0),
            kill: std::env::var_os("PAPERBOY_FAULT_KILL").is_some(),
        })
    });
    let Some(a) = armed.as_ref().filter(|a| a.point == point) else {
        return;
    };
    if a.passes.fetch_add(1, Ordering::Relaxed) + 1 != a.nth {
        return;
    }
    eprintln!("fault injection: aborting at {point} (pass {})", a.nth);
    if a.kill {
        // The real thing: no handler, no unwinding, no flush.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    std::process::abort();
}

/// Runs the digest for `now`: plan, then send what is due, and record the
/// run and its summary.
pub async fn run(app: &App, picker: &dyn Picker, now: DateTime<Utc>) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let run_id = app.store.start_run(now).await?;
    let mut counts = RunCounts {
        unknown: recover_leases(app, now).await?,
        ..RunCounts::default()
    };
    fault_point("before_plan");
    counts.planned = plan(app, now).await?;
    fault_point("after_plan");
    // Too many spam complaints lately: send nothing until the rate drops.
    // Planned rows wait, as after an error-budget pause.
    let sent = match crate::bounces::sending_paused(&app.bounces(), now).await? {
        Some(why) => {
            tracing::warn!(reason = %why, "digest sending paused");
            Ok((RunState::PausedErrors, Some(why)))
        }
        None => send_due(app, picker, now, &mut counts).await,
    };
    let (state, note) = match sent {
        Ok((RunState::Done, _)) => complete_or_not(app, now).await?,
        Ok(s) => s,
        Err(e) => {
            let why = format!("{e:#}");
            let interrupted = RunState::Interrupted;
            let finished =
                app.store
                    .finish_run(run_id, &counts, interrupted, Some(&why), app.now());
            finished.await.ok();
            return Err(e);
        }
    };
    fault_point("before_finish");
    app.store
        .finish_run(run_id, &counts, state, note.as_deref(), app.now())
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    record_summary(app, now, state, counts, note.clone(), seconds).await?;
    Ok(RunReport {
        counts,
        state,
        note,
        dry_run: Vec::new(),
    })
}

/// Recovers the leases of runs that died; returns how many deliveries
/// became unknown, with those start-up reclaimed.
async fn recover_leases(app: &App, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let (_, unknown) = app.store.recover_expired_leases(now).await?;
    let unknown = unknown
        + app
            .unknown_at_startup
            .swap(0, std::sync::atomic::Ordering::Relaxed);
    if unknown > 0 {
        let policy = app.config.digest.unknown_policy;
        tracing::warn!(unknown, %policy, "deliveries interrupted mid-send have an unknown outcome");
    }
    Ok(unknown)
}

/// Keeps the run's summary for `/healthz` and `/metrics`, and logs a run
/// that did anything.
async fn record_summary(
    app: &App,
    now: DateTime<Utc>,
    state: RunState,
    counts: RunCounts,
    note: Option<String>,
    seconds: f64,
) -> anyhow::Result<()> {
    let bounces: BounceTally =
        serde_json::from_value(crate::bounces::recent_counts(&app.bounces(), now).await?)?;
    let summary = RunSummary {
        at: app.now(),
        run_for: now,
        state,
        counts,
        note,
        seconds,
        bounces_last_24h: bounces,
    };
    app.store.set_last_digest_run(&summary).await?;
    if counts.any() {
        tracing::info!(
            planned = counts.planned,
            sent = counts.sent,
            retried = counts.retried,
            failed = counts.failed,
            skipped = counts.skipped,
            unknown = counts.unknown,
            state = state.as_str(),
            seconds,
            "digest run finished"
        );
        app.store.checkpoint().await.ok();
    }
    Ok(())
}

/// `Done` only when nothing due or leased is left at `now`; otherwise
/// `Incomplete`, with what is left in the note.
async fn complete_or_not(
    app: &App,
    now: DateTime<Utc>,
) -> anyhow::Result<(RunState, Option<String>)> {
    let resend = app.config.digest.unknown_policy == crate::config::UnknownPolicy::Resend;
    let left = app.store.delivery_backlog(now, resend).await?;
    if left.due + left.in_flight + left.stuck == 0 {
        return Ok((RunState::Done, None));
    }
    Ok((
        RunState::Incomplete,
        Some(format!(
            "{} deliveries still due, {} in flight, {} stuck (lease expired); run again",
            left.due, left.in_flight, left.stuck
        )),
    ))
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
    let budget = Arc::new(Mutex::new(Budget::new(
        cfg.max_consecutive_failures,
        cfg.max_bounce_percent,
    )));
    // "Send started" marks and accepted messages are written by one task,
    // many per transaction (see `journal`).
    let (journal, recorder) = Journal::spawn(app.clone(), shared_counts.clone());
    // Prepared messages queue for the dispatcher, at most one batch ahead,
    // so rendering the next batch overlaps sending this one.
    let (ready_tx, ready_rx) = tokio::sync::mpsc::channel(batch as usize);
    let dispatcher = tokio::spawn(dispatch(
        app.clone(),
        ready_rx,
        now,
        budget.clone(),
        shared_counts.clone(),
        journal,
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
        .paused()
        .map(str::to_string);
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
