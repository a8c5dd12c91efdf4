//! The Helm chart (deploy/helm/fastconnect-operator) as a user meets it: `helm lint`, the values
//! schema, the rendered manifests validated by the real API server, `helm install` into the local
//! control plane, the operator run with the token of the chart's ServiceAccount (so the chart's
//! RBAC is all it has) taking the sample to Active, and `helm uninstall` leaving nothing behind.
//!
//! Run with `eval "$(hack/testenv.sh env)"; cargo test --test helm` (helm and kubectl on PATH).

use fastconnect_test_support as support;

use std::{collections::BTreeSet, io::Write, path::Path, time::Duration};

use fastconnect_operator::crd::{CRD_PATH, FastConnectConnection, Phase, crd_yaml};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::{
    apps::v1::Deployment,
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    coordination::v1::Lease,
    core::v1::{Event as CoreEvent, Service, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
    config::Kubeconfig,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{
    cluster,
    helm::{CHART, Output, Release, chart, helm_fails, helm_ok, repo_path, run},
    operator::Operator,
    sandbox::{self, Sandbox},
};

const WAIT: Duration = Duration::from_secs(90);

// ---- helm and kubectl ----------------------------------------------------------------------

/// `helm template` of the chart as release `release` in `namespace`, with `--set` values.
fn template(release: &str, namespace: &str, sets: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        release,
        chart.as_str(),
        "--namespace",
        namespace,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm_ok(&args)
}

/// The documents of a multi-document YAML stream, empty ones left out.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one_of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(
        found.len(),
        1,
        "expected one {kind}, got {}: {docs:#?}",
        found.len()
    );
    found[0]
}

fn typed<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).expect("a valid Kubernetes object")
}

/// The env of the operator container as name → value (`valueFrom` as its field path).
fn container_env(deployment: &Deployment) -> Vec<(String, String)> {
    let container = &deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    container
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let value = match (e.value, e.value_from) {
                (Some(v), _) => v,
                (None, Some(from)) => {
                    format!("fieldRef:{}", from.field_ref.expect("fieldRef").field_path)
                }
                (None, None) => String::new(),
            };
            (e.name, value)
        })
        .collect()
}

fn env_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

// ---- the chart without a cluster -----------------------------------------------------------

#[test]
fn chart_crd_is_byte_identical_to_the_generated_crd() {
    let top = std::fs::read(repo_path(CRD_PATH)).expect("read the top-level CRD");
    let file_name = Path::new(CRD_PATH).file_name().unwrap().to_str().unwrap();
    let in_chart_path = repo_path(&format!("{CHART}/crds/{file_name}"));
    let in_chart = std::fs::read(&in_chart_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", in_chart_path.display()));
    assert!(
        top == in_chart,
        "{} differs from {CRD_PATH}: run `cargo run --bin crdgen` (it writes both)",
        in_chart_path.display()
    );
    assert_eq!(in_chart, crd_yaml().expect("the CRD renders").into_bytes());
    // The chart has no other CRD and nothing else in crds/ (Helm would install it).
    let entries: Vec<_> = std::fs::read_dir(repo_path(&format!("{CHART}/crds")))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, [file_name]);
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_path(&format!("{CHART}/Chart.yaml"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "bump appVersion in Chart.yaml"
    );
    assert_eq!(chart["name"], "fastconnect-operator");
}

#[test]
fn helm_lint_passes_with_default_and_with_every_value_set() {
    let chart = chart();
    let out = helm_ok(&["lint", "--strict", &chart]);
    assert!(out.contains("0 chart(s) failed"), "{out}");

    let mut values = tempfile::NamedTempFile::new().unwrap();
    values
        .write_all(
            br#"
image: {repository: registry.example.com/fastconnect-operator, tag: "0.1.0", digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
nameOverride: fco
fullnameOverride: fco-operator
apiBaseUrl: http://consoleconnect-sandbox.demo:8088
logLevel: info,fastconnect_operator=debug
logFormat: text
watchNamespaces: [network, team-b]
replicas: 3
leaderElection: {enabled: auto, leaseName: fco-leader, leaseDuration: 30s}
pollIntervals: {progress: 2s, active: 5m}
extraEnv: [{name: FCO_BACKOFF_MAX, value: 10m}]
serviceAccount: {create: true, name: fco-sa, annotations: {team: network}, tokenExpirationSeconds: 7200}
rbac: {create: true}
metrics: {port: 9090, utilizationInterval: 5m}
service: {type: ClusterIP, port: 9090, annotations: {a: b}}
serviceMonitor: {enabled: true, interval: 15s, scrapeTimeout: 5s, labels: {release: prometheus}}
prometheusRule:
  enabled: true
  namespace: monitoring
  labels: {release: prometheus}
  selector: job="fco-operator"
  alertLabels: {team: network}
  runbookUrl: https://git.example.com/network/fastconnect-operator/blob/main/README.md
  alerts:
    connectionFailed: {enabled: true, for: 10m, severity: warning}
    awaitingApproval: {enabled: true, threshold: 2d, for: 0s, severity: info}
    consoleConnectErrors: {enabled: true, percent: 20, for: 30m, severity: warning}
    consoleConnectThrottled: {enabled: false, percent: 2.5, for: 1h, severity: warning}
    noLeader: {enabled: true, for: 2m, severity: page}
    reconcileErrors: {enabled: true, percent: 50, for: 1h30m, severity: warning}
grafanaDashboard: {enabled: true, namespace: grafana, sidecarLabel: grafana_dashboard, sidecarLabelValue: "1", labels: {team: network}, annotations: {grafana_folder: Network}}
podDisruptionBudget: {enabled: true}
networkPolicy:
  enabled: true
  apiServer: {cidrs: [10.0.0.1/32, 192.168.1.10/32], ports: [443, 6443]}
  consoleConnect: {cidrs: [203.0.113.0/24], ports: [8088]}
  dns: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchExpressions: [{key: k8s-app, operator: In, values: [kube-dns, coredns]}]}}
  metrics: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}, podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}}
  extraEgress: [{to: [{ipBlock: {cidr: 169.254.20.10/32}}], ports: [{port: 53, protocol: UDP}]}]
resources: {requests: {cpu: 20m, memory: 64Mi}, limits: {memory: 256Mi}}
podAnnotations: {example.com/owner: network-team}
podLabels: {team: network}
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}]}}}
"#,
        )
        .unwrap();
    let path = values.path().to_str().unwrap();
    let out = helm_ok(&["lint", "--strict", &chart, "-f", path]);
    assert!(out.contains("0 chart(s) failed"), "{out}");

    // The same values render what they say.
    let docs = documents(&helm_ok(&[
        "template", "r1", &chart, "-n", "ops", "-f", path,
    ]));
    let deployment: Deployment = typed(one_of_kind(&docs, "Deployment"));
    assert_eq!(deployment.metadata.name.as_deref(), Some("fco-operator"));
    let env = container_env(&deployment);
    assert_eq!(
        env_value(&env, "FCO_API_BASE_URL").as_deref(),
        Some("http://consoleconnect-sandbox.demo:8088")
    );
    assert_eq!(
        env_value(&env, "FCO_NAMESPACES").as_deref(),
        Some("network,team-b")
    );
    assert_eq!(
        env_value(&env, "RUST_LOG").as_deref(),
        Some("info,fastconnect_operator=debug")
    );
    assert_eq!(env_value(&env, "FCO_LOG_FORMAT").as_deref(), Some("text"));
    assert_eq!(
        env_value(&env, "FCO_LISTEN").as_deref(),
        Some("0.0.0.0:9090")
    );
    assert_eq!(env_value(&env, "FCO_POLL_PROGRESS").as_deref(), Some("2s"));
    assert_eq!(env_value(&env, "FCO_POLL_ACTIVE").as_deref(), Some("5m"));
    assert_eq!(
        env_value(&env, "FCO_UTILIZATION_INTERVAL").as_deref(),
        Some("5m")
    );
    assert_eq!(
        env_value(&env, "FCO_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_value(&env, "FCO_LEASE_NAME").as_deref(),
        Some("fco-leader")
    );
    assert_eq!(
        env_value(&env, "FCO_LEASE_DURATION").as_deref(),
        Some("30s")
    );
    assert_eq!(env_value(&env, "FCO_BACKOFF_MAX").as_deref(), Some("10m"));
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("fco-sa"));
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some(
            "registry.example.com/fastconnect-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ),
        "the digest pins the image; the tag is ignored"
    );
    assert_eq!(
        token_source(&deployment)["expirationSeconds"],
        7200,
        "serviceAccount.tokenExpirationSeconds"
    );
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        one_of_kind(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );
    let policy = one_of_kind(&docs, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["egress"][1],
        json!({"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 8088, "protocol": "TCP"}]})
    );
    assert_eq!(
        policy["spec"]["egress"][3],
        json!({"to": [{"ipBlock": {"cidr": "169.254.20.10/32"}}], "ports": [{"port": 53, "protocol": "UDP"}]})
    );
    assert_eq!(
        policy["spec"]["ingress"][0]["from"],
        json!([{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }])
    );
    assert_eq!(
        of_kind(&docs, "Role").len(),
        3,
        "two watched namespaces and the lease"
    );
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
    let rule = one_of_kind(&docs, "PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "monitoring");
    assert_eq!(
        rule["spec"]["groups"][0]["rules"].as_array().unwrap().len(),
        5,
        "one alert is off"
    );
    let dashboard = one_of_kind(&docs, "ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Network"
    );
}

#[test]
fn values_schema_rejects_wrong_types_and_unknown_keys() {
    let chart = chart();
    // (value, the path the error must name)
    let cases = [
        ("replicas=two", "/replicas"),
        ("watchNamespaces=network", "/watchNamespaces"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces/0"),
        ("image.tag=2", "/image/tag"),
        (
            "leaderElection.enabled=sometimes",
            "/leaderElection/enabled",
        ),
        ("logFormat=xml", "/logFormat"),
        ("pollIntervals.progress=soon", "/pollIntervals/progress"),
        (
            "leaderElection.leaseDuration=15",
            "/leaderElection/leaseDuration",
        ),
        ("metrics.port=http", "/metrics/port"),
        (
            "metrics.utilizationInterval=often",
            "/metrics/utilizationInterval",
        ),
        ("serviceMonitor.enabled=yes", "/serviceMonitor/enabled"),
        ("prometheusRule.enabled=yes", "/prometheusRule/enabled"),
        (
            "prometheusRule.alerts.awaitingApproval.threshold=1 day",
            "/prometheusRule/alerts/awaitingApproval/threshold",
        ),
        (
            "prometheusRule.alerts.consoleConnectErrors.percent=200",
            "/prometheusRule/alerts/consoleConnectErrors/percent",
        ),
        (
            "prometheusRule.alerts.noLeader.for=5",
            "/prometheusRule/alerts/noLeader/for",
        ),
        (
            "prometheusRule.alerts.noLeader.for=30s5m",
            "/prometheusRule/alerts/noLeader/for",
        ),
        ("prometheusRule.alerts.noLeaderr.enabled=true", "noLeaderr"),
        (
            "prometheusRule.runbookUrl=README.md",
            "/prometheusRule/runbookUrl",
        ),
        ("grafanaDashboard.enabled=yes", "/grafanaDashboard/enabled"),
        (
            "grafanaDashboard.sidecarLabelValue=1",
            "/grafanaDashboard/sidecarLabelValue",
        ),
        ("apiBaseUrl=api.consoleconnect.com", "/apiBaseUrl"),
        ("replica=2", "replica"),
        ("image.digest=latest", "/image/digest"),
        ("image.digest=sha256:abc", "/image/digest"),
        (
            "serviceAccount.tokenExpirationSeconds=60",
            "/serviceAccount/tokenExpirationSeconds",
        ),
        (
            "podDisruptionBudget.enabled=yes",
            "/podDisruptionBudget/enabled",
        ),
        ("networkPolicy.enabled=yes", "/networkPolicy/enabled"),
        (
            "networkPolicy.apiServer.cidrs={10.0.0.1}",
            "/networkPolicy/apiServer/cidrs/0",
        ),
        (
            "networkPolicy.apiServer.ports={https}",
            "/networkPolicy/apiServer/ports/0",
        ),
        (
            "networkPolicy.consoleConnect.ports={70000}",
            "/networkPolicy/consoleConnect/ports/0",
        ),
        (
            "networkPolicy.dns.podSelector.labels.app=dns",
            "/networkPolicy/dns/podSelector",
        ),
        ("networkPolicy.egress=x", "egress"),
    ];
    for (set, path) in cases {
        for command in ["lint", "template"] {
            let out = helm_fails(&[command, &chart, "--set", set]);
            assert!(
                out.contains("schema") && out.contains(path),
                "helm {command} --set {set}: the error should name {path}:\n{out}"
            );
        }
    }
    // A durations and URL that are fine pass.
    template(
        "ok",
        "ops",
        &[
            "pollIntervals.progress=1m30s",
            "apiBaseUrl=http://127.0.0.1:8088",
        ],
    );
}

#[test]
fn leader_election_follows_the_replicas() {
    let lease_roles = |docs: &[Value]| -> Vec<Value> {
        of_kind(docs, "Role")
            .into_iter()
            .filter(|r| r["rules"].to_string().contains("leases"))
            .cloned()
            .collect()
    };
    let env_of = |docs: &[Value]| container_env(&typed(one_of_kind(docs, "Deployment")));

    // One replica, auto: off, and the Deployment never runs two operators at once.
    let docs = documents(&template("le", "ops", &[]));
    assert!(lease_roles(&docs).is_empty());
    assert_eq!(
        env_value(&env_of(&docs), "FCO_LEADER_ELECTION").as_deref(),
        Some("false")
    );
    assert_eq!(
        one_of_kind(&docs, "Deployment")["spec"]["strategy"]["type"],
        "Recreate"
    );

    // More replicas, auto: on, with a Role for exactly one Lease in the release namespace.
    let docs = documents(&template("le", "ops", &["replicas=2"]));
    let roles = lease_roles(&docs);
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["namespace"], "ops");
    let env = env_of(&docs);
    assert_eq!(
        env_value(&env, "FCO_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_value(&env, "FCO_LEASE_NAME").as_deref(),
        Some("le-fastconnect-operator")
    );
    assert_eq!(
        env_value(&env, "POD_NAMESPACE").as_deref(),
        Some("fieldRef:metadata.namespace")
    );
    let named: Vec<&Value> = roles[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["resourceNames"].is_null())
        .collect();
    assert_eq!(named.len(), 1);
    assert_eq!(
        named[0]["resourceNames"],
        json!(["le-fastconnect-operator"])
    );
    // Followers are ready, so a rollout surges one ready pod before it stops an old one, and
    // never has fewer ready replicas than asked for.
    let rolling = json!({
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}
    });
    assert_eq!(
        one_of_kind(&docs, "Deployment")["spec"]["strategy"],
        rolling
    );

    // Forced on with one replica (rolls the same way); forced off with two is refused.
    let docs = documents(&template("le", "ops", &["leaderElection.enabled=true"]));
    assert_eq!(lease_roles(&docs).len(), 1);
    assert_eq!(
        one_of_kind(&docs, "Deployment")["spec"]["strategy"],
        rolling
    );
    let out = helm_fails(&[
        "template",
        &chart(),
        "--set",
        "replicas=2",
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert!(out.contains("replicas > 1 needs leader election"), "{out}");
}

/// Every rule of every (Cluster)Role, with where it applies.
fn rules(docs: &[Value]) -> Vec<(String, Option<String>, Value)> {
    docs.iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .flat_map(|d| {
            let ns = d["metadata"]["namespace"].as_str().map(str::to_owned);
            let kind = d["kind"].as_str().unwrap().to_owned();
            d["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |r| (kind.clone(), ns.clone(), r.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn rbac_is_least_privilege_in_both_modes() {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    for (sets, cluster_wide) in [
        (vec!["replicas=2"], true),
        (
            vec!["watchNamespaces={network,team-b}", "replicas=2"],
            false,
        ),
    ] {
        let docs = documents(&template("least", "ops", &sets));
        let all = rules(&docs);
        for (kind, ns, rule) in &all {
            let verbs = strings(&rule["verbs"]);
            let resources = strings(&rule["resources"]);
            assert!(
                !verbs.contains("*") && !resources.contains("*"),
                "no wildcards: {rule}"
            );
            assert!(
                !strings(&rule["apiGroups"]).contains("*"),
                "no wildcards: {rule}"
            );
            if resources.contains("secrets") {
                assert_eq!(
                    verbs,
                    set(&["get", "patch"]),
                    "Secrets: get, and patch for the finalizer ({kind} in {ns:?})"
                );
            }
            if resources.contains("leases") {
                assert_eq!(
                    (kind.as_str(), ns.as_deref()),
                    ("Role", Some("ops")),
                    "leases only in the release namespace"
                );
            }
            let expected = match resources.iter().next().map(String::as_str) {
                Some("fastconnectconnections") => set(&["get", "list", "watch", "patch"]),
                Some("fastconnectconnections/status") => set(&["get", "patch"]),
                Some("fastconnectconnections/finalizers") => set(&["update"]),
                Some("events") => set(&["create", "patch"]),
                Some("secrets") => set(&["get", "patch"]),
                Some("leases") if rule["resourceNames"].is_null() => set(&["create"]),
                Some("leases") => set(&["get", "update", "patch"]),
                other => panic!("unexpected rule for {other:?}: {rule}"),
            };
            assert_eq!(verbs, expected, "{rule}");
            assert_eq!(resources.len(), 1, "one resource per rule: {rule}");
        }
        let cluster_roles = of_kind(&docs, "ClusterRole");
        let cluster_bindings = of_kind(&docs, "ClusterRoleBinding");
        if cluster_wide {
            assert_eq!(cluster_roles.len(), 1);
            assert_eq!(cluster_bindings.len(), 1);
            assert_eq!(
                cluster_roles[0]["metadata"]["name"],
                "least-fastconnect-operator"
            );
        } else {
            assert!(
                cluster_roles.is_empty() && cluster_bindings.is_empty(),
                "nothing cluster-wide"
            );
            for ns in ["network", "team-b"] {
                let in_ns = |kind: &str| {
                    of_kind(&docs, kind)
                        .into_iter()
                        .filter(|d| d["metadata"]["namespace"] == ns)
                        .count()
                };
                assert_eq!((in_ns("Role"), in_ns("RoleBinding")), (1, 1), "{ns}");
            }
            let secret_rules: Vec<_> = all
                .iter()
                .filter(|(_, _, r)| strings(&r["resources"]).contains("secrets"))
                .map(|(_, ns, _)| ns.clone().unwrap_or_default())
                .collect();
            assert_eq!(
                secret_rules,
                ["network", "team-b"],
                "Secrets only where it watches"
            );
        }
        // Every binding names the chart's ServiceAccount in the release namespace.
        for binding in of_kind(&docs, "RoleBinding")
            .into_iter()
            .chain(cluster_bindings)
        {
            assert_eq!(
                binding["subjects"],
                json!([{"kind": "ServiceAccount", "name": "least-fastconnect-operator", "namespace": "ops"}])
            );
        }
    }
}

#[test]
fn deployment_is_hardened_and_probed() {
    let docs = documents(&template("hard", "ops", &[]));
    let deployment: Deployment = typed(one_of_kind(&docs, "Deployment"));
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let psc = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(
        psc.seccomp_profile.expect("seccomp").type_,
        "RuntimeDefault"
    );
    let container = &pod.containers[0];
    let sc = container
        .security_context
        .clone()
        .expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    let resources = container.resources.clone().expect("resources");
    let requests = resources.requests.expect("requests");
    assert_eq!(requests["cpu"].0, "10m");
    assert_eq!(requests["memory"].0, "32Mi");
    assert_eq!(resources.limits.expect("limits")["memory"].0, "128Mi");
    let port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("metrics"), 8080)
    );
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = probe
            .clone()
            .and_then(|p| p.http_get)
            .expect("an httpGet probe");
        (get.path, serde_json::to_value(get.port).unwrap())
    };
    assert_eq!(
        probe_path(&container.liveness_probe),
        (Some("/healthz".into()), json!("metrics"))
    );
    assert_eq!(
        probe_path(&container.readiness_probe),
        (Some("/readyz".into()), json!("metrics"))
    );
    let env = container_env(&deployment);
    assert_eq!(
        env_value(&env, "POD_NAME").as_deref(),
        Some("fieldRef:metadata.name")
    );
    assert_eq!(
        env_value(&env, "POD_NAMESPACE").as_deref(),
        Some("fieldRef:metadata.namespace")
    );
    assert_eq!(env_value(&env, "FCO_NAMESPACES").as_deref(), Some(""));
    assert_eq!(
        env_value(&env, "FCO_UTILIZATION_INTERVAL"),
        None,
        "traffic reads are opt-in"
    );
    assert_eq!(
        env_value(&env, "FCO_LISTEN").as_deref(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(
        container.image.as_deref(),
        Some(format!("fastconnect-operator:{}", env!("CARGO_PKG_VERSION")).as_str())
    );

    // The Service selects these pods and exposes the metrics port.
    let service: Service = typed(one_of_kind(&docs, "Service"));
    let selector = service.spec.as_ref().unwrap().selector.clone().unwrap();
    let pod_labels = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{selector:?} vs {pod_labels:?}"
    );
    assert_eq!(
        service.spec.unwrap().ports.unwrap()[0].name.as_deref(),
        Some("metrics")
    );
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The pod template's spec of the one Deployment in `docs`.
fn pod_spec(docs: &[Value]) -> Value {
    one_of_kind(docs, "Deployment")["spec"]["template"]["spec"].clone()
}

/// The `serviceAccountToken` source of the operator's projected token volume.
fn token_source(deployment: &Deployment) -> Value {
    let pod = serde_json::to_value(deployment).unwrap()["spec"]["template"]["spec"].clone();
    pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .flat_map(|v| {
            v["projected"]["sources"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|s| !s["serviceAccountToken"].is_null())
        .expect("a projected serviceAccountToken")["serviceAccountToken"]
        .clone()
}

#[test]
fn service_account_token_is_mounted_only_in_the_operator_container() {
    // The chart's ServiceAccount hands no token to pods that do not ask for one.
    let docs = documents(&template("tok", "ops", &[]));
    assert_eq!(
        one_of_kind(&docs, "ServiceAccount")["automountServiceAccountToken"],
        false
    );
    // With the chart's ServiceAccount or one of the user's, the pod mounts no token of its own
    // accord; the operator container mounts, read-only where kube-rs looks for it, what the
    // automatic mount would project: a token bound to the pod, the cluster CA, the namespace.
    for sets in [
        vec![],
        vec![
            "serviceAccount.create=false",
            "serviceAccount.name=existing",
        ],
    ] {
        let docs = documents(&template("tok", "ops", &sets));
        let pod = pod_spec(&docs);
        assert_eq!(pod["automountServiceAccountToken"], false, "{sets:?}");
        assert_eq!(
            pod["volumes"],
            json!([{"name": "api-access", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}}]),
            "{sets:?}"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(
            containers[0]["volumeMounts"],
            json!([{
                "name": "api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": true,
            }]),
            "{sets:?}"
        );
    }
    let docs = documents(&template(
        "tok",
        "ops",
        &[
            "serviceAccount.create=false",
            "serviceAccount.name=existing",
        ],
    ));
    assert!(of_kind(&docs, "ServiceAccount").is_empty());
    assert_eq!(pod_spec(&docs)["serviceAccountName"], "existing");
}

#[test]
fn image_digest_pins_the_image() {
    let image = |sets: &[&str]| -> String {
        pod_spec(&documents(&template("img", "ops", sets)))["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(image(&["image.tag=1.2.3"]), "fastconnect-operator:1.2.3");
    let digest = format!("image.digest={DIGEST}");
    assert_eq!(
        image(&["image.tag=1.2.3", &digest]),
        format!("fastconnect-operator@{DIGEST}"),
        "the tag is ignored"
    );
    assert_eq!(
        image(&["image.repository=registry.example.com:5000/fco", &digest]),
        format!("registry.example.com:5000/fco@{DIGEST}")
    );
}

#[test]
fn pod_disruption_budget_only_with_more_than_one_replica() {
    let budgets = |sets: &[&str]| -> Vec<Value> {
        of_kind(
            &documents(&template("pdb", "ops", sets)),
            "PodDisruptionBudget",
        )
        .into_iter()
        .cloned()
        .collect()
    };
    assert!(
        budgets(&[]).is_empty(),
        "one replica: a budget would block every drain of its node"
    );
    assert!(budgets(&["replicas=2", "podDisruptionBudget.enabled=false"]).is_empty());
    assert!(budgets(&["leaderElection.enabled=true"]).is_empty());
    let docs = documents(&template("pdb", "ops", &["replicas=3"]));
    let budget = one_of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(budget["metadata"]["namespace"], "ops");
    assert_eq!(
        budget["spec"],
        json!({
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": one_of_kind(&docs, "Deployment")["spec"]["selector"],
        }),
        "one replica at a time, and it selects exactly the Deployment's pods"
    );
}

#[test]
fn network_policy_is_optional_and_allows_only_the_operators_traffic() {
    assert!(of_kind(&documents(&template("np", "ops", &[])), "NetworkPolicy").is_empty());
    // Enabled without the API server's addresses: refused, saying where to find them.
    let out = helm_fails(&["template", &chart(), "--set", "networkPolicy.enabled=true"]);
    assert!(
        out.contains("networkPolicy.apiServer.cidrs is empty")
            && out.contains("kubectl get endpoints kubernetes"),
        "{out}"
    );

    let on = [
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={10.0.0.1/32,192.168.1.10/32}",
    ];
    let docs = documents(&template("np", "ops", &on));
    let policy = one_of_kind(&docs, "NetworkPolicy");
    let deployment = one_of_kind(&docs, "Deployment");
    assert_eq!(policy["metadata"]["namespace"], "ops");
    assert_eq!(
        policy["spec"]["podSelector"], deployment["spec"]["selector"],
        "it selects exactly the operator's pods"
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    // In: the metrics port only (the container's port of that name), from anyone by default.
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": "metrics", "protocol": "TCP"}]}])
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    // Out: the API server, Console Connect (any address: it publishes no range, but its port
    // only), DNS to kube-dns; nothing else.
    assert_eq!(
        policy["spec"]["egress"],
        json!([
            {
                "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "192.168.1.10/32"}}],
                "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
            },
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443, "protocol": "TCP"}]},
            {
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }],
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
            },
        ])
    );

    // Console Connect's port follows apiBaseUrl unless listed.
    for (url, port) in [
        ("http://10.244.0.1:8088/", 8088),
        ("http://consoleconnect-sandbox.demo/", 80),
        ("https://api.example.com:8443/", 8443),
    ] {
        let set = format!("apiBaseUrl={url}");
        let mut sets = on.to_vec();
        sets.push(&set);
        let docs = documents(&template("np", "ops", &sets));
        assert_eq!(
            one_of_kind(&docs, "NetworkPolicy")["spec"]["egress"][1]["ports"],
            json!([{"port": port, "protocol": "TCP"}]),
            "{url}"
        );
    }

    // Metrics from Prometheus only: a podSelector alone means the release namespace's pods.
    let mut sets = on.to_vec();
    sets.push("networkPolicy.metrics.podSelector.matchLabels.app=prometheus");
    let docs = documents(&template("np", "ops", &sets));
    assert_eq!(
        one_of_kind(&docs, "NetworkPolicy")["spec"]["ingress"][0]["from"],
        json!([{"podSelector": {"matchLabels": {"app": "prometheus"}}}])
    );
}

#[test]
fn service_monitor_is_optional() {
    let docs = documents(&template("sm", "ops", &[]));
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    let docs = documents(&template(
        "sm",
        "ops",
        &[
            "serviceMonitor.enabled=true",
            "serviceMonitor.labels.release=prom",
        ],
    ));
    let monitor = one_of_kind(&docs, "ServiceMonitor");
    let service = one_of_kind(&docs, "Service");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects the Service"
        );
    }
}

#[test]
fn prometheus_rule_and_dashboard_are_optional() {
    let docs = documents(&template("mon", "ops", &[]));
    assert!(of_kind(&docs, "PrometheusRule").is_empty());
    assert!(of_kind(&docs, "ConfigMap").is_empty());

    let docs = documents(&template(
        "mon",
        "ops",
        &[
            "prometheusRule.enabled=true",
            "grafanaDashboard.enabled=true",
        ],
    ));
    let rule = one_of_kind(&docs, "PrometheusRule");
    assert_eq!(rule["metadata"]["name"], "mon-fastconnect-operator");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    // By default the alerts select the series of the chart's ServiceMonitor's targets: job is
    // the Service's name.
    let service = one_of_kind(&docs, "Service");
    let expr = rule["spec"]["groups"][0]["rules"][0]["expr"]
        .as_str()
        .unwrap();
    assert!(
        expr.contains(&format!(
            "job=\"{}\",namespace=\"ops\"",
            service["metadata"]["name"].as_str().unwrap()
        )),
        "{expr}"
    );

    let dashboard = one_of_kind(&docs, "ConfigMap");
    assert_eq!(
        dashboard["metadata"]["name"],
        "mon-fastconnect-operator-dashboard"
    );
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    // The chart's dashboard file, unchanged.
    let file = std::fs::read_to_string(repo_path(&format!(
        "{CHART}/dashboards/fastconnect-operator.json"
    )))
    .unwrap();
    let data = dashboard["data"]["fastconnect-operator.json"]
        .as_str()
        .unwrap();
    assert_eq!(data.trim_end(), file.trim_end());
    let parsed: Value = serde_json::from_str(data).expect("the dashboard is JSON");
    assert_eq!(parsed["uid"], "fastconnect-operator");

    // Another sidecar label and namespace.
    let docs = documents(&template(
        "mon",
        "ops",
        &[
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.sidecarLabel=dashboards.example.com/load",
            "grafanaDashboard.sidecarLabelValue=yes",
            "grafanaDashboard.namespace=grafana",
        ],
    ));
    let dashboard = one_of_kind(&docs, "ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    let labels = &dashboard["metadata"]["labels"];
    assert_eq!(labels["dashboards.example.com/load"], "yes");
    assert!(labels["grafana_dashboard"].is_null(), "{labels}");
}

// ---- the chart in the real control plane ---------------------------------------------------

/// `kubectl apply --dry-run=server` of `manifests`: the API server validates every object.
fn server_dry_run(manifests: &str) -> Output {
    run(
        "kubectl",
        &["apply", "--dry-run=server", "-f", "-"],
        Some(manifests),
    )
}

#[tokio::test]
async fn rendered_chart_is_accepted_by_the_api_server() {
    let client = cluster::client().await;
    let release_ns = cluster::test_namespace(&client, "helm-dry").await;
    let watched = [
        cluster::test_namespace(&client, "helm-dry-a").await,
        cluster::test_namespace(&client, "helm-dry-b").await,
    ];
    let watch_set = format!("watchNamespaces={{{}}}", watched.join(","));
    let digest_set = format!("image.digest={DIGEST}");
    // Every option of the chart's security: the NetworkPolicy (with every kind of rule), the
    // PodDisruptionBudget (two replicas), the digest, the projected token.
    let secured = vec![
        "replicas=2",
        digest_set.as_str(),
        "serviceAccount.tokenExpirationSeconds=7200",
        "networkPolicy.enabled=true",
        "networkPolicy.apiServer.cidrs={10.0.0.1/32,fd00::1/128}",
        "networkPolicy.metrics.namespaceSelector.matchLabels.team=monitoring",
        "networkPolicy.metrics.podSelector.matchExpressions[0].key=app",
        "networkPolicy.metrics.podSelector.matchExpressions[0].operator=Exists",
        "networkPolicy.extraEgress[0].to[0].ipBlock.cidr=169.254.20.10/32",
        "networkPolicy.extraEgress[0].ports[0].port=53",
        "networkPolicy.extraEgress[0].ports[0].protocol=UDP",
    ];
    let release = cluster::unique_name("dry");
    let chart = chart();
    for sets in [
        vec!["replicas=2"],
        vec![watch_set.as_str(), "leaderElection.enabled=true"],
        secured,
    ] {
        let mut args = vec![
            "template",
            release.as_str(),
            chart.as_str(),
            "-n",
            &release_ns,
            "--include-crds",
        ];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let manifests = helm_ok(&args);
        let out = server_dry_run(&manifests);
        assert!(
            out.ok,
            "the API server refused the chart ({sets:?}):\n{}\n{}",
            out.stdout, out.stderr
        );
        let expected = documents(&manifests).len();
        let accepted = out
            .stdout
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        assert_eq!(
            accepted, expected,
            "every object is validated:\n{}",
            out.stdout
        );
        if sets.contains(&"networkPolicy.enabled=true") {
            for object in [
                "networkpolicy.networking.k8s.io/",
                "poddisruptionbudget.policy/",
            ] {
                assert!(out.stdout.contains(object), "{object}:\n{}", out.stdout);
            }
        }
    }
    // The dry run validates for real: a value the schema lets through but Kubernetes does not
    // accept (a malformed quantity) is refused.
    let manifests = template(&release, &release_ns, &["resources.limits.memory=lots"]);
    let out = server_dry_run(&manifests);
    assert!(!out.ok, "a bad quantity should be refused:\n{}", out.stdout);
    assert!(
        out.stderr.contains("quantities must match"),
        "{}",
        out.stderr
    );
    // The same for the new objects: an address the schema's pattern lets through, and an
    // extra egress rule the schema does not look into.
    for (set, error) in [
        ("networkPolicy.apiServer.cidrs={10.0.0.300/32}", "cidr"),
        (
            "networkPolicy.extraEgress[0].ports[0].protocol=ICMP",
            "protocol",
        ),
    ] {
        let manifests = template(
            &release,
            &release_ns,
            &[
                "networkPolicy.enabled=true",
                "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
                set,
            ],
        );
        let out = server_dry_run(&manifests);
        assert!(!out.ok, "{set} should be refused:\n{}", out.stdout);
        assert!(
            out.stderr.contains("NetworkPolicy") && out.stderr.contains(error),
            "{set}: {}",
            out.stderr
        );
    }
}

/// The prometheus-operator's PrometheusRule and ServiceMonitor CRDs: `FCO_PROMETHEUS_OPERATOR_CRDS`
/// (hack/test.sh sets it), else `hack/promtool.sh crds` (from the Go module proxy).
fn monitoring_crds_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("FCO_PROMETHEUS_OPERATOR_CRDS") {
        return dir.into();
    }
    let script = repo_path("hack/promtool.sh");
    let out = std::process::Command::new(&script)
        .arg("crds")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} crds failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().into()
}

#[tokio::test]
async fn monitoring_objects_are_accepted_by_the_api_server() {
    let client = cluster::client().await;
    let dir = monitoring_crds_dir();
    for (file, name) in [
        (
            "monitoring.coreos.com_prometheusrules.yaml",
            "prometheusrules.monitoring.coreos.com",
        ),
        (
            "monitoring.coreos.com_servicemonitors.yaml",
            "servicemonitors.monitoring.coreos.com",
        ),
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&text).expect("a CRD");
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        cluster::apply_crd(&client, &crd).await;
    }

    let release_ns = cluster::test_namespace(&client, "helm-mon").await;
    let monitoring_ns = cluster::test_namespace(&client, "helm-mon-prom").await;
    let release = cluster::unique_name("mon");
    let manifests = template(
        &release,
        &release_ns,
        &[
            "serviceMonitor.enabled=true",
            "prometheusRule.enabled=true",
            &format!("prometheusRule.namespace={monitoring_ns}"),
            "prometheusRule.labels.release=prom",
            "prometheusRule.alertLabels.team=network",
            "prometheusRule.runbookUrl=https://git.example.com/fco/README.md",
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.annotations.grafana_folder=Network",
        ],
    );
    let docs = documents(&manifests);
    for kind in ["PrometheusRule", "ServiceMonitor", "ConfigMap"] {
        one_of_kind(&docs, kind);
    }
    let out = server_dry_run(&manifests);
    assert!(
        out.ok,
        "the API server refused the chart with monitoring on:\n{}\n{}",
        out.stdout, out.stderr
    );
    let accepted = out
        .stdout
        .lines()
        .filter(|l| l.contains("(server dry run)"))
        .count();
    assert_eq!(
        accepted,
        docs.len(),
        "every object is validated:\n{}",
        out.stdout
    );
    for object in [
        "prometheusrule.monitoring.coreos.com/",
        "servicemonitor.monitoring.coreos.com/",
        "configmap/",
    ] {
        assert!(out.stdout.contains(object), "{object}:\n{}", out.stdout);
    }

    // The CRD's schema is enforced: a malformed `for` (the values schema would stop it) is
    // refused.
    let mut rule = one_of_kind(&docs, "PrometheusRule").clone();
    rule["spec"]["groups"][0]["rules"][0]["for"] = json!("five minutes");
    let out = server_dry_run(&serde_json::to_string(&rule).unwrap());
    assert!(!out.ok, "a bad `for` should be refused:\n{}", out.stdout);
    assert!(out.stderr.contains("for"), "{}", out.stderr);
}

/// A token of `service_account` from the TokenRequest API.
async fn token_of(client: &Client, namespace: &str, service_account: &str) -> String {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{service_account}: {e}"))
        .status
        .expect("a TokenRequest status")
        .token
}

/// A kubeconfig with the test control plane's server and CA and nothing but `token`.
fn token_kubeconfig(token: &str) -> tempfile::NamedTempFile {
    let admin =
        Kubeconfig::read_from(cluster::kubeconfig_path()).expect("read the admin kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("a cluster entry");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {
            "server": cluster.server.expect("server"),
            "certificate-authority-data": cluster.certificate_authority_data.expect("CA data"),
        }}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "testenv", "user": "operator"}}],
        "current-context": "operator",
    });
    let mut file = tempfile::NamedTempFile::new().expect("temp kubeconfig");
    file.write_all(serde_saphyr::to_string(&config).unwrap().as_bytes())
        .unwrap();
    file.flush().unwrap();
    file
}

/// Whether the identity of `client` may `verb` `resource` (`group`, in `namespace`, `name`).
async fn can(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        metadata: ObjectMeta::default(),
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: namespace.map(Into::into),
                name: name.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        status: None,
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview")
        .status
        .expect("a review status")
        .allowed
}

/// What the operator's identity may do to Secrets, FastConnectConnections and Events in
/// `namespace`, as a sorted list of "verb resource" strings (only the ones it may).
async fn rights_in(client: &Client, namespace: Option<&str>) -> Vec<String> {
    let mut allowed = Vec::new();
    for (group, resource) in [
        ("", "secrets"),
        ("fastconnect.dev", "fastconnectconnections"),
        ("fastconnect.dev", "fastconnectconnections/status"),
        ("fastconnect.dev", "fastconnectconnections/finalizers"),
        ("events.k8s.io", "events"),
        ("", "configmaps"),
    ] {
        for verb in [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ] {
            if can(client, verb, group, resource, namespace, None).await {
                allowed.push(format!("{verb} {resource}"));
            }
        }
    }
    allowed.sort();
    allowed
}

fn sorted(rights: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rights.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Exactly what the operator needs where it watches.
const WATCH_RIGHTS: &[&str] = &[
    "get secrets",
    "patch secrets",
    "get fastconnectconnections",
    "list fastconnectconnections",
    "watch fastconnectconnections",
    "patch fastconnectconnections",
    "get fastconnectconnections/status",
    "patch fastconnectconnections/status",
    "update fastconnectconnections/finalizers",
    "create events",
    "patch events",
];

/// Applies the samples in `ns` as a user would, runs the operator out of cluster as the chart's
/// ServiceAccount, and waits for the sample to be Active; then deletes it (the operator
/// disconnects and releases it). Returns the operator and the sandbox, still running.
async fn sample_reaches_active_as_the_service_account(
    client: &Client,
    release: &Release,
    ns: &str,
    extra_env: &[(&str, &str)],
) -> (Operator, Sandbox) {
    cluster::kubectl_ok(&[
        "-n",
        ns,
        "apply",
        "-f",
        repo_path("deploy/samples/secrets.yaml").to_str().unwrap(),
    ]);
    cluster::kubectl_ok(&[
        "-n",
        ns,
        "apply",
        "-f",
        repo_path("deploy/samples/fastconnectconnection.yaml")
            .to_str()
            .unwrap(),
    ]);

    let token = token_of(client, &release.namespace, &release.fullname()).await;
    let kubeconfig = token_kubeconfig(&token);
    let sandbox = Sandbox::start(&sandbox::INSTANT);
    let mut env = vec![("KUBECONFIG", kubeconfig.path().to_str().unwrap())];
    env.extend_from_slice(extra_env);
    let operator = Operator::start_with(&sandbox.url, ns, &env);

    cluster::kubectl_ok(&[
        "-n",
        ns,
        "wait",
        "--for=condition=Ready",
        "fcc/hk-oracle",
        "--timeout=90s",
    ]);
    let fccs = Api::<FastConnectConnection>::namespaced(client.clone(), ns);
    let fcc = fccs.get("hk-oracle").await.unwrap();
    let status = fcc.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Active));
    assert!(
        fcc.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"fastconnect.dev/connection".to_owned())
    );
    let id = status.connection_id.clone().expect("a connection id");
    assert_eq!(sandbox.status_of(&id).await.as_deref(), Some("ACTIVE"));

    // Events are a courtesy the operator does not fail on, so check that they were recorded.
    let events = Api::<CoreEvent>::namespaced(client.clone(), ns);
    cluster::wait_for_ok("an Event from the operator", WAIT, || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let ours: Vec<_> = list
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("hk-oracle"))
            .filter(|e| e.reporting_component.as_deref() == Some("fastconnect-operator"))
            .collect();
        if ours.is_empty() {
            Err(format!(
                "{} events, none from the operator",
                list.items.len()
            ))
        } else {
            Ok(())
        }
    })
    .await;

    // Deleting disconnects, which needs the finalizer update rights.
    cluster::kubectl_ok(&["-n", ns, "delete", "fcc", "hk-oracle", "--timeout=90s"]);
    assert_eq!(sandbox.status_of(&id).await.as_deref(), Some("DELETED"));
    let logs = operator.logs();
    assert!(
        !logs.contains("is forbidden"),
        "the operator was refused something:\n{logs}"
    );
    (operator, sandbox)
}

#[tokio::test]
async fn namespaced_install_is_enough_for_the_operator_and_uninstalls_cleanly() {
    let client = cluster::client().await;
    let release_ns = cluster::test_namespace(&client, "helm-ns-rel").await;
    let ns = cluster::test_namespace(&client, "helm-ns-watch").await;
    let other_ns = cluster::test_namespace(&client, "helm-ns-other").await;
    // No pods: the test node would run the chart's image beside the operator this test runs
    // out of cluster (tests/pods.rs runs the pods).
    let (mut release, notes) = Release::install(
        &release_ns,
        &[&format!("watchNamespaces={{{ns}}}"), "replicas=0"],
    );
    for step in [
        "create secret generic consoleconnect",
        "apply -f",
        "get fcc -w",
        &format!("-n {ns}"),
    ] {
        assert!(
            notes.contains(step),
            "NOTES.txt should say `{step}`:\n{notes}"
        );
    }

    // The chart's ServiceAccount may do exactly what the operator needs, only where it watches.
    let token = token_of(&client, &release_ns, &release.fullname()).await;
    let sa = cluster::client_with_token(&token).await;
    assert_eq!(rights_in(&sa, Some(&ns)).await, sorted(WATCH_RIGHTS));
    assert_eq!(rights_in(&sa, Some(&other_ns)).await, Vec::<String>::new());
    assert_eq!(
        rights_in(&sa, Some(&release_ns)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        rights_in(&sa, None).await,
        Vec::<String>::new(),
        "nothing cluster-wide"
    );
    assert!(
        !can(
            &sa,
            "create",
            "coordination.k8s.io",
            "leases",
            Some(&release_ns),
            None
        )
        .await,
        "no leader election with one replica"
    );

    // A ServiceAccount without the chart's RBAC cannot run the operator: the kubeconfig really
    // is the one the operator uses.
    let nobody = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("nobody".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), &release_ns)
        .create(&PostParams::default(), &nobody)
        .await
        .unwrap();
    let nobody_config = token_kubeconfig(&token_of(&client, &release_ns, "nobody").await);
    let mut refused = Operator::start_with(
        "http://127.0.0.1:9",
        &ns,
        &[("KUBECONFIG", nobody_config.path().to_str().unwrap())],
    );
    let exit = refused.wait_exit(WAIT).await;
    assert!(!exit.success(), "without RBAC the operator must stop");
    assert!(
        refused
            .logs()
            .contains("cannot list FastConnectConnections"),
        "{}",
        refused.logs()
    );

    // The real thing: the sample to Active and back, with the chart's rights only.
    let (mut operator, _sandbox) =
        sample_reaches_active_as_the_service_account(&client, &release, &ns, &[]).await;
    operator.kill();

    release.uninstall();
    release.assert_nothing_left(&client).await;
    // Helm keeps CRDs from crds/ by design: the resources of other installs survive.
    cluster::wait_for_crd_established(&client, "fastconnectconnections.fastconnect.dev", WAIT)
        .await;
}

#[tokio::test]
async fn cluster_wide_install_with_leader_election_is_enough_and_uninstalls_cleanly() {
    let client = cluster::client().await;
    let release_ns = cluster::test_namespace(&client, "helm-cw-rel").await;
    let ns = cluster::test_namespace(&client, "helm-cw-watch").await;
    // No pods, as above: a pod of the chart would take the Lease from the operator run here.
    let (mut release, notes) =
        Release::install(&release_ns, &["leaderElection.enabled=true", "replicas=0"]);
    assert!(notes.contains("every namespace"), "{notes}");
    let lease = release.fullname();

    let token = token_of(&client, &release_ns, &release.fullname()).await;
    let sa = cluster::client_with_token(&token).await;
    // Everywhere, and cluster-wide: the watch rights, Secrets still `get` only.
    assert_eq!(rights_in(&sa, None).await, sorted(WATCH_RIGHTS));
    assert_eq!(rights_in(&sa, Some(&ns)).await, sorted(WATCH_RIGHTS));
    // Its own Lease, in the release namespace only.
    assert!(
        can(
            &sa,
            "create",
            "coordination.k8s.io",
            "leases",
            Some(&release_ns),
            None
        )
        .await
    );
    for verb in ["get", "update", "patch"] {
        assert!(
            can(
                &sa,
                verb,
                "coordination.k8s.io",
                "leases",
                Some(&release_ns),
                Some(&lease)
            )
            .await,
            "{verb} its lease"
        );
        assert!(
            !can(
                &sa,
                verb,
                "coordination.k8s.io",
                "leases",
                Some(&release_ns),
                Some("kube-scheduler")
            )
            .await,
            "{verb} another lease"
        );
    }
    assert!(
        !can(
            &sa,
            "create",
            "coordination.k8s.io",
            "leases",
            Some(&ns),
            None
        )
        .await
    );
    assert!(
        !can(
            &sa,
            "list",
            "coordination.k8s.io",
            "leases",
            Some(&release_ns),
            None
        )
        .await
    );
    // Really creating and renewing the Lease with the token works.
    let leases = Api::<Lease>::namespaced(sa.clone(), &release_ns);
    let mut created: Lease = leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": lease}})).unwrap(),
        )
        .await
        .expect("create the Lease as the ServiceAccount");
    created.spec = Some(
        serde_json::from_value(json!({"holderIdentity": "test", "leaseDurationSeconds": 1}))
            .unwrap(),
    );
    leases
        .replace(&lease, &PostParams::default(), &created)
        .await
        .expect("update the Lease");
    Api::<Lease>::namespaced(client.clone(), &release_ns)
        .delete(&lease, &Default::default())
        .await
        .expect("delete the Lease (admin)");

    // The operator, as the chart's ServiceAccount, with leader election as the chart configures
    // it. It watches only this test's namespace so that it leaves other tests' resources alone;
    // the cluster-wide list and watch rights are checked above.
    // The leader election settings are taken from the installed Deployment; the downward API's
    // values are filled in as the kubelet would.
    let pod_name = format!("{}-pod", release.name);
    let manifest = helm_ok(&["get", "manifest", &release.name, "-n", &release_ns]);
    let deployment: Deployment = typed(one_of_kind(&documents(&manifest), "Deployment"));
    let mut env: Vec<(String, String)> = container_env(&deployment)
        .into_iter()
        .filter(|(name, _)| name.starts_with("FCO_LEADER") || name.starts_with("FCO_LEASE"))
        .collect();
    assert_eq!(
        env_value(&env, "FCO_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(env_value(&env, "FCO_LEASE_NAME"), Some(lease.clone()));
    env.push(("POD_NAMESPACE".into(), release_ns.clone()));
    env.push(("POD_NAME".into(), pod_name.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let (mut operator, _sandbox) =
        sample_reaches_active_as_the_service_account(&client, &release, &ns, &env).await;
    // The operator elected itself through the chart's Lease Role: it holds the Lease.
    let held = Api::<Lease>::namespaced(client.clone(), &release_ns)
        .get(&lease)
        .await
        .expect("the operator created its Lease");
    assert_eq!(
        held.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(pod_name.as_str())
    );
    operator.kill();

    release.uninstall();
    release.assert_nothing_left(&client).await;
    cluster::wait_for_crd_established(&client, "fastconnectconnections.fastconnect.dev", WAIT)
        .await;
}
