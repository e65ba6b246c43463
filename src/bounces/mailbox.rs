//! Polls the bounce mailbox over IMAP with implicit TLS (IMAPS, RFC 8314).
//!
//! Each poll reads the messages of `bounces.mailbox.folder` that are not
//! yet marked processed, parses each as a report ([`super::report`]) and
//! records its events. A message whose events were all recorded (or
//! that matched no subscriber) is marked processed: moved to
//! `processed_folder` when set, else flagged `$PaperboyProcessed` and
//! `\Seen`. A message that is not a report paperboy understands is left
//! alone (read with `BODY.PEEK`, so not even `\Seen` changes) and counted.
//! Events are idempotent in the store (the report's Message-ID is their
//! key), so a crash between recording and marking never applies one twice.

use super::report::{self, ParsedMessage};
use super::{BounceEvent, ReportSource};
use crate::app::App;
use crate::telemetry::Metrics;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// The IMAP keyword that marks a processed report.
pub const PROCESSED_KEYWORD: &str = "$PaperboyProcessed";

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
    /// Messages read (not yet processed before this poll).
    pub read: u64,
    /// Reports whose events were recorded (new ones).
    pub recorded: u64,
    /// Events that were already recorded.
    pub duplicates: u64,
    /// Reports that matched no subscriber (marked processed all the same).
    pub unmatched: u64,
    /// Reports that named a forged VERP address (marked processed).
    pub forged: u64,
    /// Messages that are not reports: left in the mailbox.
    pub unparseable: u64,
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {}, recorded {}, duplicates {}, unmatched {}, forged {}, unparseable (left in the mailbox) {}",
            self.read, self.recorded, self.duplicates, self.unmatched, self.forged, self.unparseable
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

async fn connect(app: &App) -> Result<async_imap::Session<TlsStream>, MailboxError> {
    let cfg = &app.config.bounces.mailbox;
    let password = app
        .config
        .bounces
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

/// One poll of the bounce mailbox, bounded by `timeout_secs` per step.
pub async fn poll(app: &App) -> Result<PollReport, MailboxError> {
    let secs = app.config.bounces.mailbox.timeout_secs;
    // Generous overall bound: connect, login, search, fetch, store, logout.
    match tokio::time::timeout(Duration::from_secs(secs * 6), poll_inner(app)).await {
        Ok(r) => r,
        Err(_) => Err(MailboxError::Timeout(secs * 6)),
    }
}

async fn poll_inner(app: &App) -> Result<PollReport, MailboxError> {
    let cfg = &app.config.bounces.mailbox;
    let mut session = connect(app).await?;
    session.select(&cfg.folder).await?;
    let mut uids: Vec<u32> = session
        .uid_search(format!("NOT KEYWORD {PROCESSED_KEYWORD}"))
        .await?
        .into_iter()
        .collect();
    uids.sort_unstable();
    uids.truncate(cfg.max_messages as usize);
    let mut report = PollReport::default();
    let mut done: Vec<u32> = Vec::new();
    if !uids.is_empty() {
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let fetched: Vec<(u32, Vec<u8>)> = session
            .uid_fetch(&set, "(UID BODY.PEEK[])")
            .await?
            .try_filter_map(|f| async move { Ok(f.uid.zip(f.body().map(<[u8]>::to_vec))) })
            .try_collect()
            .await?;
        for (uid, raw) in fetched {
            report.read += 1;
            if process(app, &raw, &mut report).await? {
                done.push(uid);
            }
        }
    }
    if !done.is_empty() {
        let set = done
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        if cfg.processed_folder.is_empty() {
            session
                .uid_store(&set, format!("+FLAGS.SILENT ({PROCESSED_KEYWORD} \\Seen)"))
                .await?
                .collect::<Vec<_>>()
                .await;
        } else {
            session.uid_mv(&set, &cfg.processed_folder).await?;
        }
    }
    session.logout().await.ok();
    Metrics::add(&app.metrics.bounces.unparseable, report.unparseable);
    Ok(report)
}

/// Parses and records one message; returns whether it is done with
/// (to be marked processed).
async fn process(app: &App, raw: &[u8], report: &mut PollReport) -> Result<bool, MailboxError> {
    let parsed = match report::parse(raw) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(reason = %e, "bounce mailbox: message is not a report; left in place");
            report.unparseable += 1;
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
