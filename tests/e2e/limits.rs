//! Issue 8: request limits. Bodies over the limit answer 413 naming it, a key over its
//! rate answers 429 with `Retry-After`, slow clients are cut off by the header and body
//! timeouts, and neither they nor a full connection table starve a normal client.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{assert_error, App, Go};

const NEVER_FINISHES: (&str, &str) = ("LUMAGATE_SANDBOX_DELAY_MS", "600000");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_answers_413_naming_the_limit() {
    let app = App::start(&[NEVER_FINISHES, ("LUMAGATE_BODY_LIMIT_BYTES", "4096")]).await;
    let r = app.post("/luma/generations", &json!({"user_prompt": "x".repeat(5000)})).go().await;
    assert_error(&r, 413, &["4096 bytes"]);
    let r = app.post("/luma/generations", &json!({"user_prompt": "fits"})).go().await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_answers_429_with_retry_after_and_other_keys_go_on() {
    let app = App::start(&[NEVER_FINISHES, ("LUMAGATE_RATE_LIMIT_PER_SEC", "1"), ("LUMAGATE_RATE_LIMIT_BURST", "3")]).await;
    let other = app.create_key("other", "relax,pro", None).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..6 {
        let r = app.get("/luma/generations").go().await;
        statuses.push(r.status);
        if r.status == 429 {
            refused = Some(r);
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("six quick requests at 1/s with a burst of 3 were all served: {statuses:?}"));
    assert_eq!(&statuses[..3], &[200, 200, 200], "the burst is served: {statuses:?}");
    assert_error(&refused, 429, &["rate limit", "1 requests per second"]);
    let retry: u64 = refused.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!((1..=2).contains(&retry), "Retry-After should be about a second, got {retry}");
    let r = app.get_as(&other.secret, "/luma/generations").go().await;
    assert_eq!(r.status, 200, "another key has its own budget: {}", r.text());
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(app.get("/luma/generations").go().await.status, 200, "after Retry-After the key is served again");
}

/// Opens a connection and sends the start of a request, then nothing more.
async fn stalled_client(app: &App, partial: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.expect("connect");
    stream.write_all(partial.as_bytes()).await.expect("write");
    stream
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut seen)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open for over {within:?}");
    (String::from_utf8_lossy(&seen).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_and_never_block_a_normal_client() {
    let app = App::start(&[NEVER_FINISHES, ("LUMAGATE_HEADER_TIMEOUT_SECS", "2")]).await;
    // Three clients that never finish their headers.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_client(&app, "GET /luma/generations HTTP/1.1\r\nHost: x\r\nAuthor").await);
    }
    let started = Instant::now();
    let r = app.anon(reqwest::Method::GET, "/healthz").go().await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_millis(1500), "a normal client waited {:?} behind stalled ones", started.elapsed());
    for s in &mut stalled {
        let (_, took) = read_until_closed(s, Duration::from_secs(10)).await;
        assert!(took < Duration::from_secs(6), "a stalled client was cut off only after {took:?}");
    }

    // Now fill every connection with stalled clients: a normal client is served as soon
    // as the header timeout frees one, not never. (The harness's own idle keep-alive
    // connections count too, so the cap is checked on a server of its own.)
    let app = App::start(&[NEVER_FINISHES, ("LUMAGATE_HEADER_TIMEOUT_SECS", "2"), ("LUMAGATE_MAX_CONNECTIONS", "4")]).await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_client(&app, "GET /healthz HTTP/1.1\r\n").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let r = app.anon(reqwest::Method::GET, "/healthz").go().await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(6), "a normal client waited {:?} for a connection", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_answers_408() {
    let app = App::start(&[NEVER_FINISHES, ("LUMAGATE_BODY_TIMEOUT_SECS", "1")]).await;
    let head = format!(
        "POST /luma/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"user_prompt\":",
        app.key.secret
    );
    let mut client = stalled_client(&app, &head).await;
    let (answer, took) = read_until_closed(&mut client, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "expected a 408, got {answer:?}");
    assert!(answer.contains("did not arrive within 1 seconds"), "the message should name the limit: {answer:?}");
    assert!(took < Duration::from_secs(5), "the body timeout fired after {took:?}");
    // Meanwhile the server is fine.
    assert_eq!(app.get("/luma/generations").go().await.status, 200);
}
