//! The command line: `serve`, `keys`, `accounts` and `generate`. It wires concrete types from the config.

mod accounts;
mod generate;
mod keys;
mod serve;

use std::path::PathBuf;

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
        config.validate()?;
        Ok(config)
    }

    /// Opens the embedded store in the data folder, creating both if needed.
    pub async fn open_store(config: &crate::config::Config) -> anyhow::Result<crate::store::sqlite::SqliteStore> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data folder {}: {e}", config.data_dir.display()))?;
        Ok(crate::store::sqlite::SqliteStore::open(&config.data_dir.join("lumagate.db")).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
