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
    #[serde(default, deserialize_with = "lenient")]
    pub payment_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub payg: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub updated_at: Option<String>,
}

/// A speed as the API writes it: `{"value": 1000, "name": "1000 Mbps"}`; `value` is in Mbps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    pub value: f64,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
}

/// Status of a port. Only `ACTIVE` ports can carry new connections; anything unrecognised is
/// kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortStatus {
    Active,
    Inactive,
    Other(String),
}

impl PortStatus {
    pub fn parse(raw: &str) -> Self {
        match normalise(raw).as_str() {
            "ACTIVE" => PortStatus::Active,
            "INACTIVE" => PortStatus::Inactive,
            _ => PortStatus::Other(raw.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PortStatus::Active => "ACTIVE",
            PortStatus::Inactive => "INACTIVE",
            PortStatus::Other(raw) => raw,
        }
    }
}

/// A port whose status is missing reads as `UNKNOWN`, never as active.
impl Default for PortStatus {
    fn default() -> Self {
        PortStatus::Other(UNKNOWN.to_owned())
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
    #[serde(default, deserialize_with = "lenient")]
    pub first_data_center_facility_id_in_metro: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub region_ids: Vec<String>,
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

/// A Layer 2 connection as returned by create, read and list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub status: ConnectionStatus,
    /// Set by the service when `status` is `ERROR`.
    #[serde(default, deserialize_with = "lenient")]
    pub error_reason: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub speed: Option<Speed>,
    /// Kept opaque: its shape is not documented.
    #[serde(default)]
    pub vlan: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient")]
    pub src_port_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub dest_port_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub dest_metro_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub dest_company: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub class_of_service: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub updated_at: Option<String>,
    /// The connection type, `LAYER2` for these connections.
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub src_region_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub dest_region_id: Option<String>,
}

/// Status of a connection. Unknown values are kept as written so they can be reported rather
/// than treated as errors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    Creating,
    Pending,
    PendingAcceptance,
    Accepted,
    Active,
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
            "ACTIVE" => ConnectionStatus::Active,
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
            ConnectionStatus::Active => "ACTIVE",
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

/// `{"results": [...]}`, the envelope of every list response.
#[derive(Debug, Deserialize)]
pub(crate) struct Results<T> {
    pub results: Vec<T>,
}

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
            ("ACTIVE", ConnectionStatus::Active),
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
        assert_eq!(PortStatus::parse("inactive"), PortStatus::Inactive);
        assert_eq!(PortStatus::default().as_str(), "UNKNOWN");
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
            json!({"id": "abc", "status": null, "speed": "1G", "name": 7, "errorReason": {}});
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
        assert_eq!(
            metro.first_data_center_facility_id_in_metro.as_deref(),
            Some("5aa89b04ac86ba0012345bdf")
        );
    }
}
