//! The chart's monitoring: the PrometheusRule's alerts checked and unit-tested with Prometheus's
//! own promtool (`promtool check rules`, `promtool test rules` with tests/alerts/*.test.yaml), and
//! the alerts and the Grafana dashboard naming only metrics the operator exports.
//!
//! promtool comes from `FCO_PROMTOOL` (hack/test.sh sets it), else from `hack/promtool.sh`, which
//! builds it from the Go module proxy when it is not in the cache yet; either way a missing
//! promtool fails the tests. helm must be on PATH (`eval "$(hack/testenv.sh env)"`).

use fastconnect_test_support as support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use fastconnect_operator::{
    consoleconnect::Endpoint,
    crd::Phase,
    metrics::{Metrics, TrafficKey},
};
use serde_json::Value;
use support::helm::{CHART, chart, helm_ok, repo_path};

const RELEASE: &str = "fco";
const NAMESPACE: &str = "ops";
const DASHBOARD: &str = "dashboards/fastconnect-operator.json";
const ALERTS: [&str; 6] = [
    "FastConnectConnectionFailed",
    "FastConnectAwaitingApprovalTooLong",
    "FastConnectConsoleConnectErrors",
    "FastConnectConsoleConnectThrottled",
    "FastConnectOperatorNoLeader",
    "FastConnectReconcileErrors",
];

// ---- promtool ------------------------------------------------------------------------------

/// The promtool binary: `FCO_PROMTOOL`, or built (once per test binary) by hack/promtool.sh.
fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        support::tools::installed(
            "FCO_PROMTOOL",
            "hack/promtool.sh",
            &["promtool"],
            "promtool",
        )
    })
}

struct Run {
    ok: bool,
    output: String,
}

/// `promtool args...` in `dir`.
fn run_promtool(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    Run {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

// ---- the chart's rules ---------------------------------------------------------------------

/// The PrometheusRule the chart renders as release `fco` in `ops` with the rules on and `sets`.
fn prometheus_rule(sets: &[&str]) -> Value {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.as_str(),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/prometheusrule.yaml",
        "--set",
        "prometheusRule.enabled=true",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let rendered = helm_ok(&args);
    let rule: Value = serde_saphyr::from_str(&rendered).expect("the PrometheusRule parses");
    assert_eq!(rule["kind"], "PrometheusRule", "{rendered}");
    rule
}

/// A directory with the PrometheusRule's `spec` as the plain rules file
/// `fastconnect.rules.yaml` (what the prometheus-operator hands Prometheus) and copies of the
/// named unit-test files of tests/alerts/.
fn rules_dir(sets: &[&str], tests: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = &prometheus_rule(sets)["spec"];
    let yaml = serde_saphyr::to_string(spec).expect("the rules serialize");
    std::fs::write(dir.path().join("fastconnect.rules.yaml"), yaml).expect("write the rules");
    for test in tests {
        std::fs::copy(
            repo_path(&format!("tests/alerts/{test}")),
            dir.path().join(test),
        )
        .unwrap_or_else(|e| panic!("copy tests/alerts/{test}: {e}"));
    }
    dir
}

fn alert_names(rule: &Value) -> Vec<String> {
    rule["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| r["alert"].as_str().expect("an alerting rule").to_owned())
        .collect()
}

fn alert<'a>(rule: &'a Value, name: &str) -> &'a Value {
    rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["alert"] == name)
        .unwrap_or_else(|| panic!("no alert {name} in {rule:#}"))
}

#[test]
fn promtool_checks_the_rules() {
    let dir = rules_dir(&[], &[]);
    let run = run_promtool(dir.path(), &["check", "rules", "fastconnect.rules.yaml"]);
    assert!(run.ok, "promtool check rules:\n{}", run.output);
    assert!(
        run.output
            .contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{}",
        run.output
    );
    // Each alert has what an on-call person needs.
    let rule = prometheus_rule(&[]);
    assert_eq!(alert_names(&rule), ALERTS);
    for name in ALERTS {
        let annotations = &alert(&rule, name)["annotations"];
        for key in ["summary", "description", "runbook"] {
            assert!(
                annotations[key].as_str().is_some_and(|s| !s.is_empty()),
                "{name} has no {key}: {annotations:#}"
            );
        }
    }
}

/// The check is real: a broken expression is refused.
#[test]
fn promtool_refuses_a_broken_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rules.yaml"),
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum by (job (fastconnect_leader)\n",
    )
    .unwrap();
    let run = run_promtool(dir.path(), &["check", "rules", "broken.rules.yaml"]);
    assert!(!run.ok, "{}", run.output);
}

#[test]
fn alerts_fire_and_stay_quiet_as_the_unit_tests_say() {
    let dir = rules_dir(&[], &["fastconnect.rules.test.yaml"]);
    let run = run_promtool(
        dir.path(),
        &["test", "rules", "fastconnect.rules.test.yaml"],
    );
    assert!(run.ok, "promtool test rules:\n{}", run.output);
    // Every alert is tested.
    let tests = std::fs::read_to_string(repo_path("tests/alerts/fastconnect.rules.test.yaml"))
        .expect("read the unit tests");
    for name in ALERTS {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "no unit test for {name}"
        );
    }
}

#[test]
fn the_approval_threshold_is_configurable() {
    let two_hours = ["prometheusRule.alerts.awaitingApproval.threshold=2h"];
    let dir = rules_dir(&two_hours, &["approval-2h.rules.test.yaml"]);
    let run = run_promtool(
        dir.path(),
        &["test", "rules", "approval-2h.rules.test.yaml"],
    );
    assert!(run.ok, "promtool test rules (2h):\n{}", run.output);

    // Each file's expectations hold only with its own threshold: the tests can tell them apart.
    let dir = rules_dir(&[], &["approval-2h.rules.test.yaml"]);
    let run = run_promtool(
        dir.path(),
        &["test", "rules", "approval-2h.rules.test.yaml"],
    );
    assert!(
        !run.ok && run.output.contains("FastConnectAwaitingApprovalTooLong"),
        "the 2h expectations should fail with the default 24h:\n{}",
        run.output
    );
    let dir = rules_dir(&two_hours, &["fastconnect.rules.test.yaml"]);
    let run = run_promtool(
        dir.path(),
        &["test", "rules", "fastconnect.rules.test.yaml"],
    );
    assert!(
        !run.ok && run.output.contains("FastConnectAwaitingApprovalTooLong"),
        "the 24h expectations should fail with 2h:\n{}",
        run.output
    );

    // Durations of several units add up.
    for (threshold, seconds) in [("1d12h", 129_600), ("90m", 5_400), ("1w", 604_800)] {
        let rule = prometheus_rule(&[&format!(
            "prometheusRule.alerts.awaitingApproval.threshold={threshold}"
        )]);
        let expr = alert(&rule, "FastConnectAwaitingApprovalTooLong")["expr"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            expr.ends_with(&format!("> {seconds}")),
            "{threshold}: {expr}"
        );
    }
}

#[test]
fn rule_values_reach_the_rules() {
    let rule = prometheus_rule(&[
        "prometheusRule.namespace=monitoring",
        "prometheusRule.labels.release=prom",
        "prometheusRule.selector=job=\"custom\"",
        "prometheusRule.alertLabels.team=network",
        "prometheusRule.runbookUrl=https://git.example.com/fco/README.md",
        "prometheusRule.alerts.noLeader.severity=page",
        "prometheusRule.alerts.noLeader.for=2m",
        "prometheusRule.alerts.consoleConnectErrors.percent=30",
        "prometheusRule.alerts.reconcileErrors.enabled=false",
    ]);
    assert_eq!(rule["metadata"]["namespace"], "monitoring");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        alert_names(&rule),
        &ALERTS[..5],
        "reconcileErrors is turned off"
    );
    let no_leader = alert(&rule, "FastConnectOperatorNoLeader");
    assert_eq!(no_leader["for"], "2m");
    assert_eq!(no_leader["labels"]["severity"], "page");
    assert_eq!(no_leader["labels"]["team"], "network");
    assert_eq!(
        no_leader["annotations"]["runbook_url"],
        "https://git.example.com/fco/README.md#fastconnectoperatornoleader"
    );
    assert!(
        no_leader["expr"]
            .as_str()
            .unwrap()
            .contains("absent(fastconnect_leader{job=\"custom\"})"),
        "{no_leader:#}"
    );
    let errors = alert(&rule, "FastConnectConsoleConnectErrors")["expr"]
        .as_str()
        .unwrap();
    assert!(errors.ends_with("> 0.3"), "{errors}");
    assert!(!errors.contains("namespace=\"ops\""), "{errors}");
}

// ---- the metrics the operator exports ------------------------------------------------------

/// Every series name the operator exports, from its text exposition, and the family names of
/// its histograms (which descriptions name). A family prints nothing until it has a child, so
/// one of each is recorded first through the operator's own recording methods.
fn exported_names() -> BTreeSet<String> {
    let metrics = Metrics::new();
    metrics.observe_request(Endpoint::GetConnection, Some(503), Duration::from_millis(5));
    metrics.reconcile_started().finish(Some("ApiUnreachable"));
    metrics.set_phases([(Some(Phase::AwaitingApproval), Some(Duration::from_secs(60)))]);
    metrics.left_phase(Phase::AwaitingApproval, Duration::from_secs(60));
    metrics.set_traffic(
        &TrafficKey {
            namespace: "network".into(),
            name: "hk-oracle".into(),
            connection_id: "c-1".into(),
        },
        1.0,
        2.0,
    );
    let text = metrics.render().expect("the metrics render");
    let mut names = BTreeSet::new();
    let mut families = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families += 1;
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                panic!("odd TYPE line {line:?}");
            };
            if kind == "histogram" {
                names.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            // A sample: its name runs up to the labels or the value.
            let name = line
                .split(['{', ' '])
                .next()
                .expect("a sample line has a name");
            names.insert(name.to_owned());
        }
    }
    // The 15 families registered when this was written (a new one this function does not
    // record would fail the tests that use it, loudly, rather than pass unchecked).
    assert!(families >= 15, "{families} families:\n{text}");
    names
}

/// Every `fastconnect_*` name in `text` (a metric, or a prefix of one such as in a regex).
fn named_metrics(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("fastconnect_") {
        let preceded_by_word = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !preceded_by_word {
            found.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    found
}

fn dashboard() -> Value {
    let path = repo_path(&format!("{CHART}/{DASHBOARD}"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every PromQL query of the dashboard: the panels' targets and the variables' queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("a target's expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if variable["type"] == "query" {
            queries.push(
                variable["query"]["query"]
                    .as_str()
                    .expect("a variable's query")
                    .to_owned(),
            );
        }
    }
    queries
}

#[test]
fn alerts_name_only_metrics_the_operator_exports() {
    let exported = exported_names();
    let rule = prometheus_rule(&[]);
    // Expressions and annotations (which quote queries) alike.
    let named = named_metrics(&serde_json::to_string(&rule["spec"]).unwrap());
    assert!(named.len() >= 7, "{named:?}");
    let unknown: Vec<_> = named.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the alerts name metrics the operator does not export: {unknown:?}\nexported: {exported:?}"
    );
}

#[test]
fn the_dashboard_names_only_metrics_the_operator_exports() {
    let exported = exported_names();
    let dashboard = dashboard();
    // Queries, descriptions and legends alike.
    let named = named_metrics(&dashboard.to_string());
    let unknown: Vec<_> = named.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics the operator does not export: {unknown:?}\nexported: {exported:?}"
    );
    // It shows what it is for: phases, API calls, reconcile latency, time in approval, traffic.
    let queried = named_metrics(&dashboard_queries(&dashboard).join("\n"));
    for needed in [
        "fastconnect_connections",
        "fastconnect_leader",
        "fastconnect_consoleconnect_requests_total",
        "fastconnect_consoleconnect_request_duration_seconds_bucket",
        "fastconnect_consoleconnect_throttled_total",
        "fastconnect_reconciles_total",
        "fastconnect_reconcile_failures_total",
        "fastconnect_reconcile_duration_seconds_bucket",
        "fastconnect_time_in_phase_seconds_bucket",
        "fastconnect_time_in_phase_max_seconds",
        "fastconnect_time_to_ready_seconds_bucket",
        "fastconnect_connection_traffic_mbps",
    ] {
        assert!(queried.contains(needed), "no panel queries {needed}");
    }
}

/// Grafana loads it: a uid, unique panel ids, every query on the data source variable and
/// scoped by the job and namespace variables; and promtool parses every query.
#[test]
fn the_dashboard_is_well_formed_and_its_queries_parse() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "fastconnect-operator");
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().expect("a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "duplicate id: {title}"
        );
        for key in ["x", "y", "w", "h"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            panel["description"].is_string(),
            "{title} has no description"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains(r#"job=~"$job",namespace=~"$namespace""#),
                "{title}: not scoped by $job and $namespace: {expr}"
            );
        }
    }

    // Every query as a recording rule, with Grafana's variables replaced, through promtool.
    let rules: Vec<Value> = dashboard_queries(&dashboard)
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let expr = q
                .replace("$__rate_interval", "5m")
                .replace("$job", ".+")
                .replace("$namespace", ".*");
            // label_values(...) is Grafana's, not PromQL: check the selector inside it.
            let expr = match expr.strip_prefix("label_values(") {
                Some(inner) => inner
                    .rsplit_once(',')
                    .expect("label_values(selector, label)")
                    .0
                    .to_owned(),
                None => expr,
            };
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dashboard.rules.yaml"),
        serde_saphyr::to_string(&file).unwrap(),
    )
    .unwrap();
    let run = run_promtool(dir.path(), &["check", "rules", "dashboard.rules.yaml"]);
    assert!(run.ok, "the dashboard's queries:\n{}", run.output);
}
