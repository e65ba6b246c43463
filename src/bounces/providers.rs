//! The bounce and complaint notifications of email providers, in their
//! documented JSON shapes, as [`BounceEvent`] events. Pure: JSON in, events
//! out. Events that are neither bounces nor complaints (deliveries,
//! opens, clicks) give no event; a payload that is not the provider's
//! shape is an error.
//!
//! - Amazon SES: the notification inside an SNS message
//!   (`notificationType` or, with event publishing, `eventType`:
//!   `Bounce` / `Complaint`).
//! - Postmark: the bounce and spam-complaint webhooks (`RecordType`).
//!   Its `MessageID` is Postmark's own; what ties an event to a digest is
//!   the bounce message itself, in `Content` when the webhook is set to
//!   include it (its quoted Message-ID and Return-Path).
//!
//! Every provider names the recipient; that alone never makes an event
//! count (see [`super::record`]): the Message-ID or the VERP envelope
//! sender the payload quotes must be paperboy's.
//! - SendGrid: the event webhook, an array of events (`bounce`,
//!   `blocked`, `deferred`, `dropped`, `spamreport`).
//! - Mailgun: the webhook `{signature, event-data}` (`failed` with
//!   `severity`, `complained`).

use super::{status_code, BounceEvent, BounceKind, ReportSource};
use serde_json::Value;

/// A payload that is not what the provider documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("body is not JSON: {0}")]
    Json(String),
    #[error("not a {provider} notification: {what}")]
    Shape {
        provider: &'static str,
        what: String,
    },
}

fn shape(provider: &'static str, what: impl Into<String>) -> ProviderError {
    ProviderError::Shape {
        provider,
        what: what.into(),
    }
}

pub fn json(body: &[u8]) -> Result<Value, ProviderError> {
    serde_json::from_slice(body).map_err(|e| ProviderError::Json(e.to_string()))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `<id@host>` whether or not the provider kept the angle brackets.
fn bracketed(id: &str) -> String {
    let id = id.trim();
    if id.starts_with('<') {
        id.to_string()
    } else {
        format!("<{id}>")
    }
}

const SES: &str = "Amazon SES";

/// An Amazon SES notification (the `Message` of an SNS notification).
pub fn ses(message: &Value) -> Result<Vec<BounceEvent>, ProviderError> {
    let ty = str_at(message, "notificationType")
        .or_else(|| str_at(message, "eventType"))
        .ok_or_else(|| shape(SES, "no notificationType or eventType"))?;
    let mail = SesMail::of(
        message
            .get("mail")
            .ok_or_else(|| shape(SES, "no mail object"))?,
    );
    match ty {
        "Bounce" => ses_bounce(
            message
                .get("bounce")
                .ok_or_else(|| shape(SES, "Bounce without a bounce object"))?,
            &mail,
        ),
        "Complaint" => ses_complaint(
            message
                .get("complaint")
                .ok_or_else(|| shape(SES, "Complaint without a complaint object"))?,
            &mail,
        ),
        _ => Ok(Vec::new()),
    }
}

/// What an SES notification's `mail` object says of the original
/// message: what ties each of its events to a digest.
struct SesMail {
    /// The envelope sender (`source`), maybe paperboy's VERP address.
    hints: Vec<String>,
    message_id: Option<String>,
}

impl SesMail {
    fn of(mail: &Value) -> SesMail {
        let hints = str_at(mail, "source")
            .map(str::to_string)
            .into_iter()
            .collect();
        let message_id = mail
            .pointer("/commonHeaders/messageId")
            .and_then(Value::as_str)
            .map(bracketed)
            .or_else(|| {
                mail.get("headers")?.as_array()?.iter().find_map(|h| {
                    str_at(h, "name")
                        .filter(|n| n.eq_ignore_ascii_case("message-id"))
                        .and(str_at(h, "value"))
                        .map(bracketed)
                })
            });
        SesMail { hints, message_id }
    }

    /// One recipient's event; its key is the feedback id and the address.
    fn event(
        &self,
        kind: BounceKind,
        feedback_id: &str,
        recipient: &Value,
        status: Option<String>,
        detail: String,
    ) -> BounceEvent {
        let who = str_at(recipient, "emailAddress");
        BounceEvent {
            kind,
            source: ReportSource::Ses,
            event_key: format!("{feedback_id}/{}", who.unwrap_or("")),
            recipient: who.map(str::to_string),
            envelope_hints: self.hints.clone(),
            message_id: self.message_id.clone(),
            status,
            detail,
        }
    }
}

/// The events of an SES `bounce` object: one per bounced recipient.
fn ses_bounce(b: &Value, mail: &SesMail) -> Result<Vec<BounceEvent>, ProviderError> {
    let kind = match str_at(b, "bounceType") {
        Some("Permanent") => BounceKind::HardBounce,
        Some("Transient") | Some("Undetermined") => BounceKind::SoftBounce,
        other => return Err(shape(SES, format!("unknown bounceType {other:?}"))),
    };
    let id = str_at(b, "feedbackId").ok_or_else(|| shape(SES, "bounce without feedbackId"))?;
    let recipients = b
        .get("bouncedRecipients")
        .and_then(Value::as_array)
        .ok_or_else(|| shape(SES, "bounce without bouncedRecipients"))?;
    Ok(recipients
        .iter()
        .map(|r| {
            let diag = str_at(r, "diagnosticCode").unwrap_or("");
            let status = str_at(r, "status")
                .and_then(status_code)
                .or_else(|| status_code(diag));
            let detail = format!(
                "{} {}: {diag}",
                str_at(b, "bounceType").unwrap_or(""),
                str_at(b, "bounceSubType").unwrap_or("")
            );
            mail.event(kind, id, r, status, detail)
        })
        .collect())
}

/// The events of an SES `complaint` object: one per complaining
/// recipient; none when the feedback says "not spam".
fn ses_complaint(c: &Value, mail: &SesMail) -> Result<Vec<BounceEvent>, ProviderError> {
    if str_at(c, "complaintFeedbackType") == Some("not-spam") {
        return Ok(Vec::new());
    }
    let id = str_at(c, "feedbackId").ok_or_else(|| shape(SES, "complaint without feedbackId"))?;
    let recipients = c
        .get("complainedRecipients")
        .and_then(Value::as_array)
        .ok_or_else(|| shape(SES, "complaint without complainedRecipients"))?;
    let detail = format!(
        "complaint: {}",
        str_at(c, "complaintFeedbackType").unwrap_or("unspecified")
    );
    Ok(recipients
        .iter()
        .map(|r| mail.event(BounceKind::Complaint, id, r, None, detail.clone()))
        .collect())
}

/// A Postmark bounce or spam-complaint webhook.
pub fn postmark(v: &Value) -> Result<Vec<BounceEvent>, ProviderError> {
    const P: &str = "Postmark";
    let record = str_at(v, "RecordType").unwrap_or("Bounce");
    if !matches!(record, "Bounce" | "SpamComplaint") {
        return Ok(Vec::new());
    }
    let ty = str_at(v, "Type").ok_or_else(|| shape(P, "no Type"))?;
    let kind = match ty {
        "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated" => BounceKind::HardBounce,
        "SoftBounce" | "Transient" | "DnsError" | "Blocked" => BounceKind::SoftBounce,
        "SpamComplaint" | "SpamNotification" => BounceKind::Complaint,
        // Auto-responders, subscribe requests, challenge mails…: no bounce.
        _ => return Ok(Vec::new()),
    };
    let id = v
        .get("ID")
        .filter(|i| i.is_u64() || i.is_i64() || i.is_string())
        .map(|i| i.to_string().trim_matches('"').to_string())
        .ok_or_else(|| shape(P, "no ID"))?;
    let email = str_at(v, "Email").ok_or_else(|| shape(P, "no Email"))?;
    let details = str_at(v, "Details").unwrap_or("");
    // The returned message, when Postmark includes it: what it quotes of
    // the digest.
    let quoted = str_at(v, "Content").and_then(|c| super::report::parse(c.as_bytes()).ok());
    Ok(vec![BounceEvent {
        kind,
        source: ReportSource::Postmark,
        event_key: id,
        recipient: Some(email.to_string()),
        envelope_hints: quoted
            .as_ref()
            .map(|q| q.envelope_hints.clone())
            .unwrap_or_default(),
        message_id: quoted.and_then(|q| q.original_message_id),
        status: status_code(details),
        detail: format!("{ty}: {}", str_at(v, "Description").unwrap_or(details)),
    }])
}

/// A SendGrid event webhook post (an array of events).
pub fn sendgrid(v: &Value) -> Result<Vec<BounceEvent>, ProviderError> {
    const P: &str = "SendGrid";
    let events = v
        .as_array()
        .ok_or_else(|| shape(P, "the body must be a JSON array of events"))?;
    let mut out = Vec::new();
    for e in events {
        let ev = str_at(e, "event").ok_or_else(|| shape(P, "an event without \"event\""))?;
        let reason = str_at(e, "reason")
            .or_else(|| str_at(e, "response"))
            .unwrap_or("");
        let kind = match (ev, str_at(e, "type")) {
            ("bounce", Some("blocked")) => BounceKind::SoftBounce,
            ("bounce", _) => BounceKind::HardBounce,
            ("blocked", _) | ("deferred", _) => BounceKind::SoftBounce,
            ("dropped", _) if reason.contains("Bounced Address") || reason.contains("Invalid") => {
                BounceKind::HardBounce
            }
            ("spamreport", _) => BounceKind::Complaint,
            _ => continue,
        };
        let key =
            str_at(e, "sg_event_id").ok_or_else(|| shape(P, "an event without sg_event_id"))?;
        let email = str_at(e, "email").ok_or_else(|| shape(P, "an event without email"))?;
        out.push(BounceEvent {
            kind,
            source: ReportSource::Sendgrid,
            event_key: key.to_string(),
            recipient: Some(email.to_string()),
            envelope_hints: Vec::new(),
            message_id: str_at(e, "smtp-id").map(bracketed),
            status: str_at(e, "status")
                .and_then(status_code)
                .or_else(|| status_code(reason)),
            detail: format!("{ev}: {reason}"),
        });
    }
    Ok(out)
}

/// A Mailgun webhook (`{"signature": …, "event-data": …}`).
pub fn mailgun(v: &Value) -> Result<Vec<BounceEvent>, ProviderError> {
    const P: &str = "Mailgun";
    let d = v
        .get("event-data")
        .ok_or_else(|| shape(P, "no event-data"))?;
    let ev = str_at(d, "event").ok_or_else(|| shape(P, "no event"))?;
    let kind = match (ev, str_at(d, "severity")) {
        ("failed", Some("permanent")) => BounceKind::HardBounce,
        ("failed", _) => BounceKind::SoftBounce,
        ("complained", _) => BounceKind::Complaint,
        _ => return Ok(Vec::new()),
    };
    let id = str_at(d, "id").ok_or_else(|| shape(P, "no event-data.id"))?;
    let recipient = str_at(d, "recipient").ok_or_else(|| shape(P, "no recipient"))?;
    let ds = d.get("delivery-status").cloned().unwrap_or(Value::Null);
    let text = [str_at(&ds, "message"), str_at(&ds, "description")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let status = str_at(&ds, "enhanced-code")
        .and_then(status_code)
        .or_else(|| status_code(&text))
        .or_else(|| {
            ds.get("code")
                .and_then(Value::as_u64)
                .filter(|c| (400..600).contains(c))
                .map(|c| format!("{}.0.0", c / 100))
        });
    Ok(vec![BounceEvent {
        kind,
        source: ReportSource::Mailgun,
        event_key: id.to_string(),
        recipient: Some(recipient.to_string()),
        envelope_hints: d
            .pointer("/envelope/sender")
            .and_then(Value::as_str)
            .map(str::to_string)
            .into_iter()
            .collect(),
        message_id: d
            .pointer("/message/headers/message-id")
            .and_then(Value::as_str)
            .map(bracketed),
        status,
        detail: format!("{ev}: {} {text}", str_at(d, "reason").unwrap_or("")),
    }])
}

/// Mailgun's signature: hex HMAC-SHA256 of `timestamp ‖ token` under the
/// webhook signing key, compared in constant time.
pub fn mailgun_signature_ok(v: &Value, signing_key: &str) -> bool {
    use hmac::{Hmac, Mac};
    use subtle::ConstantTimeEq;
    let sig = v.get("signature");
    let field = |k| sig.and_then(|s| str_at(s, k));
    let (Some(ts), Some(token), Some(given)) =
        (field("timestamp"), field("token"), field("signature"))
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(signing_key.as_bytes()) else {
        return false;
    };
    mac.update(ts.as_bytes());
    mac.update(token.as_bytes());
    let expected = data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes());
    let given = given.to_ascii_lowercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        json(&std::fs::read(&path).unwrap()).unwrap()
    }

    /// The SES notification inside a recorded SNS envelope.
    fn ses_message(name: &str) -> Value {
        let sns = fixture(name);
        serde_json::from_str(sns["Message"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn ses_bounces_and_complaints_are_classified() {
        let hard = ses(&ses_message("ses-bounce-permanent.json")).unwrap();
        assert_eq!(hard.len(), 1);
        assert_eq!(hard[0].kind, BounceKind::HardBounce);
        assert_eq!(hard[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(hard[0].recipient.as_deref(), Some("gone@example.net"));
        assert!(hard[0].message_id.as_deref().unwrap().starts_with('<'));
        let soft = ses(&ses_message("ses-bounce-transient.json")).unwrap();
        assert_eq!(soft[0].kind, BounceKind::SoftBounce);
        let complaint = ses(&ses_message("ses-complaint.json")).unwrap();
        assert_eq!(complaint[0].kind, BounceKind::Complaint);
        let delivery = serde_json::json!({"notificationType": "Delivery", "mail": {}});
        assert!(ses(&delivery).unwrap().is_empty());
        assert!(ses(&serde_json::json!({"mail": {}})).is_err());
    }

    #[test]
    fn postmark_bounce_types_map_to_kinds() {
        let hard = postmark(&fixture("postmark-bounce-hard.json")).unwrap();
        assert_eq!(hard[0].kind, BounceKind::HardBounce);
        assert_eq!(hard[0].recipient.as_deref(), Some("gone@example.net"));
        let spam = postmark(&fixture("postmark-spam-complaint.json")).unwrap();
        assert_eq!(spam[0].kind, BounceKind::Complaint);
        let auto = serde_json::json!({"RecordType": "Bounce", "Type": "AutoResponder", "ID": 1, "Email": "a@b.c"});
        assert!(postmark(&auto).unwrap().is_empty());
        assert!(postmark(&serde_json::json!({"Type": "HardBounce"})).is_err());
    }

    #[test]
    fn a_postmark_event_names_the_digest_only_through_the_bounce_it_carries() {
        let bare = postmark(&fixture("postmark-bounce-hard.json")).unwrap();
        assert_eq!(bare[0].message_id, None, "Postmark's MessageID is its own");
        assert!(bare[0].envelope_hints.is_empty());
        let mut v = fixture("postmark-bounce-hard.json");
        let dsn = std::fs::read_to_string(format!(
            "{}/tests/fixtures/mailbox/postfix-hard-5.1.1.eml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        v["Content"] = Value::String(dsn);
        let with = postmark(&v).unwrap();
        assert_eq!(
            with[0].message_id.as_deref(),
            Some("<abcdefghijklmnopqrstuvwxyz.20261201@paperboy.example.org>")
        );
        assert!(with[0]
            .envelope_hints
            .iter()
            .any(|h| h == "bounces+DELIVERY.MAC@paperboy.example.org"));
    }

    #[test]
    fn sendgrid_events_keep_only_bounces_and_spam_reports() {
        let events = sendgrid(&fixture("sendgrid-events.json")).unwrap();
        let kinds: Vec<BounceKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                BounceKind::HardBounce,
                BounceKind::SoftBounce,
                BounceKind::Complaint
            ]
        );
        assert!(events[0].message_id.is_some());
        assert!(sendgrid(&serde_json::json!({"event": "bounce"})).is_err());
    }

    #[test]
    fn mailgun_failures_follow_their_severity() {
        let hard = mailgun(&fixture("mailgun-failed-permanent.json")).unwrap();
        assert_eq!(hard[0].kind, BounceKind::HardBounce);
        assert_eq!(hard[0].status.as_deref(), Some("5.1.1"));
        let soft = mailgun(&fixture("mailgun-failed-temporary.json")).unwrap();
        assert_eq!(soft[0].kind, BounceKind::SoftBounce);
        let c = mailgun(&fixture("mailgun-complained.json")).unwrap();
        assert_eq!(c[0].kind, BounceKind::Complaint);
    }

    #[test]
    fn a_mailgun_signature_verifies_only_with_its_key() {
        let v = fixture("mailgun-failed-permanent.json");
        // The fixture is signed with this key (see tests/fixtures/webhooks/README.md).
        assert!(mailgun_signature_ok(&v, "key-test-mailgun-signing"));
        assert!(!mailgun_signature_ok(&v, "another-key"));
        assert!(!mailgun_signature_ok(
            &serde_json::json!({}),
            "key-test-mailgun-signing"
        ));
    }
}
