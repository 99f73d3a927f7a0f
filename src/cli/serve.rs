//! `lumagate serve`: builds the engine from the config and runs the HTTP server until
//! SIGTERM or Ctrl-C, then stops taking work and hands leases back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;

use super::Location;
use crate::blobs::signing::LinkSigner;
use crate::blobs::{BlobStore, LocalBlobs, S3Blobs, S3Location};
use crate::config::{Config, DEFAULT_SANDBOX_ACCOUNT};
use crate::http::rate::KeyRateLimit;
use crate::http::server::{self, ServerLimits};
use crate::http::{app, webhook_body, AppState, HttpConfig, Shared};
use crate::keys::{issue, AdminToken};
use crate::media::intake::IntakeLimits;
use crate::accounts::Account;
use crate::media::ffmpeg;
use crate::providers::luma_agents::{self, LumaAgents};
use crate::providers::luma_api::{self, LumaApi};
use crate::providers::sandbox::{Sandbox, SandboxConfig, PROVIDER as SANDBOX};
use crate::providers::upstream::{KeyframeLinks, UpstreamHttp};
use crate::providers::{Providers, VideoProvider};
use crate::store::postgres::PgStore;
use crate::tasks::model::{Model, Tier};
use crate::tasks::{Engine, EngineConfig, ResultPolicy, WatermarkPolicy};
use crate::webhooks::{Render, Report, WebhookConfig, Webhooks};

/// Locks the data folder for this server until it exits (the OS drops the lock with
/// the process, also on `kill -9`); a second server on the same folder is refused.
fn hold_data_folder(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data folder {}", dir.display()))?;
    let path = dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another lumagate server is using the data folder {}; run one server per folder, or share a PostgreSQL database between replicas",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Lease owner of the embedded deployment: one process per data folder, so a restarted
/// process is the same owner and resumes its tasks at once instead of waiting for expiry.
/// Replicas on a shared database each take a fresh, unique owner instead (see [`replica_owner`]).
const EMBEDDED_OWNER: &str = "embedded";

pub async fn run(listen: Option<std::net::SocketAddr>, location: Location, log_format: &str) -> anyhow::Result<()> {
    init_logging(log_format);
    let mut config = location.config()?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    // The embedded store trusts that this process makes every task write (it caches
    // tasks, and its workers own the lease owner name `embedded`): one server per folder,
    // locked before the store is opened.
    let _folder_lock = match config.database_url {
        None => Some(hold_data_folder(&config.data_dir)?),
        Some(_) => None,
    };
    let opened = Location::open_store(&config).await?;
    let store = opened.store.clone();
    // Configured accounts are (re)applied at each start; the default sandbox account only
    // while the pool holds nothing else, so accounts added with `lumagate accounts` stand.
    let others = store.accounts().await?.iter().any(|a| a.id != DEFAULT_SANDBOX_ACCOUNT);
    if !config.accounts.is_empty() || !others {
        for account in config.accounts()? {
            store.upsert_account(&account).await?;
        }
    }
    if store.count_keys().await? == 0 {
        let issued = issue("first", Tier::ALL.to_vec(), Model::ALL.to_vec());
        store.insert_key(&issued.key, &issued.hash).await?;
        println!("No API keys existed, so one was created. It is shown only once:");
        println!("{}", issued.secret);
    }

    let (blobs, local_blobs): (Arc<dyn BlobStore>, Option<Arc<LocalBlobs>>) = match &config.storage {
        Some(spec) => {
            let location = S3Location::parse(spec).map_err(|e| anyhow::anyhow!(e))?;
            (Arc::new(S3Blobs::from_env(&location).map_err(|e| anyhow::anyhow!(e))?), None)
        }
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
            let signer = LinkSigner::new(signing_secret(&config)?);
            let local = Arc::new(LocalBlobs::new(config.data_dir.join("blobs"), signer));
            std::fs::create_dir_all(local.root()).context("creating the blob folder")?;
            (local.clone(), Some(local))
        }
    };
    let links = KeyframeLinks {
        blobs: blobs.clone(),
        public_url: config.public_url.clone(),
        ttl: Duration::from_secs(config.link_ttl_secs),
    };
    let http = UpstreamHttp::new(Duration::from_secs(config.upstream_timeout_secs.max(1)));
    let providers = Providers::default()
        .with(
            SANDBOX,
            Arc::new(Sandbox::new(SandboxConfig {
                delay: Duration::from_millis(config.sandbox.delay_ms),
                fail_rate: config.sandbox.fail_rate,
                short_side: config.sandbox.short_side,
                submissions_log: config.sandbox.submissions_log.clone(),
            })),
        )
        .with(luma_api::PROVIDER, Arc::new(LumaApi::new(http.clone(), links.clone())))
        .with(luma_agents::PROVIDER, Arc::new(LumaAgents::new(http, links)));
    preflight(&config, &store.accounts().await?, &providers).await;
    let outbox: Arc<dyn crate::store::Store> = store.clone();
    let engine = Engine::new(
        store,
        blobs.clone(),
        providers,
        engine_config(&config),
        if opened.postgres.is_some() { replica_owner() } else { EMBEDDED_OWNER.to_string() },
        config.intake.allow_fetch_ips.clone(),
    );
    if let Some(pg) = &opened.postgres {
        listen_for_work(pg, &engine).await?;
    }
    engine.start().await?;
    let counted = engine.clone();
    let report: Report = Arc::new(move |outcome| counted.metrics().webhook_delivery(outcome));
    let webhooks = Webhooks::new(outbox, render_webhook(&config, blobs.clone()), report, webhook_config(&config)?);
    let stop_webhooks = tokio_util::sync::CancellationToken::new();
    webhooks.start(stop_webhooks.clone());

    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState::new(Shared {
        engine: engine.clone(),
        public_url: config.public_url.clone(),
        link_ttl: Duration::from_secs(config.link_ttl_secs),
        body_limit: config.body_limit_bytes,
        body_timeout: Duration::from_secs(config.body_timeout_secs),
        // A body waits for room at most as long as it may take to arrive.
        body_budget: Arc::new(crate::http::body_budget::BodyBudget::new(
            config.body_budget_bytes,
            Duration::from_secs(config.body_timeout_secs),
        )),
        rate_limit: KeyRateLimit::new(config.rate_limit_per_sec, config.rate_limit_burst).map(Arc::new),
        ready: ready.clone(),
        admin: Arc::new(AdminToken::new(&admin_token(&config)?)),
    });
    if let Some(limit) = state.rate_limit.clone() {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                limit.forget_idle();
            }
        });
    }
    let app = app(state, HttpConfig { cors_origins: config.cors_origins.clone(), local_blobs });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        shared = opened.postgres.is_some(),
        owner = %engine.owner(),
        "lumagate listening"
    );
    ready.store(true, Ordering::SeqCst);

    let stopping = ready.clone();
    let limits = ServerLimits {
        header_timeout: Duration::from_secs(config.header_timeout_secs),
        max_connections: config.max_connections,
    };
    server::serve(listener, app, limits, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new work");
        stopping.store(false, Ordering::SeqCst);
    })
    .await;
    engine.shutdown().await;
    stop_webhooks.cancel();
    Ok(())
}

/// Says at start-up what the pool needs and lacks: a public URL for upstreams that fetch
/// keyframes by link, FFmpeg for the watermark policy. Neither stops the start (text-only
/// tasks still work), but each is said plainly, naming the accounts concerned.
async fn preflight(config: &Config, accounts: &[Account], providers: &Providers) {
    let uses = |want: &dyn Fn(&dyn VideoProvider) -> bool| -> Vec<String> {
        accounts
            .iter()
            .filter(|a| a.enabled && providers.get(&a.provider).is_some_and(|p| want(p.as_ref())))
            .map(|a| a.id.clone())
            .collect()
    };
    let need_url = uses(&|p| p.needs_public_url());
    if config.public_url.is_none() && !need_url.is_empty() {
        let msg = format!(
            "accounts {} fetch keyframe images by URL, but no public URL is set: set LUMAGATE_PUBLIC_URL (or public_url) to an origin the upstream can reach, or tasks with images on them will fail",
            need_url.join(", ")
        );
        eprintln!("warning: {msg}");
        tracing::warn!("{msg}");
    }
    let clean = uses(&|p| p.clean_videos());
    if !clean.is_empty() {
        match (config.watermark, ffmpeg::version().await) {
            (WatermarkPolicy::Burn, None) => {
                let msg = format!(
                    "the watermark policy is `burn` and accounts {} deliver clean videos, but `ffmpeg` is not installed: install FFmpeg (with libx264), or set LUMAGATE_WATERMARK=none; until then their relax tasks fail",
                    clean.join(", ")
                );
                eprintln!("warning: {msg}");
                tracing::warn!("{msg}");
            }
            (policy, Some(version)) => tracing::info!(watermark = ?policy, ffmpeg = %version, "upstream result processing ready"),
            (WatermarkPolicy::None, None) => tracing::warn!(
                "ffmpeg is not installed: extensions whose upstream returns only the new segment cannot be joined to their parent"
            ),
        }
    }
}

fn webhook_config(config: &Config) -> anyhow::Result<WebhookConfig> {
    let w = &config.webhooks;
    let secret = match &w.secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => stored_secret(config, "webhook.key")?,
    };
    Ok(WebhookConfig {
        retry_period: Duration::from_secs(w.retry_secs),
        backoff_base: Duration::from_millis(w.backoff_ms),
        backoff_max: Duration::from_secs(w.backoff_max_secs.max(1)),
        timeout: Duration::from_secs(w.timeout_secs),
        poll_interval: Duration::from_millis(w.backoff_ms.clamp(20, 250)),
        concurrency: 16,
        allow_ips: w.allow_ips.clone(),
        secret,
    })
}

/// Webhook bodies carry links like API answers do: from the public URL, or (having no
/// request to take a Host from) the listen address.
fn render_webhook(config: &Config, blobs: Arc<dyn BlobStore>) -> Render {
    let origin = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    let ttl = Duration::from_secs(config.link_ttl_secs);
    Arc::new(move |task| webhook_body(task, blobs.as_ref(), &origin, ttl))
}

/// A lease owner no other replica (nor this one's next life) uses, so that leases are
/// never confused: a replica that dies leaves its leases to lapse and be taken over.
fn replica_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    format!("{host}:{}:{:08x}", std::process::id(), rand::thread_rng().next_u32())
}

/// Wakes the dispatcher whenever any replica announces work on the database. The
/// dispatcher also polls, so a dropped connection only slows dispatch down.
async fn listen_for_work(pg: &PgStore, engine: &Arc<Engine>) -> anyhow::Result<()> {
    let mut listener = pg.work_listener().await?;
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = engine.stopping() => return,
                got = listener.recv() => match got {
                    Ok(_) => engine.wake(),
                    Err(e) => {
                        tracing::warn!(error = %e, "work notifications interrupted; polling meanwhile");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    });
    Ok(())
}

fn engine_config(config: &Config) -> EngineConfig {
    let total_slots: u32 = config.accounts().map(|a| a.iter().map(|a| a.concurrency).sum()).unwrap_or(1);
    let sandbox_tick = Duration::from_millis((config.sandbox.delay_ms / 5).clamp(20, 1000));
    EngineConfig {
        relax_queue_limit: config.relax_queue_limit,
        pro_reserved_slots: config.pro_reserved_slots.unwrap_or(u32::from(total_slots >= 2)),
        lease_ttl: Duration::from_secs(config.lease_ttl_secs),
        poll_interval: Duration::from_millis(config.poll_interval_ms).min(sandbox_tick),
        progress_timeout: Duration::from_secs(config.progress_timeout_secs),
        transient_retries: config.transient_retries,
        default_run_time: Duration::from_millis(config.sandbox.delay_ms.max(1000)),
        intake: IntakeLimits {
            max_bytes: config.intake.max_image_bytes,
            max_pixels: config.intake.max_pixels,
            max_side: config.intake.max_side,
            fetch_timeout: Duration::from_secs(config.intake.fetch_timeout_secs),
            ..IntakeLimits::default()
        },
        results: ResultPolicy {
            max_video_bytes: config.max_video_bytes,
            download_timeout: Duration::from_secs(config.upstream_timeout_secs.max(1) * 10),
            watermark: config.watermark,
        },
        hook_allow_ips: config.webhooks.allow_ips.clone(),
    }
}

/// The HMAC secret for links: created on first start, kept in the data folder.
fn signing_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    stored_secret(config, "signing.key")
}

/// A secret kept in the data folder as hex, made on first use.
fn stored_secret(config: &Config, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = config.data_dir.join(name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()));
    }
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    write_private(&path, hex::encode(&secret).as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

/// The admin API's credential: `LUMAGATE_ADMIN_TOKEN` when set; else the one in
/// `admin.token` in the data folder, created (and printed once) on first start.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        return Ok(token.clone());
    }
    let path = config.data_dir.join("admin.token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_string());
    }
    let token = AdminToken::generate();
    write_private(&path, token.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    println!("The admin token (for /admin and the page's operator view) is kept in {}:", path.display());
    println!("{token}");
    Ok(token)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LUMAGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        // Flattened, so that `task.id` is a top-level field of each JSON line.
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
