//! Command line and environment configuration of the operator.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use url::Url;

use crate::{
    consoleconnect::{ClientConfig, DEFAULT_BASE_URL},
    controller::{Namespaces, Settings},
    telemetry::LogFormat,
};

/// Orders Oracle FastConnect Layer 2 connections through Console Connect from
/// FastConnectConnection resources.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Config {
    /// Console Connect API base URL.
    #[arg(long, env = "FCO_API_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub api_base_url: Url,

    /// Limit for one Console Connect request.
    #[arg(long, env = "FCO_API_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub api_timeout: Duration,

    /// Limit for connecting to Console Connect.
    #[arg(long, env = "FCO_API_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub api_connect_timeout: Duration,

    /// Poll interval while a connection is on its way (CREATING, PENDING, ...).
    #[arg(long, env = "FCO_POLL_PROGRESS", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_progress: Duration,

    /// Poll interval once a connection is ACTIVE (or has stopped).
    #[arg(long, env = "FCO_POLL_ACTIVE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub poll_active: Duration,

    /// How long the lists of ports and Oracle metros are reused.
    #[arg(long, env = "FCO_CATALOG_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub catalog_ttl: Duration,

    /// First retry delay after an error; doubles per failure.
    #[arg(long, env = "FCO_BACKOFF_MIN", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff_min: Duration,

    /// Longest retry delay.
    #[arg(long, env = "FCO_BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,

    /// Resources reconciled at the same time.
    #[arg(long, env = "FCO_CONCURRENCY", default_value_t = 32)]
    pub concurrency: u16,

    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(long, env = "FCO_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub namespaces: Vec<String>,

    /// Log filter, e.g. `info` or `info,fastconnect_operator=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "FCO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "FCO_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Test failpoint: exit the process right after a create call succeeds, before its status is
    /// written, to prove that a restart orders nothing twice.
    #[arg(long, env = "FCO_FAILPOINT_EXIT_AFTER_CREATE", hide = true)]
    pub failpoint_exit_after_create: bool,
}

impl Config {
    pub fn client(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.api_base_url.clone(),
            connect_timeout: self.api_connect_timeout,
            request_timeout: self.api_timeout,
        }
    }

    pub fn settings(&self) -> Settings {
        Settings {
            poll_progress: self.poll_progress,
            poll_active: self.poll_active,
            catalog_ttl: self.catalog_ttl,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            concurrency: self.concurrency,
            exit_after_create: self.failpoint_exit_after_create,
        }
    }

    pub fn namespaces(&self) -> Namespaces {
        Namespaces(
            self.namespaces
                .iter()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let config = Config::try_parse_from(["fastconnect-operator"]).unwrap();
        assert_eq!(config.poll_active, Duration::from_secs(60));
        assert!(config.namespaces().0.is_empty());
        assert_eq!(config.api_base_url.as_str(), "https://api.consoleconnect.com/");
    }

    #[test]
    fn namespaces_are_split() {
        let config =
            Config::try_parse_from(["x", "--namespaces", "network, team-b"]).unwrap();
        assert_eq!(config.namespaces().0, vec!["network", "team-b"]);
    }
}
