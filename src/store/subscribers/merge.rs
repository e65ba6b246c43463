//! Folding subscribers whose addresses differ only in case into one
//! (what the case-folding migration left to finish at start-up).

use crate::domain::{EmailAddress, SubscriberId};
use crate::store::{Result, Store};

/// One duplicate subscriber folded into another by the case-folding
/// migration (`20261204000400_mailbox_case_fold.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxMerge {
    pub kept: SubscriberId,
    pub merged: SubscriberId,
    /// The folded row's state before the merge.
    pub merged_state: String,
}

impl Store {
    /// Finishes the case-folding migration for merges not yet reported: a
    /// suppression stored under a folded address's old hash is copied to
    /// the mailbox's new hash (SQL cannot compute it), and the merges are
    /// marked reported and returned, for the log. Runs at every open;
    /// after the first it finds nothing.
    pub(crate) async fn finish_mailbox_merges(&self) -> Result<Vec<MailboxMerge>> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(i64, i64, i64, String, String)> = sqlx::query_as(
            "SELECT id, kept_id, merged_id, merged_email, merged_state FROM subscriber_merges \
             WHERE reported_at IS NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut merges = Vec::with_capacity(rows.len());
        for (id, kept, merged, email, state) in rows {
            if let Ok(email) = EmailAddress::parse(&email) {
                sqlx::query(
                    "INSERT INTO suppressions (email_hash, reason, created_at, subscriber_id) \
                     SELECT ?, reason, created_at, ? FROM suppressions WHERE email_hash = ? \
                     ON CONFLICT (email_hash) DO NOTHING",
                )
                .bind(email.hash())
                .bind(kept)
                .bind(email.legacy_hash())
                .execute(&mut *tx)
                .await?;
            }
            // The database's clock: this bookkeeping runs inside
            // `Store::open`, which has no clock of its own.
            sqlx::query(
                "UPDATE subscriber_merges SET reported_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            merges.push(MailboxMerge {
                kept: SubscriberId(kept),
                merged: SubscriberId(merged),
                merged_state: state,
            });
        }
        tx.commit().await?;
        Ok(merges)
    }
}
