//! The operator end to end: the real control plane, the sandbox over HTTP, the operator binary
//! as its own process, and kubectl where a user would use it.

use fastconnect_test_support as support;

use fastconnect_operator::{consoleconnect::ApiKey, crd::Phase};
use kube::{ResourceExt, api::DeleteParams};
use serde_json::{Value, json};
use support::{
    cluster,
    env::*,
    operator::Operator,
    sandbox::{self, Faults},
};

#[tokio::test]
async fn the_sample_reaches_active_with_kubectl_and_deleting_it_disconnects() {
    let mut env =
        Env::without_operator(&["--creating-delay", "200ms", "--approval-delay", "500ms"]).await;
    let ns = env.ns.clone();
    let ns = ns.as_str();
    cluster::kubectl_ok(&[
        "-n",
        ns,
        "apply",
        "-f",
        &repo_path("deploy/samples/secrets.yaml"),
    ]);
    cluster::kubectl_ok(&[
        "-n",
        ns,
        "apply",
        "-f",
        &repo_path("deploy/samples/fastconnectconnection.yaml"),
    ]);
    env.operator = Some(Operator::start(&env.sandbox.url, ns));

    env.operator().wait_ready().await;
    cluster::kubectl_ok(&[
        "-n",
        ns,
        "wait",
        "--for=condition=Ready",
        "fcc/hk-oracle",
        "--timeout=60s",
    ]);
    // The phase gauges are counted from the watch cache every few seconds.
    env.operator()
        .wait_metric(r#"fastconnect_connections{phase="Active"} 1"#)
        .await;
    let table = cluster::kubectl_ok(&["-n", ns, "get", "fcc"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PHASE",
            "SPEED",
            "REQUESTED",
            "METRO",
            "CONNECTION",
            "REMOTE",
            "AGE"
        ]
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let fcc = env.fccs.get("hk-oracle").await.unwrap();
    let id = connection_id(&fcc);
    // Nothing is requested: the REQUESTED cell is blank.
    assert_eq!(
        &row[..6],
        ["hk-oracle", "Active", "1000", "HKG", id.as_str(), "ACTIVE"]
    );

    let remote = env.remote(&format!("{ns}.hk-oracle")).await;
    assert_eq!(remote.len(), 1, "exactly one connection: {remote:?}");
    assert_eq!(env.creates().await, 1);
    let body = &env.sandbox.stats().await.creates()[0];
    assert_eq!(body["destCompany"], "oracle");
    assert_eq!(body["destMetroId"], sandbox::METRO_HKG.id);
    assert_eq!(body["destDcf"], sandbox::METRO_HKG.dcf);
    assert_eq!(body["portId"], sandbox::PORT_1G.id);

    cluster::kubectl_ok(&["-n", ns, "delete", "fcc", "hk-oracle", "--timeout=60s"]);
    env.wait_gone("hk-oracle").await;
    let status = env.sandbox.status_of(&id).await;
    assert_eq!(
        status.as_deref(),
        Some("DELETED"),
        "the circuit is disconnected"
    );

    // The whole run shows neither secret anywhere a user or a log collector could see.
    let metrics = env.operator().metrics().await;
    for expected in [
        r#"fastconnect_consoleconnect_requests_total{endpoint="create_layer2",code="200"} 1"#,
        r#"fastconnect_consoleconnect_requests_total{endpoint="delete_connection",code="200"} 1"#,
        "fastconnect_connections_ordered_total 1",
        "fastconnect_time_to_ready_seconds_count 1",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in\n{metrics}"
        );
    }
    let reconciles = metric_value(&metrics, "fastconnect_reconciles_total");
    assert!(reconciles >= 3.0, "reconciles counted: {reconciles}");
    let events = serde_json::to_string(&env.events().await).unwrap();
    let status = serde_json::to_string(&fcc.status).unwrap();
    let logs = env.operator().logs();
    for (what, text) in [
        ("logs", &logs),
        ("events", &events),
        ("status", &status),
        ("metrics", &metrics),
    ] {
        assert!(!text.contains(sandbox::DEFAULT_KEY), "API key in {what}");
        assert!(
            !text.contains("aaaaaaaasandboxexamplecircuit0001"),
            "OCID in {what}"
        );
    }
}

#[tokio::test]
async fn awaiting_approval_says_what_support_needs_without_printing_the_ocid() {
    let env = Env::start(&["--creating-delay", "0", "--manual-approval"]).await;
    env.create("hk", |_| {}).await;
    let (fcc, ready) = env.wait_reason("hk", "AwaitingApproval").await;
    let id = connection_id(&fcc);
    assert_eq!(
        fcc.status.as_ref().unwrap().phase,
        Some(Phase::AwaitingApproval)
    );
    assert_eq!(
        fcc.status.as_ref().unwrap().remote_status.as_deref(),
        Some("PENDING")
    );
    assert!(ready.message.contains(&id), "{}", ready.message);
    let secret = format!("Secret {}/oracle-vc key ocid", env.ns);
    assert!(ready.message.contains(&secret), "{}", ready.message);
    assert!(!ready.message.contains(OCID));

    let events = env.events().await;
    let handoff = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("AwaitingApproval"))
        .expect("an AwaitingApproval event");
    assert!(handoff.message.as_deref().unwrap_or_default().contains(&id));

    env.sandbox.activate(&id).await;
    env.wait_phase("hk", Phase::Active).await;
    assert!(!env.operator().logs().contains(OCID), "OCID in logs");
}

#[tokio::test]
async fn orphan_lets_go_and_leaves_the_connection_running() {
    let env = Env::start(&sandbox::INSTANT).await;
    env.create("keep", |o| o["spec"]["deletionPolicy"] = json!("Orphan"))
        .await;
    let id = connection_id(&env.wait_phase("keep", Phase::Active).await);
    env.fccs
        .delete("keep", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("keep").await;
    assert_eq!(env.sandbox.status_of(&id).await.as_deref(), Some("ACTIVE"));
}

#[tokio::test]
async fn adoption_by_connection_id_orders_nothing() {
    let env = Env::start(&sandbox::INSTANT).await;
    let existing = env
        .sandbox
        .client()
        .create_layer2(
            &ApiKey::new(sandbox::DEFAULT_KEY),
            sandbox::DEFAULT_COMPANY,
            &sandbox::valid_request("existing"),
        )
        .await
        .expect("created directly");
    env.create("adopt", |o| o["spec"]["connectionId"] = json!(existing.id))
        .await;
    let fcc = env.wait_phase("adopt", Phase::Active).await;
    assert_eq!(connection_id(&fcc), existing.id);
    assert_eq!(env.creates().await, 1, "only the direct create");

    env.fccs
        .delete("adopt", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("adopt").await;
    assert_eq!(
        env.sandbox.status_of(&existing.id).await.as_deref(),
        Some("DELETED")
    );
}

/// A tenant who shares the company's key cannot take over, nor disconnect, a connection another
/// resource manages by naming it in `spec.connectionId` (docs/security.md).
#[tokio::test]
async fn a_connection_another_resource_manages_is_never_adopted() {
    let env = Env::start(&sandbox::INSTANT).await;
    env.create_small("owner").await;
    let owned = connection_id(&env.wait_phase("owner", Phase::Active).await);

    env.create("thief", |o| o["spec"]["connectionId"] = json!(owned))
        .await;
    let (thief, ready) = env.wait_reason("thief", "ConnectionClaimed").await;
    assert_eq!(thief.status.as_ref().unwrap().phase, Some(Phase::Failed));
    assert!(ready.message.contains(&owned), "{}", ready.message);
    assert!(
        !ready.message.contains("owner"),
        "names the other resource: {}",
        ready.message
    );
    assert_eq!(thief.status.as_ref().unwrap().connection_id, None);
    assert!(
        thief.finalizers().is_empty(),
        "took nothing: {:?}",
        thief.finalizers()
    );

    env.fccs
        .delete("thief", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("thief").await;
    assert_eq!(
        env.sandbox.status_of(&owned).await.as_deref(),
        Some("ACTIVE"),
        "deleting the other resource disconnected the connection"
    );
    let owner = env.wait_phase("owner", Phase::Active).await;
    assert_eq!(connection_id(&owner), owned);
    assert_eq!(env.creates().await, 1);
}

#[tokio::test]
async fn bad_inputs_get_a_clear_condition_and_order_nothing() {
    let env = Env::start(&sandbox::INSTANT).await;
    env.put_secret(
        "bad-ocid",
        "ocid",
        "ocid1.vcn.oc1.ap-hongkong-1.notacircuit",
    )
    .await;
    // (resource, field to change, its value, expected reason, expected text in the message)
    let cases = [
        (
            "no-secret",
            "/credentials/apiKeySecretRef/name",
            json!("missing"),
            "SecretNotFound",
            "missing",
        ),
        (
            "no-key",
            "/credentials/apiKeySecretRef/key",
            json!("token"),
            "SecretKeyMissing",
            "has no key token",
        ),
        (
            "bad-ocid",
            "/credentials/oracleOcidSecretRef/name",
            json!("bad-ocid"),
            "InvalidOcid",
            "/bad-ocid key ocid does not hold an Oracle virtual circuit OCID",
        ),
        (
            "no-port",
            "/sourcePort/name",
            json!("Nope"),
            "PortNotFound",
            "no active port Nope",
        ),
        (
            "dup-port",
            "/sourcePort/name",
            json!(sandbox::DUP_PORT_NAME),
            "PortAmbiguous",
            "set spec.sourcePort.id",
        ),
        (
            "inactive-port",
            "/sourcePort/name",
            json!(sandbox::PORT_INACTIVE.name),
            "PortNotActive",
            "it is disabled; enable it in Console Connect",
        ),
        (
            "too-fast",
            "/speedMbps",
            json!(2000),
            "SpeedExceedsPort",
            "lower spec.speedMbps",
        ),
        (
            "same-metro",
            "/destination/metro",
            json!("SIN"),
            "MetroIsPortMetro",
            "source port's own metro",
        ),
        (
            "no-layer2",
            "/destination/metro",
            json!("SYD"),
            "MetroWithoutLayer2",
            "does not offer Layer 2",
        ),
        (
            "not-ready",
            "/destination/metro",
            json!("tokyo"),
            "MetroNotReady",
            "not ready",
        ),
        (
            "no-metro",
            "/destination/metro",
            json!("XYZ"),
            "MetroNotFound",
            "available: HKG (Hong Kong)",
        ),
    ];
    for (name, field, value, _, _) in &cases {
        env.create(name, |o| set(&mut o["spec"], field, value.clone()))
            .await;
    }
    for (name, _, _, reason, text) in cases {
        let (fcc, ready) = env.wait_reason(name, reason).await;
        assert!(ready.message.contains(text), "{name}: {:?}", ready.message);
        let phase = fcc.status.unwrap().phase;
        let want = if reason.starts_with("Secret") {
            Phase::Pending
        } else {
            Phase::Failed
        };
        assert_eq!(phase, Some(want), "{name}");
        assert!(
            !fcc.metadata
                .finalizers
                .unwrap_or_default()
                .iter()
                .any(|f| f.starts_with("fastconnect")),
            "{name}: nothing ordered, so nothing to guard"
        );
    }
    assert_eq!(
        env.creates().await,
        0,
        "nothing may be ordered from bad input"
    );

    // Fixing what was missing is picked up without a restart.
    env.put_secret("missing", "apiKey", sandbox::DEFAULT_KEY)
        .await;
    env.wait_phase("no-secret", Phase::Active).await;
    assert_eq!(env.creates().await, 1);

    // Resources that never ordered anything go away at once.
    env.fccs
        .delete("no-port", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("no-port").await;
}

#[tokio::test]
async fn denied_and_error_fail_with_the_reason() {
    let env = Env::start(&["--creating-delay", "0", "--manual-approval"]).await;
    env.create("denied", |o| o["spec"]["speedMbps"] = json!(100))
        .await;
    env.create("broken", |o| {
        o["spec"]["speedMbps"] = json!(100);
        o["spec"]["vlans"] = json!({"source": 300});
    })
    .await;
    let denied = connection_id(&env.wait_phase("denied", Phase::AwaitingApproval).await);
    let broken = connection_id(&env.wait_phase("broken", Phase::AwaitingApproval).await);
    env.sandbox.deny(&denied).await;
    env.sandbox
        .error(&broken, "VLAN 300 is already in use on the port")
        .await;

    let (fcc, ready) = env.wait_reason("denied", "Denied").await;
    assert_eq!(fcc.status.unwrap().phase, Some(Phase::Failed));
    assert!(ready.message.contains("DENIED"));
    let (fcc, ready) = env.wait_reason("broken", "RemoteError").await;
    assert_eq!(fcc.status.as_ref().unwrap().phase, Some(Phase::Failed));
    assert_eq!(fcc.status.unwrap().remote_status.as_deref(), Some("ERROR"));
    assert!(
        ready
            .message
            .contains("VLAN 300 is already in use on the port"),
        "{}",
        ready.message
    );
    let warnings = env.events().await;
    assert!(warnings.iter().any(|e| e.reason.as_deref() == Some("Denied") && e.type_.as_deref() == Some("Warning")));
}

#[tokio::test]
async fn a_crash_between_the_create_call_and_the_status_write_orders_once() {
    if !cfg!(feature = "failpoints") {
        panic!(
            "this test needs the operator's crash failpoint: run it with --features \
             fastconnect-operator/failpoints (make test does)"
        );
    }
    let mut env = Env::without_operator(&sandbox::INSTANT).await;
    env.create("crash", |_| {}).await;
    let mut crashing = Operator::start_with(
        &env.sandbox.url,
        &env.ns,
        &[("FAILPOINTS", "exit-after-create=return")],
    );
    let exit = crashing.wait_exit(WAIT).await;
    assert_eq!(exit.code(), Some(3), "the failpoint fired");
    assert_eq!(env.creates().await, 1);
    let status = env.fccs.get("crash").await.unwrap().status.unwrap();
    assert!(
        status.connection_id.is_none(),
        "the crash came before the status write"
    );
    assert!(
        status.ordered_at.is_some(),
        "the marker was persisted before the call"
    );
    drop(crashing);

    env.operator = Some(Operator::start(&env.sandbox.url, &env.ns));
    let fcc = env.wait_phase("crash", Phase::Active).await;
    let remote = env.remote(&format!("{}.crash", env.ns)).await;
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert_eq!(connection_id(&fcc), remote[0]["id"].as_str().unwrap());
    assert_eq!(
        env.creates().await,
        1,
        "the restart found the order instead of ordering again"
    );
}

#[tokio::test]
async fn a_refused_key_is_reported_and_a_rotated_key_is_used_without_restart() {
    let env = Env::start(&sandbox::INSTANT).await;
    env.put_secret("consoleconnect", "apiKey", "not-the-key")
        .await;
    env.create("key", |_| {}).await;
    let (fcc, ready) = env.wait_reason("key", "ApiKeyRefused").await;
    assert_eq!(fcc.status.unwrap().phase, Some(Phase::Pending));
    assert!(
        ready.message.contains("refused the API key"),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("not-the-key"));
    assert_eq!(env.creates().await, 0);

    env.put_secret("consoleconnect", "apiKey", sandbox::DEFAULT_KEY)
        .await;
    env.wait_phase("key", Phase::Active).await;
}

#[tokio::test]
async fn bursts_of_429_and_5xx_and_lost_responses_converge_without_duplicates() {
    let env = Env::start(&sandbox::INSTANT).await;
    env.sandbox
        .set_faults(Faults {
            error_rate: 0.2,
            throttle_rate: 0.1,
            lost_create_rate: 0.3,
            retry_after_seconds: Some(1),
            ..Faults::default()
        })
        .await;
    let names: Vec<String> = (0..5).map(|i| format!("burst-{i}")).collect();
    for name in &names {
        env.create(name, |o| o["spec"]["speedMbps"] = json!(100))
            .await;
    }
    for name in &names {
        env.wait_phase(name, Phase::Active).await;
    }
    let stats = env.sandbox.stats().await;
    let faults: u64 = [
        "list_ports",
        "oracle_metros",
        "create_layer2",
        "search_connections",
        "get_connection",
    ]
    .iter()
    .flat_map(|endpoint| [429, 500, 502].map(|code| stats.count(endpoint, code)))
    .sum();
    assert!(faults > 0, "faults were injected: {:?}", stats.0);
    for name in &names {
        let remote = env.remote(&format!("{}.{name}", env.ns)).await;
        let live: Vec<&Value> = remote.iter().filter(|c| c["status"] != "DELETED").collect();
        assert_eq!(live.len(), 1, "{name}: {remote:?}");
    }
}

#[tokio::test]
async fn a_connection_deleted_out_of_band_is_reported_and_released_at_once() {
    let env = Env::start(&sandbox::INSTANT).await;
    env.create("gone", |_| {}).await;
    let id = connection_id(&env.wait_phase("gone", Phase::Active).await);
    env.sandbox.delete_out_of_band(&id).await;
    let (fcc, _) = env.wait_reason("gone", "DeletedOutOfBand").await;
    assert_eq!(fcc.status.unwrap().phase, Some(Phase::Failed));
    env.fccs
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("gone").await;
    assert_eq!(
        env.sandbox.stats().await.total("delete_connection"),
        0,
        "nothing left to disconnect"
    );
}
