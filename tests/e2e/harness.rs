//! Drives the real `lumagate` binary: a fresh data folder per app, a key made with the
//! CLI, `serve` on a free port, and helpers so that tests read as sentences.
//!
//! The server's log goes to `server.log` in the data folder and is printed when a test
//! fails while the app is alive (on drop during a panic).

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use crate::client::{assert_error, Go, Resp};

pub const BIN: &str = env!("CARGO_BIN_EXE_lumagate");

/// A finished task is awaited at most this long (renders share a busy machine).
pub const COMPLETION: Duration = Duration::from_secs(90);

/// A key as the CLI printed it.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

/// One running `lumagate serve` with its own data folder.
pub struct App {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub port: u16,
    /// A key for both tiers, created before the first start.
    pub key: Key,
    pub http: reqwest::Client,
}

impl App {
    /// Starts a server with the given `LUMAGATE_*` settings; the sandbox delay defaults to 500 ms.
    pub async fn start(settings: &[(&str, &str)]) -> App {
        let mut app = App::prepare(settings).await;
        app.launch().await;
        app
    }

    /// A data folder with a key, not started yet: for CLI setup (accounts) before the first
    /// start. A setting's `{origin}` becomes the server's own origin (its port is chosen at
    /// launch), e.g. `LUMAGATE_PUBLIC_URL={origin}`.
    pub async fn prepare(settings: &[(&str, &str)]) -> App {
        let dir = tempfile::Builder::new().prefix("lumagate-e2e-").tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = vec![("LUMAGATE_SANDBOX_DELAY_MS".into(), "500".into())];
        for (k, v) in settings {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let mut app = App { dir, env, child: None, port: 0, key: Key { id: String::new(), secret: String::new() }, http };
        app.key = app.create_key("e2e", "relax,pro", None).await;
        app
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--data-dir").arg(self.dir.path());
        for (name, _) in std::env::vars() {
            if name.starts_with("LUMAGATE_") {
                cmd.env_remove(name);
            }
        }
        let origin = self.origin();
        cmd.envs(self.env.iter().map(|(k, v)| (k.clone(), v.replace("{origin}", &origin))));
        cmd
    }

    /// Runs a CLI command against this app's data folder; panics unless it succeeds.
    /// Runs `lumagate ARGS` on this app's data folder; its exit status and stderr.
    pub async fn cli_status(&self, args: &[&str]) -> (ExitStatus, String) {
        let mut cmd = tokio::process::Command::from(self.command(args));
        let out = cmd.output().await.expect("running the lumagate CLI");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub async fn cli(&self, args: &[&str]) -> String {
        let mut cmd = tokio::process::Command::from(self.command(args));
        let out = cmd.output().await.expect("running the lumagate CLI");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`lumagate {}` failed ({}):\n{stdout}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `lumagate keys create`: the key is the last line, its id is in `created key ID (...)`.
    pub async fn create_key(&self, name: &str, tiers: &str, models: Option<&str>) -> Key {
        let mut args = vec!["keys", "create", "--name", name, "--tiers", tiers];
        if let Some(m) = models {
            args.extend(["--models", m]);
        }
        let out = self.cli(&args).await;
        let secret = out.lines().filter(|l| !l.trim().is_empty()).last().expect("a key line").trim().to_string();
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("created key "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `created key ID` line in:\n{out}"))
            .to_string();
        assert!(!secret.contains(' '), "the last line should be the bare key, got {secret:?}");
        Key { id, secret }
    }

    pub async fn revoke_key(&self, id: &str) {
        let out = self.cli(&["keys", "revoke", id]).await;
        assert!(out.contains(id), "revoke should name the key: {out}");
    }

    /// Starts `serve` on a free port and waits until it is ready.
    pub async fn launch(&mut self) {
        for _ in 0..5 {
            let port = free_port();
            self.port = port;
            let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join("server.out"))
                .expect("stdout file");
            let child = self
                .command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(log)
                .spawn()
                .expect("spawning lumagate serve");
            self.child = Some(child);
            match self.wait_ready().await {
                Ok(()) => return,
                Err(status) => {
                    self.child = None;
                    let log = self.log();
                    if log.contains("cannot listen") {
                        continue; // the port was taken in between; try another
                    }
                    panic!("lumagate serve exited early ({status}); log:\n{log}");
                }
            }
        }
        panic!("could not start lumagate serve on a free port; log:\n{}", self.log());
    }

    /// Polls `GET /readyz` until it answers 200, or the process exits.
    async fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = self.url("/readyz");
        loop {
            if let Some(status) = self.child.as_mut().expect("child").try_wait().expect("try_wait") {
                return Err(status);
            }
            let ready = self.http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            assert!(Instant::now() < deadline, "lumagate did not become ready in 20 s; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the server should have died of SIGKILL, got {status}");
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its status.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let mut child = self.child.take().expect("the server is running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not exit within {within:?} of SIGTERM; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the server again on the same data folder (on a new port).
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.launch().await;
    }

    // ---- requests -------------------------------------------------------------

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.get_as(&self.key.secret, path)
    }

    pub fn get_as(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).header("authorization", format!("Bearer {key}"))
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.post_as(&self.key.secret, path, body)
    }

    pub fn post_as(&self, key: &str, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .header("authorization", format!("Bearer {key}"))
            .json(body)
    }

    /// A request without any key.
    pub fn anon(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Creates a relax task with the app's key; panics unless the answer is 200.
    pub async fn create(&self, body: Value) -> Value {
        self.create_at("/luma/generations", &self.key.secret, body).await
    }

    /// Creates a pro task with the app's key; panics unless the answer is 200.
    pub async fn create_pro(&self, body: Value) -> Value {
        self.create_at("/pro/luma/generations", &self.key.secret, body).await
    }

    pub async fn create_at(&self, path: &str, key: &str, body: Value) -> Value {
        let r = self.post_as(key, path, &body).go().await;
        assert_eq!(r.status, 200, "POST {path} {body} should answer 200, got: {}", r.text());
        r.json()
    }

    /// The task as `GET /luma/generations/{id}` shows it to the app's key.
    pub async fn task(&self, id: &str) -> Value {
        let r = self.get(&format!("/luma/generations/{id}")).go().await;
        assert_eq!(r.status, 200, "GET task {id}: {}", r.text());
        r.json()
    }

    /// Polls the task every 100 ms until `done` holds; panics after `within`.
    pub async fn wait_for(&self, id: &str, what: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let task = self.task(id).await;
            if done(&task) {
                return task;
            }
            assert!(Instant::now() < deadline, "task {id} was not {what} within {within:?}; last seen: {task:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a terminal state and insists that it is `completed`.
    pub async fn wait_completed(&self, id: &str) -> Value {
        let task = self.wait_for(id, "finished", COMPLETION, |t| is_terminal(t)).await;
        assert_eq!(task["state"], "completed", "task {id} should complete, it ended: {task:#}");
        task
    }

    /// Fetches an absolute link (a `/files` link), without any key.
    pub async fn fetch(&self, url: &str) -> Resp {
        self.http.get(url).go().await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail = &log[log.len().saturating_sub(12_000)..];
            eprintln!("---- lumagate log ({}) ----\n{tail}\n---- end of log ----", self.dir.path().display());
        }
    }
}

pub fn is_terminal(task: &Value) -> bool {
    matches!(task["state"].as_str(), Some("completed" | "failed"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A create body with just a prompt.
pub fn prompt(text: &str) -> Value {
    json!({ "user_prompt": text })
}

/// The `id` of a task object.
pub fn id_of(task: &Value) -> String {
    task["id"].as_str().unwrap_or_else(|| panic!("no id in {task}")).to_string()
}

/// Runs `f` until it returns `Some`, every 100 ms, for at most `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
