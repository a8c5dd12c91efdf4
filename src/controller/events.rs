//! Events, published on transitions only.

use jiff::Timestamp;
use kube::{
    Resource,
    runtime::events::{Event, EventType},
};
use tracing::debug;

use crate::crd::{FastConnectConnection, FastConnectConnectionStatus, Phase};

use super::{
    Context,
    reason::Reason,
    status::{self, Report},
};

/// An Event when the phase or the reason changes, never on a repeat.
pub(super) async fn publish_transition(
    ctx: &Context,
    fcc: &FastConnectConnection,
    before: Option<&FastConnectConnectionStatus>,
    after: &FastConnectConnectionStatus,
    report: &Report,
) {
    let ready_reason = |s: Option<&FastConnectConnectionStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == status::READY))
            .map(|c| c.reason.clone())
    };
    let synced_reason = |s: Option<&FastConnectConnectionStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == status::SYNCED))
            .map(|c| c.reason.clone())
    };
    let phase_changed = before.and_then(|s| s.phase) != after.phase;
    if phase_changed
        && after.phase == Some(Phase::Active)
        && let Some(created) = &fcc.metadata.creation_timestamp
    {
        let age = Timestamp::now().duration_since(created.0);
        ctx.metrics.became_ready(age.unsigned_abs());
    }
    if phase_changed || ready_reason(before) != ready_reason(Some(after)) {
        let warning = report.reason.is_warning();
        let reason = report.reason.as_str();
        publish(ctx, fcc, warning, reason, RECONCILE, &report.message).await;
    }
    if let Some((reason, message)) = &report.failure
        && synced_reason(before).as_deref() != Some(reason.as_str())
    {
        if *reason == Reason::DuplicateConnections {
            ctx.metrics.duplicate_connections_found();
        }
        // A pause is the user's own doing, not a failure.
        let warning = *reason != Reason::ReconcilePaused;
        publish(ctx, fcc, warning, reason.as_str(), RECONCILE, message).await;
    }
    for news in report
        .news
        .iter()
        .filter(|n| n.holds || is_outcome(n.reason))
    {
        let reason_of = |s: Option<&FastConnectConnectionStatus>| {
            s.and_then(|s| s.conditions.iter().find(|c| c.type_ == news.type_))
                .map(|c| c.reason.clone())
        };
        if reason_of(before) != reason_of(Some(after)) {
            publish(
                ctx,
                fcc,
                news.reason.is_warning(),
                news.reason.as_str(),
                news.action,
                &news.message,
            )
            .await;
        }
    }
}

/// How a change ended: worth an Event, unlike the quiet "nothing pending" and "no drift".
fn is_outcome(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::ChangeApplied
            | Reason::ChangeRejected
            | Reason::ChangeWithdrawn
            | Reason::ChangeDeferred
    )
}

/// The action of Events about the resource's story as a whole.
pub(super) const RECONCILE: &str = "Reconcile";

/// Publishes an Event. The recorder folds Events of the same reason and action within minutes
/// into one series that keeps the first note, so an Event whose note matters (what was renamed,
/// what drifted) names it in its `action`.
pub(super) async fn publish(
    ctx: &Context,
    fcc: &FastConnectConnection,
    warning: bool,
    reason: &str,
    action: &str,
    note: &str,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(note.chars().take(1024).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &fcc.object_ref(&())).await {
        // Events are a courtesy; failing to record one must not fail the reconcile.
        debug!(%error, "cannot publish event");
    }
}
