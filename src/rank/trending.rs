//! How much a paper is trending as of `now`, from its upvotes, how fast
//! they grew across the stored observations, and how recent it is, over
//! a [`Span`]: a daily digest ranks by today's growth, a weekly one by
//! the upvotes gathered over the week (and ages papers by the week).

use crate::domain::{Candidate, Span};
use chrono::{DateTime, Duration, NaiveTime, Utc};

/// A paper's trending signal, computed once per run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trending {
    /// In `[0, 1]`; higher is hotter.
    pub score: f64,
    /// Upvotes at the latest observation not after `now`.
    pub upvotes: Option<i64>,
    /// Upvotes gained over about the span (a day or the week) of
    /// observations, when the history covers more than one.
    pub gained: Option<i64>,
}

/// Upvotes at which the level component saturates.
const UPVOTES_SATURATION: f64 = 200.0;
/// Upvotes per day at which the velocity component saturates.
const VELOCITY_SATURATION: f64 = 100.0;
/// Age in days at which the recency component halves, per span: within a
/// week's digest a paper from Monday is not stale by Friday.
fn recency_half_life_days(span: Span) -> f64 {
    match span {
        Span::Day => 2.0,
        Span::Week => 7.0,
    }
}

/// Growth is measured against the newest observation at least this much
/// older than the latest one: about a day, or about the week.
fn growth_reference(span: Span) -> Duration {
    match span {
        Span::Day => Duration::hours(20),
        Span::Week => Duration::hours(7 * 24 - 4),
    }
}

/// Scores one candidate over `span`. Observations after `now` are
/// ignored, so a rerun of a past day sees what that day saw.
pub fn trending(c: &Candidate, now: DateTime<Utc>, span: Span) -> Trending {
    let seen: Vec<_> = c.history.iter().filter(|o| o.at <= now).collect();
    let latest = seen.iter().max_by_key(|o| o.at).copied();
    let upvotes = latest.map(|o| o.upvotes).or(c.paper.upvotes);
    let listed = c
        .paper
        .listed_on
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
        .or(c.paper.published);
    let age_days = listed.map(|t| ((now - t).num_seconds() as f64 / 86_400.0).max(0.0));

    // Growth: between the latest observation and the newest one at least
    // about a span older (else the oldest), as upvotes per day.
    let mut gained = None;
    let mut per_day = None;
    if let Some(latest) = latest {
        let cutoff = latest.at - growth_reference(span);
        let reference = seen
            .iter()
            .filter(|o| o.at <= cutoff)
            .max_by_key(|o| o.at)
            .or_else(|| {
                seen.iter()
                    .filter(|o| o.at < latest.at)
                    .min_by_key(|o| o.at)
            });
        if let Some(r) = reference {
            let delta = (latest.upvotes - r.upvotes).max(0);
            let days = ((latest.at - r.at).num_seconds() as f64 / 86_400.0).max(0.25);
            per_day = Some(delta as f64 / days);
            gained = Some(delta);
        }
    }
    // One observation only: average since listing, at least a day.
    let per_day = per_day.unwrap_or_else(|| {
        let u = upvotes.unwrap_or(0).max(0) as f64;
        u / age_days.unwrap_or(1.0).max(1.0)
    });

    let u = upvotes.unwrap_or(0).max(0) as f64;
    let level = (u.ln_1p() / UPVOTES_SATURATION.ln_1p()).min(1.0);
    let velocity = (per_day.ln_1p() / VELOCITY_SATURATION.ln_1p()).min(1.0);
    let recency = match age_days {
        Some(a) => 0.5f64.powf(a / recency_half_life_days(span)),
        None => 0.25,
    };
    Trending {
        score: 0.4 * level + 0.4 * velocity + 0.2 * recency,
        upvotes,
        gained,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Paper, PaperId, UpvoteObservation};
    use chrono::TimeZone;

    fn candidate(history: &[(i64, i64)], listed_days_ago: i64, now: DateTime<Utc>) -> Candidate {
        let mut p = Paper::new(PaperId::external("t", "1"), "t", "a");
        p.listed_on = Some((now - Duration::days(listed_days_ago)).date_naive());
        p.upvotes = history.last().map(|h| h.1);
        Candidate {
            paper: p,
            history: history
                .iter()
                .map(|&(hours_ago, upvotes)| UpvoteObservation {
                    at: now - Duration::hours(hours_ago),
                    upvotes,
                })
                .collect(),
        }
    }

    fn trending_day(c: &Candidate, now: DateTime<Utc>) -> Trending {
        trending(c, now, Span::Day)
    }

    #[test]
    fn growing_upvotes_trend_more_than_the_same_count_reached_slowly() {
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let fast = trending_day(&candidate(&[(48, 5), (24, 10), (0, 60)], 2, now), now);
        let slow = trending_day(&candidate(&[(48, 50), (24, 58), (0, 60)], 2, now), now);
        assert!(fast.score > slow.score, "{fast:?} {slow:?}");
        assert_eq!(fast.gained, Some(50));
        assert_eq!(fast.upvotes, Some(60));
    }

    #[test]
    fn observations_after_now_are_ignored() {
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let c = candidate(&[(24, 3), (0, 4), (-24, 500)], 1, now);
        let t = trending_day(&c, now);
        assert_eq!(t.upvotes, Some(4));
        assert_eq!(t.gained, Some(1));
    }

    #[test]
    fn older_papers_trend_less_at_equal_votes() {
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let fresh = trending_day(&candidate(&[(0, 20)], 0, now), now);
        let old = trending_day(&candidate(&[(0, 20)], 6, now), now);
        assert!(fresh.score > old.score);
    }

    #[test]
    fn a_weeks_trending_counts_the_upvotes_gained_over_the_week() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
        // Hot early in the week, quiet for the last day.
        let early = candidate(&[(160, 0), (120, 150), (24, 180), (0, 180)], 6, now);
        // Quiet all week, a burst today.
        let late = candidate(&[(160, 0), (24, 10), (0, 60)], 6, now);
        assert_eq!(trending(&early, now, Span::Day).gained, Some(0));
        assert_eq!(trending(&early, now, Span::Week).gained, Some(180));
        assert_eq!(trending(&late, now, Span::Week).gained, Some(60));
        assert!(
            trending(&late, now, Span::Day).score > trending(&early, now, Span::Day).score,
            "today's burst leads the day"
        );
        assert!(
            trending(&early, now, Span::Week).score > trending(&late, now, Span::Week).score,
            "the week's hot paper leads the week"
        );
    }

    #[test]
    fn a_week_old_paper_keeps_more_recency_in_a_weekly_ranking() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
        let c = candidate(&[(0, 20)], 6, now);
        let fresh = candidate(&[(0, 20)], 0, now);
        let gap = |span| trending(&fresh, now, span).score - trending(&c, now, span).score;
        assert!(gap(Span::Week) < gap(Span::Day));
    }
}
