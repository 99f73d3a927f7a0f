//! API.md §4: "No input, however malformed, produces a 500 or loses an accepted task" —
//! also not while the workers are busy writing task progress.

use std::time::Duration;

use crate::harness::{eventually, id_of, prompt, App, Go};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_racing_busy_workers_never_answer_500_and_no_task_is_lost() {
    // Short runs that all fail by injection: many state writes by the workers, no renders.
    let app = App::start(&[
        ("LUMAGATE_SANDBOX_DELAY_MS", "100"),
        ("LUMAGATE_SANDBOX_FAIL_RATE", "1.0"),
        ("LUMAGATE_SANDBOX_SLOTS", "4"),
    ])
    .await;
    let streams = (0..8).map(|s| {
        let app = &app;
        async move {
            let mut answers = Vec::new();
            for i in 0..8 {
                let path = if (s + i) % 2 == 0 { "/luma/generations" } else { "/pro/luma/generations" };
                let r = app.post(path, &prompt(&format!("stream {s} task {i}"))).go().await;
                answers.push((r.status, r.text()));
            }
            answers
        }
    });
    let answers: Vec<(u16, String)> = futures_util::future::join_all(streams).await.into_iter().flatten().collect();
    let failures: Vec<&(u16, String)> = answers.iter().filter(|(status, _)| *status != 200).collect();
    assert!(failures.is_empty(), "{} of {} valid creates failed: {failures:#?}", failures.len(), answers.len());

    let ids: Vec<String> = answers.iter().map(|(_, body)| id_of(&serde_json::from_str(body).unwrap())).collect();
    eventually("every accepted task ending", Duration::from_secs(60), || async {
        for id in &ids {
            if app.task(id).await["state"] != "failed" {
                return None;
            }
        }
        Some(())
    })
    .await;
    let listed = app.get("/luma/generations?limit=100").go().await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(ids.len()), "every accepted task is listed once");
}
