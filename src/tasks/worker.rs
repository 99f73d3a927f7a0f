//! Drives one dispatched task to its end: submit (once), poll while renewing the lease,
//! re-host the result (see `rehost`), and reach a terminal state by compare-and-set.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::model::{now_micros, State, Task, VideoRef};
use super::rehost::Rehosted;
use super::Engine;
use crate::accounts::Account;
use crate::blobs::key;
use crate::metrics::UpstreamErrorKind;
use crate::media::probe::VideoInfo;
use crate::providers::{Job, ProviderError, UpstreamStatus, VideoProvider, VideoSource};

/// How a worker stopped, when it did not reach a terminal state itself.
enum Stop {
    /// Lost the lease or shutting down: someone else (or the next start) resumes.
    LetGo,
    /// Back to the queue, for another account.
    Requeue,
    Fail(String),
}

/// Removes the task from the local running set however the worker ends.
struct RunningGuard<'a>(&'a Engine, Uuid);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.lock().expect("running set").remove(&self.1);
        self.0.slot_freed_at.store(now_micros(), std::sync::atomic::Ordering::Relaxed);
        self.0.capacity_changed();
    }
}

impl Engine {
    pub(crate) fn spawn_worker(self: &Arc<Self>, id: Uuid) {
        if !self.running.lock().expect("running set").insert(id) {
            return;
        }
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = RunningGuard(&engine, id);
            let outcome = tokio::select! {
                // Shutdown is looked at first on every wake-up. (In random order, a worker
                // woken by shutdown could step on: its pauses end at once then, so it spun
                // through its poll loop until its next store write, and on a one-thread
                // runtime renewed its lease after shutdown.)
                biased;
                _ = engine.shutdown.cancelled() => Ok(()),
                r = engine.drive(id) => r,
            };
            if let Err(e) = outcome {
                tracing::warn!(task.id = %id, error = %e, "worker stopped on a store error; the lease sweeper resumes it");
            }
        });
    }

    async fn drive(&self, id: Uuid) -> Result<(), crate::store::StoreError> {
        let Some(task) = self.store.task(id).await? else { return Ok(()) };
        if task.state.is_terminal() || task.lease_owner.as_deref() != Some(&self.owner) {
            return Ok(());
        }
        let stop = match self.prepare(&task).await {
            Ok((account, provider, job)) => self.run(&task, &account, provider.as_ref(), &job).await?,
            Err(stop) => stop,
        };
        let now = now_micros();
        match stop {
            Stop::LetGo => {}
            Stop::Requeue => {
                self.store.requeue(id, &self.owner).await?;
            }
            Stop::Fail(reason) => {
                if self.store.fail(id, Some(&self.owner), &reason, now).await? {
                    self.metrics.task_finished(task.tier, State::Failed);
                    tracing::info!(task.id = %id, reason = %reason, "task failed");
                }
            }
        }
        Ok(())
    }

    async fn prepare(&self, task: &Task) -> Result<(Account, Arc<dyn VideoProvider>, Job), Stop> {
        let account_id = task.account_id.clone().unwrap_or_default();
        let account = self.cached_accounts().into_iter().find(|a| a.id == account_id).ok_or(Stop::Requeue)?;
        let provider = self.providers.get(&account.provider).ok_or(Stop::Requeue)?;
        let job = self.job_for(task).await.map_err(Stop::Fail)?;
        Ok((account, provider, job))
    }

    async fn run(&self, task: &Task, account: &Account, provider: &dyn VideoProvider, job: &Job) -> Result<Stop, crate::store::StoreError> {
        let id = task.id;
        let upstream_id = match &task.upstream_id {
            Some(existing) => existing.clone(),
            None => match self.submit(task, account, provider, job).await? {
                Ok(upstream_id) => upstream_id,
                Err(stop) => return Ok(stop),
            },
        };
        let mut progress = task.progress;
        let mut last_progress = task.last_progress_at.unwrap_or_else(now_micros);
        let mut retries = 0;
        let mut lease_until = task.lease_until.unwrap_or(0);
        loop {
            // Renew once a third of the lease is used, not on every poll: fewer writes.
            let ttl = self.config.lease_ttl.as_micros() as i64;
            if lease_until - now_micros() < ttl * 2 / 3 {
                lease_until = now_micros() + ttl;
                if !self.store.renew_lease(id, &self.owner, lease_until).await? {
                    return Ok(Stop::LetGo);
                }
            }
            match provider.poll(account, job, &upstream_id).await {
                Ok(UpstreamStatus::Running { progress: p }) => {
                    retries = 0;
                    if p > progress {
                        progress = p;
                        last_progress = now_micros();
                        self.store.record_progress(id, &self.owner, p.min(99), last_progress).await?;
                    }
                }
                Ok(UpstreamStatus::Finished(source)) => {
                    // The upstream's capacity is free now; the next task needn't wait for the download.
                    if self.store.release_slot(id, &self.owner, now_micros()).await? {
                        self.slot_freed_at.store(now_micros(), std::sync::atomic::Ordering::Relaxed);
                        self.capacity_changed();
                    }
                    match source {
                        VideoSource::Rendered { mp4, thumbnail_jpeg, width, height, duration_secs } => {
                            let info = VideoInfo { width, height, duration_secs };
                            return self.finish(task, Rehosted { mp4, thumbnail_jpeg, info }).await;
                        }
                        // A failed download polls again: the upstream mints a fresh link.
                        VideoSource::Url { video, thumbnail } => {
                            match self.rehost(task, job, provider.clean_videos(), &video, thumbnail.as_deref()).await {
                                Ok(rehosted) => return self.finish(task, rehosted).await,
                                Err(e) => match self.react(account, e, &mut retries, true).await? {
                                    Some(stop) => return Ok(stop),
                                    None => continue,
                                },
                            }
                        }
                    }
                }
                Ok(UpstreamStatus::Failed { reason }) => {
                    self.metrics.upstream_error(&account.id, UpstreamErrorKind::Failed);
                    return Ok(Stop::Fail(reason));
                }
                Err(e) => match self.react(account, e, &mut retries, true).await? {
                    Some(stop) => return Ok(stop),
                    None => continue,
                },
            }
            let idle = Duration::from_micros((now_micros() - last_progress).max(0) as u64);
            if idle > self.config.progress_timeout {
                self.metrics.upstream_error(&account.id, UpstreamErrorKind::Timeout);
                return Ok(Stop::Fail(format!(
                    "timed out: the upstream showed no progress for {} s",
                    self.config.progress_timeout.as_secs()
                )));
            }
            self.pause(self.config.poll_interval).await;
        }
    }

    /// Submits once: an attempt marker is written first, right before the call (by
    /// compare-and-set, so a task deleted or taken over meanwhile is not submitted), and a
    /// resumed task recovers the generation it started instead of submitting twice.
    async fn submit(
        &self,
        task: &Task,
        account: &Account,
        provider: &dyn VideoProvider,
        job: &Job,
    ) -> Result<Result<String, Stop>, crate::store::StoreError> {
        if let Some(attempt) = &task.attempt {
            if let Some(upstream_id) = provider.recover(account, job, attempt).await {
                return self.accepted(task.id, &upstream_id).await;
            }
        }
        let mut retries = 0;
        loop {
            let attempt = new_attempt();
            if !self.store.record_attempt(task.id, &self.owner, &attempt).await? {
                return Ok(Err(Stop::LetGo));
            }
            match provider.submit(account, job, &attempt).await {
                Ok(upstream_id) => return self.accepted(task.id, &upstream_id).await,
                Err(e) => {
                    if let Some(stop) = self.react(account, e, &mut retries, false).await? {
                        return Ok(Err(stop));
                    }
                }
            }
        }
    }

    async fn accepted(&self, id: Uuid, upstream_id: &str) -> Result<Result<String, Stop>, crate::store::StoreError> {
        if self.store.mark_processing(id, &self.owner, upstream_id, now_micros()).await? {
            tracing::info!(task.id = %id, upstream = %upstream_id, "upstream accepted the task");
            Ok(Ok(upstream_id.to_string()))
        } else {
            Ok(Err(Stop::LetGo))
        }
    }

    /// Decides what an upstream error means for the task and the account. `None` means
    /// "try again" (after a pause that this function already waited).
    async fn react(&self, account: &Account, e: ProviderError, retries: &mut u32, submitted: bool) -> Result<Option<Stop>, crate::store::StoreError> {
        let kind = match &e {
            ProviderError::RateLimited { .. } => UpstreamErrorKind::RateLimited,
            ProviderError::AccountAuth(_) => UpstreamErrorKind::AccountAuth,
            ProviderError::Rejected(_) => UpstreamErrorKind::Rejected,
            ProviderError::Transient(_) => UpstreamErrorKind::Transient,
        };
        self.metrics.upstream_error(&account.id, kind);
        match e {
            ProviderError::RateLimited { retry_after } => {
                let wait = retry_after.unwrap_or(Duration::from_secs(30));
                tracing::warn!(account = %account.id, wait_s = wait.as_secs(), "upstream rate limit; cooling the account down");
                self.store.set_cooldown(&account.id, now_micros() + wait.as_micros() as i64).await?;
                self.accounts_changed();
                if !submitted {
                    return Ok(Some(Stop::Requeue));
                }
                self.pause(wait).await;
                Ok(None)
            }
            ProviderError::AccountAuth(reason) => {
                tracing::error!(account = %account.id, reason = %reason, "disabling account");
                self.store.set_enabled(&account.id, false, Some(&reason)).await?;
                self.accounts_changed();
                Ok(Some(Stop::Requeue))
            }
            ProviderError::Rejected(reason) => Ok(Some(Stop::Fail(reason))),
            ProviderError::Transient(reason) => {
                *retries += 1;
                if *retries > self.config.transient_retries {
                    return Ok(Some(Stop::Fail(format!(
                        "upstream error after {} retries: {reason}",
                        self.config.transient_retries
                    ))));
                }
                let backoff = Duration::from_millis(250 * 2u64.pow((*retries).min(6)));
                tracing::warn!(account = %account.id, retry = *retries, reason = %reason, "transient upstream error");
                self.pause(backoff).await;
                Ok(None)
            }
        }
    }

    /// Re-hosts the result in lumagate's storage, then completes the task.
    async fn finish(&self, task: &Task, result: Rehosted) -> Result<Stop, crate::store::StoreError> {
        let Rehosted { mp4, thumbnail_jpeg, info: VideoInfo { width, height, duration_secs } } = result;
        let video = VideoRef {
            video_key: key::video(task.id),
            thumbnail_key: key::thumbnail(task.id),
            width,
            height,
            duration_secs,
        };
        for (blob, bytes) in [(&video.video_key, mp4), (&video.thumbnail_key, thumbnail_jpeg)] {
            if let Err(e) = self.blobs.put(blob, Bytes::from(bytes)).await {
                tracing::error!(task.id = %task.id, error = %e, "could not store the result");
                return Ok(Stop::LetGo);
            }
        }
        if self.store.complete(task.id, &self.owner, &video, now_micros()).await? {
            self.metrics.task_finished(task.tier, State::Completed);
            tracing::info!(task.id = %task.id, width, height, duration_secs, "task completed");
        }
        Ok(Stop::LetGo)
    }

    /// The job for a task: its keyframes, and for an extend the chain of parent jobs.
    pub(crate) async fn job_for(&self, task: &Task) -> Result<Job, String> {
        let mut chain = vec![task.clone()];
        while let Some(parent_id) = chain.last().and_then(|t| t.parent_id) {
            if chain.len() > 64 {
                return Err("the chain of extended videos is too long".into());
            }
            let parent = self.store.task(parent_id).await.map_err(|e| e.to_string())?;
            match parent {
                Some(p) if p.state == State::Completed => chain.push(p),
                _ => return Err(format!("the parent task {parent_id} is gone")),
            }
        }
        // Build from the root down, so each job carries its parent's job and upstream id.
        let mut job: Option<Job> = None;
        let mut parent_upstream_id: Option<String> = None;
        while let Some(t) = chain.pop() {
            job = Some(Job {
                task_id: t.id,
                tier: t.tier,
                prompt: t.prompt.clone(),
                params: t.params.clone(),
                start_image: self.keyframe(t.params.start_image.as_deref()).await?,
                end_image: self.keyframe(t.params.end_image.as_deref()).await?,
                parent_upstream_id: parent_upstream_id.take(),
                parent: job.map(Box::new),
            });
            parent_upstream_id = t.upstream_id.clone();
        }
        job.ok_or_else(|| "empty job chain".into())
    }

    async fn keyframe(&self, blob: Option<&str>) -> Result<Option<Bytes>, String> {
        match blob {
            None => Ok(None),
            Some(blob) => self.blobs.get(blob).await.map(Some).map_err(|e| format!("keyframe lost: {e}")),
        }
    }

    /// Sleeps, but wakes at once on shutdown (the caller is then cancelled by the `select!`
    /// in [`Engine::spawn_worker`]).
    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(d) => {}
        }
    }
}

/// A fresh attempt marker. It starts with the time, so a provider that recovers by listing
/// the upstream's generations knows how far back to look.
fn new_attempt() -> String {
    format!("{}-{}", now_micros() / 1000, Uuid::new_v4().simple())
}
