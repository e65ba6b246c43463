//! Planning: which active subscribers are due now, as idempotent delivery
//! rows (R48, R59), and the dry run that shows what a run would send.

use super::{schedule, DryRunEntry, Picker, RunReport, RunState};
use crate::app::App;
use crate::domain::SubscriberId;
use crate::store::deliveries::RunCounts;
use chrono::{DateTime, Duration, Utc};

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
            let mut fb = app.store.feedback_with_papers(&[s.id]).await?;
            let fb = crate::rank::ReaderFeedback::from_entries(
                fb.remove(&s.id).unwrap_or_default(),
                now,
            );
            let picks = picker.pick_with_feedback(&s.preferences, &sent, &fb);
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
