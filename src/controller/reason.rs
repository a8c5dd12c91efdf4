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
    ConnectionClaimed,
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
    // Changes after ordering: the ChangePending and Drifted conditions, and their Events.
    ChangeAwaitingApproval,
    ChangeApplied,
    ChangeRejected,
    ChangeWithdrawn,
    ChangeDeferred,
    NoChangePending,
    ConnectionUpdated,
    ChangeRefused,
    DriftDetected,
    NoDrift,
    // The pause annotation.
    ReconcilePaused,
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
            | NameTaken | OrderAmbiguous | ConnectionNotFound | ConnectionClaimed | InvalidOcid
            | PortNotFound | PortAmbiguous | PortNotActive | SpeedExceedsPort
            | CapacityExceeded | MetroNotFound | MetroNotReady | MetroWithoutLayer2
            | MetroIsPortMetro | MetroWithoutFacility => Phase::Failed,
            SecretNotFound | SecretKeyMissing | SecretValueUnusable | SecretUnreadable
            | ApiKeyRefused | AccessDenied => Phase::Pending,
            Disconnecting | ConfirmingDisconnect | Orphaned => Phase::Deleting,
            DuplicateConnections
            | Throttled
            | ApiUnavailable
            | ApiUnreachable
            | UnexpectedResponse
            | RequestRejected
            | Conflict
            | KubernetesApiError
            | ChangeAwaitingApproval
            | ChangeApplied
            | ChangeRejected
            | ChangeWithdrawn
            | ChangeDeferred
            | NoChangePending
            | ConnectionUpdated
            | ChangeRefused
            | DriftDetected
            | NoDrift
            | ReconcilePaused => return None,
        })
    }

    pub fn retry(self) -> Retry {
        use Reason::*;
        match self {
            Creating
            | AwaitingApproval
            | Provisioning
            | Active
            | UnknownRemoteStatus
            | Denied
            | Cancelled
            | Disabled
            | RemoteError
            | DeletedOutOfBand
            | Ordering
            | ConfirmingOrder
            | DuplicateConnections
            | Disconnecting
            | ConfirmingDisconnect
            | Orphaned
            | ChangeAwaitingApproval
            | ChangeApplied
            | ChangeRejected
            | ChangeWithdrawn
            | ChangeDeferred
            | NoChangePending
            | ConnectionUpdated
            | DriftDetected
            | NoDrift
            | ConnectionClaimed => Retry::Poll,
            OrderRefused | NameTaken | OrderAmbiguous | ReconcilePaused => Retry::SpecChange,
            NameInUse | ConnectionNotFound | SecretNotFound | SecretKeyMissing
            | SecretValueUnusable | SecretUnreadable | InvalidOcid | PortNotFound
            | PortAmbiguous | PortNotActive | SpeedExceedsPort | CapacityExceeded
            | MetroNotFound | MetroNotReady | MetroWithoutLayer2 | MetroIsPortMetro
            | MetroWithoutFacility | ApiKeyRefused | AccessDenied | Throttled | ApiUnavailable
            | ApiUnreachable | UnexpectedResponse | RequestRejected | Conflict
            | KubernetesApiError | ChangeRefused => Retry::Backoff,
        }
    }

    /// A failure Events report as a Warning.
    pub fn is_warning(self) -> bool {
        self.phase() == Some(Phase::Failed)
            || matches!(
                self,
                Reason::DuplicateConnections
                    | Reason::NameInUse
                    | Reason::ConfirmingDisconnect
                    | Reason::ChangeRejected
                    | Reason::ChangeRefused
                    | Reason::DriftDetected
            )
    }

    /// What it means and what to do: the README's table.
    pub fn explain(self) -> &'static str {
        use Reason::*;
        match self {
            Creating => "Console Connect is creating the connection",
            AwaitingApproval => {
                "Console Connect waits for approval: send Support the connection id and the OCID \
                 (the message names the Secret that holds it)"
            }
            Provisioning => "approved (`ACCEPTED`, `ACTIVATING`, `MANUAL`); wait",
            Active => "done: the connection is `ACTIVE`",
            UnknownRemoteStatus => {
                "Console Connect reports a status the operator does not know (shown as received)"
            }
            Denied => {
                "the connection was DENIED: contact Console Connect Support, then delete the \
                 resource"
            }
            Cancelled => "CANCELLED: delete the resource and order again if still needed",
            Disabled => "DISABLED or DISABLING in Console Connect: contact Console Connect Support",
            RemoteError => {
                "ERROR in Console Connect, with its `errorReason`: contact Console Connect Support"
            }
            DeletedOutOfBand => {
                "the connection was deleted outside Kubernetes (404, `DELETED`, `deleted: true`): \
                 delete the resource"
            }
            Ordering => "the order is being sent",
            ConfirmingOrder => {
                "the answer to the order was lost (timeout, 5xx, dropped connection): the \
                 operator looks for it by name and orders again only if it is still missing \
                 after `--order-settle`"
            }
            NameInUse => {
                "Console Connect says the name is in use but lists no matching connection yet: \
                 the operator keeps looking and orders nothing meanwhile; if it persists, another \
                 connection holds the name: set `spec.connectionName`"
            }
            OrderRefused => {
                "Console Connect refused the order (its message is quoted on Synced): fix the \
                 spec; `status.refusedGeneration` keeps the refusal until the spec changes"
            }
            NameTaken => {
                "another connection has this name and does not match the order: set a unique \
                 `spec.connectionName`, or `spec.connectionId` to adopt it"
            }
            OrderAmbiguous => {
                "several connections have this name and none matches the order: set \
                 `spec.connectionId` to the one to adopt"
            }
            DuplicateConnections => {
                "on Synced only: more than one live connection carries this order; the message \
                 lists them; delete the extra one in Console Connect (the operator deletes none)"
            }
            ConnectionNotFound => "`spec.connectionId` does not exist in your company: fix it",
            ConnectionClaimed => {
                "another FastConnectConnection manages the connection in `spec.connectionId`; \
                 nothing was adopted: delete this resource, or the other one first (looked at \
                 again at the active poll cadence)"
            }
            SecretNotFound => {
                "create the Secret named in `spec.credentials` in the resource's namespace"
            }
            SecretKeyMissing => "add the key to the Secret, or fix the `key` in `spec.credentials`",
            SecretValueUnusable => {
                "the value is empty or not UTF-8 text: put the API key / OCID there"
            }
            SecretUnreadable => {
                "the operator may not read the Secret: check its RBAC (`get` on secrets in this \
                 namespace)"
            }
            InvalidOcid => {
                "the OCID Secret must hold `ocid1.virtualcircuit.<realm>.<region>.<id>`: fix the \
                 Secret"
            }
            PortNotFound => {
                "no active port by that name or id in your company; the message lists the ports \
                 it knows"
            }
            PortAmbiguous => "several active ports have that name: set `spec.sourcePort.id`",
            PortNotActive => {
                "the port is not `ACTIVE`; the message says its status and what to do (retried, \
                 in case it becomes active)"
            }
            SpeedExceedsPort => "lower `spec.speedMbps` to at most the port's speed",
            CapacityExceeded => {
                "`spec.speedMbps` is above the port's remaining capacity (both numbers in the \
                 message): lower it or free capacity"
            }
            MetroNotFound => "Oracle has no such metro; the message lists the available ones",
            MetroNotReady => "the metro takes no new connections: pick another",
            MetroWithoutLayer2 => "the metro has no Layer 2: pick another",
            MetroIsPortMetro => "the metro is your port's own metro: pick another",
            MetroWithoutFacility => "the metro lists no data-centre facility: pick another",
            ApiKeyRefused => {
                "Console Connect refused the key (401/403): check the key and that it belongs to \
                 `companyUsername`"
            }
            AccessDenied => {
                "the key is valid but lacks a permission (401 `Access denied`): grant the \
                 permissions the message names, or use another key"
            }
            Throttled => "429: nothing to do; the company's calls wait at least the `Retry-After`",
            ApiUnavailable => "Console Connect answered 5xx: nothing to do; retried",
            ApiUnreachable => "no answer (network, DNS, timeout): check egress to `apiBaseUrl`",
            UnexpectedResponse => {
                "an answer the operator cannot read (or a 404 on a list): report it with the \
                 message; nothing is ordered on it"
            }
            RequestRejected => {
                "a read, search or disconnect was refused (400): retried, since only a refused \
                 order waits for a spec change"
            }
            Conflict => "the resource changed while being reconciled: nothing to do",
            KubernetesApiError => {
                "a status, finalizer or Secret-guard write failed: check the operator's RBAC and \
                 the API server"
            }
            Disconnecting => {
                "the connection is being disconnected: one DELETE, then `DELETING` is waited out"
            }
            ConfirmingDisconnect => {
                "no connection recorded: the order is looked up by name before the resource is \
                 let go"
            }
            Orphaned => {
                "an Event only: `deletionPolicy: Orphan` or `managementPolicy: Observe` left the \
                 connection running"
            }
            ChangeAwaitingApproval => {
                "on ChangePending: a speed increase waits for approval; the connection keeps \
                 carrying traffic at its current speed (Ready stays True); send Support what the \
                 message lists"
            }
            ChangeApplied => "on ChangePending: the requested speed is live",
            ChangeRejected => {
                "on ChangePending: the increase was rejected or approved at another speed; not \
                 asked again until the spec changes"
            }
            ChangeWithdrawn => {
                "on ChangePending: `spec.speedMbps` went back to the live speed, so the request \
                 was withdrawn"
            }
            ChangeDeferred => {
                "on ChangePending: the new speed is applied once the connection is `ACTIVE`"
            }
            NoChangePending => "on ChangePending: nothing waits for approval",
            ConnectionUpdated => {
                "an Event only: the update call lowered the speed or renamed the connection"
            }
            ChangeRefused => {
                "on Synced: Console Connect refused a change (its message is quoted); fix the \
                 spec; retried with backoff"
            }
            DriftDetected => {
                "on Drifted: speed or name was changed outside Kubernetes; the operator restores \
                 the spec (a raise through a change request), except under `Observe`"
            }
            NoDrift => "on Drifted: Console Connect matches the spec",
            ReconcilePaused => {
                "on Synced: the `fastconnect.dev/paused` annotation stops every Console Connect \
                 call, deletion included; remove it to resume"
            }
        }
    }
}

/// The README's table of reasons, generated from [`Reason`].
pub fn readme_table() -> String {
    use strum::IntoEnumIterator;
    let mut table = String::from(
        "| reason | phase | retried | what it means, what to do |\n|---|---|---|---|\n",
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
            [
                Reason::OrderRefused,
                Reason::NameTaken,
                Reason::OrderAmbiguous,
                Reason::ReconcilePaused
            ]
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

#[cfg(test)]
mod readme {
    /// The README's table is this module's, word for word; on failure the message holds the
    /// table to paste.
    #[test]
    fn the_readme_table_matches_the_reasons() {
        let readme = include_str!("../../README.md");
        let table = super::readme_table();
        assert!(
            readme.contains(&table),
            "README.md's table of reasons is stale; replace it with:\n\n{table}"
        );
    }
}
