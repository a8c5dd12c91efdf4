//! Objects the integration tests and the benchmark share: Secrets and the demo connection.

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams},
};
use serde_json::{Value, json};

use super::sandbox;

/// Creates or replaces the Secret `name` in `namespace` holding `key` = `value`.
pub async fn put_secret(client: &Client, namespace: &str, name: &str, key: &str, value: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot apply Secret {namespace}/{name}: {e}"));
}

/// The demo connection `name`: 1 Gbps from the sandbox's `My-Port-1` to Oracle in HKG, with the
/// Secrets `consoleconnect` (key `apiKey`) and `oracle-vc` (key `ocid`).
pub fn connection(name: &str) -> Value {
    json!({
        "apiVersion": "fastconnect.dev/v1alpha1",
        "kind": "FastConnectConnection",
        "metadata": {"name": name},
        "spec": {
            "companyUsername": sandbox::DEFAULT_COMPANY,
            "credentials": {
                "apiKeySecretRef": {"name": "consoleconnect"},
                "oracleOcidSecretRef": {"name": "oracle-vc"}
            },
            "sourcePort": {"name": sandbox::PORT_1G.name},
            "destination": {"metro": "HKG"},
            "speedMbps": 1000,
            "term": {"duration": 1, "unit": "m"}
        }
    })
}

/// Many connections share the 10 Gbps port at 5 Mbps each (2,000 fit in its capacity).
pub fn small_connection(name: &str) -> Value {
    let mut object = connection(name);
    object["spec"]["sourcePort"]["name"] = json!(sandbox::PORT_10G.name);
    object["spec"]["speedMbps"] = json!(5);
    object
}
