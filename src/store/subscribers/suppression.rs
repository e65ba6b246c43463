//! The suppression list: addresses that must not be mailed, and why.

use super::to_json;
use crate::domain::EmailAddress;
use crate::store::{Result, Store};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

pub use crate::domain::SuppressionReason;

/// The suppression of an address, looked up under every hash it may be
/// stored under ([`EmailAddress::suppression_hashes`]). When both exist,
/// the one harder to lift wins ([`SuppressionReason::severity`]).
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
    Ok(found
        .iter()
        .filter_map(|r| SuppressionReason::parse(r))
        .max_by_key(|r| r.severity()))
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
    /// complaint, operator block), replacing any earlier reason, and stops
    /// mail to its subscriber.
    pub async fn suppress(
        &self,
        email: &EmailAddress,
        reason: SuppressionReason,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM subscribers WHERE email_canonical = ?")
                .bind(email.canonical())
                .fetch_optional(&mut *tx)
                .await?;
        crate::store::suppressions::put(
            &mut tx,
            &email.hash(),
            reason,
            id.map(crate::domain::SubscriberId),
            &SuppressionReason::ALL,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn suppression(&self, email: &EmailAddress) -> Result<Option<SuppressionReason>> {
        let mut conn = self.pool.acquire().await?;
        suppression_of(&mut conn, email).await
    }
}
