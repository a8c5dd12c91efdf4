//! A live resource: read its inputs, resolve, order or observe, and report.

use jiff::Timestamp;
use kube::{Api, ResourceExt, runtime::controller::Action};
use tracing::{info, warn};

use crate::{
    consoleconnect::Connection,
    crd::{FastConnectConnection, FastConnectConnectionStatus, Phase},
};

use super::{
    Context, Diagnosis, Error, api,
    events::publish_transition,
    finalizer::{add_finalizer, has_finalizer},
    inputs::{self, Secrets},
    remote::{self, Remote},
    requeue, resolve,
    status::{self, RemoteView, Report},
};

/// One reconcile of a live resource.
pub(super) async fn apply(fcc: &FastConnectConnection, ctx: &Context) -> Result<Action, Error> {
    let api = api(fcc, ctx);
    let mut current = fcc.clone();
    let mut status = fcc.status.clone().unwrap_or_default();
    let outcome = drive(fcc, ctx, &api, &mut current, &mut status).await;
    if let Err(error) = &outcome {
        warn!(reason = error.reason(), %error, "reconcile stopped short");
        if matches!(error, Error::Remote(e) if e.key_refused()) {
            // The Secret may already hold a rotated key: read it afresh next time.
            let secret = &fcc.spec.credentials.api_key_secret_ref.name;
            ctx.secrets
                .forget(&fcc.namespace().unwrap_or_default(), secret);
        }
    }
    let report = report(fcc, &status, &outcome);
    let next = status::next(fcc, status, &report);
    publish_transition(ctx, fcc, current.status.as_ref(), &next, &report).await;
    status::write(&api, &current, &next, false).await?;
    Ok(requeue(ctx, fcc, &next, outcome.as_ref().err()))
}

/// Acts on the Console Connect API as far as this reconcile can get, recording what it learns
/// in `status`. `current` follows our own writes to the object.
async fn drive(
    fcc: &FastConnectConnection,
    ctx: &Context,
    api: &Api<FastConnectConnection>,
    current: &mut FastConnectConnection,
    status: &mut FastConnectConnectionStatus,
) -> Result<RemoteView, Error> {
    let spec = &fcc.spec;
    let secrets = Secrets::new(
        ctx.kube.clone(),
        &fcc.namespace().unwrap_or_default(),
        &ctx.secrets,
    );
    let key = secrets
        .api_key(&spec.credentials.api_key_secret_ref)
        .await?;
    let remote = Remote::new(ctx, &spec.company_username, &key);

    if let Some(id) = status.connection_id.clone() {
        let connection = remote.observe(&id, status.phase).await?;
        return Ok(record(status, connection.as_ref()));
    }
    if let Some(id) = &spec.connection_id {
        *current = add_finalizer(api, current).await?;
        let connection = remote.adopt(id).await?;
        status.connection_id = Some(connection.id.clone());
        status.connection_name = Some(connection.name.clone());
        return Ok(record(status, Some(&connection)));
    }
    if refused_for_this_generation(fcc) {
        return Err(remote::Error::StillRefused.into());
    }
    secrets
        .check_ocid(&spec.credentials.oracle_ocid_secret_ref)
        .await?;
    let name = fcc.connection_name();
    // A crash after an order, or a restore that lost the status: find the order before
    // ordering again.
    if (status.ordered_at.is_some() || has_finalizer(fcc))
        && let Some(found) = remote.find_order(fcc, &name, status).await?
    {
        status.connection_id = Some(found.id.clone());
        return Ok(record(status, Some(&found)));
    }
    order(fcc, ctx, api, &remote, current, status, name).await
}

/// Resolves, persists the create marker, then orders exactly once.
async fn order(
    fcc: &FastConnectConnection,
    ctx: &Context,
    api: &Api<FastConnectConnection>,
    remote: &Remote<'_>,
    current: &mut FastConnectConnection,
    status: &mut FastConnectConnectionStatus,
    name: String,
) -> Result<RemoteView, Error> {
    let spec = &fcc.spec;
    let ports = remote.ports().await?;
    let port = resolve::port(
        &ports.items,
        &spec.source_port,
        &spec.company_username,
        spec.speed_mbps,
    )?;
    let metros = remote.metros().await?;
    let metro = resolve::metro(&metros.items, &spec.destination, port)?;
    let request = resolve::order(fcc, port, metro);

    status.connection_name = Some(name);
    status.port_id = Some(port.id.clone());
    status.dest_metro = Some(metro.code.clone());
    status.dest_metro_id = Some(metro.id.clone());
    status.dest_dcf = metro.first_data_center_facility_id_in_metro.clone();
    status.ordered_at = Some(Timestamp::now().to_string());

    *current = add_finalizer(api, current).await?;
    let marker = status::next(
        fcc,
        status.clone(),
        &Report {
            phase: Phase::Creating,
            reason: "Ordering".into(),
            message: "ordering the connection from Console Connect".into(),
            failure: None,
        },
    );
    // The precondition makes the order use the spec as it is now; the marker makes a restarted
    // operator look for this order instead of placing another.
    status::write(api, current, &marker, true).await?;
    current.status = Some(marker);

    info!(connection = %request.name, "ordering connection");
    match remote.create(&request).await {
        Ok(connection) => {
            if ctx.settings.exit_after_create {
                warn!(connection = %connection.id, "failpoint: exiting after the create call");
                std::process::exit(3);
            }
            ctx.metrics.connection_ordered();
            status.connection_id = Some(connection.id.clone());
            Ok(record(status, Some(&connection)))
        }
        Err(error) => {
            if error.nothing_was_created() {
                status.ordered_at = None;
            }
            Err(error.into())
        }
    }
}

/// A refusal of the order by Console Connect stands until the spec changes.
fn refused_for_this_generation(fcc: &FastConnectConnection) -> bool {
    let Some(status) = &fcc.status else {
        return false;
    };
    status.conditions.iter().any(|c| {
        c.type_ == status::SYNCED
            && c.reason == remote::INVALID_REQUEST
            && c.observed_generation == fcc.metadata.generation
    })
}

/// Records a connection as observed (`None`: it no longer exists) and says what it means.
fn record(status: &mut FastConnectConnectionStatus, connection: Option<&Connection>) -> RemoteView {
    let Some(connection) = connection else {
        return RemoteView {
            phase: Phase::Failed,
            reason: "DeletedOutOfBand",
            message: "the connection no longer exists in Console Connect; delete this resource"
                .into(),
        };
    };
    status.remote_status = Some(connection.status.as_str().to_owned());
    status.vlan = connection.vlan.clone().filter(|v| !v.is_null());
    status::remote_view(&connection.status, connection.error_reason.as_deref())
}

/// The Ready and Synced story of this reconcile.
fn report(
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
    outcome: &Result<RemoteView, Error>,
) -> Report {
    match outcome {
        Ok(view) => Report {
            phase: view.phase,
            reason: view.reason.into(),
            message: if view.phase == Phase::AwaitingApproval {
                support_handoff(fcc, status)
            } else {
                view.message.clone()
            },
            failure: None,
        },
        Err(error) => {
            let message = error.to_string();
            let failure = Some((error.reason(), message.clone()));
            match (&status.connection_id, previous_ready(fcc)) {
                // The connection exists: Ready keeps telling its story; Synced says what failed.
                (Some(_), Some((reason, ready_message))) => Report {
                    phase: status.phase.unwrap_or(Phase::Creating),
                    reason: reason.to_owned(),
                    message: ready_message.to_owned(),
                    failure,
                },
                _ => Report {
                    phase: phase_of_error(error, status),
                    reason: error.reason().into(),
                    message,
                    failure,
                },
            }
        }
    }
}

fn previous_ready(fcc: &FastConnectConnection) -> Option<(&str, &str)> {
    fcc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == status::READY)
        .map(|c| (c.reason.as_str(), c.message.as_str()))
}

fn phase_of_error(error: &Error, status: &FastConnectConnectionStatus) -> Phase {
    match error {
        Error::Inputs(inputs::Error::InvalidOcid { .. }) => Phase::Failed,
        Error::Inputs(_) => Phase::Pending,
        Error::Resolve(_) => Phase::Failed,
        Error::Remote(e) if e.needs_user() => Phase::Failed,
        Error::Remote(e) if e.key_refused() => Phase::Pending,
        _ if status.ordered_at.is_some() => Phase::Creating,
        _ => Phase::Resolving,
    }
}

/// What the user sends to Console Connect Support to get the Oracle side completed. The OCID is
/// named by the Secret that holds it, never printed.
fn support_handoff(fcc: &FastConnectConnection, status: &FastConnectConnectionStatus) -> String {
    let ocid = &fcc.spec.credentials.oracle_ocid_secret_ref;
    format!(
        "waiting for approval: send Console Connect Support the connection id {} and the Oracle \
         virtual circuit OCID stored in Secret {}/{} key {}",
        status.connection_id.as_deref().unwrap_or("(unknown)"),
        fcc.namespace().unwrap_or_default(),
        ocid.name,
        ocid.key,
    )
}
