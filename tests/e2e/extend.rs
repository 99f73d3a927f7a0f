//! API.md §3.2: extending a completed task.

use serde_json::{json, Value};

use crate::fixtures::{data_uri, mp4_duration_secs, png};
use crate::harness::{assert_error, id_of, App, Go};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_continues_a_completed_video_in_the_parents_shape() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "400")]).await;
    let parent = app.create(json!({"user_prompt": "a fox runs through snow", "aspect_ratio": "16:9"})).await;
    let pid = id_of(&parent);
    let parent = app.wait_completed(&pid).await;

    // Refusals, before anything is created.
    let image = data_uri("image/png", &png(64, 36));
    for prefix in ["/luma", "/pro/luma"] {
        let r = app.post(&format!("{prefix}/generations/{pid}/extend"), &json!({"user_prompt": "more", "image_url": image})).go().await;
        assert_error(&r, 400, &["image_url"]);
        let r = app.post(&format!("{prefix}/generations/{pid}/extend"), &json!({"user_prompt": "more", "duration": "7s"})).go().await;
        assert_error(&r, 400, &["duration", "5s", "10s"]);
        let r = app.post(&format!("{prefix}/generations/{pid}/extend"), &json!({"loop": true, "image_end_url": image})).go().await;
        assert_error(&r, 400, &["loop", "image_end_url"]);
        let unknown = "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b";
        let r = app.post(&format!("{prefix}/generations/{unknown}/extend"), &json!({"user_prompt": "more"})).go().await;
        assert_error(&r, 404, &[]);
        let r = app.post(&format!("{prefix}/generations/not-a-uuid/extend"), &json!({"user_prompt": "more"})).go().await;
        assert_error(&r, 404, &[]);
    }
    let stranger = app.create_key("stranger", "relax,pro", None).await;
    let r = app.post_as(&stranger.secret, &format!("/luma/generations/{pid}/extend"), &json!({"user_prompt": "mine now"})).go().await;
    assert_error(&r, 404, &[]);
    let listed = app.get("/luma/generations").go().await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "refused extends must not create tasks: {listed:#}");

    // The client's selector says 9:16; the parent's 16:9 wins, silently.
    let r = app
        .post(&format!("/pro/luma/generations/{pid}/extend"), &json!({"user_prompt": "the fox keeps running", "aspect_ratio": "9:16"}))
        .go()
        .await;
    assert_eq!(r.status, 200, "extend of a completed task: {}", r.text());
    let child = r.json();
    let cid = id_of(&child);
    assert_ne!(cid, pid);
    assert_eq!(child["parent_id"], json!(pid));
    assert_eq!(child["aspect_ratio"], "16:9", "the parent's aspect ratio always wins: {child:#}");
    assert_eq!(child["prompt"], "the fox keeps running");
    assert_eq!(child["state"], "pending");
    assert_eq!(child["tier"], "pro", "an extend made under /pro/luma is a pro task");
    assert_eq!(child["duration"], "5s");
    assert_eq!(child["video"]["url"], "");
    // An unfinished child cannot be extended yet.
    let r = app.post(&format!("/luma/generations/{cid}/extend"), &json!({"user_prompt": "and more"})).go().await;
    assert_error(&r, 409, &[]);

    let child = app.wait_completed(&cid).await;
    assert_eq!(child["parent_id"], json!(pid));
    assert_eq!((child["video"]["width"].clone(), child["video"]["height"].clone()), (json!(1280), json!(720)));
    let parent_video = app.fetch(video_url(&parent)).await;
    let child_video = app.fetch(video_url(&child)).await;
    assert_eq!((parent_video.status, child_video.status), (200, 200));
    let (p, c) = (mp4_duration_secs(&parent_video.body), mp4_duration_secs(&child_video.body));
    assert!((4.5..=5.5).contains(&p), "the parent is a 5 s video, got {p} s");
    assert!(c >= p + 4.5, "the extended video is the parent's footage plus a 5 s segment: parent {p} s, child {c} s");
    assert!(child_video.body.len() > parent_video.body.len(), "the longer video should be larger");

    // A continued video can be continued again, here with an end frame.
    let r = app
        .post(&format!("/luma/generations/{cid}/extend"), &json!({"image_end_url": image}))
        .go()
        .await;
    assert_eq!(r.status, 200, "extend of an extended task: {}", r.text());
    let grandchild = app.wait_completed(&id_of(&r.json())).await;
    assert_eq!(grandchild["parent_id"], json!(cid));
    assert_eq!(grandchild["tier"], "relax");
    assert_eq!(grandchild["prompt"], "", "an extend needs no prompt");
    let g = mp4_duration_secs(&app.fetch(video_url(&grandchild)).await.body);
    assert!(g >= c + 4.5, "the second extension adds a 5 s segment: child {c} s, grandchild {g} s");

    // The parent is untouched.
    let again = app.task(&pid).await;
    assert_eq!(again["state"], "completed");
    assert_eq!(again["parent_id"], Value::Null);
}

fn video_url(task: &Value) -> &str {
    task["video"]["url"].as_str().expect("video.url")
}
