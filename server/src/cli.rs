//! The command line of the `aisle` binary: flags, environment and the optional TOML file
//! become one [`ServerConfig`]; then the server runs on a tokio runtime.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aisle_engine::wal::Durability;
use clap::{Parser, Subcommand};

use crate::config::{ConfigError, FileConfig, LogFormat, ServerConfig};

#[derive(Debug, Parser)]
#[command(name = "aisle", version, about = "One inventory truth: the aisle server.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "AISLE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the write-ahead log, snapshots and tokens.
    #[arg(long, env = "AISLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// When a write counts as durable: fsync (default), async or none (tests only).
    #[arg(long, env = "AISLE_DURABILITY")]
    pub durability: Option<String>,
    /// A TOML file with the same settings; flags and environment override it.
    #[arg(long, env = "AISLE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Connections served at once; one more is answered 503 with Retry-After and closed.
    #[arg(long, env = "AISLE_CONNECTIONS_MAX")]
    pub connections_max: Option<usize>,
    /// Requests per second each channel, POS and ops token may send; past its budget a token
    /// gets 429 with Retry-After. 0: unlimited (default 10000).
    #[arg(long, env = "AISLE_TOKEN_RATE_PER_SECOND")]
    pub token_rate_per_second: Option<u32>,
    /// Requests per second each admin token may send. 0: unlimited (the default).
    #[arg(long, env = "AISLE_ADMIN_TOKEN_RATE_PER_SECOND")]
    pub admin_token_rate_per_second: Option<u32>,
    /// Requests a token may send at once before its rate applies (default 20000).
    #[arg(long, env = "AISLE_TOKEN_BURST")]
    pub token_burst: Option<u32>,
    /// Seconds passed write-ahead log segments are kept (default 7 days).
    #[arg(long, env = "AISLE_LOG_RETENTION_SECONDS")]
    pub log_retention_seconds: Option<u64>,
    /// Bytes of write-ahead log kept at most; the oldest passed segments go first (default 4 GiB).
    #[arg(long, env = "AISLE_LOG_RETENTION_BYTES")]
    pub log_retention_bytes: Option<u64>,
    /// How log lines are written to stderr: text (default; coloured only on a terminal) or
    /// json (one object per line).
    #[arg(long, env = "AISLE_LOG_FORMAT", value_name = "text|json")]
    pub log_format: Option<LogFormat>,
    /// An admin token secret to accept instead of creating `<data-dir>/admin.token`.
    #[arg(long = "admin-token-from-env-only", env = "AISLE_ADMIN_TOKEN", hide = true, hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl ServeArgs {
    /// Merges file, environment and flags (in rising precedence) into a validated config.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let listen = self.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("data"));
        let mut config = ServerConfig::new(listen, data_dir);
        if let Some(text) = self.durability.or(file.durability) {
            config.durability = text.parse::<Durability>().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if let Some(n) = self.connections_max.or(file.connections_max) {
            config.connections_max = n;
        }
        if let Some(rate) = self.token_rate_per_second.or(file.token_rate_per_second) {
            config.token_rate_per_second = rate;
        }
        if let Some(rate) = self.admin_token_rate_per_second.or(file.admin_token_rate_per_second) {
            config.admin_token_rate_per_second = rate;
        }
        if let Some(burst) = self.token_burst.or(file.token_burst) {
            config.token_burst = burst;
        }
        if let Some(n) = file.body_bytes_max {
            config.body_bytes_max = n;
        }
        if let Some(seconds) = file.shutdown_grace_seconds {
            config.shutdown_grace = Duration::from_secs(seconds);
        }
        if let Some(seconds) = self.log_retention_seconds.or(file.log_retention_seconds) {
            config.log_retention = Duration::from_secs(seconds);
        }
        if let Some(bytes) = self.log_retention_bytes.or(file.log_retention_bytes) {
            config.log_retention_bytes = bytes;
        }
        if let Some(format) = self.log_format.or(file.log_format) {
            config.log_format = format;
        }
        config.admin_token = self.admin_token.filter(|t| !t.is_empty());
        config.validate()?;
        Ok(config)
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    // The format can come from the config file, so logging starts after reading it; a config
    // that cannot be read is reported in the format the flag or environment asked for.
    let asked = args.log_format.unwrap_or_default();
    let config = args.into_config();
    init_logging(config.as_ref().map_or(asked, |config| config.log_format));
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::run(config, crate::server::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `AISLE_LOG` (default `info`). Text is coloured only when
/// stderr is a terminal (and `NO_COLOR` is unset), so files and pipes get no escape codes.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AISLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_from_flag_or_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let json_file = dir.path().join("json.toml");
        std::fs::write(&json_file, "log_format = \"json\"\n").expect("write");
        let json_file = json_file.to_str().expect("utf-8 path");
        let cases: [(&[&str], LogFormat); 4] = [
            (&[], LogFormat::Text),
            (&["--log-format", "json"], LogFormat::Json),
            (&["--config", json_file], LogFormat::Json),
            (&["--config", json_file, "--log-format", "text"], LogFormat::Text),
        ];
        for (args, expected) in cases {
            let cli = Cli::try_parse_from(["aisle", "serve"].iter().chain(args)).expect("parses");
            let Command::Serve(serve) = cli.command;
            assert_eq!(serve.into_config().expect("valid").log_format, expected, "{args:?}");
        }
        assert!(Cli::try_parse_from(["aisle", "serve", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn budgets_from_flags_or_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("budgets.toml");
        std::fs::write(&file, "token_rate_per_second = 50\ntoken_burst = 5\nadmin_token_rate_per_second = 900\n")
            .expect("write");
        let file = file.to_str().expect("utf-8 path");
        // (args, (token rate, admin rate, burst))
        type Case<'a> = (&'a [&'a str], (u32, u32, u32));
        let cases: [Case; 4] = [
            (&[], (10_000, 0, 20_000)),
            (&["--config", file], (50, 900, 5)),
            (&["--config", file, "--token-rate-per-second", "0", "--token-burst", "7"], (0, 900, 7)),
            (&["--admin-token-rate-per-second", "3"], (10_000, 3, 20_000)),
        ];
        for (args, (rate, admin, burst)) in cases {
            let cli = Cli::try_parse_from(["aisle", "serve"].iter().chain(args)).expect("parses");
            let Command::Serve(serve) = cli.command;
            let config = serve.into_config().expect("valid");
            assert_eq!(
                (config.token_rate_per_second, config.admin_token_rate_per_second, config.token_burst),
                (rate, admin, burst),
                "{args:?}"
            );
        }
        let cli = Cli::try_parse_from(["aisle", "serve", "--token-burst", "0"]).expect("parses");
        let Command::Serve(serve) = cli.command;
        assert!(serve.into_config().is_err(), "a burst of 0 would refuse everything");
    }
}
