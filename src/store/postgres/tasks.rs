use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::{db, PgStore};
use crate::store::{Failure, IdempotencyRecord, QueueStanding, StoreError, StoreResult, TaskStore};
use crate::tasks::model::{NewTask, State, Task, Tier, VideoRef};

/// Unfinished and holding an account: the tasks a worker drives under a lease.
const CLAIMED: &str = "state IN ('pending', 'processing') AND account_id IS NOT NULL";
/// Claimed and still running upstream: the tasks that occupy one of the account's slots.
/// A task whose upstream has finished no longer does while its video is re-hosted.
const HOLDS_SLOT: &str = "state IN ('pending', 'processing') AND account_id IS NOT NULL AND upstream_done_at IS NULL";
const QUEUED: &str = "state = 'pending' AND account_id IS NULL";
/// The `meta` row that serves as the pool's lock: relax admissions and relax claims (which
/// count the whole pool) take it exclusively, pro claims shared.
const POOL_ROW_EXCLUSIVE: &str = "SELECT value FROM meta WHERE name = 'relax_round' FOR UPDATE";
const POOL_ROW_SHARED: &str = "SELECT value FROM meta WHERE name = 'relax_round' FOR SHARE";

#[async_trait]
impl TaskStore for PgStore {
    async fn insert_task(&self, t: &NewTask, relax_limit: u64) -> StoreResult<Task> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut round = 0i64;
        if t.tier == Tier::Relax {
            // The pool row serialises relax admissions across replicas, so the queue
            // limit and each key's fair round are decided on a settled queue.
            sqlx::query(POOL_ROW_EXCLUSIVE).execute(&mut *tx).await.map_err(db)?;
            // The round being served: the highest round of any relax task ever dispatched.
            let current: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(fair_round), 0) FROM tasks WHERE tier = 'relax' AND account_id IS NOT NULL",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let waiting: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'relax'"))
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            if waiting as u64 >= relax_limit {
                return Err(StoreError::QueueFull { limit: relax_limit });
            }
            // Start-time fair queueing: a key's next task goes one round after its
            // previous queued task, and never before the round being served now.
            let key_last: i64 = sqlx::query_scalar(&format!(
                "SELECT COALESCE(MAX(fair_round), 0) FROM tasks WHERE {QUEUED} AND tier = 'relax' AND key_id = $1"
            ))
            .bind(&t.key_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            round = key_last.max(current) + 1;
        }
        let row = sqlx::query(
            "INSERT INTO tasks (id, key_id, tier, state, prompt, params, parent_id, pinned_account, fair_round, created_at)
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9) RETURNING *",
        )
        .bind(t.id.to_string())
        .bind(&t.key_id)
        .bind(t.tier.as_str())
        .bind(&t.prompt)
        .bind(serde_json::to_string(&t.params).map_err(db)?)
        .bind(t.parent_id.map(|p| p.to_string()))
        .bind(&t.pinned_account)
        .bind(round)
        .bind(t.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(idem) = &t.idempotency {
            // A racing insert under the same key waits for ours to settle, then does nothing.
            let recorded = sqlx::query(
                "INSERT INTO idempotency (key_id, idem_key, request_hash, task_id, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key_id, idem_key) DO NOTHING",
            )
            .bind(&t.key_id)
            .bind(&idem.key)
            .bind(&idem.request_hash)
            .bind(t.id.to_string())
            .bind(t.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if recorded.rows_affected() == 0 {
                // Dropping the transaction rolls the task back.
                return Err(StoreError::IdempotencyTaken);
            }
        }
        // Delivered at commit: every replica's dispatcher looks at the queue.
        sqlx::query("SELECT pg_notify($1, '')").bind(super::WORK_CHANNEL).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        task_from_row(&row)
    }

    async fn task(&self, id: Uuid) -> StoreResult<Option<Task>> {
        let row = sqlx::query("SELECT * FROM tasks WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| task_from_row(&r)).transpose()
    }

    async fn idempotency_record(&self, key_id: &str, idem_key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT request_hash, task_id FROM idempotency WHERE key_id = $1 AND idem_key = $2")
                .bind(key_id)
                .bind(idem_key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        row.map(|(request_hash, task_id)| Ok(IdempotencyRecord { request_hash, task_id: Uuid::parse_str(&task_id).map_err(db)? }))
            .transpose()
    }

    async fn delete_task(&self, id: Uuid, reason: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let id = id.to_string();
        let hidden = sqlx::query("UPDATE tasks SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if hidden.rows_affected() == 0 {
            return Ok(false);
        }
        // An unfinished task stops: its worker's next compare-and-set fails and it lets go.
        let stopped = sqlx::query(
            "UPDATE tasks SET state = 'failed', failure_reason = $1, finished_at = $2, lease_owner = NULL, lease_until = NULL
             WHERE id = $3 AND state IN ('pending', 'processing')",
        )
        .bind(reason)
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "UPDATE webhook_outbox SET abandoned_at = $1, last_error = 'the task was deleted'
             WHERE task_id = $2 AND delivered_at IS NULL AND abandoned_at IS NULL",
        )
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM idempotency WHERE task_id = $1").bind(&id).execute(&mut *tx).await.map_err(db)?;
        if stopped.rows_affected() == 1 {
            // A slot may have come free: delivered at commit, like the other transitions.
            sqlx::query("SELECT pg_notify($1, '')").bind(super::WORK_CHANNEL).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn tasks_of_key(&self, key_id: &str, offset: u64, limit: u64) -> StoreResult<Vec<Task>> {
        let rows = sqlx::query("SELECT * FROM tasks WHERE key_id = $1 AND deleted_at IS NULL ORDER BY seq DESC LIMIT $2 OFFSET $3")
            .bind(key_id)
            .bind(limit as i64)
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(task_from_row).collect()
    }

    async fn queue_standing(&self, task: &Task) -> StoreResult<QueueStanding> {
        let (seq, round): (i64, i64) = sqlx::query_as("SELECT seq, fair_round FROM tasks WHERE id = $1")
            .bind(task.id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let pro_sql = format!("SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'pro' AND seq < $1");
        let (pro_ahead, relax_ahead): (i64, i64) = match task.tier {
            Tier::Pro => (sqlx::query_scalar(&pro_sql).bind(seq).fetch_one(&self.pool).await.map_err(db)?, 0),
            // Every queued pro task goes before any relax task.
            Tier::Relax => sqlx::query_as(&format!(
                "SELECT (SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'pro'),
                        (SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'relax'
                         AND (fair_round < $1 OR (fair_round = $1 AND seq < $2)))"
            ))
            .bind(round)
            .bind(seq)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?,
        };
        Ok(QueueStanding { ahead: (pro_ahead + relax_ahead) as u64, pro_ahead: pro_ahead as u64 })
    }

    async fn queue_depth(&self) -> StoreResult<(u64, u64)> {
        let (relax, pro): (i64, i64) = sqlx::query_as(&format!(
            "SELECT (SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'relax'),
                    (SELECT COUNT(*) FROM tasks WHERE {QUEUED} AND tier = 'pro')"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok((relax as u64, pro as u64))
    }

    async fn dispatch_candidates(&self, limit: u64) -> StoreResult<Vec<(Task, Option<String>)>> {
        let mut out = Vec::new();
        for sql in [
            format!("SELECT * FROM tasks WHERE {QUEUED} AND tier = 'pro' ORDER BY seq LIMIT $1"),
            format!("SELECT * FROM tasks WHERE {QUEUED} AND tier = 'relax' ORDER BY fair_round, seq LIMIT $1"),
        ] {
            let rows = sqlx::query(&sql).bind(limit as i64).fetch_all(&self.pool).await.map_err(db)?;
            for r in &rows {
                out.push((task_from_row(r)?, r.get("pinned_account")));
            }
        }
        Ok(out)
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
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n as u32)
    }

    async fn claim(&self, id: Uuid, account: &str, owner: &str, lease_until: i64, pro_reserved: u32) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // A task another replica is claiming right now is skipped, not waited for.
        let tier: Option<String> =
            sqlx::query_scalar(&format!("SELECT tier FROM tasks WHERE id = $1 AND {QUEUED} FOR UPDATE SKIP LOCKED"))
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        let Some(tier) = tier else { return Ok(false) };
        let relax = tier == Tier::Relax.as_str();
        // Relax claims check the whole pool, so they exclude every other claim while
        // they count; pro claims only exclude relax ones. Lock order (task, pool row,
        // account row) is the same in every claim, so claims never deadlock.
        sqlx::query(if relax { POOL_ROW_EXCLUSIVE } else { POOL_ROW_SHARED }).execute(&mut *tx).await.map_err(db)?;
        let slot: Option<(i64, bool)> = sqlx::query_as("SELECT concurrency, enabled FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some((concurrency, true)) = slot else { return Ok(false) };
        // Read committed: this count sees every claim committed before the lock was granted.
        let held: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM tasks WHERE {HOLDS_SLOT} AND account_id = $1"))
            .bind(account)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if held >= concurrency {
            return Ok(false);
        }
        if relax && pro_reserved > 0 {
            // Relax may take a slot only while more are free than the reserve still owed
            // to pro: the reserve less the pro tasks already holding a slot (the
            // scheduler's own rule). Pro claims are excluded by the pool row meanwhile.
            let (free, pro_holding): (i64, i64) = sqlx::query_as(&format!(
                "SELECT (SELECT COALESCE(SUM(GREATEST(a.concurrency - COALESCE(f.n, 0), 0)), 0)::BIGINT
                         FROM accounts a
                         LEFT JOIN (SELECT account_id, COUNT(*) AS n FROM tasks WHERE {HOLDS_SLOT} GROUP BY account_id) f
                           ON f.account_id = a.id
                         WHERE a.enabled),
                        (SELECT COUNT(*) FROM tasks WHERE {HOLDS_SLOT} AND tier = 'pro')"
            ))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            let kept_for_pro = (pro_reserved as i64 - pro_holding).max(0);
            if free <= kept_for_pro {
                return Ok(false);
            }
        }
        // The relax round being served is derived from the dispatched tasks themselves.
        let now = crate::tasks::model::now_micros();
        sqlx::query(
            "UPDATE tasks SET account_id = $1, lease_owner = $2, lease_until = $3, dispatched_at = $4, last_progress_at = $4
             WHERE id = $5",
        )
        .bind(account)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn take_over(&self, id: Uuid, owner: &str, now: i64, lease_until: i64) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "UPDATE tasks SET lease_owner = $1, lease_until = $2
             WHERE id = $3 AND {CLAIMED} AND (lease_until IS NULL OR lease_until < $4 OR lease_owner = $1)"
        ))
        .bind(owner)
        .bind(lease_until)
        .bind(id.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn resumable(&self, owner: &str, now: i64) -> StoreResult<Vec<Task>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM tasks WHERE {CLAIMED} AND (lease_until IS NULL OR lease_until < $1 OR lease_owner = $2)
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
        let done = sqlx::query(&format!("UPDATE tasks SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND {CLAIMED}"))
            .bind(lease_until)
            .bind(id.to_string())
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn drop_leases(&self, owner: &str) -> StoreResult<u64> {
        let done = sqlx::query(&format!("UPDATE tasks SET lease_until = 0 WHERE lease_owner = $1 AND {CLAIMED}"))
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn record_attempt(&self, id: Uuid, owner: &str, attempt: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET attempt = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'pending' AND account_id IS NOT NULL",
        )
        .bind(attempt)
        .bind(id.to_string())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_processing(&self, id: Uuid, owner: &str, upstream_id: &str, now: i64) -> StoreResult<bool> {
        let change = sqlx::query(
            "UPDATE tasks SET state = 'processing', upstream_id = $1, last_progress_at = $2
             WHERE id = $3 AND lease_owner = $4 AND state = 'pending' AND account_id IS NOT NULL",
        )
        .bind(upstream_id)
        .bind(now)
        .bind(id.to_string())
        .bind(owner);
        self.transition(id, now, change, false).await
    }

    async fn record_progress(&self, id: Uuid, owner: &str, progress: u8, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET progress = $1, last_progress_at = $2
             WHERE id = $3 AND lease_owner = $4 AND state = 'processing' AND progress < $1",
        )
        .bind(progress as i64)
        .bind(now)
        .bind(id.to_string())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_slot(&self, id: Uuid, owner: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET upstream_done_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'processing'
               AND upstream_done_at IS NULL",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.freed_slot(done.rows_affected() == 1).await
    }

    async fn requeue(&self, id: Uuid, owner: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET account_id = NULL, attempt = NULL, upstream_id = NULL, lease_owner = NULL,
               lease_until = NULL, dispatched_at = NULL, upstream_done_at = NULL, state = 'pending'
             WHERE id = $1 AND lease_owner = $2 AND state IN ('pending', 'processing')",
        )
        .bind(id.to_string())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.freed_slot(done.rows_affected() == 1).await
    }

    async fn complete(&self, id: Uuid, owner: &str, v: &VideoRef, now: i64) -> StoreResult<bool> {
        let change = sqlx::query(
            "UPDATE tasks SET state = 'completed', progress = 100, finished_at = $1, video_key = $2, thumbnail_key = $3,
               width = $4, height = $5, duration_secs = $6, lease_owner = NULL, lease_until = NULL
             WHERE id = $7 AND lease_owner = $8 AND state = 'processing'",
        )
        .bind(now)
        .bind(&v.video_key)
        .bind(&v.thumbnail_key)
        .bind(v.width as i64)
        .bind(v.height as i64)
        .bind(v.duration_secs)
        .bind(id.to_string())
        .bind(owner);
        self.transition(id, now, change, true).await
    }

    async fn fail(&self, id: Uuid, owner: Option<&str>, reason: &str, now: i64) -> StoreResult<bool> {
        let change = sqlx::query(
            "UPDATE tasks SET state = 'failed', failure_reason = $1, finished_at = $2, lease_owner = NULL, lease_until = NULL
             WHERE id = $3 AND state IN ('pending', 'processing') AND ($4::TEXT IS NULL OR lease_owner = $4)",
        )
        .bind(reason)
        .bind(now)
        .bind(id.to_string())
        .bind(owner);
        self.transition(id, now, change, true).await
    }

    async fn recent_finishes(&self, count: u64) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar("SELECT finished_at FROM tasks WHERE state = 'completed' ORDER BY finished_at DESC LIMIT $1")
            .bind(count as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn recent_dispatches(&self, tier: Tier, count: u64) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT dispatched_at FROM tasks WHERE tier = $1 AND dispatched_at IS NOT NULL ORDER BY dispatched_at DESC LIMIT $2",
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
             WHERE state = 'failed' ORDER BY finished_at DESC LIMIT $1",
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

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl PgStore {
    /// Runs a compare-and-set state change of task `id` and, when it changed the task and
    /// the task has a hook URL, queues the webhook delivery in the same transaction: a
    /// state change and its delivery exist together or not at all. A change that frees a
    /// slot also tells the other replicas' dispatchers, at commit.
    async fn transition(&self, id: Uuid, now: i64, change: Query<'_>, frees_slot: bool) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = change.execute(&mut *tx).await.map_err(db)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_outbox (task_id, state, url, created_at, next_attempt_at)
             SELECT id, state, params::jsonb ->> 'notify_hook', $1, $1 FROM tasks
             WHERE id = $2 AND deleted_at IS NULL AND params::jsonb ->> 'notify_hook' IS NOT NULL",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if frees_slot {
            sqlx::query("SELECT pg_notify($1, '')").bind(super::WORK_CHANNEL).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// A transition that may have freed a slot: other replicas' dispatchers should look.
    async fn freed_slot(&self, changed: bool) -> StoreResult<bool> {
        if changed {
            self.announce_work().await;
        }
        Ok(changed)
    }
}

fn task_from_row(r: &PgRow) -> StoreResult<Task> {
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
