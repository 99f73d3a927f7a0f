//! `lumagate keys create|list|revoke`: keys are stored at once, so a running server
//! accepts a new key (and refuses a revoked one) on its next request.

use clap::Subcommand;

use super::Location;
use crate::keys::{issue, parse_models, parse_tiers};
use crate::tasks::model::{Model, Tier};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; the key itself is the last line of standard output.
    Create {
        #[arg(long)]
        name: String,
        /// Tiers the key may use.
        #[arg(long, default_value = "relax,pro")]
        tiers: String,
        /// Models the key may use (default: all).
        #[arg(long)]
        models: Option<String>,
        /// Tier of tasks the key creates on /dream-machine/v1 (default: its best tier).
        #[arg(long)]
        dm_tier: Option<String>,
        #[command(flatten)]
        location: Location,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        location: Location,
    },
    /// Revoke a key by its id.
    Revoke {
        id: String,
        #[command(flatten)]
        location: Location,
    },
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { name, tiers, models, dm_tier, location } => {
            let tiers = parse_tiers(&tiers).map_err(anyhow::Error::msg)?;
            let dm_tier = match dm_tier {
                Some(t) => match Tier::parse(&t) {
                    Some(t) if tiers.contains(&t) => Some(t),
                    Some(t) => anyhow::bail!("--dm-tier {} is not one of the key's tiers", t.as_str()),
                    None => anyhow::bail!("unknown tier `{t}`; allowed: relax, pro"),
                },
                None => None,
            };
            let models = match models {
                Some(m) => parse_models(&m).map_err(anyhow::Error::msg)?,
                None => Model::ALL.to_vec(),
            };
            let store = Location::open_store(&location.config()?).await?.store;
            let mut issued = issue(&name, tiers, models);
            issued.key.dm_tier = dm_tier;
            store.insert_key(&issued.key, &issued.hash).await?;
            println!("created key {} ({}); it is shown only once:", issued.key.id, issued.key.name);
            println!("{}", issued.secret);
        }
        KeysCommand::List { location } => {
            let store = Location::open_store(&location.config()?).await?.store;
            println!("{:<14} {:<20} {:<10} {:<24} status", "id", "name", "tiers", "created");
            for k in store.list_keys().await? {
                let tiers = k.tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",");
                let status = if k.revoked_at.is_some() { "revoked" } else { "active" };
                let created = crate::http::wire::rfc3339_micros(k.created_at);
                println!("{:<14} {:<20} {:<10} {:<24} {status}", k.id, k.name, tiers, &created[..19]);
            }
        }
        KeysCommand::Revoke { id, location } => {
            let store = Location::open_store(&location.config()?).await?.store;
            if !store.revoke_key(&id).await? {
                anyhow::bail!("no active key with id {id}");
            }
            println!("revoked key {id}");
        }
    }
    Ok(())
}
