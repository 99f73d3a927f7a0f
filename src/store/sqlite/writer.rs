//! The one writer connection, handed to one write at a time in arrival order.
//!
//! SQLite allows one writer at a time, so every write goes through this connection and
//! writers queue in order on its lock instead of colliding and sleeping in SQLite's busy
//! handler (whose coarse 1–100 ms back-off made dispatch latency spiky).
//!
//! It is a plain connection behind a fair lock, not a pool of one: sqlx's pool pings a
//! connection when it is handed out and again when it comes back, each ping a round trip
//! to the connection's worker thread. For the writer those pings were two of every three
//! round trips of a one-statement write, and the write behind waited for them.

use std::future::Future;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use tokio::sync::{Mutex, MutexGuard};

use super::db;
use crate::store::StoreResult;

pub(super) struct Writer {
    conn: Mutex<SqliteConnection>,
}

impl Writer {
    pub(super) async fn open(options: &SqliteConnectOptions) -> StoreResult<Writer> {
        Ok(Writer { conn: Mutex::new(SqliteConnection::connect_with(options).await.map_err(db)?) })
    }

    /// The connection, once every write that asked before has finished. A one-statement
    /// write that is abandoned leaves no harm behind: the connection's thread runs its
    /// commands in order, each statement to its end. A transaction must not be abandoned:
    /// between its BEGIN and sqlx's `Transaction` (which rolls back when dropped) there is
    /// an await, and a caller dropped there would leave the transaction open on the one
    /// writer, so that no later write of the process would ever commit. Transactions
    /// therefore run through [`to_the_end`].
    pub(super) async fn lock(&self) -> MutexGuard<'_, SqliteConnection> {
        self.conn.lock().await
    }
}

/// Runs `write` in a task of its own, which the caller's going away (a client that hung
/// up, a timeout) does not stop: for the writer's multi-statement transactions (see
/// [`Writer::lock`]). The group commit of creates runs in its own task already.
pub(super) async fn to_the_end<T: Send + 'static>(write: impl Future<Output = StoreResult<T>> + Send + 'static) -> StoreResult<T> {
    tokio::spawn(write).await.map_err(|e| db(format!("a write stopped: {e}")))?
}
