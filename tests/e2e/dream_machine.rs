//! API.md §7: the Dream Machine surface, driven by Luma's official Python SDK
//! (`tests/sdk/test_lumaai.py`), plus what the SDK cannot see: tiers and the one pool.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::fixtures::{png, serve_files};
use crate::harness::{id_of, prompt, App, Go};

const IMAGE_IP: &str = "127.0.0.2";

/// The virtual environment with the pinned SDK (`tests/sdk/requirements.txt`), made on
/// first use; `scripts/test.sh` makes it up front.
fn sdk_python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/venv");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/sdk/requirements.txt");
    let pinned = std::fs::read_to_string(&requirements).expect("tests/sdk/requirements.txt");
    let installed = || {
        Command::new(&python)
            .args(["-c", "import importlib.metadata as m, sys; print('lumaai==' + m.version('lumaai'))"])
            .output()
            .is_ok_and(|o| o.status.success() && pinned.contains(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if !installed() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 -m venv");
        assert!(made.success(), "could not create {}", venv.display());
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .expect("pip install");
        assert!(pip.success(), "pip install -r {} failed", requirements.display());
        assert!(installed(), "the pinned lumaai is not importable from {}", python.display());
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_unmodified() {
    let python = sdk_python();
    let images = serve_files(IMAGE_IP, vec![("/frame.png", "image/png", png(64, 36))], vec![]).await;
    let app = App::start(&[("LUMAGATE_SANDBOX_DELAY_MS", "300"), ("LUMAGATE_ALLOW_FETCH_IPS", IMAGE_IP)]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/test_lumaai.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("LUMAGATE_BASE_URL", app.url("/dream-machine/v1"))
        .env("LUMAGATE_ORIGIN", app.origin())
        .env("LUMAGATE_KEY", &app.key.secret)
        .env("LUMAGATE_IMAGE_URL", images.url("/frame.png"))
        .env("NO_PROXY", "*")
        .output()
        .await
        .expect("running the SDK tests");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK tests failed:\n{report}\n{}", String::from_utf8_lossy(&out.stdout));
    assert!(report.contains("\nOK") && !report.contains("skipped"), "{report}");
    let ran = report.lines().find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse::<u32>().ok());
    assert_eq!(ran, Some(7), "every SDK test ran:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pool_two_shapes_and_the_tier_is_the_keys() {
    let app = App::start(&[]).await;
    // A reseller task read on the Dream Machine surface.
    let task = app.create(prompt("a harbour at night")).await;
    let r = app.get(&format!("/dream-machine/v1/generations/{}", id_of(&task))).go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = r.json();
    // Luma's names for the states (the sandbox may already have dispatched it).
    assert!(matches!(g["state"].as_str(), Some("queued" | "dreaming" | "completed")), "{g:#}");
    assert_eq!(g["request"]["prompt"], "a harbour at night");
    assert_eq!(g["model"], "ray-2");

    // The default tier is the key's best; --dm-tier sets it.
    let body = json!({"model": "ray-2", "prompt": "a tram in fog"});
    let made = app.post("/dream-machine/v1/generations/video", &body).go().await.json();
    assert_eq!(app.task(&id_of(&made)).await["tier"], "pro");
    let out = app.cli(&["keys", "create", "--name", "dm-relax", "--tiers", "relax,pro", "--dm-tier", "relax"]).await;
    let relax_key = out.lines().filter(|l| !l.trim().is_empty()).last().unwrap().trim().to_string();
    let made = app.post_as(&relax_key, "/dream-machine/v1/generations", &body).go().await;
    assert_eq!(made.status, 201, "{}", made.text());
    let seen = app.get_as(&relax_key, &format!("/luma/generations/{}", id_of(&made.json()))).go().await.json();
    assert_eq!(seen["tier"], "relax");
    let relax_only = app.create_key("relax-only", "relax", None).await;
    let made = app.post_as(&relax_only.secret, "/dream-machine/v1/generations", &body).go().await;
    let seen = app.get_as(&relax_only.secret, &format!("/luma/generations/{}", id_of(&made.json()))).go().await.json();
    assert_eq!(seen["tier"], "relax", "a relax-only key's best tier is relax");

    // Delete answers 204 with no body; the task is gone from both surfaces.
    let id = id_of(&made.json());
    let r = app.http.delete(app.url(&format!("/dream-machine/v1/generations/{id}"))).bearer_auth(&relax_only.secret).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = app.get_as(&relax_only.secret, &format!("/luma/generations/{id}")).go().await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_parameters_out_of_range_or_repeated_get_json_errors_on_both_surfaces() {
    let app = App::start(&[]).await;
    for base in ["/dream-machine/v1/generations", "/luma/generations"] {
        // 2^63 is past the int64 the document promises.
        let r = app.get(&format!("{base}?offset=9223372036854775808")).go().await;
        assert_eq!(r.status, 400, "{base}: {}", r.text());
        assert!(r.json()["detail"].as_str().is_some_and(|d| d.contains("offset")), "{base}: {}", r.text());
        // A repeated parameter is not a plain-text rejection: the last value wins.
        let r = app.get(&format!("{base}?limit=1&limit=2")).go().await;
        assert_eq!(r.status, 200, "{base}: {}", r.text());
        let r = app.get(&format!("{base}?limit=0")).go().await;
        assert_eq!(r.status, 400, "{base}: {}", r.text());
        assert!(r.json()["detail"].as_str().is_some_and(|d| d.contains("limit")), "{base}: {}", r.text());
    }
}
