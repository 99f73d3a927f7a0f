//! API.md §2 (a key sees only its own tasks) and §3 (get and list).

use serde_json::Value;

use crate::harness::{assert_error, id_of, prompt, App, Go};

const SETTINGS: &[(&str, &str)] = &[("LUMAGATE_SANDBOX_DELAY_MS", "600000")];

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap_or_else(|| panic!("a JSON array, got {list}")).iter().map(id_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_keys_task_answers_404_exactly_like_an_unknown_id() {
    let app = App::start(SETTINGS).await;
    let other = app.create_key("other", "relax,pro", None).await;
    let mine = id_of(&app.create(prompt("mine")).await);
    let theirs = id_of(&app.create_at("/pro/luma/generations", &other.secret, prompt("theirs")).await);

    let unknown = "8d5b2c1e-0f7a-4b7e-9a51-3c2d1e0f9a8b";
    for prefix in ["/luma", "/pro/luma"] {
        let foreign = app.get(&format!("{prefix}/generations/{theirs}")).go().await;
        let missing = app.get(&format!("{prefix}/generations/{unknown}")).go().await;
        let foreign_msg = assert_error(&foreign, 404, &[]);
        let missing_msg = assert_error(&missing, 404, &[]);
        assert_eq!(foreign_msg, missing_msg, "another key's task must look exactly like an unknown one");
        assert_eq!(foreign.json()["error"], missing.json()["error"]);
        for not_an_id in ["abc", "12345", "8d5b2c1e0f7a", "..%2F..%2Fetc", "8d5b2c1e-0f7a-4b7e-9a51-3c2d1e0f9a8bX"] {
            let r = app.get(&format!("{prefix}/generations/{not_an_id}")).go().await;
            assert_error(&r, 404, &[]);
        }
        let link = app.get(&format!("{prefix}/generations/{theirs}/download_video_url")).go().await;
        assert_error(&link, 404, &[]);
        let link = app.get(&format!("{prefix}/generations/{unknown}/download_video_url")).go().await;
        assert_error(&link, 404, &[]);
    }
    // The owner still sees it, and each list holds only the caller's tasks.
    assert_eq!(app.get_as(&other.secret, &format!("/luma/generations/{theirs}")).go().await.status, 200);
    assert_eq!(ids(&app.get("/luma/generations").go().await.json()), vec![mine.clone()]);
    assert_eq!(ids(&app.get_as(&other.secret, "/pro/luma/generations").go().await.json()), vec![theirs.clone()]);
    assert_error(&app.get_as(&other.secret, &format!("/luma/generations/{mine}")).go().await, 404, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_newest_first_and_page_with_offset_and_limit() {
    let app = App::start(SETTINGS).await;
    let lister = app.create_key("lister", "relax,pro", None).await;
    let mut created = Vec::new();
    for i in 0..22 {
        let path = if i % 2 == 0 { "/luma/generations" } else { "/pro/luma/generations" };
        created.push(id_of(&app.create_at(path, &lister.secret, prompt(&format!("task {i}"))).await));
    }
    // Another key's tasks never appear.
    app.create(prompt("not the lister's")).await;
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let list = |q: &str| {
        let app = &app;
        let key = lister.secret.clone();
        let path = format!("/luma/generations{q}");
        async move { app.get_as(&key, &path).go().await }
    };
    let default = list("").await;
    assert_eq!(default.status, 200, "{}", default.text());
    assert_eq!(ids(&default.json()), newest_first[..20].to_vec(), "default: the 20 newest, newest first");
    let stamps: Vec<String> = default.json().as_array().unwrap().iter().map(|t| t["created_at"].as_str().unwrap().to_string()).collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "created_at must not increase down the list: {stamps:?}");

    assert_eq!(ids(&list("?limit=2&offset=1").await.json()), newest_first[1..3].to_vec());
    assert_eq!(ids(&list("?offset=20").await.json()), newest_first[20..].to_vec());
    assert_eq!(ids(&list("?offset=22").await.json()), Vec::<String>::new());
    assert_eq!(ids(&list("?limit=100").await.json()), newest_first);
    assert_eq!(ids(&list("?limit=1").await.json()), newest_first[..1].to_vec());
    // The same list under the pro prefix and with a trailing slash.
    let pro = app.get_as(&lister.secret, "/pro/luma/generations/?limit=3").go().await;
    assert_eq!(ids(&pro.json()), newest_first[..3].to_vec());
    // Every item is a full task object.
    for t in default.json().as_array().unwrap() {
        assert!(t["video"].is_object() && t.get("queue_position").is_some() && t.get("progress").is_some(), "{t:#}");
    }

    for (q, field) in [
        ("?limit=101", "limit"),
        ("?limit=0", "limit"),
        ("?limit=abs", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=2.5", "limit"),
        ("?offset=-1", "offset"),
        ("?offset=x", "offset"),
    ] {
        let r = list(q).await;
        assert_error(&r, 400, &[field]);
    }
}
