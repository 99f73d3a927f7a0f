use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row};
use uuid::Uuid;

use std::sync::Arc;

use super::writer::{to_the_end, Writer};
use super::{db, one, SqliteStore};
use crate::store::task_cache::Lookup;
use crate::store::{Failure, IdempotencyRecord, QueueStanding, StoreError, StoreResult, TaskStore};
use crate::tasks::model::{NewTask, State, Task, Tier, VideoRef};

/// Unfinished and holding an account: the tasks a worker drives under a lease.
const CLAIMED: &str = "state IN ('pending', 'processing') AND account_id IS NOT NULL";
/// Claimed and still running upstream: the tasks that occupy one of the account's slots.
/// A task whose upstream has finished no longer does while its video is re-hosted.
const HOLDS_SLOT: &str = "state IN ('pending', 'processing') AND account_id IS NOT NULL AND upstream_done_at IS NULL";
pub(super) const QUEUED: &str = "state = 'pending' AND account_id IS NULL";

#[async_trait]
impl TaskStore for SqliteStore {
    async fn insert_task(&self, t: &NewTask, relax_limit: u64) -> StoreResult<Task> {
        let inserted = match &t.idempotency {
            // Creates without an idempotency key share transactions (group commit).
            None => self.inserts.insert(t.clone(), relax_limit).await?,
            Some(_) => to_the_end(super::inserts::with_idempotency(self.writes.clone(), t.clone(), relax_limit)).await?,
        };
        if !inserted {
            return Err(StoreError::QueueFull { limit: relax_limit });
        }
        Ok(t.as_stored())
    }

    async fn task(&self, id: Uuid) -> StoreResult<Option<Task>> {
        let epoch = match self.cache.lookup(id) {
            Lookup::Hit(task) => return Ok(Some(Task::clone(&task))),
            Lookup::Miss(epoch) => epoch,
        };
        let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .into_iter()
            .next();
        let task = row.map(|r| task_from_row(&r)).transpose()?;
        if let Some(task) = &task {
            self.cache.offer(task, epoch);
        }
        Ok(task)
    }

    fn cached_task(&self, id: Uuid) -> Option<std::sync::Arc<Task>> {
        match self.cache.lookup(id) {
            Lookup::Hit(task) => Some(task),
            Lookup::Miss(_) => None,
        }
    }

    async fn idempotency_record(&self, key_id: &str, idem_key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT request_hash, task_id FROM idempotency WHERE key_id = ? AND idem_key = ?")
                .bind(key_id)
                .bind(idem_key)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
                .into_iter()
                .next();
        row.map(|(request_hash, task_id)| Ok(IdempotencyRecord { request_hash, task_id: Uuid::parse_str(&task_id).map_err(db)? }))
            .transpose()
    }

    async fn delete_task(&self, id: Uuid, reason: &str, now: i64) -> StoreResult<bool> {
        let write = self.task_write(id);
        let deleted = to_the_end(delete_in_transaction(self.writes.clone(), id, reason.to_string(), now)).await;
        write.ended();
        deleted
    }

    async fn tasks_of_key(&self, key_id: &str, offset: u64, limit: u64) -> StoreResult<Vec<Task>> {
        let rows = sqlx::query("SELECT * FROM tasks WHERE key_id = ? AND deleted_at IS NULL ORDER BY seq DESC LIMIT ? OFFSET ?")
            .bind(key_id)
            .bind(limit as i64)
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn queue_standing(&self, task: &Task) -> StoreResult<QueueStanding> {
        // Counting the tasks ahead costs as many steps as there are. A task near the back
        // of a long relax queue (every task of a key that floods the queue) counts the few
        // behind it instead and subtracts them from the queue's size, kept by triggers;
        // only when both sides are long does it count the ones ahead.
        const BEHIND_SCAN: i64 = 512;
        let (pro_ahead, relax_ahead): (i64, i64) = match task.tier {
            Tier::Pro => {
                let pro_ahead: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'pro' AND seq < (SELECT seq FROM tasks WHERE id = ?)"
                ))
                .bind(task.id.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db)
                .and_then(one)?;
                (pro_ahead.unwrap_or(0), 0)
            }
            Tier::Relax => {
                let (pro, relax, behind, seq, round): (i64, i64, i64, Option<i64>, Option<i64>) = sqlx::query_as(&format!(
                    "WITH me AS (SELECT seq, fair_round FROM tasks WHERE id = ?1)
                     SELECT (SELECT queued FROM queue_counts WHERE tier = 'pro'),
                            (SELECT queued FROM queue_counts WHERE tier = 'relax'),
                            (SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE {QUEUED} AND tier = 'relax'
                                AND (fair_round, seq) > (SELECT fair_round, seq FROM me) LIMIT ?2)),
                            (SELECT seq FROM me), (SELECT fair_round FROM me)"
                ))
                .bind(task.id.to_string())
                .bind(BEHIND_SCAN)
                .fetch_all(&self.pool)
                .await
                .map_err(db)
                .and_then(one)?;
                if behind < BEHIND_SCAN {
                    // Every queued pro task goes before any relax task.
                    (pro, (relax - 1 - behind).max(0))
                } else {
                    let ahead: i64 = sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'relax' AND (fair_round, seq) < (?1, ?2)"
                    ))
                    .bind(round)
                    .bind(seq)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)
                    .and_then(one)?;
                    (pro, ahead)
                }
            }
        };
        Ok(QueueStanding { ahead: (pro_ahead + relax_ahead) as u64, pro_ahead: pro_ahead as u64 })
    }

    async fn queue_depth(&self) -> StoreResult<(u64, u64)> {
        let (relax, pro): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT queued FROM queue_counts WHERE tier = 'relax'), (SELECT queued FROM queue_counts WHERE tier = 'pro')",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)
        .and_then(one)?;
        Ok((relax.max(0) as u64, pro.max(0) as u64))
    }

    async fn dispatch_candidates(&self, limit: u64) -> StoreResult<Vec<(Task, Option<String>)>> {
        // Both tiers in one statement (one round trip on the dispatcher's path); each
        // part is read in its own order through its own index, then put in dispatch order.
        let rows = sqlx::query(&format!(
            "SELECT * FROM (SELECT 0 AS part, * FROM tasks WHERE {QUEUED} AND tier = 'pro' ORDER BY seq LIMIT ?1)
             UNION ALL
             SELECT * FROM (SELECT 1 AS part, * FROM tasks WHERE {QUEUED} AND tier = 'relax' ORDER BY fair_round, seq LIMIT ?1)"
        ))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut ordered = Vec::with_capacity(rows.len());
        for r in &rows {
            let key: (i64, i64, i64) = (r.get("part"), r.get("fair_round"), r.get("seq"));
            ordered.push((key, (task_from_row(r)?, r.get("pinned_account"))));
        }
        ordered.sort_by_key(|(key, _)| *key);
        Ok(ordered.into_iter().map(|(_, candidate)| candidate).collect())
    }

    async fn slots_in_use(&self) -> StoreResult<(HashMap<String, u32>, u32)> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "SELECT account_id, COUNT(*), SUM(tier = 'pro') FROM tasks WHERE {HOLDS_SLOT} GROUP BY account_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let pro = rows.iter().map(|(_, _, pro)| *pro as u32).sum();
        Ok((rows.into_iter().map(|(a, n, _)| (a, n as u32)).collect(), pro))
    }

    async fn in_flight(&self) -> StoreResult<HashMap<String, u32>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as(&format!("SELECT account_id, COUNT(*) FROM tasks WHERE {HOLDS_SLOT} GROUP BY account_id"))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows.into_iter().map(|(a, n)| (a, n as u32)).collect())
    }

    async fn pro_in_flight(&self) -> StoreResult<u32> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM tasks WHERE {HOLDS_SLOT} AND tier = 'pro'"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)
            .and_then(one)?;
        Ok(n as u32)
    }

    async fn claim(&self, id: Uuid, account: &str, owner: &str, lease_until: i64, pro_reserved: u32) -> StoreResult<bool> {
        // One statement, no transaction: the dispatcher's hot path. The relax round being
        // served is derived from the dispatched tasks themselves (see `insert_task`). The
        // capacity rules are part of the statement, and every write goes through the one
        // writer connection, so they hold however many dispatchers race. Relax may take a
        // slot only while more are free than the reserve still owed to pro (the reserve
        // less the pro tasks already holding a slot), the scheduler's own rule.
        let now = crate::tasks::model::now_micros();
        let sql = format!(
                "UPDATE tasks SET account_id = ?1, lease_owner = ?2, lease_until = ?3, dispatched_at = ?4, last_progress_at = ?4
                 WHERE id = ?5 AND {QUEUED}
                   AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = ?1 AND a.enabled
                                 AND (SELECT COUNT(*) FROM tasks WHERE {HOLDS_SLOT} AND account_id = a.id) < a.concurrency)
                   AND (tier = 'pro' OR ?6 = 0 OR MAX(?6 - (SELECT COUNT(*) FROM tasks WHERE {HOLDS_SLOT} AND tier = 'pro'), 0) < (
                         SELECT COALESCE(SUM(MAX(a.concurrency - (SELECT COUNT(*) FROM tasks WHERE {HOLDS_SLOT} AND account_id = a.id), 0)), 0)
                         FROM accounts a WHERE a.enabled))
                 RETURNING *"
            );
        let claimed = sqlx::query(&sql)
        .bind(account)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(id.to_string())
        .bind(pro_reserved as i64);
        let write = self.task_write(id);
        // The writer connection is held until the fresh row is in the cache, so no other
        // write of the task can land in between and be hidden by it.
        let mut writer = self.writes.lock().await;
        let rows = claimed.fetch_all(&mut *writer).await;
        match rows.map_err(db).and_then(|rows| rows.first().map(task_from_row).transpose()) {
            // The worker that takes the task reads it at once: from memory.
            Ok(Some(task)) => {
                self.cache.store_fresh(task);
                write.settled();
                Ok(true)
            }
            Ok(None) => {
                write.ended();
                Ok(false)
            }
            Err(e) => {
                write.ended();
                Err(e)
            }
        }
    }

    async fn take_over(&self, id: Uuid, owner: &str, now: i64, lease_until: i64) -> StoreResult<bool> {
        self.update(id,
            &format!(
                "UPDATE tasks SET lease_owner = ?, lease_until = ?
                 WHERE id = ? AND {CLAIMED} AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)"
            ),
            |q| q.bind(owner).bind(lease_until).bind(id.to_string()).bind(now).bind(owner),
        )
        .await
    }

    async fn resumable(&self, owner: &str, now: i64) -> StoreResult<Vec<Task>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM tasks WHERE {CLAIMED} AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)
             ORDER BY seq"
        ))
        .bind(now)
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn renew_lease(&self, id: Uuid, owner: &str, lease_until: i64) -> StoreResult<bool> {
        self.update(id,
            &format!("UPDATE tasks SET lease_until = ? WHERE id = ? AND lease_owner = ? AND {CLAIMED}"),
            |q| q.bind(lease_until).bind(id.to_string()).bind(owner),
        )
        .await
    }

    async fn drop_leases(&self, owner: &str) -> StoreResult<u64> {
        let done = sqlx::query(&format!("UPDATE tasks SET lease_until = 0 WHERE lease_owner = ? AND {CLAIMED}"))
            .bind(owner)
            .execute(&mut *self.writes.lock().await)
            .await
            .map_err(db)?;
        self.cache.invalidate_all();
        Ok(done.rows_affected())
    }

    async fn record_attempt(&self, id: Uuid, owner: &str, attempt: &str) -> StoreResult<bool> {
        self.update(id,
            "UPDATE tasks SET attempt = ? WHERE id = ? AND lease_owner = ? AND state = 'pending' AND account_id IS NOT NULL",
            |q| q.bind(attempt).bind(id.to_string()).bind(owner),
        )
        .await
    }

    async fn mark_processing(&self, id: Uuid, owner: &str, upstream_id: &str, now: i64) -> StoreResult<bool> {
        self.update(id,
            "UPDATE tasks SET state = 'processing', upstream_id = ?, last_progress_at = ?
             WHERE id = ? AND lease_owner = ? AND state = 'pending' AND account_id IS NOT NULL",
            |q| q.bind(upstream_id).bind(now).bind(id.to_string()).bind(owner),
        )
        .await
    }

    async fn record_progress(&self, id: Uuid, owner: &str, progress: u8, now: i64) -> StoreResult<bool> {
        self.update(id,
            "UPDATE tasks SET progress = ?, last_progress_at = ?
             WHERE id = ? AND lease_owner = ? AND state = 'processing' AND progress < ?",
            |q| q.bind(progress as i64).bind(now).bind(id.to_string()).bind(owner).bind(progress as i64),
        )
        .await
    }

    async fn release_slot(&self, id: Uuid, owner: &str, now: i64) -> StoreResult<bool> {
        self.update(id,
            "UPDATE tasks SET upstream_done_at = ? WHERE id = ? AND lease_owner = ? AND state = 'processing'
               AND upstream_done_at IS NULL",
            |q| q.bind(now).bind(id.to_string()).bind(owner),
        )
        .await
    }

    async fn requeue(&self, id: Uuid, owner: &str) -> StoreResult<bool> {
        self.update(id,
            "UPDATE tasks SET account_id = NULL, attempt = NULL, upstream_id = NULL, lease_owner = NULL,
               lease_until = NULL, dispatched_at = NULL, upstream_done_at = NULL, state = 'pending'
             WHERE id = ? AND lease_owner = ? AND state IN ('pending', 'processing')",
            |q| q.bind(id.to_string()).bind(owner),
        )
        .await
    }

    async fn complete(&self, id: Uuid, owner: &str, v: &VideoRef, now: i64) -> StoreResult<bool> {
        self.update(id,
            "UPDATE tasks SET state = 'completed', progress = 100, finished_at = ?, video_key = ?, thumbnail_key = ?,
               width = ?, height = ?, duration_secs = ?, lease_owner = NULL, lease_until = NULL
             WHERE id = ? AND lease_owner = ? AND state = 'processing'",
            |q| {
                q.bind(now)
                    .bind(&v.video_key)
                    .bind(&v.thumbnail_key)
                    .bind(v.width as i64)
                    .bind(v.height as i64)
                    .bind(v.duration_secs)
                    .bind(id.to_string())
                    .bind(owner)
            },
        )
        .await
    }

    async fn fail(&self, id: Uuid, owner: Option<&str>, reason: &str, now: i64) -> StoreResult<bool> {
        self.update(id,
            "UPDATE tasks SET state = 'failed', failure_reason = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL
             WHERE id = ? AND state IN ('pending', 'processing') AND (?4 IS NULL OR lease_owner = ?4)",
            |q| q.bind(reason).bind(now).bind(id.to_string()).bind(owner),
        )
        .await
    }

    async fn recent_finishes(&self, count: u64) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar("SELECT finished_at FROM tasks WHERE state = 'completed' ORDER BY finished_at DESC LIMIT ?")
            .bind(count as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn recent_dispatches(&self, tier: Tier, count: u64) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT dispatched_at FROM tasks WHERE tier = ? AND dispatched_at IS NOT NULL ORDER BY dispatched_at DESC LIMIT ?",
        )
        .bind(tier.as_str())
        .bind(count as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn task_counts(&self) -> StoreResult<Vec<(Tier, State, u64)>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT tier, state, COUNT(*) FROM tasks GROUP BY tier, state")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for (tier, state, n) in rows {
            let tier = Tier::parse(&tier).ok_or_else(|| db(format!("unknown tier {tier:?} in tasks")))?;
            let state = State::parse(&state).ok_or_else(|| db(format!("unknown state {state:?} in tasks")))?;
            out.push((tier, state, n as u64));
        }
        Ok(out)
    }

    async fn recent_failures(&self, limit: u64) -> StoreResult<Vec<Failure>> {
        let rows = sqlx::query(
            "SELECT id, key_id, tier, account_id, failure_reason, finished_at FROM tasks
             WHERE state = 'failed' ORDER BY finished_at DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let tier: String = r.get("tier");
                Ok(Failure {
                    task_id: Uuid::parse_str(r.get("id")).map_err(db)?,
                    key_id: r.get("key_id"),
                    tier: Tier::parse(&tier).ok_or_else(|| db(format!("unknown tier {tier:?} in tasks")))?,
                    account_id: r.get("account_id"),
                    reason: r.get::<Option<String>, _>("failure_reason").unwrap_or_default(),
                    failed_at: r.get::<Option<i64>, _>("finished_at").unwrap_or_default(),
                })
            })
            .collect()
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl SqliteStore {
    /// Runs a compare-and-set update; true when exactly one row changed. A change of
    /// state queues its webhook delivery in the same statement, by trigger (migration 0009).
    async fn update<'q>(&self, id: Uuid, sql: &'q str, bind: impl FnOnce(Query<'q>) -> Query<'q>) -> StoreResult<bool> {
        let write = self.task_write(id);
        let done = bind(sqlx::query(sql)).execute(&mut *self.writes.lock().await).await;
        write.ended();
        Ok(done.map_err(db)?.rows_affected() == 1)
    }
}

/// Hides a task, fails it if unfinished, drops its open deliveries and frees its
/// idempotency key, in one transaction; false when it was deleted already.
async fn delete_in_transaction(writes: Arc<Writer>, id: Uuid, reason: String, now: i64) -> StoreResult<bool> {
    let mut writer = writes.lock().await;
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let id = id.to_string();
    let hidden = sqlx::query("UPDATE tasks SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if hidden.rows_affected() == 0 {
        return Ok(false);
    }
    // An unfinished task stops: its worker's next compare-and-set fails and it lets go.
    sqlx::query(
        "UPDATE tasks SET state = 'failed', failure_reason = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND state IN ('pending', 'processing')",
    )
    .bind(&reason)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query("UPDATE webhook_outbox SET abandoned_at = ?, last_error = 'the task was deleted' WHERE task_id = ? AND delivered_at IS NULL AND abandoned_at IS NULL")
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("DELETE FROM idempotency WHERE task_id = ?").bind(&id).execute(&mut *tx).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

fn task_from_row(r: &SqliteRow) -> StoreResult<Task> {
    let parse_id = |s: &str| Uuid::parse_str(s).map_err(db);
    let video = match r.get::<Option<String>, _>("video_key") {
        Some(video_key) => Some(VideoRef {
            video_key,
            thumbnail_key: r.get::<Option<String>, _>("thumbnail_key").unwrap_or_default(),
            width: r.get::<Option<i64>, _>("width").unwrap_or(0) as u32,
            height: r.get::<Option<i64>, _>("height").unwrap_or(0) as u32,
            duration_secs: r.get::<Option<f64>, _>("duration_secs").unwrap_or(0.0),
        }),
        None => None,
    };
    Ok(Task {
        id: parse_id(r.get("id"))?,
        key_id: r.get("key_id"),
        tier: Tier::parse(r.get("tier")).ok_or_else(|| db("unknown tier in row"))?,
        state: State::parse(r.get("state")).ok_or_else(|| db("unknown state in row"))?,
        prompt: r.get("prompt"),
        params: serde_json::from_str(r.get("params")).map_err(db)?,
        parent_id: r.get::<Option<&str>, _>("parent_id").map(parse_id).transpose()?,
        created_at: r.get("created_at"),
        progress: r.get::<i64, _>("progress").clamp(0, 100) as u8,
        failure_reason: r.get("failure_reason"),
        video,
        account_id: r.get("account_id"),
        upstream_id: r.get("upstream_id"),
        attempt: r.get("attempt"),
        lease_owner: r.get("lease_owner"),
        lease_until: r.get("lease_until"),
        dispatched_at: r.get("dispatched_at"),
        last_progress_at: r.get("last_progress_at"),
        deleted: r.get::<Option<i64>, _>("deleted_at").is_some(),
    })
}
