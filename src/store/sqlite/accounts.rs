use async_trait::async_trait;
use sqlx::Row;

use super::{db, join, split, SqliteStore};
use crate::accounts::Account;
use crate::store::{AccountStore, StoreResult};
use crate::tasks::model::{Model, Tier};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn upsert_account(&self, a: &Account) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO accounts (id, provider, concurrency, tiers, models, weight, enabled, credentials)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET provider = excluded.provider, concurrency = excluded.concurrency,
               tiers = excluded.tiers, models = excluded.models, weight = excluded.weight,
               credentials = excluded.credentials",
        )
        .bind(&a.id)
        .bind(&a.provider)
        .bind(a.concurrency as i64)
        .bind(join(&a.tiers, |t| t.as_str()))
        .bind(join(&a.models, |m| m.as_str()))
        .bind(a.weight as i64)
        .bind(a.enabled)
        .bind(a.credentials.to_string())
        .execute(&mut *self.writes.lock().await)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        let rows = sqlx::query("SELECT * FROM accounts ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| Account {
                id: r.get("id"),
                provider: r.get("provider"),
                concurrency: r.get::<i64, _>("concurrency") as u32,
                tiers: split(r.get::<&str, _>("tiers"), Tier::parse),
                models: split(r.get::<&str, _>("models"), Model::parse),
                weight: r.get::<i64, _>("weight") as u32,
                enabled: r.get("enabled"),
                disabled_reason: r.get("disabled_reason"),
                cooldown_until: r.get("cooldown_until"),
                credentials: serde_json::from_str(r.get::<&str, _>("credentials")).unwrap_or_default(),
            })
            .collect())
    }

    async fn set_cooldown(&self, id: &str, until: i64) -> StoreResult<()> {
        sqlx::query("UPDATE accounts SET cooldown_until = MAX(COALESCE(cooldown_until, 0), ?) WHERE id = ?")
            .bind(until)
            .bind(id)
            .execute(&mut *self.writes.lock().await)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn set_enabled(&self, id: &str, enabled: bool, reason: Option<&str>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE accounts SET enabled = ?, disabled_reason = ? WHERE id = ?")
            .bind(enabled)
            .bind(if enabled { None } else { reason })
            .bind(id)
            .execute(&mut *self.writes.lock().await)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}
