//! One typed configuration: defaults < config file (TOML) < `LUMAGATE_*` environment
//! < command-line flags. Validated at startup, so a bad value stops the start with a
//! message that names it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::accounts::Account;
use crate::keys::{parse_models, parse_tiers};
use crate::tasks::model::{Model, Tier};
use crate::tasks::WatermarkPolicy;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://...`: the shared PostgreSQL store for many replicas; unset keeps the
    /// embedded SQLite file in the data folder.
    pub database_url: Option<String>,
    /// Most PostgreSQL connections one process opens.
    pub database_max_connections: u32,
    /// `s3://BUCKET?endpoint=...&region=...`: blobs in an S3-compatible bucket; unset
    /// keeps them in the data folder.
    pub storage: Option<String>,
    /// Public origin for links (`https://video.example.com`); unset uses the request's Host.
    pub public_url: Option<String>,
    pub link_ttl_secs: u64,
    pub body_limit_bytes: usize,
    /// Memory that large request bodies (over 1 MiB each) may hold at once.
    pub body_budget_bytes: u64,
    /// Sustained requests per second per API key; 0 turns the limit off.
    pub rate_limit_per_sec: u32,
    /// Requests a key may make at once above the sustained rate.
    pub rate_limit_burst: u32,
    /// Time a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Time a client has to send a request's body.
    pub body_timeout_secs: u64,
    /// Open connections at most; more wait in the listen backlog.
    pub max_connections: usize,
    pub cors_origins: Vec<String>,
    pub relax_queue_limit: u64,
    /// Slots kept free for pro; unset keeps one when the pool has at least two.
    pub pro_reserved_slots: Option<u32>,
    pub lease_ttl_secs: u64,
    pub poll_interval_ms: u64,
    pub progress_timeout_secs: u64,
    pub transient_retries: u32,
    /// The admin API's credential; unset: one is generated at first start and kept in
    /// `admin.token` in the data folder.
    pub admin_token: Option<String>,
    /// Relax videos from upstreams that deliver them clean: `burn` a visible watermark in
    /// with FFmpeg, or leave them as they are (`none`).
    pub watermark: WatermarkPolicy,
    /// Largest upstream video lumagate downloads.
    pub max_video_bytes: u64,
    /// Time limit of one request to an upstream API.
    pub upstream_timeout_secs: u64,
    pub sandbox: SandboxSection,
    pub intake: IntakeSection,
    pub webhooks: WebhookSection,
    pub accounts: Vec<AccountSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSection {
    /// HMAC key of webhook signatures; unset: one made at first start, kept in
    /// `webhook.key` in the data folder.
    pub secret: Option<String>,
    /// A delivery is retried until this long after its state change.
    pub retry_secs: u64,
    /// Wait after the first failed attempt; doubles with each further one.
    pub backoff_ms: u64,
    /// Longest wait between attempts.
    pub backoff_max_secs: u64,
    /// Limit of one attempt.
    pub timeout_secs: u64,
    /// Addresses webhook URLs may reach despite the private-address policy (tests).
    pub allow_ips: Vec<IpAddr>,
}

impl Default for WebhookSection {
    fn default() -> Self {
        WebhookSection { secret: None, retry_secs: 86_400, backoff_ms: 1000, backoff_max_secs: 600, timeout_secs: 10, allow_ips: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSection {
    pub delay_ms: u64,
    /// Concurrency of the default sandbox account.
    pub slots: u32,
    pub fail_rate: f64,
    /// Render at this short side instead of the requested resolution (load tests).
    pub short_side: Option<u32>,
    /// File that gets one line per sandbox submission (tests count dispatches with it).
    pub submissions_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSection {
    pub max_image_bytes: usize,
    pub max_pixels: u64,
    pub max_side: u32,
    pub fetch_timeout_secs: u64,
    /// Addresses that image fetches may reach despite the private-address policy (tests).
    pub allow_fetch_ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSection {
    pub id: String,
    pub provider: String,
    #[serde(default = "one")]
    pub concurrency: u32,
    #[serde(default)]
    pub tiers: Option<Vec<String>>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub credentials: serde_json::Value,
}

/// Id of the sandbox account used when none are configured.
pub const DEFAULT_SANDBOX_ACCOUNT: &str = "sandbox";

fn one() -> u32 {
    1
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 10,
            storage: None,
            public_url: None,
            link_ttl_secs: 3600,
            // Two base64 keyframes at the image limit, plus the rest of the body.
            body_limit_bytes: 30 * 1024 * 1024,
            // Room for two bodies at the limit; each costs two to three times its size while
            // it is parsed and its image decoded.
            body_budget_bytes: 64 * 1024 * 1024,
            // A poller of a few hundred tasks every few seconds stays well inside this.
            rate_limit_per_sec: 200,
            rate_limit_burst: 400,
            header_timeout_secs: 10,
            body_timeout_secs: 60,
            max_connections: 4096,
            cors_origins: vec!["*".into()],
            relax_queue_limit: 10_000,
            pro_reserved_slots: None,
            lease_ttl_secs: 30,
            poll_interval_ms: 1000,
            progress_timeout_secs: 600,
            transient_retries: 5,
            admin_token: None,
            watermark: WatermarkPolicy::Burn,
            max_video_bytes: 512 * 1024 * 1024,
            upstream_timeout_secs: 30,
            sandbox: SandboxSection::default(),
            intake: IntakeSection::default(),
            webhooks: WebhookSection::default(),
            accounts: Vec::new(),
        }
    }
}

impl Default for SandboxSection {
    fn default() -> Self {
        SandboxSection { delay_ms: 3000, slots: 4, fail_rate: 0.0, short_side: None, submissions_log: None }
    }
}

impl Default for IntakeSection {
    fn default() -> Self {
        IntakeSection {
            max_image_bytes: 10 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_side: 8192,
            fetch_timeout_secs: 15,
            allow_fetch_ips: Vec::new(),
        }
    }
}

impl Config {
    /// Reads the file (if any), then the environment; flags are applied by the caller.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn parse<T: FromStr>(name: &str, value: Option<String>, into: &mut T) -> anyhow::Result<()>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                *into = v.parse().map_err(|e| anyhow::anyhow!("{name}={v}: {e}"))?;
            }
            Ok(())
        }
        parse("LUMAGATE_LISTEN", var("LUMAGATE_LISTEN"), &mut self.listen)?;
        parse("LUMAGATE_DATA_DIR", var("LUMAGATE_DATA_DIR"), &mut self.data_dir)?;
        if let Some(url) = var("LUMAGATE_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(url);
        }
        parse("LUMAGATE_DATABASE_MAX_CONNECTIONS", var("LUMAGATE_DATABASE_MAX_CONNECTIONS"), &mut self.database_max_connections)?;
        if let Some(storage) = var("LUMAGATE_STORAGE").filter(|v| !v.is_empty()) {
            self.storage = Some(storage);
        }
        if let Some(url) = var("LUMAGATE_PUBLIC_URL").filter(|v| !v.is_empty()) {
            self.public_url = Some(url);
        }
        parse("LUMAGATE_LINK_TTL_SECS", var("LUMAGATE_LINK_TTL_SECS"), &mut self.link_ttl_secs)?;
        parse("LUMAGATE_BODY_LIMIT_BYTES", var("LUMAGATE_BODY_LIMIT_BYTES"), &mut self.body_limit_bytes)?;
        parse("LUMAGATE_BODY_BUDGET_BYTES", var("LUMAGATE_BODY_BUDGET_BYTES"), &mut self.body_budget_bytes)?;
        parse("LUMAGATE_RATE_LIMIT_PER_SEC", var("LUMAGATE_RATE_LIMIT_PER_SEC"), &mut self.rate_limit_per_sec)?;
        parse("LUMAGATE_RATE_LIMIT_BURST", var("LUMAGATE_RATE_LIMIT_BURST"), &mut self.rate_limit_burst)?;
        parse("LUMAGATE_HEADER_TIMEOUT_SECS", var("LUMAGATE_HEADER_TIMEOUT_SECS"), &mut self.header_timeout_secs)?;
        parse("LUMAGATE_BODY_TIMEOUT_SECS", var("LUMAGATE_BODY_TIMEOUT_SECS"), &mut self.body_timeout_secs)?;
        parse("LUMAGATE_MAX_CONNECTIONS", var("LUMAGATE_MAX_CONNECTIONS"), &mut self.max_connections)?;
        parse("LUMAGATE_RELAX_QUEUE_LIMIT", var("LUMAGATE_RELAX_QUEUE_LIMIT"), &mut self.relax_queue_limit)?;
        if let Some(v) = var("LUMAGATE_PRO_RESERVED_SLOTS").filter(|v| !v.is_empty()) {
            self.pro_reserved_slots = Some(v.parse().map_err(|e| anyhow::anyhow!("LUMAGATE_PRO_RESERVED_SLOTS={v}: {e}"))?);
        }
        parse("LUMAGATE_LEASE_TTL_SECS", var("LUMAGATE_LEASE_TTL_SECS"), &mut self.lease_ttl_secs)?;
        parse("LUMAGATE_POLL_INTERVAL_MS", var("LUMAGATE_POLL_INTERVAL_MS"), &mut self.poll_interval_ms)?;
        parse("LUMAGATE_PROGRESS_TIMEOUT_SECS", var("LUMAGATE_PROGRESS_TIMEOUT_SECS"), &mut self.progress_timeout_secs)?;
        if let Some(token) = var("LUMAGATE_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            self.admin_token = Some(token);
        }
        parse("LUMAGATE_TRANSIENT_RETRIES", var("LUMAGATE_TRANSIENT_RETRIES"), &mut self.transient_retries)?;
        parse("LUMAGATE_WATERMARK", var("LUMAGATE_WATERMARK"), &mut self.watermark)?;
        parse("LUMAGATE_MAX_VIDEO_BYTES", var("LUMAGATE_MAX_VIDEO_BYTES"), &mut self.max_video_bytes)?;
        parse("LUMAGATE_UPSTREAM_TIMEOUT_SECS", var("LUMAGATE_UPSTREAM_TIMEOUT_SECS"), &mut self.upstream_timeout_secs)?;
        parse("LUMAGATE_SANDBOX_DELAY_MS", var("LUMAGATE_SANDBOX_DELAY_MS"), &mut self.sandbox.delay_ms)?;
        parse("LUMAGATE_SANDBOX_SLOTS", var("LUMAGATE_SANDBOX_SLOTS"), &mut self.sandbox.slots)?;
        parse("LUMAGATE_SANDBOX_FAIL_RATE", var("LUMAGATE_SANDBOX_FAIL_RATE"), &mut self.sandbox.fail_rate)?;
        if let Some(v) = var("LUMAGATE_SANDBOX_SHORT_SIDE").filter(|v| !v.is_empty()) {
            self.sandbox.short_side = Some(v.parse().map_err(|e| anyhow::anyhow!("LUMAGATE_SANDBOX_SHORT_SIDE={v}: {e}"))?);
        }
        if let Some(path) = var("LUMAGATE_SANDBOX_SUBMISSIONS_LOG").filter(|v| !v.is_empty()) {
            self.sandbox.submissions_log = Some(PathBuf::from(path));
        }
        parse("LUMAGATE_MAX_IMAGE_BYTES", var("LUMAGATE_MAX_IMAGE_BYTES"), &mut self.intake.max_image_bytes)?;
        if let Some(list) = var("LUMAGATE_ALLOW_FETCH_IPS").filter(|v| !v.is_empty()) {
            self.intake.allow_fetch_ips = ip_list("LUMAGATE_ALLOW_FETCH_IPS", &list)?;
        }
        if let Some(secret) = var("LUMAGATE_WEBHOOK_SECRET").filter(|v| !v.is_empty()) {
            self.webhooks.secret = Some(secret);
        }
        parse("LUMAGATE_WEBHOOK_RETRY_SECS", var("LUMAGATE_WEBHOOK_RETRY_SECS"), &mut self.webhooks.retry_secs)?;
        parse("LUMAGATE_WEBHOOK_BACKOFF_MS", var("LUMAGATE_WEBHOOK_BACKOFF_MS"), &mut self.webhooks.backoff_ms)?;
        parse("LUMAGATE_WEBHOOK_BACKOFF_MAX_SECS", var("LUMAGATE_WEBHOOK_BACKOFF_MAX_SECS"), &mut self.webhooks.backoff_max_secs)?;
        parse("LUMAGATE_WEBHOOK_TIMEOUT_SECS", var("LUMAGATE_WEBHOOK_TIMEOUT_SECS"), &mut self.webhooks.timeout_secs)?;
        if let Some(list) = var("LUMAGATE_ALLOW_WEBHOOK_IPS").filter(|v| !v.is_empty()) {
            self.webhooks.allow_ips = ip_list("LUMAGATE_ALLOW_WEBHOOK_IPS", &list)?;
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.webhooks.backoff_ms == 0 || self.webhooks.timeout_secs == 0 {
            bail!("webhooks backoff_ms and timeout_secs must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.sandbox.fail_rate) {
            bail!("sandbox fail_rate must be between 0 and 1, got {}", self.sandbox.fail_rate);
        }
        if self.header_timeout_secs == 0 || self.body_timeout_secs == 0 {
            bail!("header_timeout_secs and body_timeout_secs must be at least 1");
        }
        if self.max_connections == 0 {
            bail!("max_connections must be at least 1");
        }
        if self.sandbox.short_side.is_some_and(|s| !(16..=2160).contains(&s)) {
            bail!("sandbox short_side must be between 16 and 2160");
        }
        if self.lease_ttl_secs < 3 {
            bail!("lease_ttl_secs must be at least 3");
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                bail!("public_url must be an http(s) origin without a trailing slash, got `{url}`");
            }
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bail!("database_url must be a postgres:// URL, got `{}`", redact(url));
            }
        }
        if self.database_max_connections < 2 {
            bail!("database_max_connections must be at least 2 (one is held for LISTEN)");
        }
        if let Some(storage) = &self.storage {
            crate::blobs::S3Location::parse(storage).map_err(|e| anyhow::anyhow!(e))?;
        }
        self.accounts()?;
        Ok(())
    }

    /// The configured accounts, or one sandbox account when none are configured.
    pub fn accounts(&self) -> anyhow::Result<Vec<Account>> {
        if self.accounts.is_empty() {
            return Ok(vec![Account::new(DEFAULT_SANDBOX_ACCOUNT, crate::providers::sandbox::PROVIDER, self.sandbox.slots.max(1))]);
        }
        self.accounts
            .iter()
            .map(|a| {
                let tiers = match &a.tiers {
                    Some(t) => parse_tiers(&t.join(",")).map_err(|e| anyhow::anyhow!("account {}: {e}", a.id))?,
                    None => Tier::ALL.to_vec(),
                };
                let models = match &a.models {
                    Some(m) => parse_models(&m.join(",")).map_err(|e| anyhow::anyhow!("account {}: {e}", a.id))?,
                    None => crate::providers::models_of(&a.provider).unwrap_or(Model::ALL).to_vec(),
                };
                if a.concurrency == 0 {
                    bail!("account {}: concurrency must be at least 1", a.id);
                }
                let account = Account {
                    id: a.id.clone(),
                    provider: a.provider.clone(),
                    concurrency: a.concurrency,
                    tiers,
                    models,
                    weight: a.weight,
                    enabled: true,
                    disabled_reason: None,
                    cooldown_until: None,
                    credentials: a.credentials.clone(),
                };
                crate::providers::check_account(&account).map_err(anyhow::Error::msg)?;
                Ok(account)
            })
            .collect()
    }
}

fn ip_list(name: &str, list: &str) -> anyhow::Result<Vec<IpAddr>> {
    list.split(',')
        .map(|ip| ip.trim().parse().map_err(|e| anyhow::anyhow!("{name}: `{ip}`: {e}")))
        .collect()
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults_and_bad_values_name_the_variable() {
        let mut c = Config::default();
        c.apply_env(|n| (n == "LUMAGATE_SANDBOX_SLOTS").then(|| "7".to_string())).unwrap();
        assert_eq!(c.sandbox.slots, 7);
        let err = c.apply_env(|n| (n == "LUMAGATE_LISTEN").then(|| "nope".to_string())).unwrap_err();
        assert!(err.to_string().contains("LUMAGATE_LISTEN"));
    }

    #[test]
    fn no_configured_accounts_means_one_sandbox_account_with_all_slots() {
        let mut c = Config::default();
        c.sandbox.slots = 3;
        let accounts = c.accounts().unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].concurrency, 3);
        assert_eq!(accounts[0].provider, "sandbox");
    }

    #[test]
    fn shared_mode_settings_are_read_and_checked() {
        let mut c = Config::default();
        c.apply_env(|n| match n {
            "LUMAGATE_DATABASE_URL" => Some("postgres://u:secret@db/lg".into()),
            "LUMAGATE_STORAGE" => Some("s3://videos?endpoint=http://127.0.0.1:9000".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://u:secret@db/lg"));
        c.validate().unwrap();
        c.database_url = Some("mysql://u:secret@db/lg".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("postgres://") && !err.contains("secret"), "{err}");
        c.database_url = None;
        c.storage = Some("s3://videos?colour=red".into());
        assert!(c.validate().unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn a_config_file_with_accounts_parses() {
        let c: Config = toml::from_str(
            "relax_queue_limit = 5\n[[accounts]]\nid = \"a\"\nprovider = \"sandbox\"\nconcurrency = 2\ntiers = [\"pro\"]\n",
        )
        .unwrap();
        assert_eq!(c.relax_queue_limit, 5);
        assert_eq!(c.accounts().unwrap()[0].tiers, vec![Tier::Pro]);
    }

    #[test]
    fn upstream_accounts_default_to_their_providers_models_and_refuse_others() {
        let c: Config = toml::from_str(
            "[[accounts]]\nid = \"dm\"\nprovider = \"luma-api\"\ncredentials = { api_key = \"k\" }\n[[accounts]]\nid = \"ag\"\nprovider = \"luma-agents\"\n",
        )
        .unwrap();
        let accounts = c.accounts().unwrap();
        assert_eq!(accounts[0].models, vec![Model::RayV1, Model::RayV2]);
        assert_eq!(accounts[1].models, vec![Model::RayV3]);
        let bad: Config = toml::from_str("[[accounts]]\nid = \"dm\"\nprovider = \"luma-api\"\nmodels = [\"ray-v3\"]\n").unwrap();
        assert!(bad.accounts().unwrap_err().to_string().contains("does not serve ray-v3"));
        let unknown: Config = toml::from_str("[[accounts]]\nid = \"x\"\nprovider = \"lumaa\"\n").unwrap();
        assert!(unknown.accounts().unwrap_err().to_string().contains("unknown provider"));
        let mut c = Config::default();
        c.apply_env(|n| (n == "LUMAGATE_WATERMARK").then(|| "none".to_string())).unwrap();
        assert_eq!(c.watermark, WatermarkPolicy::None);
        assert!(c.apply_env(|n| (n == "LUMAGATE_WATERMARK").then(|| "blur".to_string())).unwrap_err().to_string().contains("LUMAGATE_WATERMARK"));
    }
}
