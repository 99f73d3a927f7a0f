//! The real upstreams (`luma-api`, `luma-agents`) through the public API, against the
//! in-process fakes of both Luma APIs: mapping, keyframe links, extend, re-hosting, every
//! failure's task and account state, and a crash while an upstream task runs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fakes::{account_status, Failure, Fake, Flavor, Outcome, API_KEY};
use crate::fixtures::{data_uri, jpeg, mp4_duration_secs, png};
use crate::harness::{assert_error, eventually, id_of, App, Go, COMPLETION};

/// Quick polls, a short upstream timeout, and no watermark burn unless a test asks.
const BASE: &[(&str, &str)] = &[("LUMAGATE_UPSTREAM_TIMEOUT_SECS", "2"), ("LUMAGATE_WATERMARK", "none")];

fn settings(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<(&str, &str)> = BASE.to_vec();
    for (k, v) in extra {
        all.retain(|(name, _)| name != k);
        all.push((k, v));
    }
    all
}

/// An app whose pool is exactly these accounts: `(id, provider, fake, api key)`.
async fn pool(extra: &[(&'static str, &'static str)], accounts: &[(&str, &str, &Fake, &str)]) -> App {
    let mut app = App::prepare(&settings(extra)).await;
    for (id, provider, fake, key) in accounts {
        app.cli(&["accounts", "add", id, "--provider", provider, "--concurrency", "2", "--credentials", &fake.credentials(key)])
            .await;
    }
    app.launch().await;
    app
}

async fn accounts(app: &App) -> String {
    app.cli(&["accounts", "list"]).await
}

async fn wait_failed(app: &App, id: &str) -> Value {
    let task = app.wait_for(id, "finished", COMPLETION, crate::harness::is_terminal).await;
    assert_eq!(task["state"], "failed", "task {id} should fail: {task:#}");
    task
}

/// The stored video: served by lumagate, a real MP4 of the expected length.
async fn stored_video(app: &App, task: &Value) -> Vec<u8> {
    let url = task["video"]["url"].as_str().expect("a video url");
    assert!(url.starts_with(&app.origin()), "the video must be re-hosted by lumagate: {url}");
    let r = app.fetch(url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

async fn thumbnail(app: &App, task: &Value) -> image::RgbImage {
    let url = task["video"]["thumbnail"].as_str().expect("a thumbnail url");
    let r = app.fetch(url).await;
    assert_eq!(r.status, 200);
    image::load_from_memory(&r.body).expect("the thumbnail is an image").to_rgb8()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dream_machine_text_to_video_maps_models_and_durations_and_rehosts_the_result() {
    let fake = Fake::start(Flavor::DreamMachine).await;
    let app = pool(&[], &[("dm", "luma-api", &fake, API_KEY)]).await;
    assert!(
        app.log().contains("LUMAGATE_PUBLIC_URL") && app.log().contains("dm"),
        "serve must say that the account needs a public URL:\n{}",
        app.log()
    );

    let ray2 = id_of(&app.create_pro(json!({"user_prompt": "a heron lifts off", "model_name": "ray-v2", "duration": "10s", "aspect_ratio": "9:16"})).await);
    let ray1 = id_of(&app.create_pro(json!({"user_prompt": "a slow tide", "model_name": "ray-v1"})).await);
    let ray2 = app.wait_completed(&ray2).await;
    let ray1 = app.wait_completed(&ray1).await;

    let bodies = fake.bodies();
    let sent = |prompt: &str| bodies.iter().find(|b| b["prompt"] == prompt).cloned().unwrap_or_else(|| panic!("no submission for {prompt}: {bodies:#?}"));
    let b2 = sent("a heron lifts off");
    assert_eq!((b2["model"].as_str(), b2["duration"].as_str(), b2["aspect_ratio"].as_str()), (Some("ray-2"), Some("9s"), Some("9:16")), "{b2}");
    assert_eq!(b2["resolution"], "720p");
    assert_eq!(b2["loop"], false);
    let b1 = sent("a slow tide");
    assert_eq!(b1["model"], "ray-1-6");
    assert!(b1.get("duration").is_none() && b1.get("resolution").is_none(), "Ray 1.6 takes neither: {b1}");
    assert_eq!(fake.submissions(), 2);

    // The task reports what the video really is: 10s became Luma's 9s.
    let mp4 = stored_video(&app, &ray2).await;
    assert!((mp4_duration_secs(&mp4) - 9.0).abs() < 0.2, "{}", mp4_duration_secs(&mp4));
    assert_eq!((ray2["video"]["width"].as_u64(), ray2["video"]["height"].as_u64()), (Some(72), Some(128)), "{ray2:#}");
    assert_eq!(thumbnail(&app, &ray2).await.dimensions(), (72, 128));
    let mp4 = stored_video(&app, &ray1).await;
    assert!((mp4_duration_secs(&mp4) - 5.0).abs() < 0.2);

    // What no account can make is refused at submission, naming the reason.
    let r = app.post("/pro/luma/generations", &json!({"user_prompt": "x", "model_name": "ray-v1", "duration": "10s"})).go().await;
    assert_error(&r, 400, &["ray-v1", "5s"]);
    let r = app.post("/pro/luma/generations", &json!({"user_prompt": "x", "model_name": "ray-v3"})).go().await;
    assert!(r.status >= 400 && r.status < 600 && r.text().contains("ray-v3"), "{} {}", r.status, r.text());
    assert_eq!(fake.submissions(), 2, "refused requests never reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_text_to_video_sends_ray_3_2_and_refuses_what_ray_3_lacks() {
    let fake = Fake::start(Flavor::Agents).await;
    let app = pool(&[], &[("agents", "luma-agents", &fake, API_KEY)]).await;
    let id = id_of(&app.create_pro(json!({"user_prompt": "a paper boat in rain", "model_name": "ray-v3", "duration": "10s", "resolution": "1080p", "aspect_ratio": "21:9"})).await);
    let task = app.wait_completed(&id).await;
    let body = &fake.bodies()[0];
    assert_eq!((body["model"].as_str(), body["type"].as_str()), (Some("ray-3.2"), Some("video")), "{body}");
    assert_eq!((body["video"]["duration"].as_str(), body["video"]["resolution"].as_str()), (Some("10s"), Some("1080p")));
    assert_eq!(body["aspect_ratio"], "21:9");
    let mp4 = stored_video(&app, &task).await;
    assert!((mp4_duration_secs(&mp4) - 10.0).abs() < 0.2);

    let r = app.post("/pro/luma/generations", &json!({"user_prompt": "x", "model_name": "ray-v3", "aspect_ratio": "9:21"})).go().await;
    assert_error(&r, 400, &["9:21"]);
    let image = data_uri("image/png", &png(64, 36));
    let r = app.post("/pro/luma/generations", &json!({"user_prompt": "x", "model_name": "ray-v3", "duration": "10s", "image_url": image})).go().await;
    assert_error(&r, 400, &["10s"]);
    assert_eq!(fake.submissions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_keyframes_reach_dream_machine_as_fetchable_signed_links() {
    let fake = Fake::start(Flavor::DreamMachine).await;
    let app = pool(&[("LUMAGATE_PUBLIC_URL", "{origin}")], &[("dm", "luma-api", &fake, API_KEY)]).await;
    assert!(!app.log().contains("no public URL is set"), "{}", app.log());
    let start = data_uri("image/png", &png(96, 54));
    let end = data_uri("image/jpeg", &jpeg(96, 54));
    let id = id_of(&app.create_pro(json!({"user_prompt": "from here to there", "image_url": start, "image_end_url": end})).await);
    app.wait_completed(&id).await;

    let body = &fake.bodies()[0];
    assert_eq!(body["keyframes"]["frame0"]["type"], "image", "{body}");
    assert_eq!(body["keyframes"]["frame1"]["type"], "image", "{body}");
    let fetched = fake.fetched();
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    for f in &fetched {
        assert!(f.url.starts_with(&app.origin()) && f.url.contains("sig="), "a signed link to lumagate: {f:?}");
        assert_eq!((f.status, f.content_type.starts_with("image/")), (200, true), "the fake could fetch it: {f:?}");
    }
    assert_eq!(fetched[0].content_type, "image/png");
    assert_eq!(fetched[1].content_type, "image/jpeg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_loop_and_images_inline_without_a_public_url() {
    let fake = Fake::start(Flavor::Agents).await;
    let app = pool(&[], &[("agents", "luma-agents", &fake, API_KEY)]).await;
    let start = data_uri("image/png", &png(64, 64));
    let id = id_of(&app.create_pro(json!({"image_url": start, "loop": true, "model_name": "ray-v3", "aspect_ratio": "1:1"})).await);
    app.wait_completed(&id).await;
    let body = &fake.bodies()[0];
    assert_eq!(body["video"]["loop"], true, "{body}");
    assert_eq!(body["video"]["start_frame"]["media_type"], "image/png");
    assert!(body["video"]["start_frame"]["data"].as_str().is_some_and(|d| d.len() > 100));
    assert_eq!(body["prompt"], "animate the image", "an empty prompt is sent as documented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dream_machine_loop_is_passed_through() {
    let fake = Fake::start(Flavor::DreamMachine).await;
    let app = pool(&[], &[("dm", "luma-api", &fake, API_KEY)]).await;
    let id = id_of(&app.create_pro(json!({"user_prompt": "a spinning top", "loop": true, "model_name": "ray-v2"})).await);
    app.wait_completed(&id).await;
    assert_eq!(fake.bodies()[0]["loop"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_runs_on_the_parents_account_with_a_generation_keyframe() {
    let a = Fake::start(Flavor::DreamMachine).await;
    let b = Fake::start(Flavor::DreamMachine).await;
    let app = pool(&[], &[("dm-a", "luma-api", &a, API_KEY), ("dm-b", "luma-api", &b, API_KEY)]).await;
    let parent = id_of(&app.create_pro(json!({"user_prompt": "a train leaves", "model_name": "ray-v2"})).await);
    app.wait_completed(&parent).await;
    let (home, other) = if a.submissions() == 1 { (&a, &b) } else { (&b, &a) };
    assert_eq!((home.submissions(), other.submissions()), (1, 0));
    let parent_upstream = home.bodies().len();
    assert_eq!(parent_upstream, 1);

    // Several extends, so that a choice of account by chance would show.
    let mut children = Vec::new();
    for i in 0..3 {
        let r = app.post(&format!("/pro/luma/generations/{parent}/extend"), &json!({"user_prompt": format!("the train goes on {i}")})).go().await;
        assert_eq!(r.status, 200, "{}", r.text());
        children.push(id_of(&r.json()));
    }
    for child in &children {
        let task = app.wait_completed(child).await;
        let mp4 = stored_video(&app, &task).await;
        assert!((mp4_duration_secs(&mp4) - 10.0).abs() < 0.2, "parent 5s + 5s: {}", mp4_duration_secs(&mp4));
    }
    assert_eq!((home.submissions(), other.submissions()), (4, 0), "every extend runs on the parent's account");
    for body in &home.bodies()[1..] {
        assert_eq!(body["keyframes"]["frame0"]["type"], "generation", "{body}");
        assert!(body["keyframes"]["frame0"]["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_extension_segment_is_joined_to_the_parents_footage() {
    let fake = Fake::start(Flavor::Agents).await;
    let app = pool(&[], &[("agents", "luma-agents", &fake, API_KEY)]).await;
    let parent = id_of(&app.create_pro(json!({"user_prompt": "clouds gather", "model_name": "ray-v3", "aspect_ratio": "16:9"})).await);
    app.wait_completed(&parent).await;
    let r = app.post(&format!("/pro/luma/generations/{parent}/extend"), &json!({"user_prompt": "rain falls", "model_name": "ray-v3"})).go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let task = app.wait_completed(&id_of(&r.json())).await;
    let body = &fake.bodies()[1];
    assert!(body["video"]["start_frame"]["generation_id"].as_str().is_some(), "{body}");
    // The fake returns only the new 5 s block; lumagate's video is the whole continued one.
    let mp4 = stored_video(&app, &task).await;
    assert!((mp4_duration_secs(&mp4) - 10.0).abs() < 0.3, "{}", mp4_duration_secs(&mp4));
    assert_eq!((task["video"]["width"].as_u64(), task["video"]["height"].as_u64()), (Some(128), Some(72)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_5xx_timeouts_and_malformed_bodies_are_retried_without_a_second_generation() {
    let fake = Fake::start(Flavor::DreamMachine).await;
    fake.script(|s| {
        s.submit_failures.extend([Failure::status(502, "Upstream service unavailable"), Failure::status(503, "busy"), Failure::Malformed]);
        s.poll_failures.extend([Failure::status(500, "oops"), Failure::Hang(Duration::from_secs(4)), Failure::Malformed]);
    });
    let app = pool(&[], &[("dm", "luma-api", &fake, API_KEY)]).await;
    let id = id_of(&app.create_pro(json!({"user_prompt": "through the storm", "model_name": "ray-v2"})).await);
    app.wait_completed(&id).await;
    // Three refused answers, then one accepted; a malformed 200 made no generation upstream.
    assert_eq!((fake.submit_attempts(), fake.submissions()), (4, 1));
    assert!(account_status(&accounts(&app).await, "dm").ends_with("ready"));
    assert!(!app.log().contains("panicked"), "{}", app.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_server_errors_fail_the_task_after_the_retries_and_spare_the_account() {
    let fake = Fake::start(Flavor::Agents).await;
    fake.script(|s| s.submit_failures.extend(std::iter::repeat_n(Failure::status(502, "Upstream service unavailable"), 10)));
    let app = pool(&[("LUMAGATE_TRANSIENT_RETRIES", "2")], &[("agents", "luma-agents", &fake, API_KEY)]).await;
    let id = id_of(&app.create_pro(json!({"user_prompt": "never", "model_name": "ray-v3"})).await);
    let task = wait_failed(&app, &id).await;
    let reason = task["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("502") && reason.contains("Upstream service unavailable"), "{reason}");
    assert_eq!((fake.submit_attempts(), fake.submissions()), (3, 0));
    assert!(account_status(&accounts(&app).await, "agents").ends_with("ready"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_cools_the_account_down_for_retry_after_and_the_task_still_completes() {
    let fake = Fake::start(Flavor::DreamMachine).await;
    fake.script(|s| s.submit_failures.push_back(Failure::rate_limited(3)));
    let app = pool(&[], &[("dm", "luma-api", &fake, API_KEY)]).await;
    let started = Instant::now();
    let id = id_of(&app.create_pro(json!({"user_prompt": "patience", "model_name": "ray-v2"})).await);
    eventually("the account cooling down", Duration::from_secs(10), || async {
        account_status(&accounts(&app).await, "dm").contains("cooling down").then_some(())
    })
    .await;
    let task = app.task(&id).await;
    assert_eq!(task["state"], "pending", "the task waits for the account, it does not fail: {task:#}");
    app.wait_completed(&id).await;
    assert!(started.elapsed() >= Duration::from_millis(2500), "Retry-After was honoured: {:?}", started.elapsed());
    assert_eq!((fake.submit_attempts(), fake.submissions()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_disable_the_account_with_the_reason_and_the_task_moves_on() {
    let bad = Fake::start(Flavor::DreamMachine).await;
    let good = Fake::start(Flavor::DreamMachine).await;
    let mut app = App::prepare(&settings(&[])).await;
    app.cli(&["accounts", "add", "bad", "--provider", "luma-api", "--credentials", &bad.credentials("luma-api-revoked")]).await;
    app.cli(&["accounts", "add", "good", "--provider", "luma-api", "--credentials", &good.credentials(API_KEY)]).await;
    app.cli(&["accounts", "disable", "good", "--reason", "held back by the test"]).await;
    app.launch().await;

    let id = id_of(&app.create_pro(json!({"user_prompt": "who am I", "model_name": "ray-v2"})).await);
    let line = eventually("the bad account being disabled", Duration::from_secs(20), || async {
        let line = account_status(&accounts(&app).await, "bad");
        line.contains("disabled").then_some(line)
    })
    .await;
    assert!(line.contains("401") && line.contains("Invalid API key"), "the reason is kept: {line}");
    assert_eq!(app.task(&id).await["state"], "pending", "the task goes back to the queue");
    app.cli(&["accounts", "enable", "good"]).await;
    app.wait_completed(&id).await;
    assert_eq!((bad.submit_attempts(), bad.submissions(), good.submissions()), (1, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_failures_become_the_failure_reason_on_both_upstreams() {
    let dm = Fake::start(Flavor::DreamMachine).await;
    let agents = Fake::start(Flavor::Agents).await;
    dm.script(|s| s.outcome = Outcome::Fail { reason: "Advanced prompt moderation failed".into(), code: String::new() });
    agents.script(|s| {
        s.outcome = Outcome::Fail { reason: "Generation output was flagged by our content moderation system.".into(), code: "content_moderated".into() }
    });
    let app = pool(&[], &[("dm", "luma-api", &dm, API_KEY), ("agents", "luma-agents", &agents, API_KEY)]).await;
    let a = id_of(&app.create_pro(json!({"user_prompt": "forbidden", "model_name": "ray-v2"})).await);
    let b = id_of(&app.create_pro(json!({"user_prompt": "forbidden too", "model_name": "ray-v3"})).await);
    let a = wait_failed(&app, &a).await;
    let b = wait_failed(&app, &b).await;
    assert_eq!(a["failure_reason"], "Advanced prompt moderation failed");
    let reason = b["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("content moderation") && reason.contains("content_moderated"), "{reason}");
    let list = accounts(&app).await;
    assert!(account_status(&list, "dm").ends_with("ready") && account_status(&list, "agents").ends_with("ready"), "{list}");
    assert_eq!((dm.submissions(), agents.submissions()), (1, 1), "a refused generation is not resubmitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_video_link_is_renewed_by_polling_again() {
    let fake = Fake::start(Flavor::Agents).await;
    fake.script(|s| s.expired_links = 2);
    let app = pool(&[], &[("agents", "luma-agents", &fake, API_KEY)]).await;
    let id = id_of(&app.create_pro(json!({"user_prompt": "late pickup", "model_name": "ray-v3"})).await);
    let task = app.wait_completed(&id).await;
    assert_eq!(fake.expired_links_served(), 2, "lumagate met the expired links");
    assert_eq!(fake.downloads(), 1);
    assert!((mp4_duration_secs(&stored_video(&app, &task).await) - 5.0).abs() < 0.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_while_the_upstream_runs_the_task_completes_without_a_second_submission() {
    for flavor in [Flavor::DreamMachine, Flavor::Agents] {
        let fake = Fake::start(flavor).await;
        fake.script(|s| s.run_time = Duration::from_secs(6));
        let (provider, model) = match flavor {
            Flavor::DreamMachine => ("luma-api", "ray-v2"),
            Flavor::Agents => ("luma-agents", "ray-v3"),
        };
        let mut app = pool(&[], &[("up", provider, &fake, API_KEY)]).await;
        let id = id_of(&app.create_pro(json!({"user_prompt": "through the crash", "model_name": model})).await);
        app.wait_for(&id, "processing upstream", Duration::from_secs(20), |t| t["state"] == "processing").await;
        assert_eq!(fake.submissions(), 1);
        app.kill_9();
        app.restart().await;
        app.wait_completed(&id).await;
        assert_eq!(fake.submissions(), 1, "{flavor:?}: the resumed task polls the generation it started");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relax_videos_from_clean_upstreams_get_the_watermark_burned_in() {
    let fake = Fake::start(Flavor::DreamMachine).await;
    let app = pool(&[("LUMAGATE_WATERMARK", "burn")], &[("dm", "luma-api", &fake, API_KEY)]).await;
    let body = json!({"user_prompt": "same scene", "model_name": "ray-v2", "aspect_ratio": "16:9"});
    let relax = id_of(&app.create(body.clone()).await);
    let pro = id_of(&app.create_pro(body).await);
    let relax = app.wait_completed(&relax).await;
    let pro = app.wait_completed(&pro).await;
    let (marked, clean) = (thumbnail(&app, &relax).await, thumbnail(&app, &pro).await);
    assert_eq!(marked.dimensions(), clean.dimensions());
    let (w, h) = marked.dimensions();
    let (x, y, rw, rh) = lumagate::media::render::watermark_rect(w, h);
    let diff = |inside: bool| {
        let mut sum = 0u64;
        let mut n = 0u64;
        for (px, py, p) in marked.enumerate_pixels() {
            if (px >= x && px < x + rw && py >= y && py < y + rh) == inside {
                let q = clean.get_pixel(px, py);
                sum += (0..3).map(|c| (i32::from(p[c]) - i32::from(q[c])).unsigned_abs() as u64).sum::<u64>();
                n += 3;
            }
        }
        sum as f64 / n.max(1) as f64
    };
    let (inside, outside) = (diff(true), diff(false));
    assert!(inside > 20.0 && outside < 8.0, "the watermark shows in its corner only: inside {inside:.1}, outside {outside:.1}");
}
