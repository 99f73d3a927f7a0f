//! `lumagate accounts add|list|disable|enable`: the upstream pool. Changes are stored at
//! once; a running server picks them up on its next dispatch pass.

use clap::Subcommand;

use super::Location;
use crate::accounts::Account;
use crate::keys::{parse_models, parse_tiers};

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Add an account (or replace the configuration of one with the same id).
    Add {
        /// Account id, also its name in logs and the operator view.
        id: String,
        /// Provider adapter: sandbox, luma-api (Dream Machine: ray-v1, ray-v2) or luma-agents (ray-v3).
        #[arg(long)]
        provider: String,
        /// Tasks the account may run at once.
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
        #[arg(long, default_value = "relax,pro")]
        tiers: String,
        /// Models it serves; defaults to every model its provider has.
        #[arg(long)]
        models: Option<String>,
        /// Relative share when several accounts are equally free.
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// Provider credentials and settings as JSON: `{"api_key":"..."}`, plus an optional
        /// `"base_url"` that overrides the upstream's address (a proxy, or a test fake).
        #[arg(long, default_value = "{}")]
        credentials: String,
        #[command(flatten)]
        location: Location,
    },
    /// List accounts with their health (never their credentials).
    List {
        #[command(flatten)]
        location: Location,
    },
    /// Take an account out of the pool.
    Disable {
        id: String,
        #[arg(long, default_value = "disabled by an operator")]
        reason: String,
        #[command(flatten)]
        location: Location,
    },
    /// Put a disabled account back into the pool.
    Enable {
        id: String,
        #[command(flatten)]
        location: Location,
    },
}

pub async fn run(command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Add { id, provider, concurrency, tiers, models, weight, credentials, location } => {
            anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
            let credentials = serde_json::from_str(&credentials).map_err(|e| anyhow::anyhow!("--credentials is not JSON: {e}"))?;
            let models = match models {
                Some(m) => parse_models(&m).map_err(anyhow::Error::msg)?,
                None => crate::providers::models_of(&provider).unwrap_or(crate::tasks::model::Model::ALL).to_vec(),
            };
            let account = Account {
                id: id.clone(),
                provider,
                concurrency,
                tiers: parse_tiers(&tiers).map_err(anyhow::Error::msg)?,
                models,
                weight,
                enabled: true,
                disabled_reason: None,
                cooldown_until: None,
                credentials,
            };
            crate::providers::check_account(&account).map_err(anyhow::Error::msg)?;
            let store = Location::open_store(&location.config()?).await?.store;
            store.upsert_account(&account).await?;
            println!("account {id} saved");
        }
        AccountsCommand::List { location } => {
            let store = Location::open_store(&location.config()?).await?.store;
            let now = crate::tasks::model::now_micros();
            println!("{:<20} {:<12} {:>5} {:<10} {:<9} status", "id", "provider", "slots", "tiers", "weight");
            for a in store.accounts().await? {
                let tiers = a.tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",");
                let status = match (&a.enabled, a.cooldown_until) {
                    (false, _) => format!("disabled: {}", a.disabled_reason.as_deref().unwrap_or("")),
                    (true, Some(until)) if until > now => format!("cooling down for {} s", (until - now) / 1_000_000),
                    (true, _) => "ready".to_string(),
                };
                println!("{:<20} {:<12} {:>5} {:<10} {:<9} {status}", a.id, a.provider, a.concurrency, tiers, a.weight);
            }
        }
        AccountsCommand::Disable { id, reason, location } => {
            let store = Location::open_store(&location.config()?).await?.store;
            anyhow::ensure!(store.set_enabled(&id, false, Some(&reason)).await?, "no account with id {id}");
            println!("account {id} disabled");
        }
        AccountsCommand::Enable { id, location } => {
            let store = Location::open_store(&location.config()?).await?.store;
            anyhow::ensure!(store.set_enabled(&id, true, None).await?, "no account with id {id}");
            println!("account {id} enabled");
        }
    }
    Ok(())
}
