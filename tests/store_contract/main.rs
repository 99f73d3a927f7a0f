//! One contract for every store: each test here runs on SQLite and on PostgreSQL.
//!
//! The PostgreSQL half needs a server (`LUMAGATE_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets its own database.

mod backends;
mod claims;
mod keys_accounts;
mod leases;
mod notify;
mod outbox;
mod queue;
mod replica_outbox;

use lumagate::tasks::model::{AspectRatio, ClipDuration, Model, NewTask, Params, Resolution, Surface, Tier};
use uuid::Uuid;

/// A task as the engine would persist it.
pub fn new_task(key: &str, tier: Tier) -> NewTask {
    NewTask {
        id: Uuid::new_v4(),
        key_id: key.to_string(),
        tier,
        prompt: format!("a {} task of {key}", tier.as_str()),
        params: Params {
            model: Model::RayV2,
            aspect_ratio: AspectRatio::Wide,
            resolution: Resolution::P720,
            duration: ClipDuration::Five,
            looped: false,
            expand_prompt: false,
            start_image: None,
            end_image: Some("keyframes/x-end.png".into()),
            notify_hook: None,
            surface: Surface::Reseller,
            request_echo: None,
        },
        parent_id: None,
        pinned_account: None,
        created_at: lumagate::tasks::model::now_micros(),
        idempotency: None,
    }
}

/// A lease that holds for a minute.
pub fn lease() -> i64 {
    lumagate::tasks::model::now_micros() + 60_000_000
}
