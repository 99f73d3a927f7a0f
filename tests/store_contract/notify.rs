//! PostgreSQL only: replicas hear of new work without waiting for their next poll.

use std::time::Duration;

use lumagate::accounts::Account;
use lumagate::store::postgres::{PgStore, PoolLimits};
use lumagate::store::{AccountStore, TaskStore};
use lumagate::tasks::model::Tier;

use crate::backends::FreshDatabase;
use crate::{lease, new_task};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_told_of_queued_tasks_and_freed_slots() {
    let db = FreshDatabase::create().await;
    let outcome = tokio::spawn({
        let url = db.url.clone();
        async move {
            let a = PgStore::open(&url, &PoolLimits::default()).await.unwrap();
            let b = PgStore::open(&url, &PoolLimits::default()).await.unwrap();
            let mut listener = b.work_listener().await.unwrap();
            a.upsert_account(&Account::new("acct", "sandbox", 1)).await.unwrap();
            let t = new_task("k", Tier::Pro);
            a.insert_task(&t, 10).await.unwrap();
            assert!(heard(&mut listener).await, "queueing a task is announced");
            assert!(a.claim(t.id, "acct", "a", lease(), 0).await.unwrap());
            assert!(a.fail(t.id, None, "test", 1).await.unwrap());
            assert!(heard(&mut listener).await, "freeing a slot is announced");
            a.pool().close().await;
            b.pool().close().await;
        }
    })
    .await;
    db.drop_it().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn heard(listener: &mut sqlx::postgres::PgListener) -> bool {
    tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.is_ok_and(|r| r.is_ok())
}
