//! The built-in `sandbox` provider: renders real MP4 files locally and deterministically,
//! with simulated upstream time and progress, and optional failure injection.
//!
//! Its generation id carries the submission time, so progress survives a restart of the
//! process: a resumed task keeps polling the same generation instead of starting over.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{Job, ProviderError, UpstreamStatus, VideoProvider, VideoSource};
use crate::accounts::Account;
use crate::media::render::{self, RenderSpec};

pub const PROVIDER: &str = "sandbox";

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Simulated upstream time per task.
    pub delay: Duration,
    /// Share of tasks (0.0–1.0) that fail with a moderation-style reason.
    pub fail_rate: f64,
    /// Renders with this short side instead of the requested resolution's (load tests:
    /// many tasks on few cores).
    pub short_side: Option<u32>,
    /// Appends one line per submission (`task attempt unix_ms`) to this file, so tests
    /// can count how often each task was sent upstream, across processes.
    pub submissions_log: Option<std::path::PathBuf>,
}

pub struct Sandbox {
    config: SandboxConfig,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        Sandbox { config }
    }

    /// Whether failure injection picks this task; stable per task id.
    fn injects_failure(&self, job: &Job) -> bool {
        let digest = Sha256::digest(job.task_id.as_bytes());
        let draw = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) as f64 / u32::MAX as f64;
        draw < self.config.fail_rate
    }
}

#[async_trait]
impl VideoProvider for Sandbox {
    async fn submit(&self, _account: &Account, job: &Job, attempt: &str) -> Result<String, ProviderError> {
        let now = unix_millis();
        if let Some(path) = &self.config.submissions_log {
            log_submission(path, &format!("{} {attempt} {now}\n", job.task_id))
                .map_err(|e| ProviderError::Transient(format!("sandbox submissions log: {e}")))?;
        }
        Ok(format!("sbx.{now}.{attempt}"))
    }

    async fn poll(&self, _account: &Account, job: &Job, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let started: u64 = upstream_id
            .split('.')
            .nth(1)
            .and_then(|ms| ms.parse().ok())
            .ok_or_else(|| ProviderError::Transient(format!("not a sandbox generation id: {upstream_id}")))?;
        let elapsed = unix_millis().saturating_sub(started);
        let total = self.config.delay.as_millis() as u64;
        if elapsed < total {
            return Ok(UpstreamStatus::Running { progress: (elapsed * 100 / total.max(1)).min(99) as u8 });
        }
        if self.injects_failure(job) {
            return Ok(UpstreamStatus::Failed {
                reason: "moderation: the request was flagged by the content filter (sandbox failure injection)".into(),
            });
        }
        let mut spec = render_spec(job).map_err(ProviderError::Rejected)?;
        if let Some(short) = self.config.short_side {
            shrink(&mut spec, short);
        }
        let rendered = tokio::task::spawn_blocking(move || render::render(&spec))
            .await
            .map_err(|e| ProviderError::Transient(format!("sandbox renderer stopped: {e}")))?
            .map_err(|e| ProviderError::Rejected(format!("sandbox render failed: {e}")))?;
        Ok(UpstreamStatus::Finished(VideoSource::Rendered {
            mp4: rendered.mp4,
            thumbnail_jpeg: rendered.thumbnail_jpeg,
            width: rendered.width,
            height: rendered.height,
            duration_secs: rendered.duration_secs,
        }))
    }

    async fn recover(&self, _account: &Account, _job: &Job, attempt: &str) -> Option<String> {
        // Submission is local and cannot half-happen; a fresh id restarts the simulated clock.
        Some(format!("sbx.{}.{attempt}", unix_millis()))
    }
}

/// Turns a job (and its parents, for extends) into what the renderer draws.
fn render_spec(job: &Job) -> Result<RenderSpec, String> {
    let params = &job.params;
    let (width, height) = render::frame_size(params.aspect_ratio.parts(), params.resolution.short_side());
    let decode = |bytes: &Option<bytes::Bytes>| -> Result<Option<image::RgbImage>, String> {
        bytes
            .as_ref()
            .map(|b| image::load_from_memory(b).map(|i| i.to_rgb8()).map_err(|e| format!("keyframe unreadable: {e}")))
            .transpose()
    };
    Ok(RenderSpec {
        width,
        height,
        frames: params.duration.seconds() * render::FPS,
        prompt: job.prompt.clone(),
        start_image: decode(&job.start_image)?,
        end_image: decode(&job.end_image)?,
        looped: params.looped,
        watermark: job.tier.watermarked(),
        parent: job.parent.as_deref().map(render_spec).transpose()?.map(Box::new),
    })
}

/// Scales a spec (and its parents) to `short` pixels on the short side, keeping the shape.
fn shrink(spec: &mut RenderSpec, short: u32) {
    let short = (short.max(16) / 2) * 2;
    let (w, h) = (spec.width, spec.height);
    let (big, small) = (w.max(h), w.min(h).max(1));
    let long = ((u64::from(big) * u64::from(short) / u64::from(small)) as u32 / 2 * 2).max(short);
    (spec.width, spec.height) = if w >= h { (long, short) } else { (short, long) };
    if let Some(parent) = spec.parent.as_mut() {
        shrink(parent, short);
    }
}

/// One `write` of a whole line with O_APPEND, so lines from several processes never interleave.
fn log_submission(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(line.as_bytes())
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}
