//! Request and response bodies of the Console Connect API.
//!
//! Responses are read leniently: apart from `id`, a field that is missing or has an unexpected
//! shape becomes `None` or its default instead of failing the whole response. The API has no
//! published schema, and failing to read a create response would lose the id of a connection
//! that was in fact ordered.

use std::fmt;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// A port of the customer's company (`GET /api/company/{company}/ports`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    pub id: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient")]
    pub speed: Option<Speed>,
    #[serde(default, deserialize_with = "lenient")]
    pub metro_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub company_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub data_center_facility_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub pop_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub status: PortStatus,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub deleted: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub deleted_at: Option<String>,
    /// Bandwidth left on the port for new connections, when the service says.
    #[serde(default, deserialize_with = "lenient")]
    pub capacity: Option<Capacity>,
    /// A port that may carry only one connection.
    #[serde(default, deserialize_with = "lenient")]
    pub single_service: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub payment_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub payg: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub updated_at: Option<String>,
}

impl Port {
    /// Flagged `deleted`, or DELETED.
    pub fn is_deleted(&self) -> bool {
        self.deleted || self.status == PortStatus::Deleted
    }

    /// Mbps still free on the port, when the service publishes it.
    pub fn remaining_mbps(&self) -> Option<f64> {
        self.capacity.as_ref().and_then(|c| c.remaining)
    }
}

/// `capacity` of a port; `remaining` is in Mbps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    #[serde(default, deserialize_with = "lenient")]
    pub remaining: Option<f64>,
}

/// A speed as the API writes it: `{"value": 1000, "name": "1000 Mbps"}`; `value` is in Mbps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    pub value: f64,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
}

/// Status of a port, as documented; anything else is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortStatus {
    Activating,
    Ready,
    Active,
    Disabling,
    Disabled,
    Deleting,
    Deleted,
    Unknown,
    Onboarding,
    Other(String),
}

impl PortStatus {
    pub fn parse(raw: &str) -> Self {
        match normalise(raw).as_str() {
            "ACTIVATING" => PortStatus::Activating,
            "READY" => PortStatus::Ready,
            "ACTIVE" => PortStatus::Active,
            "DISABLING" => PortStatus::Disabling,
            "DISABLED" => PortStatus::Disabled,
            "DELETING" => PortStatus::Deleting,
            "DELETED" => PortStatus::Deleted,
            "UNKNOWN" => PortStatus::Unknown,
            "ONBOARDING" => PortStatus::Onboarding,
            _ => PortStatus::Other(raw.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PortStatus::Activating => "ACTIVATING",
            PortStatus::Ready => "READY",
            PortStatus::Active => "ACTIVE",
            PortStatus::Disabling => "DISABLING",
            PortStatus::Disabled => "DISABLED",
            PortStatus::Deleting => "DELETING",
            PortStatus::Deleted => "DELETED",
            PortStatus::Unknown => "UNKNOWN",
            PortStatus::Onboarding => "ONBOARDING",
            PortStatus::Other(raw) => raw,
        }
    }

    /// Only an ACTIVE port carries traffic, so only it may take an order.
    pub fn takes_orders(&self) -> bool {
        *self == PortStatus::Active
    }

    /// Why a port in this status cannot take an order, and what to do.
    pub fn refusal(&self) -> &'static str {
        match self {
            PortStatus::Active => "it is ACTIVE",
            PortStatus::Activating | PortStatus::Onboarding => {
                "it is still being activated; wait until it is ACTIVE"
            }
            PortStatus::Ready => {
                "it is allocated but awaits its physical cross-connect; wait until it is ACTIVE"
            }
            PortStatus::Disabling | PortStatus::Disabled => {
                "it is disabled; enable it in Console Connect or pick another port"
            }
            PortStatus::Deleting | PortStatus::Deleted => "it is deleted; pick another port",
            PortStatus::Unknown | PortStatus::Other(_) => {
                "its state is not known; check it in Console Connect"
            }
        }
    }
}

/// A port whose status is missing reads as `UNKNOWN`, never as active.
impl Default for PortStatus {
    fn default() -> Self {
        PortStatus::Unknown
    }
}

/// A metro where Oracle offers connections (`GET /api/company/oracle/metro/capabilities`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metro {
    pub id: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub code: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub ready: bool,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub deleted: bool,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub capabilities: MetroCapabilities,
    /// The reference's name of the facility id; see [`Metro::facility_id`].
    #[serde(default, deserialize_with = "lenient")]
    pub first_data_center_facility_id_in_metro: Option<String>,
    /// The spec example's name of the same id.
    #[serde(default, deserialize_with = "lenient")]
    pub first_data_center_facility_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub region_ids: Vec<String>,
}

impl Metro {
    /// The data-centre facility an order to this metro lands in, under either of its names.
    pub fn facility_id(&self) -> Option<&str> {
        self.first_data_center_facility_id_in_metro
            .as_deref()
            .or(self.first_data_center_facility_id.as_deref())
            .filter(|id| !id.trim().is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetroCapabilities {
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub layer2: bool,
}

/// Body of `PUT /api/v2/company/{company}/connections/layer2`. Serialises with
/// `"type": "LAYER2"` and camelCase names; `None` fields are left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename = "LAYER2", rename_all = "camelCase")]
pub struct Layer2Request {
    pub name: String,
    pub port_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_dcf: Option<String>,
    /// Mbps.
    pub speed: u32,
    pub dest_metro_id: String,
    pub dest_company: String,
    pub payment_type: PaymentType,
    pub duration: u32,
    pub duration_unit: DurationUnit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evergreen: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_of_service: Option<ClassOfService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_vlan_request: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_vlan_request: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_code: Option<String>,
}

/// Only `Invoice` is accepted through the API; `Creditcard` exists so the operator can name the
/// value and get the service's own refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentType {
    Invoice,
    Creditcard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationUnit {
    D,
    W,
    M,
    Y,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClassOfService {
    Gold,
    Silverplus,
    Silver,
    Bronze,
}

/// The fields the update call changes; absent ones are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionUpdate {
    /// Mbps; only lower than the current speed towards another company.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ConnectionUpdate {
    pub fn is_empty(&self) -> bool {
        self.speed.is_none() && self.name.is_none()
    }
}

/// A Layer 2 connection as returned by create, read and search.
///
/// Decoded by hand from whatever JSON object arrives: the spec's examples and live answers
/// write the same facts in several shapes (`destCompany` as a string, an object or an array of
/// one-key objects; the destination metro as `destMetroId` or `destMetro`; the source port as
/// `srcPortId` or `port`), and only a missing `id` makes a connection unreadable.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub status: ConnectionStatus,
    /// Why the connection is in ERROR: `errorReason`, or the partner's `errorMessage`.
    pub error_reason: Option<String>,
    pub speed: Option<Speed>,
    pub src_port_id: Option<String>,
    pub dest_port_id: Option<String>,
    pub dest_metro_id: Option<String>,
    /// The destination company's id or username, whichever the answer carries.
    pub dest_company: Option<String>,
    pub class_of_service: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// The connection type, `LAYER2` for these connections.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub deleted: bool,
    pub deleted_at: Option<String>,
    /// VLANs assigned on each side, when the answer says.
    pub vlans: AssignedVlans,
    /// A pending request on the connection (a new connection or a change), if any.
    pub request: Option<PendingRequest>,
}

/// The VLANs a connection carries: `srcVlan`/`destVlan`, `srcTag`/`destTag`, or the same names
/// inside `vlan`; the requested `srcVlanRequest`/`destVlanRequest` when nothing else is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedVlans {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_vlan: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_vlan: Option<u16>,
}

impl AssignedVlans {
    pub fn is_empty(&self) -> bool {
        self.src_vlan.is_none() && self.dest_vlan.is_none()
    }
}

/// `request` of a connection: a new connection or a change waiting for approval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub status: Option<String>,
    /// Mbps.
    pub speed: Option<f64>,
    pub dest_metro_id: Option<String>,
    pub src_approval: Option<String>,
    pub dest_approval: Option<String>,
}

impl PendingRequest {
    /// Waiting for a party's approval (`PENDING`, in any case).
    pub fn is_pending(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("PENDING"))
    }

    /// The requested speed in whole Mbps.
    pub fn speed_mbps(&self) -> Option<u32> {
        whole_mbps(self.speed?)
    }
}

impl Connection {
    /// DELETED, or flagged `deleted`: the connection no longer exists.
    pub fn is_deleted(&self) -> bool {
        self.deleted || self.status == ConnectionStatus::Deleted
    }

    /// The speed in whole Mbps, when the answer gives one.
    pub fn speed_mbps(&self) -> Option<u32> {
        whole_mbps(self.speed.as_ref()?.value)
    }

    /// The change request waiting for approval on an ACTIVE connection. (On a connection not
    /// yet active, `request` is the connection request itself.)
    pub fn open_change(&self) -> Option<&PendingRequest> {
        self.request
            .as_ref()
            .filter(|r| self.status == ConnectionStatus::Active && r.is_pending())
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        let object = value
            .as_object()
            .ok_or_else(|| D::Error::custom("a connection must be a JSON object"))?;
        let field = |name: &str| object.get(name).unwrap_or(&serde_json::Value::Null);
        let id = text(field("id")).ok_or_else(|| D::Error::missing_field("id"))?;
        let vlan = flatten(field("vlan"));
        let vlan_of = |names: &[&str]| {
            let top = names.iter().find_map(|name| vlan_number(field(name)));
            top.or_else(|| names.iter().find_map(|name| vlan_number(&vlan[*name])))
        };
        let partner_error = flatten(field("partner")).get("errorMessage").and_then(text);
        Ok(Connection {
            id,
            name: text(field("name")).unwrap_or_default(),
            status: text(field("status"))
                .map(|raw| ConnectionStatus::parse(&raw))
                .unwrap_or_default(),
            error_reason: text(field("errorReason")).or(partner_error),
            speed: Speed::deserialize(field("speed")).ok(),
            src_port_id: text(field("srcPortId")).or_else(|| id_of(field("port"))),
            dest_port_id: text(field("destPortId")),
            dest_metro_id: text(field("destMetroId")).or_else(|| id_of(field("destMetro"))),
            dest_company: id_of(field("destCompany")),
            class_of_service: text(field("classOfService")),
            created_at: text(field("createdAt")),
            updated_at: text(field("updatedAt")),
            kind: text(field("type")),
            deleted: field("deleted").as_bool().unwrap_or(false),
            deleted_at: text(field("deletedAt")),
            vlans: AssignedVlans {
                src_vlan: vlan_of(&["srcVlan", "srcTag", "srcVlanRequest"]),
                dest_vlan: vlan_of(&["destVlan", "destTag", "destVlanRequest"]),
            },
            request: pending_request(field("request")),
        })
    }
}

/// A speed as whole Mbps; `None` for a value no speed can have.
fn whole_mbps(value: f64) -> Option<u32> {
    (value.is_finite() && value >= 0.0 && value <= f64::from(u32::MAX))
        .then(|| value.round() as u32)
}

fn pending_request(value: &serde_json::Value) -> Option<PendingRequest> {
    let request = flatten(value);
    let object = request.as_object().filter(|o| !o.is_empty())?;
    let get = |name: &str| object.get(name).unwrap_or(&serde_json::Value::Null);
    Some(PendingRequest {
        status: text(get("status")),
        speed: get("speed")
            .as_f64()
            .or_else(|| get("speed")["value"].as_f64()),
        dest_metro_id: text(get("destMetroId")),
        src_approval: text(get("srcApproval")),
        dest_approval: text(get("destApproval")),
    })
}

/// An array of one-key objects (`[{"id": 1}, {"name": "x"}]`, as the spec's examples write
/// objects) merged into one object; anything else as it is.
fn flatten(value: &serde_json::Value) -> serde_json::Value {
    let Some(items) = value.as_array() else {
        return value.clone();
    };
    if !items.iter().all(serde_json::Value::is_object) {
        return value.clone();
    }
    let mut merged = serde_json::Map::new();
    for item in items.iter().filter_map(serde_json::Value::as_object) {
        for (key, field) in item {
            merged.entry(key.clone()).or_insert_with(|| field.clone());
        }
    }
    serde_json::Value::Object(merged)
}

/// A non-empty string, or a number written as text.
fn text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The id a field names: the string itself, or `id`, `username` or `name` of an object (or of
/// an array of one-key objects).
fn id_of(value: &serde_json::Value) -> Option<String> {
    if let Some(id) = text(value) {
        return Some(id);
    }
    let object = flatten(value);
    ["id", "username", "name"]
        .iter()
        .find_map(|key| object.get(key).and_then(text))
}

fn vlan_number(value: &serde_json::Value) -> Option<u16> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|vlan| (1..=4094).contains(vlan))
}

/// Status of a connection. Unknown values are kept as written so they can be reported rather
/// than treated as errors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    Creating,
    Pending,
    PendingAcceptance,
    Accepted,
    Activating,
    Active,
    Disabling,
    Denied,
    Cancelled,
    Disabled,
    Deleting,
    Deleted,
    Manual,
    Error,
    Other(String),
}

impl ConnectionStatus {
    /// Matches case-insensitively and treats spaces like underscores, because the docs write
    /// `PENDING ACCEPTANCE` while the live API sends `PENDING_ACCEPTANCE`.
    pub fn parse(raw: &str) -> Self {
        match normalise(raw).as_str() {
            "CREATING" => ConnectionStatus::Creating,
            "PENDING" => ConnectionStatus::Pending,
            "PENDING_ACCEPTANCE" => ConnectionStatus::PendingAcceptance,
            "ACCEPTED" => ConnectionStatus::Accepted,
            "ACTIVATING" => ConnectionStatus::Activating,
            "ACTIVE" => ConnectionStatus::Active,
            "DISABLING" => ConnectionStatus::Disabling,
            "DENIED" => ConnectionStatus::Denied,
            "CANCELLED" => ConnectionStatus::Cancelled,
            "DISABLED" => ConnectionStatus::Disabled,
            "DELETING" => ConnectionStatus::Deleting,
            "DELETED" => ConnectionStatus::Deleted,
            "MANUAL" => ConnectionStatus::Manual,
            "ERROR" => ConnectionStatus::Error,
            _ => ConnectionStatus::Other(raw.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ConnectionStatus::Creating => "CREATING",
            ConnectionStatus::Pending => "PENDING",
            ConnectionStatus::PendingAcceptance => "PENDING_ACCEPTANCE",
            ConnectionStatus::Accepted => "ACCEPTED",
            ConnectionStatus::Activating => "ACTIVATING",
            ConnectionStatus::Active => "ACTIVE",
            ConnectionStatus::Disabling => "DISABLING",
            ConnectionStatus::Denied => "DENIED",
            ConnectionStatus::Cancelled => "CANCELLED",
            ConnectionStatus::Disabled => "DISABLED",
            ConnectionStatus::Deleting => "DELETING",
            ConnectionStatus::Deleted => "DELETED",
            ConnectionStatus::Manual => "MANUAL",
            ConnectionStatus::Error => "ERROR",
            ConnectionStatus::Other(raw) => raw,
        }
    }
}

/// The values of the search's `status` filter that together cover every connection that is not
/// DELETED. The spec makes `status` required and documents no "any" value, so finding a
/// connection whose status we do not know takes one search per status. PENDING ACCEPTANCE is
/// searched in both spellings because the docs write it with a space and the live API with an
/// underscore. `tests/client_contract.rs` finds a connection in each of these statuses.
pub const SEARCHED_STATUSES: [&str; 14] = [
    "CREATING",
    "PENDING",
    "PENDING_ACCEPTANCE",
    "PENDING ACCEPTANCE",
    "ACCEPTED",
    "ACTIVATING",
    "MANUAL",
    "ACTIVE",
    "DISABLING",
    "DISABLED",
    "ERROR",
    "DENIED",
    "CANCELLED",
    "DELETING",
];

/// A connection whose status is missing reads as `UNKNOWN`.
impl Default for ConnectionStatus {
    fn default() -> Self {
        ConnectionStatus::Other(UNKNOWN.to_owned())
    }
}

const UNKNOWN: &str = "UNKNOWN";

fn normalise(raw: &str) -> String {
    raw.trim().to_ascii_uppercase().replace([' ', '-'], "_")
}

macro_rules! string_enum_serde {
    ($ty:ident) => {
        impl From<&str> for $ty {
            fn from(raw: &str) -> Self {
                $ty::parse(raw)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Ok($ty::parse(&raw))
            }
        }
    };
}

string_enum_serde!(PortStatus);
string_enum_serde!(ConnectionStatus);

/// A list answer: `{"results": [...]}` as the reference shows, or a bare array (the spec
/// documents no envelope for the search). Anything else fails to decode, loudly.
#[derive(Debug)]
pub(crate) struct Results<T> {
    pub results: Vec<T>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Results<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        let items = match value {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Object(mut object) => match object.remove("results") {
                Some(serde_json::Value::Array(items)) => items,
                _ => return Err(D::Error::custom(NOT_A_LIST)),
            },
            _ => return Err(D::Error::custom(NOT_A_LIST)),
        };
        let results = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                T::deserialize(item).map_err(|err| D::Error::custom(format!("item {index}: {err}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Results { results })
    }
}

const NOT_A_LIST: &str = "expected {\"results\": [...]} or a JSON array";

fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

fn lenient_or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(lenient(deserializer)?.unwrap_or_default())
}

/// How finely Console Connect buckets traffic (`resolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }
}

/// A connection's traffic over a window (`GET /api/company/{company}/connections/{id}/utilization`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Utilization {
    /// `Mbps` in the spec's example; others are scaled, an unknown one is refused.
    #[serde(default, deserialize_with = "lenient")]
    pub unit: Option<String>,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub results: Vec<TrafficSample>,
}

/// One bucket of [`Utilization`]. `rx`/`tx` are Console Connect's words; the spec does not say
/// from which side they are counted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSample {
    #[serde(default, deserialize_with = "lenient")]
    pub time: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub rx_average: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub tx_average: Option<f64>,
}

/// Average traffic over a window, in Mbps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    pub rx_mbps: f64,
    pub tx_mbps: f64,
}

impl Utilization {
    /// The mean of the buckets' averages, in Mbps. `Ok(None)`: no bucket carries both values
    /// (nothing measured yet). Err: a unit this client cannot convert.
    pub fn average(&self) -> Result<Option<Traffic>, String> {
        let scale = match self.unit.as_deref().map(str::trim) {
            None | Some("Mbps") => 1.0,
            Some("bps") => 1e-6,
            Some("Kbps") => 1e-3,
            Some("Gbps") => 1e3,
            Some(other) => return Err(format!("unknown traffic unit {other:?}")),
        };
        let measured: Vec<(f64, f64)> = self
            .results
            .iter()
            .filter_map(|s| Some((s.rx_average?, s.tx_average?)))
            .filter(|(rx, tx)| rx.is_finite() && tx.is_finite())
            .collect();
        if measured.is_empty() {
            return Ok(None);
        }
        let n = measured.len() as f64;
        let (rx, tx) = measured
            .iter()
            .fold((0.0, 0.0), |(rx, tx), (r, t)| (rx + r, tx + t));
        Ok(Some(Traffic {
            rx_mbps: rx / n * scale,
            tx_mbps: tx / n * scale,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connection_status_parses_every_documented_value() {
        let cases = [
            ("CREATING", ConnectionStatus::Creating),
            ("PENDING", ConnectionStatus::Pending),
            ("PENDING_ACCEPTANCE", ConnectionStatus::PendingAcceptance),
            ("PENDING ACCEPTANCE", ConnectionStatus::PendingAcceptance),
            ("ACCEPTED", ConnectionStatus::Accepted),
            ("ACTIVATING", ConnectionStatus::Activating),
            ("ACTIVE", ConnectionStatus::Active),
            ("DISABLING", ConnectionStatus::Disabling),
            ("DENIED", ConnectionStatus::Denied),
            ("CANCELLED", ConnectionStatus::Cancelled),
            ("DISABLED", ConnectionStatus::Disabled),
            ("DELETING", ConnectionStatus::Deleting),
            ("DELETED", ConnectionStatus::Deleted),
            ("MANUAL", ConnectionStatus::Manual),
            ("ERROR", ConnectionStatus::Error),
            ("active", ConnectionStatus::Active),
        ];
        for (raw, expected) in cases {
            assert_eq!(ConnectionStatus::parse(raw), expected, "{raw}");
        }
    }

    #[test]
    fn unknown_connection_status_is_kept_raw() {
        let status = ConnectionStatus::parse("Provisioning Phase 2");
        assert_eq!(
            status,
            ConnectionStatus::Other("Provisioning Phase 2".into())
        );
        assert_eq!(status.to_string(), "Provisioning Phase 2");
        assert_eq!(status.as_str(), "Provisioning Phase 2");
    }

    #[test]
    fn connection_status_round_trips_through_json() {
        let status: ConnectionStatus = serde_json::from_value(json!("PENDING ACCEPTANCE")).unwrap();
        assert_eq!(status, ConnectionStatus::PendingAcceptance);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!("PENDING_ACCEPTANCE")
        );
        let other: ConnectionStatus = serde_json::from_value(json!("WEIRD")).unwrap();
        assert_eq!(serde_json::to_value(&other).unwrap(), json!("WEIRD"));
    }

    #[test]
    fn port_status_defaults_to_unknown_not_active() {
        assert_eq!(PortStatus::parse("ACTIVE"), PortStatus::Active);
        assert_eq!(
            PortStatus::parse("inactive"),
            PortStatus::Other("inactive".into())
        );
        assert_eq!(PortStatus::default().as_str(), "UNKNOWN");
    }

    #[test]
    fn only_active_ports_take_orders_and_others_say_why() {
        let documented = [
            "ACTIVATING",
            "READY",
            "ACTIVE",
            "DISABLING",
            "DISABLED",
            "DELETING",
            "DELETED",
            "UNKNOWN",
            "ONBOARDING",
        ];
        for raw in documented {
            let status = PortStatus::parse(raw);
            assert_eq!(status.as_str(), raw);
            assert!(!matches!(status, PortStatus::Other(_)), "{raw}");
            assert_eq!(status.takes_orders(), raw == "ACTIVE", "{raw}");
            assert!(!status.refusal().is_empty());
        }
    }

    #[test]
    fn port_capacity_is_read_when_present() {
        let port: Port = serde_json::from_value(json!({
            "id": "p", "capacity": {"remaining": 400, "used": 600}, "singleService": false
        }))
        .unwrap();
        assert_eq!(port.remaining_mbps(), Some(400.0));
        let port: Port = serde_json::from_value(json!({"id": "p", "capacity": "lots"})).unwrap();
        assert_eq!(port.remaining_mbps(), None);
    }

    #[test]
    fn metro_facility_id_under_either_name() {
        let reference: Metro =
            serde_json::from_value(json!({"id": "m", "firstDataCenterFacilityIdInMetro": "dcf-1"}))
                .unwrap();
        assert_eq!(reference.facility_id(), Some("dcf-1"));
        let spec: Metro =
            serde_json::from_value(json!({"id": "m", "firstDataCenterFacilityId": "dcf-2"}))
                .unwrap();
        assert_eq!(spec.facility_id(), Some("dcf-2"));
        let both: Metro = serde_json::from_value(json!({"id": "m",
            "firstDataCenterFacilityIdInMetro": "dcf-1", "firstDataCenterFacilityId": "dcf-2"}))
        .unwrap();
        assert_eq!(both.facility_id(), Some("dcf-1"));
        let none: Metro = serde_json::from_value(json!({"id": "m"})).unwrap();
        assert_eq!(none.facility_id(), None);
    }

    #[test]
    fn connection_reads_the_spec_example_shapes() {
        let body = json!({
            "id": "58afc0499430ab7f3666b990", "name": "my connection", "status": "PENDING",
            "type": "LAYER2", "speed": {"value": 1000, "name": "1000 Mbps"},
            "createdAt": "2017-02-24T05:10:33.807Z", "deleted": false,
            "deletedAt": "1970-01-01T00:00:00.000Z",
            "destCompany": [{"id": "58afc0489430ab7f3666b981"}],
            "destMetro": [{"id": "d466b388d3e9ee0a92177910"}],
            "port": [{"id": "58afc0489430ab7f3666b97a"}, {"companyId": "58afc0479430ab7f3666b974"}],
            "srcVlanRequest": 1000, "destVlanRequest": 2000,
            "vlan": [{"id": null}, {"service": null}, {"customer": []}],
            "request": [{"status": "PENDING"}, {"destMetroId": "d466"}, {"speed": 580},
                        {"srcApproval": null}, {"destApproval": "58afc0479430ab7f3666b971"}]
        });
        let c: Connection = serde_json::from_value(body).unwrap();
        assert_eq!(c.status, ConnectionStatus::Pending);
        assert_eq!(c.src_port_id.as_deref(), Some("58afc0489430ab7f3666b97a"));
        assert_eq!(c.dest_metro_id.as_deref(), Some("d466b388d3e9ee0a92177910"));
        assert_eq!(c.dest_company.as_deref(), Some("58afc0489430ab7f3666b981"));
        assert_eq!(c.vlans.src_vlan, Some(1000));
        assert_eq!(c.vlans.dest_vlan, Some(2000));
        assert!(!c.is_deleted());
        let request = c.request.unwrap();
        assert_eq!(request.status.as_deref(), Some("PENDING"));
        assert_eq!(request.speed, Some(580.0));
        assert_eq!(request.src_approval, None);
        assert_eq!(
            request.dest_approval.as_deref(),
            Some("58afc0479430ab7f3666b971")
        );
    }

    #[test]
    fn connection_reads_live_shapes() {
        let body = json!({
            "id": "c1", "status": "ERROR", "srcPortId": "p1", "destMetroId": "m1",
            "destCompany": {"username": "oracle"}, "srcTag": "101", "destTag": 202,
            "vlan": {"srcVlan": 5}, "partner": {"errorMessage": "VLAN in use at Oracle"},
            "deleted": true, "request": {"status": "PENDING", "speed": {"value": 200}}
        });
        let c: Connection = serde_json::from_value(body).unwrap();
        assert_eq!(c.dest_company.as_deref(), Some("oracle"));
        assert_eq!(c.vlans.src_vlan, Some(101));
        assert_eq!(c.vlans.dest_vlan, Some(202));
        assert_eq!(c.error_reason.as_deref(), Some("VLAN in use at Oracle"));
        assert!(c.is_deleted());
        assert_eq!(c.request.unwrap().speed, Some(200.0));
        let c: Connection = serde_json::from_value(
            json!({"id": 7, "destCompany": "oracle", "vlan": {"srcVlan": 9999}}),
        )
        .unwrap();
        assert_eq!(c.id, "7");
        assert_eq!(c.dest_company.as_deref(), Some("oracle"));
        assert_eq!(
            c.vlans,
            AssignedVlans::default(),
            "out-of-range VLANs are not VLANs"
        );
        assert_eq!(c.request, None);
    }

    #[test]
    fn a_connection_without_id_is_refused() {
        assert!(serde_json::from_value::<Connection>(json!({"name": "x"})).is_err());
        assert!(serde_json::from_value::<Connection>(json!(["x"])).is_err());
    }

    #[test]
    fn lists_come_enveloped_or_bare() {
        let enveloped: Results<Connection> =
            serde_json::from_value(json!({"results": [{"id": "a"}]})).unwrap();
        assert_eq!(enveloped.results.len(), 1);
        let bare: Results<Connection> =
            serde_json::from_value(json!([{"id": "a"}, {"id": "b"}])).unwrap();
        assert_eq!(bare.results.len(), 2);
        assert!(serde_json::from_value::<Results<Connection>>(json!({"data": []})).is_err());
    }

    #[test]
    fn searched_statuses_cover_every_documented_live_status() {
        let searched: Vec<ConnectionStatus> = SEARCHED_STATUSES
            .iter()
            .map(|s| ConnectionStatus::parse(s))
            .collect();
        for status in [
            ConnectionStatus::Creating,
            ConnectionStatus::Pending,
            ConnectionStatus::PendingAcceptance,
            ConnectionStatus::Accepted,
            ConnectionStatus::Activating,
            ConnectionStatus::Active,
            ConnectionStatus::Disabling,
            ConnectionStatus::Disabled,
            ConnectionStatus::Denied,
            ConnectionStatus::Cancelled,
            ConnectionStatus::Deleting,
            ConnectionStatus::Manual,
            ConnectionStatus::Error,
        ] {
            assert!(searched.contains(&status), "{status} is never searched");
        }
        assert!(!searched.contains(&ConnectionStatus::Deleted));
    }

    #[test]
    fn layer2_request_serialises_type_and_skips_none() {
        let request = Layer2Request {
            name: "fc-1".into(),
            port_id: "p1".into(),
            dest_port_id: None,
            dest_dcf: Some("dcf".into()),
            speed: 1000,
            dest_metro_id: "m1".into(),
            dest_company: "oracle".into(),
            payment_type: PaymentType::Invoice,
            duration: 12,
            duration_unit: DurationUnit::M,
            evergreen: Some(true),
            class_of_service: Some(ClassOfService::Silverplus),
            src_vlan_request: Some(100),
            dest_vlan_request: None,
            discount_code: None,
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(
            value,
            json!({
                "type": "LAYER2",
                "name": "fc-1",
                "portId": "p1",
                "destDcf": "dcf",
                "speed": 1000,
                "destMetroId": "m1",
                "destCompany": "oracle",
                "paymentType": "invoice",
                "duration": 12,
                "durationUnit": "m",
                "evergreen": true,
                "classOfService": "SILVERPLUS",
                "srcVlanRequest": 100
            })
        );
    }

    #[test]
    fn connection_reads_the_reference_create_response() {
        let body = json!({
            "id": "58afc0499430ab7f3666b990",
            "type": "LAYER2",
            "status": "CREATING",
            "srcRegionId": "236107000000000000000001",
            "destRegionId": "236107000000000000000001",
            "updatedAt": "2017-02-24T05:10:44.942Z",
            "createdAt": "2017-02-24T05:10:33.807Z",
            "speed": {"value": 1000, "name": "1000 Mbps"},
            "subconnections": [],
            "vlan": {},
            "name": "my new connection",
            "cdrBillingType": "METRO",
            "payg": true,
            "billingType": [],
            "classOfService": "BRONZE"
        });
        let connection: Connection = serde_json::from_value(body).unwrap();
        assert_eq!(connection.id, "58afc0499430ab7f3666b990");
        assert_eq!(connection.status, ConnectionStatus::Creating);
        assert_eq!(connection.speed.unwrap().value, 1000.0);
        assert_eq!(connection.class_of_service.as_deref(), Some("BRONZE"));
        assert_eq!(connection.kind.as_deref(), Some("LAYER2"));
    }

    #[test]
    fn odd_shapes_do_not_lose_the_connection_id() {
        let body =
            json!({"id": "abc", "status": null, "speed": "1G", "name": {}, "errorReason": {}});
        let connection: Connection = serde_json::from_value(body).unwrap();
        assert_eq!(connection.id, "abc");
        assert_eq!(connection.status.as_str(), "UNKNOWN");
        assert_eq!(connection.speed, None);
        assert_eq!(connection.name, "");
        assert_eq!(connection.error_reason, None);
    }

    #[test]
    fn metro_reads_the_reference_shape() {
        let body = json!({
            "name": "Hong Kong", "code": "HKG", "logo": null, "canCreateController": false,
            "tags": [], "description": "", "country": "hk", "rir": "APNIC",
            "regionIds": ["5c05cb06cad910000ae251f4"], "ready": true,
            "id": "77d9f1fbbcaa906f3cddb6d1", "deletedAt": null,
            "createdAt": "2017-12-18T00:45:44.120Z", "updatedAt": "2024-02-25T05:02:47.267Z",
            "deleted": false, "capabilities": {"layer2": true},
            "firstDataCenterFacilityIdInMetro": "5aa89b04ac86ba0012345bdf"
        });
        let metro: Metro = serde_json::from_value(body).unwrap();
        assert!(metro.ready && metro.capabilities.layer2 && !metro.deleted);
        assert_eq!(metro.code, "HKG");
        assert_eq!(metro.facility_id(), Some("5aa89b04ac86ba0012345bdf"));
    }

    #[test]
    fn traffic_is_the_mean_of_the_buckets_in_mbps() {
        let utilization: Utilization = serde_json::from_value(json!({
            "connectionId": 120391239323_u64,
            "results": [
                {"time": 1, "rxAverage": 10, "txAverage": 2, "rxMax": 20},
                {"time": 2, "rxAverage": 20, "txAverage": 4},
                {"time": 3, "rxAverage": null, "txAverage": 9}
            ],
            "unit": "Mbps"
        }))
        .unwrap();
        let traffic = utilization.average().unwrap().unwrap();
        assert_eq!((traffic.rx_mbps, traffic.tx_mbps), (15.0, 3.0));
        let kbps: Utilization = serde_json::from_value(json!({
            "results": [{"rxAverage": 500, "txAverage": 1500}], "unit": "Kbps"
        }))
        .unwrap();
        let traffic = kbps.average().unwrap().unwrap();
        assert_eq!((traffic.rx_mbps, traffic.tx_mbps), (0.5, 1.5));
    }

    #[test]
    fn traffic_without_buckets_is_none_and_an_unknown_unit_an_error() {
        let empty: Utilization = serde_json::from_value(json!({"results": []})).unwrap();
        assert_eq!(empty.average(), Ok(None));
        let odd: Utilization = serde_json::from_value(json!({
            "results": [{"rxAverage": 1, "txAverage": 1}], "unit": "packets"
        }))
        .unwrap();
        assert!(odd.average().unwrap_err().contains("packets"));
    }
}
