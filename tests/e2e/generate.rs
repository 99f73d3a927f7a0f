//! `lumagate generate` against a running server (issue 9): the downloaded file is a valid
//! MP4 of the requested size; a failing task exits non-zero with its reason.

use std::process::Command;

use crate::fixtures::png;
use crate::harness::{App, BIN};

/// Runs `lumagate generate` with the app's server and key; returns (success, stdout, stderr).
fn generate(app: &App, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("generate").args(args).args(["--server", &app.origin(), "--key", &app.key.secret]);
    for (name, _) in std::env::vars() {
        if name.starts_with("LUMAGATE_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().expect("running lumagate generate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (codec, width, height) of the first video stream, as ffprobe reads the file.
fn probe(path: &std::path::Path) -> (String, u64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height", "-of", "json"])
        .arg(path)
        .output()
        .expect("running ffprobe (scripts/test.sh installs it)");
    assert!(out.status.success(), "ffprobe refused {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let s = &info["streams"][0];
    (s["codec_name"].as_str().unwrap_or_default().to_string(), s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap())
}

#[tokio::test]
async fn generate_downloads_a_video_of_the_requested_size() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "300")]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fox.mp4");
    let (ok, _stdout, stderr) = generate(&app, &["a red fox in snow", "--aspect-ratio", "9:16", "-o", out.to_str().unwrap()]);
    assert!(ok, "generate should succeed:\n{stderr}");
    assert_eq!(probe(&out), ("h264".into(), 720, 1280), "9:16 at 720p");
    assert!(stderr.contains("completed"), "progress reports the state:\n{stderr}");

    // With a start image, on the pro tier, square, printing the task object.
    let image = dir.path().join("start.png");
    std::fs::write(&image, png(64, 64)).unwrap();
    let out = dir.path().join("square.mp4");
    let (ok, stdout, stderr) = generate(
        &app,
        &["from a picture", "--pro", "--image", image.to_str().unwrap(), "--aspect-ratio", "1:1", "--json", "-o", out.to_str().unwrap()],
    );
    assert!(ok, "generate should succeed:\n{stderr}");
    let task: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("--json prints the task ({e}):\n{stdout}"));
    assert_eq!(task["state"], "completed");
    assert_eq!(task["tier"], "pro");
    assert_eq!((task["video"]["width"].as_u64(), task["video"]["height"].as_u64()), (Some(720), Some(720)));
    assert_eq!(probe(&out), ("h264".into(), 720, 720));
}

#[tokio::test]
async fn generate_exits_non_zero_with_the_reason() {
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "200"), ("LUMAGATE_SANDBOX_FAIL_RATE", "1")]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.mp4");
    let (ok, _, stderr) = generate(&app, &["doomed", "-o", out.to_str().unwrap()]);
    assert!(!ok, "a failed task must fail the command:\n{stderr}");
    assert!(stderr.contains("failed: moderation"), "the reason is shown:\n{stderr}");
    assert!(!out.exists(), "nothing is saved for a failed task");

    // The API's own refusal is shown as such.
    let (ok, _, stderr) = generate(&app, &["x", "--duration", "7s", "-o", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("400") && stderr.contains("duration must be one of 5s, 10s"), "{stderr}");
}
