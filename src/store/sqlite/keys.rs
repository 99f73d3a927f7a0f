use async_trait::async_trait;
use sqlx::Row;

use super::{db, join, one, split, SqliteStore};
use crate::keys::ApiKey;
use crate::store::{KeyStore, StoreResult};
use crate::tasks::model::{now_micros, Model, Tier};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: &ApiKey, hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, tiers, models, dm_tier, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(hash)
        .bind(join(&key.tiers, |t| t.as_str()))
        .bind(join(&key.models, |m| m.as_str()))
        .bind(key.dm_tier.map(Tier::as_str))
        .bind(key.created_at)
        .execute(&mut *self.writes.lock().await)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn active_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
            .bind(hash)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .into_iter()
            .next();
        Ok(row.map(|r| key_from_row(&r)))
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_key(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(id)
            .execute(&mut *self.writes.lock().await)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_keys(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(db)
            .and_then(one)?;
        Ok(n as u64)
    }
}

fn key_from_row(r: &sqlx::sqlite::SqliteRow) -> ApiKey {
    ApiKey {
        id: r.get("id"),
        name: r.get("name"),
        tiers: split(r.get::<&str, _>("tiers"), Tier::parse),
        models: split(r.get::<&str, _>("models"), Model::parse),
        dm_tier: r.get::<Option<&str>, _>("dm_tier").and_then(Tier::parse),
        created_at: r.get("created_at"),
        revoked_at: r.get("revoked_at"),
    }
}
