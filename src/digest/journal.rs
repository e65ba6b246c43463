//! The send path's durable record: "send started" marks and accepted
//! messages, written by one task with group commit.
//!
//! Every send waits until its own row is durably marked as started
//! (from then until its outcome is committed, a crash leaves the outcome
//! unknown), and every message the relay accepted is recorded as `sent`
//! with the papers it carried. Both go into the same transactions:
//! whatever arrived while the previous commit ran is committed together.
//! The guarantees are those of one commit per mark and per reply (no row
//! is marked unless its send is about to start; an accepted message is
//! recorded before the run ends), at a fraction of the writes. One writer
//! instead of two matters: marks are on the path of every send, and with
//! separate tasks for marks and records each waited for the other's
//! commits, in small groups.
//!
//! Crash safety of the records: a message reaches the journal only after
//! the relay's 250 reply, and its row is `sending`, leased, with its
//! prepared bytes stored. If the process dies before the commit, lease
//! recovery marks the row `unknown` exactly as it would for a crash
//! between the reply and a per-message commit: no accepted message is
//! ever silently left unrecorded or re-sent as new. The window is only as
//! long as one commit of the previous group.

use super::fault_point;
use crate::app::App;
use crate::store::deliveries::SentDelivery;
use crate::store::runs::RunCounts;
use crate::telemetry::Metrics;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most entries committed in one transaction.
const MAX_GROUP: usize = 1024;

enum Entry {
    /// Mark this row as started, then answer.
    Started(i64, oneshot::Sender<Result<(), String>>),
    /// The relay accepted this message.
    Sent(SentDelivery),
}

/// The handle send tasks write through. Cheap to clone; the journal task
/// ends once every handle is dropped and what they sent is committed.
#[derive(Clone)]
pub(super) struct Journal {
    tx: mpsc::Sender<Entry>,
}

impl Journal {
    /// Starts the journal task; its result is the first commit error.
    pub(super) fn spawn(
        app: App,
        counts: Arc<Mutex<RunCounts>>,
    ) -> (Journal, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let (tx, rx) = mpsc::channel(MAX_GROUP);
        (Journal { tx }, tokio::spawn(write(app, rx, counts)))
    }

    /// Returns once `id` is durably marked as started.
    pub(super) async fn started(&self, id: i64) -> anyhow::Result<()> {
        let (ack, done) = oneshot::channel();
        let stopped = || anyhow::anyhow!("the send journal stopped");
        self.tx
            .send(Entry::Started(id, ack))
            .await
            .map_err(|_| stopped())?;
        done.await
            .map_err(|_| stopped())?
            .map_err(|e| anyhow::anyhow!("cannot mark delivery {id} as started: {e}"))
    }

    /// Queues an accepted message for the next commit.
    pub(super) async fn sent(&self, sent: SentDelivery) -> anyhow::Result<()> {
        self.tx
            .send(Entry::Sent(sent))
            .await
            .map_err(|_| anyhow::anyhow!("the send journal stopped"))
    }
}

async fn write(
    app: App,
    mut rx: mpsc::Receiver<Entry>,
    counts: Arc<Mutex<RunCounts>>,
) -> anyhow::Result<()> {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let mut started = Vec::new();
        let mut acks = Vec::new();
        let mut sent = Vec::new();
        for entry in group.drain(..) {
            match entry {
                Entry::Started(id, ack) => {
                    started.push(id);
                    acks.push(ack);
                }
                Entry::Sent(s) => sent.push(s),
            }
        }
        let result = app.store.record_dispatch(&started, &sent, app.now()).await;
        let answer = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        for ack in acks {
            let _ = ack.send(answer.clone());
        }
        result?;
        if !sent.is_empty() {
            fault_point("after_commit");
            Metrics::add(&app.metrics.mail_sent, sent.len() as u64);
            counts.lock().unwrap_or_else(|e| e.into_inner()).sent += sent.len() as u64;
        }
    }
    Ok(())
}
