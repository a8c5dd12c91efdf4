//! The reconciler of `FastConnectConnection`.
//!
//! A reconcile runs the steps in order: read inputs (Secrets) → resolve (port, metro) → act on the
//! Console Connect API (order, adopt, observe, disconnect) → write status. Each step has its own
//! error type; [`Diagnosis`] says for each error what the user sees and whether retrying helps.

pub mod backoff;
pub mod cache;
pub mod inputs;
mod remote;
pub mod resolve;
pub mod status;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{
        Controller, Predicate, WatchStreamExt,
        controller::{self, Action},
        events::{Event, EventType, Recorder, Reporter},
        predicates, reflector, watcher,
    },
};
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    consoleconnect::{self as cc, Connection},
    crd::{DeletionPolicy, FastConnectConnection, FastConnectConnectionStatus, Phase},
    metrics::Metrics,
    server::Readiness,
};

use self::{
    backoff::Backoff,
    cache::Catalog,
    inputs::Secrets,
    remote::Remote,
    status::{RemoteView, Report},
};

/// Guards the remote connection: the resource stays until the connection is disconnected.
pub const FINALIZER: &str = "fastconnect.dev/connection";
const CONTROLLER_NAME: &str = "fastconnect-operator";

/// When trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient, or fixable outside the spec (a Secret, a port): retry with growing delays,
    /// not sooner than `at_least` when the service said so.
    Backoff { at_least: Option<Duration> },
    /// Only a change of the spec can help: wait for one.
    SpecChange,
}

/// What an error means for the resource.
pub trait Diagnosis: std::error::Error {
    /// The condition reason, in CamelCase.
    fn reason(&self) -> &'static str;
    fn retry(&self) -> Retry;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Inputs(#[from] inputs::Error),
    #[error(transparent)]
    Resolve(#[from] resolve::Error),
    #[error(transparent)]
    Remote(#[from] remote::Error),
    #[error(transparent)]
    Status(#[from] status::Error),
    #[error("cannot update the finalizer: {0}")]
    Finalizer(#[source] kube::Error),
}

impl Diagnosis for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Inputs(e) => e.reason(),
            Error::Resolve(e) => e.reason(),
            Error::Remote(e) => e.reason(),
            Error::Status(status::Error::Conflict) => "Conflict",
            Error::Status(_) | Error::Finalizer(_) => "KubernetesApiError",
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Error::Inputs(e) => e.retry(),
            Error::Resolve(e) => e.retry(),
            Error::Remote(e) => e.retry(),
            Error::Status(_) | Error::Finalizer(_) => Retry::Backoff { at_least: None },
        }
    }
}

/// Timing of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Poll cadence while the connection is on its way (CREATING, PENDING, ...).
    pub poll_progress: Duration,
    /// Poll cadence once the connection is ACTIVE or has stopped.
    pub poll_active: Duration,
    /// How long the port and metro lists are reused.
    pub catalog_ttl: Duration,
    /// First and longest delay of the retry backoff.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Resources reconciled at once.
    pub concurrency: u16,
    /// Test failpoint: exit right after a successful create, before recording it.
    pub exit_after_create: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_progress: Duration::from_secs(5),
            poll_active: Duration::from_secs(60),
            catalog_ttl: Duration::from_secs(60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            concurrency: 32,
            exit_after_create: false,
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub kube: kube::Client,
    pub api: cc::Client,
    pub settings: Settings,
    pub catalog: Catalog,
    pub backoff: Backoff,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(
        kube: kube::Client,
        api: cc::Client,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(kube.clone(), reporter),
            catalog: Catalog::new(settings.catalog_ttl),
            backoff: Backoff::new(settings.backoff_min, settings.backoff_max),
            kube,
            api,
            settings,
            metrics,
        }
    }
}

/// Which namespaces to watch: all, or a list.
#[derive(Clone, Debug, Default)]
pub struct Namespaces(pub Vec<String>);

/// Fails fast with an install hint when the CRD is missing or unreadable.
pub async fn check_crd(client: &kube::Client, namespaces: &Namespaces) -> Result<(), kube::Error> {
    for api in apis(client, namespaces) {
        api.list(&ListParams::default().limit(1)).await?;
    }
    Ok(())
}

fn apis(client: &kube::Client, namespaces: &Namespaces) -> Vec<Api<FastConnectConnection>> {
    if namespaces.0.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .0
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

/// Runs the controller until a shutdown signal, one watch per watched namespace. `readiness`
/// turns ready once every watch has listed its resources.
pub async fn run(ctx: Arc<Context>, namespaces: Namespaces, readiness: Readiness) {
    let (controllers, stores): (Vec<_>, Vec<_>) = apis(&ctx.kube, &namespaces)
        .into_iter()
        .map(|api| {
            let (reader, writer) = reflector::store();
            (run_one(api, ctx.clone(), reader.clone(), writer), reader)
        })
        .unzip();
    let synced = async move {
        for store in stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        info!("watches synced; ready");
        readiness.set_ready();
    };
    let controllers = futures::future::join_all(controllers);
    futures::future::join(controllers, synced).await;
}

async fn run_one(
    api: Api<FastConnectConnection>,
    ctx: Arc<Context>,
    reader: reflector::Store<FastConnectConnection>,
    writer: reflector::store::Writer<FastConnectConnection>,
) {
    // Our own status writes must not wake the reconciler (the requeue timer polls), but spec
    // changes, finalizer changes and deletion must.
    let changes = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        // Managed fields are most of an object's size and we never read them.
        .modify(|fcc| fcc.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );
    let config = controller::Config::default().concurrency(ctx.settings.concurrency);
    let metrics = ctx.metrics.clone();
    Controller::for_stream(changes, reader)
        .with_config(config)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                metrics.controller_error();
                debug!(%error, "reconcile did not complete");
            }
            futures::future::ready(())
        })
        .await;
}

async fn reconcile(fcc: Arc<FastConnectConnection>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", object = %format!("{}/{}", fcc.namespace().unwrap_or_default(), fcc.name_any()));
    async move {
        let timer = ctx.metrics.reconcile_started();
        let result = if fcc.metadata.deletion_timestamp.is_some() {
            cleanup(&fcc, &ctx).await
        } else {
            apply(&fcc, &ctx).await
        };
        timer.finish(result.as_ref().err().map(|e| e.reason()));
        result
    }
    .instrument(span)
    .await
}

/// Errors that escaped the status (a failed status write itself) back off here.
fn error_policy(fcc: Arc<FastConnectConnection>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(object = %fcc.name_any(), %error, "reconcile failed");
    let at_least = match error.retry() {
        Retry::Backoff { at_least } => at_least,
        Retry::SpecChange => None,
    };
    Action::requeue(ctx.backoff.next(&key(&fcc), at_least))
}

fn key(fcc: &FastConnectConnection) -> String {
    fcc.uid().unwrap_or_else(|| fcc.name_any())
}

fn api(fcc: &FastConnectConnection, ctx: &Context) -> Api<FastConnectConnection> {
    Api::namespaced(ctx.kube.clone(), &fcc.namespace().unwrap_or_default())
}

/// One reconcile of a live resource.
async fn apply(fcc: &FastConnectConnection, ctx: &Context) -> Result<Action, Error> {
    let api = api(fcc, ctx);
    let mut current = fcc.clone();
    let mut status = fcc.status.clone().unwrap_or_default();
    let outcome = drive(fcc, ctx, &api, &mut current, &mut status).await;
    if let Err(error) = &outcome {
        warn!(reason = error.reason(), %error, "reconcile stopped short");
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
    let secrets = Secrets::new(ctx.kube.clone(), &fcc.namespace().unwrap_or_default());
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

/// An Event when the phase or the reason changes, never on a repeat.
async fn publish_transition(
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
    if phase_changed {
        ctx.metrics
            .phase_changed(before.and_then(|s| s.phase), after.phase);
        if after.phase == Some(Phase::Active)
            && let Some(created) = &fcc.metadata.creation_timestamp
        {
            let age = Timestamp::now().duration_since(created.0);
            ctx.metrics.became_ready(age.unsigned_abs());
        }
    }
    if phase_changed || ready_reason(before) != ready_reason(Some(after)) {
        let warning = report.phase == Phase::Failed;
        publish(ctx, fcc, warning, &report.reason, &report.message).await;
    }
    if let Some((reason, message)) = &report.failure
        && synced_reason(before).as_deref() != Some(*reason)
    {
        publish(ctx, fcc, true, reason, message).await;
    }
}

async fn publish(
    ctx: &Context,
    fcc: &FastConnectConnection,
    warning: bool,
    reason: &str,
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
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &fcc.object_ref(&())).await {
        // Events are a courtesy; failing to record one must not fail the reconcile.
        debug!(%error, "cannot publish event");
    }
}

/// The next look at this resource: poll cadence when all went well, backoff otherwise.
fn requeue(
    ctx: &Context,
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
    error: Option<&Error>,
) -> Action {
    let key = key(fcc);
    let Some(error) = error else {
        ctx.backoff.reset(&key);
        let cadence = match status.phase {
            Some(Phase::Active | Phase::Failed) => ctx.settings.poll_active,
            _ => ctx.settings.poll_progress,
        };
        return Action::requeue(backoff::jitter(cadence));
    };
    match error.retry() {
        Retry::SpecChange => Action::await_change(),
        Retry::Backoff { at_least } => Action::requeue(ctx.backoff.next(&key, at_least)),
    }
}

fn has_finalizer(fcc: &FastConnectConnection) -> bool {
    fcc.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds our finalizer, only if the object is unchanged since it was read.
async fn add_finalizer(
    api: &Api<FastConnectConnection>,
    fcc: &FastConnectConnection,
) -> Result<FastConnectConnection, Error> {
    if has_finalizer(fcc) {
        return Ok(fcc.clone());
    }
    let mut finalizers = fcc.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    patch_finalizers(api, fcc, finalizers).await
}

async fn remove_finalizer(
    api: &Api<FastConnectConnection>,
    fcc: &FastConnectConnection,
) -> Result<(), Error> {
    let finalizers: Vec<String> = fcc
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match patch_finalizers(api, fcc, finalizers).await {
        // Already gone: someone else finished the job.
        Err(Error::Finalizer(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn patch_finalizers(
    api: &Api<FastConnectConnection>,
    fcc: &FastConnectConnection,
    finalizers: Vec<String>,
) -> Result<FastConnectConnection, Error> {
    let patch = json!({
        "metadata": {
            "resourceVersion": fcc.resource_version(),
            "finalizers": finalizers,
        }
    });
    api.patch(
        &fcc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|error| match error {
        kube::Error::Api(e) if e.code == 409 => Error::Status(status::Error::Conflict),
        other => Error::Finalizer(other),
    })
}

/// Deletion: disconnect (or let go), then release the finalizer. Never waits on something that
/// does not exist.
async fn cleanup(fcc: &FastConnectConnection, ctx: &Context) -> Result<Action, Error> {
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
    let secrets = Secrets::new(ctx.kube.clone(), &fcc.namespace().unwrap_or_default());
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
