//! The `luma-agents` provider: Luma's Agents API, which serves Ray 3 (`ray-3.2`) for the
//! reseller model `ray-v3`. Wire format: `shared/research/luma-agents-api.md`.
//!
//! Mapping (also in README and ARCHITECTURE):
//! - `ray-v3` → `model: "ray-3.2", type: "video"`; other models are refused at submission.
//! - `aspect_ratio` `9:21` does not exist on Ray 3 and is refused; `duration` `5s`/`10s` and
//!   `resolution` `720p`/`1080p` pass through. Ray 3 makes 10 s clips from text only (no
//!   keyframes, no loop), and extends one 5 s block per call, so those are refused too.
//! - Keyframes go as `video.start_frame`/`end_frame` `{url}` (a signed link to lumagate's
//!   copy) when a public URL is configured, else inline as `{data, media_type}`.
//! - Extend sends `video.start_frame: {generation_id: <parent's upstream id>}`; the result
//!   holds the new block only, and the worker joins it to the parent's footage.
//! - An empty prompt (image-only request) is sent as "animate the image": the API requires
//!   1–6000 characters.
//! - No list endpoint and no client reference exist for generations, so a submission
//!   lost to a crash between the upstream's answer and lumagate's write cannot be
//!   recovered: `recover` says so and the worker submits again (at most one extra job).

mod wire;

use async_trait::async_trait;
use base64::Engine as _;

use self::wire::{CreateRequest, FrameRef, Generation, VideoOptions};
use super::upstream::{progress_since, Credentials, KeyframeLinks, UpstreamHttp};
use super::{Ask, Job, ProviderError, UpstreamStatus, VideoProvider, VideoSource};
use crate::accounts::Account;
use crate::tasks::model::{AspectRatio, ClipDuration, Model};

pub const PROVIDER: &str = "luma-agents";
pub const DEFAULT_BASE_URL: &str = "https://agents.lumalabs.ai/v1";
pub const UPSTREAM_MODEL: &str = "ray-3.2";
/// Sent when the caller gave images but no prompt.
const IMAGE_ONLY_PROMPT: &str = "animate the image";
const TYPICAL_SECS: f64 = 120.0;

pub struct LumaAgents {
    http: UpstreamHttp,
    links: KeyframeLinks,
}

impl LumaAgents {
    pub fn new(http: UpstreamHttp, links: KeyframeLinks) -> LumaAgents {
        LumaAgents { http, links }
    }

    fn request(&self, creds: &Credentials, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, format!("{}{path}", creds.base_url))
            .bearer_auth(&creds.api_key)
            .header("accept", "application/json")
    }

    /// A keyframe as the upstream can read it: a link when there is a public URL, else the bytes.
    fn frame(&self, blob_key: &str, bytes: Option<&bytes::Bytes>) -> Result<FrameRef, ProviderError> {
        if self.links.public_url.is_some() {
            return Ok(FrameRef::Url { url: self.links.link(blob_key)? });
        }
        let bytes = bytes.ok_or_else(|| ProviderError::Rejected("the keyframe image is missing".into()))?;
        let media_type = image::guess_format(bytes)
            .map(|f| f.to_mime_type().to_string())
            .map_err(|e| ProviderError::Rejected(format!("the keyframe image is unreadable: {e}")))?;
        Ok(FrameRef::Data { data: base64::engine::general_purpose::STANDARD.encode(bytes), media_type })
    }

    fn body(&self, job: &Job, attempt: &str) -> Result<CreateRequest, ProviderError> {
        self.check(&Ask::of(&job.params, job.parent.is_some())).map_err(ProviderError::Rejected)?;
        let params = &job.params;
        let start_frame = match (&job.parent_upstream_id, &params.start_image) {
            (Some(parent), _) => Some(FrameRef::Generation { generation_id: parent.clone() }),
            (None, Some(key)) => Some(self.frame(key, job.start_image.as_ref())?),
            (None, None) => None,
        };
        let end_frame = params.end_image.as_ref().map(|key| self.frame(key, job.end_image.as_ref())).transpose()?;
        let prompt = if job.prompt.trim().is_empty() { IMAGE_ONLY_PROMPT.to_string() } else { job.prompt.clone() };
        Ok(CreateRequest {
            model: UPSTREAM_MODEL.into(),
            kind: "video".into(),
            prompt,
            aspect_ratio: params.aspect_ratio.as_str().into(),
            // The attempt marker travels as the opaque end-user tag: it shows in Luma's
            // usage breakdowns, which lets an operator find a duplicate by hand.
            user_id: Some(attempt.to_string()),
            video: VideoOptions {
                resolution: params.resolution.as_str().into(),
                duration: params.duration.as_str().into(),
                looped: params.looped.then_some(true),
                start_frame,
                end_frame,
            },
        })
    }
}

#[async_trait]
impl VideoProvider for LumaAgents {
    async fn submit(&self, account: &Account, job: &Job, attempt: &str) -> Result<String, ProviderError> {
        let creds = Credentials::of(account, DEFAULT_BASE_URL)?;
        let body = self.body(job, attempt)?;
        let created: Generation = self.http.json(self.request(&creds, reqwest::Method::POST, "/generations").json(&body)).await?;
        created.id.filter(|id| !id.is_empty()).ok_or_else(|| ProviderError::Transient("the upstream accepted the generation but sent no id".into()))
    }

    async fn poll(&self, account: &Account, _job: &Job, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let creds = Credentials::of(account, DEFAULT_BASE_URL)?;
        let generation: Generation = self
            .http
            .json(self.request(&creds, reqwest::Method::GET, &format!("/generations/{upstream_id}")))
            .await?;
        Ok(match generation.state.as_deref() {
            Some("completed") => {
                let video = generation.output.iter().flatten().find(|o| o.kind.as_deref() == Some("video")).and_then(|o| o.url.clone());
                match video.filter(|u| !u.is_empty()) {
                    Some(video) => UpstreamStatus::Finished(VideoSource::Url { video, thumbnail: None }),
                    None => return Err(ProviderError::Transient("the upstream says completed but gives no video URL".into())),
                }
            }
            Some("failed") => {
                let reason = generation.failure_reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "the upstream failed the generation".into());
                let reason = match generation.failure_code {
                    Some(code) if !code.is_empty() => format!("{reason} ({code})"),
                    _ => reason,
                };
                UpstreamStatus::Failed { reason }
            }
            Some("queued") => UpstreamStatus::Running { progress: 5 },
            Some(_) => UpstreamStatus::Running { progress: progress_since(generation.created_at.as_deref(), TYPICAL_SECS) },
            None => return Err(ProviderError::Transient("the upstream's generation has no state".into())),
        })
    }

    fn check(&self, ask: &Ask) -> Result<(), String> {
        if ask.model != Model::RayV3 {
            return Err(format!("{} is not on Luma's Agents API (Ray 3 only); it needs a luma-api account", ask.model.as_str()));
        }
        if ask.aspect_ratio == AspectRatio::CinemaTall {
            return Err("aspect_ratio 9:21 is not offered by Ray 3; use 1:1, 16:9, 9:16, 4:3, 3:4 or 21:9".into());
        }
        if ask.duration == ClipDuration::Ten && (ask.start_image || ask.end_image || ask.looped || ask.extend) {
            return Err("Ray 3 makes 10s clips from text only: images, loop and extend need duration 5s".into());
        }
        if ask.looped && ask.end_image {
            return Err("loop cannot be combined with image_end_url on Ray 3".into());
        }
        if ask.extend && ask.end_image {
            return Err("extending with image_end_url is not available on Ray 3".into());
        }
        Ok(())
    }

    fn clean_videos(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
