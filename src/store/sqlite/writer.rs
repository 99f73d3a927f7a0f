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

    /// The connection, once every write that asked before has finished. A write that is
    /// abandoned mid-statement leaves no harm behind: the connection's worker runs its
    /// commands in order, and a dropped transaction queues its rollback before the next
    /// holder's first command.
    pub(super) async fn lock(&self) -> MutexGuard<'_, SqliteConnection> {
        self.conn.lock().await
    }
}
