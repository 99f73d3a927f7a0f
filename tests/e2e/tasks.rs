//! API.md §3.3 (states and progress), §3.4 (tiers, the bounded relax queue) and the
//! failure path.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixtures::mp4_duration_secs;
use crate::harness::{assert_error, eventually, id_of, is_terminal, prompt, App, Go, COMPLETION};

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
/// out of the queue shows no queue position. `created` is the create answer, the first
/// observation. Returns the states seen, in order, and the final task.
async fn follow_to_the_end(app: &App, created: &Value) -> (Vec<String>, Value) {
    let id = &id_of(created);
    let deadline = Instant::now() + COMPLETION;
    let mut states: Vec<String> = vec![created["state"].as_str().expect("state").to_string()];
    let mut progress = created["progress"].as_u64().expect("progress");
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
    let (states, done) = follow_to_the_end(&app, &created).await;
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
    let relax_task = app.create(prompt("something the filter dislikes")).await;
    let pro_task = app.create_pro(prompt("something else it dislikes")).await;
    let (relax, pro) = (id_of(&relax_task), id_of(&pro_task));

    // Not finished yet: no link and no extend (409), whatever it will become.
    let unfinished = app.post(&format!("/luma/generations/{relax}/extend"), &prompt("more")).go().await;
    assert_error(&unfinished, 409, &[]);
    let link = app.get(&format!("/pro/luma/generations/{pro}/download_video_url")).go().await;
    assert_error(&link, 409, &[]);

    for (id, created) in [(&relax, &relax_task), (&pro, &pro_task)] {
        let (states, done) = follow_to_the_end(&app, created).await;
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

/// Whether the task has left the queue (dispatched, running or ended).
fn dispatched(task: &Value) -> bool {
    !(task["state"] == "pending" && task["queue_position"].is_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relax_queue_is_fair_across_keys() {
    // One slot for relax (the other is kept for pro); runs of 1 s that fail, no renders.
    let app = App::start(&[
        ("LUMAGATE_SANDBOX_DELAY_MS", "1000"),
        ("LUMAGATE_SANDBOX_SLOTS", "2"),
        ("LUMAGATE_SANDBOX_FAIL_RATE", "1.0"),
    ])
    .await;
    let busy = app.create_key("busy", "relax", None).await;
    let newcomer = app.create_key("newcomer", "relax", None).await;
    let mut busy_ids = Vec::new();
    for i in 0..6 {
        busy_ids.push(id_of(&app.create_at("/luma/generations", &busy.secret, prompt(&format!("busy {i}"))).await));
    }
    let first = app.create_at("/luma/generations", &newcomer.secret, prompt("my first task")).await;
    let first_id = id_of(&first);
    let position = first["queue_position"].as_u64().expect("the newcomer's task waits");
    let busy_last = app.get_as(&busy.secret, &format!("/luma/generations/{}", busy_ids[5])).go().await.json();
    assert!(
        position < busy_last["queue_position"].as_u64().unwrap_or(0),
        "the newcomer's first task must not queue behind all of the busy key's tasks: {first:#} vs {busy_last:#}"
    );

    let busy_served_first = eventually("the newcomer's task leaving the queue", Duration::from_secs(30), || async {
        let mine = app.get_as(&newcomer.secret, &format!("/luma/generations/{first_id}")).go().await.json();
        if !dispatched(&mine) {
            return None;
        }
        let mut served = 0;
        for id in &busy_ids {
            if dispatched(&app.get_as(&busy.secret, &format!("/luma/generations/{id}")).go().await.json()) {
                served += 1;
            }
        }
        Some(served)
    })
    .await;
    // One task was running when the newcomer arrived; at most one more turn may pass.
    assert!(busy_served_first <= 2, "{busy_served_first} of the busy key's tasks went before the newcomer's first task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pro_task_goes_before_every_waiting_relax_task() {
    let app = App::start(&[
        ("LUMAGATE_SANDBOX_DELAY_MS", "1000"),
        ("LUMAGATE_SANDBOX_SLOTS", "2"),
        ("LUMAGATE_SANDBOX_FAIL_RATE", "1.0"),
    ])
    .await;
    let running_relax = id_of(&app.create(prompt("relax running")).await);
    let running_pro = id_of(&app.create_pro(prompt("pro running")).await);
    for id in [&running_relax, &running_pro] {
        app.wait_for(id, "dispatched", Duration::from_secs(20), dispatched).await;
    }
    // Both slots are busy: these two wait.
    let waiting_relax = id_of(&app.create(prompt("relax waiting")).await);
    let waiting_pro = app.create_pro(prompt("pro arriving later")).await;
    assert!(waiting_pro["queue_position"].is_u64(), "no slot is free, so the pro task waits: {waiting_pro:#}");
    assert_eq!(waiting_pro["queue_position"], 1, "pro waits ahead of every relax task");

    let waiting_pro = id_of(&waiting_pro);
    app.wait_for(&waiting_pro, "dispatched", Duration::from_secs(30), dispatched).await;
    app.wait_for(&waiting_relax, "dispatched", Duration::from_secs(30), dispatched).await;
    // The dispatcher's log says in which order they got their slots.
    let log = app.log();
    let order = |id: &str| {
        log.lines()
            .position(|l| l.contains("task dispatched") && l.contains(id))
            .unwrap_or_else(|| panic!("no dispatch of {id} in the log:\n{log}"))
    };
    assert!(order(&waiting_pro) < order(&waiting_relax), "the pro task must be dispatched before the relax task that waited longer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_options_shape_the_rendered_video() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "300")]).await;
    let task = app
        .create_pro(json!({"user_prompt": "a spinning top", "aspect_ratio": "1:1", "duration": "10s", "loop": true, "model_name": "ray-v3"}))
        .await;
    let done = app.wait_completed(&id_of(&task)).await;
    assert_eq!((done["video"]["width"].as_u64(), done["video"]["height"].as_u64()), (Some(720), Some(720)), "1:1 720p is 720×720");
    for (k, v) in [("aspect_ratio", "1:1"), ("duration", "10s"), ("model_name", "ray-v3"), ("tier", "pro")] {
        assert_eq!(done[k], v);
    }
    assert_eq!(done["loop"], true);
    let video = app.fetch(done["video"]["url"].as_str().unwrap()).await;
    let secs = mp4_duration_secs(&video.body);
    assert!((9.5..=10.5).contains(&secs), "a 10s task makes a 10 s video, got {secs} s");
}
