//! Scale benchmark: N FastConnectConnections applied at once against the local control plane and
//! the sandbox (instant approval, pages of up to 100), with the release build of the operator at
//! its default cadences and rate limit. Prints a markdown table.
//!
//! Run with `make bench`, or inside `eval "$(hack/testenv.sh env)"`:
//! `cargo bench --bench scale` (sizes from `FCO_BENCH_SIZES`, default `100,1000`; steady-state
//! window from `FCO_BENCH_STEADY`, default 180 seconds).

use fastconnect_test_support as support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api, CustomResourceExt, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use support::{
    bench::{self, apiserver_writes, sandbox_counts},
    cluster, fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};

/// The operator's production cadences and rate limit (shared with benches/fleet.rs).
const DEFAULTS: &[(&str, &str)] = bench::PRODUCTION;

/// The figures of [`DEFAULTS`] the targets are computed from.
const RATE_LIMIT_PER_SECOND: f64 = 10.0;
const PAGE_SIZE: usize = 100;
const POLL_ACTIVE: Duration = Duration::from_secs(60);
const ORDER_SETTLE: Duration = Duration::from_secs(300);
/// An order is verified by a search begun after its settle window, due a second window later
/// (one search serves every order placed within a window of each other).
const VERIFICATION_DUE: Duration = Duration::from_secs(2 * 300);

/// The sandbox: connections ACTIVE on the first read after the create, 1 s of DELETING, and
/// search pages of up to 100, the operator's `--search-page-size` (the fixture's cap is 50).
const SANDBOX_ARGS: &[&str] = &[
    "--creating-delay",
    "0",
    "--approval-delay",
    "0",
    "--search-max-count",
    "100",
];

/// Console Connect calls one resource costs on its way to Active: the create (whose answer says
/// CREATING), and the read by id once the shared CREATING search no longer lists it.
const CALLS_PER_NEW_RESOURCE: f64 = 2.0;
/// Room for the first status poll after the last create, the shared searches, and the API server.
const READY_MARGIN: Duration = Duration::from_secs(30);

/// Target: every resource Active within the time the rate limit needs for its calls.
fn ready_target(n: usize) -> Duration {
    Duration::from_secs_f64(n as f64 * CALLS_PER_NEW_RESOURCE / RATE_LIMIT_PER_SECOND)
        + READY_MARGIN
}

/// Calls of one search of the ACTIVE status holding `n` connections: full pages, then the short
/// (or empty) page that ends it.
fn search_pages(n: usize) -> u64 {
    (n / PAGE_SIZE) as u64 + 1
}

/// Target: at most one ACTIVE search per poll interval in `window` (a window of W seconds holds at
/// most ⌊W / 60⌋ + 1 of them), and nothing else.
fn steady_target(n: usize, window: Duration) -> u64 {
    search_pages(n) * (window.as_secs() / POLL_ACTIVE.as_secs() + 1)
}

/// Target: finalizer, create marker, create result, Active, Deleting, finalizer removal; plus
/// `verifiedAt` for a resource that lives until its verification is due.
const MAX_WRITES_PER_RESOURCE: f64 = 7.0;
const MAX_PEAK_RSS_MIB: f64 = 32.0;

struct Row {
    n: usize,
    all_ready: Duration,
    first_status_p50: Duration,
    first_status_p95: Duration,
    peak_rss_mib: f64,
    cpu_seconds: f64,
    api_calls_total: u64,
    /// Until all were Active, by endpoint.
    api_calls_by_endpoint: Vec<(String, u64)>,
    /// The steady-state window in up to three parts: before any order's verification is due,
    /// while the verifications (a search by name over every status, once per order) run, and
    /// after every resource is verified.
    before_verification: Window,
    verifying: Option<Window>,
    after_verification: Option<Window>,
    /// From the first apply until every resource had `verifiedAt`, if within the window.
    all_verified: Option<Duration>,
    writes_per_resource: f64,
    event_writes_per_resource: f64,
}

struct Window {
    length: Duration,
    calls: u64,
    by_endpoint: Vec<(String, u64)>,
}

impl Row {
    /// The steady state outside the verifications: calls, length, and the target for them.
    fn steady(&self) -> (u64, Duration, u64) {
        [
            Some(&self.before_verification),
            self.after_verification.as_ref(),
        ]
        .into_iter()
        .flatten()
        .fold((0, Duration::ZERO, 0), |(calls, length, target), w| {
            (
                calls + w.calls,
                length + w.length,
                target + steady_target(self.n, w.length),
            )
        })
    }
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
    let sandbox = Sandbox::start(SANDBOX_ARGS);
    let fccs: Api<FastConnectConnection> = Api::namespaced(client.clone(), &ns);
    let writes_before = apiserver_writes(&client).await;

    let operator = Operator::start_with(&sandbox.url, &ns, DEFAULTS);
    bench::wait_operator_ready(&operator, Duration::from_secs(60)).await;

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
    let all_ready = bench::wait_for_all("all Ready", n, Duration::from_secs(600), started, || {
        timeline.ready_count()
    })
    .await;
    let (first_status_p50, first_status_p95) = timeline.first_status_percentiles();
    let api_calls_by_endpoint = sandbox_counts(&sandbox).await;
    let api_calls_total = api_calls_by_endpoint.iter().map(|(_, c)| c).sum();

    let usage = |phase: &str| {
        let (rss, cpu) = bench::process_usage(operator.pid());
        eprintln!("bench: operator after {phase}: peak RSS {rss:.1} MiB, {cpu:.1} s CPU");
    };
    usage("all Ready");
    sandbox.reset_stats().await;
    let window_start = Instant::now();
    let window_end = window_start + steady;
    eprintln!(
        "bench: all {n} Ready after {all_ready:?} ({api_calls_total} calls: \
         {api_calls_by_endpoint:?}); measuring steady state for {steady:?}"
    );
    // No verification is due before `started + VERIFICATION_DUE`; after that the window is cut
    // again once every resource shows `verifiedAt`.
    let due = (started + VERIFICATION_DUE).min(window_end);
    tokio::time::sleep_until(due.into()).await;
    let before_verification = window(&sandbox, due - window_start).await;
    let (mut verifying, mut after_verification, mut all_verified) = (None, None, None);
    if due < window_end {
        sandbox.reset_stats().await;
        while timeline.verified_count() < n && Instant::now() < window_end {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let verified = Instant::now().min(window_end);
        usage("the verifications");
        verifying = Some(window(&sandbox, verified - due).await);
        if timeline.verified_count() == n {
            all_verified = Some(verified - started);
        }
        if verified < window_end {
            sandbox.reset_stats().await;
            tokio::time::sleep_until(window_end.into()).await;
            after_verification = Some(window(&sandbox, window_end - verified).await);
        }
    }
    let part = |w: &Option<Window>| {
        w.as_ref()
            .map(|w| (w.length.as_secs(), w.calls, w.by_endpoint.clone()))
    };
    eprintln!(
        "bench: steady state before verification: {:?}; verifying: {:?} (all verified after \
         {all_verified:?}); after: {:?}",
        (
            before_verification.length.as_secs(),
            before_verification.calls,
            &before_verification.by_endpoint
        ),
        part(&verifying),
        part(&after_verification),
    );

    usage("the steady-state window");
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
    let (peak_rss_mib, cpu_seconds) = bench::process_usage(operator.pid());
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
        api_calls_by_endpoint,
        before_verification,
        verifying,
        after_verification,
        all_verified,
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
    verified: Option<Instant>,
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
                    if status.verified_at.is_some() {
                        entry.verified.get_or_insert(now);
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

    fn verified_count(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .values()
            .filter(|m| m.verified.is_some())
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

async fn window(sandbox: &Sandbox, length: Duration) -> Window {
    let by_endpoint = sandbox_counts(sandbox).await;
    Window {
        length,
        calls: by_endpoint.iter().map(|(_, c)| c).sum(),
        by_endpoint,
    }
}

fn print_table(rows: &[Row], steady: Duration) {
    let verdict = |ok: bool| if ok { "" } else { " ❌" };
    println!(
        "| N | all Ready (s) (target) | apply→first status p50 / p95 (ms) | peak RSS (MiB) | \
         CPU (s) | Console Connect calls until all Ready | calls/min at steady state outside \
         the verifications (calls in window; target) | verifications in the {}s window: calls \
         (all verified after) | K8s writes per resource (+ events) |",
        steady.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let ready_target = ready_target(row.n);
        let (steady_calls, steady_length, steady_target) = row.steady();
        let verifying = row.verifying.as_ref().map_or_else(
            || "none due in the window".to_owned(),
            |w| {
                format!(
                    "{} in {} s ({})",
                    w.calls,
                    w.length.as_secs(),
                    row.all_verified.map_or_else(
                        || "not all verified by the window's end".to_owned(),
                        |d| format!("{:.0} s", d.as_secs_f64())
                    )
                )
            },
        );
        // Less than one poll interval outside the verifications says nothing about the cadence.
        let steady = if steady_length < POLL_ACTIVE {
            format!(
                "— (only {} s outside the verifications: lengthen FCO_BENCH_STEADY)",
                steady_length.as_secs()
            )
        } else {
            format!(
                "{:.1}{} ({steady_calls} in {} s; ≤ {steady_target})",
                steady_calls as f64 / steady_length.as_secs_f64() * 60.0,
                verdict(steady_calls <= steady_target),
                steady_length.as_secs(),
            )
        };
        println!(
            "| {} | {:.1}{} (≤ {:.0}) | {} / {} | {:.1}{} | {:.1} | {} | {} | {} | {:.2}{} (+ {:.2}) |",
            row.n,
            row.all_ready.as_secs_f64(),
            verdict(row.all_ready <= ready_target),
            ready_target.as_secs_f64(),
            row.first_status_p50.as_millis(),
            row.first_status_p95.as_millis(),
            row.peak_rss_mib,
            verdict(row.peak_rss_mib < MAX_PEAK_RSS_MIB),
            row.cpu_seconds,
            row.api_calls_total,
            steady,
            verifying,
            row.writes_per_resource,
            verdict(row.writes_per_resource <= MAX_WRITES_PER_RESOURCE),
            row.event_writes_per_resource,
        );
    }
    println!(
        "\nTargets: all N Ready within N × {CALLS_PER_NEW_RESOURCE} calls / \
         {RATE_LIMIT_PER_SECOND} per s + {} s (the rate limit); peak RSS under \
         {MAX_PEAK_RSS_MIB} MiB; at steady state at most one search of the ACTIVE status per \
         {} s poll interval, ⌊N / {PAGE_SIZE}⌋ + 1 pages, and nothing else; at most \
         {MAX_WRITES_PER_RESOURCE} Kubernetes writes per resource. ❌ marks a missed target. \
         Verifications (once per order, {} s after it: searches by name over every status \
         begun after its {} s settle window, shared by orders placed close together) are shown \
         apart.",
        READY_MARGIN.as_secs(),
        POLL_ACTIVE.as_secs(),
        VERIFICATION_DUE.as_secs(),
        ORDER_SETTLE.as_secs(),
    );
    println!();
    let list = bench::list_calls;
    let part = |name: &str, w: Option<&Window>| {
        w.map(|w| {
            format!(
                "; {name} ({} s): {}",
                w.length.as_secs(),
                list(&w.by_endpoint)
            )
        })
        .unwrap_or_default()
    };
    for row in rows {
        println!(
            "N = {}: until all Ready: {}{}{}{}",
            row.n,
            list(&row.api_calls_by_endpoint),
            part("before verification", Some(&row.before_verification)),
            part("verifying", row.verifying.as_ref()),
            part("after verification", row.after_verification.as_ref()),
        );
    }
}
