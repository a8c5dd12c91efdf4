//! The Console Connect sandbox (`consoleconnect-sandbox`) as a child process, for integration
//! tests, with helpers for its `/_sandbox` admin API and constants naming its built-in fixture.
//!
//! ```ignore
//! let sandbox = Sandbox::start(&["--creating-delay", "0", "--approval-delay", "0"]);
//! let client = sandbox.client();
//! let key = ApiKey::new(DEFAULT_KEY);
//! let created = client.create_layer2(&key, DEFAULT_COMPANY, &valid_request("fc-1")).await?;
//! sandbox.activate(&created.id).await;
//! assert_eq!(sandbox.stats().await.count("create_layer2", 200), 1);
//! ```
//!
//! Each `Sandbox` is its own process on a free port, killed when the value is dropped, so tests
//! can run in parallel. `SANDBOX_*` variables of the test environment are not passed on.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastconnect_operator::consoleconnect::{
    self as cc, ApiKey, ClassOfService, Client, ClientConfig, DurationUnit, Layer2Request,
    PaymentType,
};
use serde_json::{Value, json};

// ---- The built-in fixture (deploy/sandbox/sandbox.yaml) ----

/// API key of [`DEFAULT_COMPANY`].
pub const DEFAULT_KEY: &str = "sandbox-api-key";
/// Username of the demo company that owns the ports below.
pub const DEFAULT_COMPANY: &str = "acme";
pub const DEFAULT_COMPANY_ID: &str = "5d4d056242fbd3000ab4c01d";
/// A read-only key of [`DEFAULT_COMPANY`]: reads work, creates and deletes get 401
/// "Access denied" with `accessRequests`.
pub const READONLY_KEY: &str = "sandbox-readonly-key";
/// A second company with its own key: using it on [`DEFAULT_COMPANY`] gives 403.
pub const OTHER_KEY: &str = "globex-api-key";
pub const OTHER_COMPANY: &str = "globex";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixturePort {
    pub id: &'static str,
    pub name: &'static str,
    pub speed_mbps: u32,
}

/// 1000 Mbps, ACTIVE, in [`METRO_SIN`].
pub const PORT_1G: FixturePort = FixturePort {
    id: "66c29b3c6dcad34e5b728c9c",
    name: "My-Port-1",
    speed_mbps: 1000,
};
/// 10000 Mbps, ACTIVE, in [`METRO_SIN`].
pub const PORT_10G: FixturePort = FixturePort {
    id: "66c29b3c6dcad34e5b728c9d",
    name: "My-Port-10G",
    speed_mbps: 10000,
};
/// Status DISABLED (not ACTIVE): creates on it fail.
pub const PORT_INACTIVE: FixturePort = FixturePort {
    id: "66c29b3c6dcad34e5b728c9e",
    name: "Inactive-Port",
    speed_mbps: 1000,
};
/// Deleted: left out of `ports?deleted=false`; creates on it fail.
pub const PORT_DELETED: FixturePort = FixturePort {
    id: "66c29b3c6dcad34e5b728c9f",
    name: "Deleted-Port",
    speed_mbps: 1000,
};
/// Name shared by [`PORT_DUP_A`] and [`PORT_DUP_B`], both ACTIVE in [`METRO_SIN`].
pub const DUP_PORT_NAME: &str = "Dup-Port";
pub const PORT_DUP_A: FixturePort = FixturePort {
    id: "66c29b3c6dcad34e5b728ca0",
    name: DUP_PORT_NAME,
    speed_mbps: 1000,
};
pub const PORT_DUP_B: FixturePort = FixturePort {
    id: "66c29b3c6dcad34e5b728ca1",
    name: DUP_PORT_NAME,
    speed_mbps: 1000,
};
/// The port of [`OTHER_COMPANY`].
pub const OTHER_COMPANY_PORT: FixturePort = FixturePort {
    id: "66c29b3c6dcad34e5b728cb0",
    name: "Globex-Port-1",
    speed_mbps: 1000,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixtureMetro {
    pub id: &'static str,
    pub code: &'static str,
    /// `firstDataCenterFacilityIdInMetro`, the `destDcf` a create must name.
    pub dcf: &'static str,
}

/// Ready, offers layer 2: the usual destination.
pub const METRO_HKG: FixtureMetro = FixtureMetro {
    id: "77d9f1fbbcaa906f3cddb6d1",
    code: "HKG",
    dcf: "5aa89b04ac86ba0012345bdf",
};
/// Ready, layer 2, but the metro of every fixture port: refused as a destination.
pub const METRO_SIN: FixtureMetro = FixtureMetro {
    id: "5c05d2f6cad910000ae251a1",
    code: "SIN",
    dcf: "5c05d37ecad910000ae25b21",
};
/// Not ready.
pub const METRO_TYO: FixtureMetro = FixtureMetro {
    id: "5c05d2f6cad910000ae251b2",
    code: "TYO",
    dcf: "5c05d37ecad910000ae25c32",
};
/// Ready but without layer 2.
pub const METRO_SYD: FixtureMetro = FixtureMetro {
    id: "5c05d2f6cad910000ae251c3",
    code: "SYD",
    dcf: "5c05d37ecad910000ae25d43",
};
/// Ready, layer 2: a second valid destination.
pub const METRO_LON: FixtureMetro = FixtureMetro {
    id: "5c05d2f6cad910000ae251d4",
    code: "LON",
    dcf: "5c05d37ecad910000ae25e54",
};

/// Arguments that make connections ACTIVE on the first read after creation. Deletion keeps the
/// fixture's delay (1 s of DELETING); see [`INSTANT_WITH_DELETE`].
pub const INSTANT: [&str; 4] = ["--creating-delay", "0", "--approval-delay", "0"];

/// [`INSTANT`], and DELETE makes a connection DELETED at once (no visible DELETING).
pub const INSTANT_WITH_DELETE: [&str; 6] = [
    "--creating-delay",
    "0",
    "--approval-delay",
    "0",
    "--deleting-delay",
    "0",
];

/// `GET` by id (v2 path), the stats label `get_connection`.
pub fn connection_path(company: &str, id: &str) -> String {
    format!("/api/v2/company/{company}/connections/{id}")
}

/// The update call (`POST`, stats label `update_connection`): a lower `speed` and/or a new
/// `name`. The same path as [`connection_path`].
pub fn update_path(company: &str, id: &str) -> String {
    connection_path(company, id)
}

/// A connection's change request: `PUT` `{"speed": N}` (stats label `change_request`) and
/// `DELETE` to withdraw it (`withdraw_change`).
pub fn change_path(company: &str, id: &str) -> String {
    format!("/api/company/{company}/connections/{id}/change")
}

/// The paged search (v2 path), the stats label `search_connections`.
pub fn search_path(company: &str, status: &str, page: u64, count: u64) -> String {
    let status = status.replace(' ', "%20");
    format!("/api/v2/company/{company}/connections?page={page}&count={count}&status={status}")
}

/// A create the sandbox accepts: 100 Mbps from [`PORT_1G`] to Oracle in [`METRO_HKG`].
pub fn valid_request(name: &str) -> Layer2Request {
    Layer2Request {
        name: name.to_owned(),
        port_id: PORT_1G.id.to_owned(),
        dest_port_id: None,
        dest_dcf: Some(METRO_HKG.dcf.to_owned()),
        speed: 100,
        dest_metro_id: METRO_HKG.id.to_owned(),
        dest_company: "oracle".to_owned(),
        payment_type: PaymentType::Invoice,
        duration: 1,
        duration_unit: DurationUnit::M,
        evergreen: None,
        class_of_service: Some(ClassOfService::Gold),
        src_vlan_request: None,
        dest_vlan_request: None,
        discount_code: None,
    }
}

/// [`valid_request`] as raw JSON, for requests the typed client cannot express.
pub fn valid_request_json(name: &str) -> Value {
    serde_json::to_value(valid_request(name)).expect("Layer2Request serialises")
}

// ---- The process ----

const START_TIMEOUT: Duration = Duration::from_secs(20);
const KEPT_LOG_LINES: usize = 2000;

/// A running sandbox; the process is killed on drop.
pub struct Sandbox {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    child: Child,
    http: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
    _config: Option<tempfile::NamedTempFile>,
}

impl Sandbox {
    /// Starts the sandbox with the built-in fixture and extra command-line `args`
    /// (e.g. [`INSTANT`], `["--manual-approval"]`).
    pub fn start(args: &[&str]) -> Sandbox {
        Sandbox::spawn("127.0.0.1:0", args, None)
    }

    /// Like [`Sandbox::start`], listening on `address` (e.g. the test node's, for pods).
    pub fn start_on(address: &str, args: &[&str]) -> Sandbox {
        Sandbox::spawn(address, args, None)
    }

    /// Starts the sandbox with a YAML fixture (see deploy/sandbox/sandbox.yaml for the format).
    pub fn start_with_config(yaml: &str) -> Sandbox {
        Sandbox::start_with_config_and_args(yaml, &[])
    }

    pub fn start_with_config_and_args(yaml: &str, args: &[&str]) -> Sandbox {
        let mut file = tempfile::NamedTempFile::new().expect("create a temporary fixture file");
        file.write_all(yaml.as_bytes()).expect("write the fixture");
        file.flush().expect("flush the fixture");
        Sandbox::spawn("127.0.0.1:0", args, Some(file))
    }

    fn spawn(listen: &str, args: &[&str], config: Option<tempfile::NamedTempFile>) -> Sandbox {
        let mut command = Command::new(super::workspace_binary("consoleconnect-sandbox"));
        command.args(["--listen", listen]);
        if let Some(file) = &config {
            command.arg("--config").arg(file.path());
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("SANDBOX_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("start consoleconnect-sandbox");
        let logs = collect_lines(child.stderr.take().expect("piped stderr"));
        let url = read_listening_line(&mut child, &logs);
        cc::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build the admin HTTP client");
        Sandbox {
            url,
            child,
            http,
            logs,
            _config: config,
        }
    }

    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&self.url).expect("sandbox URL parses")
    }

    /// Client settings for this sandbox, with short timeouts.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.base_url(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            rate_limit: None,
            ..ClientConfig::default()
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.client_config()).expect("build the Console Connect client")
    }

    /// What the sandbox has logged so far (its stderr), for failure messages.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    // ---- Admin API ----

    /// Request counts and recorded create bodies.
    pub async fn stats(&self) -> Stats {
        Stats(
            self.admin(reqwest::Method::GET, "/_sandbox/stats", None)
                .await,
        )
    }

    pub async fn reset_stats(&self) {
        self.admin(reqwest::Method::POST, "/_sandbox/reset-stats", None)
            .await;
    }

    /// Forgets all connections and statistics and restores the start-up settings.
    pub async fn reset(&self) {
        self.admin(reqwest::Method::POST, "/_sandbox/reset", None)
            .await;
    }

    /// Every connection, deleted ones included, as the API shows them plus `company` and
    /// `deleted`.
    pub async fn connections(&self) -> Vec<Value> {
        let body = self
            .admin(reqwest::Method::GET, "/_sandbox/connections", None)
            .await;
        body["results"].as_array().cloned().unwrap_or_default()
    }

    /// One connection (also when deleted), or `None` if the sandbox never had it.
    pub async fn connection(&self, id: &str) -> Option<Value> {
        let (status, body) = self
            .request(
                reqwest::Method::GET,
                &format!("/_sandbox/connections/{id}"),
                None,
                None,
            )
            .await;
        (status == 200).then_some(body)
    }

    /// The status the admin view shows, e.g. `"ACTIVE"`; `None` for an unknown id.
    pub async fn status_of(&self, id: &str) -> Option<String> {
        let connection = self.connection(id).await?;
        connection["status"].as_str().map(str::to_owned)
    }

    /// Approves a connection (→ ACTIVE), as Support would once Oracle is done.
    pub async fn activate(&self, id: &str) -> Value {
        self.connection_action(id, "activate", None).await
    }

    /// → DENIED.
    pub async fn deny(&self, id: &str) -> Value {
        self.connection_action(id, "deny", None).await
    }

    /// → ERROR with `errorReason`.
    pub async fn error(&self, id: &str, reason: &str) -> Value {
        let body = json!({ "errorReason": reason });
        self.connection_action(id, "error", Some(body)).await
    }

    /// Any status, including ones the operator does not know.
    pub async fn set_status(&self, id: &str, status: &str) -> Value {
        let body = json!({ "status": status });
        self.connection_action(id, "status", Some(body)).await
    }

    /// Deletes as if done in the web application: DELETED, and gone from the API.
    pub async fn delete_out_of_band(&self, id: &str) -> Value {
        self.connection_action(id, "delete", None).await
    }

    /// Oracle approves the PENDING change request: the requested speed is in force and the
    /// request's status is APPROVED. Panics when nothing is pending (409).
    pub async fn approve_change(&self, id: &str) -> Value {
        self.connection_action(id, "change/approve", None).await
    }

    /// Oracle rejects the PENDING change request: REJECTED, the speed stays. Panics when
    /// nothing is pending (409).
    pub async fn reject_change(&self, id: &str) -> Value {
        self.connection_action(id, "change/reject", None).await
    }

    /// Changes `speed` and/or `name` directly (e.g. `{"speed": 50}`), as someone using the
    /// Console Connect portal would, with no rule checked: for making drift.
    pub async fn edit(&self, id: &str, body: Value) -> Value {
        self.connection_action(id, "edit", Some(body)).await
    }

    /// The traffic connection `id` carries from now on, in Mbps.
    pub async fn set_traffic(&self, id: &str, rx_mbps: f64, tx_mbps: f64) -> Value {
        let body = json!({"rxMbps": rx_mbps, "txMbps": tx_mbps});
        self.connection_action(id, "traffic", Some(body)).await
    }

    /// Replaces all faults; `Faults::default()` switches them off.
    pub async fn set_faults(&self, faults: Faults) -> Value {
        let body = json!({
            "latencyMs": faults.latency.as_millis() as u64,
            "errorRate": faults.error_rate,
            "throttleRate": faults.throttle_rate,
            "retryAfterSeconds": faults.retry_after_seconds,
            "lostCreateRate": faults.lost_create_rate,
        });
        self.admin(reqwest::Method::PUT, "/_sandbox/faults", Some(body))
            .await
    }

    pub async fn clear_faults(&self) {
        self.set_faults(Faults::default()).await;
    }

    /// Applies to connections created afterwards.
    pub async fn set_manual_approval(&self, on: bool) {
        let body = json!({ "manualApproval": on });
        self.admin(reqwest::Method::PUT, "/_sandbox/lifecycle", Some(body))
            .await;
    }

    /// Replaces the lifecycle settings; applies to connections created afterwards.
    pub async fn set_lifecycle(&self, lifecycle: Lifecycle) -> Value {
        let body = json!({
            "creatingDelayMs": lifecycle.creating_delay.as_millis() as u64,
            "approvalDelayMs": lifecycle.approval_delay.as_millis() as u64,
            "deletingDelayMs": lifecycle.deleting_delay.as_millis() as u64,
            "manualApproval": lifecycle.manual_approval,
        });
        self.admin(reqwest::Method::PUT, "/_sandbox/lifecycle", Some(body))
            .await
    }

    /// Replaces every behaviour switch; `Behaviour::default()` restores the defaults.
    pub async fn set_behaviour(&self, behaviour: Behaviour) -> Value {
        self.change_behaviour(behaviour.to_json()).await
    }

    /// Changes only the given fields of `/_sandbox/behaviour` (e.g. `{"listLagMs": 500}`).
    pub async fn change_behaviour(&self, fields: Value) -> Value {
        self.admin(reqwest::Method::PUT, "/_sandbox/behaviour", Some(fields))
            .await
    }

    /// The behaviour switches in force.
    pub async fn behaviour(&self) -> Value {
        self.admin(reqwest::Method::GET, "/_sandbox/behaviour", None)
            .await
    }

    /// Creates `count` connections of `company` in `status`, named `<name_prefix><index>`,
    /// directly (no validation, not counted), on the company's first port at 0 Mbps, dated a day
    /// ago so they sort before later creates. Returns their ids, oldest first.
    pub async fn seed(
        &self,
        company: &str,
        count: usize,
        status: &str,
        name_prefix: &str,
    ) -> Vec<String> {
        self.seed_with(json!({
            "company": company, "count": count, "status": status, "namePrefix": name_prefix,
        }))
        .await
    }

    /// [`Sandbox::seed`] with the full body: `company`, `count`, `status`, `namePrefix`, and
    /// optionally `portId` and `speedMbps`.
    pub async fn seed_with(&self, body: Value) -> Vec<String> {
        let answer = self
            .admin(reqwest::Method::POST, "/_sandbox/seed", Some(body))
            .await;
        answer["ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One page of the paged search with `key`; status and body.
    pub async fn search(
        &self,
        key: &str,
        company: &str,
        status: &str,
        page: u64,
        count: u64,
    ) -> (u16, Value) {
        let path = search_path(company, status, page, count);
        self.request(reqwest::Method::GET, &path, Some(key), None)
            .await
    }

    /// Ids on one page of the search (empty unless it answered 200).
    pub async fn search_ids(
        &self,
        key: &str,
        company: &str,
        status: &str,
        page: u64,
        count: u64,
    ) -> Vec<String> {
        let (status, body) = self.search(key, company, status, page, count).await;
        if status != 200 {
            return Vec::new();
        }
        body["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `GET /api/v2/company/{company}/connections/{id}` with `key`; status and body.
    pub async fn read_connection(&self, key: &str, company: &str, id: &str) -> (u16, Value) {
        let path = connection_path(company, id);
        self.request(reqwest::Method::GET, &path, Some(key), None)
            .await
    }

    async fn connection_action(&self, id: &str, action: &str, body: Option<Value>) -> Value {
        let path = format!("/_sandbox/connections/{id}/{action}");
        self.admin(reqwest::Method::POST, &path, body).await
    }

    /// An admin call that must succeed.
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.request(method.clone(), path, None, body).await;
        assert!(
            (200..300).contains(&status),
            "sandbox admin {method} {path} answered {status}: {value}"
        );
        value
    }

    /// A raw request to the sandbox, e.g. a create body the typed client cannot express.
    /// `key` goes into `Authorization: Bearer`. Returns the status and the JSON body
    /// (`Value::String` if the body is not JSON).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sandbox answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("sandbox body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_listening_line(child: &mut Child, logs: &Arc<Mutex<Vec<String>>>) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = sender.send(line);
        // Keep draining so the sandbox never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
    match line.trim().strip_prefix("listening on ") {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let _ = child.kill();
            let status = child.wait().ok();
            std::thread::sleep(Duration::from_millis(100));
            let logs = logs.lock().map(|l| l.join("\n")).unwrap_or_default();
            panic!(
                "sandbox did not start (exit: {status:?}); first line {line:?}; stderr:\n{logs}"
            );
        }
    }
}

fn collect_lines(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut lines) = sink.lock()
                && lines.len() < KEPT_LOG_LINES
            {
                lines.push(line);
            }
        }
    });
    lines
}

/// Faults of the `/api` endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Added before every answer.
    pub latency: Duration,
    /// Fraction of requests answered 500.
    pub error_rate: f64,
    /// Fraction of requests answered 429.
    pub throttle_rate: f64,
    /// `Retry-After` of 429 answers; `None` sends no header.
    pub retry_after_seconds: Option<u64>,
    /// Fraction of valid creates carried out but answered 502.
    pub lost_create_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            error_rate: 0.0,
            throttle_rate: 0.0,
            retry_after_seconds: Some(1),
            lost_create_rate: 0.0,
        }
    }
}

/// Lifecycle of connections created after it is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub creating_delay: Duration,
    pub approval_delay: Duration,
    pub deleting_delay: Duration,
    pub manual_approval: bool,
}

impl Lifecycle {
    /// The built-in fixture's: CREATING 2 s, PENDING 5 s, DELETING 1 s.
    pub fn fixture() -> Lifecycle {
        Lifecycle {
            creating_delay: Duration::from_secs(2),
            approval_delay: Duration::from_secs(5),
            deleting_delay: Duration::from_secs(1),
            manual_approval: false,
        }
    }

    /// ACTIVE on the first read after creation; deleted at once.
    pub fn instant() -> Lifecycle {
        Lifecycle {
            creating_delay: Duration::ZERO,
            approval_delay: Duration::ZERO,
            deleting_delay: Duration::ZERO,
            manual_approval: false,
        }
    }
}

/// How a read by id answers for a DELETED connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletedReads {
    /// 404 (the default).
    #[default]
    NotFound,
    /// 200 with `"status": "DELETED", "deleted": true, "deletedAt"`.
    Show,
}

/// Body of `/api` errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorShape {
    /// `{"error": {"statusCode", "name", "message"}}` (the default).
    #[default]
    Nested,
    /// `{"statusCode", "name", "message"}`.
    Flat,
    /// `{"message", "status", "statusCode"}`.
    Message,
}

/// How connections and metros are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionShape {
    /// The reference's: `srcPortId`, `destMetroId`, `destCompany: "oracle"` (the default).
    #[default]
    Reference,
    /// The spec example's: `port`, `destMetro`, `destCompany` as arrays, `request` while
    /// PENDING or once a change was requested; metros with `firstDataCenterFacilityId`.
    Spec,
}

/// `/_sandbox/behaviour`: switches that apply at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// New connections are missing from searches and lists for this long.
    pub list_lag: Duration,
    /// Valid creates are stored at once but answered this much later.
    pub create_delay: Duration,
    /// Valid change requests are stored at once but answered this much later.
    pub change_delay: Duration,
    /// Refuse a create whose name a connection that is not DELETED/CANCELLED has.
    pub refuse_duplicate_names: bool,
    pub deleted_reads: DeletedReads,
    pub error_shape: ErrorShape,
    pub connection_shape: ConnectionShape,
    /// A larger search `count` is served as this many.
    pub search_max_count: u32,
}

impl Default for Behaviour {
    /// The sandbox's defaults with the built-in fixture.
    fn default() -> Self {
        Behaviour {
            list_lag: Duration::ZERO,
            create_delay: Duration::ZERO,
            change_delay: Duration::ZERO,
            refuse_duplicate_names: false,
            deleted_reads: DeletedReads::NotFound,
            error_shape: ErrorShape::Nested,
            connection_shape: ConnectionShape::Reference,
            search_max_count: 50,
        }
    }
}

impl Behaviour {
    /// The admin API's JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "listLagMs": self.list_lag.as_millis() as u64,
            "createDelayMs": self.create_delay.as_millis() as u64,
            "changeDelayMs": self.change_delay.as_millis() as u64,
            "refuseDuplicateNames": self.refuse_duplicate_names,
            "deletedReads": match self.deleted_reads {
                DeletedReads::NotFound => "404",
                DeletedReads::Show => "show",
            },
            "errorShape": match self.error_shape {
                ErrorShape::Nested => "nested",
                ErrorShape::Flat => "flat",
                ErrorShape::Message => "message",
            },
            "connectionShape": match self.connection_shape {
                ConnectionShape::Reference => "reference",
                ConnectionShape::Spec => "spec",
            },
            "searchMaxCount": self.search_max_count,
        })
    }
}

/// `GET /_sandbox/stats`: request counts by endpoint and status, and every create received.
#[derive(Debug, Clone)]
pub struct Stats(pub Value);

impl Stats {
    /// Requests to `endpoint` answered with `status`. Labels: `list_ports`, `oracle_metros`,
    /// `create_layer2`, `get_connection` (v2 read by id), `search_connections` (v2 paged
    /// search), `delete_connection`, `get_connection_v1` and `list_connections` (the older
    /// `/api/company/...` paths), `update_connection`, `change_request`, `withdraw_change`,
    /// `other` for unknown `/api` routes.
    pub fn count(&self, endpoint: &str, status: u16) -> u64 {
        self.0["counts"][endpoint][status.to_string()]
            .as_u64()
            .unwrap_or(0)
    }

    /// Requests to `endpoint` with any status.
    pub fn total(&self, endpoint: &str) -> u64 {
        self.0["counts"][endpoint]
            .as_object()
            .map(|by_status| by_status.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }

    /// Bodies of the creates that got past authentication and fault injection, in order.
    pub fn creates(&self) -> Vec<Value> {
        self.create_records()
            .into_iter()
            .map(|record| record["body"].clone())
            .collect()
    }

    /// Like [`Stats::creates`] with `receivedAt`, `company`, `status` and `connectionId`.
    pub fn create_records(&self) -> Vec<Value> {
        self.0["creates"].as_array().cloned().unwrap_or_default()
    }

    /// Bodies of the change requests (`PUT .../change`) that got past authentication and fault
    /// injection, refused ones included, in order.
    pub fn changes(&self) -> Vec<Value> {
        self.change_records()
            .into_iter()
            .map(|record| record["body"].clone())
            .collect()
    }

    /// Utilization reads the sandbox answered for connection `id`.
    pub fn traffic_reads(&self, id: &str) -> u64 {
        self.0["trafficReads"][id].as_u64().unwrap_or(0)
    }

    /// Like [`Stats::changes`] with `receivedAt`, `company`, `connectionId` and `status`.
    pub fn change_records(&self) -> Vec<Value> {
        self.0["changes"].as_array().cloned().unwrap_or_default()
    }

    /// Every `/api` request counted, whatever its endpoint and status.
    pub fn total_requests(&self) -> u64 {
        self.0["totalRequests"].as_u64().unwrap_or(0)
    }

    /// Requests made with a valid key of `company`, by endpoint (any status).
    pub fn company_counts(&self, company: &str) -> std::collections::BTreeMap<String, u64> {
        self.0["byCompany"][company]
            .as_object()
            .map(|by_endpoint| {
                by_endpoint
                    .iter()
                    .map(|(endpoint, n)| (endpoint.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Requests made with a valid key of `company`, any endpoint and status.
    pub fn company_total(&self, company: &str) -> u64 {
        self.company_counts(company).values().sum()
    }
}

/// Polls `probe` every 20 ms until it returns `Some`; panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The key of the demo company.
pub fn default_key() -> ApiKey {
    ApiKey::new(DEFAULT_KEY)
}
