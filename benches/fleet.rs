//! Fleet benchmark (issue 15): C companies, each with its own API key in its own namespace, R
//! resources each (50 × 200 = 10,000 by default), and F connections per company that are not ours
//! (1,000 by default), against the local control plane and one sandbox serving every company. The
//! operator is the binary `FCO_OPERATOR_BIN` names (the static release build under `make bench`)
//! at its production cadences. Prints a markdown table; the numbers are explained in
//! docs/benchmarks.md ("Fleet: many companies, long lists").
//!
//! In order: the API server's write floor (creates and status writes on objects the operator does
//! not watch), the resources created with the operator stopped, the operator started and timed
//! until every resource is Active, a steady-state window (with the naive baseline, one GET per
//! connection per poll interval, against a second sandbox seeded the same way), a restart of the
//! operator, and the deletion of everything. With `FCO_BENCH_FAULTS=1` kube-apiserver is restarted
//! when 30 % of the resources are Active and etcd at 60 % (`hack/testenv.sh restart`).
//!
//! `cargo bench --bench fleet` (or `make bench`): sizes from `FCO_FLEET_COMPANIES`,
//! `FCO_FLEET_RESOURCES`, `FCO_FLEET_FOREIGN`, page size from `FCO_FLEET_PAGE` (default 100),
//! steady-state window from `FCO_BENCH_STEADY` (default 120 s), `--order-settle` from
//! `FCO_FLEET_ORDER_SETTLE` (default the production 5 min). Under `cargo test` (no `--bench`)
//! it runs a smoke size against the debug build and asserts the invariants that hold at any size.

use fastconnect_test_support as support;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client, CustomResourceExt, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use support::{
    bench::{self, apiserver_writes},
    cluster, fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};

/// Kubernetes writes a resource needs before it is Active: finalizer, create marker, result of
/// the create, `Active`. The write floor is this many status writes per resource.
const WRITES_BEFORE_ACTIVE: f64 = 4.0;
/// Bound on Kubernetes writes per resource over its life that every run asserts: finalizer,
/// create marker, create result, Active, verifiedAt, Deleting, finalizer removal. Reconciles
/// from a watch cache that does not yet show our last status are skipped
/// (`src/controller/written.rs`); before that, their status writes, refused with 409, added 0.55
/// to 0.9 per resource. Issue 15's target is [`TARGET_WRITES_PER_RESOURCE`].
const MAX_WRITES_PER_RESOURCE: f64 = 7.0;
/// Issue 15's targets (for 50 × 200 on the project's 2-core machine).
const TARGET_ALL_ACTIVE: Duration = Duration::from_secs(90);
const TARGET_PEAK_RSS_MIB: f64 = 64.0;
const TARGET_WRITES_PER_RESOURCE: f64 = 5.0;
/// The operator's `--concurrency`, also used for the floor's writes and the benchmark's creates.
const CONCURRENCY: usize = 32;
/// Label on every resource of a run (value: the run's id), and on the floor's objects.
const LABEL: &str = "fastconnect.dev/fleet";
const OCID: &str = "ocid1.virtualcircuit.oc1.ap-hongkong-1.aaaaaaaafleetbenchmark";
/// Objects the floor writes to: enough for a rate, few enough not to double the run.
const FLOOR_OBJECTS: usize = 2000;
/// How long the operator has to drop its finalizer from an API key Secret once the last resource
/// naming it is gone.
const GUARD_WAIT: Duration = Duration::from_secs(15);
/// Name of every company's one port (each company has its own, with its own id).
const PORT_NAME: &str = "My-Port-10G";

/// What one run does.
#[derive(Clone, Debug)]
struct Sizes {
    companies: usize,
    resources: usize,
    foreign: usize,
    /// `--search-page-size` and the sandbox's largest page.
    page: usize,
    poll_active: Duration,
    steady: Duration,
    faults: bool,
    /// The smoke run asserts; the benchmark reports.
    smoke: bool,
}

impl Sizes {
    fn from_env() -> Sizes {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Sizes {
            companies: number("FCO_FLEET_COMPANIES", 50),
            resources: number("FCO_FLEET_RESOURCES", 200),
            foreign: number("FCO_FLEET_FOREIGN", 1000),
            page: number("FCO_FLEET_PAGE", 100),
            poll_active: Duration::from_secs(60),
            steady: Duration::from_secs(number("FCO_BENCH_STEADY", 120) as u64),
            faults: faults_wanted(),
            smoke: false,
        }
    }

    /// Small enough for CI: 3 companies × 10 resources, 50 foreign connections each, pages of
    /// 20 (so a list is 4 pages), and a 5 s active poll so that the windows fit in seconds.
    fn smoke() -> Sizes {
        Sizes {
            companies: 3,
            resources: 10,
            foreign: 50,
            page: 20,
            poll_active: Duration::from_secs(5),
            steady: Duration::from_secs(10),
            faults: faults_wanted(),
            smoke: true,
        }
    }

    fn total(&self) -> usize {
        self.companies * self.resources
    }

    /// Calls of one search of the ACTIVE status of a company: full pages, then the short (or
    /// empty) page that ends it.
    fn pages(&self) -> u64 {
        ((self.foreign + self.resources) / self.page) as u64 + 1
    }

    /// At most one ACTIVE search per poll interval: a window of W seconds holds at most
    /// ⌊W / poll⌋ + 1 of them.
    fn steady_target(&self) -> u64 {
        self.pages() * (self.steady.as_secs() / self.poll_active.as_secs() + 1)
    }
}

fn faults_wanted() -> bool {
    matches!(
        std::env::var("FCO_BENCH_FAULTS").as_deref(),
        Ok("1" | "true" | "yes")
    )
}

fn company(i: usize) -> String {
    format!("co-{i:03}")
}

fn api_key(i: usize) -> String {
    format!("fleet-key-{i:03}")
}

/// The sandbox's fixture: C companies with one 10 Gbps port each (in SIN), and the Oracle metros
/// HKG and SIN of the built-in fixture; instant approval, 1 s of DELETING, pages of `page`.
fn sandbox_yaml(sizes: &Sizes) -> String {
    let mut yaml = format!(
        "lifecycle:\n  creatingDelay: 0\n  approvalDelay: 0\n  deletingDelay: 1s\n\
         search:\n  maxCount: {}\ncompanies:\n",
        sizes.page
    );
    for i in 0..sizes.companies {
        yaml.push_str(&format!(
            "  - username: {company}\n    id: 5d4d0562{i:016x}\n    apiKeys: [{key}]\n    ports:\n\
             \x20     - id: 66c29b3c{i:016x}\n        name: {PORT_NAME}\n        speedMbps: 10000\n\
             \x20       speedName: 10 Gbps\n        metroId: {sin}\n        dataCenterFacilityId: {sin_dcf}\n\
             \x20       regionId: 5c05cb06cad910000ae251f4\n",
            company = company(i),
            key = api_key(i),
            sin = sandbox::METRO_SIN.id,
            sin_dcf = sandbox::METRO_SIN.dcf,
        ));
    }
    yaml.push_str("oracleMetros:\n");
    for (metro, name, country) in [
        (sandbox::METRO_HKG, "Hong Kong", "hk"),
        (sandbox::METRO_SIN, "Singapore", "sg"),
    ] {
        yaml.push_str(&format!(
            "  - id: {id}\n    name: {name}\n    code: {code}\n    country: {country}\n    \
             regionIds: [5c05cb06cad910000ae251f4]\n    firstDataCenterFacilityIdInMetro: {dcf}\n",
            id = metro.id,
            code = metro.code,
            dcf = metro.dcf,
        ));
    }
    yaml
}

fn main() {
    let benchmark = std::env::args().any(|arg| arg == "--bench");
    // `cargo test --all-targets` runs this without `--bench`: the smoke size, where there is a
    // control plane (`make test` sets FCO_TESTENV=1 and KUBECONFIG).
    if !benchmark && !cluster::testenv_available() && std::env::var_os("FCO_TESTENV").is_none() {
        println!("fleet: no control plane (KUBECONFIG unset): smoke run skipped");
        return;
    }
    let sizes = if benchmark {
        Sizes::from_env()
    } else {
        Sizes::smoke()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let report = runtime.block_on(run(&sizes));
    print_table(&sizes, &report);
    eprintln!("fleet: the run took {:?}", started.elapsed());
    let violations = report.invariant_violations(&sizes);
    assert!(
        violations.is_empty(),
        "fleet: invariants violated:\n- {}",
        violations.join("\n- ")
    );
}

/// The API server's throughput for the writes the operator needs, measured before it starts.
struct Floor {
    objects: usize,
    creates_per_second: f64,
    status_writes_per_second: f64,
    /// [`WRITES_BEFORE_ACTIVE`] × N status writes at that rate.
    floor: Duration,
}

#[derive(Default)]
struct Report {
    floor: Option<Floor>,
    /// The benchmark's own creates of the N resources (operator stopped).
    creates_per_second: f64,
    operator_ready: Duration,
    /// From the operator's start until every resource was Active.
    all_active: Duration,
    peak_rss_mib: f64,
    cpu_seconds: f64,
    calls_until_active: Vec<(String, u64)>,
    /// Per company, in the steady-state window.
    steady_by_company: BTreeMap<String, u64>,
    steady_by_endpoint: Vec<(String, u64)>,
    naive_by_company: BTreeMap<String, u64>,
    naive_errors: u64,
    /// Per company, from the new operator's start until half an active poll interval after it
    /// is ready: the pass the restart costs (the next regular poll falls a whole interval after
    /// it).
    restart_by_company: BTreeMap<String, BTreeMap<String, u64>>,
    restart_window: Duration,
    /// All companies, until a whole poll interval after ready (the regular poll may fall in it).
    restart_interval_calls: Vec<(String, u64)>,
    restart_interval: Duration,
    restart_fcc_writes: f64,
    restart_versions_seen: u64,
    writes_per_resource: f64,
    /// Of those, refused with 409 Conflict.
    conflicts_per_resource: f64,
    events_per_resource: f64,
    /// Resource versions the benchmark's watch saw after the create, per resource.
    versions_per_resource: f64,
    /// Resources not Active, or without exactly one live connection matching their status.
    not_active: Vec<String>,
    not_exactly_one: Vec<String>,
    /// Live connections of ours left at the sandbox after the deletion.
    left_after_delete: usize,
    /// API key Secrets still carrying the operator's guard finalizer [`GUARD_WAIT`] after the
    /// last resource of their namespace was gone (the benchmark then removes it).
    guards_left: usize,
    faults: Vec<String>,
}

impl Report {
    fn invariant_violations(&self, sizes: &Sizes) -> Vec<String> {
        let mut violations = Vec::new();
        if !self.not_active.is_empty() {
            violations.push(format!(
                "{} resources not Active: {:?}",
                self.not_active.len(),
                &self.not_active[..self.not_active.len().min(10)]
            ));
        }
        if !self.not_exactly_one.is_empty() {
            violations.push(format!(
                "{} resources without exactly one connection: {:?}",
                self.not_exactly_one.len(),
                &self.not_exactly_one[..self.not_exactly_one.len().min(10)]
            ));
        }
        if self.left_after_delete > 0 {
            violations.push(format!(
                "{} connections left after the deletion",
                self.left_after_delete
            ));
        }
        // The cadence bounds below are the operator's design; the smoke run checks them, the
        // benchmark reports them (and a miss is what the table is for).
        if !sizes.smoke {
            return violations;
        }
        let target = sizes.steady_target();
        for (company, calls) in &self.steady_by_company {
            if *calls > target {
                violations.push(format!(
                    "{company}: {calls} calls in the {:?} steady window, more than {target}",
                    sizes.steady
                ));
            }
        }
        for (company, calls) in &self.restart_by_company {
            let total: u64 = calls.values().sum();
            if total > sizes.pages() || calls.get("get_connection").is_some_and(|&n| n > 0) {
                violations.push(format!(
                    "{company}: after the restart {calls:?}, more than one list pass of {} pages",
                    sizes.pages()
                ));
            }
        }
        if self.restart_versions_seen > 0 {
            violations.push(format!(
                "the restart wrote {} resource versions of our resources",
                self.restart_versions_seen
            ));
        }
        if self.writes_per_resource > MAX_WRITES_PER_RESOURCE {
            violations.push(format!(
                "{:.2} Kubernetes writes per resource, more than {MAX_WRITES_PER_RESOURCE}",
                self.writes_per_resource
            ));
        }
        violations
    }
}

async fn run(sizes: &Sizes) -> Report {
    let n = sizes.total();
    eprintln!("fleet: {sizes:?}");
    let client = cluster::client().await;
    cluster::apply_crd(&client, &FastConnectConnection::crd()).await;
    let run_id = cluster::unique_name("fleet");
    let mut namespaces = Vec::new();
    for i in 0..sizes.companies {
        let ns = cluster::test_namespace(&client, &format!("fleet-{i:03}")).await;
        fixtures::put_secret(&client, &ns, "consoleconnect", "apiKey", &api_key(i)).await;
        fixtures::put_secret(&client, &ns, "oracle-vc", "ocid", OCID).await;
        namespaces.push(ns);
    }

    // One sandbox for the operator, one for the naive baseline, seeded alike: F foreign ACTIVE
    // connections per company (dated a day ago, speed 0); the baseline's also holds R of "ours".
    let yaml = sandbox_yaml(sizes);
    let sandbox = Sandbox::start_with_config_and_args(&yaml, &[]);
    let naive_sandbox = Sandbox::start_with_config_and_args(&yaml, &[]);
    let mut naive_targets = Vec::new();
    for i in 0..sizes.companies {
        sandbox
            .seed(&company(i), sizes.foreign, "ACTIVE", "other-")
            .await;
        naive_sandbox
            .seed(&company(i), sizes.foreign, "ACTIVE", "other-")
            .await;
        let ours = naive_sandbox
            .seed(&company(i), sizes.resources, "ACTIVE", "ours-")
            .await;
        naive_targets.extend(ours.into_iter().map(|id| (i, id)));
    }

    let mut report = Report {
        floor: Some(measure_floor(&client, sizes, &run_id).await),
        ..Report::default()
    };

    // The resources, created with the operator stopped: the creates are the benchmark's, and the
    // operator then has the API server to itself.
    let timeline = Timeline::watch(Api::all(client.clone()), &format!("{LABEL}={run_id}"));
    let created = Instant::now();
    stream::iter(namespaces.iter().enumerate().flat_map(|(i, ns)| {
        (0..sizes.resources).map(move |j| (i, ns.clone(), format!("fc-{j:04}")))
    }))
    .for_each_concurrent(CONCURRENCY, |(i, ns, name)| {
        let api: Api<FastConnectConnection> = Api::namespaced(client.clone(), &ns);
        let object = resource(&name, i, &run_id);
        async move {
            api.create(&PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("create {ns}/{name}: {e}"));
        }
    })
    .await;
    report.creates_per_second = n as f64 / created.elapsed().as_secs_f64();
    eprintln!(
        "fleet: {n} resources created in {:?} ({:.0}/s)",
        created.elapsed(),
        report.creates_per_second
    );
    let mut writes = WriteCounter::start(&client).await;

    let env = operator_env(sizes);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let watched = namespaces.join(",");
    let started = Instant::now();
    let operator = Operator::start_with(&sandbox.url, &watched, &env);
    bench::wait_operator_ready(&operator, Duration::from_secs(300)).await;
    report.operator_ready = started.elapsed();
    eprintln!("fleet: operator ready after {:?}", report.operator_ready);

    let fault_plan = sizes.faults.then(|| {
        let timeline = timeline.clone();
        tokio::spawn(async move { inject_faults(&timeline, n, started).await })
    });
    report.all_active =
        bench::wait_for_all("all Active", n, Duration::from_secs(3600), started, || {
            timeline.active_count()
        })
        .await;
    if let Some(plan) = fault_plan {
        let (restarts, faults) = plan.await.expect("the fault task");
        report.faults = faults;
        for sample in restarts {
            writes.apiserver_restarted(sample);
        }
    }
    report.calls_until_active = bench::sandbox_counts(&sandbox).await;
    let usage = |phase: &str, pid: u32| {
        let (rss, cpu) = bench::process_usage(pid);
        eprintln!("fleet: operator after {phase}: peak RSS {rss:.1} MiB, {cpu:.1} s CPU");
        (rss, cpu)
    };
    usage("all Active", operator.pid());
    eprintln!(
        "fleet: all {n} Active {:?} after the operator's start ({:?})",
        report.all_active, report.calls_until_active
    );

    // Steady state, with the naive baseline running alongside against its own sandbox.
    sandbox.reset_stats().await;
    let naive = {
        let targets = naive_targets.clone();
        let (poll, window) = (sizes.poll_active, sizes.steady);
        let url = naive_sandbox.url.clone();
        tokio::spawn(async move { naive_baseline(&url, &targets, poll, window).await })
    };
    tokio::time::sleep(sizes.steady).await;
    let stats = sandbox.stats().await;
    report.steady_by_endpoint = bench::sandbox_counts(&sandbox).await;
    report.naive_errors = naive.await.expect("the naive baseline");
    let naive_stats = naive_sandbox.stats().await;
    for i in 0..sizes.companies {
        report
            .steady_by_company
            .insert(company(i), stats.company_total(&company(i)));
        report
            .naive_by_company
            .insert(company(i), naive_stats.company_total(&company(i)));
    }
    drop(naive_sandbox);
    eprintln!(
        "fleet: steady state ({:?}): {:?}",
        sizes.steady, report.steady_by_endpoint
    );

    // Every resource Active with exactly one live connection, the one its status names.
    check_connections(&client, &sandbox, &run_id, &mut report).await;

    // Restart: SIGTERM, a new operator, ready, then one active poll interval.
    let (rss, cpu) = usage("the steady state", operator.pid());
    report.peak_rss_mib = rss;
    let mut operator = operator;
    let versions_before = timeline.versions();
    let writes_before_restart = apiserver_writes(&client).await;
    operator.terminate();
    operator.wait_exit(Duration::from_secs(60)).await;
    let cpu_first = cpu;
    drop(operator);
    sandbox.reset_stats().await;
    let restarted = Instant::now();
    let operator = Operator::start_with(&sandbox.url, &watched, &env);
    bench::wait_operator_ready(&operator, Duration::from_secs(300)).await;
    let ready = Instant::now();
    tokio::time::sleep(sizes.poll_active / 2).await;
    report.restart_window = restarted.elapsed();
    let stats = sandbox.stats().await;
    for i in 0..sizes.companies {
        report
            .restart_by_company
            .insert(company(i), stats.company_counts(&company(i)));
    }
    tokio::time::sleep_until((ready + sizes.poll_active).into()).await;
    report.restart_interval = restarted.elapsed();
    report.restart_interval_calls = bench::sandbox_counts(&sandbox).await;
    let writes_after_restart = apiserver_writes(&client).await;
    report.restart_fcc_writes = delta(
        &writes_before_restart,
        &writes_after_restart,
        "fastconnectconnections",
    );
    report.restart_versions_seen = timeline.versions() - versions_before;
    eprintln!(
        "fleet: restart: {:?} to ready + half a poll, {:?} to ready + a poll ({:?}): {} FCC \
         writes ({} versions seen); first company until ready + half a poll: {:?}",
        report.restart_window,
        report.restart_interval,
        report.restart_interval_calls,
        report.restart_fcc_writes,
        report.restart_versions_seen,
        report.restart_by_company.values().next()
    );

    // The end of every resource's life.
    let label = format!("{LABEL}={run_id}");
    for ns in &namespaces {
        Api::<FastConnectConnection>::namespaced(client.clone(), ns)
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&label),
            )
            .await
            .expect("delete the resources");
    }
    let all: Api<FastConnectConnection> = Api::all(client.clone());
    cluster::wait_for_ok("all deleted", Duration::from_secs(3600), || async {
        let left = all
            .list_metadata(&ListParams::default().labels(&label))
            .await
            .map(|l| l.items.len())
            .map_err(|e| e.to_string())?;
        if left == 0 {
            Ok(())
        } else {
            Err(left.to_string())
        }
    })
    .await;
    report.guards_left = released_guards(&client, &namespaces).await;
    let (rss, cpu) = usage("the deletion", operator.pid());
    report.peak_rss_mib = report.peak_rss_mib.max(rss);
    report.cpu_seconds = cpu_first + cpu;
    drop(operator);
    let (fcc_writes, conflicts, event_writes) = writes.finish(&client).await;
    report.writes_per_resource = fcc_writes / n as f64;
    report.conflicts_per_resource = conflicts / n as f64;
    report.events_per_resource = event_writes / n as f64;
    report.versions_per_resource = timeline.versions() as f64 / n as f64;
    report.left_after_delete = sandbox
        .connections()
        .await
        .iter()
        .filter(|c| live(c) && !c["name"].as_str().unwrap_or_default().starts_with("other-"))
        .count();

    // Leave nothing behind: the namespaces (and the floor's) go in the background.
    let namespace_api: Api<Namespace> = Api::all(client.clone());
    let floor_namespaces = namespace_api
        .list_metadata(&ListParams::default().labels(&format!("{LABEL}-floor={run_id}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    for ns in namespaces
        .iter()
        .cloned()
        .chain(floor_namespaces.into_iter().map(|m| m.name_any()))
    {
        let _ = namespace_api.delete(&ns, &DeleteParams::default()).await;
    }
    report
}

/// Waits up to [`GUARD_WAIT`] for the operator to release the API key Secrets, returns how many
/// it did not release, and removes their finalizer (else their namespaces never go).
async fn released_guards(client: &Client, namespaces: &[String]) -> usize {
    let guarded = || async {
        let mut guarded = Vec::new();
        for ns in namespaces {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
            if let Ok(secret) = secrets.get_metadata("consoleconnect").await
                && !secret.finalizers().is_empty()
            {
                guarded.push(ns.clone());
            }
        }
        guarded
    };
    let deadline = Instant::now() + GUARD_WAIT;
    let mut left = guarded().await;
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = guarded().await;
    }
    for ns in &left {
        eprintln!("fleet: the API key Secret of {ns} is still guarded; removing the finalizer");
        let _ = Api::<Secret>::namespaced(client.clone(), ns)
            .patch(
                "consoleconnect",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await;
    }
    left.len()
}

/// The operator's environment: production cadences, this run's page size and active poll.
fn operator_env(sizes: &Sizes) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = bench::PRODUCTION
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.push(("FCO_SEARCH_PAGE_SIZE".into(), sizes.page.to_string()));
    env.push((
        "FCO_POLL_ACTIVE".into(),
        format!("{}s", sizes.poll_active.as_secs()),
    ));
    // Verifications fall due two settle windows after each order and write `verifiedAt`; a
    // ramp of ten minutes puts them inside the restart's window unless the window is moved.
    if let Ok(settle) = std::env::var("FCO_FLEET_ORDER_SETTLE") {
        env.push(("FCO_ORDER_SETTLE".into(), settle));
    }
    env
}

fn resource(name: &str, company_index: usize, run_id: &str) -> FastConnectConnection {
    let mut object = fixtures::small_connection(name);
    object["metadata"]["labels"] = json!({ LABEL: run_id });
    object["spec"]["companyUsername"] = json!(company(company_index));
    object["spec"]["sourcePort"]["name"] = json!(PORT_NAME);
    serde_json::from_value(object).expect("valid resource")
}

fn live(connection: &Value) -> bool {
    connection["deleted"] != true
        && !matches!(
            connection["status"].as_str(),
            Some("CANCELLED" | "DELETED" | "DELETING")
        )
}

/// The API server's floor: M resources in a namespace the operator does not watch, created at
/// the operator's concurrency (the apply rate), then one status write each, server-side apply of
/// an Active status with the resource version as precondition, as the operator writes it.
async fn measure_floor(client: &Client, sizes: &Sizes, run_id: &str) -> Floor {
    let objects = sizes.total().min(FLOOR_OBJECTS);
    let ns = cluster::unique_name("fleet-floor");
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {
            cluster::TEST_NAMESPACE_LABEL: "true", format!("{LABEL}-floor"): run_id,
        }}
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the floor's namespace");
    let api: Api<FastConnectConnection> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let created: Vec<FastConnectConnection> = stream::iter(0..objects)
        .map(|j| {
            let api = api.clone();
            let object = resource(&format!("floor-{j:05}"), 0, "floor");
            async move {
                api.create(&PostParams::default(), &object)
                    .await
                    .expect("create a floor object")
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let creates_per_second = objects as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    stream::iter(created)
        .for_each_concurrent(CONCURRENCY, |fcc| {
            let api = api.clone();
            async move {
                let name = fcc.name_any();
                let body = json!({
                    "apiVersion": "fastconnect.dev/v1alpha1",
                    "kind": "FastConnectConnection",
                    "metadata": {"resourceVersion": fcc.resource_version()},
                    "status": {
                        "phase": "Active",
                        "phaseSince": "2026-11-29T16:00:00Z",
                        "connectionId": "66c29b3c6dcad34e5b728d00",
                        "connectionName": format!("{ns}.{name}", ns = fcc.namespace().unwrap_or_default()),
                        "speedMbps": 5,
                        "remoteStatus": "ACTIVE",
                        "portId": sandbox::PORT_10G.id,
                        "destMetro": "HKG",
                        "destMetroId": sandbox::METRO_HKG.id,
                        "destDcf": sandbox::METRO_HKG.dcf,
                        "orderedAt": "2026-11-29T16:00:00Z",
                        "observedGeneration": 1,
                        "conditions": [{
                            "type": "Ready", "status": "True", "reason": "Active",
                            "message": "The connection is ACTIVE.", "observedGeneration": 1,
                            "lastTransitionTime": "2026-11-29T16:00:00Z",
                        }],
                    },
                });
                api.patch_status(
                    &name,
                    &PatchParams::apply("fastconnect-operator").force(),
                    &Patch::Apply(body),
                )
                .await
                .unwrap_or_else(|e| panic!("status write of {name}: {e}"));
            }
        })
        .await;
    let status_writes_per_second = objects as f64 / started.elapsed().as_secs_f64();
    let floor = Duration::from_secs_f64(
        WRITES_BEFORE_ACTIVE * sizes.total() as f64 / status_writes_per_second,
    );
    eprintln!(
        "fleet: floor: {objects} creates at {creates_per_second:.0}/s, {objects} status writes \
         at {status_writes_per_second:.0}/s: {WRITES_BEFORE_ACTIVE} × {} writes take {floor:?}",
        sizes.total()
    );
    Floor {
        objects,
        creates_per_second,
        status_writes_per_second,
        floor,
    }
}

/// Restarts kube-apiserver once 30 % of the `n` resources are Active and etcd at 60 %
/// (`hack/testenv.sh restart`). Returns the API server's write counters sampled just before its
/// restart (they start again from 0), and what happened when.
async fn inject_faults(
    timeline: &Timeline,
    n: usize,
    started: Instant,
) -> (Vec<HashMap<String, f64>>, Vec<String>) {
    let client = cluster::client().await;
    let mut samples = Vec::new();
    let mut log = Vec::new();
    for (share, component) in [(0.3, "apiserver"), (0.6, "etcd")] {
        let want = (n as f64 * share) as usize;
        cluster::wait_for_ok(
            &format!("{want} Active before restarting {component}"),
            Duration::from_secs(3600),
            || async {
                let active = timeline.active_count();
                if active >= want { Ok(()) } else { Err(active) }
            },
        )
        .await;
        if component == "apiserver" {
            samples.push(apiserver_writes(&client).await);
        }
        let at = started.elapsed();
        let active = timeline.active_count();
        let restart = Instant::now();
        let script = support::repo_root().join("hack/testenv.sh");
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&script)
                .args(["restart", component])
                .status()
                .expect("run hack/testenv.sh restart")
        })
        .await
        .expect("the restart task");
        assert!(
            status.success(),
            "hack/testenv.sh restart {component} failed: {status}"
        );
        let entry = format!(
            "{component} restarted at {:.1} s ({active} Active), serving again after {:.1} s",
            at.as_secs_f64(),
            restart.elapsed().as_secs_f64()
        );
        eprintln!("fleet: {entry}");
        log.push(entry);
    }
    (samples, log)
}

/// Writes to FastConnectConnections and Events the API server served since [`WriteCounter::start`],
/// across restarts of the API server (its counters start again from 0).
struct WriteCounter {
    before: HashMap<String, f64>,
    /// Counted in earlier lives of the API server.
    earlier: HashMap<String, f64>,
}

impl WriteCounter {
    async fn start(client: &Client) -> WriteCounter {
        WriteCounter {
            before: apiserver_writes(client).await,
            earlier: HashMap::new(),
        }
    }

    /// `sample` was taken just before the API server restarted.
    fn apiserver_restarted(&mut self, sample: HashMap<String, f64>) {
        for (key, value) in sample {
            let since = value - self.before.get(&key).copied().unwrap_or(0.0);
            *self.earlier.entry(key).or_default() += since;
        }
        self.before = HashMap::new();
    }

    /// (FastConnectConnection writes, of them 409 Conflicts, Event writes).
    async fn finish(&self, client: &Client) -> (f64, f64, f64) {
        let now = apiserver_writes(client).await;
        let total = |key: &str| {
            delta(&self.before, &now, key) + self.earlier.get(key).copied().unwrap_or(0.0)
        };
        (
            total("fastconnectconnections"),
            total("fastconnectconnections 409"),
            total("events"),
        )
    }
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// Every resource Active, with exactly one live connection at the sandbox named
/// `<namespace>.<name>`, the one its status names.
async fn check_connections(client: &Client, sandbox: &Sandbox, run_id: &str, report: &mut Report) {
    let all: Api<FastConnectConnection> = Api::all(client.clone());
    let fccs = all
        .list(&ListParams::default().labels(&format!("{LABEL}={run_id}")))
        .await
        .expect("list the resources");
    let mut live_by_name: HashMap<String, Vec<String>> = HashMap::new();
    for connection in sandbox.connections().await.iter().filter(|c| live(c)) {
        live_by_name
            .entry(connection["name"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(connection["id"].as_str().unwrap_or_default().to_owned());
    }
    for fcc in fccs.items {
        let key = format!("{}.{}", fcc.namespace().unwrap_or_default(), fcc.name_any());
        let status = fcc.status.clone().unwrap_or_default();
        if status.phase != Some(Phase::Active) {
            report.not_active.push(format!("{key}: {:?}", status.phase));
        }
        let ids = live_by_name.get(&key).cloned().unwrap_or_default();
        if ids.len() != 1 || status.connection_id.as_deref() != Some(ids[0].as_str()) {
            report.not_exactly_one.push(format!(
                "{key}: live {ids:?}, status {:?}",
                status.connection_id
            ));
        }
    }
}

/// What a naive controller does: one GET by id per connection per poll interval, spread evenly
/// over the interval, for `window`. Returns the calls that failed.
async fn naive_baseline(
    url: &str,
    targets: &[(usize, String)],
    poll: Duration,
    window: Duration,
) -> u64 {
    let http = reqwest::Client::new();
    let gap = poll.div_f64(targets.len().max(1) as f64);
    let start = Instant::now();
    let end = start + window;
    let errors = Arc::new(AtomicU64::new(0));
    stream::iter(
        (0u32..)
            .map(|k| start + gap * k)
            .take_while(|due| *due < end)
            .enumerate(),
    )
    .for_each_concurrent(CONCURRENCY, |(k, due)| {
        let (i, id) = &targets[k % targets.len()];
        let request = http
            .get(format!(
                "{url}{}",
                sandbox::connection_path(&company(*i), id)
            ))
            .bearer_auth(api_key(*i));
        let errors = errors.clone();
        async move {
            tokio::time::sleep_until(due.into()).await;
            let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
            if !ok {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    errors.load(Ordering::Relaxed)
}

/// What the benchmark's watch saw of each resource: Active or not, and how many resource
/// versions after the first (every write that changed the object; a restarted watch may fold
/// several into one).
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<HashMap<String, Marks>>>);

#[derive(Default)]
struct Marks {
    active: bool,
    version: String,
    versions: u64,
}

impl Timeline {
    fn watch(api: Api<FastConnectConnection>, labels: &str) -> Timeline {
        let timeline = Timeline::default();
        let marks = timeline.0.clone();
        let config = watcher::Config::default().labels(labels);
        tokio::spawn(async move {
            // Backoff: the watch outlives restarts of the API server and etcd.
            let mut events = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            loop {
                let fcc = match events.try_next().await {
                    Ok(Some(fcc)) => fcc,
                    Ok(None) => break,
                    Err(_) => continue,
                };
                let key = format!("{}/{}", fcc.namespace().unwrap_or_default(), fcc.name_any());
                let version = fcc.resource_version().unwrap_or_default();
                let mut marks = marks.lock().expect("lock");
                let entry = marks.entry(key).or_default();
                if !entry.version.is_empty() && entry.version != version {
                    entry.versions += 1;
                }
                entry.version = version;
                entry.active = fcc
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(Phase::Active));
            }
        });
        timeline
    }

    fn active_count(&self) -> usize {
        self.0
            .lock()
            .expect("lock")
            .values()
            .filter(|m| m.active)
            .count()
    }

    fn versions(&self) -> u64 {
        self.0
            .lock()
            .expect("lock")
            .values()
            .map(|m| m.versions)
            .sum()
    }
}

fn print_table(sizes: &Sizes, report: &Report) {
    let verdict = |ok: bool| if ok { "" } else { " ❌" };
    let n = sizes.total();
    // Calls per active poll interval (a minute at the production cadence).
    let polls = sizes.steady.as_secs_f64() / sizes.poll_active.as_secs_f64();
    let per_poll = |calls: u64| calls as f64 / polls;
    let max_of = |m: &BTreeMap<String, u64>| m.values().copied().max().unwrap_or(0);
    let steady_max = max_of(&report.steady_by_company);
    let naive_max = max_of(&report.naive_by_company);
    let restart_max = report
        .restart_by_company
        .values()
        .map(|calls| calls.values().sum::<u64>())
        .max()
        .unwrap_or(0);
    let restart_reads: u64 = report
        .restart_by_company
        .values()
        .filter_map(|calls| calls.get("get_connection"))
        .sum();
    let calls_until: u64 = report.calls_until_active.iter().map(|(_, c)| c).sum();
    let floor = report.floor.as_ref();
    let ratio = floor.map_or(0.0, |f| {
        report.all_active.as_secs_f64() / f.floor.as_secs_f64()
    });
    println!(
        "| companies × resources (+ foreign each) | all Active (s) (target) | API server floor (s): \
         {WRITES_BEFORE_ACTIVE} × N status writes at the measured rate | ratio to the floor | peak RSS (MiB) \
         (target) | CPU (s) | Console Connect calls until all Active | steady state: calls per company \
         per active poll interval ({poll} s), most (pages of its list) | naive baseline: calls per \
         company per poll interval | \
         naive / ours | restart, until ready + half a poll interval: calls per company, most (pages); reads by id | restart: FCC writes \
         (versions seen) | K8s writes per resource over its life (target) (+ events) |",
        poll = sizes.poll_active.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} × {} (+ {}){} | {:.1}{} (≤ {}) | {:.1} ({:.0} writes/s) | {:.2} | {:.1}{} (≤ {}) | {:.1} | {} | {:.1}{} ({}) | {:.1} | {:.1} | {}{} ({}); {} | {} ({}) | {:.2}{} (≤ {}) (+ {:.2}) |",
        sizes.companies,
        sizes.resources,
        sizes.foreign,
        if sizes.faults { ", faults" } else { "" },
        report.all_active.as_secs_f64(),
        verdict(report.all_active <= TARGET_ALL_ACTIVE),
        TARGET_ALL_ACTIVE.as_secs(),
        floor.map_or(0.0, |f| f.floor.as_secs_f64()),
        floor.map_or(0.0, |f| f.status_writes_per_second),
        ratio,
        report.peak_rss_mib,
        verdict(report.peak_rss_mib <= TARGET_PEAK_RSS_MIB),
        TARGET_PEAK_RSS_MIB,
        report.cpu_seconds,
        calls_until,
        per_poll(steady_max),
        verdict(steady_max <= sizes.steady_target()),
        sizes.pages(),
        per_poll(naive_max),
        if steady_max == 0 {
            0.0
        } else {
            naive_max as f64 / steady_max as f64
        },
        restart_max,
        verdict(restart_max <= sizes.pages() && restart_reads == 0),
        sizes.pages(),
        restart_reads,
        report.restart_fcc_writes,
        report.restart_versions_seen,
        report.writes_per_resource,
        verdict(report.writes_per_resource <= TARGET_WRITES_PER_RESOURCE),
        TARGET_WRITES_PER_RESOURCE,
        report.events_per_resource,
    );
    println!();
    let list = bench::list_calls;
    println!(
        "- N = {n}: operator ready {:.1} s after its start; all Active {:.1} s after it.",
        report.operator_ready.as_secs_f64(),
        report.all_active.as_secs_f64()
    );
    if let Some(f) = floor {
        println!(
            "- Floor: {} objects in a namespace the operator does not watch: creates at {:.0}/s, \
             status writes (server-side apply, {CONCURRENCY} at a time) at {:.0}/s. The \
             benchmark's own {n} creates ran at {:.0}/s.",
            f.objects, f.creates_per_second, f.status_writes_per_second, report.creates_per_second
        );
    }
    println!(
        "- Calls until all Active: {}.",
        list(&report.calls_until_active)
    );
    println!(
        "- Steady state, {} s window, active poll {} s: {} (all companies); per company {} to {} \
         calls (target ≤ {} = {} pages × {} polls); naive baseline: {} to {} per company \
         ({} failed).",
        sizes.steady.as_secs(),
        sizes.poll_active.as_secs(),
        list(&report.steady_by_endpoint),
        report.steady_by_company.values().min().unwrap_or(&0),
        steady_max,
        sizes.steady_target(),
        sizes.pages(),
        sizes.steady.as_secs() / sizes.poll_active.as_secs() + 1,
        report.naive_by_company.values().min().unwrap_or(&0),
        naive_max,
        report.naive_errors,
    );
    let mut restart_endpoints: BTreeMap<&str, u64> = BTreeMap::new();
    for calls in report.restart_by_company.values() {
        for (endpoint, count) in calls {
            *restart_endpoints.entry(endpoint).or_default() += count;
        }
    }
    println!(
        "- Restart (SIGTERM, new operator, until half an active poll interval after it is ready: \
         {:.1} s): {:?} over all companies; until a whole interval after ready ({:.1} s): {}; in \
         that time {} FCC writes at the API server (whole server), {} resource versions of ours \
         seen.",
        report.restart_window.as_secs_f64(),
        restart_endpoints,
        report.restart_interval.as_secs_f64(),
        list(&report.restart_interval_calls),
        report.restart_fcc_writes,
        report.restart_versions_seen
    );
    println!(
        "- Writes over the life: {:.2} per resource at the API server ({:.2} of them refused \
         with 409 Conflict), {:.2} versions per resource seen by the benchmark's watch.",
        report.writes_per_resource, report.conflicts_per_resource, report.versions_per_resource
    );
    for fault in &report.faults {
        println!("- Fault: {fault}.");
    }
    println!(
        "- Invariants: {} not Active, {} without exactly one connection, {} connections left \
         after the deletion. API key Secrets still guarded {} s after their last resource was \
         gone: {} of {}.",
        report.not_active.len(),
        report.not_exactly_one.len(),
        report.left_after_delete,
        GUARD_WAIT.as_secs(),
        report.guards_left,
        sizes.companies
    );
}
