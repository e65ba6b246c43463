//! When is a subscriber's digest due? Pure functions of the preferences
//! and `now`; no clock reads.
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

use crate::domain::{Preferences, Timing};
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
    timing_due_on(&prefs.timing(), date)
}

/// [`due_on`] from the timing alone.
pub fn timing_due_on(t: &Timing, date: NaiveDate) -> Option<DateTime<Utc>> {
    t.frequency
        .includes(date.weekday())
        .then(|| resolve_local(t.time_zone, date.and_time(t.send_time)))
}

/// The digest that is due at `now`, if any: due at or before `now` and
/// at most `window` late. Looks at the local dates of today and
/// yesterday, so a late-evening send time missed just before local
/// midnight is still made up within the window.
pub fn due_now(prefs: &Preferences, now: DateTime<Utc>, window: Duration) -> Option<Due> {
    timing_due_now(&prefs.timing(), now, window)
}

/// [`due_now`] from the timing alone.
pub fn timing_due_now(t: &Timing, now: DateTime<Utc>, window: Duration) -> Option<Due> {
    let today = now.with_timezone(&t.time_zone).date_naive();
    let mut best: Option<Due> = None;
    for date in [today.pred_opt()?, today] {
        if let Some(due_at) = timing_due_on(t, date) {
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

/// The first instant strictly after `after` at which a digest becomes
/// due (`None` only for a frequency that never sends).
///
/// Planning stores this per subscriber and reads only the rows whose
/// instant has come, so a tick costs what is due, not what is stored.
/// Between two evaluations at `t1 < t2`, [`due_now`] can only change its
/// answer at such an instant, which is why skipping the rows in between
/// plans exactly what evaluating every subscriber at every tick would.
pub fn next_due_after(t: &Timing, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&t.time_zone).date_naive();
    // Yesterday's local date can still be due after `after` (a send time
    // pushed past midnight UTC by a large offset); a week and a day
    // covers every frequency.
    (-1..=8)
        .filter_map(|d| local.checked_add_signed(Duration::days(d)))
        .filter_map(|date| timing_due_on(t, date))
        .filter(|due| *due > after)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Frequency;
    use chrono::{NaiveTime, Timelike, Weekday};

    fn prefs(tz: &str, time: &str, frequency: Frequency) -> Preferences {
        Preferences {
            frequency,
            ..Preferences::new(
                10,
                NaiveTime::parse_from_str(time, "%H:%M").unwrap(),
                tz.parse().unwrap(),
            )
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

    /// Plans over `ticks` the way the store does: evaluate a subscriber
    /// only once its stored next-due instant has come.
    fn plan_by_next_due(t: &Timing, ticks: &[DateTime<Utc>]) -> Vec<NaiveDate> {
        let mut planned = std::collections::BTreeSet::new();
        let mut next = ticks[0] - Duration::days(30);
        let mut first = true;
        for &now in ticks {
            if first || next <= now {
                if let Some(d) = timing_due_now(t, now, WINDOW) {
                    planned.insert(d.digest_date);
                }
                next = next_due_after(t, now).unwrap();
                assert!(next > now);
                first = false;
            }
        }
        planned.into_iter().collect()
    }

    fn plan_by_scanning(t: &Timing, ticks: &[DateTime<Utc>]) -> Vec<NaiveDate> {
        let planned: std::collections::BTreeSet<_> = ticks
            .iter()
            .filter_map(|&now| timing_due_now(t, now, WINDOW).map(|d| d.digest_date))
            .collect();
        planned.into_iter().collect()
    }

    #[test]
    fn evaluating_only_at_the_next_due_instant_plans_what_scanning_every_tick_plans() {
        let zones = [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Pacific/Kiritimati",
            "Asia/Kathmandu",
        ];
        let times = ["00:00", "00:30", "01:30", "02:30", "08:00", "23:45"];
        let freqs = [
            Frequency::Daily,
            Frequency::Weekdays,
            Frequency::Weekly(Weekday::Sun),
        ];
        // Across both 2026 European DST changes (and Lord Howe's 30-minute
        // ones), every 7 minutes, and with the daemon "down" for 10 hours.
        for (start, end) in [
            ("2026-03-20T00:00:00Z", "2026-04-06T00:00:00Z"),
            ("2026-10-20T00:00:00Z", "2026-11-06T00:00:00Z"),
        ] {
            let ticks: Vec<DateTime<Utc>> = {
                let (mut t, end) = (utc(start), utc(end));
                let mut v = Vec::new();
                while t < end {
                    let down = t.day() == 25 && t.hour() < 10;
                    if !down {
                        v.push(t);
                    }
                    t += Duration::minutes(7);
                }
                v
            };
            for tz in zones {
                for time in times {
                    for f in freqs {
                        let t = prefs(tz, time, f).timing();
                        assert_eq!(
                            plan_by_next_due(&t, &ticks),
                            plan_by_scanning(&t, &ticks),
                            "{tz} {time} {f:?} from {start}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_next_due_instant_is_the_first_send_time_after_now() {
        let p = prefs("Europe/Berlin", "08:00", Frequency::Daily).timing();
        // 08:00 CET is 07:00Z; just after it, tomorrow's is next.
        assert_eq!(
            next_due_after(&p, utc("2026-11-27T06:59:00Z")),
            Some(utc("2026-11-27T07:00:00Z"))
        );
        assert_eq!(
            next_due_after(&p, utc("2026-11-27T07:00:00Z")),
            Some(utc("2026-11-28T07:00:00Z"))
        );
        let weekly = prefs("UTC", "08:00", Frequency::Weekly(Weekday::Wed)).timing();
        // From Wednesday 2026-12-02 after the send time: next Wednesday.
        assert_eq!(
            next_due_after(&weekly, utc("2026-12-02T09:00:00Z")),
            Some(utc("2026-12-09T08:00:00Z"))
        );
        let gap = prefs("Europe/Berlin", "02:30", Frequency::Daily).timing();
        assert_eq!(
            next_due_after(&gap, utc("2026-03-28T12:00:00Z")),
            Some(utc("2026-03-29T01:30:00Z"))
        );
    }
}
