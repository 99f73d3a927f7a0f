use std::sync::Arc;

use lumagate::store::{Store, StoreError};
use lumagate::tasks::model::{State, Tier};

use crate::new_task;

crate::contract!(
    tasks_round_trip_and_list_newest_first,
    the_relax_queue_refuses_past_its_limit,
    dispatch_order_is_pro_by_age_then_relax_in_fair_rounds,
    queue_positions_stay_exact_in_a_long_queue,
    concurrent_creates_respect_the_limit_and_fail_alone
);

async fn tasks_round_trip_and_list_newest_first(store: Arc<dyn Store>) {
    let first = new_task("k1", Tier::Pro);
    let mut second = new_task("k1", Tier::Relax);
    second.parent_id = Some(first.id);
    second.pinned_account = Some("acct".into());
    let other = new_task("k2", Tier::Relax);
    let stored = store.insert_task(&first, 10).await.unwrap();
    assert_eq!((stored.id, stored.state, stored.progress), (first.id, State::Pending, 0));
    assert_eq!(stored.params, first.params);
    assert_eq!(stored.prompt, first.prompt);
    assert_eq!(stored.created_at, first.created_at);
    assert!(stored.is_queued() && stored.account_id.is_none() && stored.video.is_none());
    assert_eq!(Some(stored), store.task(first.id).await.unwrap(), "the answer of insert is the stored task");
    store.insert_task(&second, 10).await.unwrap();
    store.insert_task(&other, 10).await.unwrap();

    let got = store.task(second.id).await.unwrap().expect("second task");
    assert_eq!(got.parent_id, Some(first.id));
    assert!(store.task(uuid::Uuid::new_v4()).await.unwrap().is_none());

    let mine: Vec<_> = store.tasks_of_key("k1", 0, 10).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(mine, [second.id, first.id], "newest first, only this key's");
    let page: Vec<_> = store.tasks_of_key("k1", 1, 1).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(page, [first.id]);
    assert_eq!(store.queue_depth().await.unwrap(), (2, 1));
    let candidates = store.dispatch_candidates(10).await.unwrap();
    let pinned = candidates.iter().find(|(t, _)| t.id == second.id).map(|(_, p)| p.clone());
    assert_eq!(pinned, Some(Some("acct".to_string())), "a candidate carries its pinned account");
}

async fn the_relax_queue_refuses_past_its_limit(store: Arc<dyn Store>) {
    for _ in 0..3 {
        store.insert_task(&new_task("k", Tier::Relax), 3).await.unwrap();
    }
    match store.insert_task(&new_task("k", Tier::Relax), 3).await {
        Err(StoreError::QueueFull { limit: 3 }) => {}
        other => panic!("expected QueueFull, got {other:?}"),
    }
    store.insert_task(&new_task("k", Tier::Pro), 3).await.expect("pro is not limited by the relax queue");
    assert_eq!(store.queue_depth().await.unwrap(), (3, 1));
}

async fn dispatch_order_is_pro_by_age_then_relax_in_fair_rounds(store: Arc<dyn Store>) {
    // Key a floods the relax queue before b and c arrive: fair rounds interleave them.
    let a: Vec<_> = (0..3).map(|_| new_task("a", Tier::Relax)).collect();
    for t in &a {
        store.insert_task(t, 100).await.unwrap();
    }
    let b = new_task("b", Tier::Relax);
    store.insert_task(&b, 100).await.unwrap();
    let p1 = new_task("p", Tier::Pro);
    let p2 = new_task("p", Tier::Pro);
    store.insert_task(&p1, 100).await.unwrap();
    store.insert_task(&p2, 100).await.unwrap();

    let order: Vec<_> = store.dispatch_candidates(10).await.unwrap().into_iter().map(|(t, _)| t.id).collect();
    assert_eq!(order, [p1.id, p2.id, a[0].id, b.id, a[1].id, a[2].id]);
    assert_eq!(store.dispatch_candidates(1).await.unwrap().len(), 2, "the limit applies per tier");

    let ahead = |id| {
        let store = store.clone();
        async move {
            let task = store.task(id).await.unwrap().unwrap();
            let standing = store.queue_standing(&task).await.unwrap();
            (standing.ahead, standing.pro_ahead)
        }
    };
    assert_eq!(ahead(p1.id).await, (0, 0));
    assert_eq!(ahead(p2.id).await, (1, 1));
    assert_eq!(ahead(a[0].id).await, (2, 2), "all pro goes first");
    assert_eq!(ahead(b.id).await, (3, 2));
    assert_eq!(ahead(a[2].id).await, (5, 2));
}

/// Positions read from the store match the dispatch order, for tasks at the front, in
/// the middle and at the back of a queue longer than the stores' shortcuts, and stay
/// exact as tasks leave the queue.
async fn queue_positions_stay_exact_in_a_long_queue(store: Arc<dyn Store>) {
    let flood: Vec<_> = (0..700).map(|_| new_task("flood", Tier::Relax)).collect();
    for t in &flood {
        store.insert_task(t, 10_000).await.unwrap();
    }
    let late = new_task("late", Tier::Relax);
    store.insert_task(&late, 10_000).await.unwrap();
    let pro = new_task("pro", Tier::Pro);
    store.insert_task(&pro, 10_000).await.unwrap();

    let check = |label: &'static str| {
        let store = store.clone();
        let sample = [flood[0].id, flood[1].id, flood[150].id, flood[350].id, flood[698].id, flood[699].id, late.id, pro.id];
        async move {
            let order: Vec<_> = store.dispatch_candidates(10_000).await.unwrap().into_iter().map(|(t, _)| t.id).collect();
            let pro_queued = store.queue_depth().await.unwrap().1;
            for id in sample {
                let Some(expected) = order.iter().position(|o| *o == id) else { continue };
                let task = store.task(id).await.unwrap().unwrap();
                let standing = store.queue_standing(&task).await.unwrap();
                assert_eq!(standing.ahead, expected as u64, "{label}: tasks ahead of {id}");
                let pro_ahead = if task.tier == Tier::Pro { 0 } else { pro_queued };
                assert_eq!(standing.pro_ahead, pro_ahead, "{label}: pro tasks ahead of {id}");
            }
        }
    };
    check("a long queue").await;
    // Dispatching the front of the queue moves everyone up.
    store.upsert_account(&lumagate::accounts::Account::new("acct", "sandbox", 8)).await.unwrap();
    for t in store.dispatch_candidates(3).await.unwrap().into_iter().map(|(t, _)| t) {
        assert!(store.claim(t.id, "acct", "me", crate::lease(), 0).await.unwrap());
    }
    check("after three dispatches").await;
    assert_eq!(store.queue_depth().await.unwrap(), (698, 0), "the limit of three applies per tier: one pro and three relax left");
}

/// Creates arriving together (which the embedded store commits in one transaction) keep
/// the relax limit exact, and a create that fails does not take the others with it.
async fn concurrent_creates_respect_the_limit_and_fail_alone(store: Arc<dyn Store>) {
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_task(&new_task("burst", Tier::Relax), 7).await })
        })
        .collect();
    let (mut stored, mut full) = (0, 0);
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::QueueFull { limit: 7 }) => full += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored, full), (7, 13));
    assert_eq!(store.queue_depth().await.unwrap(), (7, 0));

    let first = new_task("dup", Tier::Pro);
    store.insert_task(&first, 100).await.unwrap();
    let racers: Vec<_> = [new_task("dup", Tier::Pro), first.clone(), new_task("dup", Tier::Pro)]
        .into_iter()
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move { (t.id, store.insert_task(&t, 100).await) })
        })
        .collect();
    for racer in racers {
        let (id, outcome) = racer.await.unwrap();
        if id == first.id {
            assert!(outcome.is_err(), "a second task with the same id must fail");
        } else {
            assert!(outcome.is_ok(), "a create beside a failing one must still be stored: {outcome:?}");
            assert!(store.task(id).await.unwrap().is_some());
        }
    }
    assert_eq!(store.queue_depth().await.unwrap(), (7, 3));
}
