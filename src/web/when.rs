//! When the reader's next digest comes, as the confirmed page and the
//! settings page's notices say it: "Friday 12 December, 07:30 New York
//! time", in the reader's own zone. The page carries the instant too, and
//! `static/when.js` adds the browser's time when its zone differs ("13:30
//! your browser's time"); without script the reader's zone alone shows.
//!
//! The same rules as the planner (`digest::schedule`): a send time passed
//! today but within `digest.catch_up_hours`, with no digest for today yet,
//! means the digest goes out at the next scheduler tick.

use super::zones::city;
use super::WebError;
use crate::app::App;
use crate::digest::schedule;
use crate::domain::{Preferences, SubscriberState};
use crate::store::subscribers::Subscriber;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The next digest as a page shows it.
#[derive(Debug, Serialize)]
pub(super) struct NextDigestView {
    /// "Friday 12 December, 07:30 New York time", or "within a few
    /// minutes" when it is due now.
    label: String,
    /// The instant (RFC 3339, UTC) for the browser's time; absent when due
    /// now.
    instant: Option<String>,
    /// The reader's zone (IANA name): the browser's time is added only
    /// where the browser's zone differs.
    zone: String,
}

/// When `sub`'s next digest is due, if it is active and has something to
/// look for (paused, pending and unsubscribed readers get none).
pub(super) async fn next_digest(
    app: &App,
    sub: &Subscriber,
) -> Result<Option<NextDigestView>, WebError> {
    let prefs = &sub.preferences;
    if sub.state != SubscriberState::Active || !prefs.can_send() {
        return Ok(None);
    }
    let now = app.now();
    let catch_up = app.config.digest.catch_up;
    if let Some(due) = schedule::due_now(prefs, now, catch_up) {
        if !app.store.delivery_exists(sub.id, due.digest_date).await? {
            return Ok(Some(NextDigestView {
                label: "within a few minutes".into(),
                instant: None,
                zone: prefs.time_zone.name().to_string(),
            }));
        }
    }
    Ok(schedule::next_due_after(&prefs.timing(), now).map(|at| view(prefs, at, now)))
}

fn view(prefs: &Preferences, at: DateTime<Utc>, now: DateTime<Utc>) -> NextDigestView {
    NextDigestView {
        label: local_label(prefs.time_zone, at, now),
        instant: Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        zone: prefs.time_zone.name().to_string(),
    }
}

/// "Friday 12 December, 07:30 New York time" ("… 2027, …" in another
/// year; "07:30 UTC" for UTC).
pub(super) fn local_label(tz: Tz, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    let year = if local.year() == now.with_timezone(&tz).year() {
        ""
    } else {
        " %Y"
    };
    let day = local.format(&format!("%A %-d %B{year}, %H:%M")).to_string();
    match tz {
        Tz::UTC | Tz::Etc__UTC => format!("{day} UTC"),
        _ => format!("{day} {} time", city(tz.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn the_next_digest_reads_in_the_readers_zone() {
        let now = at("2026-12-10T09:00:00Z");
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            local_label(ny, at("2026-12-12T12:30:00Z"), now),
            "Saturday 12 December, 07:30 New York time"
        );
        assert_eq!(
            local_label(Tz::UTC, at("2027-01-01T08:00:00Z"), now),
            "Friday 1 January 2027, 08:00 UTC"
        );
    }
}
