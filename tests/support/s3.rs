//! A real S3-compatible server on loopback for the tests: the one named by
//! `LUMAGATE_TEST_S3_ENDPOINT`, or `s3s-fs` from `target/s3s` (installed by
//! `scripts/test.sh`) started on a free port for this test binary. s3s checks SigV4
//! signatures and presigned expiry like S3 does, so expiry tests mean something.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    pub endpoint: String,
    child: Option<Child>,
    _root: Option<tempfile::TempDir>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Credentials the test server accepts.
pub const ACCESS_KEY: &str = "lumagate-test";
pub const SECRET_KEY: &str = "lumagate-test-secret";

/// The server, or None (with a note) where none is installed outside CI.
pub fn s3_server() -> Option<S3Server> {
    if let Ok(endpoint) = std::env::var("LUMAGATE_TEST_S3_ENDPOINT") {
        return Some(S3Server { endpoint, child: None, _root: None });
    }
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/s3s/bin/s3s-fs");
    if !bin.exists() {
        assert!(std::env::var_os("CI").is_none(), "no S3 server: run scripts/test.sh, which installs s3s-fs");
        eprintln!("SKIPPED: no S3 server (set LUMAGATE_TEST_S3_ENDPOINT or run scripts/test.sh once to install s3s-fs)");
        return None;
    }
    let root = tempfile::Builder::new().prefix("lumagate-s3-").tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting s3s-fs");
    let server = S3Server { endpoint: format!("http://127.0.0.1:{port}"), child: Some(child), _root: Some(root) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}
