//! The `luma-api` provider: Luma's official Dream Machine API (Ray 1.6 and Ray 2) with
//! API-key accounts. Wire format: `shared/research/luma-official-api.md`.
//!
//! Mapping (also in README and ARCHITECTURE):
//! - `ray-v1` → `ray-1-6`, `ray-v2` → `ray-2`; `ray-v3` is not on this API (400 at submission
//!   unless another account serves it).
//! - `duration`: `5s` → `5s`; `10s` → `9s` on Ray 2 (the longest clip the API documents);
//!   Ray 1.6 makes 5 s clips only, so `ray-v1` with `10s` is refused. Ray 1.6 takes no
//!   `resolution`/`duration` fields; the stored video reports what it really is.
//! - Keyframes go as `frame0`/`frame1` image URLs (signed links to lumagate's copy); an
//!   extend sends `frame0: {type: generation, id: <parent's upstream id>}`.
//! - `loop` with an end image is refused (Luma: "Loop is not supported for end frame").

mod wire;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use self::wire::{CreateRequest, Generation, GenerationList};
use super::upstream::{progress_since, Credentials, KeyframeLinks, UpstreamHttp};
use super::{Ask, Job, ProviderError, UpstreamStatus, VideoProvider, VideoSource};
use crate::accounts::Account;
use crate::tasks::model::{ClipDuration, Model};

pub const PROVIDER: &str = "luma-api";
pub const DEFAULT_BASE_URL: &str = "https://api.lumalabs.ai/dream-machine/v1";

/// A Ray 2 clip usually takes about this long; only shapes the reported progress.
const TYPICAL_SECS: f64 = 90.0;
/// How many recent generations `recover` looks through.
const RECOVER_WINDOW: u32 = 100;
/// Clock skew allowed between lumagate and the upstream when matching a lost submission.
const RECOVER_SKEW_SECS: i64 = 120;

pub struct LumaApi {
    http: UpstreamHttp,
    links: KeyframeLinks,
}

impl LumaApi {
    pub fn new(http: UpstreamHttp, links: KeyframeLinks) -> LumaApi {
        LumaApi { http, links }
    }

    fn request(&self, creds: &Credentials, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, format!("{}{path}", creds.base_url))
            .bearer_auth(&creds.api_key)
            .header("accept", "application/json")
    }

    fn body(&self, job: &Job) -> Result<CreateRequest, ProviderError> {
        self.check(&Ask::of(&job.params, job.parent.is_some())).map_err(ProviderError::Rejected)?;
        let frame0 = match (&job.parent_upstream_id, &job.params.start_image) {
            (Some(parent), _) => Some(wire::Keyframe::Generation { id: parent.clone() }),
            (None, Some(key)) => Some(wire::Keyframe::Image { url: self.links.link(key)? }),
            (None, None) => None,
        };
        let frame1 = match &job.params.end_image {
            Some(key) => Some(wire::Keyframe::Image { url: self.links.link(key)? }),
            None => None,
        };
        let params = &job.params;
        let ray2 = params.model == Model::RayV2;
        Ok(CreateRequest {
            model: upstream_model(params.model).to_string(),
            prompt: job.prompt.clone(),
            aspect_ratio: params.aspect_ratio.as_str().to_string(),
            looped: params.looped,
            keyframes: (frame0.is_some() || frame1.is_some()).then_some(wire::Keyframes { frame0, frame1 }),
            resolution: ray2.then(|| params.resolution.as_str().to_string()),
            duration: ray2.then(|| upstream_duration(params.duration).to_string()),
        })
    }
}

/// The Dream Machine model for a reseller model name.
pub fn upstream_model(model: Model) -> &'static str {
    match model {
        Model::RayV1 => "ray-1-6",
        // Refused by `check` before a body is built; Ray 3 is the Agents API.
        Model::RayV2 | Model::RayV3 => "ray-2",
    }
}

/// Dream Machine documents `5s` and `9s`; a `10s` request gets the longer one.
pub fn upstream_duration(duration: ClipDuration) -> &'static str {
    match duration {
        ClipDuration::Five => "5s",
        ClipDuration::Ten => "9s",
    }
}

#[async_trait]
impl VideoProvider for LumaApi {
    async fn submit(&self, account: &Account, job: &Job, _attempt: &str) -> Result<String, ProviderError> {
        let creds = Credentials::of(account, DEFAULT_BASE_URL)?;
        let body = self.body(job)?;
        let created: Generation = self
            .http
            .json(self.request(&creds, reqwest::Method::POST, "/generations/video").json(&body))
            .await?;
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
                let assets = generation.assets.unwrap_or_default();
                match assets.video.filter(|u| !u.is_empty()) {
                    Some(video) => UpstreamStatus::Finished(VideoSource::Url { video, thumbnail: assets.image.filter(|u| !u.is_empty()) }),
                    None => return Err(ProviderError::Transient("the upstream says completed but gives no video URL".into())),
                }
            }
            Some("failed") => UpstreamStatus::Failed {
                reason: generation.failure_reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "the upstream failed the generation without a reason".into()),
            },
            Some("queued") => UpstreamStatus::Running { progress: 5 },
            Some(_) => UpstreamStatus::Running { progress: progress_since(generation.created_at.as_deref(), TYPICAL_SECS) },
            None => return Err(ProviderError::Transient("the upstream's generation has no state".into())),
        })
    }

    /// Dream Machine takes no client reference, but it lists an account's generations
    /// with an echo of each request: the lost submission is the oldest generation made
    /// since the attempt began with this job's prompt, model and keyframe kinds.
    async fn recover(&self, account: &Account, job: &Job, attempt: &str) -> Option<String> {
        let started = attempt_started(attempt)?;
        let creds = Credentials::of(account, DEFAULT_BASE_URL).ok()?;
        let path = format!("/generations?limit={RECOVER_WINDOW}&offset=0");
        let list: GenerationList = match self.http.json(self.request(&creds, reqwest::Method::GET, &path)).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(task.id = %job.task_id, error = %e, "could not list upstream generations to recover a submission");
                return None;
            }
        };
        let wanted = self.body(job).ok()?;
        list.generations
            .into_iter()
            .filter(|g| g.created_unix().is_some_and(|t| t >= started - RECOVER_SKEW_SECS))
            .filter(|g| g.request.as_ref().is_some_and(|r| r.same_job(&wanted)))
            .min_by_key(|g| g.created_unix())
            .and_then(|g| g.id)
    }

    fn check(&self, ask: &Ask) -> Result<(), String> {
        if ask.model == Model::RayV3 {
            return Err("ray-v3 (Ray 3) is not on Luma's Dream Machine API; it needs a luma-agents account".into());
        }
        if ask.model == Model::RayV1 && ask.duration == ClipDuration::Ten {
            return Err("ray-v1 (Ray 1.6) makes 5 s clips only: use duration 5s, or ray-v2 (10s becomes Luma's 9s)".into());
        }
        if ask.looped && ask.end_image {
            return Err("loop cannot be combined with image_end_url on Luma's Dream Machine API (Loop is not supported for end frame)".into());
        }
        Ok(())
    }

    fn clean_videos(&self) -> bool {
        true
    }

    fn needs_public_url(&self) -> bool {
        true
    }
}

/// When an attempt began: the worker's attempt markers start with Unix milliseconds.
fn attempt_started(attempt: &str) -> Option<i64> {
    let millis: i64 = attempt.split('-').next()?.parse().ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as i64;
    (millis <= now + 60_000).then_some(millis / 1000)
}

#[cfg(test)]
mod tests;
