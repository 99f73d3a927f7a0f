//! API.md §3.3 (states and progress), §3.4 (tiers, the bounded relax queue) and the
//! failure path.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixtures::mp4_duration_secs;
use crate::harness::{assert_error, id_of, is_terminal, prompt, App, Go, COMPLETION};

fn rank(state: &str) -> u8 {
    match state {
        "pending" => 0,
        "processing" => 1,
        "completed" | "failed" => 2,
        other => panic!("unknown state {other:?}"),
    }
}

/// Polls a task every 100 ms until it ends, checking on every read that the state only
/// moves forward, that progress stays within 0–100 and never decreases, and that a task
/// out of the queue shows no queue position. Returns the states seen, in order.
async fn follow_to_the_end(app: &App, id: &str) -> (Vec<String>, Value) {
    let deadline = Instant::now() + COMPLETION;
    let mut states: Vec<String> = Vec::new();
    let mut progress = 0u64;
    loop {
        let t = app.task(id).await;
        let state = t["state"].as_str().expect("state").to_string();
        if let Some(prev) = states.last() {
            assert!(rank(&state) >= rank(prev), "state went back from {prev} to {state}: {t:#}");
        }
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        let p = t["progress"].as_u64().unwrap_or_else(|| panic!("progress is a number: {t:#}"));
        assert!(p <= 100, "progress above 100: {t:#}");
        assert!(p >= progress, "progress went down from {progress} to {p}");
        progress = p;
        if state != "pending" {
            assert_eq!(t["queue_position"], Value::Null, "a {state} task has no queue position: {t:#}");
            assert_eq!(t["estimate_wait_seconds"], Value::Null, "a {state} task has no wait estimate: {t:#}");
        }
        if is_terminal(&t) {
            return (states, t);
        }
        assert!(Instant::now() < deadline, "task {id} did not end within {COMPLETION:?}: {t:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_moves_from_pending_through_processing_to_completed() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "1500")]).await;
    let created = app.create(prompt("a Tesla speeding along a highway")).await;
    assert_eq!(created["state"], "pending");
    let id = id_of(&created);
    let (states, done) = follow_to_the_end(&app, &id).await;
    assert_eq!(states.first().map(String::as_str), Some("pending"), "{states:?}");
    assert!(states.iter().any(|s| s == "processing"), "processing should be observable for 1.5 s: {states:?}");
    assert_eq!(done["state"], "completed", "{done:#}");

    assert_eq!(done["progress"], 100);
    assert_eq!(done["failure_reason"], Value::Null);
    assert_eq!((done["video"]["width"].as_u64(), done["video"]["height"].as_u64()), (Some(1280), Some(720)), "16:9 720p is 1280×720");
    let files = format!("{}/files/", app.origin());
    for link in ["url", "download_url", "thumbnail"] {
        let l = done["video"][link].as_str().unwrap_or_default();
        assert!(l.starts_with(&files), "video.{link} must be an absolute link to {files}: {l:?}");
    }
    for (k, v) in [("prompt", json!("a Tesla speeding along a highway")), ("created_at", created["created_at"].clone()), ("tier", json!("relax"))] {
        assert_eq!(done[k], v, "{k} must not change");
    }
    // The files behind the links are really there.
    let video = app.fetch(done["video"]["url"].as_str().unwrap()).await;
    assert_eq!(video.status, 200);
    let secs = mp4_duration_secs(&video.body);
    assert!((4.5..=5.5).contains(&secs), "a 5s task should make a 5 s video, got {secs} s");

    // Terminal states never change.
    for _ in 0..3 {
        let again = app.task(&id).await;
        assert_eq!(again["state"], "completed");
        assert_eq!(again["progress"], 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_readable_under_either_prefix_whatever_their_tier() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "400")]).await;
    let pro = app.create_pro(prompt("a truck running ahead")).await;
    let relax = app.create(prompt("a truck running behind")).await;
    assert_eq!(pro["tier"], "pro");
    assert_eq!(relax["tier"], "relax");
    for (task, tier) in [(&pro, "pro"), (&relax, "relax")] {
        let id = id_of(task);
        app.wait_completed(&id).await;
        for prefix in ["/luma", "/pro/luma"] {
            let got = app.get(&format!("{prefix}/generations/{id}")).go().await;
            assert_eq!(got.status, 200, "GET {prefix}/generations/{id}: {}", got.text());
            assert_eq!(got.json()["tier"], tier, "the tier is the creating path's, whatever the reading path");
            assert_eq!(got.json()["state"], "completed");
            let link = app.get(&format!("{prefix}/generations/{id}/download_video_url")).go().await;
            assert_eq!(link.status, 200, "download_video_url under {prefix}: {}", link.text());
            let url = link.json()["url"].as_str().expect("url").to_string();
            let video = app.fetch(&url).await;
            assert_eq!(video.status, 200, "{url}");
            assert_eq!(video.header("content-type").as_deref(), Some("video/mp4"));
        }
    }
    let listed = app.get("/pro/luma/generations").go().await.json();
    let tiers: Vec<&str> = listed.as_array().unwrap().iter().map(|t| t["tier"].as_str().unwrap()).collect();
    assert_eq!(tiers, vec!["relax", "pro"], "both tiers in one list, newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tasks_carry_a_reason_and_refuse_links_and_extends() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "2000"), ("LUMAGATE_SANDBOX_FAIL_RATE", "1.0")]).await;
    let relax = id_of(&app.create(prompt("something the filter dislikes")).await);
    let pro = id_of(&app.create_pro(prompt("something else it dislikes")).await);

    // Not finished yet: no link and no extend (409), whatever it will become.
    let unfinished = app.post(&format!("/luma/generations/{relax}/extend"), &prompt("more")).go().await;
    assert_error(&unfinished, 409, &[]);
    let link = app.get(&format!("/pro/luma/generations/{pro}/download_video_url")).go().await;
    assert_error(&link, 409, &[]);

    for id in [&relax, &pro] {
        let (states, done) = follow_to_the_end(&app, id).await;
        assert_eq!(done["state"], "failed", "{done:#}");
        assert!(!states.contains(&"completed".to_string()), "{states:?}");
        let reason = done["failure_reason"].as_str().unwrap_or_else(|| panic!("a failed task carries failure_reason: {done:#}"));
        assert!(reason.starts_with("moderation"), "the sandbox's injected failure is a moderation failure: {reason:?}");
        assert_eq!(done["video"], json!({"url": "", "download_url": "", "thumbnail": "", "width": 0, "height": 0}));
        assert_eq!(done["queue_position"], Value::Null);

        let link = app.get(&format!("/luma/generations/{id}/download_video_url")).go().await;
        assert_error(&link, 409, &["failed"]);
        let extend = app.post(&format!("/pro/luma/generations/{id}/extend"), &prompt("more")).go().await;
        assert_error(&extend, 409, &["failed"]);
        // Clients keep polling failed tasks: the answer stays the same.
        let again = app.task(id).await;
        assert_eq!(again["state"], "failed");
        assert_eq!(again["failure_reason"], done["failure_reason"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_relax_queue_answers_429_with_retry_after_and_pro_still_gets_in() {
    let app = App::start(&[
        ("LUMAGATE_SANDBOX_DELAY_MS", "20000"),
        ("LUMAGATE_SANDBOX_SLOTS", "2"),
        ("LUMAGATE_RELAX_QUEUE_LIMIT", "2"),
    ])
    .await;
    let mut accepted = 0;
    let refused = loop {
        let r = app.post("/luma/generations", &prompt("one more")).go().await;
        match r.status {
            200 => accepted += 1,
            429 => break r,
            other => panic!("expected 200 or 429, got {other}: {}", r.text()),
        }
        assert!(accepted <= 3, "the relax queue (limit 2, one running) should be full after at most 3 creates");
    };
    assert!(accepted >= 2, "the queue holds 2 tasks; only {accepted} were accepted");
    assert_error(&refused, 429, &["queue"]);
    let retry = refused.header("retry-after").expect("a 429 carries Retry-After");
    assert!(retry.parse::<u64>().is_ok_and(|s| s >= 1), "Retry-After is a number of seconds: {retry:?}");

    // Still full for relax; pro has no queue limit and takes its reserved slot.
    assert_error(&app.post("/luma/generations/", &prompt("again")).go().await, 429, &[]);
    for _ in 0..3 {
        let pro = app.create_pro(prompt("pro gets in")).await;
        assert_eq!(pro["tier"], "pro");
    }
    let relax_count = app.get("/luma/generations?limit=100").go().await.json().as_array().unwrap().iter().filter(|t| t["tier"] == "relax").count();
    assert_eq!(relax_count, accepted, "refused creates must not store tasks");
}
