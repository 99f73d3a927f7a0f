//! The lifecycle operations the API offers: create, extend, read, list.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::model::{now_micros, NewTask, Params, State, Task, Tier, VideoRef};
use super::request::GenerationRequest;
use super::Engine;
use crate::blobs::key;
use crate::keys::ApiKey;
use crate::media::intake;
use crate::providers::Ask;
use crate::store::{QueueStanding, StoreError};

/// Why an operation was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such task")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but unusable as asked (an idempotency key reused with another request).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{message}")]
    Busy { message: String, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Internal(e.to_string())
    }
}

/// A task with where it stands in the queue, as the API shows it.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub task: Task,
    /// Tasks ahead of it, while it waits in the queue.
    pub queue_position: Option<u64>,
    pub estimate_wait_seconds: Option<u64>,
}

impl Engine {
    /// Validates, stores the keyframes and persists a new task; then wakes the dispatcher.
    pub async fn create(self: &Arc<Self>, caller: &ApiKey, tier: Tier, req: GenerationRequest) -> Result<TaskInfo, EngineError> {
        if let Some(earlier) = self.replay(caller, &req).await? {
            return Ok(earlier);
        }
        self.authorize(caller, tier, &req, false)?;
        self.check_hook(&req).await?;
        let id = Uuid::new_v4();
        let start_image = self.keep_keyframe(id, "image_url", "start", req.image_url.as_deref()).await?;
        let end_image = self.keep_keyframe(id, "image_end_url", "end", req.image_end_url.as_deref()).await?;
        let task = new_task(id, caller, tier, &req, start_image, end_image, None, None);
        self.persist(caller, &req, task).await
    }

    /// Creates a task that continues a completed task's video on the parent's account.
    pub async fn extend(
        self: &Arc<Self>,
        caller: &ApiKey,
        tier: Tier,
        parent_id: Uuid,
        mut req: GenerationRequest,
    ) -> Result<TaskInfo, EngineError> {
        if let Some(earlier) = self.replay(caller, &req).await? {
            return Ok(earlier);
        }
        let parent = self.owned_task(caller, parent_id).await?;
        if parent.state != State::Completed {
            return Err(EngineError::Conflict(format!(
                "task {parent_id} is {}; only a completed task can be extended",
                parent.state.as_str()
            )));
        }
        // The parent's frame shape always wins: the video continues, it cannot change shape.
        req.aspect_ratio = parent.params.aspect_ratio;
        self.authorize(caller, tier, &req, true)?;
        self.check_account(parent.account_id.as_deref(), &ask(&req, true))?;
        self.check_hook(&req).await?;
        let id = Uuid::new_v4();
        let end_image = self.keep_keyframe(id, "image_end_url", "end", req.image_end_url.as_deref()).await?;
        let task = new_task(id, caller, tier, &req, None, end_image, Some(parent_id), parent.account_id.clone());
        self.persist(caller, &req, task).await
    }

    /// One of the caller's tasks. Another key's task is indistinguishable from a missing one.
    pub async fn get(&self, caller: &ApiKey, id: Uuid) -> Result<TaskInfo, EngineError> {
        let task = self.owned_task(caller, id).await?;
        self.info(task).await
    }

    /// The caller's tasks, newest first.
    pub async fn list(&self, caller: &ApiKey, offset: u64, limit: u64) -> Result<Vec<TaskInfo>, EngineError> {
        let tasks = self.store.tasks_of_key(&caller.id, offset, limit).await?;
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(self.info(task).await?);
        }
        Ok(out)
    }

    /// The stored video of a completed task.
    pub async fn video(&self, caller: &ApiKey, id: Uuid) -> Result<VideoRef, EngineError> {
        let task = self.owned_task(caller, id).await?;
        match (task.state, task.video) {
            (State::Completed, Some(video)) => Ok(video),
            (state, _) => Err(EngineError::Conflict(format!(
                "task {id} is {}; the video link exists once it is completed",
                state.as_str()
            ))),
        }
    }

    /// Deletes one of the caller's tasks: it disappears from the API, stops if it was
    /// still running, and sends no more webhooks.
    pub async fn delete(&self, caller: &ApiKey, id: Uuid) -> Result<(), EngineError> {
        self.owned_task(caller, id).await?;
        if !self.store.delete_task(id, "deleted by its owner before it finished", now_micros()).await? {
            return Err(EngineError::NotFound);
        }
        tracing::info!(task.id = %id, "task deleted");
        Ok(())
    }

    async fn owned_task(&self, caller: &ApiKey, id: Uuid) -> Result<Task, EngineError> {
        match self.store.task(id).await? {
            Some(task) if task.key_id == caller.id && !task.deleted => Ok(task),
            _ => Err(EngineError::NotFound),
        }
    }

    /// The task an earlier request with the same `Idempotency-Key` created, if any. The
    /// same key with a different request is refused: answering it with the earlier
    /// task would hide the caller's mistake.
    async fn replay(&self, caller: &ApiKey, req: &GenerationRequest) -> Result<Option<TaskInfo>, EngineError> {
        let Some(idem) = &req.idempotency else { return Ok(None) };
        let Some(record) = self.store.idempotency_record(&caller.id, &idem.key).await? else { return Ok(None) };
        if record.request_hash != idem.request_hash {
            return Err(EngineError::Unprocessable(format!(
                "Idempotency-Key {:?} was already used with a different request; use a new key for a new request",
                idem.key
            )));
        }
        match self.store.task(record.task_id).await? {
            Some(task) if task.key_id == caller.id && !task.deleted => Ok(Some(self.info_or_bare(task).await)),
            _ => Ok(None),
        }
    }

    /// Refuses a webhook URL that could never be delivered to: one whose host is, or
    /// resolves only to, a loopback, private, link-local or metadata address.
    async fn check_hook(&self, req: &GenerationRequest) -> Result<(), EngineError> {
        let Some(hook) = &req.notify_hook else { return Ok(()) };
        let field = req.surface.hook_field();
        let url = url::Url::parse(hook).map_err(|_| EngineError::Invalid(format!("{field} must be an http(s) URL")))?;
        intake::check_destination(&url, &self.config.hook_allow_ips)
            .await
            .map_err(|why| EngineError::Invalid(format!("{field} is not allowed: {why}")))
    }

    fn authorize(&self, caller: &ApiKey, tier: Tier, req: &GenerationRequest, extend: bool) -> Result<(), EngineError> {
        if !caller.may_use_tier(tier) {
            return Err(EngineError::Forbidden(format!("this key may not use the {} tier", tier.as_str())));
        }
        if !caller.may_use_model(req.model) {
            return Err(EngineError::Forbidden(format!("this key may not use the model {}", req.model.as_str())));
        }
        let servable = self.cached_accounts().iter().any(|a| {
            a.enabled && a.tiers.contains(&tier) && a.models.contains(&req.model) && self.providers.get(&a.provider).is_some()
        });
        if !servable {
            return Err(EngineError::Unavailable(format!(
                "no upstream account can serve {} on the {} tier",
                req.model.as_str(),
                tier.as_str()
            )));
        }
        // Some upstream must be able to make exactly this; else say why, before accepting it.
        let ask = ask(req, extend);
        let mut refusals = Vec::new();
        for account in self.cached_accounts().iter().filter(|a| a.enabled && a.tiers.contains(&tier) && a.models.contains(&req.model)) {
            match self.providers.get(&account.provider).map(|p| p.check(&ask)) {
                Some(Ok(())) => return Ok(()),
                Some(Err(reason)) if !refusals.contains(&reason) => refusals.push(reason),
                _ => {}
            }
        }
        Err(EngineError::Invalid(refusals.join("; ")))
    }

    /// An extension runs on its parent's account: that account's upstream must accept it.
    fn check_account(&self, account_id: Option<&str>, ask: &Ask) -> Result<(), EngineError> {
        let account = self.cached_accounts().into_iter().find(|a| Some(a.id.as_str()) == account_id);
        match account.and_then(|a| self.providers.get(&a.provider)) {
            Some(provider) => provider.check(ask).map_err(EngineError::Invalid),
            None => Ok(()), // the dispatcher fails it with the account's reason
        }
    }

    /// Reads, validates and stores one keyframe input; returns its blob key.
    async fn keep_keyframe(&self, id: Uuid, field: &str, which: &str, input: Option<&str>) -> Result<Option<String>, EngineError> {
        let Some(input) = input else { return Ok(None) };
        let frame = intake::intake(field, input, &self.config.intake, &self.fetcher).await.map_err(|e| {
            if e.is_too_large() {
                EngineError::TooLarge(e.to_string())
            } else {
                EngineError::Invalid(e.to_string())
            }
        })?;
        let blob = key::keyframe(id, which, frame.format.extension());
        self.blobs
            .put(&blob, Bytes::clone(&frame.bytes))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(Some(blob))
    }

    /// Slots that may serve the task: enabled accounts for its tier and model, less the
    /// slots kept for pro when it is relax work.
    fn slots_for(&self, task: &Task) -> u64 {
        let slots: u64 = self
            .accounts
            .read()
            .expect("accounts lock")
            .iter()
            .filter(|a| a.enabled && a.tiers.contains(&task.tier) && a.models.contains(&task.params.model))
            .map(|a| a.concurrency as u64)
            .sum();
        match task.tier {
            Tier::Relax => slots.saturating_sub(self.config.pro_reserved_slots as u64),
            Tier::Pro => slots,
        }
        .max(1)
    }

    /// When a full relax queue is worth retrying: about when one task has drained.
    fn relax_retry_after_secs(&self) -> u64 {
        let standing = QueueStanding { ahead: 0, pro_ahead: 0 };
        self.rates.wait(standing, Tier::Relax, 1, self.config.default_run_time).as_secs().clamp(1, 60)
    }

    async fn persist(self: &Arc<Self>, caller: &ApiKey, req: &GenerationRequest, task: NewTask) -> Result<TaskInfo, EngineError> {
        let stored = match self.store.insert_task(&task, self.config.relax_queue_limit).await {
            Ok(stored) => stored,
            Err(StoreError::QueueFull { limit }) => {
                return Err(EngineError::Busy {
                    message: format!("the relax queue is full ({limit} tasks waiting); retry later or use the pro tier"),
                    retry_after_secs: self.relax_retry_after_secs(),
                })
            }
            // A concurrent request with the same key got there first: answer with its task.
            Err(StoreError::IdempotencyTaken) => {
                return self
                    .replay(caller, req)
                    .await?
                    .ok_or_else(|| EngineError::Internal("idempotency record without its task".into()))
            }
            Err(other) => return Err(other.into()),
        };
        self.metrics.task_created(stored.tier);
        tracing::info!(task.id = %stored.id, tier = stored.tier.as_str(), "task accepted");
        self.task_queued(stored.tier);
        // The task is queued now: nothing after this point may turn into an error, or a
        // client that retries errors would queue it twice.
        Ok(self.info_or_bare(stored).await)
    }

    /// [`Self::info`], or the task without its queue standing when that cannot be read.
    async fn info_or_bare(&self, task: Task) -> TaskInfo {
        match self.info(task.clone()).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(task.id = %task.id, error = %e, "could not read the queue standing");
                TaskInfo { task, queue_position: None, estimate_wait_seconds: None }
            }
        }
    }

    /// Adds queue standing and the wait estimate to a task.
    pub(crate) async fn info(&self, task: Task) -> Result<TaskInfo, EngineError> {
        if !task.is_queued() {
            return Ok(TaskInfo { task, queue_position: None, estimate_wait_seconds: None });
        }
        let standing = self.store.queue_standing(&task).await?;
        let slots = self.slots_for(&task);
        let estimate = self.rates.wait(standing, task.tier, slots, self.config.default_run_time).as_secs_f64();
        // Rounded to the nearest second: rounding up would bias every short wait.
        Ok(TaskInfo { task, queue_position: Some(standing.ahead + 1), estimate_wait_seconds: Some(estimate.round() as u64) })
    }
}

/// What a request asks of an upstream, before its keyframes are stored.
fn ask(req: &GenerationRequest, extend: bool) -> Ask {
    Ask {
        model: req.model,
        aspect_ratio: req.aspect_ratio,
        duration: req.duration,
        looped: req.looped,
        start_image: req.image_url.is_some(),
        end_image: req.image_end_url.is_some(),
        extend,
    }
}

#[allow(clippy::too_many_arguments)]
fn new_task(
    id: Uuid,
    caller: &ApiKey,
    tier: Tier,
    req: &GenerationRequest,
    start_image: Option<String>,
    end_image: Option<String>,
    parent_id: Option<Uuid>,
    pinned_account: Option<String>,
) -> NewTask {
    NewTask {
        id,
        key_id: caller.id.clone(),
        tier,
        prompt: req.prompt.clone(),
        params: Params {
            model: req.model,
            aspect_ratio: req.aspect_ratio,
            resolution: req.resolution,
            duration: req.duration,
            looped: req.looped,
            expand_prompt: req.expand_prompt,
            start_image,
            end_image,
            notify_hook: req.notify_hook.clone(),
            surface: req.surface,
            request_echo: req.request_echo.clone(),
        },
        parent_id,
        pinned_account,
        created_at: now_micros(),
        idempotency: req.idempotency.clone(),
    }
}
