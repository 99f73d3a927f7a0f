//! Upstream video providers behind one trait. Only a provider module knows its
//! upstream's wire format; the engine sees jobs, statuses and classified errors.

pub mod luma_agents;
pub mod luma_api;
pub mod sandbox;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::accounts::Account;
use crate::tasks::model::{AspectRatio, ClipDuration, Model, Params, Tier};

/// What a provider is asked to make.
#[derive(Debug, Clone)]
pub struct Job {
    pub task_id: Uuid,
    pub tier: Tier,
    pub prompt: String,
    pub params: Params,
    /// Keyframe image bytes (PNG, JPEG, WebP or GIF), already validated.
    pub start_image: Option<Bytes>,
    pub end_image: Option<Bytes>,
    /// Extend: the job that made the parent video.
    pub parent: Option<Box<Job>>,
    /// Extend: the parent's generation id on the same account.
    pub parent_upstream_id: Option<String>,
}

/// A finished video: made here, or waiting at an upstream URL that expires soon.
#[derive(Debug)]
pub enum VideoSource {
    Rendered { mp4: Vec<u8>, thumbnail_jpeg: Vec<u8>, width: u32, height: u32, duration_secs: f64 },
    /// The worker downloads it at once (size-capped, with retries), probes it and makes
    /// the thumbnail unless the upstream offers one.
    Url { video: String, thumbnail: Option<String> },
}

/// What a task asks of an upstream, as far as choosing an account goes: providers refuse
/// what their upstream cannot make before the task is accepted (a clear `400`), instead
/// of failing it later.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub model: Model,
    pub aspect_ratio: AspectRatio,
    pub duration: ClipDuration,
    pub looped: bool,
    pub start_image: bool,
    pub end_image: bool,
    pub extend: bool,
}

impl Ask {
    pub fn of(params: &Params, extend: bool) -> Ask {
        Ask {
            model: params.model,
            aspect_ratio: params.aspect_ratio,
            duration: params.duration,
            looped: params.looped,
            start_image: params.start_image.is_some(),
            end_image: params.end_image.is_some(),
            extend,
        }
    }
}

/// Where an upstream generation stands.
#[derive(Debug)]
pub enum UpstreamStatus {
    Running { progress: u8 },
    Finished(VideoSource),
    Failed { reason: String },
}

/// An upstream call that did not succeed, classified by what the engine should do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying (5xx, timeouts, malformed bodies).
    #[error("transient upstream error: {0}")]
    Transient(String),
    /// The account is rate limited: cool it down, do not fail the task.
    #[error("upstream rate limit")]
    RateLimited { retry_after: Option<Duration> },
    /// The account's credentials were refused: disable the account.
    #[error("upstream refused the account's credentials: {0}")]
    AccountAuth(String),
    /// The upstream refused this task for good (moderation, invalid input).
    #[error("{0}")]
    Rejected(String),
}

#[async_trait]
pub trait VideoProvider: Send + Sync {
    /// Starts a generation. `attempt` is unique per submission attempt; providers that can
    /// pass a client reference upstream use it to make a repeated submission idempotent.
    async fn submit(&self, account: &Account, job: &Job, attempt: &str) -> Result<String, ProviderError>;
    /// The status of a generation this account started.
    async fn poll(&self, account: &Account, job: &Job, upstream_id: &str) -> Result<UpstreamStatus, ProviderError>;
    /// A generation id for an attempt that was recorded but whose submission may not have
    /// been answered (a crash in between), if the provider can tell.
    async fn recover(&self, _account: &Account, _job: &Job, _attempt: &str) -> Option<String> {
        None
    }
    /// Why this upstream cannot make what is asked, if it cannot.
    fn check(&self, _ask: &Ask) -> Result<(), String> {
        Ok(())
    }
    /// Whether its videos come without a visible watermark, so that the deployment's
    /// watermark policy applies to relax tasks.
    fn clean_videos(&self) -> bool {
        false
    }
    /// Whether its accounts need `LUMAGATE_PUBLIC_URL` (the upstream fetches keyframes by URL).
    fn needs_public_url(&self) -> bool {
        false
    }
}

/// The models a provider's upstream has, by provider name; `None` for an unknown provider.
/// Accounts default to these, and may not list others.
pub fn models_of(provider: &str) -> Option<&'static [Model]> {
    match provider {
        sandbox::PROVIDER => Some(Model::ALL),
        luma_api::PROVIDER => Some(&[Model::RayV1, Model::RayV2]),
        luma_agents::PROVIDER => Some(&[Model::RayV3]),
        _ => None,
    }
}

/// Checks an account's provider and models; the message names what is wrong.
pub fn check_account(account: &Account) -> Result<(), String> {
    let Some(served) = models_of(&account.provider) else {
        return Err(format!(
            "account {}: unknown provider `{}` (known: {}, {}, {})",
            account.id,
            account.provider,
            sandbox::PROVIDER,
            luma_api::PROVIDER,
            luma_agents::PROVIDER
        ));
    };
    if let Some(m) = account.models.iter().find(|m| !served.contains(m)) {
        let list: Vec<&str> = served.iter().map(|m| m.as_str()).collect();
        return Err(format!("account {}: provider {} does not serve {} (it serves {})", account.id, account.provider, m.as_str(), list.join(", ")));
    }
    Ok(())
}

/// The providers this process can talk to, by name.
#[derive(Clone, Default)]
pub struct Providers(HashMap<String, Arc<dyn VideoProvider>>);

impl Providers {
    pub fn with(mut self, name: &str, provider: Arc<dyn VideoProvider>) -> Self {
        self.0.insert(name.to_string(), provider);
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn VideoProvider>> {
        self.0.get(name).cloned()
    }
}
