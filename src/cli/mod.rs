//! The command line: `serve`, `migrate`, `keys`, `accounts` and `generate`. It wires concrete
//! types from the config.

mod accounts;
mod generate;
mod keys;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lumagate", version, about = "A self-hosted gateway for AI video generation")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by every command.
#[derive(clap::Args, Clone)]
pub struct Location {
    /// Data folder (database, blobs, signing secret).
    #[arg(long, env = "LUMAGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML).
    #[arg(long, env = "LUMAGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Shared PostgreSQL store (`postgres://...`) instead of the data folder's SQLite file.
    #[arg(long, env = "LUMAGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Blob storage: `s3://BUCKET?endpoint=...&region=...` instead of the data folder.
    #[arg(long, env = "LUMAGATE_STORAGE")]
    pub storage: Option<String>,
}

/// The store a command works on, and its PostgreSQL face when shared.
pub struct OpenStore {
    pub store: Arc<dyn crate::store::Store>,
    /// Set in the shared (many-replica) mode.
    pub postgres: Option<Arc<crate::store::postgres::PgStore>>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LUMAGATE_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        location: Location,
        /// Log format: text or json.
        #[arg(long, env = "LUMAGATE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Create or upgrade the database schema, then exit (`serve` also does it at start).
    Migrate {
        #[command(flatten)]
        location: Location,
    },
    /// Manage upstream accounts.
    Accounts {
        #[command(subcommand)]
        command: accounts::AccountsCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (what `/openapi.json` serves).
    Openapi,
    /// Make a video through a lumagate server: submit, watch progress, download.
    Generate(generate::GenerateArgs),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        print!("{}", crate::http::openapi_json());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { listen, location, log_format } => runtime.block_on(serve::run(listen, location, &log_format)),
        Command::Migrate { location } => runtime.block_on(migrate(location)),
        Command::Keys { command } => runtime.block_on(keys::run(command)),
        Command::Accounts { command } => runtime.block_on(accounts::run(command)),
        Command::Openapi => unreachable!("answered before the runtime starts"),
        Command::Generate(args) => runtime.block_on(generate::run(args)),
    }
}

impl Location {
    /// The config with this location's overrides applied.
    pub fn config(&self) -> anyhow::Result<crate::config::Config> {
        let mut config = crate::config::Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database_url {
            config.database_url = Some(url.clone());
        }
        if let Some(storage) = &self.storage {
            config.storage = Some(storage.clone());
        }
        config.validate()?;
        Ok(config)
    }

    /// Opens the configured store, applying its migrations: PostgreSQL when a database
    /// URL is set, else the embedded file in the data folder (created if needed).
    pub async fn open_store(config: &crate::config::Config) -> anyhow::Result<OpenStore> {
        if let Some(url) = &config.database_url {
            let store = Arc::new(crate::store::postgres::PgStore::open(url, &pool_limits(config)).await.map_err(|e| {
                anyhow::anyhow!("PostgreSQL at {}: {e}", crate::config::redact(url))
            })?);
            return Ok(OpenStore { store: store.clone(), postgres: Some(store) });
        }
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data folder {}: {e}", config.data_dir.display()))?;
        let store = crate::store::sqlite::SqliteStore::open(&config.data_dir.join("lumagate.db")).await?;
        Ok(OpenStore { store: Arc::new(store), postgres: None })
    }
}

fn pool_limits(config: &crate::config::Config) -> crate::store::postgres::PoolLimits {
    crate::store::postgres::PoolLimits {
        max_connections: config.database_max_connections,
        ..Default::default()
    }
}

/// `lumagate migrate`: brings the schema up to date and says where.
async fn migrate(location: Location) -> anyhow::Result<()> {
    let config = location.config()?;
    match &config.database_url {
        Some(url) => {
            let store = crate::store::postgres::PgStore::connect(url, &pool_limits(&config))
                .await
                .map_err(|e| anyhow::anyhow!("PostgreSQL at {}: {e}", crate::config::redact(url)))?;
            store.migrate().await?;
            println!("PostgreSQL schema is up to date ({})", crate::config::redact(url));
        }
        None => {
            Location::open_store(&config).await?;
            println!("SQLite schema is up to date ({})", config.data_dir.join("lumagate.db").display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
