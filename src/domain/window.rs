//! What a digest covers: the listing days its candidate papers come from.
//! Pure: the caller passes the local date and the previous digest's window.
//!
//! A digest covers the papers listed since the last day its subscriber's
//! previous digest covered, so a weekly reader, a reader back from a pause
//! or one whose daemon was down never silently misses days. The window
//! reaches back at least as far as the frequency's own period (a weekly
//! digest covers the last 7 days, a weekdays digest on Monday Friday to
//! Monday) and at least `min_days`, and never further than `max_days`
//! (a first digest after a long pause gets the best of the cap, not of a
//! whole year). The previous digest's last day is covered again: papers
//! listed that day after it was sent are not skipped, and the never-repeat
//! rule keeps those it carried out.

use super::Frequency;
use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

/// Listing days a digest's candidates come from, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Window {
    pub since: NaiveDate,
    pub until: NaiveDate,
}

/// Over what span a digest reads: its trending signal (upvotes gained over
/// a day or over the week) and its wording ("today" or "this week").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Span {
    #[default]
    Day,
    Week,
}

impl Span {
    /// "today" or "this week", for subjects, headings and reasons.
    pub fn phrase(self) -> &'static str {
        match self {
            Span::Day => "today",
            Span::Week => "this week",
        }
    }

    /// "in a day" or "this week", after a count of upvotes gained.
    pub fn gained_over(self) -> &'static str {
        match self {
            Span::Day => "in a day",
            Span::Week => "this week",
        }
    }
}

/// The configured bounds of a window, in days back from the digest's date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// Every digest reaches back at least this far (`digest.candidate_days`).
    pub min_days: u32,
    /// No digest reaches back further (`digest.max_window_days`).
    pub max_days: u32,
}

impl Window {
    /// Days from `since` to `until`.
    pub fn days(&self) -> i64 {
        (self.until - self.since).num_days()
    }

    /// A window of a week or more reads as a week.
    pub fn span(&self) -> Span {
        if self.days() >= 7 {
            Span::Week
        } else {
            Span::Day
        }
    }

    /// Whether a paper listed on `day` falls inside.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.since <= day && day <= self.until
    }

    /// "27 November – 4 December 2026", for messages that say which
    /// listing days were searched.
    pub fn describe(&self) -> String {
        let (s, u) = (self.since, self.until);
        if s == u {
            u.format("%-d %B %Y").to_string()
        } else if s.year() == u.year() {
            format!("{} – {}", s.format("%-d %B"), u.format("%-d %B %Y"))
        } else {
            format!("{} – {}", s.format("%-d %B %Y"), u.format("%-d %B %Y"))
        }
    }
}

/// Days from the previous day `frequency` sends on to `today` (1 for a
/// daily digest, 3 for a weekdays digest on Monday, 7 for a weekly one).
pub fn period_days(frequency: Frequency, today: NaiveDate) -> u32 {
    (1..=7u32)
        .find(|&k| frequency.includes((today - Duration::days(k as i64)).weekday()))
        .unwrap_or(7)
}

/// The first day on or after `today` that `frequency` sends on: the date
/// of a subscriber's next digest.
pub fn next_digest_day(frequency: Frequency, today: NaiveDate) -> NaiveDate {
    (0..7)
        .map(|k| today + Duration::days(k))
        .find(|d| frequency.includes(d.weekday()))
        .unwrap_or(today)
}

/// The window of a digest for the local date `today`: from the last day
/// the previous digest covered (`last_covered`; `None` for a first
/// digest), reaching back at least the frequency's period and
/// `limits.min_days`, at most `limits.max_days`, up to `today`.
pub fn window(
    frequency: Frequency,
    last_covered: Option<NaiveDate>,
    today: NaiveDate,
    limits: WindowLimits,
) -> Window {
    let lookback = period_days(frequency, today).max(limits.min_days);
    let cap = limits.max_days.max(lookback);
    let floor = today - Duration::days(lookback as i64);
    let since = last_covered
        .map_or(floor, |d| d.min(floor))
        .max(today - Duration::days(cap as i64));
    Window {
        since,
        until: today,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    const LIMITS: WindowLimits = WindowLimits {
        min_days: 3,
        max_days: 14,
    };

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    // 2026-11-30 is a Monday.

    #[test]
    fn a_daily_digest_covers_the_candidate_days_as_before() {
        let w = window(
            Frequency::Daily,
            Some(d("2026-11-29")),
            d("2026-11-30"),
            LIMITS,
        );
        assert_eq!((w.since, w.until), (d("2026-11-27"), d("2026-11-30")));
        assert_eq!(w.span(), Span::Day);
        assert_eq!(window(Frequency::Daily, None, d("2026-11-30"), LIMITS), w);
    }

    #[test]
    fn a_weekly_digest_covers_the_last_seven_days() {
        let monday = Frequency::Weekly(Weekday::Mon);
        let w = window(monday, Some(d("2026-11-23")), d("2026-11-30"), LIMITS);
        assert_eq!((w.since, w.until), (d("2026-11-23"), d("2026-11-30")));
        assert_eq!(w.span(), Span::Week);
        assert_eq!(window(monday, None, d("2026-11-30"), LIMITS), w);
    }

    #[test]
    fn a_weekdays_digest_on_monday_covers_friday_to_monday() {
        let w = window(
            Frequency::Weekdays,
            Some(d("2026-11-27")),
            d("2026-11-30"),
            LIMITS,
        );
        assert_eq!(w.since, d("2026-11-27"));
        assert_eq!(w.since.weekday(), Weekday::Fri);
        assert_eq!(period_days(Frequency::Weekdays, d("2026-11-30")), 3);
        assert_eq!(period_days(Frequency::Weekdays, d("2026-12-01")), 1);
    }

    #[test]
    fn a_pause_reaches_back_to_the_last_covered_day_but_never_past_the_cap() {
        let w = window(
            Frequency::Daily,
            Some(d("2026-11-20")),
            d("2026-11-30"),
            LIMITS,
        );
        assert_eq!(w.since, d("2026-11-20"));
        let w = window(
            Frequency::Daily,
            Some(d("2026-11-09")),
            d("2026-11-30"),
            LIMITS,
        );
        assert_eq!(w.since, d("2026-11-16"));
        assert_eq!(w.days(), 14);
    }

    #[test]
    fn a_cap_below_the_period_still_covers_the_period() {
        let tight = WindowLimits {
            min_days: 1,
            max_days: 2,
        };
        let w = window(
            Frequency::Weekly(Weekday::Mon),
            None,
            d("2026-11-30"),
            tight,
        );
        assert_eq!(w.days(), 7);
    }

    #[test]
    fn the_next_digest_day_is_the_next_day_the_frequency_sends_on() {
        // 2026-12-02 is a Wednesday, 2026-11-28 a Saturday.
        let monday = Frequency::Weekly(Weekday::Mon);
        assert_eq!(next_digest_day(monday, d("2026-12-02")), d("2026-12-07"));
        assert_eq!(next_digest_day(monday, d("2026-11-30")), d("2026-11-30"));
        assert_eq!(
            next_digest_day(Frequency::Weekdays, d("2026-11-28")),
            d("2026-11-30")
        );
        assert_eq!(
            next_digest_day(Frequency::Daily, d("2026-11-28")),
            d("2026-11-28")
        );
    }

    #[test]
    fn windows_describe_their_days() {
        let w = Window {
            since: d("2026-11-27"),
            until: d("2026-12-04"),
        };
        assert_eq!(w.describe(), "27 November – 4 December 2026");
        assert!(w.contains(d("2026-11-27")) && w.contains(d("2026-12-04")));
        assert!(!w.contains(d("2026-11-26")));
    }
}
