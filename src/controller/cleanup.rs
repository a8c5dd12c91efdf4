//! A deleted resource: disconnect (or let go), then release the finalizer.

use kube::{ResourceExt, runtime::controller::Action};
use tracing::info;

use crate::crd::{DeletionPolicy, FastConnectConnection, FastConnectConnectionStatus, Phase};

use super::{
    Context, Diagnosis, Error, api, backoff,
    events::{publish, publish_transition},
    finalizer::{has_finalizer, remove_finalizer},
    inputs::Secrets,
    key,
    remote::Remote,
    requeue,
    status::{self, Report},
};

/// Deletion: disconnect (or let go), then release the finalizer. Never waits on something that
/// does not exist.
pub(super) async fn cleanup(fcc: &FastConnectConnection, ctx: &Context) -> Result<Action, Error> {
    if !has_finalizer(fcc) {
        return Ok(Action::await_change());
    }
    let api = api(fcc, ctx);
    let status = fcc.status.clone().unwrap_or_default();
    let nothing_ordered = status.connection_id.is_none() && status.ordered_at.is_none();
    if fcc.spec.deletion_policy == DeletionPolicy::Orphan || nothing_ordered {
        if fcc.spec.deletion_policy == DeletionPolicy::Orphan
            && let Some(id) = &status.connection_id
        {
            publish(
                ctx,
                fcc,
                false,
                "Orphaned",
                &format!("left connection {id} running in Console Connect"),
            )
            .await;
        }
        remove_finalizer(&api, fcc).await?;
        return Ok(Action::await_change());
    }
    match disconnect(fcc, ctx, &status).await {
        Ok(true) => {
            info!("connection disconnected; releasing the resource");
            remove_finalizer(&api, fcc).await?;
            Ok(Action::await_change())
        }
        Ok(false) => {
            let report = Report {
                phase: Phase::Deleting,
                reason: "Deleting".into(),
                message: "disconnecting the connection".into(),
                failure: None,
            };
            let next = status::next(fcc, status, &report);
            publish_transition(ctx, fcc, fcc.status.as_ref(), &next, &report).await;
            status::write(&api, fcc, &next, false).await?;
            ctx.backoff.reset(&key(fcc));
            Ok(Action::requeue(backoff::jitter(ctx.settings.poll_progress)))
        }
        Err(error) => {
            let report = Report {
                phase: Phase::Deleting,
                reason: "DisconnectFailed".into(),
                message: format!(
                    "cannot disconnect: {error}; fix it, or set spec.deletionPolicy to Orphan to let go"
                ),
                failure: Some((error.reason(), error.to_string())),
            };
            let next = status::next(fcc, status, &report);
            publish_transition(ctx, fcc, fcc.status.as_ref(), &next, &report).await;
            status::write(&api, fcc, &next, false).await?;
            Ok(requeue(ctx, fcc, &next, Some(&error)))
        }
    }
}

/// Asks Console Connect to disconnect; `true` once the connection is gone.
async fn disconnect(
    fcc: &FastConnectConnection,
    ctx: &Context,
    status: &FastConnectConnectionStatus,
) -> Result<bool, Error> {
    let secrets = Secrets::new(
        ctx.kube.clone(),
        &fcc.namespace().unwrap_or_default(),
        &ctx.secrets,
    );
    let key = secrets
        .api_key(&fcc.spec.credentials.api_key_secret_ref)
        .await?;
    let remote = Remote::new(ctx, &fcc.spec.company_username, &key);
    let connection = match &status.connection_id {
        Some(id) => remote.observe_now(id).await?,
        // Ordered but never recorded: the order may exist under its name.
        None => {
            remote
                .find_order(fcc, &fcc.connection_name(), status)
                .await?
        }
    };
    let Some(connection) = connection else {
        return Ok(true);
    };
    Ok(remote.disconnect(&connection).await?)
}
