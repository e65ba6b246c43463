//! The one write connection of this process, and its turn.
//!
//! SQLite has a single writer per database anyway. Keeping one connection
//! for every write of the process, held behind an async mutex, means:
//! - writers queue on the mutex and are woken as soon as the previous
//!   commit ends, instead of failing `BEGIN IMMEDIATE` with SQLITE_BUSY
//!   and sleeping whole milliseconds in the busy handler;
//! - one page cache holds the hot pages of every write. With two write
//!   connections taking turns (a pool of two), each discarded its cache
//!   whenever the other had written, and a million-subscriber digest run
//!   re-read its hot index pages from the OS for every commit;
//! - no pool hand-back: sqlx returns a pooled connection from a spawned
//!   task, and every queued write waited for that task.
//!
//! A holder that does not finish cleanly (a cancelled future, a failed
//! commit) may leave a transaction open on the connection: the next turn
//! replaces it with a fresh connection (closing the old one rolls back
//! whatever it had open), so no later write runs inside a leftover
//! transaction.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Sqlite, TransactionManager};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

type Manager = <Sqlite as sqlx::Database>::TransactionManager;

/// The write connection behind its mutex. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    slot: Arc<Mutex<Slot>>,
    opts: Arc<SqliteConnectOptions>,
}

#[derive(Debug)]
struct Slot {
    conn: Option<SqliteConnection>,
    /// False while a holder uses the connection, and after one that did
    /// not finish; the next turn then starts on a new connection.
    clean: bool,
}

/// This process's write turn: the write connection, held exclusively
/// until dropped. Call [`WriteTurn::finish`] once the work left no
/// transaction open; otherwise the connection is replaced.
#[derive(Debug)]
pub(crate) struct WriteTurn {
    guard: OwnedMutexGuard<Slot>,
}

impl Writer {
    /// Connects the write connection with `opts` (its pragmas included).
    pub(crate) async fn connect(opts: SqliteConnectOptions) -> Result<Writer, sqlx::Error> {
        let conn = SqliteConnection::connect_with(&opts).await?;
        Ok(Writer {
            slot: Arc::new(Mutex::new(Slot {
                conn: Some(conn),
                clean: true,
            })),
            opts: Arc::new(opts),
        })
    }

    /// Waits for the turn (first come, first served) and hands over the
    /// connection, reconnecting if the previous holder left it unclean or
    /// the store was closed.
    pub(crate) async fn turn(&self) -> Result<WriteTurn, sqlx::Error> {
        let mut guard = self.slot.clone().lock_owned().await;
        if !guard.clean || guard.conn.is_none() {
            // Dropping ends the old connection's thread once it has run
            // what was queued on it; SQLite rolls back an open transaction
            // when the connection closes. A new `BEGIN IMMEDIATE` waits for
            // that in the busy handler.
            guard.conn = None;
            guard.conn = Some(SqliteConnection::connect_with(&self.opts).await?);
        }
        guard.clean = false;
        Ok(WriteTurn { guard })
    }

    /// Closes the connection; a later turn opens a new one.
    pub(crate) async fn close(&self) {
        let conn = self.slot.lock().await.conn.take();
        if let Some(conn) = conn {
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing the write connection");
            }
        }
    }
}

impl WriteTurn {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.guard
            .conn
            .as_mut()
            .expect("a turn always holds a connection")
    }

    fn conn_ref(&self) -> &SqliteConnection {
        self.guard
            .conn
            .as_ref()
            .expect("a turn always holds a connection")
    }

    /// The work is done and no transaction is left open: the next turn
    /// reuses the connection (and its page cache).
    pub(crate) fn finish(mut self) {
        self.guard.clean = true;
    }
}

/// A write transaction holding this process's write turn; derefs to the
/// connection, so queries take `&mut *tx`. Dropping it uncommitted rolls
/// back, as a [`sqlx::Transaction`] does.
#[derive(Debug)]
pub struct WriteTx {
    /// `None` once committed or rolled back.
    turn: Option<WriteTurn>,
}

impl WriteTx {
    /// Opens the transaction with `BEGIN IMMEDIATE`.
    pub(crate) async fn begin(mut turn: WriteTurn) -> Result<WriteTx, sqlx::Error> {
        Manager::begin(turn.conn(), Some("BEGIN IMMEDIATE".into())).await?;
        Ok(WriteTx { turn: Some(turn) })
    }

    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut turn = self.turn.take().expect("present until commit");
        // A failed or cancelled commit leaves the turn unfinished: the
        // connection is replaced rather than trusted.
        Manager::commit(turn.conn()).await?;
        turn.finish();
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(mut turn) = self.turn.take() {
            // Queued on the connection ahead of anything the next holder
            // sends, so the next turn starts outside any transaction.
            Manager::start_rollback(turn.conn());
            turn.finish();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &Self::Target {
        self.turn.as_ref().expect("present until commit").conn_ref()
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.turn.as_mut().expect("present until commit").conn()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::temp_store;
    use crate::store::Store;
    use std::time::Duration;

    /// `temp.mine`, which exists on the write connection only.
    async fn temp_table_on_the_writer(store: &Store) {
        store
            .write_one(sqlx::query("CREATE TEMP TABLE mine (x)"))
            .await
            .unwrap();
    }

    /// A temporary table lives on one connection only: every write finds
    /// it, so every write ran on the same connection (and its cache).
    #[tokio::test]
    async fn every_write_runs_on_the_one_write_connection() {
        let (store, _dir) = temp_store().await;
        temp_table_on_the_writer(&store).await;
        for i in 0..20 {
            store
                .write_one(sqlx::query("INSERT INTO temp.mine VALUES (?)").bind(i))
                .await
                .unwrap();
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query("INSERT INTO temp.mine VALUES (?)")
                .bind(i)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_transaction_dropped_uncommitted_is_rolled_back_and_the_connection_kept() {
        let (store, _dir) = temp_store().await;
        temp_table_on_the_writer(&store).await;
        {
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query("INSERT INTO settings (key, value) VALUES ('gone', 'x')")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        store.set_setting("kept", "y").await.unwrap();
        assert_eq!(store.setting("gone").await.unwrap(), None);
        assert_eq!(store.setting("kept").await.unwrap().as_deref(), Some("y"));
        // Still the same connection: a plain rollback does not cost the
        // page cache.
        store
            .write_one(sqlx::query("INSERT INTO temp.mine VALUES (1)"))
            .await
            .unwrap();
    }

    /// A holder cancelled while its statement runs may leave anything open
    /// on the connection; the next turn gets a fresh one and writes go on.
    #[tokio::test]
    async fn a_transaction_cancelled_mid_statement_leaves_the_next_writer_a_clean_connection() {
        let (store, _dir) = temp_store().await;
        let cut = {
            let store = store.clone();
            tokio::time::timeout(Duration::from_millis(30), async move {
                let mut tx = store.begin_write().await.unwrap();
                sqlx::query(
                    "WITH RECURSIVE c(i) AS \
                     (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000000) \
                     INSERT INTO settings (key, value) SELECT 'k' || i, 'v' FROM c",
                )
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            })
            .await
        };
        assert!(cut.is_err(), "the transaction was cut short");
        for i in 0..4 {
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query("INSERT INTO settings (key, value) VALUES (?, 'w')")
                .bind(format!("after{i}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM settings WHERE value = 'v'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 0, "the cut transaction committed nothing");
        assert_eq!(store.setting("after3").await.unwrap().as_deref(), Some("w"));
    }

    #[tokio::test]
    async fn a_closed_store_reopens_its_write_connection_on_the_next_write() {
        let (store, _dir) = temp_store().await;
        store.writer.close().await;
        store.set_setting("after", "close").await.unwrap();
        assert_eq!(
            store.setting("after").await.unwrap().as_deref(),
            Some("close")
        );
    }
}
