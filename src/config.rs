//! Command line and environment configuration of the operator.

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use clap::Parser;
use url::Url;

use crate::{
    consoleconnect::{ClientConfig, DEFAULT_BASE_URL, DEFAULT_MAX_BODY_BYTES, RateLimit},
    controller::{Namespaces, Settings},
    leader::LeaseConfig,
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

    /// How long a Secret read is reused (all resources naming one Secret share the read).
    #[arg(long, env = "FCO_SECRET_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub secret_ttl: Duration,

    /// First retry delay after an error; doubles per failure.
    #[arg(long, env = "FCO_BACKOFF_MIN", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff_min: Duration,

    /// Longest retry delay.
    #[arg(long, env = "FCO_BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,

    /// How long an order whose answer was lost (timeout, 5xx) is looked for by name before it
    /// is placed again. Must exceed the API timeout plus the time Console Connect takes to list
    /// a new connection; see docs/design.md.
    #[arg(long, env = "FCO_ORDER_SETTLE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub order_settle: Duration,

    /// Connections asked for per page of a Console Connect search.
    #[arg(long, env = "FCO_SEARCH_PAGE_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub search_page_size: u32,

    /// Pages one search may read before it fails loudly instead of returning part of a list.
    #[arg(long, env = "FCO_SEARCH_MAX_PAGES", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub search_max_pages: u32,

    /// Console Connect requests per second per company (a token bucket); 0 turns it off.
    #[arg(long, env = "FCO_API_RATE_LIMIT", default_value_t = 10)]
    pub api_rate_limit: u32,

    /// Requests that may go at once before --api-rate-limit paces them.
    #[arg(long, env = "FCO_API_RATE_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_burst: u32,

    /// Export each Active connection's average traffic as `fastconnect_connection_traffic_mbps`,
    /// read every this often: one Console Connect call per connection per interval. Console
    /// Connect measures per minute, so 1m or more makes sense. Off when unset.
    #[arg(long, env = "FCO_UTILIZATION_INTERVAL", value_parser = utilization_interval)]
    pub utilization_interval: Option<Duration>,

    /// Resources reconciled at the same time.
    #[arg(long, env = "FCO_CONCURRENCY", default_value_t = 32)]
    pub concurrency: u16,

    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(
        long,
        env = "FCO_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
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

    /// Act only while holding a Lease, so that of several replicas one acts at a time.
    #[arg(long, env = "FCO_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "FCO_LEASE_NAME", default_value = "fastconnect-operator")]
    pub lease_name: String,

    /// Namespace of the Lease: the Pod's own (downward API). Required with --leader-election.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long the Lease lasts unrenewed: the longest a crashed leader leaves nobody in charge.
    #[arg(long, env = "FCO_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// This replica's name in the Lease: the Pod name (downward API); hostname-pid when unset.
    #[arg(long, env = "POD_NAME")]
    pub lease_identity: Option<String>,
}

/// Zero would read without pause. Below a minute (Console Connect's finest resolution) reads
/// repeat the same minutes; allowed, as tests need it, but the help says so.
fn utilization_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < Duration::from_secs(1) {
        return Err(format!("{text} is shorter than 1s; use 1m or more"));
    }
    Ok(interval)
}

impl Config {
    pub fn client(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.api_base_url.clone(),
            connect_timeout: self.api_connect_timeout,
            request_timeout: self.api_timeout,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            page_size: self.search_page_size,
            max_pages: self.search_max_pages,
            rate_limit: NonZeroU32::new(self.api_rate_limit).map(|per_second| RateLimit {
                per_second,
                burst: NonZeroU32::new(self.api_rate_burst).unwrap_or(NonZeroU32::MIN),
            }),
        }
    }

    pub fn settings(&self) -> Settings {
        Settings {
            poll_progress: self.poll_progress,
            poll_active: self.poll_active,
            catalog_ttl: self.catalog_ttl,
            order_settle: self.order_settle,
            secret_ttl: self.secret_ttl,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            concurrency: self.concurrency,
            utilization_interval: self.utilization_interval,
        }
    }

    /// The Lease to hold when leader election is on; `None` when it is off. Errs when it is on
    /// but the Lease's namespace is not known.
    pub fn leader_election(&self) -> Result<Option<LeaseConfig>, String> {
        if !self.leader_election {
            return Ok(None);
        }
        let namespace = non_empty(self.lease_namespace.as_deref()).ok_or(
            "--leader-election needs the Lease's namespace: set POD_NAMESPACE (from the downward \
             API's metadata.namespace) or --lease-namespace",
        )?;
        let identity = non_empty(self.lease_identity.as_deref())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
        Ok(Some(
            LeaseConfig::new(namespace, self.lease_name.clone(), identity)
                .with_lease_duration(self.lease_duration),
        ))
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

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The kernel's host name (a Pod's name outside Kubernetes' downward API), for a Lease identity
/// that differs between machines; the pid tells apart processes on one machine.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "fastconnect-operator".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let config = Config::try_parse_from(["fastconnect-operator"]).unwrap();
        assert_eq!(config.poll_active, Duration::from_secs(60));
        assert!(config.namespaces().0.is_empty());
        assert_eq!(
            config.api_base_url.as_str(),
            "https://api.consoleconnect.com/"
        );
    }

    #[test]
    fn namespaces_are_split() {
        let config = Config::try_parse_from(["x", "--namespaces", "network, team-b"]).unwrap();
        assert_eq!(config.namespaces().0, vec!["network", "team-b"]);
    }

    #[test]
    fn leader_election_is_off_by_default() {
        let config = Config::try_parse_from(["x"]).unwrap();
        assert!(!config.leader_election);
        assert_eq!(config.leader_election().unwrap().map(|l| l.name), None);
    }

    #[test]
    fn leader_election_needs_the_lease_namespace() {
        let config =
            Config::try_parse_from(["x", "--leader-election", "--lease-namespace", " "]).unwrap();
        let error = config.leader_election().unwrap_err();
        assert!(error.contains("POD_NAMESPACE"), "{error}");
    }

    #[test]
    fn leader_election_settings_are_passed_on() {
        let config = Config::try_parse_from([
            "x",
            "--leader-election",
            "--lease-namespace",
            "ops",
            "--lease-identity",
            "pod-a",
            "--lease-duration",
            "6s",
        ])
        .unwrap();
        let lease = config.leader_election().unwrap().unwrap();
        assert_eq!(
            (lease.namespace.as_str(), lease.name.as_str()),
            ("ops", "fastconnect-operator")
        );
        assert_eq!(lease.identity, "pod-a");
        assert_eq!(lease.lease_duration, Duration::from_secs(6));
        assert_eq!(lease.renew_every, Duration::from_secs(2));
    }

    #[test]
    fn without_a_pod_name_the_identity_is_host_and_pid() {
        let config =
            Config::try_parse_from(["x", "--leader-election", "--lease-namespace", "ops"]).unwrap();
        let identity = config.leader_election().unwrap().unwrap().identity;
        assert!(
            identity.ends_with(&format!("-{}", std::process::id())),
            "{identity}"
        );
    }
}
