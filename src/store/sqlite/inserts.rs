//! How a new task is stored: one row that carries its fair round and checks the relax
//! queue's limit, committed alone or in a group ([`super::group_commit`]), or with its
//! idempotency record.

use std::sync::Arc;

use sqlx::Connection;

use super::tasks::QUEUED;
use super::writer::Writer;
use super::db;
use crate::store::{StoreError, StoreResult};
use crate::tasks::model::NewTask;

/// Stores a new task unless it is relax and the relax queue holds `relax_limit` tasks;
/// true when stored. One statement: the queue limit (a counter kept by triggers), the
/// fair round and the row. Start-time fair queueing: a key's next relax task goes one
/// round after its previous queued task, and never before the round being served now
/// (the highest round of any relax task ever dispatched).
pub(super) async fn row(conn: &mut sqlx::SqliteConnection, t: &NewTask, relax_limit: u64) -> StoreResult<bool> {
    let insert = format!(
        "INSERT INTO tasks (id, key_id, tier, state, prompt, params, parent_id, pinned_account, fair_round, created_at)
         SELECT ?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7,
                CASE WHEN ?3 = 'relax' THEN MAX(
                    (SELECT COALESCE(MAX(fair_round), 0) FROM tasks WHERE {QUEUED} AND tier = 'relax' AND key_id = ?2),
                    (SELECT COALESCE(MAX(fair_round), 0) FROM tasks WHERE tier = 'relax' AND account_id IS NOT NULL)) + 1
                ELSE 0 END,
                ?8
         WHERE ?3 = 'pro' OR (SELECT queued FROM queue_counts WHERE tier = 'relax') < ?9"
    );
    let done = sqlx::query(&insert)
        .bind(t.id.to_string())
        .bind(&t.key_id)
        .bind(t.tier.as_str())
        .bind(&t.prompt)
        .bind(serde_json::to_string(&t.params).map_err(db)?)
        .bind(t.parent_id.map(|p| p.to_string()))
        .bind(&t.pinned_account)
        .bind(t.created_at)
        .bind(relax_limit.min(i64::MAX as u64) as i64)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

/// Stores a create with an `Idempotency-Key`: the task and its idempotency record in one
/// transaction. True when stored, false when the relax queue was full.
pub(super) async fn with_idempotency(writes: Arc<Writer>, t: NewTask, relax_limit: u64) -> StoreResult<bool> {
    let Some(idem) = &t.idempotency else { return Err(db("no idempotency key")) };
    let mut writer = writes.lock().await;
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if !row(&mut tx, &t, relax_limit).await? {
        return Ok(false);
    }
    let recorded = sqlx::query(
        "INSERT INTO idempotency (key_id, idem_key, request_hash, task_id, created_at) VALUES (?, ?, ?, ?, ?)
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
    tx.commit().await.map_err(db)?;
    Ok(true)
}
