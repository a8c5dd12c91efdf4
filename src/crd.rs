//! The `FastConnectConnection` custom resource: an order for one Oracle FastConnect Layer 2
//! connection through Console Connect.
//!
//! Admission rules live here, next to the fields they guard, so that `kubectl apply` refuses bad
//! input with a message instead of the operator discovering it later.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    CustomResource, KubeSchema,
    core::{Message, Rule},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "fastconnect.dev";

/// The status marker that says the spec has been used for an order: from then on the fields the
/// Console Connect API cannot change are frozen (CEL rules below).
const ORDERED: &str =
    "has(oldSelf.status) && (has(oldSelf.status.orderedAt) || has(oldSelf.status.connectionId))";

/// A root-level rule freezing one required spec field once the connection is ordered.
fn frozen(field: &str, what_to_do: &str) -> Rule {
    Rule::new(format!(
        "!({ORDERED}) || self.spec.{field} == oldSelf.spec.{field}"
    ))
    .message(Message::Message(format!(
        "spec.{field} cannot change once the connection is ordered; {what_to_do}"
    )))
}

/// Like [`frozen`] for an optional field: adding or removing it is a change too.
fn frozen_optional(field: &str, what_to_do: &str) -> Rule {
    Rule::new(format!(
        "!({ORDERED}) || (has(self.spec.{field}) == has(oldSelf.spec.{field}) && \
         (!has(self.spec.{field}) || self.spec.{field} == oldSelf.spec.{field}))"
    ))
    .message(Message::Message(format!(
        "spec.{field} cannot change once the connection is ordered; {what_to_do}"
    )))
}

const NEW_RESOURCE: &str = "create a new FastConnectConnection instead";

/// The speed may change, but not while an order is placed and its connection not yet recorded:
/// the operator recognises a lost order by its speed, among other things.
fn unsettled_speed() -> Rule {
    Rule::new(
        "!(has(oldSelf.status) && has(oldSelf.status.orderedAt) && \
         !has(oldSelf.status.connectionId)) || self.spec.speedMbps == oldSelf.spec.speedMbps",
    )
    .message(Message::Message(
        "spec.speedMbps cannot change while the order is being placed; change it once \
         status.connectionId is set"
            .into(),
    ))
}

/// An order for an Oracle FastConnect Layer 2 connection from one of your Console Connect ports.
///
/// The operator finds the port and the Oracle metro, creates the connection, and follows it
/// through approval to ACTIVE. Deleting the resource disconnects the circuit unless
/// `deletionPolicy` is `Orphan`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fastconnect.dev",
    version = "v1alpha1",
    kind = "FastConnectConnection",
    plural = "fastconnectconnections",
    shortname = "fcc",
    category = "fastconnect",
    namespaced,
    status = "FastConnectConnectionStatus",
    derive = "PartialEq",
    doc = "An order for one Oracle FastConnect Layer 2 connection through Console Connect.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Speed", type_ = "integer", json_path = ".status.speedMbps", description = "Mbps in Console Connect"),
    printcolumn(name = "Requested", type_ = "integer", json_path = ".status.pendingChange.speedMbps", description = "Mbps of the change request waiting for approval"),
    printcolumn(name = "Metro", type_ = "string", json_path = ".status.destMetro"),
    printcolumn(name = "Connection", type_ = "string", json_path = ".status.connectionId"),
    printcolumn(name = "Remote", type_ = "string", json_path = ".status.remoteStatus"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = frozen("companyUsername", NEW_RESOURCE),
    validation = frozen("sourcePort", NEW_RESOURCE),
    validation = frozen("destination", NEW_RESOURCE),
    validation = unsettled_speed(),
    validation = frozen("paymentType", NEW_RESOURCE),
    validation = frozen("term", NEW_RESOURCE),
    validation = frozen_optional("classOfService", NEW_RESOURCE),
    validation = frozen_optional("evergreen", NEW_RESOURCE),
    validation = frozen_optional("vlans", NEW_RESOURCE),
    validation = frozen_optional("discountCode", NEW_RESOURCE),
    validation = frozen_optional("connectionId", "create a new FastConnectConnection to adopt another connection"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.paymentType != 'creditcard'").message(
    "spec.paymentType creditcard is only supported in the Console Connect web application; use invoice"
))]
#[x_kube(validation = Rule::new("self.managementPolicy != 'Observe' || has(self.connectionId)").message(
    "spec.managementPolicy Observe needs spec.connectionId: the connection to observe"
))]
pub struct FastConnectConnectionSpec {
    /// Your Console Connect company username (the `:companyUsername` in API paths).
    #[schemars(length(min = 1, max = 128))]
    pub company_username: String,

    /// Where to find the Console Connect API key and the Oracle virtual circuit OCID. Both
    /// Secrets must be in this resource's namespace. May change at any time (key rotation).
    pub credentials: Credentials,

    /// The Console Connect port the connection starts from: exactly one of `name` or `id`.
    pub source_port: SourcePort,

    /// The Oracle metro to connect to.
    pub destination: Destination,

    /// The name of the connection in Console Connect. Defaults to `<namespace>.<name>` (a
    /// namespace has no dots, so no two resources share it). It must be unique in your company:
    /// the operator uses it to find an order whose answer was lost. May change after ordering:
    /// the connection is renamed in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub connection_name: Option<String>,

    /// Bandwidth in Mbps. Must not exceed the source port's speed. May change once the
    /// connection is ACTIVE: a decrease is applied at once; an increase opens a change request
    /// that waits for approval (see `status.pendingChange`) while the connection keeps its
    /// current speed. Setting it back to the current speed withdraws the request.
    #[schemars(range(min = 1, max = 400000), extend("format" = "int32"))]
    pub speed_mbps: u32,

    /// Class of service of the connection; Console Connect picks one when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_of_service: Option<ClassOfService>,

    /// How the connection is paid for. Only `invoice` is possible through the API.
    #[serde(default)]
    pub payment_type: PaymentType,

    /// The contract term.
    pub term: Term,

    /// Renew the contract automatically at the end of the term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evergreen: Option<bool>,

    /// VLANs to request on each side; Console Connect assigns them when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlans: Option<Vlans>,

    /// A Console Connect discount code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub discount_code: Option<String>,

    /// What deleting this resource does to the connection: `Delete` disconnects it, `Orphan`
    /// leaves it running in Console Connect. May change at any time.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Adopt this existing Console Connect connection instead of ordering a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub connection_id: Option<String>,

    /// `Full` (default): order, change and disconnect the connection. `Observe`: only read the
    /// connection named by `connectionId` and report it; nothing is ordered, changed or
    /// disconnected, and deleting the resource leaves the connection running. May change at
    /// any time.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

/// How much the operator may do to the connection.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManagementPolicy {
    /// Order, change and disconnect.
    #[default]
    Full,
    /// Read and report only.
    Observe,
}

/// The annotation that stops every Console Connect call for a resource while it is `"true"`.
pub const PAUSED_ANNOTATION: &str = "fastconnect.dev/paused";

/// References to the Secrets holding what the order needs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The Secret key holding the Console Connect API key.
    pub api_key_secret_ref: ApiKeySecretRef,
    /// The Secret key holding the Oracle virtual circuit OCID (`ocid1.virtualcircuit...`) that
    /// Console Connect Support needs to complete the Oracle side.
    pub oracle_ocid_secret_ref: OcidSecretRef,
}

/// A key in a Secret of the resource's own namespace holding the Console Connect API key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApiKeySecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_api_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_api_key_key() -> String {
    "apiKey".into()
}

/// A key in a Secret of the resource's own namespace holding the Oracle virtual circuit OCID.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OcidSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_ocid_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_ocid_key() -> String {
    "ocid".into()
}

/// The source port, by exactly one of `name` or `id`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) != has(self.id)").message(
    "spec.sourcePort needs exactly one of name or id"
))]
pub struct SourcePort {
    /// The port's name in Console Connect; it must be unique among your active ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,
    /// The port's id in Console Connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub id: Option<String>,
}

/// The Oracle metro, by exactly one of `metro` or `metroId`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.metro) != has(self.metroId)").message(
    "spec.destination needs exactly one of metro or metroId"
))]
pub struct Destination {
    /// Metro code or name as Oracle lists it in Console Connect, in any case (`HKG`, `Hong Kong`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub metro: Option<String>,
    /// Metro id as Oracle lists it in Console Connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub metro_id: Option<String>,
    /// Destination port id, passed to Console Connect as `destPortId` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub dest_port_id: Option<String>,
}

/// Class of service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClassOfService {
    Gold,
    Silverplus,
    Silver,
    Bronze,
}

/// Payment type. `creditcard` is listed only so that admission can say why it is refused.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PaymentType {
    #[default]
    Invoice,
    Creditcard,
}

/// Contract term.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Term {
    /// Length of the term, in `unit`s.
    #[schemars(range(min = 1, max = 1000), extend("format" = "int32"))]
    pub duration: u32,
    /// Unit of the term: `d` days, `w` weeks, `m` months, `y` years.
    pub unit: TermUnit,
}

/// Unit of a contract term.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermUnit {
    #[serde(rename = "d")]
    Days,
    #[serde(rename = "w")]
    Weeks,
    #[serde(rename = "m")]
    Months,
    #[serde(rename = "y")]
    Years,
}

/// VLAN requests, each 1-4094.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Vlans {
    /// VLAN on your port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094), extend("format" = "int32"))]
    pub source: Option<u16>,
    /// VLAN on the Oracle side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094), extend("format" = "int32"))]
    pub destination: Option<u16>,
}

/// What happens to the connection when the resource is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Disconnect the connection in Console Connect.
    #[default]
    Delete,
    /// Leave the connection running; only the Kubernetes resource goes away.
    Orphan,
}

/// Where the order stands, as last observed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FastConnectConnectionStatus {
    /// Where the order stands: Pending, Resolving, Creating, AwaitingApproval, Provisioning,
    /// Active, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// When the resource entered its phase (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_since: Option<String>,
    /// The Console Connect connection id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// The connection's name in Console Connect, as last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_name: Option<String>,
    /// The connection's speed in Console Connect, in Mbps, as last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub speed_mbps: Option<u32>,
    /// A speed increase asked of Console Connect through a change request, until it is applied
    /// or withdrawn; a rejected one stays until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingChange>,
    /// Console Connect's own status of the connection, as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_status: Option<String>,
    /// The resolved source port id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    /// The resolved Oracle metro code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_metro: Option<String>,
    /// The resolved Oracle metro id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_metro_id: Option<String>,
    /// The Oracle data-centre facility the connection lands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_dcf: Option<String>,
    /// VLAN details as Console Connect reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub vlan: Option<serde_json::Value>,
    /// When the operator sent (or was about to send) the order. Set before the create call, so
    /// that after a crash the operator looks for the connection instead of ordering again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_at: Option<String>,
    /// When the operator confirmed, after the settle window, that exactly one live connection
    /// carries this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// The generation of the spec Console Connect refused to order; nothing is ordered again
    /// until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_generation: Option<i64>,
    /// When the operator asked Console Connect to disconnect the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_requested_at: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the connection is ACTIVE. `Synced`: the last reconcile succeeded (False with
    /// reason `ReconcilePaused` while paused). `ChangePending`: a change request waits for
    /// approval. `Drifted`: Console Connect differs from the spec by a change made outside
    /// Kubernetes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// What is happening or what to do, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A change request for more bandwidth.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingChange {
    /// The speed asked for, in Mbps.
    #[schemars(extend("format" = "int32"))]
    pub speed_mbps: u32,
    /// When the operator asked for it.
    pub requested_at: String,
    /// `Requesting`: being sent (after a restart the operator reads the connection before
    /// asking again); `Pending`: waiting for approval; `Rejected`: not applied, and not asked
    /// again until the spec changes.
    pub state: ChangeState,
    /// Console Connect's status of the request, as received (`PENDING`, `REJECTED`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_status: Option<String>,
    /// The generation of the spec that asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// Where a change request stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeState {
    Requesting,
    Pending,
    Rejected,
}

fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The lifecycle of an order.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Waiting for inputs: Secrets, a usable API key.
    Pending,
    /// Looking up the port and the Oracle metro.
    Resolving,
    /// Ordered; Console Connect is creating the connection.
    Creating,
    /// Waiting for approval; Console Connect Support needs the Oracle OCID.
    AwaitingApproval,
    /// Approved; the circuit is being provisioned.
    Provisioning,
    /// The connection is ACTIVE.
    Active,
    /// Stopped: the condition says why and what to do.
    Failed,
    /// Disconnecting.
    Deleting,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Resolving,
        Phase::Creating,
        Phase::AwaitingApproval,
        Phase::Provisioning,
        Phase::Active,
        Phase::Failed,
        Phase::Deleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Resolving => "Resolving",
            Phase::Creating => "Creating",
            Phase::AwaitingApproval => "AwaitingApproval",
            Phase::Provisioning => "Provisioning",
            Phase::Active => "Active",
            Phase::Failed => "Failed",
            Phase::Deleting => "Deleting",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where `crdgen` writes the CRD, relative to the repository root.
pub const CRD_PATH: &str = "crds/fastconnect.dev_fastconnectconnections.yaml";

/// The CRD as committed YAML: a header saying where it comes from, then the manifest.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    let body = serde_saphyr::to_string(&FastConnectConnection::crd())?;
    Ok(format!(
        "# Generated by `cargo run --bin crdgen` from src/crd.rs; do not edit.\n{body}"
    ))
}

impl FastConnectConnection {
    /// The pause annotation is set: no Console Connect call may be made for this resource.
    pub fn is_paused(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSED_ANNOTATION))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Only reads are allowed.
    pub fn observe_only(&self) -> bool {
        self.spec.management_policy == ManagementPolicy::Observe
    }

    /// The connection's name in Console Connect: the spec's, or `<namespace>.<name>`. A
    /// namespace cannot contain a dot, so the default cannot collide across namespaces.
    pub fn connection_name(&self) -> String {
        if let Some(name) = &self.spec.connection_name {
            return name.clone();
        }
        let namespace = self.metadata.namespace.as_deref().unwrap_or("default");
        let name = self.metadata.name.as_deref().unwrap_or_default();
        format!("{namespace}.{name}")
    }

    /// The name the order was placed under: the one recorded in status (resources ordered
    /// before the default changed keep theirs), else [`Self::connection_name`].
    pub fn ordered_name(&self) -> String {
        self.status
            .as_ref()
            .and_then(|s| s.connection_name.clone())
            .unwrap_or_else(|| self.connection_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    fn spec() -> serde_json::Value {
        serde_json::json!({
            "companyUsername": "acme",
            "credentials": {
                "apiKeySecretRef": {"name": "consoleconnect"},
                "oracleOcidSecretRef": {"name": "oracle-vc"}
            },
            "sourcePort": {"name": "My-Port-1"},
            "destination": {"metro": "HKG"},
            "speedMbps": 1000,
            "term": {"duration": 1, "unit": "m"}
        })
    }

    #[test]
    fn secret_keys_default_per_reference() {
        let spec: FastConnectConnectionSpec = serde_json::from_value(spec()).unwrap();
        assert_eq!(spec.credentials.api_key_secret_ref.key, "apiKey");
        assert_eq!(spec.credentials.oracle_ocid_secret_ref.key, "ocid");
        assert_eq!(spec.payment_type, PaymentType::Invoice);
        assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
    }

    #[test]
    fn connection_name_defaults_to_namespace_and_name() {
        let mut fcc =
            FastConnectConnection::new("hk-oracle", serde_json::from_value(spec()).unwrap());
        fcc.metadata.namespace = Some("network".into());
        assert_eq!(fcc.connection_name(), "network.hk-oracle");
        fcc.spec.connection_name = Some("custom".into());
        assert_eq!(fcc.connection_name(), "custom");
    }

    #[test]
    fn default_names_do_not_collide_across_namespaces() {
        let named = |namespace: &str, name: &str| {
            let mut fcc = FastConnectConnection::new(name, serde_json::from_value(spec()).unwrap());
            fcc.metadata.namespace = Some(namespace.into());
            fcc.connection_name()
        };
        assert_ne!(named("team-a", "x"), named("team", "a-x"));
        assert_ne!(named("team-a", "x.y"), named("team", "a-x.y"));
    }

    #[test]
    fn crd_has_the_public_names() {
        let crd = FastConnectConnection::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("fastconnectconnections.fastconnect.dev")
        );
        assert_eq!(crd.spec.names.short_names, Some(vec!["fcc".to_string()]));
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
    }

    #[test]
    fn every_schema_field_has_a_description() {
        let crd = serde_json::to_value(FastConnectConnection::crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        find_undescribed(&schema["properties"]["spec"], "spec", &mut missing);
        find_undescribed(&schema["properties"]["status"], "status", &mut missing);
        assert!(
            missing.is_empty(),
            "fields without a description: {missing:?}"
        );
    }

    fn find_undescribed(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
            return;
        };
        for (name, field) in properties {
            let field_path = format!("{path}.{name}");
            if field.get("description").is_none() && !path.starts_with("status.conditions") {
                missing.push(field_path.clone());
            }
            find_undescribed(field, &field_path, missing);
            if let Some(items) = field.get("items") {
                find_undescribed(items, &format!("{field_path}[]"), missing);
            }
        }
    }
}
