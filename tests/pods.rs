//! The chart's pods on the test node (`hack/testenv.sh up --node`, which `make test` starts): the
//! image from hack/build-image.sh imported into the node's containerd, two replicas electing a
//! leader, the sample ordered from a pod, failover when the leading pod is deleted, a rolling
//! upgrade and an uninstall. Everything runs for real: kubelet, containerd, runc, the CNI bridge
//! and kube-proxy; the sandbox listens on the node's address, where the pods reach it. The pods
//! talk to the API server with the chart's projected token (no automatic mount), and the release
//! has its PodDisruptionBudget and NetworkPolicy. The CNI bridge plugin does not enforce
//! NetworkPolicy: here the policy is only shown to be accepted, to leave the operator working
//! where it is not enforced, and to go with the release (tests/helm.rs checks its rules).
//!
//! Needs `FCO_TESTENV_NODE_IP` and `FCO_TESTENV_CONTAINERD` (from `hack/testenv.sh env` with a
//! node up) and `FCO_TEST_IMAGE`, the imported image (hack/test.sh builds and imports it).

use fastconnect_test_support as support;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{Pod, Service},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use support::{
    cluster,
    env::{connection_id, metric_value},
    fixtures,
    helm::{Release, chart, helm_ok, repo_path, run},
    sandbox::{self, Sandbox},
};

const WAIT: Duration = Duration::from_secs(120);
/// Short, so that the test shows a crash-free failover well within it; long enough for a loaded
/// 2-core machine to renew in time.
const LEASE_DURATION: Duration = Duration::from_secs(10);

struct Node {
    ip: String,
    containerd: String,
    repository: String,
    tag: String,
}

fn required(name: &str, what: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: {what}"))
}

fn node() -> Node {
    let how = "start a node with `hack/testenv.sh up --node` and `eval \"$(hack/testenv.sh env)\"` \
               (make test does both)";
    let image = required(
        "FCO_TEST_IMAGE",
        "build and import the operator image (`hack/test.sh` does: hack/build-image.sh, then \
         hack/testenv.sh import-image FILE REF) and set FCO_TEST_IMAGE=REF",
    );
    let (repository, tag) = image
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("FCO_TEST_IMAGE={image} has no tag"));
    Node {
        ip: required("FCO_TESTENV_NODE_IP", how),
        containerd: required("FCO_TESTENV_CONTAINERD", how),
        repository: repository.to_owned(),
        tag: tag.to_owned(),
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The release's pods once exactly `count` of them exist, all Ready (terminating ones count).
async fn ready_pods(pods: &Api<Pod>, release: &Release, count: usize) -> Vec<Pod> {
    let params = ListParams::default().labels(&release.selector());
    cluster::wait_for_ok(
        &format!("{count} Ready pods of {}", release.name),
        WAIT,
        || async {
            let list = pods.list(&params).await.map_err(|e| e.to_string())?.items;
            let ready = list.iter().filter(|p| is_ready(p)).count();
            if list.len() == count && ready == count {
                Ok(list)
            } else {
                Err(format!("{} pods, {ready} ready", list.len()))
            }
        },
    )
    .await
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().expect("a pod has a name")
}

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a running pod has an IP")
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .expect("read the Lease")?
        .spec?
        .holder_identity
}

async fn http_get(url: &str) -> Result<String, String> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()));
    }
    response.text().await.map_err(|e| e.to_string())
}

/// `fastconnect_leader` of each pod, read from the pod's own address.
async fn leader_gauges(pods: &[Pod]) -> Result<Vec<(String, f64)>, String> {
    let mut gauges = Vec::new();
    for pod in pods {
        let text = http_get(&format!("http://{}:8080/metrics", pod_ip(pod))).await?;
        gauges.push((pod_name(pod), metric_value(&text, "fastconnect_leader")));
    }
    Ok(gauges)
}

/// Waits until the Lease names one of `pods` and that pod alone reports leading; returns it.
async fn one_leader(leases: &Api<Lease>, lease: &str, pods: &[Pod]) -> String {
    let names: BTreeSet<String> = pods.iter().map(pod_name).collect();
    cluster::wait_for_ok("exactly one pod to lead", WAIT, || async {
        let holder = holder(leases, lease).await.ok_or("no holder")?;
        if !names.contains(&holder) {
            return Err(format!(
                "the Lease is held by {holder}, not one of {names:?}"
            ));
        }
        let gauges = leader_gauges(pods).await?;
        let leading: Vec<_> = gauges.iter().filter(|(_, v)| *v == 1.0).collect();
        match leading.as_slice() {
            [(name, _)] if *name == holder => Ok(holder),
            _ => Err(format!("holder {holder}, fastconnect_leader: {gauges:?}")),
        }
    })
    .await
}

/// The host pid of a pod's operator container, from the node's containerd.
fn container_pid(node: &Node, pod: &Pod) -> u32 {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.container_id.clone())
        .expect("a running container has an id");
    let id = id.strip_prefix("containerd://").expect("a containerd id");
    let out = run(
        "ctr",
        &["--address", &node.containerd, "-n", "k8s.io", "tasks", "ls"],
        None,
    );
    assert!(out.ok, "ctr tasks ls: {}", out.stderr);
    out.stdout
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some(id)).then(|| fields.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no task {id} on the node:\n{}", out.stdout))
}

fn proc_status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the kernel says of the running process: its user, its capabilities, its root mount.
fn assert_runs_confined(node: &Node, pod: &Pod) {
    let pid = container_pid(node, pod);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    assert_eq!(proc_status_field(&status, "Uid"), "65532 65532 65532 65532");
    assert_eq!(proc_status_field(&status, "Gid"), "65532 65532 65532 65532");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            proc_status_field(&status, set),
            "0000000000000000",
            "{set} of {}",
            pod_name(pod)
        );
    }
    assert_eq!(proc_status_field(&status, "NoNewPrivs"), "1");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("read exe");
    assert!(
        exe.ends_with("fastconnect-operator"),
        "pid {pid} runs {}",
        exe.display()
    );
    let mountinfo =
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("read mountinfo");
    // Fields: id parent major:minor root mount-point options ...
    let root = mountinfo
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .rfind(|f| f.get(4) == Some(&"/"))
        .expect("a root mount");
    assert!(
        root[5].split(',').any(|o| o == "ro"),
        "the root file system of {} is mounted {}",
        pod_name(pod),
        root[5]
    );
}

/// The bytes of unpadded base64url (a JWT's parts).
fn base64url(text: &str) -> Vec<u8> {
    let (mut bits, mut count, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("{c:?} is not base64url"),
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

/// The token the operator uses, as its container sees it: only the chart's projected volume (no
/// automatic mount), read-only, holding a token that lasts the chart's hour (not the year the
/// API server gives a token asked for with the automatic mount's 3607 s), bound to this pod.
fn assert_token_is_the_charts(node: &Node, pod: &Pod, service_account: &str) {
    let name = pod_name(pod);
    let spec = pod.spec.as_ref().expect("a pod spec");
    assert_eq!(spec.automount_service_account_token, Some(false), "{name}");
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        volumes,
        ["api-access"],
        "{name}: no kube-api-access-* volume"
    );

    let pid = container_pid(node, pod);
    let mountinfo =
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("read mountinfo");
    // Fields: id parent major:minor root mount-point options ... The mount point is where the
    // kubelet asked for it with symlinks resolved (the image's /var/run may lead to /run).
    let mounts: Vec<Vec<&str>> = mountinfo
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| {
            f.get(4)
                .is_some_and(|m| m.ends_with("/secrets/kubernetes.io/serviceaccount"))
        })
        .collect();
    assert_eq!(mounts.len(), 1, "{name}: one token mount:\n{mountinfo}");
    assert!(
        mounts[0][5].split(',').any(|o| o == "ro"),
        "{name}: the token is mounted {}",
        mounts[0][5]
    );

    // Read through the mount point, not /var/run: an absolute symlink under /proc/PID/root
    // would be followed on the host.
    let dir = format!("/proc/{pid}/root{}", mounts[0][4]);
    let token = std::fs::read_to_string(format!("{dir}/token")).expect("read the token");
    let claims: serde_json::Value = serde_json::from_slice(&base64url(
        token.split('.').nth(1).expect("a JWT has a payload"),
    ))
    .expect("the JWT's claims are JSON");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600, "{name}: the token's lifetime");
    let bound = &claims["kubernetes.io"];
    assert_eq!(bound["pod"]["name"], name.as_str());
    assert_eq!(bound["serviceaccount"]["name"], service_account);
    assert_eq!(
        std::fs::read_to_string(format!("{dir}/namespace")).expect("read the namespace"),
        pod.metadata.namespace.clone().unwrap()
    );
    let ca = std::fs::read_to_string(format!("{dir}/ca.crt")).expect("read the CA");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
}

async fn fcc_active(fccs: &Api<FastConnectConnection>, name: &str) -> FastConnectConnection {
    cluster::wait_for_ok(&format!("{name} to be Active"), WAIT, || async {
        let fcc = fccs.get(name).await.map_err(|e| e.to_string())?;
        match fcc.status.as_ref().and_then(|s| s.phase) {
            Some(Phase::Active) => Ok(fcc),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn create_small(fccs: &Api<FastConnectConnection>, name: &str) {
    let object: FastConnectConnection =
        serde_json::from_value(fixtures::small_connection(name)).expect("a valid resource");
    fccs.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

#[tokio::test]
async fn chart_runs_in_pods_fails_over_upgrades_and_uninstalls() {
    let node = node();
    let client: Client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "pods").await;
    let sandbox = Sandbox::start_on(&format!("{}:0", node.ip), &sandbox::INSTANT);
    cluster::kubectl_ok(&[
        "-n",
        &ns,
        "apply",
        "-f",
        repo_path("deploy/samples/secrets.yaml").to_str().unwrap(),
    ]);

    // Two replicas with leader election, the image the node has, the sandbox on the node, and
    // the NetworkPolicy with what the pods here reach: the API server on the node's address
    // (and the `kubernetes` Service's cluster IP), the sandbox there too.
    let lease_duration = format!("{}s", LEASE_DURATION.as_secs());
    let kubernetes: Service = Api::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .expect("the kubernetes Service");
    let api_cluster_ip = kubernetes
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("the kubernetes Service's cluster IP");
    let (mut release, _notes) = Release::install(
        &ns,
        &[
            "replicas=2",
            &format!("image.repository={}", node.repository),
            &format!("image.tag={}", node.tag),
            "image.pullPolicy=Never",
            &format!("apiBaseUrl={}/", sandbox.url),
            &format!("watchNamespaces={{{ns}}}"),
            &format!("leaderElection.leaseDuration={lease_duration}"),
            "networkPolicy.enabled=true",
            &format!(
                "networkPolicy.apiServer.cidrs={{{}/32,{api_cluster_ip}/32}}",
                node.ip
            ),
            &format!("networkPolicy.consoleConnect.cidrs={{{}/32}}", node.ip),
        ],
    );
    let lease = release.fullname();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let fccs = Api::<FastConnectConnection>::namespaced(client.clone(), &ns);
    let budgets = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns);
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
    let budget = budgets
        .get(&release.fullname())
        .await
        .expect("the PodDisruptionBudget of two replicas");
    assert_eq!(
        budget.spec.and_then(|s| s.max_unavailable),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    policies
        .get(&release.fullname())
        .await
        .expect("the NetworkPolicy");

    // Both pods Running and Ready, one leads, each as 65532 on a read-only root without
    // capabilities, with the chart's token only.
    let running = ready_pods(&pods, &release, 2).await;
    let leader = one_leader(&leases, &lease, &running).await;
    for pod in &running {
        assert_runs_confined(&node, pod);
        assert_token_is_the_charts(&node, pod, &release.fullname());
    }

    // The sample, ordered from a pod through the sandbox on the node.
    cluster::kubectl_ok(&[
        "-n",
        &ns,
        "apply",
        "-f",
        repo_path("deploy/samples/fastconnectconnection.yaml")
            .to_str()
            .unwrap(),
    ]);
    let first = fcc_active(&fccs, "hk-oracle").await;
    let first_id = connection_id(&first);
    assert_eq!(
        sandbox.status_of(&first_id).await.as_deref(),
        Some("ACTIVE")
    );
    assert_eq!(sandbox.stats().await.total("create_layer2"), 1);

    // /metrics through the Service's cluster IP (kube-proxy's rules on the node).
    let service: Service = Api::namespaced(client.clone(), &ns)
        .get(&release.fullname())
        .await
        .expect("the chart's Service");
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP");
    let metrics = cluster::wait_for_ok("/metrics through the Service", WAIT, || async {
        http_get(&format!("http://{cluster_ip}:8080/metrics")).await
    })
    .await;
    assert!(metrics.contains("fastconnect_leader"), "{metrics}");
    assert!(metrics.contains("fastconnect_connections"), "{metrics}");

    // Deleting the leading pod: it releases the Lease on SIGTERM and another replica takes it
    // within the Lease duration (the follower, or the Deployment's replacement if that one polls
    // first); the connection is neither ordered again nor touched.
    let deleted_at = Instant::now();
    cluster::kubectl_ok(&["-n", &ns, "delete", "pod", &leader, "--wait=false"]);
    let successor = cluster::wait_for("another pod to take the Lease", WAIT, || async {
        holder(&leases, &lease).await.filter(|h| *h != leader)
    })
    .await;
    let takeover = deleted_at.elapsed();
    assert!(
        takeover < LEASE_DURATION,
        "{successor} took over {takeover:?} after the leader was deleted; the Lease lasts \
         {LEASE_DURATION:?}"
    );
    let replaced = ready_pods(&pods, &release, 2).await;
    assert!(!replaced.iter().any(|p| pod_name(p) == leader));
    assert_eq!(one_leader(&leases, &lease, &replaced).await, successor);
    // The new leader orders what is new, and only that.
    create_small(&fccs, "after-failover").await;
    fcc_active(&fccs, "after-failover").await;
    assert_eq!(
        connection_id(&fcc_active(&fccs, "hk-oracle").await),
        first_id
    );
    assert_eq!(sandbox.stats().await.total("create_layer2"), 2);

    // `helm upgrade` with a changed value rolls out: `kubectl rollout status` completes.
    helm_ok(&[
        "upgrade",
        &release.name,
        &chart(),
        "--namespace",
        &ns,
        "--reuse-values",
        "--set",
        "logLevel=debug",
    ]);
    cluster::kubectl_ok(&[
        "-n",
        &ns,
        "rollout",
        "status",
        &format!("deployment/{}", release.fullname()),
        "--timeout=180s",
    ]);
    let deployment: Deployment = Api::namespaced(client.clone(), &ns)
        .get(&release.fullname())
        .await
        .expect("the Deployment");
    let env = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug"))
    );
    let upgraded = ready_pods(&pods, &release, 2).await;
    assert!(
        upgraded
            .iter()
            .all(|p| !running.iter().any(|r| pod_name(r) == pod_name(p))),
        "the rollout replaced every pod"
    );
    one_leader(&leases, &lease, &upgraded).await;
    assert_eq!(
        connection_id(&fcc_active(&fccs, "hk-oracle").await),
        first_id
    );
    assert_eq!(
        sandbox.stats().await.total("create_layer2"),
        2,
        "failover and rollout ordered nothing again"
    );

    // Deleting the resource disconnects it; `helm uninstall` then leaves the CRD and the Lease.
    cluster::kubectl_ok(&["-n", &ns, "delete", "fcc", "--all", "--timeout=120s"]);
    assert_eq!(
        sandbox.status_of(&first_id).await.as_deref(),
        Some("DELETED")
    );
    release.uninstall();
    release.assert_nothing_left(&client).await;
    cluster::wait_for_ok("the release's pods to be gone", WAIT, || async {
        let left = pods
            .list(&ListParams::default().labels(&release.selector()))
            .await
            .map_err(|e| vec![e.to_string()])?
            .items;
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.iter().map(pod_name).collect::<Vec<_>>())
        }
    })
    .await;
    assert!(
        budgets
            .get_opt(&release.fullname())
            .await
            .expect("read")
            .is_none(),
        "the PodDisruptionBudget goes with the release"
    );
    assert!(
        policies
            .get_opt(&release.fullname())
            .await
            .expect("read")
            .is_none(),
        "the NetworkPolicy goes with the release"
    );
    assert!(
        leases.get_opt(&lease).await.expect("read").is_some(),
        "the Lease stays (documented)"
    );
    assert!(
        Api::<CustomResourceDefinition>::all(client.clone())
            .get_opt("fastconnectconnections.fastconnect.dev")
            .await
            .expect("read")
            .is_some(),
        "the CRD stays"
    );
    cluster::delete_namespace(&client, &ns, WAIT).await;
}
