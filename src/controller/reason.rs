//! Every reason a FastConnectConnection can show, with its phase, its retry policy and its line
//! in the README's table, all in one place. `tests/readme.rs` checks the README against
//! [`readme_table`].

use crate::crd::Phase;

/// What to do after a reconcile that ended with this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Look again at the poll cadence of the phase.
    Poll,
    /// Transient, or fixable outside the spec (a Secret, a port): retry with growing, jittered
    /// delays, never sooner than the service's `Retry-After`.
    Backoff,
    /// Only a change of the spec can help: wait for one.
    SpecChange,
}

/// The reason of the `Ready` condition (or of `Synced=False`), and of the Event that reports it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter, strum::IntoStaticStr, strum::Display,
)]
pub enum Reason {
    // The connection's own status in Console Connect.
    Creating,
    AwaitingApproval,
    Provisioning,
    Active,
    UnknownRemoteStatus,
    Denied,
    Cancelled,
    Disabled,
    RemoteError,
    DeletedOutOfBand,
    // Ordering and adopting.
    Ordering,
    ConfirmingOrder,
    NameInUse,
    OrderRefused,
    NameTaken,
    OrderAmbiguous,
    DuplicateConnections,
    ConnectionNotFound,
    // The Secrets.
    SecretNotFound,
    SecretKeyMissing,
    SecretValueUnusable,
    SecretUnreadable,
    InvalidOcid,
    // Port and metro.
    PortNotFound,
    PortAmbiguous,
    PortNotActive,
    SpeedExceedsPort,
    CapacityExceeded,
    MetroNotFound,
    MetroNotReady,
    MetroWithoutLayer2,
    MetroIsPortMetro,
    MetroWithoutFacility,
    // Talking to Console Connect.
    ApiKeyRefused,
    AccessDenied,
    Throttled,
    ApiUnavailable,
    ApiUnreachable,
    UnexpectedResponse,
    RequestRejected,
    // Talking to Kubernetes.
    Conflict,
    KubernetesApiError,
    // Deletion.
    Disconnecting,
    ConfirmingDisconnect,
    Orphaned,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The phase this reason puts the resource in; `None` for a passing trouble that leaves the
    /// phase as it was. A resource being deleted is always `Deleting`.
    pub fn phase(self) -> Option<Phase> {
        use Reason::*;
        Some(match self {
            Creating | Ordering | ConfirmingOrder | NameInUse => Phase::Creating,
            AwaitingApproval => Phase::AwaitingApproval,
            Provisioning | UnknownRemoteStatus => Phase::Provisioning,
            Active => Phase::Active,
            Denied | Cancelled | Disabled | RemoteError | DeletedOutOfBand | OrderRefused
            | NameTaken | OrderAmbiguous | ConnectionNotFound | InvalidOcid | PortNotFound
            | PortAmbiguous | PortNotActive | SpeedExceedsPort | CapacityExceeded
            | MetroNotFound | MetroNotReady | MetroWithoutLayer2 | MetroIsPortMetro
            | MetroWithoutFacility => Phase::Failed,
            SecretNotFound | SecretKeyMissing | SecretValueUnusable | SecretUnreadable
            | ApiKeyRefused | AccessDenied => Phase::Pending,
            Disconnecting | ConfirmingDisconnect | Orphaned => Phase::Deleting,
            DuplicateConnections | Throttled | ApiUnavailable | ApiUnreachable
            | UnexpectedResponse | RequestRejected | Conflict | KubernetesApiError => return None,
        })
    }

    pub fn retry(self) -> Retry {
        use Reason::*;
        match self {
            Creating | AwaitingApproval | Provisioning | Active | UnknownRemoteStatus | Denied
            | Cancelled | Disabled | RemoteError | DeletedOutOfBand | Ordering
            | ConfirmingOrder | DuplicateConnections | Disconnecting | ConfirmingDisconnect
            | Orphaned => Retry::Poll,
            OrderRefused | NameTaken | OrderAmbiguous => Retry::SpecChange,
            NameInUse | ConnectionNotFound | SecretNotFound | SecretKeyMissing
            | SecretValueUnusable | SecretUnreadable | InvalidOcid | PortNotFound
            | PortAmbiguous | PortNotActive | SpeedExceedsPort | CapacityExceeded
            | MetroNotFound | MetroNotReady | MetroWithoutLayer2 | MetroIsPortMetro
            | MetroWithoutFacility | ApiKeyRefused | AccessDenied | Throttled | ApiUnavailable
            | ApiUnreachable | UnexpectedResponse | RequestRejected | Conflict
            | KubernetesApiError => Retry::Backoff,
        }
    }

    /// A failure Events report as a Warning.
    pub fn is_warning(self) -> bool {
        self.phase() == Some(Phase::Failed)
            || matches!(
                self,
                Reason::DuplicateConnections | Reason::NameInUse | Reason::ConfirmingDisconnect
            )
    }

    /// What it means and what to do: the README's table.
    pub fn explain(self) -> &'static str {
        use Reason::*;
        match self {
            Creating => "Console Connect is creating the connection.",
            AwaitingApproval => {
                "PENDING: send Console Connect Support the connection id and the OCID (the \
                 message says which Secret holds it)."
            }
            Provisioning => "ACCEPTED, ACTIVATING or MANUAL: approved, being provisioned.",
            Active => "The connection is ACTIVE.",
            UnknownRemoteStatus => "A status this operator does not know; shown as received.",
            Denied => "DENIED by the other side; contact Support, then delete the resource.",
            Cancelled => "CANCELLED; delete the resource and order again if still needed.",
            Disabled => "DISABLED or DISABLING in Console Connect; contact Support.",
            RemoteError => "ERROR; the message carries Console Connect's `errorReason`.",
            DeletedOutOfBand => "The connection was deleted outside Kubernetes; delete the resource.",
            Ordering => "The order is being placed.",
            ConfirmingOrder => {
                "The answer to the order was lost (timeout, 5xx); the operator looks for it by \
                 name for `--order-settle` before it orders again."
            }
            NameInUse => {
                "Console Connect says the name is in use, yet no matching connection is listed \
                 yet; the operator keeps looking and never orders meanwhile."
            }
            OrderRefused => {
                "Console Connect refused the order (400); `status.refusedGeneration` holds it \
                 until the spec changes."
            }
            NameTaken => {
                "Another connection has this name and does not match the order; set \
                 `spec.connectionName`, or `spec.connectionId` to adopt it."
            }
            OrderAmbiguous => {
                "Several connections carry this name; set `spec.connectionId` to the one to adopt."
            }
            DuplicateConnections => {
                "More than one live connection carries this order (`Synced=False`, Warning \
                 Event, metric); the operator deletes neither: remove the extra one."
            }
            ConnectionNotFound => "`spec.connectionId` does not exist in the company.",
            SecretNotFound => "A referenced Secret does not exist.",
            SecretKeyMissing => "The Secret lacks the referenced key.",
            SecretValueUnusable => "The Secret's value is empty or not UTF-8.",
            SecretUnreadable => "The Secret cannot be read (RBAC, API server).",
            InvalidOcid => "The OCID Secret does not hold `ocid1.virtualcircuit...`.",
            PortNotFound => "No such port in the company; the message lists the ports.",
            PortAmbiguous => "Several active ports have that name; use `spec.sourcePort.id`.",
            PortNotActive => "The port is not ACTIVE; the message says why and what to do.",
            SpeedExceedsPort => "`spec.speedMbps` is above the port's speed.",
            CapacityExceeded => {
                "`spec.speedMbps` is above the port's remaining capacity; both numbers are in \
                 the message."
            }
            MetroNotFound => "No such Oracle metro; the message lists usable ones.",
            MetroNotReady => "The Oracle metro is not ready.",
            MetroWithoutLayer2 => "The Oracle metro offers no Layer 2.",
            MetroIsPortMetro => "The Oracle metro is the port's own metro.",
            MetroWithoutFacility => "The Oracle metro lists no data-centre facility.",
            ApiKeyRefused => "Console Connect refused the API key (401/403); fix the Secret.",
            AccessDenied => {
                "The key is valid but lacks a permission (401 Access denied); the message names \
                 it."
            }
            Throttled => "Console Connect answered 429; every resource of the company waits.",
            ApiUnavailable => "Console Connect answered 5xx.",
            ApiUnreachable => "No answer (network, timeout).",
            UnexpectedResponse => "An answer the operator cannot read; nothing is ordered.",
            RequestRejected => {
                "A read, search or disconnect was refused (400); retried, since only a refused \
                 order waits for a spec change."
            }
            Conflict => "The resource changed during the reconcile; retried at once.",
            KubernetesApiError => "A Kubernetes write failed.",
            Disconnecting => "Disconnect requested; waiting for DELETING to finish.",
            ConfirmingDisconnect => {
                "No recorded connection: looking the order up by name before letting go."
            }
            Orphaned => "`deletionPolicy: Orphan`: the connection was left running.",
        }
    }
}

/// The README's table of reasons, generated from [`Reason`].
pub fn readme_table() -> String {
    use strum::IntoEnumIterator;
    let mut table = String::from(
        "| reason | phase | retried | meaning |\n|---|---|---|---|\n",
    );
    for reason in Reason::iter() {
        let phase = reason.phase().map_or("(unchanged)", Phase::as_str);
        let retry = match reason.retry() {
            Retry::Poll => "polled",
            Retry::Backoff => "backoff",
            Retry::SpecChange => "on spec change",
        };
        table.push_str(&format!(
            "| `{reason}` | {phase} | {retry} | {} |\n",
            reason.explain()
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn only_refusals_of_the_order_wait_for_a_spec_change() {
        let waiting: Vec<Reason> = Reason::iter()
            .filter(|r| r.retry() == Retry::SpecChange)
            .collect();
        assert_eq!(
            waiting,
            [Reason::OrderRefused, Reason::NameTaken, Reason::OrderAmbiguous]
        );
    }

    #[test]
    fn every_reason_has_a_row() {
        let table = readme_table();
        for reason in Reason::iter() {
            assert!(table.contains(&format!("| `{reason}` |")), "{reason}");
            assert!(!reason.explain().contains('|'), "{reason} breaks the table");
        }
    }
}
