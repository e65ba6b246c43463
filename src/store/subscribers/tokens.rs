//! Confirmation and manage tokens: issuing, looking up and using them.

use super::{load, to_json, Subscriber};
use crate::domain::{SubscriberId, TokenPurpose};
use crate::store::{parse_ts, ts, Result, Store};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

/// Outcome of `POST /confirm/{token}`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmOutcome {
    Confirmed(Box<Subscriber>),
    /// Unknown, already used or expired: one generic answer.
    Invalid,
}

/// subscriber_id, expires_at, used_at, revoked_at.
type TokenRow = (i64, Option<String>, Option<String>, Option<String>);

pub(super) async fn insert_manage_token(
    conn: &mut SqliteConnection,
    id: SubscriberId,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO tokens (hash, subscriber_id, purpose, created_at) \
         VALUES (?, ?, 'manage', ?)",
    )
    .bind(hash)
    .bind(id.0)
    .bind(ts(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn used_confirm_owner(
    conn: &mut SqliteConnection,
    token_hash: &str,
) -> Result<Option<SubscriberId>> {
    Ok(sqlx::query_scalar(
        "SELECT t.subscriber_id FROM tokens t JOIN subscribers s ON s.id = t.subscriber_id \
         WHERE t.hash = ? AND t.purpose = 'confirm' AND t.used_at IS NOT NULL \
         AND t.revoked_at IS NULL AND s.state IN ('active', 'paused')",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?
    .map(SubscriberId))
}

async fn token_owner(
    conn: &mut SqliteConnection,
    token_hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<SubscriberId>> {
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT subscriber_id, expires_at, used_at, revoked_at FROM tokens \
         WHERE hash = ? AND purpose = ?",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, expires, used, revoked)) = row else {
        return Ok(None);
    };
    if revoked.is_some() || (purpose == TokenPurpose::Confirm && used.is_some()) {
        return Ok(None);
    }
    if let Some(exp) = expires {
        if parse_ts(&exp)? <= now {
            return Ok(None);
        }
    }
    Ok(Some(SubscriberId(id)))
}

impl Store {
    /// Records a freshly generated confirm token (hash only) for a
    /// subscriber, valid until `expires_at`.
    pub async fn insert_confirm_token(
        &self,
        id: SubscriberId,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.write_one(
            sqlx::query(
                "INSERT INTO tokens (hash, subscriber_id, purpose, created_at, expires_at) \
             VALUES (?, ?, 'confirm', ?, ?)",
            )
            .bind(token_hash)
            .bind(id.0)
            .bind(ts(now))
            .bind(ts(expires_at)),
        )
        .await?;
        Ok(())
    }

    /// The subscriber a token authorises, if the token is known, of the
    /// right purpose, unrevoked, unexpired and (for confirm) unused.
    pub async fn subscriber_for_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<Subscriber>> {
        let mut conn = self.pool.acquire().await?;
        let id = token_owner(&mut conn, token_hash, purpose, now).await?;
        match id {
            Some(id) => Ok(Some(load(&mut conn, id).await?)),
            None => Ok(None),
        }
    }

    /// `POST /confirm/{token}`: marks the token used and activates
    /// the subscriber in one transaction. A later fresh opt-in also lifts
    /// any suppression of the address but a hard bounce
    /// ([`SuppressionReason::lifted_by_own_opt_in`]).
    pub async fn confirm(&self, token_hash: &str, now: DateTime<Utc>) -> Result<ConfirmOutcome> {
        let mut tx = self.begin_write().await?;
        let Some(id) = token_owner(&mut tx, token_hash, TokenPurpose::Confirm, now).await? else {
            tx.commit().await?;
            return Ok(ConfirmOutcome::Invalid);
        };
        sqlx::query("UPDATE tokens SET used_at = ? WHERE hash = ?")
            .bind(ts(now))
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE subscribers SET state = 'active', confirmed_at = ?, unsubscribed_at = NULL, \
             updated_at = ? WHERE id = ? AND state = 'pending'",
        )
        .bind(ts(now))
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE consents SET confirmed_at = ? WHERE id = \
             (SELECT max(id) FROM consents WHERE subscriber_id = ?) AND confirmed_at IS NULL",
        )
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        // The preview choices made when subscribing become feedback now,
        // so the first digest already uses them; they age from today.
        sqlx::query(
            "INSERT INTO feedback (subscriber_id, paper_id, action, at) \
             SELECT subscriber_id, paper_id, action, ? FROM pending_choices \
             WHERE subscriber_id = ? \
             ON CONFLICT (subscriber_id, paper_id) DO UPDATE \
             SET action = excluded.action, at = excluded.at",
        )
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pending_choices WHERE subscriber_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let sub = load(&mut tx, id).await?;
        sqlx::query(
            "DELETE FROM suppressions WHERE email_hash IN (SELECT value FROM json_each(?)) \
             AND reason <> 'hard_bounce'",
        )
        .bind(to_json(&sub.email.suppression_hashes()))
        .execute(&mut *tx)
        .await?;
        // Other outstanding confirm links for this subscriber are now moot.
        sqlx::query(
            "UPDATE tokens SET revoked_at = ? WHERE subscriber_id = ? AND purpose = 'confirm' \
             AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ConfirmOutcome::Confirmed(Box::new(sub)))
    }

    /// The subscriber who already used this confirmation link, when they
    /// are still subscribed (active or paused): reopening a used link
    /// shows "already confirmed" rather than "invalid". Expired, revoked
    /// and never-used links give None.
    pub async fn used_confirm_link_owner(&self, token_hash: &str) -> Result<Option<SubscriberId>> {
        let mut conn = self.pool.acquire().await?;
        used_confirm_owner(&mut conn, token_hash).await
    }
}
