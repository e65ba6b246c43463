//! The suppression list: addresses that must not be mailed, and why.

use super::to_json;
use crate::domain::EmailAddress;
use crate::store::{ts, Result, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;

/// Why the address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    HardBounce,
    Complaint,
    /// The subscriber deleted their data; a fresh double opt-in lifts it.
    Deleted,
    /// An operator removed the address.
    Manual,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Deleted => "deleted",
            SuppressionReason::Manual => "manual",
        }
    }

    /// Whether the subscriber's own fresh double opt-in may lift it. Hard
    /// bounces and complaints are never lifted automatically: mailing a
    /// dead or complaining address again hurts every other subscriber's
    /// deliverability.
    pub fn liftable_by_opt_in(self) -> bool {
        matches!(self, SuppressionReason::Deleted | SuppressionReason::Manual)
    }

    /// Whether the person's own new, confirmed opt-in (the web form and
    /// its confirmation link) lifts it: everything but a hard bounce. A
    /// complaint is never lifted otherwise (issue 14), but someone who
    /// marked a digest as spam and later subscribes again themselves has
    /// said they want it.
    pub fn lifted_by_own_opt_in(self) -> bool {
        !matches!(self, SuppressionReason::HardBounce)
    }

    fn parse(s: &str) -> Option<SuppressionReason> {
        Some(match s {
            "hard_bounce" => SuppressionReason::HardBounce,
            "complaint" => SuppressionReason::Complaint,
            "deleted" => SuppressionReason::Deleted,
            "manual" => SuppressionReason::Manual,
            _ => return None,
        })
    }
}

/// The suppression of an address, looked up under every hash it may be
/// stored under ([`EmailAddress::suppression_hashes`]). When both exist,
/// one that an opt-in cannot lift wins.
pub(super) async fn suppression_of(
    conn: &mut SqliteConnection,
    email: &EmailAddress,
) -> Result<Option<SuppressionReason>> {
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM suppressions WHERE email_hash IN (SELECT value FROM json_each(?))",
    )
    .bind(to_json(&email.suppression_hashes()))
    .fetch_all(&mut *conn)
    .await?;
    let reasons: Vec<SuppressionReason> = found
        .iter()
        .filter_map(|r| SuppressionReason::parse(r))
        .collect();
    Ok(reasons
        .iter()
        .copied()
        .find(|r| !r.liftable_by_opt_in())
        .or(reasons.first().copied()))
}

impl Store {
    /// Whether each of these addresses is on the suppression list (for
    /// any reason), in input order, from one query.
    pub async fn suppressed_among(&self, emails: &[&EmailAddress]) -> Result<Vec<bool>> {
        let hashes: Vec<Vec<String>> = emails.iter().map(|e| e.suppression_hashes()).collect();
        let all: Vec<String> = hashes.iter().flatten().cloned().collect();
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT email_hash FROM suppressions \
             WHERE email_hash IN (SELECT value FROM json_each(?))",
        )
        .bind(to_json(&all))
        .fetch_all(&self.pool)
        .await?;
        let found: std::collections::HashSet<String> = found.into_iter().collect();
        Ok(hashes
            .iter()
            .map(|hs| hs.iter().any(|h| found.contains(h)))
            .collect())
    }

    /// Adds an address hash to the suppression list (hard bounce,
    /// complaint, operator block) and stops mail to its subscriber.
    pub async fn suppress(
        &self,
        email: &EmailAddress,
        reason: SuppressionReason,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO suppressions (email_hash, reason, created_at) VALUES (?, ?, ?) \
             ON CONFLICT(email_hash) DO UPDATE SET reason = excluded.reason",
        )
        .bind(email.hash())
        .bind(reason.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn suppression(&self, email: &EmailAddress) -> Result<Option<SuppressionReason>> {
        let mut conn = self.pool.acquire().await?;
        suppression_of(&mut conn, email).await
    }
}
