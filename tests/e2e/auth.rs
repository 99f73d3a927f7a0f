//! API.md §2 (authentication) and §4a (CORS, request ids).

use reqwest::Method;

use crate::harness::{assert_error, App, Go, Resp};

/// Tasks created here never need to finish: the sandbox takes ten minutes.
const NEVER_FINISHES: (&str, &str) = ("LUMAGATE_SANDBOX_DELAY_MS", "600000");
const BROWSER_ORIGIN: &str = "http://client.example";

/// `GET /luma/generations` with this exact `Authorization` value (or none).
async fn list_with_authorization(app: &App, value: Option<&str>) -> Resp {
    let mut rb = app.anon(Method::GET, "/luma/generations").header("origin", BROWSER_ORIGIN);
    if let Some(v) = value {
        rb = rb.header("authorization", v);
    }
    rb.go().await
}

#[track_caller]
fn assert_cors_allowed(r: &Resp) {
    let allowed = r.header("access-control-allow-origin");
    assert!(
        allowed.as_deref() == Some("*") || allowed.as_deref() == Some(BROWSER_ORIGIN),
        "the answer ({}) must carry Access-Control-Allow-Origin, got {allowed:?}",
        r.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_answer_401_with_a_json_error() {
    let app = App::start(&[NEVER_FINISHES]).await;
    let key = app.key.secret.clone();
    let revoked = app.create_key("soon revoked", "relax,pro", None).await;
    assert_eq!(list_with_authorization(&app, Some(&format!("Bearer {}", revoked.secret))).await.status, 200);
    app.revoke_key(&revoked.id).await;
    // The CLI is another process: the server notices when its cached copy of the key,
    // at most one second old (API.md §2), is read again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while list_with_authorization(&app, Some(&format!("Bearer {}", revoked.secret))).await.status != 401 {
        assert!(std::time::Instant::now() < deadline, "a key revoked by the CLI still works after 3 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let refused: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("Basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("Token scheme with a real key", Some(format!("Token {key}"))),
        ("scheme glued to the key", Some(format!("Bearer{key}"))),
        ("scheme alone", Some("Bearer".into())),
        ("Bearer with an empty key", Some("Bearer ".into())),
        ("two spaces before the key", Some(format!("Bearer  {key}"))),
        ("the key with a character added", Some(format!("Bearer {key}x"))),
        ("an unknown key", Some("Bearer lg-0000000000000000000000000000000000000000".into())),
        ("a revoked key", Some(format!("Bearer {}", revoked.secret))),
    ];
    for (case, value) in refused {
        let r = list_with_authorization(&app, value.as_deref()).await;
        assert_eq!(r.status, 401, "{case}: expected 401, got {}: {}", r.status, r.text());
        assert_error(&r, 401, &[]);
        assert_cors_allowed(&r);
    }

    // The scheme is matched case-insensitively.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = list_with_authorization(&app, Some(&format!("{scheme} {key}"))).await;
        assert_eq!(r.status, 200, "`{scheme} <key>` should be accepted: {}", r.text());
        assert_cors_allowed(&r);
    }

    // Creating needs a key too.
    let r = app
        .anon(Method::POST, "/luma/generations")
        .json(&serde_json::json!({"user_prompt": "a cat"}))
        .go()
        .await;
    assert_error(&r, 401, &[]);
    let r = app.anon(Method::GET, "/pro/luma/generations/00000000-0000-0000-0000-000000000000").go().await;
    assert_error(&r, 401, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_need_no_key_and_every_answer_carries_the_headers() {
    let app = App::start(&[NEVER_FINISHES]).await;
    for path in [
        "/luma/generations",
        "/luma/generations/",
        "/pro/luma/generations",
        "/luma/generations/5c0e4a29-7d39-4c1c-9d0e-1f1f1f1f1f1f/download_video_url",
    ] {
        let r = app
            .anon(Method::OPTIONS, path)
            .header("origin", BROWSER_ORIGIN)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,idempotency-key")
            .go()
            .await;
        assert!((200..300).contains(&r.status), "preflight of {path} should answer 2xx, got {}: {}", r.status, r.text());
        assert_cors_allowed(&r);
        let allowed_headers = r.header("access-control-allow-headers").unwrap_or_default().to_lowercase();
        for h in ["authorization", "content-type", "idempotency-key"] {
            assert!(allowed_headers.contains(h), "preflight of {path} must allow the {h} header: {allowed_headers:?}");
        }
        let methods = r.header("access-control-allow-methods").unwrap_or_default().to_uppercase();
        assert!(methods.contains("POST") && methods.contains("GET"), "preflight must allow GET and POST: {methods:?}");
    }

    // Errors carry the CORS header too, so browser clients can read them.
    let not_found = app.get("/luma/generations/5c0e4a29-7d39-4c1c-9d0e-1f1f1f1f1f1f").header("origin", BROWSER_ORIGIN).go().await;
    assert_error(&not_found, 404, &[]);
    assert_cors_allowed(&not_found);
    let bad = app.post("/luma/generations", &serde_json::json!({"user_prompt": "x", "duration": "7s"})).header("origin", BROWSER_ORIGIN).go().await;
    assert_error(&bad, 400, &["duration"]);
    assert_cors_allowed(&bad);
    let ok = app.get("/luma/generations").header("origin", BROWSER_ORIGIN).go().await;
    assert_eq!(ok.status, 200);
    assert_cors_allowed(&ok);

    // Request ids are per request.
    let a = app.get("/luma/generations").go().await.header("x-request-id");
    let b = app.get("/luma/generations").go().await.header("x-request-id");
    assert_ne!(a, b, "two requests should get two request ids");
    let unknown_route = app.get("/luma/nothing-here").go().await;
    assert_error(&unknown_route, 404, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_while_the_server_runs_work_at_once_and_revoked_ones_stop_within_a_second() {
    let app = App::start(&[NEVER_FINISHES]).await;
    let fresh = app.create_key("made while running", "relax", None).await;
    let r = app.get_as(&fresh.secret, "/luma/generations").go().await;
    assert_eq!(r.status, 200, "a key made by the CLI should work on the next request: {}", r.text());
    assert_eq!(r.json(), serde_json::json!([]), "a new key has no tasks");
    let task = app.create_at("/luma/generations", &fresh.secret, serde_json::json!({"user_prompt": "a boat"})).await;
    assert_eq!(task["tier"], "relax");

    let listed = app.cli(&["keys", "list"]).await;
    let line = listed.lines().find(|l| l.starts_with(&fresh.id)).unwrap_or_else(|| panic!("keys list lacks {}:\n{listed}", fresh.id));
    assert!(line.contains("active"), "{line}");
    assert!(!listed.contains(&fresh.secret), "keys list must never show a secret");

    app.revoke_key(&fresh.id).await;
    let revoked_at = std::time::Instant::now();
    let r = loop {
        let r = app.get_as(&fresh.secret, "/luma/generations").go().await;
        if r.status != 200 || revoked_at.elapsed() > std::time::Duration::from_secs(3) {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_error(&r, 401, &[]);
    let r = app.get_as(&fresh.secret, &format!("/luma/generations/{}", task["id"].as_str().unwrap())).go().await;
    assert_error(&r, 401, &[]);
    let listed = app.cli(&["keys", "list"]).await;
    let line = listed.lines().find(|l| l.starts_with(&fresh.id)).expect("revoked key still listed");
    assert!(line.contains("revoked"), "{line}");

    // Other keys are untouched.
    assert_eq!(app.get("/luma/generations").go().await.status, 200);
}
