//! Issue 6's persistence on every store: webhook deliveries written by the task
//! transitions themselves, idempotency records written with the task, deleting tasks.

use std::sync::Arc;

use lumagate::accounts::Account;
use lumagate::store::{Store, StoreError};
use lumagate::tasks::model::{Idempotency, State, Tier, VideoRef};

use crate::{lease, new_task};

crate::contract!(
    state_changes_queue_deliveries_that_leave_in_order_per_task,
    an_idempotency_key_is_recorded_with_its_task_once,
    deleting_a_task_hides_it_stops_it_and_frees_its_key
);

fn video() -> VideoRef {
    VideoRef { video_key: "v".into(), thumbnail_key: "t".into(), width: 1, height: 1, duration_secs: 1.0 }
}

async fn state_changes_queue_deliveries_that_leave_in_order_per_task(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("acct", "sandbox", 10)).await.unwrap();
    let hooked = |url: Option<&str>| {
        let mut t = new_task("k", Tier::Pro);
        t.params.notify_hook = url.map(str::to_string);
        t
    };
    let (a, b, quiet) = (hooked(Some("http://h/a")), hooked(Some("http://h/b")), hooked(None));
    for t in [&a, &b, &quiet] {
        store.insert_task(t, 100).await.unwrap();
        assert!(store.claim(t.id, "acct", "me", lease(), 0).await.unwrap());
        assert!(store.mark_processing(t.id, "me", "up", 10).await.unwrap());
    }
    // A transition that does not happen queues nothing.
    assert!(!store.mark_processing(a.id, "me", "up", 11).await.unwrap());
    assert!(store.complete(a.id, "me", &video(), 20).await.unwrap());
    assert!(store.fail(b.id, None, "no", 20).await.unwrap());
    assert_eq!(store.open_deliveries().await.unwrap(), 4, "two per hooked task, none for the quiet one");
    // Back to the queue is no state a client is told of.
    let requeued = hooked(Some("http://h/c"));
    store.insert_task(&requeued, 100).await.unwrap();
    assert!(store.claim(requeued.id, "acct", "me", lease(), 0).await.unwrap());
    assert!(store.mark_processing(requeued.id, "me", "up", 10).await.unwrap());
    assert!(store.requeue(requeued.id, "me").await.unwrap());
    assert_eq!(store.open_deliveries().await.unwrap(), 5, "processing is told, the requeue is not");
    assert!(store.delete_task(requeued.id, "deleted", 15).await.unwrap());
    assert_eq!(store.open_deliveries().await.unwrap(), 4);

    // Only the oldest open delivery of each task is due.
    let due = store.due_deliveries(100, 10).await.unwrap();
    assert_eq!(due.iter().map(|d| (d.task_id, d.state)).collect::<Vec<_>>(), [(a.id, State::Processing), (b.id, State::Processing)]);
    assert_eq!(due[0].url, "http://h/a");
    assert_eq!(due[0].created_at, 10);
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
}

async fn an_idempotency_key_is_recorded_with_its_task_once(store: Arc<dyn Store>) {
    let idem = Idempotency { key: "abc".into(), request_hash: "h1".into() };
    let mut first = new_task("k", Tier::Relax);
    first.idempotency = Some(idem.clone());
    store.insert_task(&first, 100).await.unwrap();
    let record = store.idempotency_record("k", "abc").await.unwrap().expect("recorded");
    assert_eq!((record.request_hash.as_str(), record.task_id), ("h1", first.id));
    assert!(store.idempotency_record("other-key", "abc").await.unwrap().is_none(), "keys are per API key");

    let mut again = new_task("k", Tier::Relax);
    again.idempotency = Some(idem);
    assert!(matches!(store.insert_task(&again, 100).await, Err(StoreError::IdempotencyTaken)));
    assert!(store.task(again.id).await.unwrap().is_none(), "the losing insert stored nothing");
    assert_eq!(store.queue_depth().await.unwrap(), (1, 0));
}

async fn deleting_a_task_hides_it_stops_it_and_frees_its_key(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("acct", "sandbox", 1)).await.unwrap();
    let mut t = new_task("k", Tier::Pro);
    t.idempotency = Some(Idempotency { key: "abc".into(), request_hash: "h".into() });
    store.insert_task(&t, 100).await.unwrap();
    let kept = new_task("k", Tier::Pro);
    store.insert_task(&kept, 100).await.unwrap();
    assert!(store.claim(t.id, "acct", "me", lease(), 0).await.unwrap());

    assert!(store.delete_task(t.id, "deleted by its owner", 50).await.unwrap());
    assert!(!store.delete_task(t.id, "deleted by its owner", 60).await.unwrap(), "already gone");
    let gone = store.task(t.id).await.unwrap().expect("kept for extends");
    assert!(gone.deleted);
    assert_eq!(gone.state, State::Failed, "an unfinished task stops");
    assert_eq!(gone.failure_reason.as_deref(), Some("deleted by its owner"));
    assert!(!store.mark_processing(t.id, "me", "up", 70).await.unwrap(), "its worker lets go");
    assert!(store.in_flight().await.unwrap().get("acct").copied().unwrap_or(0) == 0, "its slot is free");
    let listed: Vec<_> = store.tasks_of_key("k", 0, 10).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, [kept.id], "deleted tasks are not listed");
    assert!(store.idempotency_record("k", "abc").await.unwrap().is_none(), "the key may be used again");
    assert_eq!(store.open_deliveries().await.unwrap(), 0, "deleting queues no webhook");
}
