//! `new`: a FastConnectConnection resolved before it is applied, by the operator's own code.

use fastconnect_operator::{
    consoleconnect::{Layer2Request, Metro, Port},
    controller::resolve,
    crd::{
        ApiKeySecretRef, Credentials, Destination, FastConnectConnection,
        FastConnectConnectionSpec, OcidSecretRef, SourcePort, Vlans,
    },
};

use crate::{cli::NewArgs, error::Error};

/// The resource the flags describe, in `namespace`. Secrets appear only as references.
pub fn resource(args: &NewArgs, namespace: &str) -> FastConnectConnection {
    let vlans = (args.source_vlan.is_some() || args.destination_vlan.is_some()).then_some(Vlans {
        source: args.source_vlan,
        destination: args.destination_vlan,
    });
    let spec = FastConnectConnectionSpec {
        company_username: args.company.clone(),
        credentials: Credentials {
            api_key_secret_ref: ApiKeySecretRef {
                name: args.api.secret.clone(),
                key: args.api.key.clone(),
            },
            oracle_ocid_secret_ref: OcidSecretRef {
                name: args.ocid_secret.clone(),
                key: args.ocid_key.clone(),
            },
        },
        source_port: SourcePort {
            name: args.port.clone(),
            id: args.port_id.clone(),
        },
        destination: Destination {
            metro: args.metro.clone(),
            metro_id: args.metro_id.clone(),
            dest_port_id: args.dest_port_id.clone(),
        },
        connection_name: args.connection_name.clone(),
        speed_mbps: args.speed,
        class_of_service: args.class_of_service.map(Into::into),
        payment_type: Default::default(),
        term: args.term.clone(),
        // Only written when asked for, so the spec says no more than the user did.
        evergreen: args.evergreen.then_some(true),
        vlans,
        discount_code: args.discount_code.clone(),
        deletion_policy: args.deletion_policy.into(),
        connection_id: None,
        management_policy: Default::default(),
    };
    let mut fcc = FastConnectConnection::new(&args.name, spec);
    // The default connection name is `<namespace>.<name>`: the namespace is part of what was
    // resolved, so it goes into the output.
    fcc.metadata.namespace = Some(namespace.to_owned());
    fcc
}

/// The order the operator would place for `fcc`, or the error it would report, found in the
/// same order and by the same functions as the operator's reconcile.
pub fn resolve(
    fcc: &FastConnectConnection,
    ports: &[Port],
    metros: &[Metro],
) -> Result<Layer2Request, resolve::Error> {
    let spec = &fcc.spec;
    let port = resolve::port(
        ports,
        &spec.source_port,
        &spec.company_username,
        spec.speed_mbps,
    )?;
    let metro = resolve::metro(metros, &spec.destination, port)?;
    Ok(resolve::order(fcc, port, metro))
}

/// The resource as YAML, after comments saying what it resolved to.
pub fn render(
    fcc: &FastConnectConnection,
    order: &Layer2Request,
    ports: &[Port],
    metros: &[Metro],
) -> Result<String, Error> {
    let yaml = serde_saphyr::to_string(fcc).map_err(Error::Yaml)?;
    Ok(format!("{}{yaml}", summary(order, ports, metros)))
}

fn summary(order: &Layer2Request, ports: &[Port], metros: &[Metro]) -> String {
    let port = ports.iter().find(|p| p.id == order.port_id);
    let metro = metros.iter().find(|m| m.id == order.dest_metro_id);
    let port_text = port.map_or_else(
        || order.port_id.clone(),
        |p| {
            let left = p
                .remaining_mbps()
                .map(|mbps| format!(", {} Mbps left", mbps.max(0.0).floor()))
                .unwrap_or_default();
            format!("{} (id {}), {}{left}", p.name, p.id, p.status.as_str())
        },
    );
    let metro_text = metro.map_or_else(
        || order.dest_metro_id.clone(),
        |m| format!("{} ({}, id {})", m.code, m.name, m.id),
    );
    format!(
        "# Resolved as the operator would:\n\
         #   port:     {port_text}\n\
         #   metro:    {metro_text}\n\
         #   speed:    {} Mbps\n\
         #   ordered as Console Connect connection {:?}\n\
         # Apply it with: kubectl apply -f -\n",
        order.speed, order.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use serde_json::json;

    fn args(speed: &str, extra: &[&str]) -> NewArgs {
        let base = [
            "kubectl-fastconnect",
            "new",
            "hk",
            "--secret",
            "cc",
            "--company",
            "acme",
            "--ocid-secret",
            "vc",
            "--speed",
            speed,
        ];
        match Cli::try_parse_from(base.iter().chain(extra))
            .unwrap()
            .command
        {
            crate::cli::Command::New(args) => *args,
            other => panic!("{other:?}"),
        }
    }

    fn lists() -> (Vec<Port>, Vec<Metro>) {
        let ports = serde_json::from_value(json!([
            {"id": "p1", "name": "My-Port-1", "status": "ACTIVE", "metroId": "m-sin",
             "speed": {"value": 1000}, "capacity": {"remaining": 800}},
        ]))
        .unwrap();
        let metros = serde_json::from_value(json!([
            {"id": "m-hkg", "code": "HKG", "name": "Hong Kong", "ready": true,
             "capabilities": {"layer2": true}, "firstDataCenterFacilityIdInMetro": "dcf-1"},
        ]))
        .unwrap();
        (ports, metros)
    }

    #[test]
    fn the_resource_names_secrets_and_says_only_what_was_asked() {
        let fcc = resource(
            &args(
                "500",
                &["--port", "My-Port-1", "--metro", "hkg", "--term", "12m"],
            ),
            "net",
        );
        let value = serde_json::to_value(&fcc).unwrap();
        assert_eq!(value["metadata"], json!({"name": "hk", "namespace": "net"}));
        let spec = &value["spec"];
        assert_eq!(
            spec["credentials"],
            json!({"apiKeySecretRef": {"name": "cc", "key": "apiKey"},
                   "oracleOcidSecretRef": {"name": "vc", "key": "ocid"}})
        );
        assert_eq!(spec["sourcePort"], json!({"name": "My-Port-1"}));
        assert_eq!(spec["destination"], json!({"metro": "hkg"}));
        assert_eq!(spec["term"], json!({"duration": 12, "unit": "m"}));
        for absent in ["vlans", "evergreen", "classOfService", "connectionId"] {
            assert!(spec.get(absent).is_none(), "{absent}: {spec}");
        }
        assert!(value.get("status").is_none(), "{value}");
    }

    #[test]
    fn resolves_like_the_operator_and_prints_yaml_after_the_summary() {
        let (ports, metros) = lists();
        let fcc = resource(
            &args(
                "500",
                &[
                    "--port",
                    "My-Port-1",
                    "--metro",
                    "Hong Kong",
                    "--source-vlan",
                    "100",
                ],
            ),
            "net",
        );
        let order = resolve(&fcc, &ports, &metros).unwrap();
        assert_eq!(order.name, "net.hk");
        let text = render(&fcc, &order, &ports, &metros).unwrap();
        assert!(text.contains("#   port:     My-Port-1 (id p1), ACTIVE, 800 Mbps left\n"));
        assert!(text.contains("#   metro:    HKG (Hong Kong, id m-hkg)\n"));
        assert!(text.contains("connection \"net.hk\""));
        assert!(text.contains("kind: FastConnectConnection\n"), "{text}");
        assert!(text.contains("source: 100"), "{text}");
    }

    #[test]
    fn a_mistake_is_the_operators_error() {
        let (ports, metros) = lists();
        let too_fast = resource(
            &args("900", &["--port", "My-Port-1", "--metro", "HKG"]),
            "net",
        );
        assert!(matches!(
            resolve(&too_fast, &ports, &metros),
            Err(resolve::Error::CapacityExceeded { remaining: 800, .. })
        ));
        let nowhere = resource(
            &args("500", &["--port", "My-Port-1", "--metro", "LON"]),
            "net",
        );
        assert!(matches!(
            resolve(&nowhere, &ports, &metros),
            Err(resolve::Error::MetroNotFound { .. })
        ));
    }
}
