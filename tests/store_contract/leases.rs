use std::sync::Arc;

use lumagate::accounts::Account;
use lumagate::store::Store;
use lumagate::tasks::model::{now_micros, State, Tier, VideoRef};

use crate::{lease, new_task};

crate::contract!(
    only_the_lease_owner_moves_a_task_to_its_end,
    lapsed_leases_are_taken_over_and_dropped_ones_at_once,
    a_requeued_task_waits_again_and_failing_ends_any_unfinished_task,
    a_finished_upstream_frees_the_slot_while_the_video_is_rehosted,
    recent_dispatches_are_per_tier_newest_first,
    operators_see_counts_per_tier_and_state_and_recent_failures
);

async fn claimed(store: &Arc<dyn Store>, owner: &str, lease_until: i64) -> uuid::Uuid {
    store.upsert_account(&Account::new("acct", "sandbox", 10)).await.unwrap();
    let t = new_task("k", Tier::Pro);
    store.insert_task(&t, 100).await.unwrap();
    assert!(store.claim(t.id, "acct", owner, lease_until, 0).await.unwrap());
    t.id
}

fn video() -> VideoRef {
    VideoRef {
        video_key: "videos/x.mp4".into(),
        thumbnail_key: "thumbnails/x.jpg".into(),
        width: 1280,
        height: 720,
        duration_secs: 5.0,
    }
}

async fn only_the_lease_owner_moves_a_task_to_its_end(store: Arc<dyn Store>) {
    let id = claimed(&store, "me", lease()).await;
    assert!(!store.record_attempt(id, "you", "att-1").await.unwrap());
    assert!(store.record_attempt(id, "me", "att-1").await.unwrap());
    assert!(!store.record_progress(id, "me", 10, 1).await.unwrap(), "no progress before processing");
    assert!(!store.mark_processing(id, "you", "up-1", 1).await.unwrap());
    assert!(store.mark_processing(id, "me", "up-1", 1).await.unwrap());
    assert!(!store.mark_processing(id, "me", "up-1", 1).await.unwrap(), "only from pending");
    assert!(store.record_progress(id, "me", 40, 2).await.unwrap());
    assert!(!store.record_progress(id, "me", 30, 3).await.unwrap(), "progress never goes back");
    assert!(!store.record_progress(id, "you", 50, 3).await.unwrap());
    let t = store.task(id).await.unwrap().unwrap();
    assert_eq!((t.state, t.progress, t.attempt.as_deref(), t.upstream_id.as_deref()), (State::Processing, 40, Some("att-1"), Some("up-1")));
    assert_eq!(t.last_progress_at, Some(2));
    assert!(store.renew_lease(id, "me", lease() + 5).await.unwrap());
    assert!(!store.renew_lease(id, "you", lease()).await.unwrap());

    assert!(!store.complete(id, "you", &video(), 10).await.unwrap());
    assert!(store.complete(id, "me", &video(), 10).await.unwrap());
    assert!(!store.complete(id, "me", &video(), 11).await.unwrap(), "a terminal state is reached once");
    assert!(!store.fail(id, None, "late", 12).await.unwrap(), "a completed task cannot fail");
    let t = store.task(id).await.unwrap().unwrap();
    assert_eq!((t.state, t.progress, t.video), (State::Completed, 100, Some(video())));
    assert!(t.lease_owner.is_none() && t.lease_until.is_none());
    assert_eq!(store.in_flight().await.unwrap().get("acct"), None, "a finished task holds no slot");
    assert_eq!(store.recent_finishes(5).await.unwrap(), [10]);
}

async fn lapsed_leases_are_taken_over_and_dropped_ones_at_once(store: Arc<dyn Store>) {
    let now = now_micros();
    let live = claimed(&store, "alive", now + 60_000_000).await;
    let dead = claimed(&store, "dead", now - 1).await;
    let resumable: Vec<_> = store.resumable("other", now).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(resumable, [dead], "only the lapsed lease");
    let own: Vec<_> = store.resumable("alive", now).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(own, [live, dead], "a restarted owner also resumes its own");

    assert!(!store.take_over(live, "other", now, now + 10).await.unwrap(), "a live lease is not taken");
    assert!(store.take_over(dead, "other", now, now + 10).await.unwrap());
    assert!(!store.take_over(dead, "third", now, now + 10).await.unwrap(), "the new lease holds");
    assert!(!store.renew_lease(dead, "dead", now + 99).await.unwrap(), "the old owner lost it");
    assert_eq!(store.task(dead).await.unwrap().unwrap().lease_owner.as_deref(), Some("other"));

    assert_eq!(store.drop_leases("alive").await.unwrap(), 1);
    assert!(store.take_over(live, "other", now, now + 10).await.unwrap(), "a dropped lease is free at once");
}

async fn a_requeued_task_waits_again_and_failing_ends_any_unfinished_task(store: Arc<dyn Store>) {
    let id = claimed(&store, "me", lease()).await;
    store.record_attempt(id, "me", "att").await.unwrap();
    assert!(!store.requeue(id, "you").await.unwrap());
    assert!(store.requeue(id, "me").await.unwrap());
    let t = store.task(id).await.unwrap().unwrap();
    assert!(t.is_queued() && t.attempt.is_none() && t.lease_owner.is_none() && t.dispatched_at.is_none());
    assert_eq!(store.queue_depth().await.unwrap(), (0, 1));

    assert!(store.claim(id, "acct", "me", lease(), 0).await.unwrap());
    assert!(!store.fail(id, Some("you"), "no", 5).await.unwrap());
    assert!(store.fail(id, None, "swept", 5).await.unwrap());
    let t = store.task(id).await.unwrap().unwrap();
    assert_eq!((t.state, t.failure_reason.as_deref()), (State::Failed, Some("swept")));
    assert!(store.recent_finishes(5).await.unwrap().is_empty(), "failures are not completions");
}

async fn operators_see_counts_per_tier_and_state_and_recent_failures(store: Arc<dyn Store>) {
    let first = claimed(&store, "me", lease()).await;
    let second = claimed(&store, "me", lease()).await;
    store.insert_task(&new_task("k", Tier::Relax), 10).await.unwrap();
    store.fail(first, None, "older", 10).await.unwrap();
    store.fail(second, Some("me"), "newer", 20).await.unwrap();
    let mut counts = store.task_counts().await.unwrap();
    counts.sort_by_key(|(tier, state, _)| (tier.as_str(), state.as_str()));
    assert_eq!(counts, [(Tier::Pro, State::Failed, 2), (Tier::Relax, State::Pending, 1)]);
    let failures = store.recent_failures(10).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.task_id, f.reason.as_str(), f.failed_at)).collect::<Vec<_>>(), [(second, "newer", 20), (first, "older", 10)]);
    assert_eq!(failures[0].account_id.as_deref(), Some("acct"));
    assert_eq!(failures[0].tier, Tier::Pro);
    assert_eq!(store.recent_failures(1).await.unwrap().len(), 1);
}

async fn a_finished_upstream_frees_the_slot_while_the_video_is_rehosted(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("one", "sandbox", 1)).await.unwrap();
    let (first, second) = (new_task("k", Tier::Pro), new_task("k", Tier::Pro));
    store.insert_task(&first, 10).await.unwrap();
    store.insert_task(&second, 10).await.unwrap();
    assert!(store.claim(first.id, "one", "me", lease(), 0).await.unwrap());
    assert!(!store.claim(second.id, "one", "me", lease(), 0).await.unwrap(), "the one slot is taken");
    assert!(!store.release_slot(first.id, "me", 5).await.unwrap(), "only a processing task is released");
    store.mark_processing(first.id, "me", "up", 1).await.unwrap();
    assert!(!store.release_slot(first.id, "you", 5).await.unwrap(), "only by its lease owner");
    assert!(store.release_slot(first.id, "me", 5).await.unwrap());
    assert!(!store.release_slot(first.id, "me", 6).await.unwrap(), "once");
    assert_eq!(store.in_flight().await.unwrap().get("one"), None, "a released task holds no slot");
    assert!(store.claim(second.id, "one", "me", lease(), 0).await.unwrap(), "the next task takes the freed slot");
    // The released task is still driven under its lease until it completes.
    assert!(store.renew_lease(first.id, "me", lease()).await.unwrap());
    assert_eq!(store.resumable("me", now_micros()).await.unwrap().len(), 2);
    assert!(store.complete(first.id, "me", &video(), 9).await.unwrap());
}

async fn recent_dispatches_are_per_tier_newest_first(store: Arc<dyn Store>) {
    store.upsert_account(&Account::new("acct", "sandbox", 10)).await.unwrap();
    let mut relax = Vec::new();
    for tier in [Tier::Relax, Tier::Pro, Tier::Relax] {
        let t = new_task("k", tier);
        store.insert_task(&t, 10).await.unwrap();
        assert!(store.claim(t.id, "acct", "o", lease(), 0).await.unwrap());
        if tier == Tier::Relax {
            relax.push(store.task(t.id).await.unwrap().unwrap().dispatched_at.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    relax.reverse();
    assert_eq!(store.recent_dispatches(Tier::Relax, 10).await.unwrap(), relax);
    assert_eq!(store.recent_dispatches(Tier::Relax, 1).await.unwrap(), relax[..1]);
    assert_eq!(store.recent_dispatches(Tier::Pro, 10).await.unwrap().len(), 1);
}
