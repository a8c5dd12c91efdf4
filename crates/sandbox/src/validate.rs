//! The rules the reference gives for creating a Layer 2 connection, and the body rules of the
//! day-2 calls (update, change request), one message per failure, each naming the field at
//! fault.

use serde_json::{Map, Value};

use crate::config::{MetroConfig, PortConfig};
use crate::state::Fixtures;

pub const CREDITCARD_REFUSAL: &str =
    "A 'paymentType' of 'creditcard' is only supported via the Console Connect web application";

const KNOWN_FIELDS: [&str; 19] = [
    "type",
    "name",
    "portId",
    "destPortId",
    "regionId",
    "destRegionId",
    "destDcf",
    "speed",
    "destMetroId",
    "destCompany",
    "paymentType",
    "paymentTransactionId",
    "duration",
    "durationUnit",
    "evergreen",
    "classOfService",
    "srcVlanRequest",
    "destVlanRequest",
    "discountCode",
];

const CLASSES_OF_SERVICE: [&str; 4] = ["GOLD", "SILVERPLUS", "SILVER", "BRONZE"];
const DURATION_UNITS: [&str; 4] = ["d", "w", "m", "y"];

/// A create request that passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub name: String,
    pub port_id: String,
    pub dest_port_id: Option<String>,
    pub dest_metro_id: String,
    pub dest_dcf: Option<String>,
    pub dest_company: String,
    pub speed: u64,
    pub payment_type: String,
    pub duration: Option<u64>,
    pub duration_unit: Option<String>,
    pub evergreen: Option<bool>,
    pub class_of_service: Option<String>,
    pub src_vlan: Option<u16>,
    pub dest_vlan: Option<u16>,
    pub discount_code: Option<String>,
    pub src_region_id: Option<String>,
    pub dest_region_id: Option<String>,
}

/// Checks a create request of `company`; `Err` carries the 400 message.
pub fn validate(fixtures: &Fixtures, company: &str, body: &Value) -> Result<Order, String> {
    let body = body
        .as_object()
        .ok_or("the request body must be a JSON object")?;
    reject_unknown_fields(body)?;
    let fields = Fields(body);
    if fields.string("type")? != Some("LAYER2") {
        return Err("'type' must be \"LAYER2\"".into());
    }
    let name = fields.required_string("name")?;
    if name.trim().is_empty() {
        return Err("'name' must not be empty".into());
    }
    let port = source_port(fixtures, company, fields.required_string("portId")?)?;
    let speed = fields
        .positive_integer("speed")?
        .ok_or("'speed' is required")?;
    if speed > port.speed_mbps {
        return Err(format!(
            "'speed' of {speed} Mbps exceeds the {} Mbps of port '{}'",
            port.speed_mbps, port.name
        ));
    }
    let dest_company = fields.required_string("destCompany")?;
    if dest_company != "oracle" {
        return Err(format!(
            "'destCompany' '{dest_company}' is not a company that accepts connections here; only 'oracle' does"
        ));
    }
    let metro = dest_metro(fixtures, port, fields.required_string("destMetroId")?)?;
    let payment_type = payment_type(&fields)?;
    let invoice = Invoice::check(&fields, metro)?;
    let class_of_service = class_of_service(&fields)?;
    let src_vlan = fields.vlan("srcVlanRequest")?;
    let dest_vlan = fields.vlan("destVlanRequest")?;
    let evergreen = fields.boolean("evergreen")?;
    let dest_port_id = fields.string("destPortId")?.map(str::to_owned);
    let discount_code = fields.string("discountCode")?.map(str::to_owned);
    for unused in ["regionId", "destRegionId", "paymentTransactionId"] {
        fields.string(unused)?;
    }
    Ok(Order {
        name: name.to_owned(),
        port_id: port.id.clone(),
        dest_port_id,
        dest_metro_id: metro.id.clone(),
        dest_dcf: Some(invoice.dest_dcf),
        dest_company: dest_company.to_owned(),
        speed,
        payment_type: payment_type.to_owned(),
        duration: Some(invoice.duration),
        duration_unit: Some(invoice.duration_unit),
        evergreen,
        class_of_service,
        src_vlan,
        dest_vlan,
        discount_code,
        src_region_id: port.region_id.clone(),
        dest_region_id: metro.region_ids.first().cloned(),
    })
}

fn reject_unknown_fields(body: &Map<String, Value>) -> Result<(), String> {
    match body
        .keys()
        .find(|key| !KNOWN_FIELDS.contains(&key.as_str()))
    {
        Some(unknown) => Err(format!("unknown field '{unknown}' in the request body")),
        None => Ok(()),
    }
}

fn source_port<'f>(
    fixtures: &'f Fixtures,
    company: &str,
    port_id: &str,
) -> Result<&'f PortConfig, String> {
    let (owner, port) = fixtures
        .port(port_id)
        .ok_or_else(|| format!("'portId' '{port_id}' does not match any port"))?;
    if owner.username != company {
        return Err(format!(
            "'portId' '{port_id}' is not a port of company '{company}'"
        ));
    }
    if port.deleted {
        return Err(format!("'portId' '{port_id}' refers to a deleted port"));
    }
    if port.status != "ACTIVE" {
        return Err(format!(
            "'portId' '{port_id}' is not ACTIVE (its status is {})",
            port.status
        ));
    }
    Ok(port)
}

fn dest_metro<'f>(
    fixtures: &'f Fixtures,
    port: &PortConfig,
    metro_id: &str,
) -> Result<&'f MetroConfig, String> {
    let metro = fixtures.metro(metro_id).ok_or_else(|| {
        format!("'destMetroId' '{metro_id}' is not a metro where Oracle is present")
    })?;
    let code = &metro.code;
    if metro.deleted {
        return Err(format!("'destMetroId' '{metro_id}' ({code}) is deleted"));
    }
    if !metro.ready {
        return Err(format!("'destMetroId' '{metro_id}' ({code}) is not ready"));
    }
    if !metro.layer2 {
        return Err(format!(
            "'destMetroId' '{metro_id}' ({code}) does not offer layer 2 connections"
        ));
    }
    if metro.id == port.metro_id {
        return Err(format!(
            "'destMetroId' '{metro_id}' ({code}) is the metro of the source port; choose another"
        ));
    }
    Ok(metro)
}

fn payment_type<'b>(fields: &Fields<'b>) -> Result<&'b str, String> {
    match fields.required_string("paymentType")? {
        "invoice" => Ok("invoice"),
        "creditcard" => Err(CREDITCARD_REFUSAL.into()),
        other => Err(format!(
            "'paymentType' '{other}' is not one of 'invoice', 'creditcard'"
        )),
    }
}

/// The fields the reference requires when paying by invoice.
struct Invoice {
    dest_dcf: String,
    duration: u64,
    duration_unit: String,
}

impl Invoice {
    fn check(fields: &Fields<'_>, metro: &MetroConfig) -> Result<Invoice, String> {
        let missing =
            |field: &str| format!("'{field}' is required when 'paymentType' is 'invoice'");
        let dest_dcf = fields
            .string("destDcf")?
            .ok_or_else(|| missing("destDcf"))?;
        let expected = metro.first_data_center_facility_id_in_metro.as_deref();
        if expected != Some(dest_dcf) {
            return Err(format!(
                "'destDcf' '{dest_dcf}' is not the data center facility of metro {} (expected '{}')",
                metro.code,
                expected.unwrap_or("none")
            ));
        }
        let duration = fields
            .positive_integer("duration")?
            .ok_or_else(|| missing("duration"))?;
        let duration_unit = fields
            .string("durationUnit")?
            .ok_or_else(|| missing("durationUnit"))?;
        if !DURATION_UNITS.contains(&duration_unit) {
            return Err(format!(
                "'durationUnit' '{duration_unit}' is not one of 'd', 'w', 'm', 'y'"
            ));
        }
        Ok(Invoice {
            dest_dcf: dest_dcf.to_owned(),
            duration,
            duration_unit: duration_unit.to_owned(),
        })
    }
}

fn class_of_service(fields: &Fields<'_>) -> Result<Option<String>, String> {
    match fields.string("classOfService")? {
        None => Ok(None),
        Some(class) if CLASSES_OF_SERVICE.contains(&class) => Ok(Some(class.to_owned())),
        Some(class) => Err(format!(
            "'classOfService' '{class}' is not one of {}",
            CLASSES_OF_SERVICE.join(", ")
        )),
    }
}

/// Typed access to the body's fields; `null` counts as absent.
struct Fields<'b>(&'b Map<String, Value>);

impl<'b> Fields<'b> {
    fn get(&self, field: &str) -> Option<&'b Value> {
        self.0.get(field).filter(|value| !value.is_null())
    }

    fn string(&self, field: &str) -> Result<Option<&'b str>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(format!("'{field}' must be a string")),
        }
    }

    fn required_string(&self, field: &str) -> Result<&'b str, String> {
        self.string(field)?
            .ok_or_else(|| format!("'{field}' is required"))
    }

    fn boolean(&self, field: &str) -> Result<Option<bool>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(format!("'{field}' must be true or false")),
        }
    }

    fn positive_integer(&self, field: &str) -> Result<Option<u64>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(value) => match value.as_u64() {
                Some(number) if number > 0 => Ok(Some(number)),
                _ => Err(format!("'{field}' must be a positive whole number")),
            },
        }
    }

    fn vlan(&self, field: &str) -> Result<Option<u16>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .filter(|vlan| (1..=4094).contains(vlan))
                .and_then(|vlan| u16::try_from(vlan).ok())
                .map(Some)
                .ok_or_else(|| format!("'{field}' must be null or a VLAN id from 1 to 4094")),
        }
    }
}

/// Fields the spec's update takes on connection requests only; the sandbox refuses them.
const CONNECTION_REQUEST_FIELDS: [&str; 6] = [
    "portId",
    "untagged",
    "destUntagged",
    "destPortId",
    "controllerId",
    "destControllerId",
];

/// Longest name an update takes (our bound; the spec gives none).
pub const MAX_NAME_CHARS: usize = 128;

/// A speed and name update whose body passed the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub speed: Option<u64>,
    pub name: Option<String>,
}

/// Checks the body of `POST /api/v2/company/{c}/connections/{id}` (and of the admin edit):
/// `speed` and/or `name`, nothing else.
pub fn update_body(body: &Value) -> Result<Update, String> {
    let body = body
        .as_object()
        .ok_or("the request body must be a JSON object")?;
    for field in body.keys() {
        if CONNECTION_REQUEST_FIELDS.contains(&field.as_str()) {
            return Err(format!(
                "'{field}' applies to connection requests only; the sandbox supports only 'speed' and 'name'"
            ));
        }
        if field != "speed" && field != "name" {
            return Err(format!(
                "unknown field '{field}' in the request body; the sandbox supports only 'speed' and 'name'"
            ));
        }
    }
    let speed = body.get("speed").map(positive_speed).transpose()?;
    let name = body.get("name").map(new_name).transpose()?;
    if speed.is_none() && name.is_none() {
        return Err(
            "the request body must have 'speed' or 'name' (the sandbox supports only those)".into(),
        );
    }
    Ok(Update { speed, name })
}

/// Checks the body of `PUT /api/company/{c}/connections/{id}/change`: `{"speed": N}` only.
pub fn change_body(body: &Value) -> Result<u64, String> {
    let body = body
        .as_object()
        .ok_or("the request body must be a JSON object")?;
    if let Some(field) = body.keys().find(|field| *field != "speed") {
        return Err(format!(
            "unknown field '{field}' in the request body; a change request takes only 'speed'"
        ));
    }
    body.get("speed")
        .map(positive_speed)
        .ok_or("'speed' is required")?
}

/// `null` is refused too: the client should leave out what it does not change.
fn positive_speed(value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|speed| *speed >= 1)
        .ok_or_else(|| "'speed' must be a positive whole number".to_owned())
}

fn new_name(value: &Value) -> Result<String, String> {
    let name = value.as_str().ok_or("'name' must be a string")?;
    if name.trim().is_empty() {
        return Err("'name' must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "'name' must be at most {MAX_NAME_CHARS} characters"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
impl Order {
    pub fn example() -> Order {
        Order {
            name: "example".into(),
            port_id: "p".into(),
            dest_port_id: None,
            dest_metro_id: "m".into(),
            dest_dcf: Some("dcf".into()),
            dest_company: "oracle".into(),
            speed: 100,
            payment_type: "invoice".into(),
            duration: Some(1),
            duration_unit: Some("m".into()),
            evergreen: None,
            class_of_service: None,
            src_vlan: None,
            dest_vlan: None,
            discount_code: None,
            src_region_id: None,
            dest_region_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn updates_take_speed_and_name_only() {
        assert_eq!(
            update_body(&json!({"speed": 50, "name": "n"})),
            Ok(Update {
                speed: Some(50),
                name: Some("n".into())
            })
        );
        assert_eq!(
            update_body(&json!({"name": "n"})).map(|u| u.speed),
            Ok(None)
        );
        for (body, named) in [
            (json!({}), "'speed' or 'name'"),
            (json!([]), "JSON object"),
            (json!({"speed": 0}), "'speed'"),
            (json!({"speed": "100"}), "'speed'"),
            (json!({"speed": 1.5}), "'speed'"),
            (json!({"speed": null}), "'speed'"),
            (json!({"name": 7}), "'name'"),
            (json!({"name": " "}), "'name'"),
            (json!({"name": "x".repeat(129)}), "128"),
            (
                json!({"portId": "p"}),
                "'portId' applies to connection requests only",
            ),
            (
                json!({"destControllerId": "c", "speed": 5}),
                "'destControllerId'",
            ),
            (json!({"colour": "red"}), "unknown field 'colour'"),
        ] {
            let err = update_body(&body).unwrap_err();
            assert!(err.contains(named), "{body}: {err}");
        }
        assert!(update_body(&json!({"name": "x".repeat(128)})).is_ok());
    }

    #[test]
    fn change_requests_take_a_speed_only() {
        assert_eq!(change_body(&json!({"speed": 500})), Ok(500));
        for (body, named) in [
            (json!({}), "'speed' is required"),
            (json!({"speed": -1}), "'speed'"),
            (json!({"speed": 500, "name": "n"}), "unknown field 'name'"),
            ("500".into(), "JSON object"),
        ] {
            let err = change_body(&body).unwrap_err();
            assert!(err.contains(named), "{body}: {err}");
        }
    }
}
