//! The sandbox's fixture file: companies, keys, ports, Oracle metros, lifecycle, faults and
//! search; and the run-time behaviour switches (shapes, lag, delays) that the command line and
//! the admin API set.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The built-in fixture, shared with `deploy/sandbox/sandbox.yaml` so the example stays true.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../../deploy/sandbox/sandbox.yaml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    #[serde(default)]
    pub faults: FaultConfig,
    #[serde(default)]
    pub search: SearchConfig,
    pub companies: Vec<CompanyConfig>,
    #[serde(default)]
    pub oracle_metros: Vec<MetroConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LifecycleConfig {
    #[serde(with = "duration_text")]
    pub creating_delay: Duration,
    #[serde(with = "duration_text")]
    pub approval_delay: Duration,
    pub manual_approval: bool,
    #[serde(with = "duration_text")]
    pub deleting_delay: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            creating_delay: Duration::from_secs(2),
            approval_delay: Duration::from_secs(5),
            manual_approval: false,
            deleting_delay: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultConfig {
    #[serde(with = "duration_text")]
    pub latency: Duration,
    pub error_rate: f64,
    pub throttle_rate: f64,
    pub retry_after_seconds: Option<u64>,
    pub lost_create_rate: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency: Duration::ZERO,
            error_rate: 0.0,
            throttle_rate: 0.0,
            retry_after_seconds: Some(1),
            lost_create_rate: 0.0,
        }
    }
}

/// The paged connection search.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SearchConfig {
    /// A larger `count` is served as this many (our assumption; the spec documents no maximum).
    pub max_count: u32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig { max_count: 50 }
    }
}

/// How `GET .../connections/{id}` answers for a DELETED connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeletedReads {
    /// 404 Not Found.
    #[default]
    #[value(name = "404")]
    NotFound,
    /// 200 with `"status": "DELETED", "deleted": true, "deletedAt": ...`.
    Show,
}

impl DeletedReads {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletedReads::NotFound => "404",
            DeletedReads::Show => "show",
        }
    }

    pub fn parse(text: &str) -> Option<DeletedReads> {
        match text {
            "404" => Some(DeletedReads::NotFound),
            "show" => Some(DeletedReads::Show),
            _ => None,
        }
    }
}

/// Which of the three documented error bodies `/api` errors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ErrorShape {
    /// `{"error": {"statusCode": N, "name": "...", "message": "..."}}`
    #[default]
    Nested,
    /// `{"statusCode": N, "name": "...", "message": "..."}`
    Flat,
    /// `{"message": "...", "status": N, "statusCode": N}`
    Message,
}

impl ErrorShape {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorShape::Nested => "nested",
            ErrorShape::Flat => "flat",
            ErrorShape::Message => "message",
        }
    }

    pub fn parse(text: &str) -> Option<ErrorShape> {
        match text {
            "nested" => Some(ErrorShape::Nested),
            "flat" => Some(ErrorShape::Flat),
            "message" => Some(ErrorShape::Message),
            _ => None,
        }
    }
}

/// How connections (and metros) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConnectionShape {
    /// The customer's reference: `srcPortId`, `destMetroId`, `destCompany: "oracle"`, ...
    #[default]
    Reference,
    /// Like the published spec's example: `port: [{"id"}, {"companyId"}]`, `destMetro: [{"id"}]`,
    /// `destCompany: [{"id"}]`, `vlan` as an array, `request` while PENDING.
    Spec,
}

impl ConnectionShape {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionShape::Reference => "reference",
            ConnectionShape::Spec => "spec",
        }
    }

    pub fn parse(text: &str) -> Option<ConnectionShape> {
        match text {
            "reference" => Some(ConnectionShape::Reference),
            "spec" => Some(ConnectionShape::Spec),
            _ => None,
        }
    }
}

/// Switches set on the command line or through `/_sandbox/behaviour`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// New connections are left out of searches and lists until this long after creation.
    pub list_lag: Duration,
    /// A successful create is stored at once but answered this much later.
    pub create_delay: Duration,
    /// A successful change request is stored at once but answered this much later.
    pub change_delay: Duration,
    /// Refuse a create whose name a live connection of the company already has.
    pub refuse_duplicate_names: bool,
    pub deleted_reads: DeletedReads,
    pub error_shape: ErrorShape,
    pub connection_shape: ConnectionShape,
    pub search_max_count: u32,
}

impl Behaviour {
    pub fn new(search: SearchConfig) -> Behaviour {
        Behaviour {
            list_lag: Duration::ZERO,
            create_delay: Duration::ZERO,
            change_delay: Duration::ZERO,
            refuse_duplicate_names: false,
            deleted_reads: DeletedReads::default(),
            error_shape: ErrorShape::default(),
            connection_shape: ConnectionShape::default(),
            search_max_count: search.max_count,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompanyConfig {
    pub username: String,
    pub id: String,
    pub api_keys: Vec<String>,
    /// Keys that may read but not create or delete: those get 401 "Access denied".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_api_keys: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortConfig {
    pub id: String,
    pub name: String,
    pub speed_mbps: u64,
    /// Defaults to `"<speedMbps> Mbps"`.
    #[serde(default)]
    pub speed_name: Option<String>,
    /// Any of the documented port statuses (ACTIVATING, READY, ACTIVE, DISABLING, DISABLED,
    /// DELETING, DELETED, UNKNOWN, ONBOARDING) or another text; only ACTIVE takes orders.
    #[serde(default = "active")]
    pub status: String,
    #[serde(default)]
    pub deleted: bool,
    /// What the port has left before its connections are subtracted; defaults to its speed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_remaining_mbps: Option<u64>,
    pub metro_id: String,
    #[serde(default)]
    pub data_center_facility_id: Option<String>,
    #[serde(default)]
    pub pop_id: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetroConfig {
    pub id: String,
    pub name: String,
    pub code: String,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default = "apnic")]
    pub rir: String,
    #[serde(default)]
    pub region_ids: Vec<String>,
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default = "yes")]
    pub layer2: bool,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub first_data_center_facility_id_in_metro: Option<String>,
}

fn active() -> String {
    "ACTIVE".to_owned()
}

fn apnic() -> String {
    "APNIC".to_owned()
}

fn yes() -> bool {
    true
}

impl Config {
    pub fn parse(yaml: &str) -> Result<Config, String> {
        let config: Config = serde_saphyr::from_str(yaml).map_err(|err| err.to_string())?;
        config.check()?;
        Ok(config)
    }

    pub fn default_fixture() -> Result<Config, String> {
        Config::parse(DEFAULT_CONFIG_YAML).map_err(|err| format!("built-in fixture: {err}"))
    }

    /// Refuses fixtures that would make the API ambiguous.
    fn check(&self) -> Result<(), String> {
        if self.companies.is_empty() {
            return Err("at least one company is needed".into());
        }
        unique(
            self.companies.iter().map(|c| c.username.as_str()),
            "company username",
        )?;
        unique(self.companies.iter().map(|c| c.id.as_str()), "company id")?;
        unique(
            self.companies.iter().flat_map(|c| {
                c.api_keys
                    .iter()
                    .chain(&c.read_only_api_keys)
                    .map(String::as_str)
            }),
            "API key",
        )?;
        unique(
            self.companies
                .iter()
                .flat_map(|c| c.ports.iter().map(|p| p.id.as_str())),
            "port id",
        )?;
        unique(self.oracle_metros.iter().map(|m| m.id.as_str()), "metro id")?;
        for company in &self.companies {
            if company.username == "oracle" {
                return Err("company username 'oracle' is reserved for the destination".into());
            }
            if company
                .api_keys
                .iter()
                .chain(&company.read_only_api_keys)
                .any(|key| key.trim().is_empty())
            {
                return Err(format!(
                    "company '{}' has an empty API key",
                    company.username
                ));
            }
        }
        if self.search.max_count == 0 {
            return Err("search.maxCount must be at least 1".into());
        }
        check_rate("faults.errorRate", self.faults.error_rate)?;
        check_rate("faults.throttleRate", self.faults.throttle_rate)?;
        check_rate("faults.lostCreateRate", self.faults.lost_create_rate)
    }
}

fn unique<'a>(values: impl Iterator<Item = &'a str>, what: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    for value in values {
        if !seen.insert(value) {
            return Err(format!("{what} '{value}' appears more than once"));
        }
    }
    Ok(())
}

pub fn check_rate(what: &str, rate: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(format!("{what} must be between 0 and 1, not {rate}"))
    }
}

/// Parses `0`, `500ms`, `2s`, `1.5s`, `1m`, `1h`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 2s, 500ms or 0"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}'; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("'{text}': {err}"))
}

pub fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number between 0 and 1"))?;
    check_rate("the rate", rate)?;
    Ok(rate)
}

/// Durations in YAML as text (`2s`) or a number of seconds.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = match Raw::deserialize(deserializer)? {
            Raw::Seconds(seconds) => seconds.to_string(),
            Raw::Text(text) => text,
        };
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_fixture_parses() {
        let config = Config::default_fixture().unwrap();
        assert_eq!(config.companies[0].username, "acme");
        assert_eq!(config.companies[0].api_keys, vec!["sandbox-api-key"]);
        assert_eq!(config.lifecycle, LifecycleConfig::default());
        assert_eq!(config.faults, FaultConfig::default());
        assert_eq!(config.search, SearchConfig::default());
        assert_eq!(config.lifecycle.deleting_delay, Duration::from_secs(1));
        assert_eq!(
            config.companies[0].read_only_api_keys,
            vec!["sandbox-readonly-key"]
        );
        assert!(config.oracle_metros.iter().any(|m| m.code == "HKG"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0.25").unwrap(), 0.25);
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("lots").is_err());
    }

    #[test]
    fn switch_names_round_trip() {
        for value in [DeletedReads::NotFound, DeletedReads::Show] {
            assert_eq!(DeletedReads::parse(value.as_str()), Some(value));
        }
        for value in [ErrorShape::Nested, ErrorShape::Flat, ErrorShape::Message] {
            assert_eq!(ErrorShape::parse(value.as_str()), Some(value));
        }
        for value in [ConnectionShape::Reference, ConnectionShape::Spec] {
            assert_eq!(ConnectionShape::parse(value.as_str()), Some(value));
        }
        assert_eq!(ErrorShape::parse("NESTED"), None);
    }

    #[test]
    fn refuses_ambiguous_fixtures() {
        let yaml = "companies:\n  - {username: a, id: '1', apiKeys: [k]}\n  - {username: b, id: '2', apiKeys: [k]}\n";
        assert!(Config::parse(yaml).unwrap_err().contains("API key 'k'"));
        let yaml = "companies:\n  - {username: oracle, id: '1', apiKeys: [k]}\n";
        assert!(Config::parse(yaml).unwrap_err().contains("reserved"));
        let yaml = "companies:\n  - {username: a, id: '1', apiKeys: [k], readOnlyApiKeys: [k]}\n";
        assert!(Config::parse(yaml).unwrap_err().contains("API key 'k'"));
        let yaml = "search: {maxCount: 0}\ncompanies:\n  - {username: a, id: '1', apiKeys: [k]}\n";
        assert!(Config::parse(yaml).unwrap_err().contains("maxCount"));
        let yaml = "companies:\n  - {username: a, id: '1', apiKeys: [k], colour: red}\n";
        assert!(Config::parse(yaml).unwrap_err().contains("colour"));
    }
}
