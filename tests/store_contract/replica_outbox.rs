//! PostgreSQL only: replicas share one outbox, and each delivery goes out from one of them.

use lumagate::accounts::Account;
use lumagate::store::postgres::{PgStore, PoolLimits};
use lumagate::store::{AccountStore, OutboxStore, TaskStore};
use lumagate::tasks::model::Tier;

use crate::backends::FreshDatabase;
use crate::{lease, new_task};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_take_the_same_delivery() {
    let db = FreshDatabase::create().await;
    let outcome = tokio::spawn({
        let url = db.url.clone();
        async move {
            let a = PgStore::open(&url, &PoolLimits::default()).await.unwrap();
            let b = PgStore::open(&url, &PoolLimits::default()).await.unwrap();
            a.upsert_account(&Account::new("acct", "sandbox", 50)).await.unwrap();
            for _ in 0..20 {
                let mut t = new_task("k", Tier::Pro);
                t.params.notify_hook = Some("http://h/hook".into());
                a.insert_task(&t, 100).await.unwrap();
                assert!(a.claim(t.id, "acct", "a", lease(), 0).await.unwrap());
                assert!(a.mark_processing(t.id, "a", "up", 10).await.unwrap());
            }
            // Both replicas poll at once: the 20 due deliveries are split, never shared.
            let (took_a, took_b) = tokio::join!(a.due_deliveries(100, 256), b.due_deliveries(100, 256));
            let (took_a, took_b) = (took_a.unwrap(), took_b.unwrap());
            let mut seqs: Vec<i64> = took_a.iter().chain(&took_b).map(|d| d.seq).collect();
            seqs.sort();
            seqs.dedup();
            assert_eq!(seqs.len(), took_a.len() + took_b.len(), "a delivery was handed to both replicas");
            assert_eq!(seqs.len(), 20);
            // Taken rows are not due again while their sender works on them...
            assert!(b.due_deliveries(200, 256).await.unwrap().is_empty());
            // ...but come back if the sender died and its claim lapsed.
            assert_eq!(b.due_deliveries(100 + 11 * 60 * 1_000_000, 256).await.unwrap().len(), 20);
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
