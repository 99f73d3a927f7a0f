//! API.md §3.1 (create bodies), §3.3 (the task object), §3.4 (tier rights) and §4a (GET with a body).

use std::time::Duration;

use serde_json::{json, Value};

use crate::fixtures::{assert_rfc3339_micros, data_uri, now_secs, png};
use crate::harness::{assert_error, id_of, prompt, App, Go};

/// Tasks here never need to finish; two slots leave one for relax and one for pro.
const SETTINGS: &[(&str, &str)] = &[("LUMAGATE_SANDBOX_DELAY_MS", "600000"), ("LUMAGATE_SANDBOX_SLOTS", "2")];

const TASK_KEYS: [&str; 17] = [
    "id", "prompt", "state", "created_at", "estimate_wait_seconds", "liked", "video", "failure_reason", "progress", "tier",
    "model_name", "aspect_ratio", "resolution", "duration", "loop", "parent_id", "queue_position",
];

/// Asserts everything §3.3 says about a task that was just created with default fields.
#[track_caller]
fn assert_fresh_task_with_defaults(task: &Value, prompt_text: &str, tier: &str) {
    let obj = task.as_object().unwrap_or_else(|| panic!("a task object, got {task}"));
    for k in TASK_KEYS {
        assert!(obj.contains_key(k), "the task object lacks `{k}`: {task:#}");
    }
    let id = task["id"].as_str().expect("id is a string");
    let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("id is not a UUID: {id}"));
    assert_eq!(parsed.hyphenated().to_string(), id, "id should be a hyphenated lower-case UUID");
    assert_eq!(task["prompt"], prompt_text);
    assert_eq!(task["state"], "pending");
    let created = assert_rfc3339_micros(task["created_at"].as_str().expect("created_at is a string"));
    assert!((created - now_secs()).abs() < 120, "created_at should be now: {}", task["created_at"]);
    assert_eq!(task["liked"], Value::Null);
    assert_eq!(task["video"], json!({"url": "", "download_url": "", "thumbnail": "", "width": 0, "height": 0}));
    assert_eq!(task["failure_reason"], Value::Null);
    assert_eq!(task["progress"], 0);
    assert_eq!(task["tier"], tier);
    assert_eq!(task["model_name"], "ray-v2");
    assert_eq!(task["aspect_ratio"], "16:9");
    assert_eq!(task["resolution"], "720p");
    assert_eq!(task["duration"], "5s");
    assert_eq!(task["loop"], false);
    assert_eq!(task["parent_id"], Value::Null);
    // Just accepted: it waits in the queue, so both numbers are given.
    assert!(task["queue_position"].as_u64().is_some_and(|p| p >= 1), "queue_position of a queued task: {task:#}");
    assert!(task["estimate_wait_seconds"].is_u64(), "estimate_wait_seconds of a queued task: {task:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_task_is_the_full_task_object_with_every_default() {
    let app = App::start(SETTINGS).await;
    let p = "a Tesla speeding along a highway";
    let first = app.create_at("/luma/generations", &app.key.secret, prompt(p)).await;
    assert_fresh_task_with_defaults(&first, p, "relax");
    let second = app.create_at("/luma/generations/", &app.key.secret, prompt("a truck running ahead")).await;
    assert_fresh_task_with_defaults(&second, "a truck running ahead", "relax");
    let pro = app.create_at("/pro/luma/generations/", &app.key.secret, prompt(p)).await;
    assert_fresh_task_with_defaults(&pro, p, "pro");
    assert_ne!(first["id"], second["id"]);

    // The first relax task and the pro task get a slot each: no longer queued.
    for id in [id_of(&first), id_of(&pro)] {
        let t = app.wait_for(&id, "dispatched", Duration::from_secs(20), |t| t["state"] == "processing").await;
        assert_eq!(t["queue_position"], Value::Null, "a dispatched task has no queue position: {t:#}");
        assert_eq!(t["estimate_wait_seconds"], Value::Null, "a dispatched task has no wait estimate: {t:#}");
        assert!(t["progress"].as_u64().is_some_and(|p| p <= 100));
        assert_eq!(t["video"]["url"], "");
    }
    // The second relax task waits: relax may not take the slot kept for pro.
    let third = app.create(prompt("a third one")).await;
    let waiting = app.task(&id_of(&second)).await;
    assert_eq!(waiting["state"], "pending", "{waiting:#}");
    let pos = waiting["queue_position"].as_u64().unwrap_or_else(|| panic!("a waiting task has a queue position: {waiting:#}"));
    assert!(waiting["estimate_wait_seconds"].is_u64(), "{waiting:#}");
    let third = app.task(&id_of(&third)).await;
    assert_eq!(third["queue_position"].as_u64(), Some(pos + 1), "the next task waits behind it: {third:#}");
    assert!(third["estimate_wait_seconds"].as_u64() >= waiting["estimate_wait_seconds"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_value_is_accepted_and_echoed() {
    let app = App::start(SETTINGS).await;
    let mut bodies: Vec<(Value, &str, Value)> = Vec::new();
    for ratio in ["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"] {
        bodies.push((json!({"user_prompt": "x", "aspect_ratio": ratio}), "aspect_ratio", json!(ratio)));
    }
    for res in ["720p", "1080p"] {
        bodies.push((json!({"user_prompt": "x", "resolution": res}), "resolution", json!(res)));
    }
    for d in ["5s", "10s"] {
        bodies.push((json!({"user_prompt": "x", "duration": d}), "duration", json!(d)));
    }
    for m in ["ray-v1", "ray-v2", "ray-v3"] {
        bodies.push((json!({"user_prompt": "x", "model_name": m}), "model_name", json!(m)));
    }
    bodies.push((json!({"user_prompt": "x", "loop": true}), "loop", json!(true)));
    bodies.push((json!({"user_prompt": "x", "loop": false}), "loop", json!(false)));
    // An expanded prompt keeps the original prompt.
    bodies.push((json!({"user_prompt": "a red fox", "expand_prompt": true}), "prompt", json!("a red fox")));
    // Empty strings and nulls mean "not given".
    bodies.push((json!({"user_prompt": "x", "aspect_ratio": "", "image_url": "", "image_end_url": ""}), "aspect_ratio", json!("16:9")));
    bodies.push((json!({"user_prompt": "x", "duration": null, "loop": null}), "duration", json!("5s")));
    // The longest prompt, counted in characters (not bytes).
    let longest = "é".repeat(5000);
    bodies.push((json!({"user_prompt": longest}), "prompt", json!(longest)));
    bodies.push((json!({"user_prompt": "x", "notify_hook": "https://hooks.example.com/luma"}), "state", json!("pending")));
    // Any text is kept exactly: quotes, newlines, a NUL, emoji, right-to-left text.
    let odd = "a \"Tesla\"\n\tspeeding 🚗 \u{0} مرحبا <script>alert(1)</script> '; DROP TABLE tasks; --";
    bodies.push((json!({"user_prompt": odd}), "prompt", json!(odd)));
    for (body, field, expected) in bodies {
        let task = app.create_pro(body.clone()).await;
        assert_eq!(task[field], expected, "creating {body} should show {field} = {expected}: {task:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_values_answer_400_naming_the_field_and_the_allowed_values() {
    let app = App::start(SETTINGS).await;
    let image = data_uri("image/png", &png(64, 36));
    let ratios = ["aspect_ratio", "1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"];
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"user_prompt": "x", "aspect_ratio": "2:1"}), ratios.to_vec()),
        (json!({"user_prompt": "x", "aspect_ratio": 169}), vec!["aspect_ratio"]),
        (json!({"user_prompt": "x", "resolution": "4k"}), vec!["resolution", "720p", "1080p"]),
        (json!({"user_prompt": "x", "resolution": "720P"}), vec!["resolution", "720p", "1080p"]),
        (json!({"user_prompt": "x", "duration": "7s"}), vec!["duration", "5s", "10s"]),
        (json!({"user_prompt": "x", "duration": 5}), vec!["duration", "5s", "10s"]),
        (json!({"user_prompt": "x", "model_name": "ray-v9"}), vec!["model_name", "ray-v1", "ray-v2", "ray-v3"]),
        (json!({"user_prompt": "x", "loop": "yes"}), vec!["loop", "true", "false"]),
        (json!({"user_prompt": "x", "loop": 1}), vec!["loop"]),
        (json!({"user_prompt": "x", "expand_prompt": 1}), vec!["expand_prompt", "true", "false"]),
        (json!({"user_prompt": "x".repeat(5001)}), vec!["user_prompt", "5000"]),
        (json!({"user_prompt": 42}), vec!["user_prompt"]),
        (json!({"user_prompt": "   \n\t "}), vec!["user_prompt"]),
        (json!({}), vec!["user_prompt"]),
        (json!({"image_url": 5, "user_prompt": "x"}), vec!["image_url"]),
        (json!({"image_end_url": ["x"], "user_prompt": "x"}), vec!["image_end_url"]),
        (json!({"user_prompt": "x", "loop": true, "image_end_url": image}), vec!["loop", "image_end_url"]),
        (json!({"user_prompt": "x", "notify_hook": "not a url"}), vec!["notify_hook"]),
    ];
    for (body, needles) in cases {
        for path in ["/luma/generations", "/pro/luma/generations"] {
            let r = app.post(path, &body).go().await;
            assert_eq!(r.status, 400, "POST {path} {body:.200} should answer 400, got {}: {}", r.status, r.text());
            assert_error(&r, 400, &needles);
        }
    }
    let raw: Vec<(&str, &str)> = vec![
        ("not json", "json"),
        ("{\"user_prompt\": ", "json"),
        ("[1, 2]", "json object"),
        ("[{\"user_prompt\": \"x\"}]", "json object"),
        ("\"a string\"", "json object"),
        ("null", "json object"),
        ("", "json"),
        ("   ", "json"),
        ("{\"user_prompt\": \"x\"} trailing", "json"),
    ];
    for (body, needle) in raw {
        let r = app
            .http
            .post(app.url("/luma/generations"))
            .header("authorization", format!("Bearer {}", app.key.secret))
            .header("content-type", "application/json")
            .body(body)
            .go()
            .await;
        assert_error(&r, 400, &[needle]);
    }
    // Hostile bodies: deep nesting and bytes that are not UTF-8.
    let deep = format!("{{\"user_prompt\": \"x\", \"extra\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let not_utf8: Vec<u8> = b"{\"user_prompt\": \"\xff\xfe\"}".to_vec();
    for body in [deep.into_bytes(), not_utf8] {
        let r = app
            .http
            .post(app.url("/luma/generations"))
            .header("authorization", format!("Bearer {}", app.key.secret))
            .header("content-type", "application/json")
            .body(body)
            .go()
            .await;
        assert_error(&r, 400, &[]);
    }
    // Without a content type at all, an empty body is still a 400, not a 415 or a 500.
    let r = app.http.post(app.url("/luma/generations")).header("authorization", format!("Bearer {}", app.key.secret)).go().await;
    assert_error(&r, 400, &["json"]);

    let listed = app.get("/luma/generations?limit=100").go().await.json();
    assert_eq!(listed, json!([]), "refused requests must not create tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_ignored_and_gets_may_carry_a_json_body() {
    let app = App::start(SETTINGS).await;
    let task = app
        .create(json!({"user_prompt": "a cat", "seed": 7, "style": {"x": [1, 2]}, "callback_url": null, "USER_PROMPT": 5}))
        .await;
    assert_eq!(task["prompt"], "a cat");
    assert!(task.get("seed").is_none() && task.get("style").is_none(), "unknown fields are not echoed: {task:#}");
    let id = id_of(&task);
    // Real clients send `Content-Type: application/json` and `{}` on GETs.
    for path in [
        format!("/luma/generations/{id}"),
        format!("/pro/luma/generations/{id}"),
        "/luma/generations".to_string(),
        "/luma/generations/".to_string(),
        "/luma/generations?offset=0&limit=5".to_string(),
    ] {
        let r = app.get(&path).header("content-type", "application/json").body("{}").go().await;
        assert_eq!(r.status, 200, "GET {path} with a JSON body should work: {}", r.text());
        let body = r.json();
        let found = if body.is_array() { body.as_array().unwrap().iter().any(|t| t["id"] == task["id"]) } else { body["id"] == task["id"] };
        assert!(found, "GET {path} should show the task: {body:#}");
    }
    let r = app
        .get(&format!("/luma/generations/{id}/download_video_url"))
        .header("content-type", "application/json")
        .body("{}")
        .go()
        .await;
    assert_error(&r, 409, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_limited_to_a_tier_or_to_models_get_403() {
    let app = App::start(SETTINGS).await;
    let relax_only = app.create_key("relax only", "relax", None).await;
    let r = app.post_as(&relax_only.secret, "/pro/luma/generations", &prompt("a cat")).go().await;
    assert_error(&r, 403, &["pro"]);
    let r = app.post_as(&relax_only.secret, "/pro/luma/generations/", &prompt("a cat")).go().await;
    assert_error(&r, 403, &["pro"]);
    let task = app.create_at("/luma/generations", &relax_only.secret, prompt("a cat")).await;
    assert_eq!(task["tier"], "relax");
    // Reading works under either prefix, whatever the key's tiers.
    let r = app.get_as(&relax_only.secret, &format!("/pro/luma/generations/{}", id_of(&task))).go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tier"], "relax");
    let listed = app.get_as(&relax_only.secret, "/pro/luma/generations").go().await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "the 403 must not have created a task: {listed:#}");

    let pro_only = app.create_key("pro only", "pro", None).await;
    let r = app.post_as(&pro_only.secret, "/luma/generations", &prompt("a cat")).go().await;
    assert_error(&r, 403, &["relax"]);
    assert_eq!(app.create_at("/pro/luma/generations", &pro_only.secret, prompt("a cat")).await["tier"], "pro");

    let ray2_only = app.create_key("ray-v2 only", "relax,pro", Some("ray-v2")).await;
    let r = app.post_as(&ray2_only.secret, "/luma/generations", &json!({"user_prompt": "x", "model_name": "ray-v3"})).go().await;
    assert_error(&r, 403, &["ray-v3"]);
    let ok = app.create_at("/luma/generations", &ray2_only.secret, json!({"user_prompt": "x", "model_name": "ray-v2"})).await;
    assert_eq!(ok["model_name"], "ray-v2");
}
