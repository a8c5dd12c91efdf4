//! Scale benchmark: N FastConnectConnections applied at once against the local control plane and
//! the sandbox (instant approval), with the release build of the operator at its default
//! cadences. Prints a markdown table.
//!
//! Run with `make bench`, or inside `eval "$(hack/testenv.sh env)"`:
//! `cargo bench --bench scale` (sizes from `FCO_BENCH_SIZES`, default `100,1000`; steady-state
//! window from `FCO_BENCH_STEADY`, default 180 seconds).

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api, Client, CustomResourceExt, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use support::{
    cluster, fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};

/// The operator's production cadences; the test defaults would poll far more often.
const DEFAULTS: &[(&str, &str)] = &[
    ("FCO_POLL_PROGRESS", "5s"),
    ("FCO_POLL_ACTIVE", "60s"),
    ("FCO_CATALOG_TTL", "60s"),
    ("FCO_SECRET_TTL", "10s"),
    ("FCO_BACKOFF_MIN", "1s"),
    ("FCO_BACKOFF_MAX", "5m"),
    ("FCO_API_TIMEOUT", "30s"),
    ("RUST_LOG", "warn"),
];

struct Row {
    n: usize,
    all_ready: Duration,
    first_status_p50: Duration,
    first_status_p95: Duration,
    peak_rss_mib: f64,
    cpu_seconds: f64,
    api_calls_total: u64,
    api_calls_per_minute_steady: f64,
    writes_per_resource: f64,
    event_writes_per_resource: f64,
}

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: a smoke build is enough there.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("scale: run with `cargo bench --bench scale` (or `make bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sizes: Vec<usize> = std::env::var("FCO_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let steady = Duration::from_secs(
        std::env::var("FCO_BENCH_STEADY")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(180),
    );
    let rows: Vec<Row> = sizes
        .iter()
        .map(|&n| runtime.block_on(run(n, steady)))
        .collect();
    print_table(&rows, steady);
}

async fn run(n: usize, steady: Duration) -> Row {
    eprintln!("bench: {n} resources");
    let client = cluster::client().await;
    cluster::apply_crd(&client, &FastConnectConnection::crd()).await;
    let ns = cluster::test_namespace(&client, &format!("bench-{n}")).await;
    fixtures::put_secret(
        &client,
        &ns,
        "consoleconnect",
        "apiKey",
        sandbox::DEFAULT_KEY,
    )
    .await;
    fixtures::put_secret(
        &client,
        &ns,
        "oracle-vc",
        "ocid",
        "ocid1.virtualcircuit.oc1.ap-hongkong-1.aaaaaaaabenchmark",
    )
    .await;
    let sandbox = Sandbox::start(&sandbox::INSTANT);
    let fccs: Api<FastConnectConnection> = Api::namespaced(client.clone(), &ns);
    let writes_before = apiserver_writes(&client).await;

    let operator = Operator::start_with(&sandbox.url, &ns, DEFAULTS);
    cluster::wait_for_ok(
        "the operator to be ready",
        Duration::from_secs(60),
        || async {
            let url = format!("http://{}/readyz", operator.metrics_addr);
            match reqwest::get(&url).await {
                Ok(r) if r.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    let timeline = Timeline::watch(fccs.clone());
    let started = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let (fccs, timeline) = (fccs.clone(), timeline.clone());
            async move {
                let name = format!("fc-{i:05}");
                fccs.create(&PostParams::default(), &resource(&name))
                    .await
                    .expect("create");
                timeline.applied(&name);
            }
        })
        .await;
    let all_ready = cluster::wait_for_ok("all Ready", Duration::from_secs(600), || async {
        let ready = timeline.ready_count();
        if ready == n {
            Ok(started.elapsed())
        } else {
            Err(ready)
        }
    })
    .await;
    let (first_status_p50, first_status_p95) = timeline.first_status_percentiles();
    let api_calls_total = sandbox_total(&sandbox).await;

    sandbox.reset_stats().await;
    eprintln!("bench: all {n} Ready after {all_ready:?}; measuring steady state for {steady:?}");
    tokio::time::sleep(steady).await;
    let api_calls_per_minute_steady =
        sandbox_total(&sandbox).await as f64 / steady.as_secs_f64() * 60.0;

    fccs.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete all");
    cluster::wait_for_ok("all deleted", Duration::from_secs(600), || async {
        let left = fccs
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(usize::MAX);
        if left == 0 { Ok(()) } else { Err(left) }
    })
    .await;
    let writes_after = apiserver_writes(&client).await;
    let (peak_rss_mib, cpu_seconds) = process_usage(&operator);
    drop(operator);

    let delta = |key: &str| {
        writes_after.get(key).copied().unwrap_or(0.0)
            - writes_before.get(key).copied().unwrap_or(0.0)
    };
    // Our own creates and the collection delete are not the operator's writes.
    let operator_writes = delta("fastconnectconnections");
    Row {
        n,
        all_ready,
        first_status_p50,
        first_status_p95,
        peak_rss_mib,
        cpu_seconds,
        api_calls_total,
        api_calls_per_minute_steady,
        writes_per_resource: operator_writes / n as f64,
        event_writes_per_resource: delta("events") / n as f64,
    }
}

/// When each resource was applied, first got a status, and first became Ready.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<HashMap<String, Marks>>>);

#[derive(Default)]
struct Marks {
    applied: Option<Instant>,
    first_status: Option<Instant>,
    ready: Option<Instant>,
}

impl Timeline {
    fn watch(api: Api<FastConnectConnection>) -> Timeline {
        let timeline = Timeline::default();
        let marks = timeline.0.clone();
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Ok(Some(fcc)) = events.try_next().await {
                let now = Instant::now();
                let mut marks = marks.lock().unwrap();
                let entry = marks.entry(fcc.name_any()).or_default();
                if let Some(status) = &fcc.status {
                    entry.first_status.get_or_insert(now);
                    if status.phase == Some(Phase::Active) {
                        entry.ready.get_or_insert(now);
                    }
                }
            }
        });
        timeline
    }

    fn applied(&self, name: &str) {
        let mut marks = self.0.lock().unwrap();
        let entry = marks.entry(name.to_owned()).or_default();
        entry.applied.get_or_insert(Instant::now());
    }

    fn ready_count(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .values()
            .filter(|m| m.ready.is_some())
            .count()
    }

    fn first_status_percentiles(&self) -> (Duration, Duration) {
        let marks = self.0.lock().unwrap();
        let mut latencies: Vec<Duration> = marks
            .values()
            .filter_map(|m| Some(m.first_status?.saturating_duration_since(m.applied?)))
            .collect();
        latencies.sort();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        (at(0.5), at(0.95))
    }
}

fn resource(name: &str) -> FastConnectConnection {
    serde_json::from_value(fixtures::small_connection(name)).expect("valid resource")
}

async fn sandbox_total(sandbox: &Sandbox) -> u64 {
    let stats = sandbox.stats().await;
    stats.0["counts"]
        .as_object()
        .map(|endpoints| endpoints.keys().map(|endpoint| stats.total(endpoint)).sum())
        .unwrap_or(0)
}

/// Writes the API server has served, by resource: PATCH and UPDATE of fastconnectconnections
/// (any subresource) and CREATE/PATCH of events, from its own `/metrics`.
async fn apiserver_writes(client: &Client) -> HashMap<String, f64> {
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
            *writes.entry(resource).or_default() += value;
        }
    }
    writes
}

/// Peak resident memory (MiB) and CPU seconds of the operator process, from /proc.
fn process_usage(operator: &Operator) -> (f64, f64) {
    let pid = operator.pid();
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

fn print_table(rows: &[Row], steady: Duration) {
    let verdict = |ok: bool| if ok { "" } else { " ❌" };
    println!(
        "| N | all Ready (s) | apply→first status p50 / p95 (ms) | peak RSS (MiB) | CPU (s) | \
         Console Connect calls, total | calls/min at steady state ({}s window) | \
         K8s writes per resource (+ events) |",
        steady.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {:.1}{} | {} / {} | {:.1}{} | {:.1} | {} | {:.1}{} | {:.1}{} (+ {:.1}) |",
            row.n,
            row.all_ready.as_secs_f64(),
            verdict(row.n < 1000 || row.all_ready <= Duration::from_secs(20)),
            row.first_status_p50.as_millis(),
            row.first_status_p95.as_millis(),
            row.peak_rss_mib,
            verdict(row.peak_rss_mib < 32.0),
            row.cpu_seconds,
            row.api_calls_total,
            row.api_calls_per_minute_steady,
            verdict(row.api_calls_per_minute_steady <= 2.0),
            row.writes_per_resource,
            verdict(row.writes_per_resource <= 6.0),
            row.event_writes_per_resource,
        );
    }
    println!(
        "\nTargets: 1,000 Ready within 20 s; peak RSS under 32 MiB; at most 2 Console Connect \
         calls per minute per company at steady state; at most 6 Kubernetes writes per resource. \
         ❌ marks a missed target."
    );
}
