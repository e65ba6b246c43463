//! Polls the bounce mailbox over IMAP with implicit TLS (IMAPS, RFC 8314).
//!
//! The envelope sender's mailbox gets more than bounces: replies and
//! vacation notices go to the Return-Path too. Each poll reads the
//! messages of `bounces.mailbox.folder` that no poll has marked yet
//! (oldest first, at most `max_messages`, fetched [`BATCH`] at a time),
//! parses each as a report ([`super::report`]) and records its events,
//! then marks every message it read, so the next poll reads only new
//! mail and each message is counted once:
//! - a report (recorded, or naming no message paperboy sent) is moved to
//!   `processed_folder` when set, else flagged `$PaperboyProcessed` and
//!   `\Seen`;
//! - anything else is flagged `$PaperboyIgnored` and `\Seen`, or moved to
//!   `non_reports_folder` (`non_reports = "move"`).
//!
//! Messages are read with `BODY.PEEK`, so only the marking changes them.
//! Events are idempotent in the store (the report's Message-ID is their
//! key), so a crash between recording and marking never applies one twice.
//! Polls never overlap, and each records how it went in the mailbox
//! health that `/healthz` and `/metrics` show.

use super::report::{self, ParsedMessage};
use super::Context;
use super::{BounceEvent, ReportSource};
use crate::config::NonReports;
use crate::telemetry::Metrics;
use futures::TryStreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// The IMAP keyword that marks a processed report.
pub const PROCESSED_KEYWORD: &str = "$PaperboyProcessed";

/// The IMAP keyword that marks mail read and found not to be a report.
pub const IGNORED_KEYWORD: &str = "$PaperboyIgnored";

/// Messages fetched per IMAP round trip (and marked per round trip).
const BATCH: usize = 100;

/// Failures of one poll; the next poll tries again.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("bounce mailbox configuration: {0}")]
    Config(String),
    #[error("connecting to {host}:{port}: {message}")]
    Connect {
        host: String,
        port: u16,
        message: String,
    },
    #[error("TLS with the IMAP server: {0}")]
    Tls(String),
    #[error("IMAP login refused: {0}")]
    Login(String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("timed out after {0} s")]
    Timeout(u64),
    #[error("recording a bounce: {0}")]
    Record(String),
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PollReport {
    /// Messages read (none of them marked by an earlier poll).
    pub read: u64,
    /// Reports whose events were recorded (new ones).
    pub recorded: u64,
    /// Events that were already recorded.
    pub duplicates: u64,
    /// Reports that named no message paperboy sent (marked all the same).
    pub unmatched: u64,
    /// Reports that named a forged VERP address (marked all the same).
    pub forged: u64,
    /// Messages that are not reports: flagged as ignored or moved.
    pub unparseable: u64,
    /// Unmarked messages beyond `max_messages`, left for the next poll.
    pub left: u64,
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {}, recorded {}, duplicates {}, unmatched {}, forged {}, not reports {}, left for the next poll {}",
            self.read,
            self.recorded,
            self.duplicates,
            self.unmatched,
            self.forged,
            self.unparseable,
            self.left
        )
    }
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

fn tls_config(ca_file: &str) -> Result<rustls::ClientConfig, MailboxError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !ca_file.is_empty() {
        let pem = std::fs::read(ca_file)
            .map_err(|e| MailboxError::Config(format!("bounces.mailbox.ca_file {ca_file}: {e}")))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| MailboxError::Config(format!("bounces.mailbox.ca_file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| MailboxError::Config(format!("bounces.mailbox.ca_file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MailboxError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn connect(app: &Context<'_>) -> Result<async_imap::Session<TlsStream>, MailboxError> {
    let cfg = &app.config.mailbox;
    let password = app
        .config
        .mailbox_password()
        .map_err(|e| MailboxError::Config(e.to_string()))?
        .ok_or_else(|| MailboxError::Config("no password found".into()))?;
    let tcp = tokio::net::TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| MailboxError::Connect {
            host: cfg.host.clone(),
            port: cfg.port,
            message: e.to_string(),
        })?;
    let name = rustls::pki_types::ServerName::try_from(cfg.host.clone())
        .map_err(|e| MailboxError::Config(format!("bounces.mailbox.host: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&cfg.ca_file)?))
        .connect(name, tcp)
        .await
        .map_err(|e| MailboxError::Tls(e.to_string()))?;
    let mut client = async_imap::Client::new(tls);
    // The server speaks first (its greeting).
    client
        .read_response()
        .await
        .map_err(|e| MailboxError::Tls(e.to_string()))?
        .ok_or_else(|| MailboxError::Tls("the server closed the connection".into()))?;
    client
        .login(&cfg.username, password.expose())
        .await
        .map_err(|(e, _)| MailboxError::Login(e.to_string()))
}

/// The events of one parsed report, keyed by the report's Message-ID (or
/// a hash of the message when it has none) and its position.
pub fn events_of(parsed: &ParsedMessage, raw: &[u8]) -> Vec<BounceEvent> {
    let id = parsed.message_id.clone().unwrap_or_else(|| {
        use sha2::Digest;
        data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(raw))
    });
    parsed
        .reports
        .iter()
        .enumerate()
        .map(|(i, r)| BounceEvent {
            kind: r.kind,
            source: ReportSource::Mailbox,
            event_key: format!("{id}#{i}"),
            recipient: r.recipient.clone(),
            envelope_hints: parsed.envelope_hints.clone(),
            message_id: parsed.original_message_id.clone(),
            status: r.status.clone(),
            detail: r.detail.clone(),
        })
        .collect()
}

/// Bounds one step (connecting, one IMAP command) by `timeout_secs`.
async fn step<T, E>(
    secs: u64,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, MailboxError>
where
    MailboxError: From<E>,
{
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(r) => r.map_err(MailboxError::from),
        Err(_) => Err(MailboxError::Timeout(secs)),
    }
}

/// One poll of the bounce mailbox, each step bounded by `timeout_secs`.
/// Waits for a poll already running; records the outcome in the
/// mailbox health (`/healthz`, `/metrics`).
pub async fn poll(app: &Context<'_>) -> Result<PollReport, MailboxError> {
    let _turn = app.poll_turn.lock().await;
    let result = poll_inner(app).await;
    let m = app.metrics;
    match &result {
        Ok(r) => m.update_mailbox(|h| h.record_success(app.clock.now(), r.left)),
        Err(e) => {
            Metrics::inc(&m.mailbox_polls_failed);
            m.update_mailbox(|h| h.record_failure(app.clock.now(), e.to_string()));
        }
    }
    result
}

async fn poll_inner(app: &Context<'_>) -> Result<PollReport, MailboxError> {
    let cfg = &app.config.mailbox;
    let secs = cfg.timeout_secs;
    let mut session = step(secs, connect(app)).await?;
    step(secs, session.select(&cfg.folder)).await?;
    let query = format!("NOT KEYWORD {PROCESSED_KEYWORD} NOT KEYWORD {IGNORED_KEYWORD}");
    let mut uids: Vec<u32> = step(secs, session.uid_search(query))
        .await?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut report = PollReport {
        left: uids.len().saturating_sub(cfg.max_messages as usize) as u64,
        ..PollReport::default()
    };
    uids.truncate(cfg.max_messages as usize);
    if !uids.is_empty() {
        create_folders(&mut session, cfg, secs).await;
    }
    for batch in uids.chunks(BATCH) {
        let fetched: Vec<(u32, Vec<u8>)> = step(secs, async {
            session
                .uid_fetch(uid_set(batch), "(UID BODY.PEEK[])")
                .await?
                .try_filter_map(|f| async move { Ok(f.uid.zip(f.body().map(<[u8]>::to_vec))) })
                .try_collect()
                .await
        })
        .await?;
        let (mut reports, mut others) = (Vec::new(), Vec::new());
        let mut failed = None;
        for (uid, raw) in fetched {
            report.read += 1;
            match process(app, &raw, &mut report).await {
                Ok(true) => reports.push(uid),
                Ok(false) => others.push(uid),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // What was read is marked even when a later message failed, so it
        // is not read (nor counted) again.
        mark(&mut session, cfg, &reports, &others, secs).await?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    session.logout().await.ok();
    Ok(report)
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates the folders mail is moved to. A folder that exists already is
/// answered with NO, which is fine; a real problem surfaces at the move.
async fn create_folders(
    session: &mut async_imap::Session<TlsStream>,
    cfg: &crate::config::MailboxConfig,
    secs: u64,
) {
    let mut folders = vec![cfg.processed_folder.as_str()];
    if cfg.non_reports == NonReports::Move {
        folders.push(cfg.non_reports_folder.as_str());
    }
    for f in folders.into_iter().filter(|f| !f.is_empty()) {
        let _ = step(secs, session.create(f)).await;
    }
}

/// Marks the reports and the other messages of one batch as read by
/// paperboy (see the module docs).
async fn mark(
    session: &mut async_imap::Session<TlsStream>,
    cfg: &crate::config::MailboxConfig,
    reports: &[u32],
    others: &[u32],
    secs: u64,
) -> Result<(), MailboxError> {
    let flag = |keyword: &'static str| format!("+FLAGS.SILENT ({keyword} \\Seen)");
    let moves = [
        (reports, cfg.processed_folder.as_str(), PROCESSED_KEYWORD),
        (
            others,
            match cfg.non_reports {
                NonReports::Move => cfg.non_reports_folder.as_str(),
                NonReports::Flag => "",
            },
            IGNORED_KEYWORD,
        ),
    ];
    for (uids, folder, keyword) in moves {
        if uids.is_empty() {
            continue;
        }
        let set = uid_set(uids);
        if folder.is_empty() {
            step(secs, async {
                session
                    .uid_store(&set, flag(keyword))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        } else {
            step(secs, session.uid_mv(&set, folder)).await?;
        }
    }
    Ok(())
}

/// Parses and records one message; returns whether it is a report
/// (`false`: something else, to be marked as ignored).
async fn process(
    app: &Context<'_>,
    raw: &[u8],
    report: &mut PollReport,
) -> Result<bool, MailboxError> {
    let parsed = match report::parse(raw) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(reason = %e, "bounce mailbox: message is not a report; marked as ignored");
            report.unparseable += 1;
            Metrics::inc(&app.metrics.unparseable);
            return Ok(false);
        }
    };
    for event in events_of(&parsed, raw) {
        let outcome = super::record(app, &event)
            .await
            .map_err(|e| MailboxError::Record(format!("{e:#}")))?;
        match outcome {
            super::Outcome::Applied(_) => report.recorded += 1,
            super::Outcome::Duplicate => report.duplicates += 1,
            super::Outcome::Unmatched => report.unmatched += 1,
            super::Outcome::Forged => report.forged += 1,
        }
    }
    Ok(true)
}
