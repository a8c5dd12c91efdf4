//! Act step for changes after ordering: the one call of a [`Plan`] (update, change request,
//! withdraw), the request marker that keeps a change request to one per spec, and what the
//! ChangePending and Drifted conditions and their Events say.

use jiff::Timestamp;
use kube::Api;
use tracing::info;

use crate::{
    consoleconnect::{Connection, ConnectionUpdate},
    crd::{ChangeState, FastConnectConnection, FastConnectConnectionStatus, PendingChange},
};

use super::{
    Context, Error,
    change::{Call, ChangeNews, Drift, Plan},
    events::publish,
    reason::Reason,
    reconcile::{namespace, record},
    remote::Remote,
    resolve,
    status::{self, News},
};

/// The connection a day-2 call is about, with what the call needs.
pub(super) struct Target<'a> {
    pub fcc: &'a FastConnectConnection,
    pub api: &'a Api<FastConnectConnection>,
    pub remote: &'a Remote<'a>,
    pub connection: &'a Connection,
}

/// Makes the plan's one call, records its answer, and returns what ChangePending and Drifted
/// say.
pub(super) async fn apply_change(
    ctx: &Context,
    target: &Target<'_>,
    current: &mut FastConnectConnection,
    status: &mut FastConnectConnectionStatus,
    plan: Plan,
) -> Result<Vec<News>, Error> {
    let Plan {
        call,
        pending,
        news,
        drift,
    } = plan;
    let id = target.connection.id.as_str();
    match call {
        None => status.pending_change = pending,
        Some(Call::Update(update)) => {
            info!(speed = ?update.speed, name = ?update.name, "updating the connection");
            let answer = target.remote.update(id, &update).await?;
            record_answer(status, answer.as_ref(), id);
            status.pending_change = pending;
            let (action, note) = updated_note(&update);
            let reason = Reason::ConnectionUpdated.as_str();
            publish(ctx, target.fcc, false, reason, action, &note).await;
        }
        Some(Call::Withdraw) => {
            info!("withdrawing the change request");
            let answer = target.remote.withdraw_change(id).await?;
            record_answer(status, answer.as_ref(), id);
            status.pending_change = pending;
        }
        Some(Call::Request(speed)) => {
            request_change(target, current, status, pending, speed).await?;
        }
    }
    let change = (news != ChangeNews::Unchanged).then(|| change_news(target.fcc, status, &news));
    Ok(change
        .into_iter()
        .chain([drift_news(target.fcc, drift.as_ref())])
        .collect())
}

/// Checks the raise against the port, writes the request marker, then asks. A restarted
/// operator that finds the marker reads the connection before asking again.
async fn request_change(
    target: &Target<'_>,
    current: &mut FastConnectConnection,
    status: &mut FastConnectConnectionStatus,
    marker: Option<PendingChange>,
    speed: u32,
) -> Result<(), Error> {
    check_raise(target, status, speed).await?;
    let before = status.pending_change.clone();
    let mut marked = current.status.clone().unwrap_or_default();
    marked.pending_change = marker.clone();
    if let Some(written) = status::write(target.api, current, &marked).await? {
        *current = written;
    }
    status.pending_change = marker.clone();
    info!(speed, "requesting a speed change");
    match target
        .remote
        .request_change(&target.connection.id, speed)
        .await
    {
        Ok(answer) => {
            record_answer(status, answer.as_ref(), &target.connection.id);
            // Taken: from now on a read without the request means it ended, and it is not asked
            // again for this spec. Searches begun before the answer may not show it yet.
            status.pending_change = marker.map(|asked| PendingChange {
                state: ChangeState::Pending,
                requested_at: Timestamp::now().to_string(),
                request_status: answer
                    .as_ref()
                    .and_then(|c| c.request.as_ref())
                    .and_then(|r| r.status.clone()),
                ..asked
            });
            Ok(())
        }
        Err(error) => {
            if error.refused() {
                status.pending_change = before;
            }
            Err(error.into())
        }
    }
}

/// A raise must fit the port: its speed, and what it has left besides this connection's own
/// bandwidth. Checked before any call, from the shared port list.
async fn check_raise(
    target: &Target<'_>,
    status: &FastConnectConnectionStatus,
    speed: u32,
) -> Result<(), Error> {
    let spec = &target.fcc.spec;
    let Some(port_id) = status.port_id.as_ref().or(spec.source_port.id.as_ref()) else {
        return Ok(());
    };
    let ports = target.remote.ports().await?;
    let Some(port) = ports.items.iter().find(|p| &p.id == port_id) else {
        return Ok(());
    };
    let live = target.connection.speed_mbps().unwrap_or_default();
    Ok(resolve::check_raise(port, live, speed)?)
}

/// The Event action and note of an update.
fn updated_note(update: &ConnectionUpdate) -> (&'static str, String) {
    match (&update.speed, &update.name) {
        (Some(speed), Some(name)) => (
            "LowerSpeedAndRename",
            format!("lowered the speed to {speed} Mbps and renamed to {name}"),
        ),
        (Some(speed), None) => ("LowerSpeed", format!("lowered the speed to {speed} Mbps")),
        (None, Some(name)) => ("Rename", format!("renamed to {name}")),
        (None, None) => ("Update", "updated".to_owned()),
    }
}

/// The ChangePending condition; with no news, it says what the status already says.
fn change_news(
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
    news: &ChangeNews,
) -> News {
    let id = status.connection_id.as_deref().unwrap_or("(unknown)");
    let live = status
        .speed_mbps
        .map_or_else(|| "its current speed".to_owned(), |s| format!("{s} Mbps"));
    let (holds, reason, message) = match news {
        ChangeNews::AwaitingApproval { speed_mbps } => (
            true,
            Reason::ChangeAwaitingApproval,
            change_handoff(fcc, id, *speed_mbps, &live),
        ),
        ChangeNews::Applied { speed_mbps } => (
            false,
            Reason::ChangeApplied,
            format!("connection {id} now runs at {speed_mbps} Mbps"),
        ),
        ChangeNews::Rejected { change } => (
            false,
            Reason::ChangeRejected,
            format!(
                "the change to {} Mbps ended {} and the connection stays at {live}; change \
                 spec.speedMbps to ask again",
                change.speed_mbps,
                change
                    .request_status
                    .as_deref()
                    .unwrap_or("without being applied"),
            ),
        ),
        ChangeNews::Withdrawn => (
            false,
            Reason::ChangeWithdrawn,
            format!("the change request was withdrawn; the connection stays at {live}"),
        ),
        ChangeNews::Deferred { speed_mbps } => (
            false,
            Reason::ChangeDeferred,
            format!("{speed_mbps} Mbps is applied once connection {id} is ACTIVE"),
        ),
        ChangeNews::NothingPending | ChangeNews::Unchanged => (
            false,
            Reason::NoChangePending,
            format!("no change pending; the connection runs at {live}"),
        ),
    };
    News {
        type_: status::CHANGE_PENDING,
        action: "RequestChange",
        holds,
        reason,
        message,
    }
}

/// What the user does to get a raise approved, in the words of the first approval. The OCID is
/// named by the Secret that holds it, never printed.
fn change_handoff(fcc: &FastConnectConnection, id: &str, speed: u32, live: &str) -> String {
    let ocid = &fcc.spec.credentials.oracle_ocid_secret_ref;
    format!(
        "a change to {speed} Mbps waits for approval (the connection carries traffic at {live} \
         meanwhile): send Console Connect Support the connection id {id}, the new speed and the \
         Oracle virtual circuit OCID stored in Secret {}/{} key {}",
        namespace(fcc),
        ocid.name,
        ocid.key,
    )
}

fn drift_news(fcc: &FastConnectConnection, drift: Option<&Drift>) -> News {
    let Some(drift) = drift else {
        return News {
            type_: status::DRIFTED,
            action: "DetectDrift",
            holds: false,
            reason: Reason::NoDrift,
            message: "Console Connect matches the spec".to_owned(),
        };
    };
    let mut found = Vec::new();
    if let Some(speed) = drift.speed_mbps {
        found.push(format!(
            "speed {speed} Mbps (spec.speedMbps {})",
            fcc.spec.speed_mbps
        ));
    }
    if let Some(name) = &drift.name {
        found.push(format!("name {name} (spec {})", fcc.connection_name()));
    }
    let what_now = if fcc.observe_only() {
        "managementPolicy is Observe, so nothing is changed"
    } else {
        "restoring the spec (a raise through a change request)"
    };
    let action = match (drift.speed_mbps, &drift.name) {
        (Some(_), Some(_)) => "DetectSpeedAndNameDrift",
        (Some(_), None) => "DetectSpeedDrift",
        _ => "DetectNameDrift",
    };
    News {
        type_: status::DRIFTED,
        action,
        holds: true,
        reason: Reason::DriftDetected,
        message: format!(
            "changed outside Kubernetes: {}; {what_now}",
            found.join(", ")
        ),
    }
}

/// Records the answer of a change call when it is the connection (the same id); otherwise the
/// next read tells.
fn record_answer(status: &mut FastConnectConnectionStatus, answer: Option<&Connection>, id: &str) {
    if let Some(connection) = answer.filter(|c| c.id == id) {
        record(status, connection);
    }
}
