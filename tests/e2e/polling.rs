//! The polling fast path (issue 8): a poll whose key and task are in memory is answered
//! without the router, and that answer must be the router's answer, byte for byte.

use std::time::Duration;

use crate::harness::{assert_error, eventually, id_of, prompt, App, Go, Resp};

/// `lumagate_polls_from_memory_total`.
async fn polls_from_memory(app: &App) -> f64 {
    let text = app.anon(reqwest::Method::GET, "/metrics").go().await.text();
    text.lines()
        .find_map(|l| l.strip_prefix("lumagate_polls_from_memory_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no lumagate_polls_from_memory_total in:\n{text}"))
}

/// The headers a client could act on (not the request id's value, not the date).
fn answer_headers(r: &Resp) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| {
            let value = if *name == "x-request-id" { "<id>".to_string() } else { value.to_str().unwrap().to_string() };
            (name.to_string(), value)
        })
        .collect();
    headers.sort();
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_answered_from_memory_is_the_routers_answer() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "200"), ("LUMAGATE_SANDBOX_FAIL_RATE", "1")]).await;
    let id = id_of(&app.create(prompt("a task that ends and then never changes")).await);
    eventually("the task fails", Duration::from_secs(30), || async {
        (app.task(&id).await["state"] == "failed").then_some(())
    })
    .await;

    let before = polls_from_memory(&app).await;
    let polls: Vec<Resp> = vec![
        app.get(&format!("/luma/generations/{id}")).go().await,
        app.get(&format!("/luma/generations/{id}")).go().await,
        app.get(&format!("/pro/luma/generations/{id}")).go().await,
    ];
    let from_memory = polls_from_memory(&app).await - before;
    assert!(from_memory >= 2.0, "the repeated polls of an unchanged task should come from memory; {from_memory} did");
    // A query string makes the fast path stand aside: this is the router's answer.
    let routed = app.get(&format!("/luma/generations/{id}?via=router")).go().await;
    assert_eq!(routed.status, 200, "{}", routed.text());
    for poll in &polls {
        assert_eq!(poll.status, 200);
        assert_eq!(poll.text(), routed.text(), "the body from memory differs from the router's");
        assert_eq!(answer_headers(poll), answer_headers(&routed), "the headers from memory differ from the router's");
    }
    assert_ne!(polls[0].header("x-request-id"), polls[1].header("x-request-id"), "each answer has its own request id");
    // A request id the client sends comes back, from memory as from the router.
    let path = format!("/luma/generations/{id}");
    let before = polls_from_memory(&app).await;
    let mine = app.get(&path).header("x-request-id", "client-chosen-1").go().await;
    assert_eq!(polls_from_memory(&app).await - before, 1.0, "this poll should have come from memory");
    let routed = app.get(&format!("{path}?via=router")).header("x-request-id", "client-chosen-2").go().await;
    assert_eq!(mine.header("x-request-id").as_deref(), Some("client-chosen-1"));
    assert_eq!(routed.header("x-request-id").as_deref(), Some("client-chosen-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_never_answers_what_the_router_would_refuse() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "600000")]).await;
    let id = id_of(&app.create(prompt("a long task")).await);
    let path = format!("/luma/generations/{id}");
    for _ in 0..3 {
        assert_eq!(app.get(&path).go().await.status, 200);
    }
    // Another key sees no such task, however warm the caches are.
    let other = app.create_key("another customer", "relax,pro", None).await;
    assert_eq!(app.get_as(&other.secret, "/luma/generations").go().await.status, 200);
    for _ in 0..2 {
        assert_error(&app.get_as(&other.secret, &path).go().await, 404, &[]);
    }
    // A cross-origin poll carries the CORS answer for its origin.
    let r = app.get(&path).header("origin", "https://app.example.com").go().await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_some(), "{:?}", r.headers);
    // A deleted task is gone at once, though its last poll was answered from memory.
    let deleted = app.http.delete(app.url(&format!("/dream-machine/v1/generations/{id}"))).bearer_auth(&app.key.secret).send().await.unwrap();
    assert!(deleted.status().is_success(), "delete answered {}", deleted.status());
    assert_error(&app.get(&path).go().await, 404, &[]);
}
