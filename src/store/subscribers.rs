//! Subscribers, consent records, tokens and suppressions, one file per
//! kind of record under `subscribers/`; this file holds the subscriber
//! row itself and its preferences.

mod consent;
mod import;
mod lifecycle;
mod listing;
mod merge;
mod subscribe;
mod suppression;
mod tokens;

pub use consent::{ConsentInput, ConsentMethod};
pub use import::{ImportCounts, NewSubscriber};
pub use merge::MailboxMerge;
pub use subscribe::{ConfirmLimits, SubscribeOutcome, SubscribeRequest};
pub use suppression::SuppressionReason;
pub use tokens::ConfirmOutcome;

// The submodules' statements name these as `super::…`.
use super::{parse_ts, parse_ts_opt, ts, Result, Store, StoreError};
use super::{shaped_chunks, value_rows, WriteTx};
use crate::domain::{EmailAddress, Frequency, Preferences, SubscriberId, SubscriberState};
use chrono::{DateTime, NaiveTime, Utc};
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

/// Computes the stored hash of a subscriber's manage token for a
/// generation. The store never sees the token itself.
pub type ManageHashFn<'a> = &'a (dyn Fn(SubscriberId, i64) -> String + Send + Sync);

pub(super) const SUBSCRIBER_COLUMNS: &str =
    "id, email, email_canonical, state, topics, excluded, authors, \
     categories, digest_size, frequency, send_time, time_zone, fallback_trending, \
     token_generation, created_at, confirmed_at, unsubscribed_at";

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

impl Store {
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
}

#[cfg(test)]
mod tests;
