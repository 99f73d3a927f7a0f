//! `lumagate generate`: a client of the public API, as any other. It submits a task,
//! shows a live progress bar (state, queue position, wait estimate, progress) while it
//! waits, downloads the video, and exits non-zero with the failure reason if the task fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// What the video shows.
    prompt: String,
    /// Start keyframe (PNG, JPEG, WebP or GIF), sent as base64.
    #[arg(long)]
    image: Option<PathBuf>,
    /// End keyframe, sent as base64.
    #[arg(long)]
    end_image: Option<PathBuf>,
    /// Use the pro tier (`/pro/luma`): no queue, no watermark.
    #[arg(long)]
    pro: bool,
    /// 1:1, 16:9, 9:16, 4:3, 3:4, 21:9 or 9:21.
    #[arg(long)]
    aspect_ratio: Option<String>,
    /// 720p or 1080p.
    #[arg(long)]
    resolution: Option<String>,
    /// 5s or 10s.
    #[arg(long)]
    duration: Option<String>,
    /// ray-v1, ray-v2 or ray-v3.
    #[arg(long)]
    model: Option<String>,
    /// The last frame returns to the first.
    #[arg(long = "loop")]
    looped: bool,
    /// Ask for prompt expansion.
    #[arg(long)]
    expand_prompt: bool,
    /// The lumagate server.
    #[arg(long, env = "LUMAGATE_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The API key.
    #[arg(long, env = "LUMAGATE_KEY", hide_env_values = true)]
    key: String,
    /// Where to save the video (default: TASK_ID.mp4; with --json only when given).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Print the final task object (JSON) on standard output instead of a summary.
    #[arg(long)]
    json: bool,
    /// Give up waiting after this many seconds (the task goes on on the server).
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
}

/// How often the task is read while waiting.
const POLL: Duration = Duration::from_millis(500);
/// Consecutive failed reads (network, 5xx) tolerated while waiting.
const READ_RETRIES: u32 = 10;

pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let server = args.server.trim_end_matches('/').to_string();
    let base = if args.pro { format!("{server}/pro/luma") } else { format!("{server}/luma") };
    let body = request_body(&args)?;
    let task = call(http.post(format!("{base}/generations")).bearer_auth(&args.key).json(&body)).await?;
    let id = task["id"].as_str().context("the server answered a task without an id")?.to_string();

    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {pos:>3}% {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let task = wait(&http, &args, &format!("{base}/generations/{id}"), task, &bar).await;
    bar.finish_and_clear();
    let task = task?;

    if task["state"] == "failed" {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&task)?);
        }
        let reason = task["failure_reason"].as_str().unwrap_or("no reason given");
        bail!("task {id} failed: {reason}");
    }
    let output = match (&args.output, args.json) {
        (Some(path), _) => Some(path.clone()),
        (None, false) => Some(PathBuf::from(format!("{id}.mp4"))),
        (None, true) => None,
    };
    if let Some(path) = &output {
        let link = call(http.get(format!("{base}/generations/{id}/download_video_url")).bearer_auth(&args.key)).await?;
        let url = link["url"].as_str().context("download_video_url answered without a url")?;
        let bytes = download(&http, url, path).await?;
        if !args.json {
            eprintln!(
                "saved {} ({}x{}, {bytes} bytes) from task {id}",
                path.display(),
                task["video"]["width"],
                task["video"]["height"]
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&task)?);
    }
    Ok(())
}

fn request_body(args: &GenerateArgs) -> anyhow::Result<Value> {
    let mut body = json!({
        "user_prompt": args.prompt,
        "loop": args.looped,
        "expand_prompt": args.expand_prompt,
    });
    for (field, value) in [
        ("aspect_ratio", &args.aspect_ratio),
        ("resolution", &args.resolution),
        ("duration", &args.duration),
        ("model_name", &args.model),
    ] {
        if let Some(v) = value {
            body[field] = Value::String(v.clone());
        }
    }
    if let Some(path) = &args.image {
        body["image_url"] = Value::String(data_uri(path)?);
    }
    if let Some(path) = &args.end_image {
        body["image_end_url"] = Value::String(data_uri(path)?);
    }
    Ok(body)
}

/// An image file as a `data:` URI; the server checks what it really is.
fn data_uri(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mime = image::guess_format(&bytes).map(|f| f.to_mime_type()).unwrap_or("image/png");
    Ok(format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// Sends a request and returns its JSON, or fails with the API's own error message.
async fn call(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await.context("cannot reach the server")?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(Refused { status, detail }.into());
    }
    serde_json::from_str(&text).with_context(|| format!("the server's answer is not JSON: {text}"))
}

/// The server answered with an error status.
#[derive(Debug, thiserror::Error)]
#[error("the server answered {status}: {detail}")]
struct Refused {
    status: reqwest::StatusCode,
    detail: String,
}

/// Whether a failed read is worth repeating: the network, or the server's own fault.
fn retryable(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<Refused>() {
        Some(refused) => refused.status.is_server_error(),
        None => e.downcast_ref::<reqwest::Error>().is_some(),
    }
}

/// Reads the task until it ends, updating the bar.
async fn wait(http: &reqwest::Client, args: &GenerateArgs, url: &str, mut task: Value, bar: &ProgressBar) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut failures = 0;
    let mut last_state = String::new();
    loop {
        let state = task["state"].as_str().unwrap_or("unknown").to_string();
        bar.set_position(task["progress"].as_u64().unwrap_or(0).min(100));
        bar.set_message(describe(&task));
        if bar.is_hidden() && state != last_state {
            // No terminal: one line per state change instead of a redrawn bar.
            eprintln!("task {}: {}", task["id"].as_str().unwrap_or("?"), describe(&task));
        }
        last_state = state.clone();
        if matches!(state.as_str(), "completed" | "failed") {
            return Ok(task);
        }
        if Instant::now() > deadline {
            bail!("gave up waiting after {} s; the task is still {state} on the server", args.timeout_secs);
        }
        tokio::time::sleep(POLL).await;
        match call(http.get(url).bearer_auth(&args.key)).await {
            Ok(t) => {
                task = t;
                failures = 0;
            }
            Err(e) if failures < READ_RETRIES && retryable(&e) => {
                failures += 1;
                tracing::debug!(error = %e, "reading the task failed; retrying");
            }
            Err(e) => return Err(e),
        }
    }
}

/// `pending · queue position 3 · about 12 s`, `processing`, ...
fn describe(task: &Value) -> String {
    let mut parts = vec![task["state"].as_str().unwrap_or("unknown").to_string()];
    if let Some(position) = task["queue_position"].as_u64() {
        parts.push(format!("queue position {position}"));
    }
    if let Some(wait) = task["estimate_wait_seconds"].as_u64() {
        parts.push(format!("about {wait} s to wait"));
    }
    parts.join(" · ")
}

/// Streams the video into `path` (through a temporary file, so a broken download never
/// leaves a truncated video under the final name). Returns the byte count.
async fn download(http: &reqwest::Client, url: &str, path: &Path) -> anyhow::Result<u64> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let response = http.get(url).send().await.context("downloading the video")?;
    if !response.status().is_success() {
        bail!("downloading the video answered {}", response.status());
    }
    let partial = path.with_extension("part");
    let mut file = tokio::fs::File::create(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
    let mut stream = response.bytes_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("downloading the video")?;
        total += chunk.len() as u64;
        file.write_all(&chunk).await.with_context(|| format!("writing {}", partial.display()))?;
    }
    file.flush().await?;
    drop(file);
    tokio::fs::rename(&partial, path).await.with_context(|| format!("saving {}", path.display()))?;
    Ok(total)
}
