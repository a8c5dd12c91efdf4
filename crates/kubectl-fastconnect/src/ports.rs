//! `ports`: what an order can start from.

use std::collections::HashMap;

use fastconnect_operator::consoleconnect::{Metro, Port};

use crate::table::{Table, or_dash};

/// One row per port, in the order Console Connect lists them. METRO is the metro's code when
/// Oracle's list names it (a port's own metro usually is one of Oracle's), else its id.
pub fn render(ports: &[Port], metros: &[Metro]) -> String {
    let codes: HashMap<&str, &str> = metros
        .iter()
        .filter(|m| !m.code.is_empty())
        .map(|m| (m.id.as_str(), m.code.as_str()))
        .collect();
    let mut table = Table::new([
        "NAME",
        "ID",
        "METRO",
        "SPEED(Mbps)",
        "REMAINING(Mbps)",
        "STATUS",
    ]);
    for port in ports {
        let metro = port
            .metro_id
            .as_deref()
            .map(|id| codes.get(id).copied().unwrap_or(id));
        table.row(vec![
            port.name.clone(),
            port.id.clone(),
            or_dash(metro),
            or_dash(port.speed.as_ref().map(|s| mbps(s.value))),
            or_dash(port.remaining_mbps().map(mbps)),
            port.status.as_str().to_owned(),
        ]);
    }
    table.render()
}

/// Whole Mbps, as the operator compares them; a fraction is rare and would only be noise.
fn mbps(value: f64) -> u64 {
    value.max(0.0).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_port_row_has_its_metro_code_speed_and_what_is_left() {
        let ports: Vec<Port> = serde_json::from_value(json!([
            {"id": "p1", "name": "My-Port-1", "status": "ACTIVE", "metroId": "m-sin",
             "speed": {"value": 1000}, "capacity": {"remaining": 750.0}},
            {"id": "p2", "name": "Elsewhere", "status": "DISABLED", "metroId": "m-x"},
        ]))
        .unwrap();
        let metros: Vec<Metro> =
            serde_json::from_value(json!([{"id": "m-sin", "code": "SIN", "name": "Singapore"}]))
                .unwrap();
        let text = render(&ports, &metros);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines,
            [
                vec![
                    "NAME",
                    "ID",
                    "METRO",
                    "SPEED(Mbps)",
                    "REMAINING(Mbps)",
                    "STATUS"
                ],
                vec!["My-Port-1", "p1", "SIN", "1000", "750", "ACTIVE"],
                vec!["Elsewhere", "p2", "m-x", "-", "-", "DISABLED"],
            ]
        );
    }
}
