//! Smoke tests proving the test control plane (`hack/testenv.sh`) is a real Kubernetes API server:
//! CRDs with CEL validation, watches, the status subresource, Secrets, TokenRequest + RBAC,
//! garbage collection and namespace deletion (kube-controller-manager), and the server version.
//!
//! Run them with `make test`, or `eval "$(hack/testenv.sh env)"; cargo test --test testenv_smoke`.

use fastconnect_test_support as support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams,
};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::cluster;

const GROUP: &str = "smoke.fastconnect.dev";
const KIND: &str = "SmokeWidget";
const PLURAL: &str = "smokewidgets";
const CEL_MESSAGE: &str = "spec.size must be at most 10";
const TIMEOUT: Duration = Duration::from_secs(60);

/// The smoke CRD: a status subresource and a CEL rule with a message.
fn smoke_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{PLURAL}.{GROUP}") },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": { "kind": KIND, "plural": PLURAL, "singular": "smokewidget", "listKind": "SmokeWidgetList" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": { "type": "integer" },
                                "colour": { "type": "string" }
                            },
                            "x-kubernetes-validations": [
                                { "rule": "self.size <= 10", "message": CEL_MESSAGE }
                            ]
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": { "type": "string" },
                                "observedSize": { "type": "integer" }
                            }
                        }
                    }
                }}
            }]
        }
    }))
    .expect("the smoke CRD is valid")
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", KIND), PLURAL)
}

/// Applies the smoke CRD (idempotent) and returns the widget API in a fresh namespace.
async fn widgets(prefix: &str) -> (Client, String, Api<DynamicObject>) {
    let client = cluster::client().await;
    cluster::apply_crd(&client, &smoke_crd()).await;
    let ns = cluster::test_namespace(&client, prefix).await;
    let api = Api::namespaced_with(client.clone(), &ns, &widget_resource());
    (client, ns, api)
}

fn widget(name: &str, size: i64) -> DynamicObject {
    DynamicObject::new(name, &widget_resource())
        .data(json!({ "spec": { "size": size, "colour": "blue" } }))
}

#[tokio::test]
async fn crd_cel_rule_rejects_invalid_object() {
    let (_client, _ns, api) = widgets("smoke-cel").await;

    let err = api
        .create(&PostParams::default(), &widget("too-big", 42))
        .await
        .expect_err("a widget violating the CEL rule must be rejected");
    match &err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "unexpected status: {status:?}");
            assert!(
                status.message.contains(CEL_MESSAGE),
                "the rejection must carry the rule's message, got: {}",
                status.message
            );
        }
        other => panic!("expected an API error, got {other:?}"),
    }

    let ok = api
        .create(&PostParams::default(), &widget("fine", 3))
        .await
        .expect("a valid widget is accepted");
    assert_eq!(ok.data["spec"]["size"], 3);
}

#[tokio::test]
async fn watch_receives_created_object() {
    let (_client, _ns, api) = widgets("smoke-watch").await;

    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    // The watch is established once the initial list is done.
    tokio::time::timeout(TIMEOUT, async {
        while let Some(ev) = events.try_next().await.expect("watch failed") {
            if matches!(ev, watcher::Event::InitDone) {
                break;
            }
        }
    })
    .await
    .expect("the watcher's initial list did not complete");

    api.create(&PostParams::default(), &widget("watched", 5))
        .await
        .expect("create widget");

    let seen = tokio::time::timeout(TIMEOUT, async {
        while let Some(ev) = events.try_next().await.expect("watch failed") {
            if let watcher::Event::Apply(obj) = ev
                && obj.name_any() == "watched"
            {
                return obj;
            }
        }
        panic!("the watch stream ended");
    })
    .await
    .expect("no watch event for the created widget");
    assert_eq!(seen.data["spec"]["size"], 5);
}

#[tokio::test]
async fn status_subresource_patch() {
    let (_client, _ns, api) = widgets("smoke-status").await;
    let created = api
        .create(&PostParams::default(), &widget("with-status", 7))
        .await
        .expect("create widget");
    let generation = created.metadata.generation;

    // Status written with the main resource is ignored when the status subresource is enabled.
    let mut with_status = widget("ignored-status", 1);
    with_status.data["status"] = json!({ "phase": "Smuggled" });
    let c2 = api
        .create(&PostParams::default(), &with_status)
        .await
        .expect("create widget");
    assert!(
        c2.data.get("status").is_none(),
        "status must be dropped on create: {:?}",
        c2.data
    );

    let patched = api
        .patch_status(
            "with-status",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Ready", "observedSize": 7 } })),
        )
        .await
        .expect("patch status");
    assert_eq!(patched.data["status"]["phase"], "Ready");

    let got = api.get("with-status").await.expect("get widget");
    assert_eq!(got.data["status"]["phase"], "Ready");
    assert_eq!(got.data["status"]["observedSize"], 7);
    assert_eq!(
        got.metadata.generation, generation,
        "a status update must not bump metadata.generation"
    );
}

#[tokio::test]
async fn secret_roundtrip() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "smoke-secret").await;
    let api = Api::<Secret>::namespaced(client, &ns);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("api-key".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("token".to_owned(), "s3cr3t".to_owned())].into()),
        ..Secret::default()
    };
    api.create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let got = api.get("api-key").await.expect("get secret");
    let data = got.data.expect("the secret has data");
    assert_eq!(data["token"].0, b"s3cr3t");
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn token_request_and_rbac() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "smoke-rbac").await;
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("reader".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("create service account");

    let tr = sas
        .create_token_request(
            "reader",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .expect("TokenRequest");
    let token = tr.status.expect("TokenRequest has a status").token;
    assert!(!token.is_empty());

    let sa_client = cluster::client_with_token(&token).await;

    // The token authenticates as the service account...
    let review = Api::<SelfSubjectReview>::all(sa_client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview with the service account token");
    let username = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default();
    assert_eq!(username, format!("system:serviceaccount:{ns}:reader"));

    // ...and RBAC denies it to list secrets.
    let sa_secrets = Api::<Secret>::namespaced(sa_client, &ns);
    let err = sa_secrets
        .list(&ListParams::default())
        .await
        .expect_err("a bare service account must not list secrets");
    assert!(
        cluster::is_status(&err, 403),
        "expected 403 Forbidden, got {err:?}"
    );

    // Granting it a Role makes the same request succeed (RBAC really evaluates rules).
    let roles = Api::<Role>::namespaced(client.clone(), &ns);
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("secret-reader".into()),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["secrets".into()]),
                    verbs: vec!["list".into()],
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .expect("create role");
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("reader-reads-secrets".into()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "secret-reader".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "reader".into(),
                    namespace: Some(ns.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("create role binding");
    cluster::wait_for_ok(
        "the role binding to allow listing secrets",
        TIMEOUT,
        || async { sa_secrets.list(&ListParams::default()).await },
    )
    .await;
}

#[tokio::test]
async fn garbage_collection_and_namespace_deletion() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "smoke-gc").await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let owner = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await
        .expect("create owner");
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("dependent".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: "owner".into(),
                    uid: owner.uid().expect("owner has a uid"),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        },
    )
    .await
    .expect("create dependent");

    cms.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    cluster::wait_for(
        "the garbage collector to delete the dependent",
        TIMEOUT,
        || async {
            cms.get_opt("dependent")
                .await
                .expect("get dependent")
                .is_none()
                .then_some(())
        },
    )
    .await;

    // Namespace deletion completes (the namespace controller empties and finalizes it).
    cluster::delete_namespace(&client, &ns, Duration::from_secs(120)).await;
    assert!(
        Api::<Namespace>::all(client)
            .get_opt(&ns)
            .await
            .expect("get namespace")
            .is_none()
    );
}

#[test]
fn kubectl_version_reports_built_release() {
    let out = cluster::kubectl_ok(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("kubectl version -o json");
    let server = v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no serverVersion in {out}"));
    let client = v["clientVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no clientVersion in {out}"));
    // hack/testenv.sh env exports the release it built.
    match std::env::var("FCO_K8S_VERSION") {
        Ok(expected) if !expected.is_empty() => {
            assert_eq!(server, expected, "server version");
            assert_eq!(client, expected, "kubectl is the one built with the server");
        }
        _ => {
            assert!(server.starts_with("v1."), "server reports {server}");
        }
    }
    assert_eq!(v["serverVersion"]["major"], "1");
}
