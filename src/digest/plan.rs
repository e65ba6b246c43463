//! Planning: which active subscribers are due now, as idempotent delivery
//! rows, and the dry run that shows what a run would send.
//! Both read only the subscribers whose stored next due instant has come,
//! so their cost follows who is due, not how many are subscribed.

use super::{schedule, DryRunEntry, Picker, RunReport, RunState};
use crate::app::App;
use crate::config::UnknownPolicy;
use crate::domain::{SubscriberId, Timing};
use crate::store::runs::RunCounts;
use crate::store::schedule::Evaluation;
use chrono::{DateTime, Utc};

/// Subscribers evaluated per planning transaction.
const PLAN_PAGE: u32 = 1000;

/// Inserts a delivery for each active subscriber due at `now`,
/// reading only the subscribers whose stored next due instant has come
/// (see `store::schedule`); each is evaluated with the pure schedule and
/// its next instant stored. Returns how many rows were new.
pub async fn plan(app: &App, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let window = app.config.digest.catch_up;
    if schedule_is_stale(app, now).await? {
        let n = app.store.reset_schedule(TZDB, now).await?;
        tracing::info!(
            subscribers = n,
            tzdb = TZDB,
            "re-evaluating every subscriber's schedule"
        );
    }
    let evaluate = move |t: &Timing| Evaluation {
        due: schedule::timing_due_now(t, now, window).map(|d| (d.digest_date, d.due_at)),
        next_due: schedule::next_due_after(t, now),
    };
    // Each digest covers the listing days since its reader's last one.
    let limits = app.config.window_limits();
    let window_of = move |t: &Timing, date, last_covered| {
        crate::domain::window(t.frequency, last_covered, date, limits)
    };
    let mut planned = 0;
    loop {
        let page = app
            .store
            .plan_due_page(now, PLAN_PAGE, TZDB, &evaluate, &window_of)
            .await?;
        planned += page.planned;
        if page.evaluated < PLAN_PAGE as usize {
            return Ok(planned);
        }
    }
}

/// The time-zone database the schedule is computed with.
const TZDB: &str = chrono_tz::IANA_TZDB_VERSION;

/// Whether the stored instants cannot be trusted for `now`: computed with
/// another time-zone database (a zone's rules may have moved), or last
/// evaluated after `now` (a run for an earlier instant, such as
/// `digest --now` in the past, needs that instant's answers).
async fn schedule_is_stale(app: &App, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let marks = app.store.schedule_marks().await?;
    Ok(marks.tzdb_version.as_deref().is_some_and(|v| v != TZDB)
        || marks.evaluated_at.is_some_and(|t| now < t))
}

/// Whether a run at `now` has anything to do (someone to evaluate, a
/// delivery to claim, a lease to recover). The scheduler asks before each
/// tick, so an idle tick is a few index probes: no candidates loaded, no
/// index built, no run recorded.
pub async fn work_due(app: &App, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let resend = app.config.digest.unknown_policy == UnknownPolicy::Resend;
    Ok(schedule_is_stale(app, now).await? || app.store.digest_work_due(now, resend).await?)
}

/// What a run would do, without writing or sending anything.
pub async fn dry_run(
    app: &App,
    picker: &dyn Picker,
    now: DateTime<Utc>,
) -> anyhow::Result<RunReport> {
    let window = app.config.digest.catch_up;
    // Stale stored instants say nothing about `now`: look at everyone.
    let everyone = schedule_is_stale(app, now).await?;
    let mut after = SubscriberId(0);
    let mut entries = Vec::new();
    let mut counts = RunCounts::default();
    loop {
        let page = if everyone {
            app.store.active_subscribers_page(after, PLAN_PAGE).await?
        } else {
            app.store
                .due_subscribers_page(now, after, PLAN_PAGE)
                .await?
        };
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
            let covered = app.store.last_covered_of(&[s.id]).await?;
            let covers = crate::digest::windows::digest_window(
                app,
                &s.preferences,
                covered.get(&s.id).copied(),
                due.digest_date,
            );
            crate::digest::windows::ensure_loaded(app, picker, &[covers], now).await?;
            let sent = app.store.sent_paper_ids(s.id).await?;
            let fb = crate::digest::reader_feedback::load_one(app, s.id, now).await?;
            let picks = picker.pick_with_feedback(&covers, &s.preferences, &sent, &fb);
            if picks.is_empty() {
                counts.skipped += 1;
            }
            entries.push(DryRunEntry {
                subscriber: s.id.0,
                email: s.email.as_str().to_string(),
                digest_date: due.digest_date,
                window: covers,
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
