use std::time::Duration;

use super::{account, Harness, Script};
use crate::store::{AccountStore, TaskStore};
use crate::tasks::model::{now_micros, State, Tier};
use crate::tasks::EngineError;

#[tokio::test]
async fn a_pro_task_overtakes_a_full_relax_queue_on_the_reserved_slot() {
    let h = Harness::new(&[account("a", 2)], 1, 100).await;
    let key = h.key("k").await;
    let mut relax = Vec::new();
    for _ in 0..10 {
        relax.push(h.create(&key, Tier::Relax).await);
    }
    h.dispatch().await;
    // One slot is kept for pro, so only one relax task runs.
    assert_eq!(h.upstream.submissions().len(), 1);
    let pro = h.create(&key, Tier::Pro).await;
    h.dispatch().await;
    assert_eq!(h.task(pro).await.state, State::Processing);
    assert_eq!(h.upstream.submissions().last().unwrap().0, pro);
    assert!(h.task(relax[1]).await.is_queued(), "the second relax task still waits");
}

#[tokio::test]
async fn a_pro_task_goes_before_every_waiting_relax_task() {
    let h = Harness::new(&[account("a", 1)], 0, 100).await;
    let key = h.key("k").await;
    let first = h.create(&key, Tier::Relax).await;
    h.dispatch().await;
    let waiting = h.create(&key, Tier::Relax).await;
    let pro = h.create(&key, Tier::Pro).await;
    assert_eq!(h.engine.get(&key, pro).await.unwrap().queue_position, Some(1));
    assert_eq!(h.engine.get(&key, waiting).await.unwrap().queue_position, Some(2));
    h.finish(first).await;
    h.dispatch().await;
    assert_eq!(h.task(pro).await.state, State::Processing);
    assert!(h.task(waiting).await.is_queued());
}

#[tokio::test]
async fn a_key_with_one_task_is_served_within_one_turn_of_a_key_with_five_hundred() {
    let slots = 2;
    let h = Harness::new(&[account("a", slots)], 0, 10_000).await;
    let flood = h.key("flood").await;
    let single = h.key("single").await;
    for _ in 0..500 {
        h.create(&flood, Tier::Relax).await;
    }
    let lone = h.create(&single, Tier::Relax).await;
    let mut turns = 0;
    while h.task(lone).await.is_queued() {
        h.dispatch().await;
        // Free every running task so the next pass has slots again.
        for (task, _) in h.upstream.submissions() {
            if h.task(task).await.state == State::Processing {
                h.finish(task).await;
            }
        }
        turns += 1;
        assert!(turns <= 2, "the single key's task waited {turns} turns");
    }
    let order: Vec<_> = h.upstream.submissions().iter().map(|(t, _)| *t).collect();
    let position = order.iter().position(|t| *t == lone).unwrap();
    assert!(position <= slots as usize, "dispatched as number {} of {}", position + 1, order.len());
}

#[tokio::test]
async fn a_full_relax_queue_refuses_with_a_retry_hint_but_pro_is_still_accepted() {
    let h = Harness::new(&[account("a", 1)], 0, 2).await;
    let key = h.key("k").await;
    h.create(&key, Tier::Relax).await;
    h.create(&key, Tier::Relax).await;
    let req = crate::tasks::request::parse_generation(br#"{"user_prompt":"x"}"#, crate::tasks::request::RequestKind::Create).unwrap();
    match h.engine.create(&key, Tier::Relax, req.clone()).await {
        Err(EngineError::Busy { retry_after_secs, .. }) => assert!(retry_after_secs >= 1),
        other => panic!("expected a full queue, got {other:?}"),
    }
    assert!(h.engine.create(&key, Tier::Pro, req).await.is_ok());
    assert_eq!(h.store.queue_depth().await.unwrap(), (2, 1));
}

#[tokio::test]
async fn a_rate_limited_account_cools_down_while_another_serves() {
    let h = Harness::new(&[account("limited", 1), account("healthy", 1)], 0, 100).await;
    h.upstream.script("limited", Script::RateLimit(Duration::from_secs(60)));
    let key = h.key("k").await;
    let a = h.create(&key, Tier::Relax).await;
    let b = h.create(&key, Tier::Relax).await;
    for _ in 0..4 {
        h.dispatch().await;
    }
    let limited = h.store.accounts().await.unwrap().into_iter().find(|x| x.id == "limited").unwrap();
    assert!(limited.cooldown_until.unwrap() > now_micros() + 50_000_000, "cooling down for about 60 s");
    assert!(limited.enabled, "a rate limit does not disable the account");
    // Every accepted submission went to the healthy account, and no task failed.
    assert!(h.upstream.submissions().iter().all(|(_, acc)| acc == "healthy"));
    for id in [a, b] {
        assert_ne!(h.task(id).await.state, State::Failed);
    }
    let first = h.upstream.submissions()[0].0;
    h.finish(first).await;
    h.dispatch().await;
    let second = if first == a { b } else { a };
    let t = h.until(second, |t| t.state == State::Processing).await;
    assert_eq!(t.account_id.as_deref(), Some("healthy"));
}

#[tokio::test]
async fn an_account_that_fails_auth_is_disabled_and_its_task_finishes_elsewhere() {
    let h = Harness::new(&[account("broken", 4), account("good", 1)], 0, 100).await;
    h.upstream.script("broken", Script::AuthFailure);
    let key = h.key("k").await;
    // Only the broken account is open at first, so it is the one tried.
    h.store.set_enabled("good", false, Some("not yet")).await.unwrap();
    let task = h.create(&key, Tier::Relax).await;
    h.dispatch().await;
    h.until(task, |t| t.is_queued()).await;
    h.store.set_enabled("good", true, None).await.unwrap();
    h.dispatch().await;
    let broken = h.store.accounts().await.unwrap().into_iter().find(|x| x.id == "broken").unwrap();
    assert!(!broken.enabled);
    assert_eq!(broken.disabled_reason.as_deref(), Some("401 invalid api key"));
    let t = h.until(task, |t| t.state == State::Processing).await;
    assert_eq!(t.account_id.as_deref(), Some("good"));
    h.finish(task).await;
}

#[tokio::test]
async fn a_worker_killed_mid_task_is_resumed_without_a_second_submission() {
    let h = Harness::new(&[account("a", 1)], 0, 100).await;
    let key = h.key("k").await;
    let task = h.create(&key, Tier::Relax).await;
    h.dispatch().await;
    assert_eq!(h.task(task).await.state, State::Processing);
    // The worker dies without handing its lease back.
    h.engine.shutdown.cancel();
    let dead = h.task(task).await;
    assert_eq!(dead.lease_owner.as_deref(), Some("test-worker"));

    let survivor = h.another_worker("survivor").await;
    // Nothing is taken over while the dead worker's lease is still valid ...
    survivor.sweep().await;
    assert_eq!(h.task(task).await.lease_owner.as_deref(), Some("test-worker"));
    // ... and once it lapses, the survivor resumes polling the same generation.
    h.until(task, |t| t.lease_until.unwrap_or(0) < now_micros()).await;
    assert_eq!(h.task(task).await.lease_until, dead.lease_until, "a worker that was shut down renews nothing");
    survivor.sweep().await;
    h.until(task, |t| t.lease_owner.as_deref() == Some("survivor")).await;
    h.finish(task).await;
    assert_eq!(h.upstream.submissions_of(task), 1, "submitted once, resumed by polling");
}

#[tokio::test]
async fn the_first_submission_goes_out_under_the_attempt_marker_written_before_it() {
    let h = Harness::new(&[account("a", 1)], 0, 100).await;
    let key = h.key("k").await;
    let task = h.create(&key, Tier::Relax).await;
    h.dispatch().await;
    let t = h.task(task).await;
    assert_eq!(t.state, State::Processing);
    assert_eq!(h.upstream.attempts(), [t.attempt.clone().unwrap()]);
    assert_eq!(t.upstream_id, Some(format!("gen-{}", t.attempt.unwrap())));
    assert!(h.upstream.recoveries().is_empty(), "a task never submitted has nothing to recover");
    h.finish(task).await;
}

#[tokio::test]
async fn a_task_whose_worker_died_as_it_submitted_is_submitted_once_after_looking_for_it() {
    use crate::store::TaskStore;
    let h = Harness::new(&[account("a", 1)], 0, 100).await;
    let key = h.key("k").await;
    let task = h.create(&key, Tier::Relax).await;
    // Claimed by a process whose worker wrote its attempt marker, then died before (or
    // while) it called the upstream.
    assert!(h.store.claim(task, "a", "dead", now_micros() - 1, 0).await.unwrap());
    assert!(h.store.record_attempt(task, "dead", "att-dead").await.unwrap());
    let survivor = h.another_worker("survivor").await;
    survivor.sweep().await;
    let t = h.until(task, |t| t.state == State::Processing).await;
    assert_eq!(h.upstream.recoveries(), ["att-dead"], "the marker's generation is looked for first");
    assert_eq!(h.upstream.submissions_of(task), 1);
    assert_ne!(t.attempt.as_deref(), Some("att-dead"), "a new attempt has a new marker");
    assert_eq!(h.upstream.attempts(), [t.attempt.unwrap()]);
}

#[tokio::test]
async fn extend_tasks_are_pinned_to_their_parents_account() {
    let h = Harness::new(&[account("a", 1), account("b", 1)], 0, 100).await;
    let key = h.key("k").await;
    let parent = h.create(&key, Tier::Pro).await;
    h.dispatch().await;
    h.finish(parent).await;
    let parent_account = h.task(parent).await.account_id.unwrap();
    for _ in 0..4 {
        let req = crate::tasks::request::parse_generation(b"{}", crate::tasks::request::RequestKind::Extend).unwrap();
        let child = h.engine.extend(&key, Tier::Pro, parent, req).await.unwrap().task.id;
        h.dispatch().await;
        let t = h.until(child, |t| t.state == State::Processing).await;
        assert_eq!(t.account_id.as_deref(), Some(parent_account.as_str()));
        h.finish(child).await;
    }
}

#[tokio::test]
async fn timeouts_count_from_the_last_progress_and_never_from_queued_time() {
    let timeout = Duration::from_millis(800);
    let h = Harness::with_progress_timeout(&[account("only", 1)], 0, 100, timeout).await;
    let key = h.key("k").await;
    let running = h.create(&key, Tier::Relax).await;
    let queued = h.create(&key, Tier::Relax).await;
    h.dispatch().await;
    h.until(running, |t| t.state == State::Processing).await;

    // The running task keeps moving for three timeouts: it must not time out, and the
    // task queued behind it all that while must not either.
    let started = std::time::Instant::now();
    let mut progress = 10;
    while started.elapsed() < timeout * 3 {
        progress += 2;
        h.upstream.set_progress(running, progress);
        tokio::time::sleep(timeout / 8).await;
    }
    assert_eq!(h.task(running).await.state, State::Processing);
    let waiting = h.task(queued).await;
    assert!(waiting.is_queued(), "the queued task must still wait: {waiting:?}");

    h.finish(running).await;
    h.dispatch().await;
    h.until(queued, |t| t.state == State::Processing).await;
    // Now it stalls: it fails one timeout after its last progress, saying why.
    let failed = h.until(queued, |t| t.state == State::Failed).await;
    let reason = failed.failure_reason.unwrap_or_default();
    assert!(reason.contains("no progress"), "{reason}");
    assert_eq!(h.upstream.submissions_of(queued), 1);
}

#[tokio::test]
async fn running_pro_tasks_fill_the_slots_kept_for_pro() {
    // Two slots, one kept for pro. Whatever order one pass sees them in, a pro task and
    // the first relax task run and the second relax task waits.
    let h = Harness::new(&[account("only", 2)], 1, 100).await;
    let key = h.key("k").await;
    let first = h.create(&key, Tier::Relax).await;
    let second = h.create(&key, Tier::Relax).await;
    let pro = h.create(&key, Tier::Pro).await;
    h.dispatch().await;
    for id in [pro, first] {
        h.until(id, |t| t.state == State::Processing).await;
    }
    assert!(h.task(second).await.is_queued());

    // Once the pro task ends, its slot is kept for pro again: the relax task still waits.
    h.finish(pro).await;
    h.dispatch().await;
    assert!(h.task(second).await.is_queued(), "relax must not take the slot kept for pro");
    h.finish(first).await;
    h.dispatch().await;
    h.until(second, |t| t.state == State::Processing).await;
}
