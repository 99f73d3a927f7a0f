use async_trait::async_trait;
use sqlx::Row;

use super::{db, one, SqliteStore};
use crate::store::{Delivery, OutboxStore, StoreResult};

/// Open: neither delivered nor given up.
const OPEN: &str = "delivered_at IS NULL AND abandoned_at IS NULL";

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn due_deliveries(&self, now: i64, limit: u64) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT o.seq, o.task_id, o.state, o.url, o.created_at, o.attempts FROM webhook_outbox o
             WHERE o.{OPEN} AND o.next_attempt_at <= ?
               AND o.seq = (SELECT MIN(seq) FROM webhook_outbox WHERE task_id = o.task_id AND {OPEN})
             ORDER BY o.seq LIMIT ?"
        ))
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Delivery::from_columns(r.get("seq"), r.get("task_id"), r.get("state"), r.get("url"), r.get("created_at"), r.get("attempts"))
            })
            .collect()
    }

    async fn delivered(&self, seq: i64, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE seq = ?")
            .bind(now)
            .bind(seq)
            .execute(&mut *self.writes.lock().await)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn retry_delivery(&self, seq: i64, attempts: u32, next_attempt_at: i64, error: &str) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?")
            .bind(attempts as i64)
            .bind(next_attempt_at)
            .bind(error)
            .bind(seq)
            .execute(&mut *self.writes.lock().await)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn abandon_delivery(&self, seq: i64, now: i64, error: &str) -> StoreResult<()> {
        sqlx::query("UPDATE webhook_outbox SET abandoned_at = ?, attempts = attempts + 1, last_error = ? WHERE seq = ?")
            .bind(now)
            .bind(error)
            .bind(seq)
            .execute(&mut *self.writes.lock().await)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn open_deliveries(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM webhook_outbox WHERE {OPEN}"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)
            .and_then(one)?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Account;
    use crate::store::{AccountStore, TaskStore};
    use crate::tasks::model::{NewTask, State, Tier, VideoRef};

    fn task(hook: Option<&str>) -> NewTask {
        let mut t = NewTask::sample();
        t.tier = Tier::Pro;
        t.params.notify_hook = hook.map(str::to_string);
        t
    }

    #[tokio::test]
    async fn state_changes_queue_deliveries_that_leave_in_order_per_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        store.upsert_account(&Account::new("acc", "sandbox", 10)).await.unwrap();
        let (a, b, quiet) = (task(Some("http://h/a")), task(Some("http://h/b")), task(None));
        for t in [&a, &b, &quiet] {
            store.insert_task(t, 100).await.unwrap();
            assert!(store.claim(t.id, "acc", "me", i64::MAX, 0).await.unwrap());
            assert!(store.mark_processing(t.id, "me", "up", 10).await.unwrap());
        }
        // A transition that does not happen queues nothing.
        assert!(!store.mark_processing(a.id, "me", "up", 11).await.unwrap());
        let video = VideoRef { video_key: "v".into(), thumbnail_key: "t".into(), width: 1, height: 1, duration_secs: 1.0 };
        assert!(store.complete(a.id, "me", &video, 20).await.unwrap());
        assert!(store.fail(b.id, None, "no", 20).await.unwrap());
        assert_eq!(store.open_deliveries().await.unwrap(), 4, "two per hooked task, none for the quiet one");

        // Only the oldest open delivery of each task is due.
        let due = store.due_deliveries(100, 10).await.unwrap();
        assert_eq!(due.iter().map(|d| (d.task_id, d.state)).collect::<Vec<_>>(), [(a.id, State::Processing), (b.id, State::Processing)]);
        store.retry_delivery(due[0].seq, 1, 200, "500").await.unwrap();
        store.delivered(due[1].seq, 100).await.unwrap();
        let due = store.due_deliveries(100, 10).await.unwrap();
        assert_eq!(due.iter().map(|d| (d.task_id, d.state)).collect::<Vec<_>>(), [(b.id, State::Failed)], "a waits for its retry");
        let due = store.due_deliveries(200, 10).await.unwrap();
        assert_eq!(due[0].task_id, a.id);
        assert_eq!(due[0].attempts, 1);
        store.abandon_delivery(due[0].seq, 200, "gave up").await.unwrap();
        let due = store.due_deliveries(200, 10).await.unwrap();
        assert!(due.iter().any(|d| d.task_id == a.id && d.state == State::Completed), "after giving up, the next one goes");

        // Deleting a task drops its open deliveries.
        assert!(store.delete_task(a.id, "deleted", 300).await.unwrap());
        assert!(store.due_deliveries(300, 10).await.unwrap().iter().all(|d| d.task_id != a.id));
        assert!(store.task(a.id).await.unwrap().unwrap().deleted);
        assert!(!store.delete_task(a.id, "deleted", 300).await.unwrap());
    }
}
