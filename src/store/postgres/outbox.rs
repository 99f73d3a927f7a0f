//! The webhook outbox on PostgreSQL; rows are written by the task transitions in tasks.rs.

use async_trait::async_trait;
use sqlx::Row;

use super::{db, PgStore};
use crate::store::{Delivery, OutboxStore, StoreResult};

/// Open: neither delivered nor given up.
const OPEN: &str = "delivered_at IS NULL AND abandoned_at IS NULL";
/// How long a replica holds the deliveries it took: longer than any attempt may take.
const DELIVERY_CLAIM_MICROS: i64 = 10 * 60 * 1_000_000;

#[async_trait]
impl OutboxStore for PgStore {
    async fn due_deliveries(&self, now: i64, limit: u64) -> StoreResult<Vec<Delivery>> {
        // Replicas share the outbox: taking a row pushes its next attempt past the longest
        // delivery, so no other replica sends it meanwhile. SKIP LOCKED lets replicas take
        // disjoint rows at once; a replica that dies mid-send leaves its rows due again
        // after the claim lapses (at-least-once, with a stable X-Lumagate-Delivery id).
        let mut rows = sqlx::query(&format!(
            "UPDATE webhook_outbox SET next_attempt_at = $3
             WHERE seq IN (
               SELECT o.seq FROM webhook_outbox o
               WHERE o.{OPEN} AND o.next_attempt_at <= $1
                 AND o.seq = (SELECT MIN(seq) FROM webhook_outbox WHERE task_id = o.task_id AND {OPEN})
               ORDER BY o.seq LIMIT $2
               FOR UPDATE SKIP LOCKED)
             RETURNING seq, task_id, state, url, created_at, attempts"
        ))
        .bind(now)
        .bind(limit as i64)
        .bind(now + DELIVERY_CLAIM_MICROS)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.sort_by_key(|r| r.get::<i64, _>("seq"));
        rows.iter()
            .map(|r| {
                Delivery::from_columns(r.get("seq"), r.get("task_id"), r.get("state"), r.get("url"), r.get("created_at"), r.get("attempts"))
            })
            .collect()
    }

    async fn delivered(&self, seq: i64, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_outbox SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE seq = $2")
            .bind(now)
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn retry_delivery(&self, seq: i64, attempts: u32, next_attempt_at: i64, error: &str) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_outbox SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE seq = $4")
            .bind(attempts as i64)
            .bind(next_attempt_at)
            .bind(error)
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn abandon_delivery(&self, seq: i64, now: i64, error: &str) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_outbox SET abandoned_at = $1, attempts = attempts + 1, last_error = $2 WHERE seq = $3")
            .bind(now)
            .bind(error)
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn open_deliveries(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM webhook_outbox WHERE {OPEN}"))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(n as u64)
    }
}
