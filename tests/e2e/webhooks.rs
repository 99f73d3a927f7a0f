//! API.md §6: webhooks. Receivers listen on 127.0.0.3, which the server may reach only
//! because of `LUMAGATE_ALLOW_WEBHOOK_IPS=127.0.0.3`; 127.0.0.1 stays refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::harness::{assert_error, eventually, id_of, prompt, App, Go};

const RECEIVER_IP: &str = "127.0.0.3";
const SECRET: &str = "webhook-test-secret";

fn settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LUMAGATE_SANDBOX_DELAY_MS", "600"),
        ("LUMAGATE_ALLOW_WEBHOOK_IPS", RECEIVER_IP),
        ("LUMAGATE_WEBHOOK_SECRET", SECRET),
        ("LUMAGATE_WEBHOOK_BACKOFF_MS", "100"),
    ]
}

/// One attempt as the receiver saw it, and what it answered.
#[derive(Debug, Clone)]
struct Attempt {
    delivery: String,
    event: String,
    timestamp: String,
    signature: String,
    body: Value,
    raw: Vec<u8>,
    answered: u16,
}

/// A webhook receiver that records every attempt. It answers 500 to the next
/// `fail_next` attempts, and 503 to all while `down`.
#[derive(Clone)]
struct Receiver {
    addr: std::net::SocketAddr,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    fail_next: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    async fn start() -> Receiver {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let fail_next = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (log, fail, off) = (attempts.clone(), fail_next.clone(), down.clone());
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (log, fail, off) = (log.clone(), fail.clone(), off.clone());
                async move {
                    let answered = if off.load(Ordering::SeqCst) {
                        503
                    } else if fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                        500
                    } else {
                        200
                    };
                    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    log.lock().unwrap().push(Attempt {
                        delivery: h("x-lumagate-delivery"),
                        event: h("x-lumagate-event"),
                        timestamp: h("x-lumagate-timestamp"),
                        signature: h("x-lumagate-signature"),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        raw: body.to_vec(),
                        answered,
                    });
                    axum::http::StatusCode::from_u16(answered).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(format!("{RECEIVER_IP}:0")).await.expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.expect("receiver") });
        Receiver { addr, attempts, fail_next, down }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    /// Accepted deliveries about task `id`, in arrival order.
    fn accepted(&self, id: &str) -> Vec<Attempt> {
        self.attempts().into_iter().filter(|a| a.answered == 200 && a.body["id"] == id).collect()
    }

    /// Waits until `count` deliveries about `id` were accepted.
    async fn await_accepted(&self, id: &str, count: usize) -> Vec<Attempt> {
        eventually(&format!("{count} accepted deliveries for {id}"), Duration::from_secs(90), || async {
            let got = self.accepted(id);
            (got.len() >= count).then_some(got)
        })
        .await
    }
}

/// The receiver's check, as README documents it: HMAC-SHA256 over "<timestamp>.<body>".
fn assert_signed(a: &Attempt) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(a.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&a.raw);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(a.signature, expected, "signature of delivery {} does not verify", a.delivery);
    let ts: i64 = a.timestamp.parse().expect("timestamp is Unix seconds");
    assert!((crate::fixtures::now_secs() - ts).abs() < 300, "timestamp {ts} is not recent");
}

fn states(attempts: &[Attempt]) -> Vec<String> {
    attempts.iter().map(|a| a.body["state"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_change_arrives_once_in_order_signed_in_each_surfaces_shape() {
    let receiver = Receiver::start().await;
    let app = App::start(&settings()).await;

    let mut body = prompt("a lighthouse at dusk");
    body["notify_hook"] = json!(receiver.url());
    let reseller = id_of(&app.create(body).await);
    let r = app
        .post("/dream-machine/v1/generations/video", &json!({"model": "ray-2", "prompt": "a red fox in snow", "callback_url": receiver.url()}))
        .go()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let dm = id_of(&r.json());

    let got = receiver.await_accepted(&reseller, 2).await;
    assert_eq!(states(&got), ["processing", "completed"]);
    assert!(got[1].body["video"]["url"].as_str().is_some_and(|u| u.starts_with("http")), "{:#}", got[1].body);
    assert_eq!(got[0].body["video"]["url"], "", "the processing delivery shows no video yet");
    assert_eq!(got.iter().map(|a| a.event.as_str()).collect::<Vec<_>>(), ["task.processing", "task.completed"]);

    let got_dm = receiver.await_accepted(&dm, 2).await;
    assert_eq!(states(&got_dm), ["dreaming", "completed"]);
    assert!(got_dm[1].body["assets"]["video"].as_str().is_some_and(|u| u.starts_with("http")), "{:#}", got_dm[1].body);
    assert_eq!(got_dm[1].body["request"]["callback_url"], receiver.url());

    // Once: no state twice, even after waiting a while longer.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for id in [&reseller, &dm] {
        let all = receiver.accepted(id);
        assert_eq!(all.len(), 2, "each state change arrives once: {:?}", states(&all));
        let deliveries: std::collections::HashSet<_> = all.iter().map(|a| a.delivery.clone()).collect();
        assert_eq!(deliveries.len(), 2, "each delivery has its own id");
        all.iter().for_each(assert_signed);
    }
    // A failed task reports its end too.
    let failing = App::start(&[settings().as_slice(), &[("LUMAGATE_SANDBOX_FAIL_RATE", "1")]].concat()).await;
    let mut body = prompt("this one fails");
    body["notify_hook"] = json!(receiver.url());
    let failed = id_of(&failing.create(body).await);
    let got = receiver.await_accepted(&failed, 2).await;
    assert_eq!(states(&got), ["processing", "failed"]);
    assert!(got[1].body["failure_reason"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_then_succeeds_gets_every_delivery_in_order() {
    let receiver = Receiver::start().await;
    receiver.fail_next.store(2, Ordering::SeqCst);
    let app = App::start(&settings()).await;
    let mut body = prompt("a paper boat on a river");
    body["notify_hook"] = json!(receiver.url());
    let id = id_of(&app.create(body).await);

    let got = receiver.await_accepted(&id, 2).await;
    assert_eq!(states(&got), ["processing", "completed"]);
    let tries: Vec<_> = receiver.attempts().into_iter().filter(|a| a.body["id"] == id.as_str()).collect();
    assert_eq!(tries.iter().map(|a| a.answered).collect::<Vec<_>>(), [500, 500, 200, 200]);
    assert!(tries[..3].iter().all(|a| a.delivery == tries[0].delivery), "retries repeat the delivery id");
    assert_eq!(tries[0].body["state"], "processing", "the failed delivery is retried before the next one goes");
    got.iter().for_each(assert_signed);

    // /metrics counts every attempt by outcome.
    let metrics = app.anon(reqwest::Method::GET, "/metrics").go().await.text();
    for (outcome, n) in [("delivered", 2), ("retrying", 2)] {
        let line = format!("lumagate_webhook_deliveries_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "expected `{line}` in /metrics:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_no_pending_delivery() {
    let receiver = Receiver::start().await;
    receiver.down.store(true, Ordering::SeqCst);
    let mut app = App::start(&settings()).await;
    let mut body = prompt("a kite over a beach");
    body["notify_hook"] = json!(receiver.url());
    let id = id_of(&app.create(body).await);
    app.wait_completed(&id).await;
    eventually("a refused attempt", Duration::from_secs(30), || async {
        receiver.attempts().iter().any(|a| a.answered == 503 && a.body["id"] == id.as_str()).then_some(())
    })
    .await;

    app.kill_9();
    receiver.down.store(false, Ordering::SeqCst);
    app.restart().await;
    let got = receiver.await_accepted(&id, 2).await;
    assert_eq!(states(&got), ["processing", "completed"]);
    got.iter().for_each(assert_signed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_outside_policy_is_refused_at_submission() {
    let app = App::start(&settings()).await;
    for (hook, why) in [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data", ""),
        ("http://10.1.2.3/hook", "private"),
        ("http://[::1]:8080/hook", "loopback"),
    ] {
        let mut body = prompt("never queued");
        body["notify_hook"] = json!(hook);
        let r = app.post("/luma/generations", &body).go().await;
        let msg = assert_error(&r, 400, &["notify_hook", "not allowed", why]);
        assert!(msg.contains("not allowed"), "{msg}");
        let r = app
            .post("/dream-machine/v1/generations", &json!({"model": "ray-2", "prompt": "never queued", "callback_url": hook}))
            .go()
            .await;
        assert_error(&r, 400, &["callback_url", "not allowed"]);
    }
    let r = app.get("/luma/generations").go().await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(0), "nothing was queued");
}
