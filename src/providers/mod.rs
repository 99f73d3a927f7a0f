//! Upstream video providers behind one trait. Only a provider module knows its
//! upstream's wire format; the engine sees jobs, statuses and classified errors.

pub mod sandbox;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::accounts::Account;
use crate::tasks::model::{Params, Tier};

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

/// A finished video. Upstreams that hand out URLs will add a variant to download from.
#[derive(Debug)]
pub enum VideoSource {
    Rendered { mp4: Vec<u8>, thumbnail_jpeg: Vec<u8>, width: u32, height: u32, duration_secs: f64 },
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
