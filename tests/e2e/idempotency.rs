//! `Idempotency-Key` on every create, on both surfaces: the same key with the same
//! request answers the same task, also after a restart; with another request, a 422.

use serde_json::json;

use crate::harness::{assert_error, id_of, prompt, App, Go};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_reseller_create_or_extend_returns_the_same_task() {
    let mut app = App::start(&[]).await;
    let send = |path: &str, key: &str, body: serde_json::Value| {
        app.post(path, &body).header("idempotency-key", key.to_string()).go()
    };
    let first = send("/luma/generations", "create-1", prompt("a snail on a leaf")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let again = send("/luma/generations", "create-1", prompt("a snail on a leaf")).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(id_of(&again.json()), id_of(&first.json()));

    let other = send("/luma/generations", "create-1", prompt("a different prompt")).await;
    assert_error(&other, 422, &["idempotency-key", "different request"]);
    // The same key on the other tier is another request too.
    let pro = send("/pro/luma/generations", "create-1", prompt("a snail on a leaf")).await;
    assert_error(&pro, 422, &["idempotency-key"]);
    // Keys are scoped per API key: another caller's same key is its own.
    let stranger = app.create_key("stranger", "relax", None).await;
    let theirs = app
        .post_as(&stranger.secret, "/luma/generations", &prompt("a snail on a leaf"))
        .header("idempotency-key", "create-1")
        .go()
        .await;
    assert_eq!(theirs.status, 200);
    assert_ne!(id_of(&theirs.json()), id_of(&first.json()));

    let parent = id_of(&first.json());
    app.wait_completed(&parent).await;
    let path = format!("/luma/generations/{parent}/extend");
    let child = send(&path, "extend-1", prompt("and then it rains")).await;
    assert_eq!(child.status, 200, "{}", child.text());
    let child_again = send(&path, "extend-1", prompt("and then it rains")).await;
    assert_eq!(id_of(&child_again.json()), id_of(&child.json()));

    // Persisted: a restart remembers the key.
    app.restart().await;
    let after = app.post("/luma/generations", &prompt("a snail on a leaf")).header("idempotency-key", "create-1").go().await;
    assert_eq!(id_of(&after.json()), parent);
    let listed = app.get("/luma/generations").go().await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "one create and one extend were queued: {listed:#}");

    let bad = app.post("/luma/generations", &prompt("x y z")).header("idempotency-key", "é".repeat(3)).go().await;
    assert_error(&bad, 400, &["idempotency-key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_dream_machine_create_returns_the_same_generation_on_either_path() {
    let app = App::start(&[]).await;
    let body = json!({"model": "ray-2", "prompt": "a comet over mountains", "aspect_ratio": "9:16"});
    let first = app.post("/dream-machine/v1/generations/video", &body).header("idempotency-key", "k-1").go().await;
    assert_eq!(first.status, 201, "{}", first.text());
    let again = app.post("/dream-machine/v1/generations", &body).header("idempotency-key", "k-1").go().await;
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(id_of(&again.json()), id_of(&first.json()));

    let changed = json!({"model": "ray-2", "prompt": "a comet over the sea"});
    let r = app.post("/dream-machine/v1/generations/video", &changed).header("idempotency-key", "k-1").go().await;
    // 422, not 409: the SDK retries 409, and no retry can fix this.
    assert_error(&r, 422, &["idempotency-key"]);

    let list = app.get("/dream-machine/v1/generations").go().await.json();
    assert_eq!(list["count"], 1, "{list:#}");
}
