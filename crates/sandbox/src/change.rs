//! Day-2 changes of a connection: the rules Console Connect's spec gives for changing its speed
//! (only ever reduced directly, raised through a change request the other party approves), and
//! change requests themselves.
//!
//! A change request's automatic approval is computed when read, like connection statuses: from
//! when it was made and the approval delay in force then, so it costs no timer.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::state::{ORACLE_COMPANY_ID, after, timestamp};

/// Where a change request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeStatus {
    /// Waiting for the other party.
    Pending,
    /// Approved by the other party: the requested speed is in force (the status name is ours;
    /// the spec does not say what an approved request shows).
    Approved,
    /// Refused by the other party.
    Rejected,
    /// Taken back by the company that proposed it.
    Withdrawn,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Pending => "PENDING",
            ChangeStatus::Approved => "APPROVED",
            ChangeStatus::Rejected => "REJECTED",
            ChangeStatus::Withdrawn => "WITHDRAWN",
        }
    }
}

/// A speed increase the company asked for; Oracle, the other party, approves or rejects it.
/// The last one is kept after it ends, so the connection keeps showing how it ended.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    /// Mbps asked for.
    pub speed: u64,
    /// The requesting company's id: making the request approves it on that side.
    pub src_approval: String,
    /// When it was made; an automatic approval counts from here, also after a speed update.
    pub made_at: Timestamp,
    /// When it was made or its speed last changed.
    pub updated_at: Timestamp,
    /// Approved automatically this long after `made_at`; `None`: only an admin approves.
    pub approval: Option<Duration>,
    /// How a call ended it. An automatic approval is computed, not stored, until a change to the
    /// connection settles it.
    pub ended: Option<(ChangeStatus, Timestamp)>,
}

impl ChangeRequest {
    pub fn new(
        speed: u64,
        src_approval: String,
        now: Timestamp,
        approval: Option<Duration>,
    ) -> ChangeRequest {
        ChangeRequest {
            speed,
            src_approval,
            made_at: now,
            updated_at: now,
            approval,
            ended: None,
        }
    }

    /// When the automatic approval took effect, if it has by `now` and no call ended the
    /// request first.
    pub fn auto_approved_at(&self, now: Timestamp) -> Option<Timestamp> {
        if self.ended.is_some() {
            return None;
        }
        let approved_at = after(self.made_at, self.approval?);
        (approved_at <= now).then_some(approved_at)
    }

    /// The status at `now` and since when.
    pub fn at(&self, now: Timestamp) -> (ChangeStatus, Timestamp) {
        if let Some(ended) = self.ended {
            return ended;
        }
        match self.auto_approved_at(now) {
            Some(approved_at) => (ChangeStatus::Approved, approved_at),
            None => (ChangeStatus::Pending, self.updated_at),
        }
    }

    pub fn is_pending(&self, now: Timestamp) -> bool {
        self.at(now).0 == ChangeStatus::Pending
    }

    pub fn end(&mut self, status: ChangeStatus, now: Timestamp) {
        self.ended = Some((status, now));
    }

    pub fn view(&self, now: Timestamp) -> ChangeView {
        let (status, since) = self.at(now);
        ChangeView {
            status,
            since,
            speed: self.speed,
            src_approval: self.src_approval.clone(),
        }
    }
}

/// A change request as it stands at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeView {
    pub status: ChangeStatus,
    pub since: Timestamp,
    pub speed: u64,
    pub src_approval: String,
}

impl ChangeView {
    /// Oracle's id once it approved; nobody's before (our assumption, like the whole object).
    fn dest_approval(&self) -> Option<&'static str> {
        (self.status == ChangeStatus::Approved).then_some(ORACLE_COMPANY_ID)
    }

    /// `request` in the reference shape: one object.
    pub fn reference_json(&self) -> Value {
        json!({
            "status": self.status.as_str(),
            "speed": self.speed,
            "srcApproval": self.src_approval,
            "destApproval": self.dest_approval(),
            "updatedAt": timestamp(self.since),
        })
    }

    /// `request` in the spec shape: the spec example's array of one-key objects, in its order.
    pub fn spec_json(&self, dest_metro_id: &str) -> Value {
        json!([
            {"status": self.status.as_str()},
            {"destMetroId": dest_metro_id},
            {"speed": self.speed},
            {"srcApproval": self.src_approval},
            {"destApproval": self.dest_approval()},
            {"read": false},
            {"updatedAt": timestamp(self.since)},
        ])
    }
}

/// The path of the change-request calls of a connection, for messages.
pub fn change_path(company: &str, id: &str) -> String {
    format!("/api/company/{company}/connections/{id}/change")
}

/// What the update call's `speed` does to a connection at `current` Mbps: `Ok(true)` lowers
/// it, `Ok(false)` changes nothing (the same speed); `Err` is the 400 message. Every sandbox
/// connection goes to another company (Oracle), so the spec allows only reductions here.
pub fn plan_speed_update(
    current: u64,
    change_pending: bool,
    speed: u64,
    company: &str,
    id: &str,
) -> Result<bool, String> {
    let path = change_path(company, id);
    if change_pending {
        return Err(format!(
            "a change request is pending on connection {id}; withdraw it first (DELETE {path})"
        ));
    }
    if speed > current {
        return Err(format!(
            "'speed' of {speed} Mbps is above the current {current} Mbps: the speed of a \
             connection to another company can only be reduced; to raise it, request a change \
             with PUT {path}"
        ));
    }
    Ok(speed < current)
}

/// Room on a connection's port for the connection to grow into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRoom<'a> {
    pub name: &'a str,
    /// The port's speed: no connection can be faster.
    pub speed: u64,
    /// Mbps left on the port with every other connection (and its pending reservation)
    /// counted and this one at its current speed, without its own pending reservation.
    pub remaining: u64,
}

/// What a change request for `speed` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangePlan {
    /// Lower than the current speed: applied at once, and a pending request is withdrawn.
    Decrease,
    /// Higher: a new pending request, or the pending one at the new speed.
    Request,
    /// The pending request already asks for this speed: nothing changes, so a retry is safe.
    Unchanged,
}

/// Plans a change request for `speed` on a connection at `current` Mbps whose pending request
/// (if any) asks for `pending`; `Err` is the 400 message. Without `port` (a port the fixture
/// lacks) bounds are not checked.
pub fn plan_change(
    current: u64,
    pending: Option<u64>,
    speed: u64,
    port: Option<&PortRoom<'_>>,
) -> Result<ChangePlan, String> {
    if speed == current {
        return Err(format!(
            "'speed' of {speed} Mbps is the connection's current speed; nothing to change"
        ));
    }
    if speed < current {
        return Ok(ChangePlan::Decrease);
    }
    if pending == Some(speed) {
        return Ok(ChangePlan::Unchanged);
    }
    if let Some(port) = port {
        if speed > port.speed {
            return Err(format!(
                "'speed' of {speed} Mbps exceeds the {} Mbps of port '{}'",
                port.speed, port.name
            ));
        }
        let increase = speed - current;
        if increase > port.remaining {
            return Err(format!(
                "'speed' of {speed} Mbps needs {increase} Mbps more than the current {current} \
                 Mbps, which exceeds the {} Mbps remaining on port '{}'",
                port.remaining, port.name
            ));
        }
    }
    Ok(ChangePlan::Request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2024-01-01T00:00:00Z".parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_request_is_approved_on_time_unless_manual() {
        let auto = ChangeRequest::new(500, "c".into(), t0(), Some(secs(5)));
        assert_eq!(auto.at(t0()), (ChangeStatus::Pending, t0()));
        assert!(auto.is_pending(after(t0(), secs(4))));
        assert_eq!(
            auto.at(after(t0(), secs(9))),
            (ChangeStatus::Approved, after(t0(), secs(5)))
        );
        let manual = ChangeRequest::new(500, "c".into(), t0(), None);
        assert!(manual.is_pending(after(t0(), secs(86_400))));
        assert_eq!(manual.auto_approved_at(after(t0(), secs(86_400))), None);
    }

    #[test]
    fn an_ended_request_stays_ended() {
        let mut request = ChangeRequest::new(500, "c".into(), t0(), Some(secs(5)));
        request.end(ChangeStatus::Withdrawn, after(t0(), secs(1)));
        let later = after(t0(), secs(60));
        assert_eq!(
            request.at(later),
            (ChangeStatus::Withdrawn, after(t0(), secs(1)))
        );
        assert_eq!(request.auto_approved_at(later), None);
    }

    #[test]
    fn a_speed_update_keeps_the_approval_clock() {
        let mut request = ChangeRequest::new(500, "c".into(), t0(), Some(secs(5)));
        request.speed = 400;
        request.updated_at = after(t0(), secs(3));
        assert_eq!(request.at(after(t0(), secs(4))).1, after(t0(), secs(3)));
        assert_eq!(request.at(after(t0(), secs(5))).0, ChangeStatus::Approved);
    }

    #[test]
    fn request_json_in_both_shapes() {
        let view = ChangeRequest::new(580, "me".into(), t0(), None).view(t0());
        assert_eq!(
            view.reference_json(),
            json!({"status": "PENDING", "speed": 580, "srcApproval": "me",
                   "destApproval": null, "updatedAt": "2024-01-01T00:00:00.000Z"})
        );
        assert_eq!(
            view.spec_json("m"),
            json!([{"status": "PENDING"}, {"destMetroId": "m"}, {"speed": 580},
                   {"srcApproval": "me"}, {"destApproval": null}, {"read": false},
                   {"updatedAt": "2024-01-01T00:00:00.000Z"}])
        );
        let approved = ChangeView {
            status: ChangeStatus::Approved,
            ..view
        };
        assert_eq!(approved.reference_json()["destApproval"], ORACLE_COMPANY_ID);
    }

    #[test]
    fn the_update_call_only_reduces() {
        assert_eq!(plan_speed_update(100, false, 50, "acme", "x"), Ok(true));
        assert_eq!(plan_speed_update(100, false, 100, "acme", "x"), Ok(false));
        let raise = plan_speed_update(100, false, 200, "acme", "x").unwrap_err();
        assert!(
            raise.contains("can only be reduced")
                && raise.contains("PUT /api/company/acme/connections/x/change"),
            "{raise}"
        );
        let pending = plan_speed_update(100, true, 50, "acme", "x").unwrap_err();
        assert!(
            pending.contains("a change request is pending on connection x; withdraw it first"),
            "{pending}"
        );
    }

    #[test]
    fn change_requests_are_bounded_by_the_port() {
        let port = PortRoom {
            name: "P",
            speed: 1000,
            remaining: 300,
        };
        let plan = |pending, speed| plan_change(100, pending, speed, Some(&port));
        assert_eq!(plan(None, 50), Ok(ChangePlan::Decrease));
        assert_eq!(plan(Some(300), 50), Ok(ChangePlan::Decrease));
        assert_eq!(plan(None, 400), Ok(ChangePlan::Request));
        assert_eq!(plan(Some(300), 400), Ok(ChangePlan::Request));
        assert_eq!(plan(Some(400), 400), Ok(ChangePlan::Unchanged));
        assert!(plan(None, 100).unwrap_err().contains("current speed"));
        let over_port = plan(None, 1001).unwrap_err();
        assert!(
            over_port.contains("exceeds the 1000 Mbps of port 'P'"),
            "{over_port}"
        );
        let over_capacity = plan(None, 401).unwrap_err();
        assert!(
            over_capacity.contains("301 Mbps more")
                && over_capacity.contains("exceeds the 300 Mbps remaining on port 'P'"),
            "{over_capacity}"
        );
        assert_eq!(plan_change(100, None, 5000, None), Ok(ChangePlan::Request));
    }
}
