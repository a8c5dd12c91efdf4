//! Changes after ordering, as a pure decision: given the spec, the live connection and what the
//! status remembers, what to call (update, change request, withdraw), what `pendingChange`
//! becomes, and what the `ChangePending` and `Drifted` conditions say.
//!
//! Console Connect's rules: towards another company the update call may only lower the speed
//! (and rename); a raise is a change request that waits for the other party's approval. A
//! connection has one change request at a time and asking again moves it, so a repeated request
//! never opens a second one; still, a request whose answer was lost is looked for (a fresh read
//! of the connection) before it is sent again.

use jiff::Timestamp;

use crate::{
    consoleconnect::{Connection, ConnectionStatus, ConnectionUpdate},
    crd::{ChangeState, FastConnectConnectionStatus, PendingChange},
};

use super::{reason::Reason, status};

/// What the spec wants of a recorded connection.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub speed_mbps: u32,
    pub name: &'a str,
    /// `managementPolicy: Observe`: report, never call.
    pub observe: bool,
    pub generation: Option<i64>,
}

/// The one day-2 call of this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Lower the speed and/or rename.
    Update(ConnectionUpdate),
    /// Open or move the change request to this speed.
    Request(u32),
    /// Withdraw the open change request.
    Withdraw,
}

/// What the `ChangePending` condition says.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeNews {
    /// Nothing to say; the condition keeps what it said.
    Unchanged,
    AwaitingApproval {
        speed_mbps: u32,
    },
    Applied {
        speed_mbps: u32,
    },
    Rejected {
        change: PendingChange,
    },
    Withdrawn,
    Deferred {
        speed_mbps: u32,
    },
    NothingPending,
}

impl ChangeNews {
    pub fn reason(&self) -> Option<Reason> {
        Some(match self {
            ChangeNews::Unchanged => return None,
            ChangeNews::AwaitingApproval { .. } => Reason::ChangeAwaitingApproval,
            ChangeNews::Applied { .. } => Reason::ChangeApplied,
            ChangeNews::Rejected { .. } => Reason::ChangeRejected,
            ChangeNews::Withdrawn => Reason::ChangeWithdrawn,
            ChangeNews::Deferred { .. } => Reason::ChangeDeferred,
            ChangeNews::NothingPending => Reason::NoChangePending,
        })
    }
}

/// What differs from the spec because of a change made outside Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Drift {
    /// The live speed, when it differs.
    pub speed_mbps: Option<u32>,
    /// The live name, when it differs.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub call: Option<Call>,
    /// `status.pendingChange` once the call (if any) has succeeded.
    pub pending: Option<PendingChange>,
    pub news: ChangeNews,
    /// `Some`: Drifted is True with this; `None`: False.
    pub drift: Option<Drift>,
}

/// The day-2 plan for a recorded, live connection.
pub fn plan(
    wanted: &Wanted,
    live: &Connection,
    status: &FastConnectConnectionStatus,
    now: Timestamp,
) -> Plan {
    let drift = drift(wanted, live, status);
    if wanted.observe {
        let news = match live.open_change().and_then(|r| r.speed_mbps()) {
            Some(speed_mbps) => ChangeNews::AwaitingApproval { speed_mbps },
            None => ChangeNews::NothingPending,
        };
        return Plan {
            call: None,
            pending: None,
            news,
            drift,
        };
    }
    let mut plan = match live.speed_mbps() {
        Some(live_speed) if live.status == ConnectionStatus::Active => {
            speed_plan(wanted, live, live_speed, status, now)
        }
        Some(live_speed) if live_speed != wanted.speed_mbps => Plan {
            call: None,
            pending: status.pending_change.clone(),
            news: ChangeNews::Deferred {
                speed_mbps: wanted.speed_mbps,
            },
            drift: None,
        },
        _ => Plan {
            call: None,
            pending: status.pending_change.clone(),
            news: ChangeNews::Unchanged,
            drift: None,
        },
    };
    plan.drift = drift;
    if let Some(name) = rename(wanted, live) {
        plan.call = match plan.call {
            None => Some(Call::Update(ConnectionUpdate {
                speed: None,
                name: Some(name),
            })),
            Some(Call::Update(update)) => Some(Call::Update(ConnectionUpdate {
                name: Some(name),
                ..update
            })),
            // One call per reconcile: the rename follows on the next.
            other => other,
        };
    }
    plan
}

/// The new name, when the live one differs from the spec's (renames work in any live status).
fn rename(wanted: &Wanted, live: &Connection) -> Option<String> {
    (!live.name.is_empty() && live.name != wanted.name && !live.is_deleted())
        .then(|| wanted.name.to_owned())
}

fn speed_plan(
    wanted: &Wanted,
    live: &Connection,
    live_speed: u32,
    status: &FastConnectConnectionStatus,
    now: Timestamp,
) -> Plan {
    let target = wanted.speed_mbps;
    let ours = status.pending_change.as_ref();
    let plan = |call, pending, news| Plan {
        call,
        pending,
        news,
        drift: None,
    };
    let requesting = || {
        plan(
            Some(Call::Request(target)),
            Some(PendingChange {
                speed_mbps: target,
                requested_at: now.to_string(),
                state: ChangeState::Requesting,
                request_status: None,
                generation: wanted.generation,
            }),
            ChangeNews::AwaitingApproval { speed_mbps: target },
        )
    };
    if let Some(open) = live.open_change() {
        return match open.speed_mbps() {
            Some(asked) if asked == target => plan(
                None,
                Some(PendingChange {
                    speed_mbps: asked,
                    requested_at: ours.map_or_else(|| now.to_string(), |p| p.requested_at.clone()),
                    state: ChangeState::Pending,
                    request_status: open.status.clone(),
                    generation: ours.and_then(|p| p.generation).or(wanted.generation),
                }),
                ChangeNews::AwaitingApproval { speed_mbps: asked },
            ),
            // Back to the live speed, or below it (lowered once the request is gone).
            _ if target <= live_speed => plan(Some(Call::Withdraw), None, ChangeNews::Withdrawn),
            _ => requesting(),
        };
    }
    match ours {
        Some(p) if p.state != ChangeState::Rejected && p.speed_mbps == live_speed => plan(
            None,
            None,
            ChangeNews::Applied {
                speed_mbps: live_speed,
            },
        ),
        _ if target == live_speed => plan(None, None, ChangeNews::NothingPending),
        Some(p) if p.state == ChangeState::Rejected && p.generation == wanted.generation => plan(
            None,
            Some(p.clone()),
            ChangeNews::Rejected { change: p.clone() },
        ),
        // We saw it pending; now nothing is open and the live speed is not the one asked for.
        Some(p) if p.state == ChangeState::Pending && p.speed_mbps == target => {
            let ended = PendingChange {
                state: ChangeState::Rejected,
                request_status: live
                    .request
                    .as_ref()
                    .and_then(|r| r.status.clone())
                    .or_else(|| p.request_status.clone()),
                generation: wanted.generation,
                ..p.clone()
            };
            plan(
                None,
                Some(ended.clone()),
                ChangeNews::Rejected { change: ended },
            )
        }
        _ if target < live_speed => plan(
            Some(Call::Update(ConnectionUpdate {
                speed: Some(target),
                name: None,
            })),
            None,
            ChangeNews::NothingPending,
        ),
        _ => requesting(),
    }
}

/// Speed or name differ from the spec, and not because the spec changed: they matched at the
/// last look at this generation, or Drifted already said so.
fn drift(
    wanted: &Wanted,
    live: &Connection,
    status: &FastConnectConnectionStatus,
) -> Option<Drift> {
    let speed = live
        .speed_mbps()
        .filter(|&live_speed| live_speed != wanted.speed_mbps);
    let name = rename(wanted, live).map(|_| live.name.clone());
    if speed.is_none() && name.is_none() {
        return None;
    }
    if wanted.observe {
        return Some(Drift {
            speed_mbps: speed,
            name,
        });
    }
    let already = status
        .conditions
        .iter()
        .any(|c| c.type_ == status::DRIFTED && c.status == "True");
    let same_spec =
        status.observed_generation.is_some() && status.observed_generation == wanted.generation;
    let speed_was_synced =
        speed.is_some() && status.speed_mbps == Some(wanted.speed_mbps) && !ours_open(status);
    let name_was_synced = name.is_some() && status.connection_name.as_deref() == Some(wanted.name);
    (already || (same_spec && (speed_was_synced || name_was_synced))).then_some(Drift {
        speed_mbps: speed,
        name,
    })
}

fn ours_open(status: &FastConnectConnectionStatus) -> bool {
    status
        .pending_change
        .as_ref()
        .is_some_and(|p| p.state != ChangeState::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use serde_json::json;

    const NAME: &str = "net.hk";

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    fn live(status: &str, speed: u32, request: serde_json::Value) -> Connection {
        serde_json::from_value(json!({
            "id": "c1", "name": NAME, "status": status, "speed": {"value": speed},
            "request": request,
        }))
        .unwrap()
    }

    fn active(speed: u32) -> Connection {
        live("ACTIVE", speed, json!(null))
    }

    fn open(speed: u32, asked: u32) -> Connection {
        live(
            "ACTIVE",
            speed,
            json!({"status": "PENDING", "speed": asked}),
        )
    }

    fn wanted(speed_mbps: u32) -> Wanted<'static> {
        Wanted {
            speed_mbps,
            name: NAME,
            observe: false,
            generation: Some(2),
        }
    }

    /// A status that was in sync at 1000 Mbps under generation 2.
    fn synced() -> FastConnectConnectionStatus {
        FastConnectConnectionStatus {
            connection_id: Some("c1".into()),
            connection_name: Some(NAME.into()),
            speed_mbps: Some(1000),
            observed_generation: Some(2),
            ..Default::default()
        }
    }

    fn pending(speed: u32, state: ChangeState, generation: i64) -> PendingChange {
        PendingChange {
            speed_mbps: speed,
            requested_at: now().to_string(),
            state,
            request_status: None,
            generation: Some(generation),
        }
    }

    fn with(
        mut status: FastConnectConnectionStatus,
        change: PendingChange,
    ) -> FastConnectConnectionStatus {
        status.pending_change = Some(change);
        status.observed_generation = Some(3);
        status
    }

    #[test]
    fn in_sync_calls_nothing() {
        let plan = plan(&wanted(1000), &active(1000), &synced(), now());
        assert_eq!(plan.call, None);
        assert_eq!(plan.pending, None);
        assert_eq!(plan.news, ChangeNews::NothingPending);
        assert_eq!(plan.drift, None);
    }

    #[test]
    fn a_raise_opens_a_change_request_behind_a_marker() {
        let mut status = synced();
        status.observed_generation = Some(1);
        let plan = plan(&wanted(2000), &active(1000), &status, now());
        assert_eq!(plan.call, Some(Call::Request(2000)));
        let marker = plan.pending.unwrap();
        assert_eq!(
            (marker.speed_mbps, marker.state),
            (2000, ChangeState::Requesting)
        );
        assert_eq!(plan.news, ChangeNews::AwaitingApproval { speed_mbps: 2000 });
        assert_eq!(plan.drift, None, "the user changed the spec: not drift");
    }

    #[test]
    fn an_open_request_for_the_wanted_speed_is_waited_for_not_asked_again() {
        // After a crash the marker says Requesting; the fresh read shows the request.
        let status = with(synced(), pending(2000, ChangeState::Requesting, 2));
        let plan = plan(&wanted(2000), &open(1000, 2000), &status, now());
        assert_eq!(plan.call, None);
        let pending = plan.pending.unwrap();
        assert_eq!(
            (pending.speed_mbps, pending.state),
            (2000, ChangeState::Pending)
        );
        assert_eq!(pending.requested_at, now().to_string());
        assert_eq!(pending.request_status.as_deref(), Some("PENDING"));
    }

    #[test]
    fn a_marker_without_a_request_asks_again() {
        let status = with(synced(), pending(2000, ChangeState::Requesting, 2));
        let plan = plan(&wanted(2000), &active(1000), &status, now());
        assert_eq!(plan.call, Some(Call::Request(2000)));
    }

    #[test]
    fn reverting_the_spec_withdraws_and_a_new_raise_moves_the_request() {
        let status = with(synced(), pending(2000, ChangeState::Pending, 2));
        let back = plan(&wanted(1000), &open(1000, 2000), &status, now());
        assert_eq!((back.call, back.pending), (Some(Call::Withdraw), None));
        assert_eq!(back.news, ChangeNews::Withdrawn);
        let below = plan(&wanted(500), &open(1000, 2000), &status, now());
        assert_eq!(below.call, Some(Call::Withdraw));
        let higher = plan(&wanted(3000), &open(1000, 2000), &status, now());
        assert_eq!(higher.call, Some(Call::Request(3000)));
    }

    #[test]
    fn approval_is_seen_as_the_live_speed() {
        let status = with(synced(), pending(2000, ChangeState::Pending, 2));
        let plan = plan(&wanted(2000), &active(2000), &status, now());
        assert_eq!((plan.call, plan.pending), (None, None));
        assert_eq!(plan.news, ChangeNews::Applied { speed_mbps: 2000 });
    }

    #[test]
    fn a_request_that_ends_unapplied_is_rejected_until_the_spec_changes() {
        let status = with(synced(), pending(2000, ChangeState::Pending, 2));
        let rejected = live("ACTIVE", 1000, json!({"status": "REJECTED", "speed": 2000}));
        let first = plan(&wanted(2000), &rejected, &status, now());
        assert_eq!(first.call, None);
        let held = first.pending.clone().unwrap();
        assert_eq!(held.state, ChangeState::Rejected);
        assert_eq!(held.request_status.as_deref(), Some("REJECTED"));
        assert!(matches!(first.news, ChangeNews::Rejected { .. }));
        // The next look, same generation: still nothing asked.
        let status = with(synced(), held);
        let again = plan(&wanted(2000), &rejected, &status, now());
        assert_eq!(again.call, None);
        // A new generation asks again.
        let changed = Wanted {
            generation: Some(3),
            ..wanted(2000)
        };
        assert_eq!(
            plan(&changed, &rejected, &status, now()).call,
            Some(Call::Request(2000))
        );
        // Going back to the live speed clears it.
        assert_eq!(plan(&wanted(1000), &rejected, &status, now()).pending, None);
    }

    #[test]
    fn a_decrease_and_a_rename_go_through_one_update() {
        let mut renamed = wanted(500);
        renamed.name = "net.new";
        let plan = plan(&renamed, &active(1000), &synced(), now());
        assert_eq!(
            plan.call,
            Some(Call::Update(ConnectionUpdate {
                speed: Some(500),
                name: Some("net.new".into())
            }))
        );
    }

    #[test]
    fn nothing_changes_before_the_connection_is_active() {
        let plan = plan(
            &wanted(2000),
            &live("PENDING", 1000, json!(null)),
            &synced(),
            now(),
        );
        assert_eq!(plan.call, None);
        assert_eq!(plan.news, ChangeNews::Deferred { speed_mbps: 2000 });
    }

    #[test]
    fn a_change_made_elsewhere_is_drift_and_is_restored() {
        // In sync at 1000 under this generation; now 500 live.
        let plan = plan(&wanted(1000), &active(500), &synced(), now());
        assert_eq!(
            plan.drift,
            Some(Drift {
                speed_mbps: Some(500),
                name: None
            })
        );
        assert_eq!(plan.call, Some(Call::Request(1000)));
        let mut renamed = active(1000);
        renamed.name = "portal-name".into();
        let plan = super::plan(&wanted(1000), &renamed, &synced(), now());
        assert_eq!(plan.drift.unwrap().name.as_deref(), Some("portal-name"));
        assert!(matches!(
            plan.call,
            Some(Call::Update(ConnectionUpdate { name: Some(_), .. }))
        ));
    }

    #[test]
    fn drift_stays_reported_until_restored() {
        let mut status = synced();
        status.speed_mbps = Some(500);
        status.conditions.push(Condition {
            type_: status::DRIFTED.into(),
            status: "True".into(),
            reason: "DriftDetected".into(),
            message: String::new(),
            observed_generation: Some(2),
            last_transition_time: Time(now()),
        });
        let status = with(status, pending(1000, ChangeState::Pending, 2));
        assert!(
            plan(&wanted(1000), &open(500, 1000), &status, now())
                .drift
                .is_some()
        );
        assert!(
            plan(&wanted(1000), &active(1000), &status, now())
                .drift
                .is_none()
        );
    }

    #[test]
    fn observe_only_reports_and_never_calls() {
        let observe = Wanted {
            observe: true,
            ..wanted(2000)
        };
        let plan = plan(&observe, &open(1000, 1500), &synced(), now());
        assert_eq!((plan.call, plan.pending), (None, None));
        assert_eq!(plan.news, ChangeNews::AwaitingApproval { speed_mbps: 1500 });
        assert_eq!(plan.drift.unwrap().speed_mbps, Some(1000));
    }
}
