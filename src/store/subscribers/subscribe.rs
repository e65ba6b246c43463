//! Subscribing: a request from the form (with the limits on
//! confirmation mails), an operator's addition, and a settings-link
//! request.

use super::consent::{insert_consent, ConsentInput};
use super::suppression::suppression_of;
use super::tokens::{insert_manage_token, used_confirm_owner};
use super::{insert_subscriber, load, write_preferences, ManageHashFn};
use crate::domain::{
    EmailAddress, Preferences, PreviewChoice, SubscriberId, SubscriberState, MAX_PREVIEW_CHOICES,
};
use crate::store::{ts, Result, Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use sqlx::SqliteConnection;

/// Limits on confirmation mails. Exceeding them is silent: the
/// visitor sees the same response.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmLimits {
    pub min_interval: Duration,
    pub per_day: u32,
    pub global_per_hour: u32,
}

/// What a subscribe request did. Only logs and metrics see this; the
/// visitor always gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// A new or returning (pending / unsubscribed) address: confirmation queued.
    ConfirmationQueued,
    /// Already active or paused: a "you are already subscribed" mail with
    /// the manage link was queued.
    ManageLinkQueued,
    /// Nothing queued because a per-address or global limit was reached
    /// (for a suppressed address too: its requests count as mails would).
    RateLimited,
    /// The address bounced hard or complained: nothing is ever sent, but
    /// the request counted against the limits like a mail.
    Suppressed,
}

/// A subscribe request: who, what they want, their consent, and the
/// choices they made on the live preview (kept with the pending
/// subscription until it is confirmed).
#[derive(Debug, Clone, Copy)]
pub struct SubscribeRequest<'a> {
    pub email: &'a EmailAddress,
    pub prefs: &'a Preferences,
    pub consent: &'a ConsentInput,
    pub choices: &'a [PreviewChoice],
}

/// Replaces the pending choices of `id` with `choices` (the first
/// [`MAX_PREVIEW_CHOICES`]); choices about papers not stored are dropped,
/// as the preview only offers stored papers.
async fn replace_pending_choices(
    conn: &mut SqliteConnection,
    id: SubscriberId,
    choices: &[PreviewChoice],
) -> Result<()> {
    sqlx::query("DELETE FROM pending_choices WHERE subscriber_id = ?")
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    for c in choices.iter().take(MAX_PREVIEW_CHOICES) {
        sqlx::query(
            "INSERT INTO pending_choices (subscriber_id, paper_id, action) \
             SELECT ?, id, ? FROM papers WHERE id = ? \
             ON CONFLICT (subscriber_id, paper_id) DO UPDATE SET action = excluded.action",
        )
        .bind(id.0)
        .bind(c.action.as_str())
        .bind(c.paper.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Queues a transactional mail unless the per-address or global limits
/// say no. Returns whether it was queued.
async fn queue_limited(
    conn: &mut SqliteConnection,
    id: SubscriberId,
    email_hash: &str,
    kind: &str,
    limits: &ConfirmLimits,
    now: DateTime<Utc>,
) -> Result<bool> {
    if !record_send_limited(conn, email_hash, limits, now).await? {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO outbox (subscriber_id, kind, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(id.0)
    .bind(kind)
    .bind(ts(now))
    .bind(ts(now))
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Records a mail to `email_hash` in `confirm_sends` when the per-address
/// and global limits allow one now; false (nothing recorded) otherwise.
/// A request for a suppressed address is recorded too, without a mail, so
/// the limits (and the page that reports them) treat every address alike.
async fn record_send_limited(
    conn: &mut SqliteConnection,
    email_hash: &str,
    limits: &ConfirmLimits,
    now: DateTime<Utc>,
) -> Result<bool> {
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM confirm_sends WHERE email_hash = ? AND queued_at > ?",
    )
    .bind(email_hash)
    .bind(ts(now - limits.min_interval))
    .fetch_one(&mut *conn)
    .await?;
    let day: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM confirm_sends WHERE email_hash = ? AND queued_at > ?",
    )
    .bind(email_hash)
    .bind(ts(now - Duration::hours(24)))
    .fetch_one(&mut *conn)
    .await?;
    let global: i64 = sqlx::query_scalar("SELECT count(*) FROM confirm_sends WHERE queued_at > ?")
        .bind(ts(now - Duration::hours(1)))
        .fetch_one(&mut *conn)
        .await?;
    if recent > 0 || day >= limits.per_day as i64 || global >= limits.global_per_hour as i64 {
        return Ok(false);
    }
    sqlx::query("INSERT INTO confirm_sends (email_hash, queued_at) VALUES (?, ?)")
        .bind(email_hash)
        .bind(ts(now))
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// The writes of [`Store::add_subscriber`], inside the caller's transaction.
async fn add_one(
    tx: &mut super::WriteTx,
    email: &EmailAddress,
    prefs: &Preferences,
    state: SubscriberState,
    consent: &ConsentInput,
    manage_hash: ManageHashFn<'_>,
    now: DateTime<Utc>,
) -> Result<SubscriberId> {
    // Only the person's own confirmed opt-in (`confirm`) lifts a
    // suppression; an operator adding or importing the address never does.
    if let Some(reason) = suppression_of(tx, email).await? {
        return Err(StoreError::Suppressed(reason.as_str()));
    }
    let id = insert_subscriber(tx, email, state, prefs, now).await?;
    insert_manage_token(tx, id, &manage_hash(id, 0), now).await?;
    insert_consent(
        tx,
        id,
        consent,
        &prefs.topics,
        now,
        state == SubscriberState::Active,
    )
    .await?;
    if state == SubscriberState::Pending {
        sqlx::query(
            "INSERT INTO outbox (subscriber_id, kind, next_attempt_at, created_at) \
             VALUES (?, 'confirm', ?, ?)",
        )
        .bind(id.0)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

impl Store {
    /// Handles a subscribe request in one write transaction: creates or refreshes a pending subscriber and queues at most
    /// one confirmation, or, for an active address, a rate-limited mail
    /// with the manage link. An active address suppressed for a reason its
    /// owner may lift (a soft-bounce limit) goes back through double
    /// opt-in instead; confirming lifts the suppression. No mail is sent
    /// here; the outbox worker does.
    pub async fn request_subscription(
        &self,
        request: SubscribeRequest<'_>,
        limits: &ConfirmLimits,
        manage_hash: ManageHashFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<(SubscribeOutcome, Option<SubscriberId>)> {
        let SubscribeRequest {
            email,
            prefs,
            consent,
            choices,
        } = request;
        let mut tx = self.begin_write().await?;
        let hash = email.hash();
        let suppressed = match suppression_of(&mut tx, email).await? {
            Some(reason) if !reason.lifted_by_own_opt_in() => {
                let counted = record_send_limited(&mut tx, &hash, limits, now).await?;
                tx.commit().await?;
                let outcome = if counted {
                    SubscribeOutcome::Suppressed
                } else {
                    SubscribeOutcome::RateLimited
                };
                return Ok((outcome, None));
            }
            found => found.is_some(),
        };
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, state FROM subscribers WHERE email_canonical = ?")
                .bind(email.canonical())
                .fetch_optional(&mut *tx)
                .await?;
        let (id, kind) = match existing {
            None => {
                let id =
                    insert_subscriber(&mut tx, email, SubscriberState::Pending, prefs, now).await?;
                insert_manage_token(&mut tx, id, &manage_hash(id, 0), now).await?;
                insert_consent(&mut tx, id, consent, &prefs.topics, now, false).await?;
                (id, "confirm")
            }
            Some((id, state)) => {
                let id = SubscriberId(id);
                match SubscriberState::parse(&state) {
                    Some(SubscriberState::Active | SubscriberState::Paused) if !suppressed => {
                        (id, "manage_link")
                    }
                    _ => {
                        // Pending, unsubscribed, or suppressed for a reason
                        // the person may lift: a fresh double opt-in with
                        // the preferences just submitted.
                        write_preferences(&mut tx, id, prefs, now).await?;
                        sqlx::query(
                            "UPDATE subscribers SET state = 'pending', updated_at = ? WHERE id = ?",
                        )
                        .bind(ts(now))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                        insert_consent(&mut tx, id, consent, &prefs.topics, now, false).await?;
                        (id, "confirm")
                    }
                }
            }
        };
        if kind == "confirm" {
            // An active reader's choices are not touched by a form anyone
            // can post; a pending one's count once they confirm.
            replace_pending_choices(&mut tx, id, choices).await?;
        }
        let queued = queue_limited(&mut tx, id, &hash, kind, limits, now).await?;
        tx.commit().await?;
        let outcome = match (queued, kind) {
            (false, _) => SubscribeOutcome::RateLimited,
            (true, "confirm") => SubscribeOutcome::ConfirmationQueued,
            (true, _) => SubscribeOutcome::ManageLinkQueued,
        };
        Ok((outcome, Some(id)))
    }

    /// Adds an address as already confirmed, for operators migrating a
    /// list (`subscribers add --confirmed`); recorded as an operator import
    /// in the consent record. An existing address is a `Conflict`; a
    /// suppressed one (any reason) is `Suppressed` and stays suppressed.
    pub async fn add_subscriber(
        &self,
        email: &EmailAddress,
        prefs: &Preferences,
        state: SubscriberState,
        consent: &ConsentInput,
        manage_hash: ManageHashFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<SubscriberId> {
        let mut tx = self.begin_write().await?;
        let id = add_one(&mut tx, email, prefs, state, consent, manage_hash, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// [`Store::add_subscriber`] for many addresses in one transaction,
    /// for large imports (and the digest benchmark's setup): one commit
    /// instead of one per address. Any existing address is a `Conflict`,
    /// any suppressed one `Suppressed`, and nothing is added.
    pub async fn add_subscribers(
        &self,
        rows: &[(EmailAddress, Preferences)],
        state: SubscriberState,
        consent: &ConsentInput,
        manage_hash: ManageHashFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SubscriberId>> {
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for (email, prefs) in rows {
            ids.push(add_one(&mut tx, email, prefs, state, consent, manage_hash, now).await?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// "Mail me my settings link" from a used confirmation link: queues
    /// the manage-link mail under the same per-address and global limits
    /// as confirmations. False when nothing was queued (not a used
    /// link of a subscribed address, suppressed, or over a limit); the
    /// caller answers the same either way.
    pub async fn request_settings_link(
        &self,
        token_hash: &str,
        limits: &ConfirmLimits,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let Some(id) = used_confirm_owner(&mut tx, token_hash).await? else {
            tx.commit().await?;
            return Ok(false);
        };
        let sub = load(&mut tx, id).await?;
        if suppression_of(&mut tx, &sub.email).await?.is_some() {
            tx.commit().await?;
            return Ok(false);
        }
        let queued =
            queue_limited(&mut tx, id, &sub.email.hash(), "manage_link", limits, now).await?;
        tx.commit().await?;
        Ok(queued)
    }
}
