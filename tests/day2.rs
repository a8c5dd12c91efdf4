//! Changes after ordering, end to end: the real control plane, the sandbox over HTTP playing
//! Console Connect and Oracle, and the operator binary. Speed through the update call and
//! change requests, renames, drift, the pause annotation and observe-only.

use fastconnect_test_support as support;

use std::sync::{Arc, Mutex};

use fastconnect_operator::crd::{ChangeState, FastConnectConnection, Phase};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use support::{
    cluster,
    env::*,
    sandbox::{self, INSTANT},
};

/// A connection that leaves room to grow: 1000 Mbps on the 10 Gbps port.
async fn create_growable(env: &Env, name: &str) -> String {
    env.create(name, |o| {
        set(
            o,
            "spec/sourcePort",
            json!({"name": sandbox::PORT_10G.name}),
        );
    })
    .await;
    let fcc = env.wait_phase(name, Phase::Active).await;
    connection_id(&fcc)
}

async fn patch_spec(env: &Env, name: &str, spec: Value) -> FastConnectConnection {
    env.fccs
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("spec patched")
}

fn condition(fcc: &FastConnectConnection, type_: &str) -> Option<Condition> {
    fcc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Waits until `check` accepts the resource; `check` says what it still waits for.
async fn wait_until(
    env: &Env,
    name: &str,
    what: &str,
    check: impl Fn(&FastConnectConnection) -> Result<(), String>,
) -> FastConnectConnection {
    let fccs = &env.fccs;
    let check = &check;
    cluster::wait_for_ok(&format!("{name}: {what}"), WAIT, || async move {
        let fcc = fccs.get(name).await.map_err(|e| e.to_string())?;
        check(&fcc)
            .map(|()| fcc.clone())
            .map_err(|why| format!("{why}; status: {}", json!(fcc.status)))
    })
    .await
}

fn has_condition(
    fcc: &FastConnectConnection,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<(), String> {
    match condition(fcc, type_) {
        Some(c) if c.status == status && c.reason == reason => Ok(()),
        other => Err(format!("{type_} is {other:?}")),
    }
}

fn live_speed(fcc: &FastConnectConnection) -> Option<u32> {
    fcc.status.as_ref()?.speed_mbps
}

fn has_speed(fcc: &FastConnectConnection, mbps: u32) -> Result<(), String> {
    match live_speed(fcc) {
        Some(speed) if speed == mbps => Ok(()),
        other => Err(format!("speed {other:?}")),
    }
}

fn pending_state(fcc: &FastConnectConnection) -> Option<ChangeState> {
    fcc.status
        .as_ref()?
        .pending_change
        .as_ref()
        .map(|p| p.state)
}

/// Every Ready status the resource shows from now on, as the watch delivers them.
fn record_ready(fccs: Api<FastConnectConnection>, name: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut objects = watcher(fccs, config).applied_objects().boxed();
        while let Some(Ok(fcc)) = objects.next().await {
            if let Some(ready) = ready_condition(&fcc) {
                sink.lock().unwrap().push(ready.status);
            }
        }
    });
    seen
}

/// Waits until the operator has read Console Connect three more times: proof that it looked,
/// for assertions that it did nothing else.
async fn three_more_polls(env: &Env) {
    let reads =
        |stats: &sandbox::Stats| stats.total("search_connections") + stats.total("get_connection");
    let before = reads(&env.sandbox.stats().await);
    let sandbox = &env.sandbox;
    cluster::wait_for("three more polls", WAIT, || async move {
        (reads(&sandbox.stats().await) >= before + 3).then_some(())
    })
    .await;
}

/// A `kubectl get fcc NAME` row as header → value.
fn table_row(ns: &str, name: &str) -> Vec<(String, String)> {
    let table = cluster::kubectl_ok(&["-n", ns, "get", "fcc", name]);
    let mut lines = table.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let row: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    header.into_iter().zip(row).collect()
}

fn column(row: &[(String, String)], name: &str) -> String {
    row.iter()
        .find(|(h, _)| h == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
}

async fn events_with_reason(env: &Env, name: &str, reason: &str) -> Vec<String> {
    env.events()
        .await
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.message.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_raise_waits_for_approval_while_ready_then_a_decrease_and_a_rename_apply_at_once() {
    let env = Env::start(&INSTANT).await;
    let name = "grow";
    let id = create_growable(&env, name).await;
    env.sandbox.set_manual_approval(true).await;
    let ready_seen = record_ready(env.fccs.clone(), name);

    patch_spec(&env, name, json!({"speedMbps": 2000})).await;
    let waiting = wait_until(&env, name, "the raise awaits approval", |fcc| {
        has_condition(fcc, "ChangePending", "True", "ChangeAwaitingApproval")?;
        let pending = fcc.status.as_ref().and_then(|s| s.pending_change.clone());
        match pending {
            Some(p) if p.state == ChangeState::Pending && p.speed_mbps == 2000 => Ok(()),
            other => Err(format!("pendingChange {other:?}")),
        }
    })
    .await;
    assert_eq!(
        live_speed(&waiting),
        Some(1000),
        "the live speed until approval"
    );
    assert_eq!(ready_condition(&waiting).unwrap().status, "True");
    assert_eq!(waiting.status.as_ref().unwrap().phase, Some(Phase::Active));
    let row = table_row(&env.ns, name);
    assert_eq!(
        (column(&row, "SPEED"), column(&row, "REQUESTED")),
        ("1000".to_owned(), "2000".to_owned())
    );
    let remote = env.sandbox.connection(&id).await.expect("connection");
    assert_eq!(remote["request"]["status"], "PENDING");
    assert_eq!(remote["request"]["speed"], 2000);
    // The Support hand-off names the connection and the Secret, never the OCID.
    let handoff = events_with_reason(&env, name, "ChangeAwaitingApproval").await;
    assert_eq!(handoff.len(), 1, "{handoff:?}");
    assert!(handoff[0].contains(&id), "{}", handoff[0]);
    assert!(
        handoff[0].contains(&format!("Secret {}/oracle-vc key ocid", env.ns)),
        "{}",
        handoff[0]
    );
    assert!(!handoff[0].contains(OCID));

    env.sandbox.approve_change(&id).await;
    let applied = wait_until(&env, name, "the raise is applied", |fcc| {
        has_condition(fcc, "ChangePending", "False", "ChangeApplied")?;
        has_speed(fcc, 2000)
    })
    .await;
    assert_eq!(applied.status.as_ref().unwrap().pending_change, None);
    let row = table_row(&env.ns, name);
    assert_eq!(column(&row, "SPEED"), "2000");

    // A decrease goes through the update call and is in force at once.
    patch_spec(&env, name, json!({"speedMbps": 500})).await;
    wait_until(&env, name, "the decrease", |fcc| has_speed(fcc, 500)).await;
    let remote = env.sandbox.connection(&id).await.expect("connection");
    assert_eq!(remote["speed"]["value"], 500);

    // A rename, in place.
    patch_spec(&env, name, json!({"connectionName": "grown-and-renamed"})).await;
    wait_until(&env, name, "the rename", |fcc| {
        let live = fcc.status.as_ref().and_then(|s| s.connection_name.clone());
        (live.as_deref() == Some("grown-and-renamed"))
            .then_some(())
            .ok_or_else(|| format!("name {live:?}"))
    })
    .await;
    let remote = env.sandbox.connection(&id).await.expect("connection");
    assert_eq!(remote["name"], "grown-and-renamed");

    let stats = env.sandbox.stats().await;
    assert_eq!(stats.total("change_request"), 1, "one change request");
    assert_eq!(
        stats.total("update_connection"),
        2,
        "the decrease and the rename"
    );
    assert_eq!(stats.total("create_layer2"), 1);
    assert_eq!(
        events_with_reason(&env, name, "ConnectionUpdated")
            .await
            .len(),
        2
    );
    let ready = ready_seen.lock().unwrap().clone();
    assert!(!ready.is_empty());
    assert!(
        ready.iter().all(|s| s == "True"),
        "Ready left True during the changes: {ready:?}"
    );
}

#[tokio::test]
async fn reverting_withdraws_and_a_rejection_is_not_asked_again_until_the_spec_changes() {
    let env = Env::start(&INSTANT).await;
    let name = "undo";
    let id = create_growable(&env, name).await;
    env.sandbox.set_manual_approval(true).await;

    // More than the port can carry is refused before any call; the connection stays Ready.
    patch_spec(&env, name, json!({"speedMbps": 20_000})).await;
    let refused = wait_until(&env, name, "the raise is refused", |fcc| {
        has_condition(fcc, "Synced", "False", "SpeedExceedsPort")
    })
    .await;
    assert_eq!(ready_condition(&refused).unwrap().status, "True");
    let message = condition(&refused, "Synced").unwrap().message;
    assert!(message.contains("lower spec.speedMbps"), "{message}");
    assert_eq!(env.sandbox.stats().await.total("change_request"), 0);

    patch_spec(&env, name, json!({"speedMbps": 2000})).await;
    wait_until(&env, name, "the raise awaits approval", |fcc| {
        has_condition(fcc, "ChangePending", "True", "ChangeAwaitingApproval")
    })
    .await;
    patch_spec(&env, name, json!({"speedMbps": 1000})).await;
    let withdrawn = wait_until(&env, name, "the request is withdrawn", |fcc| {
        has_condition(fcc, "ChangePending", "False", "ChangeWithdrawn")
    })
    .await;
    assert_eq!(withdrawn.status.as_ref().unwrap().pending_change, None);
    let remote = env.sandbox.connection(&id).await.expect("connection");
    assert_eq!(remote["request"]["status"], "WITHDRAWN");
    assert_eq!(env.sandbox.stats().await.total("withdraw_change"), 1);

    patch_spec(&env, name, json!({"speedMbps": 3000})).await;
    wait_until(&env, name, "the second raise awaits approval", |fcc| {
        has_condition(fcc, "ChangePending", "True", "ChangeAwaitingApproval")
    })
    .await;
    env.sandbox.reject_change(&id).await;
    let rejected = wait_until(&env, name, "the rejection is reported", |fcc| {
        has_condition(fcc, "ChangePending", "False", "ChangeRejected")
    })
    .await;
    let held = rejected.status.as_ref().unwrap().pending_change.clone();
    assert_eq!(held.map(|p| p.state), Some(ChangeState::Rejected));
    assert_eq!(live_speed(&rejected), Some(1000));
    assert_eq!(ready_condition(&rejected).unwrap().status, "True");
    let message = condition(&rejected, "ChangePending").unwrap().message;
    assert!(message.contains("REJECTED"), "{message}");

    // The operator keeps polling the connection but does not ask again.
    let asked = env.sandbox.stats().await.total("change_request");
    assert_eq!(asked, 2);
    three_more_polls(&env).await;
    assert_eq!(env.sandbox.stats().await.total("change_request"), asked);

    // A new spec asks again.
    patch_spec(&env, name, json!({"speedMbps": 2500})).await;
    wait_until(&env, name, "the new raise awaits approval", |fcc| {
        has_condition(fcc, "ChangePending", "True", "ChangeAwaitingApproval")
    })
    .await;
    assert_eq!(env.sandbox.stats().await.total("change_request"), asked + 1);
}

#[tokio::test]
async fn a_sigkill_while_the_change_request_is_in_flight_never_asks_twice() {
    let mut env = Env::start(&INSTANT).await;
    let name = "killed";
    let id = create_growable(&env, name).await;
    env.sandbox.set_manual_approval(true).await;
    // The sandbox takes the request at once but answers long after the kill.
    env.sandbox
        .change_behaviour(json!({"changeDelayMs": 30_000}))
        .await;

    patch_spec(&env, name, json!({"speedMbps": 2000})).await;
    wait_until(&env, name, "the request marker", |fcc| {
        let state = pending_state(fcc);
        (state == Some(ChangeState::Requesting))
            .then_some(())
            .ok_or_else(|| format!("state {state:?}"))
    })
    .await;
    let sandbox = &env.sandbox;
    let id_ref = id.as_str();
    cluster::wait_for("the sandbox to hold the request", WAIT, || async move {
        let remote = sandbox.connection(id_ref).await?;
        (remote["request"]["status"] == "PENDING").then_some(())
    })
    .await;
    env.operator.as_mut().expect("operator").kill();
    env.sandbox
        .change_behaviour(json!({"changeDelayMs": 0}))
        .await;

    env.start_operator(&[]);
    let waiting = wait_until(&env, name, "the request is found, not sent again", |fcc| {
        has_condition(fcc, "ChangePending", "True", "ChangeAwaitingApproval")?;
        let state = pending_state(fcc);
        (state == Some(ChangeState::Pending))
            .then_some(())
            .ok_or_else(|| format!("state {state:?}"))
    })
    .await;
    assert_eq!(live_speed(&waiting), Some(1000));
    let received = env.sandbox.stats().await.changes();
    assert_eq!(received.len(), 1, "change requests received: {received:?}");

    env.sandbox.approve_change(&id).await;
    wait_until(&env, name, "the raise is applied", |fcc| {
        has_speed(fcc, 2000)
    })
    .await;
    assert_eq!(env.sandbox.stats().await.changes().len(), 1);
}

#[tokio::test]
async fn a_change_made_in_the_portal_is_reported_as_drift_and_restored() {
    let env = Env::start(&INSTANT).await;
    let name = "drift";
    let id = create_growable(&env, name).await;
    env.sandbox.set_manual_approval(true).await;

    // Someone lowers the speed in the portal: restoring it takes a change request.
    env.sandbox.edit(&id, json!({"speed": 400})).await;
    let drifted = wait_until(&env, name, "drift is reported", |fcc| {
        has_condition(fcc, "Drifted", "True", "DriftDetected")?;
        has_condition(fcc, "ChangePending", "True", "ChangeAwaitingApproval")
    })
    .await;
    assert_eq!(live_speed(&drifted), Some(400));
    let message = condition(&drifted, "Drifted").unwrap().message;
    assert!(
        message.contains("speed 400 Mbps (spec.speedMbps 1000)"),
        "{message}"
    );
    let warnings = events_with_reason(&env, name, "DriftDetected").await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    env.sandbox.approve_change(&id).await;
    wait_until(&env, name, "the speed is restored", |fcc| {
        has_condition(fcc, "Drifted", "False", "NoDrift")?;
        has_speed(fcc, 1000)
    })
    .await;

    // A rename in the portal is undone by the update call.
    env.sandbox.edit(&id, json!({"name": "portal-name"})).await;
    let sandbox = &env.sandbox;
    let id_ref = id.as_str();
    let spec_name = format!("{}.{name}", env.ns);
    let spec_name = spec_name.as_str();
    cluster::wait_for("the name to be restored", WAIT, || async move {
        let remote = sandbox.connection(id_ref).await?;
        (remote["name"] == spec_name).then_some(())
    })
    .await;
    // The Event follows the update call that restored the name, in the same reconcile.
    let env_ref = &env;
    cluster::wait_for("the rename's DriftDetected Event", WAIT, || async move {
        let drift_events = events_with_reason(env_ref, name, "DriftDetected").await;
        drift_events
            .iter()
            .any(|m| m.contains("name portal-name"))
            .then_some(())
    })
    .await;
    assert_eq!(env.sandbox.stats().await.total("create_layer2"), 1);
}

#[tokio::test]
async fn a_paused_resource_makes_no_call_not_even_to_disconnect() {
    let env = Env::start(&INSTANT).await;
    let name = "paused";
    let id = create_growable(&env, name).await;
    env.fccs
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"fastconnect.dev/paused": "true"}}})),
        )
        .await
        .expect("annotated");
    let paused = wait_until(&env, name, "the pause is reported", |fcc| {
        has_condition(fcc, "Synced", "False", "ReconcilePaused")
    })
    .await;
    assert_eq!(ready_condition(&paused).unwrap().status, "True");
    env.sandbox.reset_stats().await;

    // A spec change is seen (observedGeneration) but nothing is called.
    let changed = patch_spec(&env, name, json!({"speedMbps": 500})).await;
    let generation = changed.metadata.generation;
    wait_until(&env, name, "the change is observed", |fcc| {
        let observed = fcc.status.as_ref().and_then(|s| s.observed_generation);
        (observed == generation)
            .then_some(())
            .ok_or_else(|| format!("observedGeneration {observed:?}"))
    })
    .await;
    assert_eq!(env.sandbox.stats().await.total_requests(), 0);

    // Deleting waits: the circuit is not disconnected while paused.
    env.fccs
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    let waiting = wait_until(&env, name, "deletion waits for the pause", |fcc| {
        let status = fcc.status.clone().unwrap_or_default();
        let message = status.message.unwrap_or_default();
        (status.phase == Some(Phase::Deleting) && message.contains("not disconnected"))
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(env.sandbox.stats().await.total_requests(), 0);
    assert_eq!(env.sandbox.status_of(&id).await.as_deref(), Some("ACTIVE"));

    // Resuming disconnects and lets go.
    env.fccs
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"fastconnect.dev/paused": null}}})),
        )
        .await
        .expect("annotation removed");
    env.wait_gone(name).await;
    assert_eq!(env.sandbox.stats().await.total("delete_connection"), 1);
}

#[tokio::test]
async fn observe_only_reads_and_reports_but_never_writes() {
    let env = Env::start(&INSTANT).await;
    let client = env.sandbox.client();
    let key = sandbox::default_key();
    let existing = client
        .create_layer2(
            &key,
            sandbox::DEFAULT_COMPANY,
            &sandbox::valid_request("made-elsewhere"),
        )
        .await
        .expect("created in the sandbox");
    env.sandbox.reset_stats().await;

    let name = "watched";
    env.create(name, |o| {
        set(o, "spec/managementPolicy", json!("Observe"));
        set(o, "spec/connectionId", json!(existing.id));
        set(o, "spec/speedMbps", json!(300));
    })
    .await;
    let observed = wait_until(&env, name, "observed and drift reported", |fcc| {
        has_condition(fcc, "Ready", "True", "Active")?;
        has_condition(fcc, "Drifted", "True", "DriftDetected")
    })
    .await;
    assert_eq!(live_speed(&observed), Some(100));
    assert!(
        observed
            .metadata
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    );
    let message = condition(&observed, "Drifted").unwrap().message;
    assert!(message.contains("Observe"), "{message}");

    // Several more looks, still no write.
    three_more_polls(&env).await;
    env.fccs
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    env.wait_gone(name).await;
    let stats = env.sandbox.stats().await;
    for write in [
        "create_layer2",
        "update_connection",
        "change_request",
        "withdraw_change",
        "delete_connection",
    ] {
        assert_eq!(stats.total(write), 0, "{write}");
    }
    assert_eq!(
        env.sandbox.status_of(&existing.id).await.as_deref(),
        Some("ACTIVE")
    );
}

#[tokio::test]
async fn kubectl_explain_documents_the_day_2_fields() {
    let env = Env::without_operator(&INSTANT).await;
    for (path, words) in [
        (
            "fcc.spec.managementPolicy",
            &["Observe", "connectionId"][..],
        ),
        ("fcc.spec.speedMbps", &["change request"][..]),
        (
            "fcc.status.pendingChange",
            &["requestedAt", "speedMbps", "state"][..],
        ),
        ("fcc.status.speedMbps", &["Console Connect"][..]),
    ] {
        let text = cluster::kubectl_ok(&["-n", &env.ns, "explain", path]);
        for word in words {
            assert!(text.contains(word), "{path}: {word} missing in\n{text}");
        }
    }
}
