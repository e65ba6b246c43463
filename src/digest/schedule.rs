//! When is a subscriber's digest due? Pure functions of the preferences
//! and `now`; no clock reads (R75).
//!
//! A digest belongs to a *local* date in the subscriber's time zone and is
//! due at their send time on that date. Daylight-saving rules:
//! - a send time inside the spring-forward gap (02:30 on a day that jumps
//!   from 02:00 to 03:00) is due at the first instant after the gap, shifted
//!   by the gap's length (03:30), the same rule as RFC 5545 recurrences;
//! - a send time inside the fall-back repeat (01:30 happening twice) is due
//!   at the first occurrence.
//!
//! Whatever the rules, the delivery table's unique key on
//! (subscriber, local date) makes a second digest for one day impossible.

use crate::domain::Preferences;
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A digest that should be planned now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The subscriber's local date the digest is for.
    pub digest_date: NaiveDate,
    /// The instant it became due.
    pub due_at: DateTime<Utc>,
}

/// The UTC instant of `local` in `tz`, resolving DST gaps and repeats as
/// described in the module docs.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: read the wall time with the offset in force
            // just before the gap, which lands as far past the gap's end
            // as the send time was past its start.
            let before = (1..=26).find_map(|h| {
                tz.from_local_datetime(&(local - Duration::hours(h)))
                    .earliest()
                    .map(|t| fixed_offset_secs(t.offset()))
            });
            let offset = before.unwrap_or(0);
            Utc.from_utc_datetime(&(local - Duration::seconds(offset)))
        }
    }
}

fn fixed_offset_secs(off: &<Tz as TimeZone>::Offset) -> i64 {
    use chrono::Offset;
    off.fix().local_minus_utc() as i64
}

/// When the digest for `date` is due for these preferences (`None` when
/// the frequency skips that day).
pub fn due_on(prefs: &Preferences, date: NaiveDate) -> Option<DateTime<Utc>> {
    prefs
        .frequency
        .includes(date.weekday())
        .then(|| resolve_local(prefs.time_zone, date.and_time(prefs.send_time)))
}

/// The digest that is due at `now`, if any: due at or before `now` and
/// at most `window` late. Looks at the local dates of today and
/// yesterday, so a late-evening send time missed just before local
/// midnight is still made up within the window.
pub fn due_now(prefs: &Preferences, now: DateTime<Utc>, window: Duration) -> Option<Due> {
    let today = now.with_timezone(&prefs.time_zone).date_naive();
    let mut best: Option<Due> = None;
    for date in [today.pred_opt()?, today] {
        if let Some(due_at) = due_on(prefs, date) {
            if due_at <= now && now - due_at <= window {
                // Prefer the most recent day when both qualify.
                best = Some(Due {
                    digest_date: date,
                    due_at,
                });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Frequency;
    use chrono::{NaiveTime, Weekday};

    fn prefs(tz: &str, time: &str, frequency: Frequency) -> Preferences {
        Preferences {
            topics: vec![],
            excluded: vec![],
            authors: vec![],
            categories: vec![],
            digest_size: 10,
            frequency,
            send_time: NaiveTime::parse_from_str(time, "%H:%M").unwrap(),
            time_zone: tz.parse().unwrap(),
            fallback_trending: false,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const WINDOW: Duration = Duration::hours(6);

    #[test]
    fn time_zones_on_both_sides_of_utc_are_due_at_their_local_time() {
        let tokyo = prefs("Asia/Tokyo", "08:00", Frequency::Daily);
        // 08:00 in Tokyo is 23:00 UTC the previous day.
        let due = due_now(&tokyo, utc("2026-06-14T23:00:30Z"), WINDOW).unwrap();
        assert_eq!(due.digest_date.to_string(), "2026-06-15");
        assert_eq!(due.due_at, utc("2026-06-14T23:00:00Z"));
        assert_eq!(due_now(&tokyo, utc("2026-06-14T22:59:00Z"), WINDOW), None);

        let la = prefs("America/Los_Angeles", "08:00", Frequency::Daily);
        let due = due_now(&la, utc("2026-06-15T15:05:00Z"), WINDOW).unwrap();
        assert_eq!(due.digest_date.to_string(), "2026-06-15");
        assert_eq!(due.due_at, utc("2026-06-15T15:00:00Z"));
    }

    #[test]
    fn a_send_time_in_the_spring_forward_gap_is_due_once_after_the_gap() {
        // Berlin, 2026-03-29: 02:00 jumps to 03:00; 02:30 does not exist.
        let p = prefs("Europe/Berlin", "02:30", Frequency::Daily);
        let date = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let due = due_on(&p, date).unwrap();
        // 02:30 at the pre-gap offset (+01:00) is 01:30Z, i.e. 03:30 CEST.
        assert_eq!(due, utc("2026-03-29T01:30:00Z"));
        let mut planned = std::collections::BTreeSet::new();
        let mut t = utc("2026-03-28T20:00:00Z");
        while t < utc("2026-03-30T12:00:00Z") {
            if let Some(d) = due_now(&p, t, WINDOW) {
                planned.insert(d.digest_date);
            }
            t += Duration::minutes(1);
        }
        let dates: Vec<String> = planned.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            dates,
            vec!["2026-03-29", "2026-03-30"],
            "one digest per local day"
        );
    }

    #[test]
    fn a_send_time_in_the_fall_back_repeat_is_due_at_the_first_occurrence() {
        // New York, 2026-11-01: 01:00–02:00 happens twice.
        let p = prefs("America/New_York", "01:30", Frequency::Daily);
        let date = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(due_on(&p, date).unwrap(), utc("2026-11-01T05:30:00Z"));
        // Ticking every minute through the repeat gives one due date.
        let mut planned = std::collections::BTreeSet::new();
        let mut t = utc("2026-11-01T05:00:00Z");
        while t < utc("2026-11-01T08:00:00Z") {
            if let Some(d) = due_now(&p, t, WINDOW) {
                planned.insert(d.digest_date);
            }
            t += Duration::minutes(1);
        }
        assert_eq!(planned.len(), 1);
    }

    #[test]
    fn weekdays_and_weekly_frequencies_skip_other_days() {
        let wd = prefs("UTC", "08:00", Frequency::Weekdays);
        // 2026-11-28 is a Saturday, 2026-11-30 a Monday.
        assert_eq!(due_now(&wd, utc("2026-11-28T08:01:00Z"), WINDOW), None);
        assert!(due_now(&wd, utc("2026-11-30T08:01:00Z"), WINDOW).is_some());
        let weekly = prefs("UTC", "08:00", Frequency::Weekly(Weekday::Wed));
        assert_eq!(due_now(&weekly, utc("2026-11-30T08:01:00Z"), WINDOW), None);
        let due = due_now(&weekly, utc("2026-12-02T08:01:00Z"), WINDOW).unwrap();
        assert_eq!(due.digest_date.weekday(), Weekday::Wed);
    }

    #[test]
    fn a_missed_send_time_is_made_up_only_inside_the_window() {
        let p = prefs("UTC", "08:00", Frequency::Daily);
        assert!(due_now(&p, utc("2026-11-27T13:59:00Z"), WINDOW).is_some());
        assert_eq!(due_now(&p, utc("2026-11-27T14:01:00Z"), WINDOW), None);
        // A 23:30 send time missed across local midnight.
        let late = prefs("UTC", "23:30", Frequency::Daily);
        let due = due_now(&late, utc("2026-11-28T01:00:00Z"), WINDOW).unwrap();
        assert_eq!(due.digest_date.to_string(), "2026-11-27");
    }
}
