//! The rules the reference gives for creating a Layer 2 connection, one message per failure,
//! each naming the field at fault.

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
