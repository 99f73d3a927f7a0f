//! Webhook delivery from the persisted outbox (API.md §6).
//!
//! The store writes one outbox row per state change of a task with a hook URL, in the
//! same transaction as the change ([`crate::store::OutboxStore`]). This loop sends them:
//! - **In order per task.** Only the oldest open row of a task is ever due, so a
//!   task's deliveries go out one at a time, in the order its states changed.
//! - **Retried** with exponential backoff until `retry_period` after the state change,
//!   then given up so that the task's next delivery may go.
//! - **Signed** (see [`signature`]): `X-Lumagate-Timestamp` and `X-Lumagate-Signature`.
//! - **Never to internal addresses:** the client resolves through the intake's guarded
//!   resolver and every URL is checked again at send time (DNS may have changed).
//! - **Never in the task's way:** tasks only write rows; a slow or failing receiver
//!   delays nothing but its own deliveries. A restart resumes from the rows.
//!
//! The body is the task in its surface's shape as of the state it entered; links in it
//! are signed at send time.

pub mod signature;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::media::intake;
use crate::metrics::DeliveryOutcome;
use crate::store::{Delivery, Store, StoreError};
use crate::tasks::model::{now_micros, State, Task};

/// Header naming the delivery; retries of one delivery repeat it, so receivers can drop duplicates.
pub const DELIVERY_HEADER: &str = "x-lumagate-delivery";
/// Header naming the event, `task.<state>`.
pub const EVENT_HEADER: &str = "x-lumagate-event";

/// Turns a task (as of a delivery's state) into the JSON body its surface uses.
pub type Render = Arc<dyn Fn(&Task) -> Vec<u8> + Send + Sync>;

/// Told the outcome of every attempt (the metrics count them).
pub type Report = Arc<dyn Fn(DeliveryOutcome) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// A delivery is retried until this long after its state change.
    pub retry_period: Duration,
    /// Wait after the first failed attempt; doubles with each further one.
    pub backoff_base: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// Limit of one attempt (connect, send, answer).
    pub timeout: Duration,
    /// How often the outbox is looked at.
    pub poll_interval: Duration,
    /// Deliveries sent at once (across tasks).
    pub concurrency: usize,
    /// Exceptions to the private-address policy (tests only).
    pub allow_ips: Vec<IpAddr>,
    /// HMAC key of the signatures.
    pub secret: Vec<u8>,
}

/// The delivery loop.
pub struct Webhooks {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    render: Render,
    report: Report,
    config: WebhookConfig,
}

enum Outcome {
    Delivered,
    /// Not delivered this time; the message says why.
    Failed(String),
    /// Can never be delivered (the task is gone).
    Pointless(&'static str),
}

impl Webhooks {
    pub fn new(store: Arc<dyn Store>, render: Render, report: Report, config: WebhookConfig) -> Arc<Self> {
        let client = intake::guarded_client(
            config.allow_ips.clone(),
            config.timeout,
            concat!("lumagate/", env!("CARGO_PKG_VERSION"), " (webhooks)"),
        );
        Arc::new(Webhooks { store, client, render, report, config })
    }

    /// Runs the loop until `stop` is cancelled.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.round().await {
                    tracing::warn!(error = %e, "webhook outbox round failed");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(this.config.poll_interval) => {}
                }
            }
        });
    }

    /// Sends every due delivery once; returns how many were attempted.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let due = self.store.due_deliveries(now_micros(), 256).await?;
        let count = due.len();
        futures_util::stream::iter(due)
            .for_each_concurrent(self.config.concurrency.max(1), |d| async move {
                if let Err(e) = self.deliver(d).await {
                    tracing::warn!(error = %e, "could not record a webhook attempt");
                }
            })
            .await;
        Ok(count)
    }

    async fn deliver(&self, d: Delivery) -> Result<(), StoreError> {
        let outcome = match self.store.task(d.task_id).await? {
            Some(task) if !task.deleted => self.send(&d, &as_of(task, d.state)).await,
            _ => Outcome::Pointless("the task no longer exists"),
        };
        let now = now_micros();
        match outcome {
            Outcome::Delivered => {
                tracing::info!(task.id = %d.task_id, delivery = d.seq, state = d.state.as_str(), attempt = d.attempts + 1, "webhook delivered");
                (self.report)(DeliveryOutcome::Delivered);
                self.store.delivered(d.seq, now).await
            }
            Outcome::Pointless(why) => self.store.abandon_delivery(d.seq, now, why).await,
            Outcome::Failed(why) => {
                let attempts = d.attempts + 1;
                let next = now + backoff(&self.config, attempts).as_micros() as i64;
                let deadline = d.created_at + self.config.retry_period.as_micros() as i64;
                if next > deadline {
                    tracing::warn!(task.id = %d.task_id, delivery = d.seq, attempts, error = %why, "webhook given up: retry period spent");
                    (self.report)(DeliveryOutcome::GaveUp);
                    self.store.abandon_delivery(d.seq, now, &why).await
                } else {
                    tracing::info!(task.id = %d.task_id, delivery = d.seq, attempts, error = %why, "webhook attempt failed; will retry");
                    (self.report)(DeliveryOutcome::Retrying);
                    self.store.retry_delivery(d.seq, attempts, next, &why).await
                }
            }
        }
    }

    async fn send(&self, d: &Delivery, task: &Task) -> Outcome {
        let url = match url::Url::parse(&d.url) {
            Ok(url) => url,
            Err(_) => return Outcome::Failed("the URL does not parse".into()),
        };
        // IP-literal hosts skip the resolver; host names are checked by it again.
        if let Err(why) = intake::check_destination(&url, &self.config.allow_ips).await {
            return Outcome::Failed(format!("destination not allowed: {why}"));
        }
        let body = (self.render)(task);
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let request = self
            .client
            .post(url)
            .timeout(self.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, d.seq.to_string())
            .header(EVENT_HEADER, format!("task.{}", d.state.as_str()))
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(signature::SIGNATURE_HEADER, signature::sign(&self.config.secret, timestamp, &body))
            .body(body);
        match request.send().await {
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            Ok(r) => Outcome::Failed(format!("the receiver answered {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Outcome::Failed(format!("no answer within {:?}", self.config.timeout)),
            Err(e) => Outcome::Failed(format!("sending failed: {}", root_cause(&e))),
        }
    }
}

/// The task as it was when it entered `state`: a delivery sent late (after retries)
/// still reports the change it is about, not a later one.
fn as_of(mut task: Task, state: State) -> Task {
    if task.state != state {
        task.state = state;
        if state != State::Completed {
            task.video = None;
            task.progress = task.progress.min(99);
        }
        if state != State::Failed {
            task.failure_reason = None;
        }
    }
    task
}

/// Wait before attempt `attempts + 1`: base × 2^(attempts − 1), at most `backoff_max`.
fn backoff(config: &WebhookConfig, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    config.backoff_base.saturating_mul(factor).min(config.backoff_max)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut err = e;
    while let Some(next) = err.source() {
        err = next;
    }
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = WebhookConfig {
            retry_period: Duration::from_secs(3600),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(100),
            concurrency: 4,
            allow_ips: vec![],
            secret: vec![1],
        };
        let waits: Vec<u64> = (1..=8).map(|n| backoff(&config, n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&config, 200).as_secs(), 60);
    }
}
