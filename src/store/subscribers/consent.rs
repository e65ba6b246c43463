//! Consent records: how and when each subscriber agreed.

use super::to_json;
use crate::domain::SubscriberId;
use crate::store::{ts, Result};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

/// How consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMethod {
    WebForm,
    OperatorImport,
}

impl ConsentMethod {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::WebForm => "web_form",
            ConsentMethod::OperatorImport => "operator_import",
        }
    }
}

/// What the subscriber was shown and where, for the consent record.
#[derive(Debug, Clone)]
pub struct ConsentInput {
    pub method: ConsentMethod,
    pub source: String,
    pub consent_text_hash: String,
    pub ip: Option<String>,
}

/// method, source, consent hash, topics, ip, requested_at, confirmed_at.
pub(super) type ConsentRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

pub(super) async fn insert_consent(
    conn: &mut SqliteConnection,
    id: SubscriberId,
    consent: &ConsentInput,
    topics: &[String],
    now: DateTime<Utc>,
    confirmed: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO consents (subscriber_id, method, source, consent_text_hash, topics, ip, \
         requested_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.0)
    .bind(consent.method.as_str())
    .bind(&consent.source)
    .bind(&consent.consent_text_hash)
    .bind(to_json(topics))
    .bind(&consent.ip)
    .bind(ts(now))
    .bind(confirmed.then(|| ts(now)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
