//! Parses bounce and complaint reports that arrive as mail: RFC 3464
//! delivery status notifications (`multipart/report;
//! report-type=delivery-status`), RFC 5965 ARF complaints
//! (`report-type=feedback-report`) and the common non-standard bounce
//! texts of MTAs that send neither. Pure: bytes in, [`Report`]s out.

use super::BounceKind;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// Why a message is not a report paperboy can act on. Such messages are
/// left in the mailbox and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not an RFC 5322 message")]
    NotAMessage,
    #[error("not a bounce or complaint report")]
    NotAReport,
    #[error("the delivery-status part names no recipient")]
    NoRecipient,
    #[error("the feedback report is of type {0:?}, not a complaint")]
    NotAComplaint(String),
    #[error("the report says nothing failed (actions: {0})")]
    NothingFailed(String),
}

/// One recipient's bounce, or one complaint, as the report states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: BounceKind,
    /// The address that bounced or complained, when the report names it.
    pub recipient: Option<String>,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: Option<String>,
    /// Diagnostic text (DSN `Diagnostic-Code`, ARF `BounceEvent-Type`…).
    pub detail: String,
}

/// A parsed report message: its reports and what can tie them to a
/// delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMessage {
    /// The report message's own Message-ID (its identity for duplicates).
    pub message_id: Option<String>,
    pub reports: Vec<Report>,
    /// Addresses that may be paperboy's VERP envelope sender: the report's
    /// own recipients (To, Delivered-To, X-Original-To, Envelope-To) and
    /// the original sender it quotes (Return-Path, ARF Original-Mail-From).
    pub envelope_hints: Vec<String>,
    /// The Message-ID of the original message, from the quoted headers.
    pub original_message_id: Option<String>,
}

/// Parses one message from the bounce mailbox.
pub fn parse(raw: &[u8]) -> Result<ParsedMessage, ReportError> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(ReportError::NotAMessage)?;
    if msg.headers().is_empty() {
        return Err(ReportError::NotAMessage);
    }
    let mut hints = Vec::new();
    for name in ["To", "Delivered-To", "X-Original-To", "Envelope-To"] {
        for v in header_texts(&msg, name) {
            hints.extend(addresses_in(&v));
        }
    }
    let report_type = msg
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    let quoted = quoted_headers(&msg);
    let original_message_id = quoted.as_ref().and_then(|q| q.message_id.clone());
    if let Some(q) = &quoted {
        hints.extend(q.return_path.iter().cloned());
    }
    let reports = match report_type.as_deref() {
        Some("delivery-status") => {
            let body = part_body(&msg, "delivery-status").ok_or(ReportError::NotAReport)?;
            dsn_reports(&body)?
        }
        Some("feedback-report") => {
            let body = part_body(&msg, "feedback-report").ok_or(ReportError::NotAReport)?;
            let fields = fields(&body);
            hints.extend(
                field(&fields, "original-mail-from")
                    .map(addresses_in)
                    .unwrap_or_default(),
            );
            let inner_to = quoted.as_ref().and_then(|q| q.to.clone());
            vec![arf_report(&fields, inner_to)?]
        }
        _ => vec![plain_bounce(&msg)?],
    };
    hints.dedup();
    Ok(ParsedMessage {
        message_id: msg.message_id().map(str::to_string),
        reports,
        envelope_hints: hints,
        original_message_id,
    })
}

/// What the report quotes of the original message.
struct Quoted {
    message_id: Option<String>,
    return_path: Vec<String>,
    to: Option<String>,
}

/// Headers of the returned message (`message/rfc822`, or
/// `text/rfc822-headers` when the MTA returned headers only).
fn quoted_headers(msg: &Message<'_>) -> Option<Quoted> {
    for part in msg.parts.iter().skip(1) {
        let inner = match &part.body {
            PartType::Message(m) => Some(m.clone()),
            _ if is_type(part.content_type(), "text", "rfc822-headers") => MessageParser::default()
                .parse(part.contents())
                .map(|m| m.into_owned()),
            _ => None,
        };
        if let Some(m) = inner {
            let return_path = header_texts(&m, "Return-Path")
                .iter()
                .flat_map(|v| addresses_in(v))
                .collect();
            let to = header_texts(&m, "To")
                .iter()
                .flat_map(|v| addresses_in(v))
                .next();
            return Some(Quoted {
                message_id: m.message_id().map(|id| format!("<{id}>")),
                return_path,
                to,
            });
        }
    }
    None
}

fn is_type(ct: Option<&mail_parser::ContentType<'_>>, t: &str, sub: &str) -> bool {
    ct.is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(t)
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case(sub))
    })
}

/// The decoded body of the first `message/<subtype>` part (some MTAs
/// label it `text/<subtype>`).
fn part_body(msg: &Message<'_>, subtype: &str) -> Option<String> {
    msg.parts
        .iter()
        .find(|p| {
            is_type(p.content_type(), "message", subtype)
                || is_type(p.content_type(), "text", subtype)
        })
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
}

/// Every value of a header, unfolded, as text.
fn header_texts(msg: &Message<'_>, name: &str) -> Vec<String> {
    msg.headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| unfold(v))
        .collect()
}

fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Header-style fields in groups separated by blank lines (RFC 3464 §2.1:
/// one per-message group, then one group per recipient). Names are
/// lower-cased; continuation lines are unfolded.
fn field_groups(body: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn fields(body: &str) -> Vec<(String, String)> {
    field_groups(body).into_iter().flatten().collect()
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; user@example.org` → `user@example.org`.
fn typed_address(v: &str) -> Option<String> {
    let addr = v.split_once(';').map_or(v, |(_, a)| a).trim();
    addresses_in(addr).into_iter().next()
}

/// The per-recipient groups of a DSN, classified: `failed` or a 5.x.x
/// status is hard, `delayed` or a 4.x.x status soft; `delivered`,
/// `relayed` and `expanded` are not bounces.
fn dsn_reports(body: &str) -> Result<Vec<Report>, ReportError> {
    let groups = field_groups(body);
    let recipients: Vec<&Vec<(String, String)>> = groups
        .iter()
        .filter(|g| {
            field(g, "final-recipient").is_some() || field(g, "original-recipient").is_some()
        })
        .collect();
    if recipients.is_empty() {
        return Err(ReportError::NoRecipient);
    }
    let mut reports = Vec::new();
    let mut actions = Vec::new();
    for g in recipients {
        let action = field(g, "action").unwrap_or("").to_ascii_lowercase();
        let status = field(g, "status").and_then(super::status_code);
        let kind = match (action.as_str(), status.as_deref().map(|s| &s[..1])) {
            ("failed", _) | (_, Some("5")) => BounceKind::HardBounce,
            ("delayed", _) | (_, Some("4")) => BounceKind::SoftBounce,
            _ => {
                actions.push(action);
                continue;
            }
        };
        let recipient = field(g, "final-recipient")
            .or_else(|| field(g, "original-recipient"))
            .and_then(typed_address);
        reports.push(Report {
            kind,
            recipient,
            status,
            detail: field(g, "diagnostic-code").unwrap_or(&action).to_string(),
        });
    }
    if reports.is_empty() {
        return Err(ReportError::NothingFailed(actions.join(", ")));
    }
    Ok(reports)
}

/// An ARF report (RFC 5965): `abuse`, `fraud`, `virus` and `other` are
/// complaints; `not-spam` and `auth-failure` are not.
fn arf_report(
    fields: &[(String, String)],
    inner_to: Option<String>,
) -> Result<Report, ReportError> {
    let ty = field(fields, "feedback-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if !matches!(ty.as_str(), "abuse" | "fraud" | "virus" | "other") {
        return Err(ReportError::NotAComplaint(ty));
    }
    let recipient = field(fields, "original-rcpt-to")
        .and_then(|v| addresses_in(v).into_iter().next())
        .or(inner_to);
    Ok(Report {
        kind: BounceKind::Complaint,
        recipient,
        status: None,
        detail: format!("feedback-type: {ty}"),
    })
}

/// A bounce that is not a DSN (qmail's "failure notice", old Exim and
/// Exchange texts): recognised by a mailer-daemon sender or a bounce
/// subject, classified by the first SMTP status in its text. Without a
/// status it is not acted on.
fn plain_bounce(msg: &Message<'_>) -> Result<Report, ReportError> {
    if header_texts(msg, "Auto-Submitted")
        .iter()
        .any(|v| v.to_ascii_lowercase().starts_with("auto-replied"))
    {
        return Err(ReportError::NotAReport);
    }
    let from = header_texts(msg, "From").join(" ").to_ascii_lowercase();
    let subject = msg.subject().unwrap_or("").to_ascii_lowercase();
    let daemon = ["mailer-daemon", "postmaster", "mail delivery"]
        .iter()
        .any(|d| from.contains(d));
    let bounce_subject = [
        "undeliver",
        "delivery status notification",
        "delivery failure",
        "mail delivery failed",
        "failure notice",
        "returned mail",
        "delivery has failed",
    ]
    .iter()
    .any(|s| subject.contains(s));
    if !(daemon || bounce_subject) {
        return Err(ReportError::NotAReport);
    }
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let status = super::status_code(&text).or_else(|| smtp_reply_class(&text));
    let Some(status) = status else {
        return Err(ReportError::NotAReport);
    };
    let kind = if status.starts_with('5') {
        BounceKind::HardBounce
    } else {
        BounceKind::SoftBounce
    };
    let own: Vec<String> = header_texts(msg, "To")
        .iter()
        .flat_map(|v| addresses_in(v))
        .collect();
    let recipient = addresses_in(&text)
        .into_iter()
        .find(|a| !own.contains(a) && !a.to_ascii_lowercase().starts_with("mailer-daemon@"));
    let detail = text
        .lines()
        .find(|l| l.contains(&status) || l.trim_start().starts_with(&status[..1]))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(Report {
        kind,
        recipient,
        status: Some(status),
        detail,
    })
}

/// A bare SMTP reply code (`550 …`) at the start of a word, as the class
/// status `5.0.0` / `4.0.0`.
fn smtp_reply_class(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find(|w| {
            w.len() == 3
                && matches!(w.as_bytes()[0], b'4' | b'5')
                && w.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|w| format!("{}.0.0", &w[..1]))
}

/// Every `local@domain` in a text, angle brackets and punctuation
/// stripped, lower-cased only in the domain.
pub(crate) fn addresses_in(text: &str) -> Vec<String> {
    text.split(|c: char| {
        c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']')
    })
    .map(|w| w.trim_matches(|c: char| matches!(c, '.' | ':' | '\'')))
    .filter_map(|w| {
        let (local, domain) = w.rsplit_once('@')?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        ok.then(|| format!("{local}@{}", domain.to_ascii_lowercase()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/mailbox/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_postfix_dsn_is_a_hard_bounce_of_its_final_recipient() {
        let p = parse(&fixture("postfix-hard-5.1.1.eml")).unwrap();
        assert_eq!(p.reports.len(), 1);
        let r = &p.reports[0];
        assert_eq!(r.kind, BounceKind::HardBounce);
        assert_eq!(r.recipient.as_deref(), Some("gone@example.net"));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert!(r.detail.contains("User unknown"), "{}", r.detail);
        assert!(
            p.envelope_hints.iter().any(|h| h.starts_with("bounces+")),
            "{:?}",
            p.envelope_hints
        );
        assert!(p.message_id.is_some());
        assert!(p.original_message_id.is_some());
    }

    #[test]
    fn a_delayed_dsn_is_a_soft_bounce() {
        let p = parse(&fixture("exim-delayed-4.2.2.eml")).unwrap();
        assert_eq!(p.reports[0].kind, BounceKind::SoftBounce);
        assert_eq!(p.reports[0].status.as_deref(), Some("4.2.2"));
    }

    #[test]
    fn a_gmail_dsn_with_headers_only_names_the_original_message() {
        let p = parse(&fixture("gmail-hard-5.1.1.eml")).unwrap();
        assert_eq!(p.reports[0].kind, BounceKind::HardBounce);
        assert_eq!(p.reports[0].recipient.as_deref(), Some("nobody@gmail.com"));
        assert_eq!(
            p.original_message_id.as_deref(),
            Some("<abcdefghijklmnopqrstuvwxyz.20261201@paperboy.example.org>")
        );
    }

    #[test]
    fn an_arf_abuse_report_is_a_complaint() {
        let p = parse(&fixture("yahoo-arf-abuse.eml")).unwrap();
        assert_eq!(p.reports[0].kind, BounceKind::Complaint);
        assert_eq!(p.reports[0].recipient.as_deref(), Some("reader@yahoo.com"));
        assert!(p.envelope_hints.iter().any(|h| h.starts_with("bounces+")));
    }

    #[test]
    fn a_qmail_failure_notice_is_recognised_by_its_text() {
        let p = parse(&fixture("qmail-failure-notice.eml")).unwrap();
        assert_eq!(p.reports[0].kind, BounceKind::HardBounce);
        assert_eq!(
            p.reports[0].recipient.as_deref(),
            Some("olduser@example.com")
        );
    }

    #[test]
    fn an_ordinary_reply_or_a_vacation_notice_is_not_a_report() {
        let reply = b"From: Someone <a@example.com>\r\nTo: bounces@example.org\r\nSubject: thanks\r\nMessage-ID: <x@y.z>\r\n\r\nThanks for the digest, 550 papers!\r\n";
        assert_eq!(parse(reply), Err(ReportError::NotAReport));
        let vacation = b"From: MAILER-DAEMON@example.com\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nBack on 5.1.\r\n";
        assert_eq!(parse(vacation), Err(ReportError::NotAReport));
        assert_eq!(parse(b""), Err(ReportError::NotAMessage));
    }

    #[test]
    fn a_dsn_that_only_reports_relaying_is_not_acted_on() {
        let raw = "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.org\r\nSubject: Delivery Status Notification (Relay)\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nrelayed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; a@example.net\r\nAction: relayed\r\nStatus: 2.0.0\r\n--b--\r\n";
        assert!(matches!(
            parse(raw.as_bytes()),
            Err(ReportError::NothingFailed(_))
        ));
    }

    #[test]
    fn addresses_are_found_in_angle_brackets_and_typed_fields() {
        assert_eq!(
            addresses_in("rfc822; <Gone@Example.NET>."),
            vec!["Gone@example.net".to_string()]
        );
        assert_eq!(typed_address("rfc822;x@y.org").as_deref(), Some("x@y.org"));
    }
}
