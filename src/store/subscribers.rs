//! Subscribers, consent records, tokens and suppressions.

use super::{parse_ts, parse_ts_opt, ts, Result, Store, StoreError};
use crate::domain::{
    hash_canonical, EmailAddress, Frequency, Preferences, SubscriberId, SubscriberState,
    TokenPurpose,
};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Serialize;
use sqlx::{Sqlite, SqliteConnection};

/// A subscriber as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscriber {
    pub id: SubscriberId,
    pub email: EmailAddress,
    pub state: SubscriberState,
    pub preferences: Preferences,
    /// Generation of the manage token; bumping it rotates the link.
    pub token_generation: i64,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

/// How consent was given (R43).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMethod {
    WebForm,
    OperatorImport,
}

impl ConsentMethod {
    fn as_str(self) -> &'static str {
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

/// Limits on confirmation mails (R32). Exceeding them is silent: the
/// visitor sees the same response (R31).
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
    /// Nothing queued because a per-address or global limit was reached.
    RateLimited,
    /// The address bounced hard or complained: nothing is ever sent.
    Suppressed,
}

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

/// Outcome of `POST /confirm/{token}`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmOutcome {
    Confirmed(Box<Subscriber>),
    /// Unknown, already used or expired: one generic answer.
    Invalid,
}

/// Computes the stored hash of a subscriber's manage token for a
/// generation. The store never sees the token itself.
pub type ManageHashFn<'a> = &'a (dyn Fn(SubscriberId, i64) -> String + Send + Sync);

pub(super) const SUBSCRIBER_COLUMNS: &str =
    "id, email, email_canonical, state, topics, excluded, authors, \
     categories, digest_size, frequency, send_time, time_zone, fallback_trending, \
     token_generation, created_at, confirmed_at, unsubscribed_at";

/// method, source, consent hash, topics, ip, requested_at, confirmed_at.
type ConsentRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// subscriber_id, expires_at, used_at, revoked_at.
type TokenRow = (i64, Option<String>, Option<String>, Option<String>);

#[derive(sqlx::FromRow)]
pub(super) struct SubscriberRow {
    id: i64,
    email: String,
    email_canonical: String,
    state: String,
    topics: String,
    excluded: String,
    authors: String,
    categories: String,
    digest_size: i64,
    frequency: String,
    send_time: String,
    time_zone: String,
    fallback_trending: bool,
    token_generation: i64,
    created_at: String,
    confirmed_at: Option<String>,
    unsubscribed_at: Option<String>,
}

fn json_list(s: &str, what: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

impl TryFrom<SubscriberRow> for Subscriber {
    type Error = StoreError;

    fn try_from(r: SubscriberRow) -> Result<Subscriber> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("subscriber {}: bad {what}", r.id));
        Ok(Subscriber {
            id: SubscriberId(r.id),
            email: EmailAddress::from_stored(r.email.clone(), r.email_canonical.clone()),
            state: SubscriberState::parse(&r.state).ok_or_else(|| corrupt("state"))?,
            preferences: Preferences {
                topics: json_list(&r.topics, "topics")?,
                excluded: json_list(&r.excluded, "excluded")?,
                authors: json_list(&r.authors, "authors")?,
                categories: json_list(&r.categories, "categories")?,
                digest_size: u8::try_from(r.digest_size).map_err(|_| corrupt("digest_size"))?,
                frequency: Frequency::decode(&r.frequency).ok_or_else(|| corrupt("frequency"))?,
                send_time: NaiveTime::parse_from_str(&r.send_time, "%H:%M")
                    .map_err(|_| corrupt("send_time"))?,
                time_zone: r.time_zone.parse().map_err(|_| corrupt("time_zone"))?,
                fallback_trending: r.fallback_trending,
            },
            token_generation: r.token_generation,
            created_at: parse_ts(&r.created_at)?,
            confirmed_at: parse_ts_opt(r.confirmed_at)?,
            unsubscribed_at: parse_ts_opt(r.unsubscribed_at)?,
        })
    }
}

async fn load(conn: &mut SqliteConnection, id: SubscriberId) -> Result<Subscriber> {
    let row: SubscriberRow = sqlx::query_as(&format!(
        "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = ?"
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    row.try_into()
}

/// The suppression of an address, looked up under every hash it may be
/// stored under ([`EmailAddress::suppression_hashes`]). When both exist,
/// one that an opt-in cannot lift wins.
async fn suppression_of(
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

/// The preference columns, in the order [`bind_preferences`] binds them.
const PREFERENCE_COLUMNS: &str = "topics, excluded, authors, categories, digest_size, \
     frequency, send_time, time_zone, fallback_trending";

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds a subscriber's preferences as stored: lists as JSON arrays, the
/// frequency encoded, the send time as HH:MM, the zone by IANA name.
fn bind_preferences<'q>(q: SqliteQuery<'q>, prefs: &Preferences) -> SqliteQuery<'q> {
    q.bind(to_json(&prefs.topics))
        .bind(to_json(&prefs.excluded))
        .bind(to_json(&prefs.authors))
        .bind(to_json(&prefs.categories))
        .bind(prefs.digest_size as i64)
        .bind(prefs.frequency.encode())
        .bind(prefs.send_time.format("%H:%M").to_string())
        .bind(prefs.time_zone.name())
        .bind(prefs.fallback_trending)
}

async fn insert_subscriber(
    tx: &mut super::WriteTx,
    email: &EmailAddress,
    state: SubscriberState,
    prefs: &Preferences,
    now: DateTime<Utc>,
) -> Result<SubscriberId> {
    let sql = format!(
        "INSERT INTO subscribers ({PREFERENCE_COLUMNS}, email, email_canonical, state, \
         created_at, updated_at, confirmed_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
    );
    let row = bind_preferences(sqlx::query(&sql), prefs)
        .bind(email.as_str())
        .bind(email.canonical())
        .bind(state.as_str())
        .bind(ts(now))
        .bind(ts(now))
        .bind((state == SubscriberState::Active).then(|| ts(now)))
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| StoreError::from_unique(e, "address already subscribed"))?;
    Ok(SubscriberId(sqlx::Row::try_get(&row, "id")?))
}

async fn write_preferences(
    conn: &mut SqliteConnection,
    id: SubscriberId,
    prefs: &Preferences,
    now: DateTime<Utc>,
) -> Result<()> {
    let sql = format!(
        "UPDATE subscribers SET ({PREFERENCE_COLUMNS}) = (?, ?, ?, ?, ?, ?, ?, ?, ?), \
         updated_at = ? WHERE id = ?"
    );
    bind_preferences(sqlx::query(&sql), prefs)
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_consent(
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

async fn insert_manage_token(
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

/// A subscriber to add in a bulk import.
#[derive(Debug, Clone)]
pub struct NewSubscriber {
    pub email: EmailAddress,
    pub prefs: Preferences,
    /// `Pending` (a confirmation mail is queued), `Active` or `Paused`.
    pub state: SubscriberState,
}

/// What one [`Store::import_subscribers`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub added: u64,
    /// Already subscribed (or earlier in the same import): left unchanged.
    pub existing: u64,
    /// On the suppression list, for any reason: never imported.
    pub suppressed: u64,
}

impl std::ops::AddAssign for ImportCounts {
    fn add_assign(&mut self, o: ImportCounts) {
        self.added += o.added;
        self.existing += o.existing;
        self.suppressed += o.suppressed;
    }
}

/// Rows per multi-row statement of an import (15 parameters each, far
/// below SQLite's bound-parameter limit).
const IMPORT_CHUNK: usize = 500;

/// `INSERT … VALUES (…), (…)` of `rows` rows of `cols` values into
/// `table (columns)`: one prepared statement per shape, reused by sqlx.
fn multi_insert(table_and_columns: &str, rows: usize, cols: usize) -> String {
    format!(
        "INSERT INTO {table_and_columns} VALUES {}",
        super::value_rows(rows, cols)
    )
}

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
                    "INSERT INTO suppressions (email_hash, reason, created_at) \
                     SELECT ?, reason, created_at FROM suppressions WHERE email_hash = ? \
                     ON CONFLICT (email_hash) DO NOTHING",
                )
                .bind(email.hash())
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

    /// Handles a subscribe request in one write transaction (R28, R31,
    /// R32): creates or refreshes a pending subscriber and queues at most
    /// one confirmation, or, for an active address, a rate-limited mail
    /// with the manage link. No mail is sent here; the outbox worker does.
    pub async fn request_subscription(
        &self,
        email: &EmailAddress,
        prefs: &Preferences,
        consent: &ConsentInput,
        limits: &ConfirmLimits,
        manage_hash: ManageHashFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<(SubscribeOutcome, Option<SubscriberId>)> {
        let mut tx = self.begin_write().await?;
        let hash = email.hash();
        if let Some(reason) = suppression_of(&mut tx, email).await? {
            if !reason.lifted_by_own_opt_in() {
                tx.commit().await?;
                return Ok((SubscribeOutcome::Suppressed, None));
            }
        }
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
                    Some(SubscriberState::Active | SubscriberState::Paused) => (id, "manage_link"),
                    _ => {
                        // Pending or unsubscribed: a fresh double opt-in with
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

    /// Bulk import in one write transaction: skips suppressed addresses
    /// (any reason; an import never lifts a suppression) and existing
    /// ones, and adds the rest with their manage token, an
    /// operator-import consent record and, for pending rows, a queued
    /// confirmation. Multi-row statements of [`IMPORT_CHUNK`] rows, so a
    /// call with thousands of rows is a handful of statements.
    pub async fn import_subscribers(
        &self,
        rows: &[NewSubscriber],
        consent: &ConsentInput,
        manage_hash: ManageHashFn<'_>,
        now: DateTime<Utc>,
    ) -> Result<ImportCounts> {
        let mut counts = ImportCounts::default();
        let mut tx = self.begin_write().await?;
        for chunk in super::shaped_chunks(rows, IMPORT_CHUNK) {
            let fresh = unsuppressed(&mut tx, chunk).await?;
            counts.suppressed += (chunk.len() - fresh.len()) as u64;
            let added = insert_new(&mut tx, &fresh, now).await?;
            counts.existing += (fresh.len() - added.len()) as u64;
            counts.added += added.len() as u64;
            insert_import_children(&mut tx, &added, consent, manage_hash, now).await?;
        }
        tx.commit().await?;
        Ok(counts)
    }

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

    /// `POST /confirm/{token}` (R29): marks the token used and activates
    /// the subscriber in one transaction. A later fresh opt-in also lifts a
    /// `deleted` / `manual` / `complaint` suppression of the address (R46, issue 14).
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
        let sub = load(&mut tx, id).await?;
        sqlx::query(
            "DELETE FROM suppressions WHERE email_hash IN (SELECT value FROM json_each(?)) \
             AND reason IN ('deleted', 'manual', 'complaint')",
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

    /// "Mail me my settings link" from a used confirmation link: queues
    /// the manage-link mail under the same per-address and global limits
    /// as confirmations (R32). False when nothing was queued (not a used
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

    pub async fn subscriber(&self, id: SubscriberId) -> Result<Subscriber> {
        let mut conn = self.pool.acquire().await?;
        load(&mut conn, id).await
    }

    /// The subscribers with these ids, in one query; deleted ones are
    /// simply absent.
    pub async fn subscribers_by_ids(&self, ids: &[SubscriberId]) -> Result<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers \
             WHERE id IN (SELECT value FROM json_each(?))"
        ))
        .bind(super::json_ids(ids.iter().map(|i| i.0)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Subscriber::try_from).collect()
    }

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

    pub async fn subscriber_by_email(&self, email: &EmailAddress) -> Result<Option<Subscriber>> {
        let row: Option<SubscriberRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE email_canonical = ?"
        ))
        .bind(email.canonical())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Subscriber::try_from).transpose()
    }

    /// Replaces a subscriber's preferences.
    pub async fn update_preferences(
        &self,
        id: SubscriberId,
        prefs: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<Subscriber> {
        let mut tx = self.begin_write().await?;
        write_preferences(&mut tx, id, prefs, now).await?;
        let sub = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(sub)
    }

    /// Moves `active ⇄ paused`. Returns the subscriber after the change;
    /// a subscriber in another state is returned unchanged.
    pub async fn set_paused(
        &self,
        id: SubscriberId,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Subscriber> {
        let (from, to) = if paused {
            ("active", "paused")
        } else {
            ("paused", "active")
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE subscribers SET state = ?, updated_at = ? WHERE id = ? AND state = ?")
            .bind(to)
            .bind(ts(now))
            .bind(id.0)
            .bind(from)
            .execute(&mut *tx)
            .await?;
        let sub = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(sub)
    }

    /// Unsubscribes (R14, idempotent): any state becomes `unsubscribed`;
    /// the first time records when. Returns whether the state changed.
    pub async fn unsubscribe(&self, id: SubscriberId, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE subscribers SET state = 'unsubscribed', unsubscribed_at = ?, updated_at = ? \
             WHERE id = ? AND state != 'unsubscribed'",
        )
        .bind(ts(now))
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        // Pending transactional mail to someone who left is dropped.
        sqlx::query(
            "UPDATE outbox SET state = 'skipped', last_error = 'unsubscribed' \
             WHERE subscriber_id = ? AND state IN ('pending', 'retry')",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Deletes everything held about a subscriber and keeps only a
    /// suppression hash of the address (R46).
    pub async fn delete_subscriber(
        &self,
        id: SubscriberId,
        reason: SuppressionReason,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let canonical: Option<String> =
            sqlx::query_scalar("SELECT email_canonical FROM subscribers WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let canonical = canonical.ok_or(StoreError::NotFound)?;
        let hash = hash_canonical(&canonical);
        sqlx::query(
            "INSERT INTO suppressions (email_hash, reason, created_at) VALUES (?, ?, ?) \
             ON CONFLICT(email_hash) DO NOTHING",
        )
        .bind(&hash)
        .bind(reason.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        // Tokens, consents and outbox rows go with the subscriber (ON DELETE CASCADE).
        sqlx::query("DELETE FROM subscribers WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
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

    /// Everything held about one subscriber, for self-service export (R45).
    pub async fn export_subscriber(&self, id: SubscriberId) -> Result<serde_json::Value> {
        let sub = self.subscriber(id).await?;
        let consents: Vec<ConsentRow> = sqlx::query_as(
            "SELECT method, source, consent_text_hash, topics, ip, requested_at, confirmed_at \
                 FROM consents WHERE subscriber_id = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let consents: Vec<serde_json::Value> = consents
            .into_iter()
            .map(|(method, source, hash, topics, ip, req, conf)| {
                serde_json::json!({
                    "method": method, "source": source, "consent_text_sha256": hash,
                    "topics": serde_json::from_str::<serde_json::Value>(&topics).unwrap_or_default(),
                    "ip": ip, "requested_at": req, "confirmed_at": conf,
                })
            })
            .collect();
        let mut export = serde_json::json!({
            "subscriber": {
                "email": sub.email.as_str(),
                "state": sub.state,
                "created_at": ts(sub.created_at),
                "confirmed_at": sub.confirmed_at.map(ts),
                "unsubscribed_at": sub.unsubscribed_at.map(ts),
                "preferences": sub.preferences,
            },
            "consents": consents,
        });
        let history = self.delivery_history_json(id).await?;
        export["deliveries"] = history;
        export["bounces"] = self.bounce_history_json(id).await?;
        export["feedback"] = self.feedback_export_json(id).await?;
        Ok(export)
    }

    /// Delivery history for exports: date, state, when sent, papers.
    async fn delivery_history_json(&self, id: SubscriberId) -> Result<serde_json::Value> {
        let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT digest_date, state, sent_at, papers FROM deliveries \
             WHERE subscriber_id = ? ORDER BY digest_date",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(serde_json::Value::Array(
            rows.into_iter()
                .map(|(date, state, sent_at, papers)| {
                    serde_json::json!({
                        "digest_date": date, "state": state, "sent_at": sent_at,
                        "papers": papers.and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok()),
                    })
                })
                .collect(),
        ))
    }

    /// Subscribers (optionally in one state) with `id > after`, in id
    /// order, at most `limit`.
    pub(crate) async fn subscribers_page(
        &self,
        state: Option<&str>,
        after: SubscriberId,
        limit: u32,
    ) -> Result<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers \
             WHERE id > ? AND (? IS NULL OR state = ?) ORDER BY id LIMIT ?"
        ))
        .bind(after.0)
        .bind(state)
        .bind(state)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Subscriber::try_from).collect()
    }

    /// All subscribers, optionally in one state, ordered by id.
    pub async fn list_subscribers(
        &self,
        state: Option<SubscriberState>,
    ) -> Result<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = match state {
            Some(s) => {
                sqlx::query_as(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE state = ? ORDER BY id"
                ))
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(Subscriber::try_from).collect()
    }

    /// Subscriber counts by state, for /metrics.
    pub async fn count_by_state(&self) -> Result<Vec<(SubscriberState, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM subscribers GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(SubscriberState::ALL
            .into_iter()
            .map(|s| {
                let n = rows
                    .iter()
                    .find(|(st, _)| st == s.as_str())
                    .map_or(0, |(_, n)| *n);
                (s, n)
            })
            .collect())
    }

    /// Deletes unconfirmed subscribers older than `max_age` and forgets
    /// confirmation-rate rows older than a day (R28, R47). Returns how
    /// many subscribers were purged.
    pub async fn purge_expired(&self, max_age: Duration, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM subscribers WHERE state = 'pending' AND created_at < ?")
            .bind(ts(now - max_age))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM confirm_sends WHERE queued_at < ?")
            .bind(ts(now - Duration::hours(25)))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tokens WHERE purpose = 'confirm' AND expires_at < ?")
            .bind(ts(now - Duration::days(1)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// The rows of `chunk` whose address is not suppressed, from one query.
async fn unsuppressed<'a>(
    tx: &mut super::WriteTx,
    chunk: &'a [NewSubscriber],
) -> Result<Vec<&'a NewSubscriber>> {
    let hashes: Vec<Vec<String>> = chunk.iter().map(|r| r.email.suppression_hashes()).collect();
    let all: Vec<String> = hashes.iter().flatten().cloned().collect();
    let found: std::collections::HashSet<String> = sqlx::query_scalar(
        "SELECT email_hash FROM suppressions WHERE email_hash IN (SELECT value FROM json_each(?))",
    )
    .bind(to_json(&all))
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    Ok(chunk
        .iter()
        .zip(&hashes)
        .filter(|(_, hs)| !hs.iter().any(|h| found.contains(h)))
        .map(|(r, _)| r)
        .collect())
}

/// Inserts the rows whose address is new; returns them with their ids.
async fn insert_new<'a>(
    tx: &mut super::WriteTx,
    rows: &[&'a NewSubscriber],
    now: DateTime<Utc>,
) -> Result<Vec<(SubscriberId, &'a NewSubscriber)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let now = ts(now);
    let sql = format!(
        "{} ON CONFLICT (email_canonical) DO NOTHING RETURNING id, email_canonical",
        multi_insert(
            &format!(
                "subscribers ({PREFERENCE_COLUMNS}, email, email_canonical, state, created_at, \
                 updated_at, confirmed_at)"
            ),
            rows.len(),
            15
        )
    );
    let mut q = sqlx::query(&sql);
    for r in rows {
        let confirmed = matches!(r.state, SubscriberState::Active | SubscriberState::Paused);
        q = bind_preferences(q, &r.prefs)
            .bind(r.email.as_str())
            .bind(r.email.canonical())
            .bind(r.state.as_str())
            .bind(now.clone())
            .bind(now.clone())
            .bind(confirmed.then(|| now.clone()));
    }
    let inserted = q.fetch_all(&mut **tx).await?;
    let mut by_canonical: std::collections::HashMap<&str, &'a NewSubscriber> =
        rows.iter().map(|r| (r.email.canonical(), *r)).collect();
    let mut out = Vec::with_capacity(inserted.len());
    for row in inserted {
        let id: i64 = sqlx::Row::try_get(&row, 0)?;
        let canonical: String = sqlx::Row::try_get(&row, 1)?;
        if let Some(r) = by_canonical.remove(canonical.as_str()) {
            out.push((SubscriberId(id), r));
        }
    }
    Ok(out)
}

/// Manage tokens, consent records and queued confirmations of freshly
/// imported subscribers: one multi-row statement each.
async fn insert_import_children(
    tx: &mut super::WriteTx,
    added: &[(SubscriberId, &NewSubscriber)],
    consent: &ConsentInput,
    manage_hash: ManageHashFn<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    let now = ts(now);
    let sql = multi_insert(
        "tokens (hash, subscriber_id, purpose, created_at)",
        added.len(),
        4,
    );
    let mut q = sqlx::query(&sql);
    for (id, _) in added {
        q = q
            .bind(manage_hash(*id, 0))
            .bind(id.0)
            .bind("manage")
            .bind(now.clone());
    }
    q.execute(&mut **tx).await?;
    let sql = multi_insert(
        "consents (subscriber_id, method, source, consent_text_hash, topics, ip, requested_at, \
         confirmed_at)",
        added.len(),
        8,
    );
    let mut q = sqlx::query(&sql);
    for (id, r) in added {
        let confirmed = r.state != SubscriberState::Pending;
        q = q
            .bind(id.0)
            .bind(consent.method.as_str())
            .bind(&consent.source)
            .bind(&consent.consent_text_hash)
            .bind(to_json(&r.prefs.topics))
            .bind(&consent.ip)
            .bind(now.clone())
            .bind(confirmed.then(|| now.clone()));
    }
    q.execute(&mut **tx).await?;
    let pending: Vec<SubscriberId> = added
        .iter()
        .filter(|(_, r)| r.state == SubscriberState::Pending)
        .map(|(id, _)| *id)
        .collect();
    if !pending.is_empty() {
        let sql = multi_insert(
            "outbox (subscriber_id, kind, next_attempt_at, created_at)",
            pending.len(),
            4,
        );
        let mut q = sqlx::query(&sql);
        for id in pending {
            q = q
                .bind(id.0)
                .bind("confirm")
                .bind(now.clone())
                .bind(now.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn used_confirm_owner(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use crate::store::StoreOptions;
    use chrono::TimeZone;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    fn prefs() -> Preferences {
        Preferences {
            topics: vec!["retrieval".into()],
            excluded: vec![],
            authors: vec![],
            categories: vec![],
            digest_size: 5,
            frequency: Frequency::Daily,
            send_time: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            time_zone: chrono_tz::UTC,
            fallback_trending: false,
        }
    }

    fn operator() -> ConsentInput {
        ConsentInput {
            method: ConsentMethod::OperatorImport,
            source: "test".into(),
            consent_text_hash: "test".into(),
            ip: None,
        }
    }

    async fn add(store: &Store, email: &str, state: SubscriberState) -> Result<SubscriberId> {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
        store
            .add_subscriber(
                &EmailAddress::parse(email).unwrap(),
                &prefs(),
                state,
                &operator(),
                &|id, g| format!("hash-{}-{g}", id.0),
                now,
            )
            .await
    }

    #[tokio::test]
    async fn an_operator_add_never_lifts_a_suppression_of_any_reason() {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
        let id = add(&store, "gone@example.org", SubscriberState::Active)
            .await
            .unwrap();
        store
            .delete_subscriber(id, SuppressionReason::Deleted, now)
            .await
            .unwrap();
        let manual = EmailAddress::parse("blocked@example.org").unwrap();
        store
            .suppress(&manual, SuppressionReason::Manual, now)
            .await
            .unwrap();
        for email in [
            "gone@example.org",
            "GONE@example.org",
            "blocked@example.org",
        ] {
            for state in [SubscriberState::Active, SubscriberState::Pending] {
                let err = add(&store, email, state).await.unwrap_err();
                assert!(matches!(err, StoreError::Suppressed(_)), "{email}: {err}");
            }
            let e = EmailAddress::parse(email).unwrap();
            assert!(store.suppression(&e).await.unwrap().is_some(), "{email}");
            assert!(store.subscriber_by_email(&e).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn one_mailbox_typed_three_ways_is_one_subscriber() {
        let (store, _dir) = temp_store().await;
        add(&store, "keeper@example.com", SubscriberState::Active)
            .await
            .unwrap();
        for other in ["Keeper@example.com", "KEEPER@EXAMPLE.COM"] {
            let err = add(&store, other, SubscriberState::Active)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{other}: {err}");
            let found = store
                .subscriber_by_email(&EmailAddress::parse(other).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.email.as_str(), "keeper@example.com");
        }
        assert_eq!(store.list_subscribers(None).await.unwrap().len(), 1);
    }

    /// A suppression recorded when canonical keys kept the local part's
    /// case is still found for the address as it was typed.
    #[tokio::test]
    async fn a_suppression_stored_under_the_old_key_still_matches() {
        let (store, _dir) = temp_store().await;
        store
            .write_one(
                sqlx::query(
                    "INSERT INTO suppressions (email_hash, reason, created_at) \
                     VALUES (?, 'hard_bounce', '2026-01-01T00:00:00.000Z')",
                )
                .bind(hash_canonical("Bounced@example.org")),
            )
            .await
            .unwrap();
        let typed = EmailAddress::parse("Bounced@Example.org").unwrap();
        assert_eq!(
            store.suppression(&typed).await.unwrap(),
            Some(SuppressionReason::HardBounce)
        );
        assert_eq!(store.suppressed_among(&[&typed]).await.unwrap(), vec![true]);
        let err = add(&store, "Bounced@example.org", SubscriberState::Active)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Suppressed("hard_bounce")),
            "{err}"
        );
    }

    async fn old_schema_pool(path: &std::path::Path, dir: &std::path::Path) -> sqlx::SqlitePool {
        let old = dir.join("old-migrations");
        std::fs::create_dir(&old).unwrap();
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap()
        {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.as_str() < "20261204000400" {
                std::fs::copy(entry.path(), old.join(&name)).unwrap();
            }
        }
        let pool = sqlx::SqlitePool::connect_with(
            SqliteConnectOptions::from_str("sqlite://")
                .unwrap()
                .filename(path)
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        pool
    }

    /// A database where one mailbox became three subscribers opens with
    /// them folded into the one with the oldest confirmed consent; the
    /// others' consents and links move to it, the merge is recorded, and
    /// a later unsubscribe of one variant wins.
    #[tokio::test]
    async fn the_upgrade_folds_case_duplicates_keeping_the_oldest_confirmed_consent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let pool = old_schema_pool(&path, dir.path()).await;
        // (id, email, state, created, confirmed, unsubscribed)
        let rows = [
            (
                1,
                "Keeper@example.com",
                "active",
                "2026-03-01",
                Some("2026-03-02"),
                None,
            ),
            (
                2,
                "keeper@example.com",
                "active",
                "2026-01-01",
                Some("2026-01-05"),
                None,
            ),
            (3, "KEEPER@example.com", "pending", "2025-12-01", None, None),
            (
                4,
                "other@example.com",
                "active",
                "2026-01-01",
                Some("2026-01-01"),
                None,
            ),
            (
                5,
                "Quit@example.com",
                "active",
                "2026-01-01",
                Some("2026-01-02"),
                None,
            ),
            (
                6,
                "quit@example.com",
                "unsubscribed",
                "2026-02-01",
                Some("2026-02-02"),
                Some("2026-05-01"),
            ),
        ];
        for (id, email, state, created, confirmed, unsub) in rows {
            let t = |d: &str| format!("{d}T00:00:00.000Z");
            let (local, domain) = email.split_once('@').unwrap();
            sqlx::query(
                "INSERT INTO subscribers (id, email, email_canonical, state, digest_size, \
                 frequency, send_time, time_zone, created_at, updated_at, confirmed_at, \
                 unsubscribed_at) VALUES (?, ?, ?, ?, 5, 'daily', '08:00', 'UTC', ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(email)
            .bind(format!("{local}@{}", domain.to_lowercase()))
            .bind(state)
            .bind(t(created))
            .bind(t(created))
            .bind(confirmed.map(t))
            .bind(unsub.map(t))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO consents (subscriber_id, method, source, consent_text_hash, topics, \
                 requested_at, confirmed_at) VALUES (?, 'web_form', 'f', 'h', '[]', ?, ?)",
            )
            .bind(id)
            .bind(t(created))
            .bind(confirmed.map(t))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO tokens (hash, subscriber_id, purpose, created_at) \
                 VALUES (?, ?, 'manage', '2026-01-01T00:00:00.000Z')",
            )
            .bind(format!("manage-{id}"))
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
        // The variant that bounced was suppressed under its old key.
        sqlx::query(
            "INSERT INTO suppressions (email_hash, reason, created_at) \
             VALUES (?, 'hard_bounce', '2026-04-01T00:00:00.000Z')",
        )
        .bind(hash_canonical("KEEPER@example.com"))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = Store::open(StoreOptions {
            path,
            busy_timeout: std::time::Duration::from_secs(10),
            max_connections: 2,
            synchronous: crate::domain::Synchronous::Normal,
        })
        .await
        .unwrap();
        let subs = store.list_subscribers(None).await.unwrap();
        let summary: Vec<(i64, &str, &str, &str)> = subs
            .iter()
            .map(|s| {
                (
                    s.id.0,
                    s.email.as_str(),
                    s.email.canonical(),
                    s.state.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (2, "keeper@example.com", "keeper@example.com", "active"),
                (4, "other@example.com", "other@example.com", "active"),
                (5, "Quit@example.com", "quit@example.com", "unsubscribed"),
            ]
        );
        assert_eq!(
            ts(subs[0].confirmed_at.unwrap()),
            "2026-01-05T00:00:00.000Z"
        );
        let consents: i64 =
            sqlx::query_scalar("SELECT count(*) FROM consents WHERE subscriber_id = 2")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(consents, 3);
        for token in ["manage-1", "manage-2", "manage-3"] {
            let owner = store
                .subscriber_for_token(token, TokenPurpose::Manage, Utc::now())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(owner.id, SubscriberId(2), "{token}");
        }
        let merges: Vec<(i64, i64, String, bool)> = sqlx::query_as(
            "SELECT kept_id, merged_id, merged_state, reported_at IS NOT NULL \
             FROM subscriber_merges ORDER BY merged_id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(
            merges,
            vec![
                (2, 1, "active".into(), true),
                (2, 3, "pending".into(), true),
                (5, 6, "unsubscribed".into(), true),
            ]
        );
        // The bounced variant's suppression now covers the whole mailbox.
        let any_case = EmailAddress::parse("kEEper@example.com").unwrap();
        assert_eq!(
            store.suppression(&any_case).await.unwrap(),
            Some(SuppressionReason::HardBounce)
        );
        assert!(store.finish_mailbox_merges().await.unwrap().is_empty());
    }
}
