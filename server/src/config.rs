//! [`ServerConfig`]: everything the server is started with, and its validation.
//!
//! The binary fills it from flags, environment and an optional TOML file (see `cli`); the
//! library receives it explicitly and never reads the environment itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use aisle_engine::wal::Durability;
use serde::Deserialize;

/// Largest request body accepted by default (SPEC §4: over 1 MiB gets 413).
pub const BODY_BYTES_MAX_DEFAULT: usize = 1 << 20;
/// Open connections served at once by default; a connection past them is answered 503
/// (`server.rs`).
pub const CONNECTIONS_MAX_DEFAULT: usize = 4096;
/// Requests per second a channel, POS or ops token may send by default (SPEC §5: "default
/// generous"): about a fifth of what this server answers on two cores (BENCHMARKS.md), far
/// above what one shop's checkout or one store's tills send, low enough that one runaway
/// client cannot take the whole server.
pub const TOKEN_RATE_PER_SECOND_DEFAULT: u32 = 10_000;
/// Requests a token may send at once on top of its rate by default (two seconds' worth).
pub const TOKEN_BURST_DEFAULT: u32 = 20_000;
/// Admin tokens are unlimited by default (0): they run set-ups, imports and load tests, and
/// whoever holds one can change this setting anyway.
pub const ADMIN_TOKEN_RATE_PER_SECOND_DEFAULT: u32 = 0;
pub const TOKEN_RATE_PER_SECOND_LIMIT: u32 = 1_000_000;
pub const TOKEN_BURST_LIMIT: u32 = 10_000_000;
/// How long shutdown waits for in-flight requests by default.
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(10);
/// Upper bounds of what a configuration may ask for.
pub const CONNECTIONS_MAX_LIMIT: usize = 1_000_000;
pub const BODY_BYTES_MAX_LIMIT: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub connections_max: usize,
    pub body_bytes_max: usize,
    pub shutdown_grace: Duration,
    /// Log segments every consumer has passed are kept this long (SPEC `log_retention`).
    pub log_retention: Duration,
    /// ... and deleted oldest first while the log is larger than this.
    pub log_retention_bytes: u64,
    /// Requests per second of each channel, POS and ops token (0: unlimited).
    pub token_rate_per_second: u32,
    /// Requests per second of each admin token (0: unlimited).
    pub admin_token_rate_per_second: u32,
    /// Requests a token may send at once before its rate applies (every budgeted token).
    pub token_burst: u32,
    /// The `AISLE_ADMIN_TOKEN` secret, when set: an admin token that replaces the bootstrap file.
    pub admin_token: Option<String>,
    /// How the binary writes its log lines (to stderr).
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured only when they go to a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, message and the event's fields),
    /// for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ConfigError::Invalid(format!("log format must be text or json, not {text:?}"))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            listen,
            data_dir,
            durability: Durability::Fsync,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
            log_retention: aisle_engine::engine::LOG_RETENTION_DEFAULT,
            log_retention_bytes: aisle_engine::engine::LOG_RETENTION_BYTES_DEFAULT,
            token_rate_per_second: TOKEN_RATE_PER_SECOND_DEFAULT,
            admin_token_rate_per_second: ADMIN_TOKEN_RATE_PER_SECOND_DEFAULT,
            token_burst: TOKEN_BURST_DEFAULT,
            admin_token: None,
            log_format: LogFormat::Text,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !(1..=CONNECTIONS_MAX_LIMIT).contains(&self.connections_max) {
            return invalid(format!("connections_max must be 1 to {CONNECTIONS_MAX_LIMIT}"));
        }
        if !(1024..=BODY_BYTES_MAX_LIMIT).contains(&self.body_bytes_max) {
            return invalid(format!("body_bytes_max must be 1024 to {BODY_BYTES_MAX_LIMIT}"));
        }
        for (name, rate) in [
            ("token_rate_per_second", self.token_rate_per_second),
            ("admin_token_rate_per_second", self.admin_token_rate_per_second),
        ] {
            if rate > TOKEN_RATE_PER_SECOND_LIMIT {
                return invalid(format!("{name} must be 0 (unlimited) to {TOKEN_RATE_PER_SECOND_LIMIT}"));
            }
        }
        if !(1..=TOKEN_BURST_LIMIT).contains(&self.token_burst) {
            return invalid(format!("token_burst must be 1 to {TOKEN_BURST_LIMIT}"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir must not be empty".into());
        }
        if let Some(token) = &self.admin_token {
            // Short secrets can be guessed; 16 characters is the least we accept.
            if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return invalid("AISLE_ADMIN_TOKEN must be at least 16 characters without spaces".into());
            }
        }
        Ok(())
    }
}

/// The optional TOML file; flags and environment override what it says.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub durability: Option<String>,
    pub connections_max: Option<usize>,
    pub body_bytes_max: Option<usize>,
    pub shutdown_grace_seconds: Option<u64>,
    /// Seconds passed log segments are kept (default 7 days).
    pub log_retention_seconds: Option<u64>,
    pub log_retention_bytes: Option<u64>,
    /// Requests per second of each channel, POS and ops token (0: unlimited).
    pub token_rate_per_second: Option<u32>,
    /// Requests per second of each admin token (0: unlimited, the default).
    pub admin_token_rate_per_second: Option<u32>,
    /// Requests a token may send at once before its rate applies.
    pub token_burst: Option<u32>,
    /// `text` (default) or `json`.
    pub log_format: Option<LogFormat>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })?;
        toml::from_str(&text).map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let good = ServerConfig::new(([127, 0, 0, 1], 0).into(), "data".into());
        assert!(good.validate().is_ok());
        let cases: [fn(&mut ServerConfig); 7] = [
            |c| c.token_rate_per_second = TOKEN_RATE_PER_SECOND_LIMIT + 1,
            |c| c.admin_token_rate_per_second = TOKEN_RATE_PER_SECOND_LIMIT + 1,
            |c| c.token_burst = 0,
            |c| c.connections_max = 0,
            |c| c.body_bytes_max = 10,
            |c| c.data_dir = PathBuf::new(),
            |c| c.admin_token = Some("short".into()),
        ];
        for change in cases {
            let mut config = good.clone();
            change(&mut config);
            assert!(config.validate().is_err(), "{config:?}");
        }
        let mut unlimited = good.clone();
        unlimited.token_rate_per_second = 0;
        unlimited.admin_token_rate_per_second = TOKEN_RATE_PER_SECOND_LIMIT;
        assert!(unlimited.validate().is_ok(), "0 is unlimited; the limit itself is allowed");
    }

    #[test]
    fn file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("aisle.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ndurability = \"async\"\n").expect("write");
        let file = FileConfig::load(&path).expect("load");
        assert_eq!(file.listen, Some(([127, 0, 0, 1], 9000).into()));
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").expect("write");
        assert!(FileConfig::load(&path).is_err(), "unknown keys are rejected");
    }

    #[test]
    fn log_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("aisle.toml");
        for (line, expected) in [
            ("", None),
            ("log_format = \"text\"", Some(LogFormat::Text)),
            ("log_format = \"json\"", Some(LogFormat::Json)),
        ] {
            std::fs::write(&path, line).expect("write");
            assert_eq!(FileConfig::load(&path).expect("load").log_format, expected, "{line}");
        }
        std::fs::write(&path, "log_format = \"xml\"\n").expect("write");
        assert!(FileConfig::load(&path).is_err(), "only text and json");
        assert_eq!("json".parse::<LogFormat>().ok(), Some(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>().ok(), Some(LogFormat::Text));
        for wrong in ["", "JSON", "xml"] {
            assert!(wrong.parse::<LogFormat>().is_err(), "{wrong:?}");
        }
    }
}
