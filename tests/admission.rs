//! Admission: every schema and CEL rule of the CRD, exercised with `kubectl apply` against the
//! real API server. Each bad object must be refused with a message that says what to fix.

use fastconnect_test_support as support;

use std::{io::Write, process::Stdio, sync::OnceLock};

use fastconnect_operator::crd::FastConnectConnection;
use kube::CustomResourceExt;
use serde_json::{Value, json};
use support::cluster;

/// Applies `object` with kubectl; `Err(stderr)` when refused.
fn kubectl_apply(object: &Value) -> Result<String, String> {
    let mut child = cluster::kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(object.to_string().as_bytes())
        .expect("write manifest");
    let out = child.wait_with_output().expect("kubectl finishes");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn namespace() -> String {
    static CRD: OnceLock<()> = OnceLock::new();
    let client = cluster::client().await;
    if CRD.get().is_none() {
        cluster::apply_crd(&client, &FastConnectConnection::crd()).await;
        let _ = CRD.set(());
    }
    cluster::test_namespace(&client, "admission").await
}

fn valid(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "fastconnect.dev/v1alpha1",
        "kind": "FastConnectConnection",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "companyUsername": "acme",
            "credentials": {
                "apiKeySecretRef": {"name": "consoleconnect"},
                "oracleOcidSecretRef": {"name": "oracle-vc"}
            },
            "sourcePort": {"name": "My-Port-1"},
            "destination": {"metro": "HKG"},
            "speedMbps": 1000,
            "term": {"duration": 1, "unit": "m"}
        }
    })
}

/// Applies `valid` changed by `edit` and expects a refusal mentioning every `expected` text.
async fn refused(edit: impl FnOnce(&mut Value), expected: &[&str]) {
    let ns = namespace().await;
    let mut object = valid(&ns, "bad");
    edit(&mut object);
    let error = kubectl_apply(&object).expect_err("the object must be refused");
    for text in expected {
        assert!(error.contains(text), "expected {text:?} in:\n{error}");
    }
}

#[tokio::test]
async fn a_valid_object_is_accepted_with_defaults() {
    let ns = namespace().await;
    kubectl_apply(&valid(&ns, "good")).expect("valid object applies");
    let out = cluster::kubectl_ok(&["-n", &ns, "get", "fcc", "good", "-o", "json"]);
    let object: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(object["spec"]["paymentType"], "invoice");
    assert_eq!(object["spec"]["deletionPolicy"], "Delete");
    assert_eq!(
        object["spec"]["credentials"]["apiKeySecretRef"]["key"],
        "apiKey"
    );
    assert_eq!(
        object["spec"]["credentials"]["oracleOcidSecretRef"]["key"],
        "ocid"
    );
}

#[tokio::test]
async fn required_fields_are_required() {
    refused(
        |o| {
            o["spec"].as_object_mut().unwrap().remove("speedMbps");
        },
        &["spec.speedMbps", "Required value"],
    )
    .await;
}

#[tokio::test]
async fn creditcard_is_refused_with_the_reason() {
    refused(
        |o| o["spec"]["paymentType"] = json!("creditcard"),
        &["creditcard is only supported in the Console Connect web application; use invoice"],
    )
    .await;
}

#[tokio::test]
async fn unknown_payment_type_is_refused() {
    refused(
        |o| o["spec"]["paymentType"] = json!("cash"),
        &["spec.paymentType", "Unsupported value"],
    )
    .await;
}

#[tokio::test]
async fn class_of_service_is_an_enum() {
    refused(
        |o| o["spec"]["classOfService"] = json!("PLATINUM"),
        &["spec.classOfService", "GOLD"],
    )
    .await;
}

#[tokio::test]
async fn term_unit_is_an_enum() {
    refused(
        |o| o["spec"]["term"]["unit"] = json!("q"),
        &["spec.term.unit", "Unsupported value"],
    )
    .await;
}

#[tokio::test]
async fn term_duration_is_positive() {
    refused(
        |o| o["spec"]["term"]["duration"] = json!(0),
        &["spec.term.duration", "greater than or equal to 1"],
    )
    .await;
}

#[tokio::test]
async fn speed_is_positive() {
    refused(
        |o| o["spec"]["speedMbps"] = json!(0),
        &["spec.speedMbps", "greater than or equal to 1"],
    )
    .await;
}

#[tokio::test]
async fn vlans_are_within_1_to_4094() {
    refused(
        |o| o["spec"]["vlans"] = json!({"source": 4095}),
        &["spec.vlans.source", "less than or equal to 4094"],
    )
    .await;
    refused(
        |o| o["spec"]["vlans"] = json!({"destination": 0}),
        &["spec.vlans.destination", "greater than or equal to 1"],
    )
    .await;
}

#[tokio::test]
async fn source_port_needs_exactly_one_of_name_or_id() {
    let message = "spec.sourcePort needs exactly one of name or id";
    refused(
        |o| o["spec"]["sourcePort"] = json!({"name": "a", "id": "b"}),
        &[message],
    )
    .await;
    refused(|o| o["spec"]["sourcePort"] = json!({}), &[message]).await;
}

#[tokio::test]
async fn destination_needs_exactly_one_of_metro_or_metro_id() {
    let message = "spec.destination needs exactly one of metro or metroId";
    refused(
        |o| o["spec"]["destination"] = json!({"metro": "HKG", "metroId": "x"}),
        &[message],
    )
    .await;
    refused(
        |o| o["spec"]["destination"] = json!({"destPortId": "x"}),
        &[message],
    )
    .await;
}

#[tokio::test]
async fn deletion_policy_is_delete_or_orphan() {
    refused(
        |o| o["spec"]["deletionPolicy"] = json!("Keep"),
        &["spec.deletionPolicy", "Orphan"],
    )
    .await;
}

#[tokio::test]
async fn unknown_fields_are_refused() {
    refused(
        |o| o["spec"]["speed"] = json!(1000),
        &["unknown field \"spec.speed\""],
    )
    .await;
}

/// A Secret is named, never its namespace: the operator reads it from the resource's own
/// namespace, so a tenant cannot point it at another tenant's key (docs/security.md).
#[tokio::test]
async fn a_secret_of_another_namespace_cannot_be_named() {
    for secret in ["apiKeySecretRef", "oracleOcidSecretRef"] {
        refused(
            |o| o["spec"]["credentials"][secret]["namespace"] = json!("kube-system"),
            &[&format!(
                "unknown field \"spec.credentials.{secret}.namespace\""
            )],
        )
        .await;
    }
}

/// Marks an object as ordered the way the operator does, through the status subresource.
fn mark_ordered(ns: &str, name: &str) {
    cluster::kubectl_ok(&[
        "-n",
        ns,
        "patch",
        "fcc",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"orderedAt":"2026-01-01T00:00:00Z","phase":"Creating"}}"#,
    ]);
}

#[tokio::test]
async fn the_order_is_frozen_once_placed_but_credentials_and_deletion_policy_are_not() {
    let ns = namespace().await;
    let original = valid(&ns, "ordered");
    kubectl_apply(&original).expect("applies");

    // Before the order the spec can be corrected.
    let mut fixed = original.clone();
    fixed["spec"]["sourcePort"] = json!({"name": "My-Port-10G"});
    kubectl_apply(&fixed).expect("an unordered spec may change");

    mark_ordered(&ns, "ordered");
    let changes = [
        ("companyUsername", json!("other")),
        ("sourcePort", json!({"id": "x"})),
        ("destination", json!({"metro": "LON"})),
        ("term", json!({"duration": 2, "unit": "y"})),
        ("classOfService", json!("GOLD")),
        ("evergreen", json!(true)),
        ("vlans", json!({"source": 7})),
        ("discountCode", json!("X")),
        ("connectionId", json!("abc")),
    ];
    for (field, value) in changes {
        let mut object = fixed.clone();
        object["spec"][field] = value;
        let error = kubectl_apply(&object).expect_err(field);
        let expected = format!("spec.{field} cannot change once the connection is ordered");
        assert!(
            error.contains(&expected),
            "{field}: expected {expected:?} in:\n{error}"
        );
    }

    // The speed is how a lost order is recognised: it waits for the connection to be recorded.
    let mut faster = fixed.clone();
    faster["spec"]["speedMbps"] = json!(500);
    let error = kubectl_apply(&faster).expect_err("speed while the order is placed");
    assert!(
        error.contains("spec.speedMbps cannot change while the order is being placed"),
        "{error}"
    );

    let mut allowed = fixed.clone();
    allowed["spec"]["credentials"]["apiKeySecretRef"] = json!({"name": "rotated", "key": "k"});
    allowed["spec"]["deletionPolicy"] = json!("Orphan");
    allowed["spec"]["connectionName"] = json!("renamed");
    allowed["spec"]["managementPolicy"] = json!("Full");
    kubectl_apply(&allowed).expect("credentials, deletionPolicy and the name stay mutable");

    // Once the connection is recorded, speed and name change in place.
    cluster::kubectl_ok(&[
        "-n",
        &ns,
        "patch",
        "fcc",
        "ordered",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"connectionId":"c1","phase":"Active"}}"#,
    ]);
    let mut changed = allowed.clone();
    changed["spec"]["speedMbps"] = json!(2000);
    changed["spec"]["connectionName"] = json!("renamed-again");
    kubectl_apply(&changed).expect("speed and name change once the connection is recorded");
}

#[tokio::test]
async fn observe_only_needs_a_connection_id() {
    refused(
        |o| o["spec"]["managementPolicy"] = json!("Observe"),
        &["spec.managementPolicy Observe needs spec.connectionId"],
    )
    .await;
    refused(
        |o| o["spec"]["managementPolicy"] = json!("ReadOnly"),
        &["spec.managementPolicy", "Observe"],
    )
    .await;
    let ns = namespace().await;
    let mut observed = valid(&ns, "observed");
    observed["spec"]["managementPolicy"] = json!("Observe");
    observed["spec"]["connectionId"] = json!("c1");
    kubectl_apply(&observed).expect("Observe with a connectionId");
}
