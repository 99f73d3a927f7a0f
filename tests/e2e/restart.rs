//! Durability: no accepted task is lost across a crash (`kill -9`) or a graceful stop
//! (SIGTERM); every task ends `completed` after the next start.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{eventually, id_of, prompt, App, Go};

/// Two slots (one kept for pro) and a slow sandbox, so that tasks pile up.
const SETTINGS: &[(&str, &str)] = &[("LUMAGATE_SANDBOX_DELAY_MS", "1500"), ("LUMAGATE_SANDBOX_SLOTS", "2")];
const ALL_DONE: Duration = Duration::from_secs(150);

/// Reads every task until each has ended; panics unless all completed.
async fn wait_all_completed(app: &App, ids: &[String]) -> Vec<Value> {
    let tasks = eventually("every task ending", ALL_DONE, || async {
        let mut tasks = Vec::new();
        for id in ids {
            let t = app.task(id).await;
            if !matches!(t["state"].as_str(), Some("completed" | "failed")) {
                return None;
            }
            tasks.push(t);
        }
        Some(tasks)
    })
    .await;
    for t in &tasks {
        assert_eq!(t["state"], "completed", "every task should complete after the restart: {t:#}");
        assert!(t["video"]["url"].as_str().is_some_and(|u| u.starts_with(&app.origin())), "{t:#}");
    }
    tasks
}

/// Waits until at least one task is processing and at least one waits in the queue.
async fn wait_some_processing_some_queued(app: &App, ids: &[String]) {
    eventually("one task processing while another waits in the queue", Duration::from_secs(30), || async {
        let mut processing = false;
        let mut queued = false;
        for id in ids {
            let t = app.task(id).await;
            processing |= t["state"] == "processing";
            queued |= t["state"] == "pending" && t["queue_position"].is_u64();
        }
        (processing && queued).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_accepted_task_still_completes() {
    let mut app = App::start(SETTINGS).await;
    let first = id_of(&app.create(prompt("before the crash")).await);
    let first_done = app.wait_completed(&first).await;

    let mut ids = vec![first.clone()];
    for i in 0..3 {
        ids.push(id_of(&app.create(prompt(&format!("relax {i}"))).await));
    }
    for i in 0..2 {
        ids.push(id_of(&app.create_pro(prompt(&format!("pro {i}"))).await));
    }
    wait_some_processing_some_queued(&app, &ids[1..]).await;
    let before: Vec<Value> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(app.task(id).await);
        }
        v
    };

    app.kill_9();
    app.restart().await;

    let after = wait_all_completed(&app, &ids).await;
    for (b, a) in before.iter().zip(&after) {
        for k in ["id", "prompt", "created_at", "tier", "aspect_ratio", "duration"] {
            assert_eq!(a[k], b[k], "{k} must survive the crash");
        }
    }
    // The task finished before the crash kept its files.
    let again = app.task(&first).await;
    assert_eq!(again["video"]["width"], first_done["video"]["width"]);
    for t in &after {
        let r = app.fetch(t["video"]["url"].as_str().unwrap()).await;
        assert_eq!(r.status, 200, "the video of {} is served after the restart", t["id"]);
        assert_eq!(r.header("content-type").as_deref(), Some("video/mp4"));
    }
    let listed = app.get("/luma/generations").go().await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(ids.len()), "no task lost, none doubled: {listed:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_the_next_start_finishes_the_work() {
    let mut app = App::start(SETTINGS).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(id_of(&app.create(prompt(&format!("relax {i}"))).await));
    }
    ids.push(id_of(&app.create_pro(prompt("pro")).await));
    wait_some_processing_some_queued(&app, &ids).await;

    let status = app.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "SIGTERM should end the server with exit code 0, got {status}");

    app.restart().await;
    wait_all_completed(&app, &ids).await;
    let listed = app.get("/pro/luma/generations").go().await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(ids.len()), "{listed:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_folder_is_refused() {
    let app = App::start(&[]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (status, stderr) = app.cli_status(&["serve", "--listen", &format!("127.0.0.1:{port}")]).await;
    assert!(!status.success(), "a second serve on the same folder must not start");
    assert!(stderr.contains("another lumagate server is using the data folder"), "{stderr}");
    // The first server is untouched.
    assert_eq!(app.get("/luma/generations").go().await.status, 200);
}
