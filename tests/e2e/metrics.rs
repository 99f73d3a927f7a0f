//! `/metrics` after a known workload: every counter adds up (issue 9), and JSON logs
//! carry `task.id`.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::harness::{id_of, is_terminal, prompt, App, Go, COMPLETION};

/// Parses the text exposition into `name{labels}` → value (comments skipped).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {l}"));
            (name.to_string(), value.parse().unwrap_or_else(|_| panic!("not a number in: {l}")))
        })
        .collect()
}

#[track_caller]
fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples.get(name).unwrap_or_else(|| {
        let mut known: Vec<_> = samples.keys().filter(|k| k.starts_with(name.split('{').next().unwrap())).collect();
        known.sort();
        panic!("no sample {name}; samples of that metric: {known:#?}")
    })
}

async fn scrape(app: &App) -> HashMap<String, f64> {
    let r = app.anon(reqwest::Method::GET, "/metrics").go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap_or_default().contains("text"), "{:?}", r.header("content-type"));
    samples(&r.text())
}

#[tokio::test]
async fn counters_add_up_after_a_known_workload() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "300"), ("LUMAGATE_SANDBOX_SLOTS", "3")]).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(id_of(&app.create(prompt(&format!("relax {i}"))).await));
    }
    ids.push(id_of(&app.create_pro(json!({"user_prompt": "pro", "aspect_ratio": "1:1"})).await));
    let bad = app.post("/luma/generations", &json!({"user_prompt": "x", "duration": "7s"})).go().await;
    assert_eq!(bad.status, 400);
    let unauthorized = app.get_as("lg-not-a-key", "/luma/generations").go().await;
    assert_eq!(unauthorized.status, 401);
    let unmatched = app.anon(reqwest::Method::GET, "/no/such/route").go().await;
    assert_eq!(unmatched.status, 404);
    for id in &ids {
        app.wait_completed(id).await;
    }

    let s = scrape(&app).await;
    let requests = |method: &str, route: &str, status: u16| {
        value(&s, &format!(r#"lumagate_http_requests_total{{method="{method}",route="{route}",status="{status}"}}"#))
    };
    assert_eq!(requests("POST", "/luma/generations", 200), 2.0);
    assert_eq!(requests("POST", "/luma/generations", 400), 1.0);
    assert_eq!(requests("POST", "/pro/luma/generations", 200), 1.0);
    assert_eq!(requests("GET", "/luma/generations", 401), 1.0);
    assert_eq!(requests("GET", "unmatched", 404), 1.0);
    // Every request counted is also timed, under the same route.
    let polls: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with(r#"lumagate_http_requests_total{method="GET",route="/luma/generations/{id}""#))
        .map(|(_, v)| v)
        .sum();
    assert!(polls >= 3.0, "the waits polled each task at least once");
    assert_eq!(
        value(&s, r#"lumagate_http_request_duration_seconds_count{method="GET",route="/luma/generations/{id}"}"#),
        polls
    );
    assert_eq!(value(&s, r#"lumagate_http_request_duration_seconds_count{method="POST",route="/luma/generations"}"#), 3.0);

    assert_eq!(value(&s, r#"lumagate_tasks_created_total{tier="relax"}"#), 2.0);
    assert_eq!(value(&s, r#"lumagate_tasks_created_total{tier="pro"}"#), 1.0);
    assert_eq!(value(&s, r#"lumagate_tasks_finished_total{tier="relax",state="completed"}"#), 2.0);
    assert_eq!(value(&s, r#"lumagate_tasks_finished_total{tier="pro",state="completed"}"#), 1.0);
    assert_eq!(value(&s, r#"lumagate_tasks{tier="relax",state="completed"}"#), 2.0);
    assert_eq!(value(&s, r#"lumagate_tasks{tier="pro",state="completed"}"#), 1.0);
    assert_eq!(value(&s, r#"lumagate_queue_depth{tier="relax"}"#), 0.0);
    assert_eq!(value(&s, r#"lumagate_queue_depth{tier="pro"}"#), 0.0);
    assert_eq!(value(&s, r#"lumagate_queue_wait_seconds_count{tier="relax"}"#), 2.0);
    assert_eq!(value(&s, r#"lumagate_queue_wait_seconds_count{tier="pro"}"#), 1.0);
    assert_eq!(value(&s, "lumagate_dispatch_latency_seconds_count"), 3.0);
    assert_eq!(value(&s, r#"lumagate_account_slots{account="sandbox"}"#), 3.0);
    assert_eq!(value(&s, r#"lumagate_account_in_flight{account="sandbox"}"#), 0.0);
    assert_eq!(value(&s, r#"lumagate_account_health{account="sandbox",health="enabled"}"#), 1.0);
    assert_eq!(value(&s, r#"lumagate_account_health{account="sandbox",health="disabled"}"#), 0.0);
    assert!(!s.keys().any(|k| k.starts_with("lumagate_upstream_errors_total")), "no upstream errors happened");
}

#[tokio::test]
async fn failures_are_counted_by_kind_and_levels_follow_the_queue() {
    // One slot, reserved for nothing: tasks queue behind each other; every task fails.
    let app = App::start(&[
        ("LUMAGATE_SANDBOX_DELAY_MS", "300"),
        ("LUMAGATE_SANDBOX_SLOTS", "1"),
        ("LUMAGATE_SANDBOX_FAIL_RATE", "1"),
    ])
    .await;
    let ids: Vec<String> = futures_util::future::join_all((0..3).map(|i| app.create(prompt(&format!("doomed {i}")))))
        .await
        .iter()
        .map(id_of)
        .collect();
    let first = scrape(&app).await;
    let queued = value(&first, r#"lumagate_queue_depth{tier="relax"}"#);
    let in_flight = value(&first, r#"lumagate_account_in_flight{account="sandbox"}"#);
    let pending = value(&first, r#"lumagate_tasks{tier="relax",state="pending"}"#)
        + first.get(r#"lumagate_tasks{tier="relax",state="processing"}"#).copied().unwrap_or(0.0);
    assert!(queued >= 1.0, "with one slot, at least one of three tasks waits: {queued}");
    assert!(in_flight <= 1.0, "one slot holds at most one task: {in_flight}");
    assert!(queued + in_flight <= pending, "queued {queued} + in flight {in_flight} are unfinished tasks ({pending})");

    for id in &ids {
        let task = app.wait_for(id, "finished", COMPLETION, is_terminal).await;
        assert_eq!(task["state"], "failed", "{task}");
    }
    let s = scrape(&app).await;
    assert_eq!(value(&s, r#"lumagate_tasks_finished_total{tier="relax",state="failed"}"#), 3.0);
    assert_eq!(value(&s, r#"lumagate_tasks{tier="relax",state="failed"}"#), 3.0);
    assert_eq!(value(&s, r#"lumagate_upstream_errors_total{account="sandbox",kind="failed"}"#), 3.0);
    assert_eq!(value(&s, r#"lumagate_queue_depth{tier="relax"}"#), 0.0);
    assert!(!s.contains_key(r#"lumagate_tasks_finished_total{tier="relax",state="completed"}"#));
}

#[tokio::test]
async fn json_logs_carry_the_task_id() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "200"), ("LUMAGATE_LOG_FORMAT", "json")]).await;
    let id = id_of(&app.create(prompt("logged")).await);
    app.wait_completed(&id).await;
    let log = app.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}")))
        .collect();
    let about_task: Vec<&Value> = lines.iter().filter(|l| l["task.id"] == id.as_str()).collect();
    assert!(about_task.len() >= 3, "accepted, dispatched and completed should each log task.id; log:\n{log}");
    assert!(about_task.iter().any(|l| l["message"] == "task completed"), "log:\n{log}");
    assert!(about_task.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "log:\n{log}");
}
