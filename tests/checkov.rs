//! The chart's rendered manifests scanned by Checkov (the policy scanner platform teams run on
//! Kubernetes manifests), with the default values and with two replicas and every option on.
//! hack/checkov.yaml skips, by id and with the reason beside each, the checks the chart does not
//! pass on purpose; with it nothing may fail. Without it exactly those checks must fail, so a
//! skip can be neither removed nor left behind once the chart passes its check, and the options
//! that fix a check (image.digest, networkPolicy.enabled) are shown to fix it. A render with a
//! hardening turned off must fail the scan even with the skips: it is not vacuous.
//!
//! Checkov comes from `FCO_CHECKOV`, else from `hack/checkov.sh`, which installs it from PyPI into
//! the cache when it is not there yet (about 2 minutes); either way a missing Checkov fails the
//! tests. It runs offline: `--skip-download`, `BC_SKIP_MAPPING` and
//! `CKV_SKIP_PACKAGE_UPDATE_CHECK` stop every call to the Prisma Cloud platform and to PyPI.
//! helm must be on PATH (`eval "$(hack/testenv.sh env)"`); no cluster is needed.

use fastconnect_test_support as support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::Value;
use support::helm::{chart, helm_ok, repo_path};

const CONFIG: &str = "hack/checkov.yaml";
const RELEASE: &str = "fco";
const NAMESPACE: &str = "ops";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The checks that the options fix: they fail with the default values (hence skipped) and must
/// pass in the render with every option on.
const FIXED_BY_OPTIONS: [(&str, &str); 3] = [
    ("CKV_K8S_43", "image.digest"),
    (
        "CKV_K8S_15",
        "image.digest (a pinned image passes the pull policy check)",
    ),
    ("CKV2_K8S_6", "networkPolicy.enabled"),
];

/// The Checkov executable: `FCO_CHECKOV`, or installed (once per test binary) by hack/checkov.sh.
fn checkov() -> &'static Path {
    static CHECKOV: OnceLock<PathBuf> = OnceLock::new();
    CHECKOV
        .get_or_init(|| support::tools::installed("FCO_CHECKOV", "hack/checkov.sh", &[], "Checkov"))
}

/// `helm template` of the chart with `--set` values.
fn render(sets: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.as_str(),
        "--namespace",
        NAMESPACE,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm_ok(&args)
}

/// Two replicas (so leader election and the PodDisruptionBudget) and every option on.
fn every_option() -> String {
    let digest = format!("image.digest={DIGEST}");
    render(&[
        "replicas=2",
        &digest,
        "watchNamespaces={network}",
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={10.0.0.1/32,192.168.1.10/32}",
        "networkPolicy.metrics.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "grafanaDashboard.enabled=true",
        "metrics.utilizationInterval=5m",
    ])
}

/// The check ids hack/checkov.yaml skips, each of which must have its reason in a comment
/// right above it that names it.
fn skipped_ids() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_path(CONFIG)).expect("read hack/checkov.yaml");
    let config: Value = serde_saphyr::from_str(&text).expect("hack/checkov.yaml is YAML");
    let ids: BTreeSet<String> = config["skip-check"]
        .as_array()
        .expect("hack/checkov.yaml has a skip-check list")
        .iter()
        .map(|id| id.as_str().expect("a check id").to_owned())
        .collect();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for id in &ids {
        let at = lines
            .iter()
            .position(|l| *l == format!("- {id}"))
            .unwrap_or_else(|| panic!("{id} is not a `- {id}` line of {CONFIG}"));
        let comment: Vec<&str> = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .copied()
            .collect();
        assert!(
            comment
                .last()
                .is_some_and(|first| first.starts_with(&format!("# {id} ")))
                && comment.len() >= 2,
            "{CONFIG}: write why {id} is skipped in a comment right above it, starting `# {id}`"
        );
    }
    ids
}

struct Scan {
    failed: BTreeSet<String>,
    passed: BTreeSet<String>,
    /// Every failure as "id resource", for messages.
    failures: Vec<String>,
    resources: BTreeSet<String>,
}

/// Checkov on one render (a scan of its own: graph checks such as CKV2_K8S_6 connect objects
/// across every file of a scan), with hack/checkov.yaml's skips or with none.
fn scan(manifests: &str, with_config: bool) -> Scan {
    // HOME and the working directory are the temporary directory: Checkov also reads a
    // .checkov.yaml found in either, which would change what is skipped.
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("chart.yaml"), manifests).expect("write the render");
    let config = repo_path(CONFIG);
    let mut command = Command::new(checkov());
    command
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ])
        .args(["-f", "chart.yaml"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true");
    if with_config {
        command.arg("--config-file").arg(&config);
    }
    let out = command.output().expect("run checkov");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit status 1 means "checks failed"; anything else that is not JSON is Checkov failing.
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON report ({e}; exit {:?}):\n{stdout}\n{stderr}",
            out.status.code()
        )
    });
    assert_eq!(
        report["check_type"], "kubernetes",
        "one report, of the kubernetes framework: {report:#}"
    );
    assert_eq!(
        report["summary"]["parsing_errors"], 0,
        "checkov could not parse the render:\n{stderr}"
    );
    let results = &report["results"];
    let checks = |key: &str| -> Vec<&Value> {
        results[key]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let id = |c: &Value| c["check_id"].as_str().expect("a check id").to_owned();
    let resource = |c: &Value| c["resource"].as_str().expect("a resource").to_owned();
    let failed = checks("failed_checks");
    let passed = checks("passed_checks");
    Scan {
        failed: failed.iter().map(|c| id(c)).collect(),
        passed: passed.iter().map(|c| id(c)).collect(),
        failures: failed
            .iter()
            .map(|c| format!("{} {}: {}", id(c), c["check_name"], resource(c)))
            .collect(),
        resources: failed.iter().chain(&passed).map(|c| resource(c)).collect(),
    }
}

/// Runs the scans side by side (each is a Python process of a few CPU seconds).
fn scans(jobs: &[(&str, bool)]) -> Vec<Scan> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(manifests, with_config)| s.spawn(move || scan(manifests, *with_config)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scan panicked"))
            .collect()
    })
}

/// The objects Checkov has checks for must all have been scanned: a render it silently skipped
/// would pass every check.
fn assert_scanned(scan: &Scan, what: &str, objects: &[&str]) {
    for object in objects {
        assert!(
            scan.resources.iter().any(|r| r.starts_with(object)),
            "{what}: checkov did not check {object}; it checked {:#?}",
            scan.resources
        );
    }
}

#[test]
fn chart_passes_checkov_and_every_skip_is_needed() {
    let skipped = skipped_ids();
    let default = render(&[]);
    let full = every_option();
    let results = scans(&[
        (&default, true),
        (&full, true),
        (&default, false),
        (&full, false),
    ]);
    let [default_scan, full_scan, default_all, full_all] = results.as_slice() else {
        unreachable!("four scans")
    };

    // With the skips, nothing fails, in either render.
    for (what, scan) in [
        ("default values", default_scan),
        ("every option", full_scan),
    ] {
        assert!(
            scan.failures.is_empty(),
            "checkov with {CONFIG}, {what}: fix the chart, or skip the check in {CONFIG} with \
             the reason:\n{}",
            scan.failures.join("\n")
        );
        assert!(
            scan.passed.is_disjoint(&skipped),
            "{what}: a skipped check ran; is {CONFIG} read?"
        );
        assert_scanned(
            scan,
            what,
            &[
                "Deployment.ops.fco-fastconnect-operator",
                "ServiceAccount.ops.fco-fastconnect-operator",
                "Service.ops.fco-fastconnect-operator",
            ],
        );
    }
    assert_scanned(
        full_scan,
        "every option",
        &[
            "Role.network.fco-fastconnect-operator",
            "RoleBinding.network.fco-fastconnect-operator",
            "Role.ops.fco-fastconnect-operator-leader-election",
        ],
    );

    // Without them, exactly the skipped checks fail: every skip is still needed, and none hides
    // a failure it was not written for.
    let failing: BTreeSet<String> = default_all
        .failed
        .union(&full_all.failed)
        .cloned()
        .collect();
    assert_eq!(
        failing,
        skipped,
        "checkov without skips should fail exactly the checks {CONFIG} skips:\ndefault values:\n{}\nevery option:\n{}",
        default_all.failures.join("\n"),
        full_all.failures.join("\n")
    );
    // The token is mounted only where needed, with the default values too.
    assert!(
        default_all.passed.contains("CKV_K8S_38") && full_all.passed.contains("CKV_K8S_38"),
        "CKV_K8S_38 (service account tokens only where needed) should pass"
    );
    // What the options fix, they fix: with every option on, these pass.
    for (id, option) in FIXED_BY_OPTIONS {
        assert!(skipped.contains(id), "{id} is not skipped in {CONFIG}");
        assert!(
            default_all.failed.contains(id),
            "{id} passes with the default values: remove its skip from {CONFIG}"
        );
        assert!(
            full_all.passed.contains(id) && !full_all.failed.contains(id),
            "{id} should pass with {option}:\n{}",
            full_all.failures.join("\n")
        );
    }
}

#[test]
fn a_weakened_chart_fails_the_scan_despite_the_skips() {
    // Values a user may set, that undo two of the chart's hardenings.
    let weakened = render(&[
        "securityContext.readOnlyRootFilesystem=false",
        "securityContext.allowPrivilegeEscalation=true",
    ]);
    let scan = scan(&weakened, true);
    assert_eq!(
        scan.failed,
        BTreeSet::from(["CKV_K8S_20".to_owned(), "CKV_K8S_22".to_owned()]),
        "allowPrivilegeEscalation (CKV_K8S_20) and a writable root (CKV_K8S_22) should fail:\n{}",
        scan.failures.join("\n")
    );
}
