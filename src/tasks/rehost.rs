//! Re-hosting an upstream's result: download the video before its link expires
//! (streaming, size-capped), probe it, join an extension's new segment to its parent's
//! footage, burn the watermark where the policy says so, and make the thumbnail. Only
//! a video that passed all of this is stored and the task completed.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use super::model::{State, Task};
use super::Engine;
use crate::media::probe::{self, VideoInfo};
use crate::media::ffmpeg;
use crate::providers::{Job, ProviderError};

/// What to do with relax videos from upstreams that deliver them without a watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WatermarkPolicy {
    /// Burn lumagate's visible watermark in with FFmpeg (as the sandbox draws it).
    #[default]
    Burn,
    /// Leave the upstream's video as it is.
    None,
}

impl std::str::FromStr for WatermarkPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "burn" => Ok(WatermarkPolicy::Burn),
            "none" => Ok(WatermarkPolicy::None),
            other => Err(format!("`{other}` is not a watermark policy (burn, none)")),
        }
    }
}

/// Limits and policy for upstream results.
#[derive(Debug, Clone)]
pub struct ResultPolicy {
    /// A bigger download is refused (and retried, then the task fails).
    pub max_video_bytes: u64,
    /// One download may take this long.
    pub download_timeout: Duration,
    pub watermark: WatermarkPolicy,
}

impl Default for ResultPolicy {
    fn default() -> Self {
        ResultPolicy { max_video_bytes: 512 * 1024 * 1024, download_timeout: Duration::from_secs(300), watermark: WatermarkPolicy::Burn }
    }
}

/// A video ready to store.
pub(crate) struct Rehosted {
    pub mp4: Vec<u8>,
    pub thumbnail_jpeg: Vec<u8>,
    pub info: VideoInfo,
}

/// An extension whose result is shorter than this much more than its parent holds only
/// the new segment (a whole continued video is at least parent + one segment).
const WHOLE_VIDEO_MARGIN_SECS: f64 = 1.0;

impl Engine {
    /// Everything between the upstream's "completed" and storing the result. Failures are
    /// transient: the caller polls again (which mints a fresh link) and retries.
    pub(crate) async fn rehost(&self, task: &Task, job: &Job, clean_upstream: bool, video: &str, thumbnail: Option<&str>) -> Result<Rehosted, ProviderError> {
        let mut mp4 = self.download(video).await?;
        let mut info = probe::probe(&mp4).map_err(|e| ProviderError::Transient(format!("the upstream's video: {e}")))?;
        let mut changed = false;
        if let Some(parent) = self.parent_footage(task).await? {
            if info.duration_secs < parent.1.duration_secs + WHOLE_VIDEO_MARGIN_SECS {
                tracing::info!(task.id = %task.id, segment_s = info.duration_secs, parent_s = parent.1.duration_secs, "joining the new segment to the parent's footage");
                mp4 = ffmpeg::join(&parent.0, &mp4, (parent.1.width, parent.1.height))
                    .await
                    .map_err(|e| ProviderError::Transient(format!("joining the extension: {e}")))?;
                changed = true;
            }
        }
        if clean_upstream && job.tier.watermarked() && self.config.results.watermark == WatermarkPolicy::Burn {
            let now = if changed { probe::probe(&mp4).map_err(|e| ProviderError::Transient(e.to_string()))? } else { info };
            mp4 = ffmpeg::burn_watermark(&mp4, now).await.map_err(|e| ProviderError::Transient(format!("burning the watermark: {e}")))?;
            changed = true;
        }
        if changed {
            info = probe::probe(&mp4).map_err(|e| ProviderError::Transient(format!("the processed video: {e}")))?;
        }
        // The upstream's own thumbnail shows the video as it came; ours shows it as stored.
        let upstream_thumb = match (thumbnail, changed) {
            (Some(url), false) => self.download(url).await.ok().filter(|b| image::guess_format(b).is_ok()),
            _ => None,
        };
        let thumbnail_jpeg = match upstream_thumb {
            Some(t) => t,
            None => self.make_thumbnail(&mp4).await?,
        };
        Ok(Rehosted { mp4, thumbnail_jpeg, info })
    }

    async fn make_thumbnail(&self, mp4: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let owned = mp4.to_vec();
        let decoded = tokio::task::spawn_blocking(move || probe::thumbnail(&owned))
            .await
            .map_err(|e| ProviderError::Transient(format!("thumbnail task stopped: {e}")))?;
        match decoded {
            Ok(jpeg) => Ok(jpeg),
            Err(e) => ffmpeg::thumbnail(mp4)
                .await
                .map_err(|f| ProviderError::Transient(format!("no thumbnail: openh264 ({e}), ffmpeg ({f})"))),
        }
    }

    /// The parent's stored video, for an extension.
    async fn parent_footage(&self, task: &Task) -> Result<Option<(Bytes, VideoInfo)>, ProviderError> {
        let Some(parent_id) = task.parent_id else { return Ok(None) };
        let parent = self.store.task(parent_id).await.map_err(|e| ProviderError::Transient(e.to_string()))?;
        let Some(video) = parent.filter(|p| p.state == State::Completed).and_then(|p| p.video) else {
            return Err(ProviderError::Rejected(format!("the parent task {parent_id} has no video to continue")));
        };
        let bytes = self.blobs.get(&video.video_key).await.map_err(|e| ProviderError::Transient(format!("the parent's video: {e}")))?;
        let info = VideoInfo { width: video.width, height: video.height, duration_secs: video.duration_secs };
        Ok(Some((bytes, info)))
    }

    /// Streams a URL into memory, refusing more than the configured cap.
    async fn download(&self, url: &str) -> Result<Vec<u8>, ProviderError> {
        let cap = self.config.results.max_video_bytes;
        let response = self
            .downloads
            .get(url)
            .timeout(self.config.results.download_timeout)
            .send()
            .await
            .map_err(|e| ProviderError::Transient(format!("downloading the upstream's video: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            // Luma's links expire (403 from S3); polling again hands out a fresh one.
            return Err(ProviderError::Transient(format!("downloading the upstream's video: {status} (an expired link is renewed by polling again)")));
        }
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(ProviderError::Transient(format!("the upstream's video is larger than the {cap}-byte limit")));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ProviderError::Transient(format!("downloading the upstream's video: {e}")))?;
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(ProviderError::Transient(format!("the upstream's video is larger than the {cap}-byte limit")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
