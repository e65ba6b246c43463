//! The settings page's notice for a suppressed address: what happened,
//! since when, and what the reader can do about it.

use super::WebState;
use crate::domain::{Suppression, SuppressionReason};
use serde::Serialize;

/// The notice, as the template shows it.
#[derive(Debug, Serialize)]
pub(super) struct SuppressionNotice {
    /// `hard_bounce`, `soft_bounce_limit`, `complaint`…
    reason: &'static str,
    /// What happened.
    what: String,
    /// What the reader can do.
    next: &'static str,
    /// Whether to offer "Subscribe again" here (the reader's own new
    /// opt-in lifts this suppression and the page has no other button for
    /// it).
    can_resubscribe: bool,
}

const NEW_OPT_IN: &str = "Press “Subscribe again”: we mail you a confirmation link, and your \
     digests start again once you confirm.";

/// The notice for `s`; `unsubscribed` when the page already offers its
/// own "Subscribe again".
pub(super) fn notice(web: &WebState, s: &Suppression, unsubscribed: bool) -> SuppressionNotice {
    let since = s.since.format("%-d %B %Y");
    let cfg = &web.config.bounces;
    let (what, next) = match s.reason {
        SuppressionReason::HardBounce => (
            format!(
                "On {since} the mail server for this address answered that the mailbox does \
                 not exist, so we stopped sending to it."
            ),
            "We cannot mail this address again: mail to dead addresses harms delivery for \
             every reader. To keep reading, subscribe with another address.",
        ),
        SuppressionReason::SoftBounceLimit => (
            format!(
                "Your mailbox turned our digests away {} times within {} days (full, or \
                 unavailable for a while), so on {since} we stopped sending.",
                cfg.soft_bounce_limit, cfg.soft_bounce_window_days
            ),
            "Once your mailbox accepts mail again, press “Subscribe again”: we mail you a \
             confirmation link, and your digests start again once you confirm.",
        ),
        SuppressionReason::Complaint => (
            format!(
                "On {since} a digest to this address was reported as spam, so we \
                 unsubscribed it and stopped all mail."
            ),
            "If that was a mistake, subscribe again: we mail you a confirmation link, and \
             your digests start again once you confirm.",
        ),
        SuppressionReason::Deleted | SuppressionReason::Manual => (
            format!("On {since} this address was removed from the list."),
            NEW_OPT_IN,
        ),
    };
    SuppressionNotice {
        reason: s.reason.as_str(),
        what,
        next,
        can_resubscribe: s.reason.lifted_by_own_opt_in() && !unsubscribed,
    }
}
