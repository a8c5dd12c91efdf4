//! The decision of one reconcile, as pure functions of the resource, its status, the clock and
//! what Console Connect said: [`look`] says what to ask Console Connect, [`decide`] what to do
//! with the answer. No I/O here, and the clock is an input, so every branch is a unit test.

use jiff::{SignedDuration, Timestamp};

use crate::{
    consoleconnect::{Connection, ConnectionStatus},
    crd::FastConnectConnectionStatus,
};

use super::{
    change::{self, Plan, Wanted},
    reason::Reason,
};

/// How far before the order (or the resource's creation) a found connection may have been
/// created and still count as ours: clock skew between us and Console Connect.
pub const ORDER_CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(2);

/// The facts a decision rests on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub now: Timestamp,
    pub generation: Option<i64>,
    /// When the resource was created: no connection created earlier can be its order.
    pub created: Option<Timestamp>,
    pub deleting: bool,
    pub has_finalizer: bool,
    pub orphan: bool,
    /// `spec.connectionId`: a connection to adopt.
    pub adopt_id: Option<&'a str>,
    pub status: &'a FastConnectConnectionStatus,
    pub order: Expected<'a>,
    /// What the spec wants of the connection once it exists.
    pub wanted: Wanted<'a>,
    /// How long an order whose answer was lost is looked for before ordering again.
    pub settle: SignedDuration,
}

/// What an order of this resource looks like, to recognise it among the company's connections.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub name: &'a str,
    /// The source port id, when known (status, spec, or resolved from the port's name).
    pub port_id: Option<&'a str>,
    pub speed_mbps: u32,
    /// The speed last read from the recorded connection: a connection whose speed changed
    /// since the order still carries it.
    pub live_speed_mbps: Option<u32>,
    pub metro_id: Option<&'a str>,
}

/// What to ask Console Connect before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Look {
    /// Read this connection.
    pub id: Option<String>,
    /// Search every status for connections with the order's name.
    pub by_name: bool,
}

/// What Console Connect said.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The connection read by id: `Some(None)` when it is gone (404, DELETED, `deleted`).
    pub by_id: Option<Option<Connection>>,
    /// Connections carrying the order's name, from a search begun at `fetched_at`.
    pub named: Option<Named>,
}

#[derive(Debug, Clone)]
pub struct Named {
    pub connections: Vec<Connection>,
    pub fetched_at: Timestamp,
}

/// The one thing this reconcile does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Record the connection as observed; `None`: it no longer exists.
    Record(Option<Connection>),
    /// Take this connection as the resource's own (finalizer first, then its id in status).
    Adopt(Connection),
    /// Resolve port and metro, write the create marker, and order.
    Order,
    /// Nothing to call now.
    Wait,
    /// Ask Console Connect to disconnect this connection.
    Disconnect(Connection),
    /// Remove the finalizer: nothing is left to disconnect.
    Release,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub step: Step,
    pub reason: Reason,
    /// Ids of live connections that carry this order besides the recorded one: reported as
    /// [`Reason::DuplicateConnections`] while `reason` keeps telling the connection's story.
    pub duplicates: Vec<String>,
    /// The order was confirmed: exactly one live connection carries it.
    pub verified: bool,
    /// Changes after ordering, for a recorded connection.
    pub change: Option<Plan>,
}

impl Decision {
    fn new(step: Step, reason: Reason) -> Self {
        Decision {
            step,
            reason,
            duplicates: Vec::new(),
            verified: false,
            change: None,
        }
    }
}

/// What to ask Console Connect.
pub fn look(facts: &Facts) -> Look {
    let status = facts.status;
    if facts.deleting && (!facts.has_finalizer || lets_go(facts)) {
        return Look::default();
    }
    let id = status
        .connection_id
        .clone()
        .or_else(|| facts.adopt_id.map(str::to_owned));
    if let Some(id) = id {
        return Look {
            by_name: !facts.deleting && verification_due(facts),
            id: Some(id),
        };
    }
    if !facts.deleting && (refused_now(facts) || facts.wanted.observe) {
        return Look::default();
    }
    Look {
        id: None,
        by_name: status.ordered_at.is_some() || status_lost(facts.has_finalizer, status),
    }
}

/// Deleting the resource leaves the connection running.
fn lets_go(facts: &Facts) -> bool {
    facts.orphan || facts.wanted.observe
}

/// Our finalizer on a resource whose status is empty: the status was lost (a restore), and an
/// order placed before may exist. (A finalizer with a written status but no marker only
/// follows an order that certainly ordered nothing.)
pub fn status_lost(has_finalizer: bool, status: &FastConnectConnectionStatus) -> bool {
    has_finalizer
        && status.phase.is_none()
        && status.ordered_at.is_none()
        && status.connection_id.is_none()
}

/// An order we placed is checked once to be the only one of its name, by a search begun after
/// its settle window. It is due a second window later, so that one search serves every order
/// placed within a window of each other rather than one search per order.
fn verification_due(facts: &Facts) -> bool {
    let status = facts.status;
    status.verified_at.is_none()
        && status.connection_id.is_some()
        && ordered_at(status).is_some_and(|at| facts.now >= at + facts.settle + facts.settle)
}

fn refused_now(facts: &Facts) -> bool {
    facts.status.refused_generation.is_some() && facts.status.refused_generation == facts.generation
}

fn ordered_at(status: &FastConnectConnectionStatus) -> Option<Timestamp> {
    status.ordered_at.as_deref().and_then(|t| t.parse().ok())
}

/// What to do, given what Console Connect said in answer to [`look`].
pub fn decide(facts: &Facts, seen: &Observation) -> Decision {
    if facts.deleting {
        return decide_deletion(facts, seen);
    }
    if let Some(by_id) = &seen.by_id {
        return match (&facts.status.connection_id, by_id) {
            (Some(_), connection) => track(facts, connection.as_ref(), seen.named.as_ref()),
            // Observe-only takes nothing as its own: no finalizer, so nothing to let go.
            (None, Some(connection)) if facts.wanted.observe => {
                track(facts, Some(connection), None)
            }
            (None, Some(connection)) => {
                Decision::new(Step::Adopt(connection.clone()), remote_reason(connection))
            }
            (None, None) => Decision::new(Step::Wait, Reason::ConnectionNotFound),
        };
    }
    if facts.wanted.observe {
        // Admission requires connectionId with Observe; an object that bypassed it orders
        // nothing.
        return Decision::new(Step::Wait, Reason::ConnectionNotFound);
    }
    if refused_now(facts) {
        return Decision::new(Step::Wait, Reason::OrderRefused);
    }
    match &seen.named {
        Some(named) => recover_order(facts, named),
        None => Decision::new(Step::Order, Reason::Ordering),
    }
}

/// A recorded connection, as observed; with a name search, also the check for duplicates.
fn track(facts: &Facts, connection: Option<&Connection>, named: Option<&Named>) -> Decision {
    let Some(connection) = connection else {
        return Decision::new(Step::Record(None), Reason::DeletedOutOfBand);
    };
    // A connection observed, then managed, becomes ours: finalizer first.
    let step = if !facts.wanted.observe && !facts.has_finalizer {
        Step::Adopt(connection.clone())
    } else {
        Step::Record(Some(connection.clone()))
    };
    let mut decision = Decision::new(step, remote_reason(connection));
    if !connection.is_deleted() {
        decision.change = Some(change::plan(
            &facts.wanted,
            connection,
            facts.status,
            facts.now,
        ));
    }
    if let Some(named) = named {
        let ours = ours(facts, &named.connections);
        decision.duplicates = ours
            .iter()
            .filter(|c| c.id != connection.id)
            .map(|c| c.id.clone())
            .collect();
        decision.verified =
            decision.duplicates.is_empty() && ours.iter().any(|c| c.id == connection.id);
    }
    decision
}

/// No recorded connection, but an order may exist: adopt it, keep looking, or order.
fn recover_order(facts: &Facts, named: &Named) -> Decision {
    let live: Vec<&Connection> = named
        .connections
        .iter()
        .filter(|c| !c.is_deleted())
        .collect();
    let ours = ours(facts, &named.connections);
    if let Some((oldest, others)) = ours.split_first() {
        let mut decision = Decision::new(Step::Adopt((*oldest).clone()), remote_reason(oldest));
        decision.duplicates = others.iter().map(|c| c.id.clone()).collect();
        return decision;
    }
    if still_settling(facts, named) {
        return Decision::new(Step::Wait, Reason::ConfirmingOrder);
    }
    match live.len() {
        0 => Decision::new(Step::Order, Reason::Ordering),
        1 => Decision::new(Step::Wait, Reason::NameTaken),
        _ => Decision::new(Step::Wait, Reason::OrderAmbiguous),
    }
}

/// An order whose outcome is unknown may still be missing from the list: not before its
/// settle window has passed, and a search begun after it, is its absence believed.
fn still_settling(facts: &Facts, named: &Named) -> bool {
    let Some(ordered) = ordered_at(facts.status) else {
        return false;
    };
    let settled = ordered + facts.settle;
    facts.now < settled || named.fetched_at < settled
}

fn decide_deletion(facts: &Facts, seen: &Observation) -> Decision {
    if !facts.has_finalizer {
        return Decision::new(Step::Wait, Reason::Disconnecting);
    }
    if lets_go(facts) {
        return Decision::new(Step::Release, Reason::Orphaned);
    }
    if let Some(by_id) = &seen.by_id {
        return disconnect(facts, by_id.as_ref());
    }
    let Some(named) = &seen.named else {
        return Decision::new(Step::Release, Reason::Disconnecting);
    };
    if let Some(found) = ours(facts, &named.connections).first() {
        return disconnect(facts, Some(found));
    }
    if still_settling(facts, named) {
        return Decision::new(Step::Wait, Reason::ConfirmingDisconnect);
    }
    Decision::new(Step::Release, Reason::Disconnecting)
}

/// One DELETE per connection; DELETING is waited out, and a request that ends CANCELLED, or a
/// DENIED or ERROR connection after our DELETE, is as gone as it will get.
fn disconnect(facts: &Facts, connection: Option<&Connection>) -> Decision {
    use ConnectionStatus as S;
    let Some(connection) = connection.filter(|c| !c.is_deleted()) else {
        return Decision::new(Step::Release, Reason::Disconnecting);
    };
    let requested = facts.status.disconnect_requested_at.is_some()
        && facts.status.connection_id.as_deref() == Some(connection.id.as_str());
    match (&connection.status, requested) {
        (S::Cancelled, _) => Decision::new(Step::Release, Reason::Disconnecting),
        (S::Deleting, _) => Decision::new(Step::Wait, Reason::Disconnecting),
        (S::Denied | S::Error, true) => Decision::new(Step::Release, Reason::Disconnecting),
        (_, true) if !redo_due(facts) => Decision::new(Step::Wait, Reason::Disconnecting),
        _ => Decision::new(Step::Disconnect(connection.clone()), Reason::Disconnecting),
    }
}

/// A DELETE that was accepted but changed nothing for a whole settle window is sent once more.
fn redo_due(facts: &Facts) -> bool {
    facts
        .status
        .disconnect_requested_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_none_or(|at| facts.now >= at + facts.settle)
}

/// The live connections among `found` that are this resource's order, oldest first.
fn ours<'c>(facts: &Facts, found: &'c [Connection]) -> Vec<&'c Connection> {
    let mut ours: Vec<&Connection> = found
        .iter()
        .filter(|c| !c.is_deleted() && is_our_order(c, facts))
        .collect();
    ours.sort_by_key(|c| created_at(c));
    ours
}

/// Positive evidence only: the name, the source port, the speed, and a creation no earlier
/// than the order (or the resource) less clock skew must all be there and match; a field the
/// answer lacks is never a match. A destination metro, when both sides know it, must match.
pub fn is_our_order(connection: &Connection, facts: &Facts) -> bool {
    let order = &facts.order;
    let same_port = matches!(
        (connection.src_port_id.as_deref(), order.port_id),
        (Some(found), Some(ours)) if found == ours
    );
    let same_speed = connection.speed.as_ref().is_some_and(|s| {
        s.value == f64::from(order.speed_mbps)
            || order
                .live_speed_mbps
                .is_some_and(|live| s.value == f64::from(live))
    });
    let metro_agrees = match (connection.dest_metro_id.as_deref(), order.metro_id) {
        (Some(found), Some(ours)) => found == ours,
        _ => true,
    };
    let not_before = ordered_at(facts.status).or(facts.created);
    let recent = match (created_at(connection), not_before) {
        (Some(created), Some(bound)) => created >= bound - ORDER_CLOCK_SKEW,
        _ => false,
    };
    connection.name == order.name && same_port && same_speed && metro_agrees && recent
}

fn created_at(connection: &Connection) -> Option<Timestamp> {
    connection.created_at.as_deref()?.parse().ok()
}

/// The reason a connection's Console Connect status gives the resource.
pub fn remote_reason(connection: &Connection) -> Reason {
    use ConnectionStatus as S;
    if connection.is_deleted() {
        return Reason::DeletedOutOfBand;
    }
    match connection.status {
        S::Creating => Reason::Creating,
        S::Pending | S::PendingAcceptance => Reason::AwaitingApproval,
        S::Accepted | S::Activating | S::Manual => Reason::Provisioning,
        S::Active => Reason::Active,
        S::Denied => Reason::Denied,
        S::Cancelled => Reason::Cancelled,
        S::Disabling | S::Disabled => Reason::Disabled,
        S::Error => Reason::RemoteError,
        S::Deleting | S::Deleted => Reason::DeletedOutOfBand,
        S::Other(_) => Reason::UnknownRemoteStatus,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAME: &str = "net.hk";
    const PORT: &str = "p1";
    const T0: &str = "2026-01-01T12:00:00Z";

    fn at(offset_secs: i64) -> Timestamp {
        T0.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(offset_secs)
    }

    fn connection(id: &str, status: &str, created_offset: i64) -> Connection {
        serde_json::from_value(json!({
            "id": id, "name": NAME, "status": status, "srcPortId": PORT,
            "destMetroId": "m-hkg", "speed": {"value": 1000},
            "createdAt": at(created_offset).to_string(),
        }))
        .unwrap()
    }

    struct Case {
        status: FastConnectConnectionStatus,
        now: Timestamp,
        deleting: bool,
        has_finalizer: bool,
        orphan: bool,
        adopt_id: Option<&'static str>,
        generation: Option<i64>,
        observe: bool,
    }

    impl Case {
        fn new() -> Case {
            Case {
                status: FastConnectConnectionStatus::default(),
                now: at(0),
                deleting: false,
                has_finalizer: false,
                orphan: false,
                adopt_id: None,
                generation: Some(1),
                observe: false,
            }
        }

        fn ordered(mut self, offset: i64) -> Case {
            self.status.ordered_at = Some(at(offset).to_string());
            self.status.port_id = Some(PORT.into());
            self.has_finalizer = true;
            self
        }

        fn recorded(mut self, id: &str) -> Case {
            self.status.connection_id = Some(id.into());
            self.has_finalizer = true;
            self
        }

        fn now(mut self, offset: i64) -> Case {
            self.now = at(offset);
            self
        }

        fn deleting(mut self) -> Case {
            self.deleting = true;
            self
        }

        fn facts(&self) -> Facts<'_> {
            Facts {
                now: self.now,
                generation: self.generation,
                created: Some(at(-3600)),
                deleting: self.deleting,
                has_finalizer: self.has_finalizer,
                orphan: self.orphan,
                adopt_id: self.adopt_id,
                status: &self.status,
                order: Expected {
                    name: NAME,
                    port_id: Some(PORT),
                    speed_mbps: 1000,
                    live_speed_mbps: None,
                    metro_id: Some("m-hkg"),
                },
                wanted: Wanted {
                    speed_mbps: 1000,
                    name: NAME,
                    observe: self.observe,
                    generation: self.generation,
                },
                settle: SignedDuration::from_mins(5),
            }
        }

        fn decide(&self, seen: Observation) -> Decision {
            decide(&self.facts(), &seen)
        }
    }

    fn by_name(connections: Vec<Connection>, fetched_offset: i64) -> Observation {
        Observation {
            by_id: None,
            named: Some(Named {
                connections,
                fetched_at: at(fetched_offset),
            }),
        }
    }

    fn by_id(connection: Option<Connection>) -> Observation {
        Observation {
            by_id: Some(connection),
            named: None,
        }
    }

    #[test]
    fn a_new_resource_orders_without_looking() {
        let case = Case::new();
        assert_eq!(look(&case.facts()), Look::default());
        let decision = case.decide(Observation::default());
        assert_eq!(decision.step, Step::Order);
        assert_eq!(decision.reason, Reason::Ordering);
    }

    #[test]
    fn a_marker_without_a_connection_looks_by_name() {
        let case = Case::new().ordered(0).now(10);
        assert_eq!(
            look(&case.facts()),
            Look {
                id: None,
                by_name: true
            }
        );
    }

    #[test]
    fn a_lost_answer_is_never_reordered_within_the_settle_window() {
        let case = Case::new().ordered(0).now(299);
        let decision = case.decide(by_name(vec![], 299));
        assert_eq!(
            (decision.step, decision.reason),
            (Step::Wait, Reason::ConfirmingOrder)
        );
    }

    #[test]
    fn an_old_search_does_not_prove_absence_after_the_window() {
        let case = Case::new().ordered(0).now(400);
        let decision = case.decide(by_name(vec![], 250));
        assert_eq!(decision.reason, Reason::ConfirmingOrder);
        let decision = case.decide(by_name(vec![], 300));
        assert_eq!(
            (decision.step, decision.reason),
            (Step::Order, Reason::Ordering)
        );
    }

    #[test]
    fn a_found_order_is_adopted_at_once() {
        let case = Case::new().ordered(0).now(20);
        let found = connection("c1", "PENDING", 5);
        let decision = case.decide(by_name(vec![found.clone()], 20));
        assert_eq!(decision.step, Step::Adopt(found));
        assert_eq!(decision.reason, Reason::AwaitingApproval);
    }

    #[test]
    fn two_matching_orders_adopt_the_oldest_and_say_so() {
        let case = Case::new().ordered(0).now(20);
        let older = connection("c1", "PENDING", 5);
        let newer = connection("c2", "CREATING", 9);
        let decision = case.decide(by_name(vec![newer, older.clone()], 20));
        assert_eq!(decision.step, Step::Adopt(older));
        assert_eq!(decision.reason, Reason::AwaitingApproval);
        assert_eq!(decision.duplicates, vec!["c2".to_string()]);
    }

    #[test]
    fn a_namesake_that_is_not_ours_is_never_adopted() {
        let case = Case::new().ordered(0).now(400);
        let mut other_port = connection("x", "ACTIVE", 5);
        other_port.src_port_id = Some("p9".into());
        let mut no_port = connection("y", "ACTIVE", 5);
        no_port.src_port_id = None;
        let mut other_speed = connection("z", "ACTIVE", 5);
        other_speed.speed = None;
        for namesake in [other_port, no_port, other_speed] {
            let decision = case.decide(by_name(vec![namesake], 400));
            assert_eq!(
                (decision.step, decision.reason),
                (Step::Wait, Reason::NameTaken)
            );
        }
        let two = vec![
            connection("a", "ACTIVE", -9000),
            connection("b", "ACTIVE", -9000),
        ];
        assert_eq!(
            case.decide(by_name(two, 400)).reason,
            Reason::OrderAmbiguous
        );
    }

    #[test]
    fn clock_skew_edge_of_order_matching() {
        let case = Case::new().ordered(0).now(30);
        let skew = ORDER_CLOCK_SKEW.as_secs();
        let just_inside = connection("in", "CREATING", -skew);
        let just_outside = connection("out", "CREATING", -skew - 1);
        assert!(is_our_order(&just_inside, &case.facts()));
        assert!(!is_our_order(&just_outside, &case.facts()));
        let mut undated = connection("undated", "CREATING", 0);
        undated.created_at = None;
        assert!(!is_our_order(&undated, &case.facts()));
    }

    #[test]
    fn a_finalizer_with_a_written_status_but_no_marker_orders_without_looking() {
        // An order that certainly ordered nothing (429, 401) cleared the marker.
        let mut case = Case::new();
        case.has_finalizer = true;
        case.status.phase = Some(crate::crd::Phase::Resolving);
        assert_eq!(look(&case.facts()), Look::default());
        assert_eq!(case.decide(Observation::default()).step, Step::Order);
    }

    #[test]
    fn without_a_marker_the_resource_creation_bounds_the_match() {
        // Status wiped (a restore): finalizer, no marker, no id.
        let mut case = Case::new();
        case.has_finalizer = true;
        assert!(status_lost(case.has_finalizer, &case.status));
        assert!(look(&case.facts()).by_name);
        let found = connection("c1", "ACTIVE", -1800);
        assert_eq!(
            case.decide(by_name(vec![found.clone()], 0)).step,
            Step::Adopt(found)
        );
        let before_resource = connection("c0", "ACTIVE", -3600 - ORDER_CLOCK_SKEW.as_secs() - 1);
        assert_eq!(
            case.decide(by_name(vec![before_resource], 0)).reason,
            Reason::NameTaken
        );
        assert_eq!(case.decide(by_name(vec![], 0)).step, Step::Order);
    }

    #[test]
    fn a_refusal_holds_until_the_generation_changes() {
        let mut case = Case::new();
        case.status.refused_generation = Some(1);
        case.status.phase = Some(crate::crd::Phase::Failed);
        case.has_finalizer = true;
        assert_eq!(look(&case.facts()), Look::default());
        assert_eq!(
            case.decide(Observation::default()).reason,
            Reason::OrderRefused
        );
        case.generation = Some(2);
        assert_eq!(look(&case.facts()), Look::default());
        assert_eq!(case.decide(Observation::default()).step, Step::Order);
    }

    #[test]
    fn a_recorded_connection_is_tracked_by_id() {
        let case = Case::new().recorded("c1").now(10);
        assert_eq!(
            look(&case.facts()),
            Look {
                id: Some("c1".into()),
                by_name: false
            }
        );
        let active = connection("c1", "ACTIVE", 0);
        let decision = case.decide(by_id(Some(active.clone())));
        assert_eq!(decision.step, Step::Record(Some(active)));
        assert_eq!(decision.reason, Reason::Active);
        let gone = case.decide(by_id(None));
        assert_eq!(
            (gone.step, gone.reason),
            (Step::Record(None), Reason::DeletedOutOfBand)
        );
    }

    #[test]
    fn every_remote_status_has_its_reason() {
        let cases = [
            ("CREATING", Reason::Creating),
            ("PENDING", Reason::AwaitingApproval),
            ("PENDING ACCEPTANCE", Reason::AwaitingApproval),
            ("PENDING_ACCEPTANCE", Reason::AwaitingApproval),
            ("ACCEPTED", Reason::Provisioning),
            ("ACTIVATING", Reason::Provisioning),
            ("MANUAL", Reason::Provisioning),
            ("ACTIVE", Reason::Active),
            ("DENIED", Reason::Denied),
            ("CANCELLED", Reason::Cancelled),
            ("DISABLING", Reason::Disabled),
            ("DISABLED", Reason::Disabled),
            ("ERROR", Reason::RemoteError),
            ("DELETING", Reason::DeletedOutOfBand),
            ("DELETED", Reason::DeletedOutOfBand),
            ("SOMETHING_NEW", Reason::UnknownRemoteStatus),
        ];
        for (raw, reason) in cases {
            assert_eq!(remote_reason(&connection("c", raw, 0)), reason, "{raw}");
        }
        let mut flagged = connection("c", "ACTIVE", 0);
        flagged.deleted = true;
        assert_eq!(remote_reason(&flagged), Reason::DeletedOutOfBand);
    }

    #[test]
    fn an_order_is_verified_once_after_its_window() {
        let case = Case::new().ordered(0).recorded("c1").now(599);
        assert!(!look(&case.facts()).by_name);
        let case = Case::new().ordered(0).recorded("c1").now(600);
        assert!(look(&case.facts()).by_name);
        let ours = connection("c1", "ACTIVE", 1);
        let seen = Observation {
            by_id: Some(Some(ours.clone())),
            named: Some(Named {
                connections: vec![ours.clone()],
                fetched_at: at(300),
            }),
        };
        let decision = case.decide(seen);
        assert!(decision.verified);
        assert_eq!(decision.reason, Reason::Active);
        let twin = connection("c2", "ACTIVE", 2);
        let seen = Observation {
            by_id: Some(Some(ours.clone())),
            named: Some(Named {
                connections: vec![ours, twin],
                fetched_at: at(300),
            }),
        };
        let decision = case.decide(seen);
        assert!(!decision.verified);
        assert_eq!(decision.reason, Reason::Active);
        assert_eq!(decision.duplicates, vec!["c2".to_string()]);
        let mut verified = Case::new().ordered(0).recorded("c1").now(900);
        verified.status.verified_at = Some(at(301).to_string());
        assert!(!look(&verified.facts()).by_name);
    }

    #[test]
    fn adoption_by_spec_id() {
        let mut case = Case::new();
        case.adopt_id = Some("c9");
        assert_eq!(look(&case.facts()).id.as_deref(), Some("c9"));
        let found = connection("c9", "ACTIVE", -99999);
        assert_eq!(
            case.decide(by_id(Some(found.clone()))).step,
            Step::Adopt(found)
        );
        assert_eq!(case.decide(by_id(None)).reason, Reason::ConnectionNotFound);
    }

    #[test]
    fn deletion_without_finalizer_or_with_orphan_calls_nothing() {
        let mut case = Case::new().deleting();
        case.has_finalizer = false;
        assert_eq!(look(&case.facts()), Look::default());
        let mut orphan = Case::new().recorded("c1").deleting();
        orphan.orphan = true;
        assert_eq!(look(&orphan.facts()), Look::default());
        assert_eq!(orphan.decide(Observation::default()).step, Step::Release);
    }

    #[test]
    fn deletion_sends_one_delete_and_waits_out_deleting() {
        let case = Case::new().recorded("c1").deleting();
        let active = connection("c1", "ACTIVE", 0);
        assert_eq!(
            case.decide(by_id(Some(active.clone()))).step,
            Step::Disconnect(active.clone())
        );
        let mut requested = Case::new().recorded("c1").deleting().now(10);
        requested.status.disconnect_requested_at = Some(at(0).to_string());
        assert_eq!(
            requested.decide(by_id(Some(active.clone()))).step,
            Step::Wait
        );
        let deleting = connection("c1", "DELETING", 0);
        assert_eq!(case.decide(by_id(Some(deleting))).step, Step::Wait);
        // Still ACTIVE a whole window after the DELETE: one more.
        requested.now = at(300);
        assert_eq!(
            requested.decide(by_id(Some(active))).step,
            Step::Disconnect(connection("c1", "ACTIVE", 0))
        );
    }

    #[test]
    fn gone_cancelled_and_deleted_release_and_denied_is_deleted_once() {
        let case = Case::new().recorded("c1").deleting();
        for gone in [
            None,
            Some(connection("c1", "CANCELLED", 0)),
            Some(connection("c1", "DELETED", 0)),
        ] {
            assert_eq!(case.decide(by_id(gone)).step, Step::Release);
        }
        let denied = connection("c1", "DENIED", 0);
        assert_eq!(
            case.decide(by_id(Some(denied.clone()))).step,
            Step::Disconnect(denied.clone())
        );
        let mut requested = Case::new().recorded("c1").deleting();
        requested.status.disconnect_requested_at = Some(at(0).to_string());
        assert_eq!(requested.decide(by_id(Some(denied))).step, Step::Release);
        assert_eq!(
            requested
                .decide(by_id(Some(connection("c1", "ERROR", 0))))
                .step,
            Step::Release
        );
    }

    #[test]
    fn deletion_without_a_recorded_connection_looks_for_the_order_first() {
        let case = Case::new().ordered(0).deleting().now(20);
        assert!(look(&case.facts()).by_name);
        let found = connection("c1", "PENDING", 3);
        assert_eq!(
            case.decide(by_name(vec![found.clone()], 20)).step,
            Step::Disconnect(found)
        );
        assert_eq!(
            case.decide(by_name(vec![], 20)).reason,
            Reason::ConfirmingDisconnect
        );
        let settled = Case::new().ordered(0).deleting().now(301);
        assert_eq!(settled.decide(by_name(vec![], 301)).step, Step::Release);
        // Status wiped: nothing bounds the search in time but the resource's creation.
        let mut wiped = Case::new().deleting();
        wiped.has_finalizer = true;
        let found = connection("c1", "ACTIVE", -60);
        assert_eq!(
            wiped.decide(by_name(vec![found.clone()], 0)).step,
            Step::Disconnect(found)
        );
    }

    #[test]
    fn observe_only_reads_by_id_and_never_orders_adopts_or_disconnects() {
        let mut case = Case::new();
        case.observe = true;
        case.adopt_id = Some("c9");
        assert_eq!(look(&case.facts()).id.as_deref(), Some("c9"));
        let found = connection("c9", "ACTIVE", -99999);
        let decision = case.decide(by_id(Some(found.clone())));
        assert_eq!(decision.step, Step::Record(Some(found.clone())));
        assert!(decision.change.is_some_and(|plan| plan.call.is_none()));
        // Without an id nothing is looked up and nothing ordered.
        case.adopt_id = None;
        assert_eq!(look(&case.facts()), Look::default());
        assert_eq!(case.decide(Observation::default()).step, Step::Wait);
        // Deletion calls nothing and lets go.
        let mut deleting = Case::new().recorded("c9").deleting();
        deleting.observe = true;
        assert_eq!(look(&deleting.facts()), Look::default());
        assert_eq!(deleting.decide(Observation::default()).step, Step::Release);
    }

    #[test]
    fn a_connection_observed_then_managed_is_adopted() {
        let mut case = Case::new().recorded("c9");
        case.has_finalizer = false;
        let found = connection("c9", "ACTIVE", 0);
        assert_eq!(
            case.decide(by_id(Some(found.clone()))).step,
            Step::Adopt(found)
        );
    }

    #[test]
    fn a_lowered_connection_is_still_recognised_as_our_order() {
        let mut case = Case::new().ordered(0).now(20);
        let mut lowered = connection("c1", "ACTIVE", 5);
        lowered.speed = Some(crate::consoleconnect::Speed {
            value: 500.0,
            name: None,
        });
        assert!(!is_our_order(&lowered, &case.facts()));
        case.status.speed_mbps = Some(500);
        let mut facts = case.facts();
        facts.order.live_speed_mbps = case.status.speed_mbps;
        assert!(is_our_order(&lowered, &facts));
    }
}
