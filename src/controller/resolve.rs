//! Resolve step: pick the source port and the Oracle metro from Console Connect's lists and build
//! the order. Pure functions, so every rule is unit-tested without a server.

use crate::{
    consoleconnect::{self as cc, Layer2Request, Metro, Port},
    crd::{self, Destination, FastConnectConnection, SourcePort},
};

use super::{Diagnosis, reason::Reason};

/// The company every FastConnect order goes to.
pub const ORACLE_COMPANY: &str = "oracle";

/// How many alternatives an error message lists before it stops.
const LISTED_ALTERNATIVES: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("no active port {wanted} in company {company}{}", alternatives(known))]
    PortNotFound {
        wanted: String,
        company: String,
        known: Vec<String>,
    },
    #[error("{count} active ports are named {name} (ids {ids}); set spec.sourcePort.id instead", count = ids.split(", ").count())]
    PortAmbiguous { name: String, ids: String },
    #[error("port {port} cannot take an order: {why}")]
    PortNotActive { port: String, why: String },
    #[error("speedMbps {speed} exceeds port {port}'s {port_speed} Mbps; lower spec.speedMbps")]
    SpeedExceedsPort {
        speed: u32,
        port: String,
        port_speed: u64,
    },
    #[error(
        "speedMbps {speed} exceeds the {remaining} Mbps left on port {port}; lower \
         spec.speedMbps or free capacity on the port"
    )]
    CapacityExceeded {
        speed: u32,
        port: String,
        remaining: u64,
    },
    #[error("Oracle has no metro {wanted}{}", alternatives(available))]
    MetroNotFound {
        wanted: String,
        available: Vec<String>,
    },
    #[error("Oracle metro {metro} is not ready for new connections; pick another metro")]
    MetroNotReady { metro: String },
    #[error("Oracle metro {metro} does not offer Layer 2 connections; pick another metro")]
    MetroWithoutLayer2 { metro: String },
    #[error(
        "Oracle metro {metro} is the source port's own metro; pick a metro other than the port's"
    )]
    MetroIsPortMetro { metro: String },
    #[error("Oracle metro {metro} lists no data-centre facility; pick another metro")]
    MetroWithoutFacility { metro: String },
}

fn alternatives(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = names
        .iter()
        .take(LISTED_ALTERNATIVES)
        .map(String::as_str)
        .collect();
    let more = names.len().saturating_sub(LISTED_ALTERNATIVES);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("; available: {}{tail}", shown.join(", "))
}

/// Ports and metros change outside Kubernetes too (a port is activated, a metro becomes ready),
/// so these are re-checked with growing delays, not only on a spec change. The lists are
/// cached, so a re-check costs no API call within the cache's lifetime.
impl Diagnosis for Error {
    fn reason(&self) -> Reason {
        match self {
            Error::PortNotFound { .. } => Reason::PortNotFound,
            Error::PortAmbiguous { .. } => Reason::PortAmbiguous,
            Error::PortNotActive { .. } => Reason::PortNotActive,
            Error::SpeedExceedsPort { .. } => Reason::SpeedExceedsPort,
            Error::CapacityExceeded { .. } => Reason::CapacityExceeded,
            Error::MetroNotFound { .. } => Reason::MetroNotFound,
            Error::MetroNotReady { .. } => Reason::MetroNotReady,
            Error::MetroWithoutLayer2 { .. } => Reason::MetroWithoutLayer2,
            Error::MetroIsPortMetro { .. } => Reason::MetroIsPortMetro,
            Error::MetroWithoutFacility { .. } => Reason::MetroWithoutFacility,
        }
    }
}

/// The port to order from, by id or by unique name, ACTIVE and with room for the speed.
pub fn port<'a>(
    ports: &'a [Port],
    wanted: &SourcePort,
    company: &str,
    speed_mbps: u32,
) -> Result<&'a Port, Error> {
    let port = match (&wanted.id, &wanted.name) {
        (Some(id), _) => ports
            .iter()
            .find(|p| &p.id == id && !p.deleted)
            .ok_or_else(|| port_not_found(ports, id, company))?,
        (None, Some(name)) => port_by_name(ports, name, company)?,
        // Admission guarantees one of the two; an object that bypassed it names nothing.
        (None, None) => return Err(port_not_found(ports, "(none given)", company)),
    };
    if !port.status.takes_orders() {
        return Err(Error::PortNotActive {
            port: port.name.clone(),
            why: format!("{} ({})", port.status.refusal(), port.status),
        });
    }
    check_speed(port, speed_mbps)?;
    Ok(port)
}

fn port_by_name<'a>(ports: &'a [Port], name: &str, company: &str) -> Result<&'a Port, Error> {
    let named: Vec<&Port> = ports
        .iter()
        .filter(|p| p.name == name && !p.deleted)
        .collect();
    // An inactive namesake must not make an active port ambiguous.
    let active: Vec<&Port> = named
        .iter()
        .copied()
        .filter(|p| p.status.takes_orders())
        .collect();
    match (active.as_slice(), named.first()) {
        ([only], _) => Ok(only),
        ([], Some(inactive)) => Ok(inactive),
        ([], None) => Err(port_not_found(ports, name, company)),
        (many, _) => Err(Error::PortAmbiguous {
            name: name.to_owned(),
            ids: many
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn port_not_found(ports: &[Port], wanted: &str, company: &str) -> Error {
    Error::PortNotFound {
        wanted: wanted.to_owned(),
        company: company.to_owned(),
        known: ports
            .iter()
            .filter(|p| !p.deleted && p.status.takes_orders())
            .map(|p| p.name.clone())
            .collect(),
    }
}

fn check_speed(port: &Port, speed_mbps: u32) -> Result<(), Error> {
    let port_speed = port.speed.as_ref().map(|s| s.value);
    // Without a published speed the service itself is the judge.
    if let Some(port_speed) = port_speed
        && f64::from(speed_mbps) > port_speed
    {
        return Err(Error::SpeedExceedsPort {
            speed: speed_mbps,
            port: port.name.clone(),
            port_speed: port_speed as u64,
        });
    }
    if let Some(remaining) = port.remaining_mbps()
        && f64::from(speed_mbps) > remaining
    {
        return Err(Error::CapacityExceeded {
            speed: speed_mbps,
            port: port.name.clone(),
            remaining: remaining.max(0.0) as u64,
        });
    }
    Ok(())
}

/// A raise from `live_mbps` to `speed_mbps` must fit the port: at most its speed, and no more
/// than what it has left besides the connection's own bandwidth.
pub fn check_raise(port: &Port, live_mbps: u32, speed_mbps: u32) -> Result<(), Error> {
    if let Some(port_speed) = port.speed.as_ref().map(|s| s.value)
        && f64::from(speed_mbps) > port_speed
    {
        return Err(Error::SpeedExceedsPort {
            speed: speed_mbps,
            port: port.name.clone(),
            port_speed: port_speed as u64,
        });
    }
    if let Some(remaining) = port.remaining_mbps() {
        let available = remaining.max(0.0) + f64::from(live_mbps);
        if f64::from(speed_mbps) > available {
            return Err(Error::CapacityExceeded {
                speed: speed_mbps,
                port: port.name.clone(),
                remaining: available as u64,
            });
        }
    }
    Ok(())
}

/// The Oracle metro to connect to: found by id, code or name (any case), ready, offering
/// Layer 2, with a facility, and not the port's own metro.
pub fn metro<'a>(
    metros: &'a [Metro],
    wanted: &Destination,
    port: &Port,
) -> Result<&'a Metro, Error> {
    let wanted_text = wanted
        .metro_id
        .as_deref()
        .or(wanted.metro.as_deref())
        .unwrap_or("(none given)");
    let metro = metros
        .iter()
        .filter(|m| !m.deleted)
        .find(|m| matches_destination(m, wanted))
        .ok_or_else(|| Error::MetroNotFound {
            wanted: wanted_text.to_owned(),
            available: metros
                .iter()
                .filter(|m| usable(m) && port.metro_id.as_deref() != Some(m.id.as_str()))
                .map(|m| format!("{} ({})", m.code, m.name))
                .collect(),
        })?;
    let label = || format!("{} ({})", metro.code, metro.name);
    if !metro.ready {
        return Err(Error::MetroNotReady { metro: label() });
    }
    if !metro.capabilities.layer2 {
        return Err(Error::MetroWithoutLayer2 { metro: label() });
    }
    if port.metro_id.as_deref() == Some(metro.id.as_str()) {
        return Err(Error::MetroIsPortMetro { metro: label() });
    }
    if metro.facility_id().is_none() {
        return Err(Error::MetroWithoutFacility { metro: label() });
    }
    Ok(metro)
}

fn matches_destination(metro: &Metro, wanted: &Destination) -> bool {
    match (&wanted.metro_id, &wanted.metro) {
        (Some(id), _) => &metro.id == id,
        (None, Some(text)) => {
            let text = text.trim();
            metro.code.eq_ignore_ascii_case(text) || metro.name.eq_ignore_ascii_case(text)
        }
        (None, None) => false,
    }
}

fn usable(metro: &Metro) -> bool {
    !metro.deleted && metro.ready && metro.capabilities.layer2
}

/// The Layer 2 order for a resolved port and metro.
pub fn order(fcc: &FastConnectConnection, port: &Port, metro: &Metro) -> Layer2Request {
    let spec = &fcc.spec;
    Layer2Request {
        name: fcc.connection_name(),
        port_id: port.id.clone(),
        dest_port_id: spec.destination.dest_port_id.clone(),
        dest_dcf: metro.facility_id().map(str::to_owned),
        speed: spec.speed_mbps,
        dest_metro_id: metro.id.clone(),
        dest_company: ORACLE_COMPANY.to_owned(),
        payment_type: match spec.payment_type {
            crd::PaymentType::Invoice => cc::PaymentType::Invoice,
            crd::PaymentType::Creditcard => cc::PaymentType::Creditcard,
        },
        duration: spec.term.duration,
        duration_unit: match spec.term.unit {
            crd::TermUnit::Days => cc::DurationUnit::D,
            crd::TermUnit::Weeks => cc::DurationUnit::W,
            crd::TermUnit::Months => cc::DurationUnit::M,
            crd::TermUnit::Years => cc::DurationUnit::Y,
        },
        evergreen: spec.evergreen,
        class_of_service: spec.class_of_service.map(|c| match c {
            crd::ClassOfService::Gold => cc::ClassOfService::Gold,
            crd::ClassOfService::Silverplus => cc::ClassOfService::Silverplus,
            crd::ClassOfService::Silver => cc::ClassOfService::Silver,
            crd::ClassOfService::Bronze => cc::ClassOfService::Bronze,
        }),
        src_vlan_request: spec.vlans.as_ref().and_then(|v| v.source),
        dest_vlan_request: spec.vlans.as_ref().and_then(|v| v.destination),
        discount_code: spec.discount_code.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn port_json(id: &str, name: &str, status: &str, metro: &str, speed: u64) -> serde_json::Value {
        json!({"id": id, "name": name, "status": status, "metroId": metro,
               "speed": {"value": speed, "name": format!("{speed} Mbps")}, "deleted": false})
    }

    fn ports() -> Vec<Port> {
        serde_json::from_value(json!([
            port_json("p1", "My-Port-1", "ACTIVE", "m-sin", 1000),
            port_json("p2", "Dup", "ACTIVE", "m-sin", 1000),
            port_json("p3", "Dup", "ACTIVE", "m-sin", 1000),
            port_json("p4", "Sleepy", "INACTIVE", "m-sin", 1000),
            port_json("p5", "Mixed", "INACTIVE", "m-sin", 1000),
            port_json("p6", "Mixed", "ACTIVE", "m-sin", 10000),
        ]))
        .unwrap()
    }

    fn metros() -> Vec<Metro> {
        let metro = |id: &str, code: &str, name: &str, ready: bool, layer2: bool| {
            json!({"id": id, "code": code, "name": name, "ready": ready, "deleted": false,
                   "capabilities": {"layer2": layer2},
                   "firstDataCenterFacilityIdInMetro": format!("dcf-{id}")})
        };
        serde_json::from_value(json!([
            metro("m-hkg", "HKG", "Hong Kong", true, true),
            metro("m-sin", "SIN", "Singapore", true, true),
            metro("m-tyo", "TYO", "Tokyo", false, true),
            metro("m-syd", "SYD", "Sydney", true, false),
        ]))
        .unwrap()
    }

    fn by_name(name: &str) -> SourcePort {
        SourcePort {
            name: Some(name.into()),
            id: None,
        }
    }

    fn to(metro: &str) -> Destination {
        Destination {
            metro: Some(metro.into()),
            metro_id: None,
            dest_port_id: None,
        }
    }

    #[test]
    fn port_by_name_and_by_id() {
        let ports = ports();
        assert_eq!(
            port(&ports, &by_name("My-Port-1"), "acme", 1000)
                .unwrap()
                .id,
            "p1"
        );
        let by_id = SourcePort {
            name: None,
            id: Some("p6".into()),
        };
        assert_eq!(port(&ports, &by_id, "acme", 1000).unwrap().id, "p6");
    }

    #[test]
    fn two_active_ports_with_one_name_are_ambiguous() {
        let err = port(&ports(), &by_name("Dup"), "acme", 100).unwrap_err();
        assert_eq!(
            err,
            Error::PortAmbiguous {
                name: "Dup".into(),
                ids: "p2, p3".into()
            }
        );
        assert!(err.to_string().contains("set spec.sourcePort.id"));
    }

    #[test]
    fn an_inactive_namesake_does_not_make_a_port_ambiguous() {
        assert_eq!(
            port(&ports(), &by_name("Mixed"), "acme", 100).unwrap().id,
            "p6"
        );
    }

    #[test]
    fn inactive_unknown_and_too_slow_ports_are_refused() {
        let ports = ports();
        assert!(matches!(
            port(&ports, &by_name("Sleepy"), "acme", 100),
            Err(Error::PortNotActive { .. })
        ));
        let err = port(&ports, &by_name("Nope"), "acme", 100).unwrap_err();
        assert!(err.to_string().contains("available: My-Port-1"), "{err}");
        assert!(matches!(
            port(&ports, &by_name("My-Port-1"), "acme", 2000),
            Err(Error::SpeedExceedsPort {
                port_speed: 1000,
                ..
            })
        ));
    }

    #[test]
    fn remaining_capacity_is_checked_with_both_numbers() {
        let mut ports = ports();
        ports[0].capacity = Some(cc::Capacity {
            remaining: Some(300.0),
        });
        let err = port(&ports, &by_name("My-Port-1"), "acme", 500).unwrap_err();
        assert_eq!(
            err,
            Error::CapacityExceeded {
                speed: 500,
                port: "My-Port-1".into(),
                remaining: 300
            }
        );
        assert!(err.to_string().contains("500") && err.to_string().contains("300 Mbps"));
        assert!(port(&ports, &by_name("My-Port-1"), "acme", 300).is_ok());
    }

    #[test]
    fn a_ready_port_says_to_wait_for_its_cross_connect() {
        let mut ports = ports();
        ports[0].status = cc::PortStatus::Ready;
        let err = port(&ports, &by_name("My-Port-1"), "acme", 100).unwrap_err();
        assert!(err.to_string().contains("physical cross-connect"), "{err}");
    }

    #[test]
    fn metro_by_code_or_name_in_any_case() {
        let (ports, metros) = (ports(), metros());
        let p = &ports[0];
        assert_eq!(metro(&metros, &to("hkg"), p).unwrap().id, "m-hkg");
        assert_eq!(metro(&metros, &to("hong kong"), p).unwrap().id, "m-hkg");
        let by_id = Destination {
            metro: None,
            metro_id: Some("m-hkg".into()),
            dest_port_id: None,
        };
        assert_eq!(metro(&metros, &by_id, p).unwrap().id, "m-hkg");
    }

    #[test]
    fn metro_rules() {
        let (ports, metros) = (ports(), metros());
        let p = &ports[0];
        assert!(matches!(
            metro(&metros, &to("SIN"), p),
            Err(Error::MetroIsPortMetro { .. })
        ));
        assert!(matches!(
            metro(&metros, &to("TYO"), p),
            Err(Error::MetroNotReady { .. })
        ));
        assert!(matches!(
            metro(&metros, &to("SYD"), p),
            Err(Error::MetroWithoutLayer2 { .. })
        ));
        let err = metro(&metros, &to("LON"), p).unwrap_err();
        // Only metros one could actually pick are suggested.
        assert_eq!(
            err.to_string(),
            "Oracle has no metro LON; available: HKG (Hong Kong)"
        );
    }

    #[test]
    fn order_carries_the_resolved_ids() {
        let fcc: FastConnectConnection = serde_json::from_value(json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": {"name": "hk", "namespace": "net"},
            "spec": {"companyUsername": "acme",
                "credentials": {"apiKeySecretRef": {"name": "a"}, "oracleOcidSecretRef": {"name": "o"}},
                "sourcePort": {"name": "My-Port-1"}, "destination": {"metro": "HKG"},
                "speedMbps": 500, "classOfService": "GOLD", "term": {"duration": 12, "unit": "m"},
                "vlans": {"source": 100}}
        }))
        .unwrap();
        let (ports, metros) = (ports(), metros());
        let order = order(&fcc, &ports[0], &metros[0]);
        assert_eq!(order.name, "net.hk");
        assert_eq!(order.port_id, "p1");
        assert_eq!(order.dest_metro_id, "m-hkg");
        assert_eq!(order.dest_dcf.as_deref(), Some("dcf-m-hkg"));
        assert_eq!(order.dest_company, "oracle");
        assert_eq!(order.src_vlan_request, Some(100));
        assert_eq!(order.dest_vlan_request, None);
        assert_eq!(order.class_of_service, Some(cc::ClassOfService::Gold));
    }

    #[test]
    fn a_raise_fits_the_port_speed_and_what_is_left_besides_the_connection() {
        let mut port: Port = serde_json::from_value(json!({
            "id": "p1", "name": "My-Port-1", "status": "ACTIVE", "metroId": "m-sin",
            "speed": {"value": 1000}, "capacity": {"remaining": 300}, "deleted": false
        }))
        .unwrap();
        assert_eq!(check_raise(&port, 500, 800), Ok(()));
        assert_eq!(
            check_raise(&port, 500, 801),
            Err(Error::CapacityExceeded {
                speed: 801,
                port: "My-Port-1".into(),
                remaining: 800
            })
        );
        assert!(matches!(
            check_raise(&port, 500, 1001),
            Err(Error::SpeedExceedsPort {
                port_speed: 1000,
                ..
            })
        ));
        port.capacity = None;
        assert_eq!(check_raise(&port, 500, 1000), Ok(()));
    }
}
