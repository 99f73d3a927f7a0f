//! Persistence behind traits, so the embedded SQLite store and a PostgreSQL store
//! are interchangeable. Only this module knows SQL.
//!
//! Every task transition is compare-and-set on the expected state and lease owner,
//! so a terminal state is reached exactly once however many workers race. Capacity is
//! checked inside the claim itself, so it holds however many dispatchers (replicas) race.

mod codec;
pub mod postgres;
pub mod sqlite;
mod task_cache;

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::accounts::Account;
use crate::keys::ApiKey;
use crate::tasks::model::{NewTask, State, Task, Tier, VideoRef};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The relax queue holds as many tasks as allowed.
    #[error("the queue is full ({limit} tasks waiting)")]
    QueueFull { limit: u64 },
    /// The (key, Idempotency-Key) pair is already recorded: another request with the
    /// same key won the race. The caller looks the record up again.
    #[error("the idempotency key is already in use")]
    IdempotencyTaken,
    #[error("database error: {0}")]
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// API keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_key(&self, key: &ApiKey, hash: &str) -> StoreResult<()>;
    /// The key with this hash, unless revoked.
    async fn active_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key; false when no active key has this id.
    async fn revoke_key(&self, id: &str) -> StoreResult<bool>;
    async fn count_keys(&self) -> StoreResult<u64>;
}

/// A recorded `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub task_id: Uuid,
}

/// One pending webhook delivery: the state change it reports and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Outbox order; also the delivery's id, unique for the life of the database.
    pub seq: i64,
    pub task_id: Uuid,
    /// The state the task entered.
    pub state: State,
    pub url: String,
    /// Microseconds since the epoch when the state changed.
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
}

impl Delivery {
    /// A delivery from an outbox row's columns, as both stores read them.
    pub(crate) fn from_columns(seq: i64, task_id: &str, state: &str, url: String, created_at: i64, attempts: i64) -> StoreResult<Delivery> {
        Ok(Delivery {
            seq,
            task_id: Uuid::parse_str(task_id).map_err(|e| StoreError::Database(format!("bad task id in outbox row: {e}")))?,
            state: State::parse(state).ok_or_else(|| StoreError::Database("unknown state in outbox row".into()))?,
            url,
            created_at,
            attempts: attempts.max(0) as u32,
        })
    }
}

/// The webhook outbox. Rows are written by the task transitions themselves
/// ([`TaskStore::mark_processing`], `complete`, `fail`), never separately.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Deliveries due at `now` that are the oldest open delivery of their task (so a
    /// task's deliveries go out in order, one at a time), oldest first.
    async fn due_deliveries(&self, now: i64, limit: u64) -> StoreResult<Vec<Delivery>>;
    async fn delivered(&self, seq: i64, now: i64) -> StoreResult<()>;
    /// Records a failed attempt and when to try again.
    async fn retry_delivery(&self, seq: i64, attempts: u32, next_attempt_at: i64, error: &str) -> StoreResult<()>;
    /// Gives a delivery up (its retry period is spent); the task's next one may go.
    async fn abandon_delivery(&self, seq: i64, now: i64, error: &str) -> StoreResult<()>;
    /// Open deliveries in the outbox (for readiness and tests).
    async fn open_deliveries(&self) -> StoreResult<u64>;
}

/// Upstream accounts and their health.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Inserts or replaces the configuration of an account, keeping its health state.
    async fn upsert_account(&self, account: &Account) -> StoreResult<()>;
    async fn accounts(&self) -> StoreResult<Vec<Account>>;
    async fn set_cooldown(&self, id: &str, until: i64) -> StoreResult<()>;
    async fn set_enabled(&self, id: &str, enabled: bool, reason: Option<&str>) -> StoreResult<bool>;
}

/// Where a queued task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStanding {
    /// Tasks that will be dispatched before this one.
    pub ahead: u64,
    /// Of those, the pro tasks.
    pub pro_ahead: u64,
}

/// Tasks, the queue and leases.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Persists a task and its queue entry in one transaction. Relax tasks are refused
    /// with [`StoreError::QueueFull`] when `relax_limit` tasks already wait.
    ///
    /// A task with an idempotency key records it in the same transaction; when the key
    /// is already recorded nothing is stored and [`StoreError::IdempotencyTaken`] says so.
    async fn insert_task(&self, task: &NewTask, relax_limit: u64) -> StoreResult<Task>;
    /// The task recorded under a key's `Idempotency-Key`, if any.
    async fn idempotency_record(&self, key_id: &str, idem_key: &str) -> StoreResult<Option<IdempotencyRecord>>;
    /// A task, deleted or not (the engine decides what a deleted task means to whom).
    async fn task(&self, id: Uuid) -> StoreResult<Option<Task>>;
    /// The task if this store holds an up-to-date copy in memory; never does I/O. A
    /// store shared with other processes, which cannot know when a copy went stale,
    /// holds none. An unchanged task is the same `Arc` on every call.
    fn cached_task(&self, _id: Uuid) -> Option<std::sync::Arc<Task>> {
        None
    }
    /// Deletes a task for its owner: hides it, fails it if unfinished (no webhook for
    /// that), drops its open deliveries and idempotency records. False if already gone.
    async fn delete_task(&self, id: Uuid, reason: &str, now: i64) -> StoreResult<bool>;
    /// A key's tasks that are not deleted, newest first.
    async fn tasks_of_key(&self, key_id: &str, offset: u64, limit: u64) -> StoreResult<Vec<Task>>;
    async fn queue_standing(&self, task: &Task) -> StoreResult<QueueStanding>;
    /// Number of queued tasks per tier: (relax, pro).
    async fn queue_depth(&self) -> StoreResult<(u64, u64)>;
    /// Queued tasks in dispatch order (pro by age, then relax by fair round), with the
    /// account each is pinned to, if any.
    async fn dispatch_candidates(&self, limit: u64) -> StoreResult<Vec<(Task, Option<String>)>>;
    /// Tasks holding a slot per account: claimed, submitting, or running upstream. A task
    /// whose upstream has finished (see `release_slot`) holds none while it is re-hosted.
    async fn in_flight(&self) -> StoreResult<HashMap<String, u32>>;
    /// Pro tasks holding a slot, on any account: they count toward the slots kept for pro.
    async fn pro_in_flight(&self) -> StoreResult<u32>;
    /// [`Self::in_flight`] and [`Self::pro_in_flight`] together, as one snapshot where the
    /// store can (the dispatcher's first read of every pass).
    async fn slots_in_use(&self) -> StoreResult<(HashMap<String, u32>, u32)> {
        Ok((self.in_flight().await?, self.pro_in_flight().await?))
    }
    /// Hands a queued task to an account under a lease, atomically with the capacity
    /// rules, so they hold across any number of dispatchers. False (nothing changed) if
    /// the task is no longer queued (someone else claimed it first), the account is
    /// missing, disabled or already holds `concurrency` slots, or the task is relax and
    /// the enabled pool has no more free slots than the reserve still owed to pro:
    /// max(0, `pro_reserved` − pro tasks holding a slot).
    async fn claim(&self, id: Uuid, account: &str, owner: &str, lease_until: i64, pro_reserved: u32) -> StoreResult<bool>;
    /// Takes over the lease of an unfinished task whose lease lapsed (or that this owner held).
    async fn take_over(&self, id: Uuid, owner: &str, now: i64, lease_until: i64) -> StoreResult<bool>;
    /// Unfinished tasks with an account whose lease has lapsed or belongs to `owner`.
    async fn resumable(&self, owner: &str, now: i64) -> StoreResult<Vec<Task>>;
    async fn renew_lease(&self, id: Uuid, owner: &str, lease_until: i64) -> StoreResult<bool>;
    /// Gives up this owner's leases without finishing (shutdown): others may resume at once.
    async fn drop_leases(&self, owner: &str) -> StoreResult<u64>;
    /// Records that a submission is about to be made under this attempt id.
    async fn record_attempt(&self, id: Uuid, owner: &str, attempt: &str) -> StoreResult<bool>;
    /// The upstream accepted the task: pending → processing. This and the other state
    /// changes (`complete`, `fail`) queue a webhook delivery in the same transaction
    /// when the task has a hook URL.
    async fn mark_processing(&self, id: Uuid, owner: &str, upstream_id: &str, now: i64) -> StoreResult<bool>;
    /// Raises progress (never lowers it) and notes when it last moved.
    async fn record_progress(&self, id: Uuid, owner: &str, progress: u8, now: i64) -> StoreResult<bool>;
    /// The upstream finished the task: its account slot is free for the next task while
    /// this worker re-hosts the video (which may take long for a large download).
    async fn release_slot(&self, id: Uuid, owner: &str, now: i64) -> StoreResult<bool>;
    /// Puts a claimed task back in the queue (its account could not take it).
    async fn requeue(&self, id: Uuid, owner: &str) -> StoreResult<bool>;
    async fn complete(&self, id: Uuid, owner: &str, video: &VideoRef, now: i64) -> StoreResult<bool>;
    /// Fails an unfinished task. `owner` None fails it whoever holds it (sweeper, shutdown).
    async fn fail(&self, id: Uuid, owner: Option<&str>, reason: &str, now: i64) -> StoreResult<bool>;
    /// Finish times of the most recent completed tasks, newest first.
    async fn recent_finishes(&self, count: u64) -> StoreResult<Vec<i64>>;
    /// Dispatch times of the most recently dispatched tasks of a tier, newest first.
    async fn recent_dispatches(&self, tier: Tier, count: u64) -> StoreResult<Vec<i64>>;
    /// Number of tasks per (tier, state), for metrics.
    async fn task_counts(&self) -> StoreResult<Vec<(Tier, State, u64)>>;
    /// The most recently failed tasks with their reasons, newest first, for operators.
    async fn recent_failures(&self, limit: u64) -> StoreResult<Vec<Failure>>;
}

/// A failed task as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub task_id: Uuid,
    pub key_id: String,
    pub tier: Tier,
    pub account_id: Option<String>,
    pub reason: String,
    /// Microseconds since the epoch.
    pub failed_at: i64,
}

/// Everything the engine needs from persistence.
pub trait Store: KeyStore + AccountStore + TaskStore + OutboxStore {}
impl<T: KeyStore + AccountStore + TaskStore + OutboxStore> Store for T {}
