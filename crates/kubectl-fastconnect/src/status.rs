//! `status`: where each FastConnectConnection stands, for how long, and what to do next.

use fastconnect_operator::{
    controller::{Reason, support_handoff},
    crd::{FastConnectConnection, FastConnectConnectionStatus, Phase},
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::table::Table;

/// One row per resource, in the order listed; NAMESPACE only across namespaces.
pub fn render(fccs: &[FastConnectConnection], all_namespaces: bool, now: Timestamp) -> String {
    let mut headers = vec!["NAME", "PHASE", "SINCE", "NEXT"];
    if all_namespaces {
        headers.insert(0, "NAMESPACE");
    }
    let mut table = Table::new(headers);
    for fcc in fccs {
        let status = fcc.status.as_ref();
        let mut row = vec![
            fcc.metadata.name.clone().unwrap_or_default(),
            status
                .and_then(|s| s.phase)
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            since(status, now),
            next(fcc),
        ];
        if all_namespaces {
            row.insert(0, fcc.metadata.namespace.clone().unwrap_or_default());
        }
        table.row(row);
    }
    table.render()
}

/// Time in the phase, from `status.phaseSince`. An operator that did not record it leaves the
/// newest condition change as the best estimate, marked `~`.
fn since(status: Option<&FastConnectConnectionStatus>, now: Timestamp) -> String {
    let Some(status) = status else {
        return "-".to_owned();
    };
    let recorded = status
        .phase_since
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    if let Some(start) = recorded {
        return human_duration(now.duration_since(start));
    }
    let newest = status
        .conditions
        .iter()
        .map(|c| c.last_transition_time.0)
        .max();
    newest.map_or_else(
        || "-".to_owned(),
        |start| format!("~{}", human_duration(now.duration_since(start))),
    )
}

/// What to do next: the Support hand-off while approval is awaited (the operator's own text),
/// otherwise the status message, and what the last reconcile failed on if it did.
fn next(fcc: &FastConnectConnection) -> String {
    let Some(status) = fcc.status.as_ref().filter(|s| s.phase.is_some()) else {
        return "no status yet: check that the operator runs and watches this namespace".to_owned();
    };
    let ready = condition(status, "Ready");
    let mut text = if status.phase == Some(Phase::AwaitingApproval) {
        support_handoff(fcc, status)
    } else if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        message.to_owned()
    } else {
        ready.map_or_else(|| "-".to_owned(), explain)
    };
    if let Some(synced) = condition(status, "Synced").filter(|c| c.status == "False") {
        let failure = if synced.message.is_empty() {
            explain(synced)
        } else {
            synced.message.clone()
        };
        if !text.contains(&failure) {
            text.push_str(&format!("; last reconcile: {failure}"));
        }
    }
    text
}

fn condition<'a>(status: &'a FastConnectConnectionStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// The operator's explanation of a condition's reason, or the condition's own message.
fn explain(condition: &Condition) -> String {
    use strum::IntoEnumIterator;
    Reason::iter()
        .find(|r| r.as_str() == condition.reason)
        .map_or_else(|| condition.message.clone(), |r| r.explain().to_owned())
}

/// Like kubectl's ages (k8s.io/apimachinery's `HumanDuration`): precise while short, coarser
/// as it grows.
pub fn human_duration(elapsed: SignedDuration) -> String {
    let seconds = elapsed.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_rest(days, "d", hours % 24, "h");
    }
    if days < 365 * 2 {
        return format!("{days}d");
    }
    if days < 365 * 8 {
        return with_rest(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

fn with_rest(whole: i64, unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{whole}{unit}")
    } else {
        format!("{whole}{unit}{rest}{rest_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn now() -> Timestamp {
        "2030-01-01T12:00:00Z".parse().unwrap()
    }

    fn fcc(name: &str, status: Value) -> FastConnectConnection {
        serde_json::from_value(json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": {"name": name, "namespace": "net"},
            "spec": {"companyUsername": "acme",
                "credentials": {"apiKeySecretRef": {"name": "cc"},
                                "oracleOcidSecretRef": {"name": "vc", "key": "id"}},
                "sourcePort": {"name": "P"}, "destination": {"metro": "HKG"},
                "speedMbps": 100, "term": {"duration": 1, "unit": "m"}},
            "status": status,
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str, at: &str) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": at})
    }

    #[test]
    fn human_durations_match_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (9 * 60 + 59, "9m59s"),
            (10 * 60 + 30, "10m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (7 * 86400 + 3 * 3600, "7d3h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(SignedDuration::from_secs(seconds)), want);
        }
    }

    #[test]
    fn awaiting_approval_says_what_to_send_support() {
        let fcc = fcc(
            "hk",
            json!({"phase": "AwaitingApproval", "phaseSince": "2030-01-01T11:55:00Z",
                   "connectionId": "c-1", "message": "something older"}),
        );
        let text = render(std::slice::from_ref(&fcc), true, now());
        let handoff = support_handoff(&fcc, fcc.status.as_ref().unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAMESPACE", "NAME", "PHASE", "SINCE", "NEXT"]
        );
        assert!(
            lines[1].starts_with("net         hk     AwaitingApproval   5m      "),
            "{text}"
        );
        assert!(lines[1].ends_with(&handoff), "{text}");
        assert!(handoff.contains("c-1") && handoff.contains("Secret net/vc key id"));
    }

    #[test]
    fn other_phases_show_the_message_and_a_failed_reconcile() {
        let failing = fcc(
            "a",
            json!({"phase": "Active", "phaseSince": "2029-12-31T12:00:00Z",
                   "message": "connection c-2 is ACTIVE",
                   "conditions": [condition("Synced", "False", "Throttled", "429 from Console Connect",
                                            "2030-01-01T11:59:00Z")]}),
        );
        assert_eq!(
            next(&failing),
            "connection c-2 is ACTIVE; last reconcile: 429 from Console Connect"
        );
        assert_eq!(since(failing.status.as_ref(), now()), "24h");
    }

    #[test]
    fn without_phase_since_the_newest_condition_is_the_estimate() {
        let older = fcc(
            "old",
            json!({"phase": "Failed",
            "conditions": [
                condition("Ready", "False", "MetroNotReady", "", "2030-01-01T11:00:00Z"),
                condition("Synced", "True", "ReconcileSucceeded", "", "2030-01-01T11:30:00Z"),
            ]}),
        );
        assert_eq!(since(older.status.as_ref(), now()), "~30m");
        // No message: the operator's explanation of the reason.
        assert_eq!(next(&older), Reason::MetroNotReady.explain());
        let fresh = fcc("new", json!(null));
        assert_eq!(since(fresh.status.as_ref(), now()), "-");
        assert!(next(&fresh).starts_with("no status yet"));
    }
}
