use std::sync::Arc;

use lumagate::accounts::Account;
use lumagate::store::Store;
use lumagate::tasks::model::Tier;

use crate::{lease, new_task};

crate::contract!(
    a_task_is_claimed_once,
    claims_respect_the_accounts_concurrency_and_health,
    relax_claims_leave_the_reserved_slots_to_pro,
    running_pro_tasks_fill_the_slots_kept_for_pro,
    racing_dispatchers_never_overfill_an_account,
    racing_relax_and_pro_claims_keep_the_reserve
);

async fn queued(store: &Arc<dyn Store>, key: &str, tier: Tier, n: usize) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let t = new_task(key, tier);
        store.insert_task(&t, 10_000).await.unwrap();
        ids.push(t.id);
    }
    ids
}

async fn a_task_is_claimed_once(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("acct", "sandbox", 4)).await.unwrap();
    let id = queued(&store, "k", Tier::Pro, 1).await[0];
    let until = lease();
    assert!(store.claim(id, "acct", "one", until, 0).await.unwrap());
    assert!(!store.claim(id, "acct", "two", until, 0).await.unwrap(), "a claimed task is no longer queued");
    let t = store.task(id).await.unwrap().unwrap();
    assert_eq!((t.account_id.as_deref(), t.lease_owner.as_deref(), t.lease_until), (Some("acct"), Some("one"), Some(until)));
    assert!(t.dispatched_at.is_some() && !t.is_queued());
    assert_eq!(store.in_flight().await.unwrap().get("acct"), Some(&1));
    assert_eq!(
        store.slots_in_use().await.unwrap(),
        (store.in_flight().await.unwrap(), store.pro_in_flight().await.unwrap()),
        "the dispatcher's combined read agrees with the separate ones"
    );
    assert_eq!(store.queue_depth().await.unwrap(), (0, 0));
    assert!(!store.claim(uuid::Uuid::new_v4(), "acct", "one", until, 0).await.unwrap(), "no such task");
}

async fn claims_respect_the_accounts_concurrency_and_health(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("small", "sandbox", 2)).await.unwrap();
    store.upsert_account(&Account::new("off", "sandbox", 5)).await.unwrap();
    store.set_enabled("off", false, Some("test")).await.unwrap();
    let ids = queued(&store, "k", Tier::Pro, 4).await;
    assert!(store.claim(ids[0], "small", "o", lease(), 0).await.unwrap());
    assert!(store.claim(ids[1], "small", "o", lease(), 0).await.unwrap());
    assert!(!store.claim(ids[2], "small", "o", lease(), 0).await.unwrap(), "the account is full");
    assert!(!store.claim(ids[2], "off", "o", lease(), 0).await.unwrap(), "a disabled account takes nothing");
    assert!(!store.claim(ids[2], "ghost", "o", lease(), 0).await.unwrap(), "an unknown account takes nothing");
    assert!(store.task(ids[2]).await.unwrap().unwrap().is_queued(), "a refused claim changes nothing");

    // A finished task frees its slot.
    store.fail(ids[0], None, "test", 1).await.unwrap();
    assert!(store.claim(ids[2], "small", "o", lease(), 0).await.unwrap());
    assert_eq!(store.in_flight().await.unwrap().get("small"), Some(&2));
}

async fn relax_claims_leave_the_reserved_slots_to_pro(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("a", "sandbox", 2)).await.unwrap();
    store.upsert_account(&Account::new("b", "sandbox", 1)).await.unwrap();
    let relax = queued(&store, "r", Tier::Relax, 3).await;
    let pro = queued(&store, "p", Tier::Pro, 1).await;
    // Three free slots, one reserved: relax may take two, then only pro gets in.
    assert!(store.claim(relax[0], "a", "o", lease(), 1).await.unwrap());
    assert!(store.claim(relax[1], "b", "o", lease(), 1).await.unwrap());
    assert!(!store.claim(relax[2], "a", "o", lease(), 1).await.unwrap(), "the last free slot is kept for pro");
    assert!(store.claim(pro[0], "a", "o", lease(), 1).await.unwrap(), "pro takes the reserved slot");
}

async fn running_pro_tasks_fill_the_slots_kept_for_pro(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("a", "sandbox", 4)).await.unwrap();
    let pro = queued(&store, "p", Tier::Pro, 1).await;
    let relax = queued(&store, "r", Tier::Relax, 4).await;
    // Two slots kept for pro; one pro task runs, so only one is still owed.
    assert!(store.claim(pro[0], "a", "o", lease(), 2).await.unwrap());
    assert_eq!(store.pro_in_flight().await.unwrap(), 1);
    assert!(store.claim(relax[0], "a", "o", lease(), 2).await.unwrap(), "3 free > 1 owed");
    assert!(store.claim(relax[1], "a", "o", lease(), 2).await.unwrap(), "2 free > 1 owed");
    assert!(!store.claim(relax[2], "a", "o", lease(), 2).await.unwrap(), "the last free slot is owed to pro");
    assert_eq!(store.pro_in_flight().await.unwrap(), 1, "relax tasks are not counted");
    let (by_account, pro_running) = store.slots_in_use().await.unwrap();
    assert_eq!((by_account.get("a"), pro_running), (Some(&3), 1), "the dispatcher's combined read");
    // The pro task's upstream finishes: its slot is free and the reserve is owed in full.
    assert!(store.mark_processing(pro[0], "o", "up", 1).await.unwrap());
    assert!(store.release_slot(pro[0], "o", 2).await.unwrap());
    assert_eq!(store.pro_in_flight().await.unwrap(), 0);
    assert!(!store.claim(relax[2], "a", "o", lease(), 2).await.unwrap(), "2 free, 2 owed");
}

/// Many dispatchers (replicas) claim at once onto one small account: the limit holds.
async fn racing_dispatchers_never_overfill_an_account(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("acct", "sandbox", 3)).await.unwrap();
    let ids = queued(&store, "k", Tier::Pro, 12).await;
    let racers = (0..6).map(|r| {
        let store = store.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut won = 0;
            for id in ids.iter().cycle().skip(r * 2).take(ids.len()) {
                if store.claim(*id, "acct", &format!("replica-{r}"), lease(), 0).await.unwrap() {
                    won += 1;
                }
            }
            won
        })
    });
    let won: u32 = futures_util::future::join_all(racers).await.into_iter().map(|w| w.unwrap()).sum();
    assert_eq!(won, 3, "exactly the account's concurrency is claimed");
    assert_eq!(store.in_flight().await.unwrap().get("acct"), Some(&3));
    assert_eq!(store.queue_depth().await.unwrap(), (0, 9));
}

/// Relax and pro claims race on a pool with one reserved slot: relax never eats into it.
async fn racing_relax_and_pro_claims_keep_the_reserve(store: Arc<dyn Store>) {
    for id in ["a", "b", "c"] {
        store.upsert_account(&Account::new(id, "sandbox", 2)).await.unwrap();
    }
    let relax = queued(&store, "r", Tier::Relax, 10).await;
    let pro = queued(&store, "p", Tier::Pro, 3).await;
    let claimers = relax.iter().map(|id| (*id, Tier::Relax)).chain(pro.iter().map(|id| (*id, Tier::Pro)));
    let racers = claimers.enumerate().map(|(i, (id, tier))| {
        let store = store.clone();
        tokio::spawn(async move {
            for account in ["a", "b", "c"].iter().cycle().skip(i % 3).take(3) {
                if store.claim(id, account, "o", lease(), 1).await.unwrap() {
                    return Some(tier);
                }
            }
            None
        })
    });
    let won: Vec<Tier> = futures_util::future::join_all(racers).await.into_iter().filter_map(|w| w.unwrap()).collect();
    let relax_won = won.iter().filter(|t| **t == Tier::Relax).count();
    assert!(won.len() <= 6, "never more than the pool's six slots: {won:?}");
    assert!(relax_won <= 5, "relax took the slot reserved for pro: {won:?}");
    let in_flight: u32 = store.in_flight().await.unwrap().values().sum();
    assert_eq!(in_flight as usize, won.len());
}
