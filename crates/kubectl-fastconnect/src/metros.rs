//! `metros`: where Oracle can be reached, and from a given port, where an order may go.

use fastconnect_operator::{
    consoleconnect::{Metro, Port},
    controller::{Diagnosis, resolve},
    crd::Destination,
};

use crate::table::Table;

/// One row per metro Oracle lists (deleted ones left out). With `from`, REACHABLE says whether
/// the operator would order from that port to the metro, and if not, the reason it would report.
pub fn render(metros: &[Metro], from: Option<&Port>) -> String {
    let mut headers = vec!["CODE", "NAME", "ID", "READY", "LAYER2"];
    if from.is_some() {
        headers.push("REACHABLE");
    }
    let mut table = Table::new(headers);
    for metro in metros.iter().filter(|m| !m.deleted) {
        let mut row = vec![
            metro.code.clone(),
            metro.name.clone(),
            metro.id.clone(),
            yes_no(metro.ready).to_owned(),
            yes_no(metro.capabilities.layer2).to_owned(),
        ];
        if let Some(port) = from {
            row.push(reachable(metros, metro, port));
        }
        table.row(row);
    }
    table.render()
}

/// The operator's own metro check, for this metro by id.
fn reachable(metros: &[Metro], metro: &Metro, port: &Port) -> String {
    let destination = Destination {
        metro: None,
        metro_id: Some(metro.id.clone()),
        dest_port_id: None,
    };
    match resolve::metro(metros, &destination, port) {
        Ok(_) => "yes".to_owned(),
        Err(error) => format!("no: {}", error.reason()),
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metros() -> Vec<Metro> {
        let metro = |id: &str, code: &str, name: &str, ready: bool, layer2: bool| {
            json!({"id": id, "code": code, "name": name, "ready": ready,
                   "capabilities": {"layer2": layer2},
                   "firstDataCenterFacilityIdInMetro": format!("dcf-{id}")})
        };
        serde_json::from_value(json!([
            metro("m-hkg", "HKG", "Hong Kong", true, true),
            metro("m-sin", "SIN", "Singapore", true, true),
            metro("m-tyo", "TYO", "Tokyo", false, true),
            {"id": "m-old", "code": "OLD", "deleted": true},
        ]))
        .unwrap()
    }

    /// Cells are three spaces apart; a metro's name has single spaces.
    fn cells(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|line| {
                let cells = line.split("   ").map(str::trim).filter(|c| !c.is_empty());
                cells.map(str::to_owned).collect()
            })
            .collect()
    }

    #[test]
    fn flags_without_a_port() {
        assert_eq!(
            cells(&render(&metros(), None)),
            [
                ["CODE", "NAME", "ID", "READY", "LAYER2"],
                ["HKG", "Hong Kong", "m-hkg", "yes", "yes"],
                ["SIN", "Singapore", "m-sin", "yes", "yes"],
                ["TYO", "Tokyo", "m-tyo", "no", "yes"],
            ]
        );
    }

    #[test]
    fn from_a_port_each_metro_says_why_not() {
        let port: Port =
            serde_json::from_value(json!({"id": "p1", "name": "P", "metroId": "m-sin"})).unwrap();
        let reachability: Vec<String> = cells(&render(&metros(), Some(&port)))
            .into_iter()
            .map(|row| format!("{} {}", row[0], row[5]))
            .collect();
        assert_eq!(
            reachability,
            [
                "CODE REACHABLE",
                "HKG yes",
                "SIN no: MetroIsPortMetro",
                "TYO no: MetroNotReady"
            ]
        );
    }
}
