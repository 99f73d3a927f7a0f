//! Deterministic scheduler tests: a real SQLite store, a scripted in-process provider
//! whose generations finish only when a test says so, and dispatch passes driven by
//! the test (no background loop, no sleeps that guess).

mod scheduling;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::model::{State, Task, Tier};
use super::request::{parse_generation, RequestKind};
use super::{Engine, EngineConfig};
use crate::accounts::Account;
use crate::blobs::signing::LinkSigner;
use crate::blobs::LocalBlobs;
use crate::keys::{issue, ApiKey};
use crate::media::intake::IntakeLimits;
use crate::providers::{Job, ProviderError, Providers, UpstreamStatus, VideoProvider, VideoSource};
use crate::store::sqlite::SqliteStore;
use crate::store::{AccountStore, KeyStore};
use crate::tasks::model::Model;

/// What the scripted upstream answers to a submission on an account.
#[derive(Clone, Debug)]
pub enum Script {
    Accept,
    RateLimit(Duration),
    AuthFailure,
}

/// An upstream whose generations run until released; it counts submissions per task.
#[derive(Default)]
pub struct ScriptedUpstream {
    scripts: Mutex<HashMap<String, Script>>,
    submissions: Mutex<Vec<(Uuid, String)>>,
    /// The attempt marker of every accepted submission.
    attempts: Mutex<Vec<String>>,
    /// The attempt markers the engine asked to recover a generation by.
    recoveries: Mutex<Vec<String>>,
    released: Mutex<HashSet<Uuid>>,
    progress: Mutex<HashMap<Uuid, u8>>,
}

impl ScriptedUpstream {
    pub fn script(&self, account: &str, script: Script) {
        self.scripts.lock().unwrap().insert(account.into(), script);
    }
    /// What the upstream reports as the task's progress from now on (10 until set).
    pub fn set_progress(&self, task: Uuid, progress: u8) {
        self.progress.lock().unwrap().insert(task, progress);
    }
    pub fn release(&self, task: Uuid) {
        self.released.lock().unwrap().insert(task);
    }
    /// Tasks in the order they were submitted, with their account.
    pub fn submissions(&self) -> Vec<(Uuid, String)> {
        self.submissions.lock().unwrap().clone()
    }
    pub fn submissions_of(&self, task: Uuid) -> usize {
        self.submissions().iter().filter(|(t, _)| *t == task).count()
    }
    pub fn attempts(&self) -> Vec<String> {
        self.attempts.lock().unwrap().clone()
    }
    pub fn recoveries(&self) -> Vec<String> {
        self.recoveries.lock().unwrap().clone()
    }
}

#[async_trait]
impl VideoProvider for ScriptedUpstream {
    async fn submit(&self, account: &Account, job: &Job, attempt: &str) -> Result<String, ProviderError> {
        let script = self.scripts.lock().unwrap().get(&account.id).cloned().unwrap_or(Script::Accept);
        match script {
            Script::Accept => {
                self.submissions.lock().unwrap().push((job.task_id, account.id.clone()));
                self.attempts.lock().unwrap().push(attempt.to_string());
                Ok(format!("gen-{attempt}"))
            }
            Script::RateLimit(wait) => Err(ProviderError::RateLimited { retry_after: Some(wait) }),
            Script::AuthFailure => Err(ProviderError::AccountAuth("401 invalid api key".into())),
        }
    }

    /// Finds the generation a submission under `attempt` started, as the real upstreams
    /// do by listing theirs.
    async fn recover(&self, _account: &Account, _job: &Job, attempt: &str) -> Option<String> {
        self.recoveries.lock().unwrap().push(attempt.to_string());
        self.attempts.lock().unwrap().iter().any(|a| a == attempt).then(|| format!("gen-{attempt}"))
    }

    async fn poll(&self, _account: &Account, job: &Job, _id: &str) -> Result<UpstreamStatus, ProviderError> {
        if !self.released.lock().unwrap().contains(&job.task_id) {
            let progress = self.progress.lock().unwrap().get(&job.task_id).copied().unwrap_or(10);
            return Ok(UpstreamStatus::Running { progress });
        }
        Ok(UpstreamStatus::Finished(VideoSource::Rendered {
            mp4: b"not really a video".to_vec(),
            thumbnail_jpeg: b"thumb".to_vec(),
            width: 1280,
            height: 720,
            duration_secs: 5.0,
        }))
    }
}

pub struct Harness {
    pub engine: Arc<Engine>,
    pub upstream: Arc<ScriptedUpstream>,
    pub store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

pub fn account(id: &str, concurrency: u32) -> Account {
    Account::new(id, "scripted", concurrency)
}

impl Harness {
    /// An engine over these accounts, with `reserved` slots kept for pro.
    pub async fn new(accounts: &[Account], reserved: u32, relax_limit: u64) -> Harness {
        Harness::with_progress_timeout(accounts, reserved, relax_limit, Duration::from_secs(60)).await
    }

    /// As `new`, failing running tasks that show no progress for `progress_timeout`.
    pub async fn with_progress_timeout(accounts: &[Account], reserved: u32, relax_limit: u64, progress_timeout: Duration) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        for a in accounts {
            store.upsert_account(a).await.unwrap();
        }
        let upstream = Arc::new(ScriptedUpstream::default());
        let blobs = Arc::new(LocalBlobs::new(dir.path().join("blobs"), LinkSigner::new(b"k".to_vec())));
        let engine = engine(&store, &upstream, blobs, reserved, relax_limit, progress_timeout, "test-worker").await;
        Harness { engine, upstream, store, _dir: dir }
    }

    /// A second process on the same store and upstream, with its own lease owner.
    pub async fn another_worker(&self, owner: &str) -> Arc<Engine> {
        let blobs = self.engine.blobs.clone();
        let config = &self.engine.config;
        engine(&self.store, &self.upstream, blobs, config.pro_reserved_slots, 100, config.progress_timeout, owner).await
    }

    pub async fn key(&self, name: &str) -> ApiKey {
        let issued = issue(name, Tier::ALL.to_vec(), Model::ALL.to_vec());
        self.store.insert_key(&issued.key, &issued.hash).await.unwrap();
        issued.key
    }

    pub async fn create(&self, key: &ApiKey, tier: Tier) -> Uuid {
        let req = parse_generation(br#"{"user_prompt":"a test"}"#, RequestKind::Create).unwrap();
        self.engine.create(key, tier, req).await.unwrap().task.id
    }

    pub async fn task(&self, id: Uuid) -> Task {
        use crate::store::TaskStore;
        self.store.task(id).await.unwrap().unwrap()
    }

    /// One dispatch pass that sees the account table as the test just left it, then waits
    /// until every dispatched task's worker has reacted.
    pub async fn dispatch(&self) {
        self.engine.accounts_changed();
        self.engine.dispatch().await.unwrap();
        self.settle().await;
    }

    /// Waits until no local worker is between a claim and its upstream's answer.
    pub async fn settle(&self) {
        for _ in 0..500 {
            let busy = {
                let running = self.engine.running.lock().unwrap().clone();
                let mut busy = false;
                for id in running {
                    let t = self.task(id).await;
                    if t.state == State::Pending && t.account_id.is_some() {
                        busy = true;
                    }
                }
                busy
            };
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("workers did not settle");
    }

    /// Releases a task upstream and waits until it is completed.
    pub async fn finish(&self, id: Uuid) {
        self.upstream.release(id);
        self.until(id, |t| t.state == State::Completed).await;
    }

    pub async fn until(&self, id: Uuid, done: impl Fn(&Task) -> bool) -> Task {
        for _ in 0..2000 {
            let t = self.task(id).await;
            if done(&t) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("task {id} never reached the expected state: {:?}", self.task(id).await);
    }
}

async fn engine(
    store: &Arc<SqliteStore>,
    upstream: &Arc<ScriptedUpstream>,
    blobs: Arc<dyn crate::blobs::BlobStore>,
    reserved: u32,
    relax_limit: u64,
    progress_timeout: Duration,
    owner: &str,
) -> Arc<Engine> {
    let config = EngineConfig {
        relax_queue_limit: relax_limit,
        pro_reserved_slots: reserved,
        lease_ttl: LEASE_TTL,
        poll_interval: Duration::from_millis(5),
        progress_timeout,
        transient_retries: 2,
        default_run_time: Duration::from_secs(10),
        intake: IntakeLimits::default(),
        results: Default::default(),
        hook_allow_ips: Vec::new(),
    };
    let providers = Providers::default().with("scripted", upstream.clone());
    let engine = Engine::new(store.clone(), blobs, providers, config, owner.into(), vec![]);
    engine.refresh_accounts().await.unwrap();
    engine
}

/// Short, so a dead worker's lease lapses quickly; live workers renew it every poll.
pub const LEASE_TTL: Duration = Duration::from_secs(1);
