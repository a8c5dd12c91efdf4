//! What the benchmarks (benches/scale.rs, benches/fleet.rs) share: the operator's production
//! settings, the API server's write counters, the operator's memory and CPU, and the sandbox's
//! call counts.

use std::{collections::HashMap, time::Duration};

use kube::Client;

use super::{cluster, operator::Operator, sandbox::Sandbox};

/// The operator's production cadences and rate limit; the test defaults would poll far more
/// often, settle an order in 2 s and allow 100 calls per second.
pub const PRODUCTION: &[(&str, &str)] = &[
    ("FCO_POLL_PROGRESS", "5s"),
    ("FCO_POLL_ACTIVE", "60s"),
    ("FCO_ORDER_SETTLE", "5m"),
    ("FCO_API_RATE_LIMIT", "10"),
    ("FCO_API_RATE_BURST", "20"),
    ("FCO_SEARCH_PAGE_SIZE", "100"),
    ("FCO_CONCURRENCY", "32"),
    ("FCO_CATALOG_TTL", "60s"),
    ("FCO_SECRET_TTL", "10s"),
    ("FCO_BACKOFF_MIN", "1s"),
    ("FCO_BACKOFF_MAX", "5m"),
    ("FCO_API_TIMEOUT", "30s"),
    ("RUST_LOG", "warn"),
];

/// Writes the API server has served since it started, by resource: PATCH, UPDATE and APPLY of
/// `fastconnectconnections` (any subresource) and CREATE/PATCH/UPDATE of `events`, from its own
/// `/metrics`; under `"<resource> 409"` those of them refused with 409 Conflict (a stale
/// resourceVersion). The counters are the whole server's (no namespace label) and start again
/// from 0 when it restarts.
pub async fn apiserver_writes(client: &Client) -> HashMap<String, f64> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client
        .request_text(request)
        .await
        .expect("apiserver /metrics");
    let mut writes = HashMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        let resource = label("resource");
        let verb = label("verb");
        let counted = match resource.as_str() {
            "fastconnectconnections" => matches!(verb.as_str(), "PATCH" | "UPDATE" | "APPLY"),
            "events" => matches!(verb.as_str(), "POST" | "CREATE" | "PATCH" | "UPDATE"),
            _ => false,
        };
        if counted && let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
        {
            // Writes refused for a stale resourceVersion are counted, and also apart.
            if label("code") == "409" {
                *writes.entry(format!("{resource} 409")).or_default() += value;
            }
            *writes.entry(resource).or_default() += value;
        }
    }
    writes
}

/// Peak resident memory (MiB, `VmHWM`) and CPU seconds of process `pid`, from /proc; zeros once
/// it has exited.
pub fn process_usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    (peak_kib / 1024.0, ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Console Connect calls since the sandbox's last reset, by endpoint (its labels).
pub async fn sandbox_counts(sandbox: &Sandbox) -> Vec<(String, u64)> {
    let stats = sandbox.stats().await;
    stats.0["counts"]
        .as_object()
        .map(|endpoints| {
            endpoints
                .keys()
                .map(|endpoint| (endpoint.clone(), stats.total(endpoint)))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (up to `timeout`) until the operator's `/readyz` answers 200: its watches have listed.
pub async fn wait_operator_ready(operator: &Operator, timeout: Duration) {
    let url = format!("http://{}/readyz", operator.metrics_addr);
    cluster::wait_for_ok("the operator to be ready", timeout, || async {
        match reqwest::get(&url).await {
            Ok(r) if r.status().is_success() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Waits (up to `timeout`) until `count()` reaches `n`, and returns the time since `started`.
pub async fn wait_for_all(
    what: &str,
    n: usize,
    timeout: Duration,
    started: std::time::Instant,
    count: impl Fn() -> usize,
) -> Duration {
    cluster::wait_for_ok(what, timeout, || async {
        let done = count();
        if done == n {
            Ok(started.elapsed())
        } else {
            Err(format!("{done} of {n}"))
        }
    })
    .await
}

/// Calls by endpoint as `create_layer2 30, search_connections 51`.
pub fn list_calls(calls: &[(String, u64)]) -> String {
    calls
        .iter()
        .map(|(endpoint, count)| format!("{endpoint} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}
