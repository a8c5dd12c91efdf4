//! Write step: turn what a reconcile learned into status, conditions and events, and write them
//! only when something changed, so that our own writes never feed a reconcile loop.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::crd::{FastConnectConnection, FastConnectConnectionStatus, Phase};

use super::reason::Reason;

pub const FIELD_MANAGER: &str = "fastconnect-operator";
pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";
pub const CHANGE_PENDING: &str = "ChangePending";
pub const DRIFTED: &str = "Drifted";
const SYNCED_OK: &str = "ReconcileSucceeded";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Someone changed the resource since it was read; the next reconcile sees the change.
    #[error("the resource changed while being reconciled")]
    Conflict,
    #[error("cannot write status: {0}")]
    Write(#[source] kube::Error),
}

/// The outcome of one reconcile, in the words of the conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub phase: Phase,
    /// Reason and message of the Ready condition (True only when Active).
    pub reason: Reason,
    pub message: String,
    /// Set when this reconcile failed: reason and message of Synced=False.
    pub failure: Option<(Reason, String)>,
    /// Further conditions this reconcile has news of (ChangePending, Drifted); the others keep
    /// what they said.
    pub news: Vec<News>,
}

/// A condition besides Ready and Synced.
#[derive(Debug, Clone, PartialEq)]
pub struct News {
    pub type_: &'static str,
    /// The action of its Event.
    pub action: &'static str,
    pub holds: bool,
    pub reason: Reason,
    pub message: String,
}

/// The status after this reconcile: `status` with `report` applied, keeping each condition's
/// transition time while its state and reason stay the same.
pub fn next(
    fcc: &FastConnectConnection,
    mut status: FastConnectConnectionStatus,
    report: &Report,
) -> FastConnectConnectionStatus {
    let generation = fcc.metadata.generation;
    let ready = condition(
        READY,
        report.phase == Phase::Active,
        report.reason.as_str(),
        &report.message,
        generation,
    );
    let synced = match &report.failure {
        None => condition(SYNCED, true, SYNCED_OK, "", generation),
        Some((reason, message)) => condition(SYNCED, false, reason.as_str(), message, generation),
    };
    let further = [CHANGE_PENDING, DRIFTED].into_iter().filter_map(|type_| {
        match report.news.iter().find(|n| n.type_ == type_) {
            Some(news) => Some(condition(
                type_,
                news.holds,
                news.reason.as_str(),
                &news.message,
                generation,
            )),
            None => status.conditions.iter().find(|c| c.type_ == type_).cloned(),
        }
    });
    let conditions: Vec<Condition> = [ready, synced].into_iter().chain(further).collect();
    status.conditions = conditions
        .into_iter()
        .map(|new| keep_transition_time(&status.conditions, new))
        .collect();
    if status.phase != Some(report.phase) {
        status.phase_since = Some(Timestamp::now().to_string());
    }
    status.phase = Some(report.phase);
    status.message = Some(report.message.clone()).filter(|m| !m.is_empty());
    status.observed_generation = generation;
    status
}

/// How long the resource has been in its phase at `now` (`None`: not recorded, as by builds
/// before `phaseSince`).
pub fn time_in_phase(status: &FastConnectConnectionStatus, now: Timestamp) -> Option<Duration> {
    let since: Timestamp = status.phase_since.as_deref()?.parse().ok()?;
    Some(now.duration_since(since).unsigned_abs())
}

/// The phase `before` had and how long it lasted, when `after` has left it.
pub fn left_phase(
    before: Option<&FastConnectConnectionStatus>,
    after: &FastConnectConnectionStatus,
    now: Timestamp,
) -> Option<(Phase, Duration)> {
    let before = before?;
    let phase = before.phase.filter(|p| after.phase != Some(*p))?;
    Some((phase, time_in_phase(before, now)?))
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

fn keep_transition_time(old: &[Condition], mut new: Condition) -> Condition {
    if let Some(previous) = old.iter().find(|c| c.type_ == new.type_)
        && previous.status == new.status
    {
        new.last_transition_time = previous.last_transition_time.clone();
    }
    new
}

/// Writes `status` if it differs from what the object has, and returns the object as written
/// (`None`: nothing to write). The write only succeeds if the object is unchanged since it was
/// read: the create marker relies on it (an order is never placed for a spec the user has
/// already changed), and a reconcile working from a stale copy (our own finalizer patch wakes
/// one before the cache shows our last status) must not overwrite a newer status, such as a
/// recorded connection id, with its older one.
pub async fn write(
    api: &Api<FastConnectConnection>,
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
) -> Result<Option<FastConnectConnection>, Error> {
    if fcc.status.as_ref() == Some(status) {
        return Ok(None);
    }
    let body = json!({
        "apiVersion": FastConnectConnection::api_version(&()),
        "kind": FastConnectConnection::kind(&()),
        "metadata": { "resourceVersion": fcc.resource_version() },
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&fcc.name_any(), &params, &Patch::Apply(body))
        .await
    {
        Ok(written) => Ok(Some(written)),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Conflict),
        Err(error) => Err(Error::Write(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fcc() -> FastConnectConnection {
        serde_json::from_value(json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": {"name": "hk", "namespace": "net", "generation": 3},
            "spec": {"companyUsername": "acme",
                "credentials": {"apiKeySecretRef": {"name": "a"}, "oracleOcidSecretRef": {"name": "o"}},
                "sourcePort": {"name": "p"}, "destination": {"metro": "HKG"},
                "speedMbps": 100, "term": {"duration": 1, "unit": "m"}}
        }))
        .unwrap()
    }

    fn report(phase: Phase, reason: Reason) -> Report {
        Report {
            phase,
            reason,
            message: "m".into(),
            failure: None,
            news: Vec::new(),
        }
    }

    #[test]
    fn ready_only_when_active_and_synced_reflects_failure() {
        let fcc = fcc();
        let status = next(
            &fcc,
            Default::default(),
            &report(Phase::Active, Reason::Active),
        );
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(status.conditions[0].observed_generation, Some(3));
        assert_eq!(status.observed_generation, Some(3));
        let mut failing = report(Phase::AwaitingApproval, Reason::AwaitingApproval);
        failing.failure = Some((Reason::Throttled, "slow down".into()));
        let status = next(&fcc, status, &failing);
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[1].status, "False");
        assert_eq!(status.conditions[1].reason, "Throttled");
    }

    #[test]
    fn further_conditions_change_only_with_news() {
        let fcc = fcc();
        let mut pending = report(Phase::Active, Reason::Active);
        pending.news = vec![News {
            type_: CHANGE_PENDING,
            action: "RequestChange",
            holds: true,
            reason: Reason::ChangeAwaitingApproval,
            message: "waits".into(),
        }];
        let status = next(&fcc, Default::default(), &pending);
        let quiet = next(&fcc, status.clone(), &report(Phase::Active, Reason::Active));
        assert_eq!(status, quiet, "no news keeps ChangePending as it was");
        let types: Vec<&str> = quiet.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, SYNCED, CHANGE_PENDING]);
    }

    #[test]
    fn an_unchanged_report_gives_an_identical_status() {
        let fcc = fcc();
        let first = next(
            &fcc,
            Default::default(),
            &report(Phase::Creating, Reason::Creating),
        );
        let second = next(
            &fcc,
            first.clone(),
            &report(Phase::Creating, Reason::Creating),
        );
        assert_eq!(
            first, second,
            "transition times must be kept, or every reconcile writes"
        );
    }

    #[test]
    fn the_phase_records_when_it_began_and_how_long_it_lasted() {
        let fcc = fcc();
        let creating = next(
            &fcc,
            Default::default(),
            &report(Phase::Creating, Reason::Creating),
        );
        let began: Timestamp = creating.phase_since.as_deref().unwrap().parse().unwrap();
        let still = next(
            &fcc,
            creating.clone(),
            &report(Phase::Creating, Reason::Creating),
        );
        assert_eq!(
            still.phase_since, creating.phase_since,
            "same phase, same start"
        );
        assert_eq!(left_phase(Some(&creating), &still, Timestamp::now()), None);
        let active = next(
            &fcc,
            creating.clone(),
            &report(Phase::Active, Reason::Active),
        );
        let later = began + jiff::SignedDuration::from_secs(90);
        assert_eq!(
            left_phase(Some(&creating), &active, later),
            Some((Phase::Creating, Duration::from_secs(90)))
        );
        assert_eq!(
            time_in_phase(&creating, later),
            Some(Duration::from_secs(90))
        );
        let unrecorded = FastConnectConnectionStatus {
            phase: Some(Phase::Creating),
            ..Default::default()
        };
        assert_eq!(left_phase(Some(&unrecorded), &active, later), None);
    }
}
