//! Group commit of new tasks.
//!
//! Every create is a durable write, and a busy deployment creates many at once. Each
//! SQLite transaction writes every page it touched to the WAL (the table and each index
//! leaf: some 30 KB per task), and one commit at a time goes through the single writer
//! connection. Creates waiting at the same moment are therefore stored in one
//! transaction: a create is answered only after the transaction holding its row has
//! committed, the queue limit is checked row by row inside it, and an idle server
//! commits a lone create at once (a batch is whatever is waiting, never a timer).

use std::sync::Arc;

use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use super::db;
use super::writer::Writer;
use super::inserts;
use crate::store::{StoreError, StoreResult};
use crate::tasks::model::NewTask;

/// Most creates in one transaction, so the writer is never held long by one batch.
const MAX_BATCH: usize = 64;

struct Pending {
    task: NewTask,
    relax_limit: u64,
    /// True when stored, false when the relax queue was full.
    reply: oneshot::Sender<StoreResult<bool>>,
}

/// The handle the store inserts through; the committing task ends with the store.
pub(super) struct Inserts {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Inserts {
    pub(super) fn start(writes: Arc<Writer>) -> Inserts {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(writes, waiting));
        Inserts { queue }
    }

    /// Stores the task in the next group commit; true when stored, false when the relax
    /// queue was full.
    pub(super) async fn insert(&self, task: NewTask, relax_limit: u64) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { task, relax_limit, reply })
            .map_err(|_| StoreError::Database("the store is closing".into()))?;
        answer.await.map_err(|_| StoreError::Database("the group commit stopped".into()))?
    }
}

async fn run(writes: Arc<Writer>, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // A create whose caller stopped waiting before its turn is not stored: nobody was
        // told it was accepted (as when a lone transaction is abandoned before COMMIT).
        batch.retain(|pending| !pending.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        match commit(&writes, &batch).await {
            Ok(stored) => {
                for (pending, stored) in batch.into_iter().zip(stored) {
                    let _ = pending.reply.send(Ok(stored));
                }
            }
            Err(e) => {
                // Some row, or the commit, failed: nothing of the batch was stored. Each
                // create is tried again alone, so one bad row fails only its own request.
                tracing::warn!(error = %e, tasks = batch.len(), "a group commit of new tasks failed; storing them one by one");
                for pending in batch {
                    let alone = commit(&writes, std::slice::from_ref(&pending)).await.map(|stored| stored[0]);
                    let _ = pending.reply.send(alone);
                }
            }
        }
    }
}

/// One transaction for `batch`, all or nothing: each row's outcome (true when stored,
/// false when the relax queue was full, checked row by row in order), or the first
/// error with nothing stored.
async fn commit(writes: &Writer, batch: &[Pending]) -> StoreResult<Vec<bool>> {
    let mut writer = writes.lock().await;
    if let [alone] = batch {
        // One statement is its own transaction: no BEGIN and COMMIT round trips.
        return Ok(vec![inserts::row(&mut writer, &alone.task, alone.relax_limit).await?]);
    }
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let mut stored = Vec::with_capacity(batch.len());
    for pending in batch {
        // Any error ends the transaction: dropping `tx` rolls every row back.
        stored.push(inserts::row(&mut tx, &pending.task, pending.relax_limit).await?);
    }
    tx.commit().await.map_err(db)?;
    Ok(stored)
}
