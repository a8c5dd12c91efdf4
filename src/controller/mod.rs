//! The reconciler of `FastConnectConnection`.
//!
//! A reconcile runs the steps in order: read inputs (Secrets) → observe Console Connect → decide
//! ([`decide`], pure) → act (order, adopt, disconnect, release) → write status. Each step has its
//! own error type; [`Diagnosis`] gives each error its [`Reason`], which says what the user sees
//! and whether retrying helps.

pub mod backoff;
pub mod cache;
pub mod change;
mod claims;
mod day2;
pub mod decide;
mod events;
mod finalizer;
pub mod inputs;
mod outage;
pub mod reason;
mod reconcile;
mod remote;
pub mod resolve;
pub mod status;
mod traffic;
mod written;

use std::{sync::Arc, time::Duration};

use futures::{
    StreamExt,
    future::{self, Either},
};
use kube::{
    Api, ResourceExt,
    api::ListParams,
    runtime::{
        Controller, Predicate, WatchStreamExt,
        controller::{self, Action},
        events::{Recorder, Reporter},
        predicates,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    consoleconnect as cc,
    crd::{FastConnectConnection, FastConnectConnectionStatus},
    metrics::Metrics,
    server::Readiness,
};

pub use self::finalizer::FINALIZER;
pub use self::inputs::SECRET_FINALIZER;
pub use self::reason::{Reason, Retry};
pub use self::reconcile::support_handoff;
use self::{
    backoff::Backoff, cache::Catalog, claims::Claims, inputs::SecretCache, outage::Outage,
    status::Report, written::LastWritten,
};
const CONTROLLER_NAME: &str = "fastconnect-operator";
const PHASE_COUNT_INTERVAL: Duration = Duration::from_secs(10);
/// How often a resource waiting out an API server outage tries whether it is over.
const OUTAGE_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What an error means for the resource.
pub trait Diagnosis: std::error::Error {
    fn reason(&self) -> Reason;
    /// The wait the service asked for, if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
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

impl Error {
    fn key_refused(&self) -> bool {
        matches!(self, Error::Remote(e) if e.key_refused())
    }

    /// The API server did not answer, or answered that it cannot serve now.
    fn api_down(&self) -> bool {
        match self {
            Error::Status(status::Error::Write(e)) | Error::Finalizer(e) => kube_down(e),
            Error::Inputs(inputs::Error::SecretUnreadable { source, .. }) => kube_down(source),
            Error::Inputs(inputs::Error::SecretUnguarded { source, .. }) => kube_down(source),
            _ => false,
        }
    }
}

fn kube_down(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

impl Diagnosis for Error {
    fn reason(&self) -> Reason {
        match self {
            Error::Inputs(e) => e.reason(),
            Error::Resolve(e) => e.reason(),
            Error::Remote(e) => e.reason(),
            Error::Status(status::Error::Conflict) => Reason::Conflict,
            Error::Status(_) | Error::Finalizer(_) => Reason::KubernetesApiError,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Remote(e) => e.retry_after(),
            _ => None,
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
    /// How long a Secret read is reused.
    pub secret_ttl: Duration,
    /// First and longest delay of the retry backoff.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long an order whose answer was lost is looked for before it is placed again.
    pub order_settle: Duration,
    /// Resources reconciled at once, across every watched namespace.
    pub concurrency: u16,
    /// How often connection traffic is read for the traffic gauges; `None`: never.
    pub utilization_interval: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_progress: Duration::from_secs(5),
            poll_active: Duration::from_secs(60),
            catalog_ttl: Duration::from_secs(60),
            secret_ttl: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            order_settle: Duration::from_secs(300),
            concurrency: 32,
            utilization_interval: None,
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub kube: kube::Client,
    pub api: cc::Client,
    pub settings: Settings,
    pub catalog: Catalog,
    pub secrets: SecretCache,
    pub backoff: Backoff,
    /// Resources that wait for the API server to answer again.
    pub outage: Outage,
    pub written: LastWritten,
    /// The connections other resources manage: never adopted twice.
    pub claims: Claims,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// `concurrency` for the whole process: each watched namespace has a controller of its
    /// own, and their own limits would add up.
    pub reconciles: tokio::sync::Semaphore,
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
            secrets: SecretCache::new(settings.secret_ttl),
            backoff: Backoff::new(settings.backoff_min, settings.backoff_max),
            outage: Outage::default(),
            written: LastWritten::default(),
            claims: Claims::default(),
            reconciles: tokio::sync::Semaphore::new(usize::from(settings.concurrency.max(1))),
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
    let watched = if namespaces.0.is_empty() {
        vec![None]
    } else {
        namespaces.0.iter().cloned().map(Some).collect()
    };
    let (controllers, stores): (Vec<_>, Vec<_>) = apis(&ctx.kube, &namespaces)
        .into_iter()
        .zip(watched)
        .map(|(api, namespace)| {
            let (reader, writer) = reflector::store();
            let controller = run_one(api, namespace, ctx.clone(), reader.clone(), writer);
            (controller, reader)
        })
        .unzip();
    let metrics = ctx.metrics.clone();
    let synced = async move {
        for store in &stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        info!("watches synced; ready");
        ctx.claims.synced(stores.clone());
        readiness.set_ready();
        let traffic =
            (ctx.settings.utilization_interval).map(|every| traffic::poll(&ctx, &stores, every));
        future::join3(
            count_phases(&stores, &metrics),
            ctx.outage.probe(OUTAGE_PROBE_INTERVAL),
            future::OptionFuture::from(traffic),
        )
        .await;
    };
    // Polled in the controllers' own task, not spawned: a store's readiness signal wakes only
    // one waiting task (kube-runtime's DelayedInit keeps a single waker), and the controller
    // waits on it too.
    let controllers = Box::pin(futures::future::join_all(controllers));
    if let Either::Right(((), controllers)) = future::select(controllers, Box::pin(synced)).await {
        controllers.await;
    }
}

/// Keeps the resources-by-phase gauges current from the watch caches.
async fn count_phases(stores: &[reflector::Store<FastConnectConnection>], metrics: &Metrics) {
    let mut every = tokio::time::interval(PHASE_COUNT_INTERVAL);
    loop {
        every.tick().await;
        let now = jiff::Timestamp::now();
        let phases = stores
            .iter()
            .flat_map(|store| store.state())
            .map(|fcc| match &fcc.status {
                Some(s) => (s.phase, status::time_in_phase(s, now)),
                None => (None, None),
            });
        metrics.set_phases(phases);
    }
}

async fn run_one(
    api: Api<FastConnectConnection>,
    namespace: Option<String>,
    ctx: Arc<Context>,
    reader: reflector::Store<FastConnectConnection>,
    writer: reflector::store::Writer<FastConnectConnection>,
) {
    // Our own status writes must not wake the reconciler (the requeue timer polls), but spec
    // changes, finalizer changes, deletion and the pause annotation must.
    let changes = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(trim_for_cache)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::finalizers)
                .combine(pause_switch),
            Default::default(),
        );
    let config = controller::Config::default().concurrency(ctx.settings.concurrency);
    let metrics = ctx.metrics.clone();
    let released = ctx.outage.releases(namespace);
    Controller::for_stream(changes, reader)
        .with_config(config)
        .reconcile_on(released)
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

/// kubectl's copy of the last applied object, kept only by client-side `kubectl apply`.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a watched resource what the operator never reads before the cache keeps it:
/// managed fields and kubectl's last-applied copy are most of an object's size. Every write
/// is a patch of the fields it sets, so nothing dropped here is ever written back.
fn trim_for_cache(fcc: &mut FastConnectConnection) {
    fcc.managed_fields_mut().clear();
    fcc.annotations_mut().remove(LAST_APPLIED);
}

/// Changes when the resource is paused or resumed.
fn pause_switch(fcc: &FastConnectConnection) -> Option<u64> {
    Some(u64::from(fcc.is_paused()))
}

async fn reconcile(fcc: Arc<FastConnectConnection>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", object = %format!("{}/{}", fcc.namespace().unwrap_or_default(), fcc.name_any()));
    async move {
        // The semaphore is never closed, so the permit always comes.
        let _permit = ctx.reconciles.acquire().await.ok();
        let timer = ctx.metrics.reconcile_started();
        // Parked again by `requeue` or `error_policy` if the API server still does not answer.
        ctx.outage.settle(ObjectRef::from_obj(fcc.as_ref()), false);
        let result = reconcile::reconcile(&fcc, &ctx).await;
        timer.finish(result.as_ref().err().map(|e| e.reason().as_str()));
        result
    }
    .instrument(span)
    .await
}

/// Errors that escaped the status (a failed status write itself) back off here.
fn error_policy(fcc: Arc<FastConnectConnection>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(object = %fcc.name_any(), %error, "reconcile failed");
    park_if_api_down(&ctx, &fcc, Some(error));
    Action::requeue(ctx.backoff.next(&key(&fcc), error.retry_after()))
}

fn key(fcc: &FastConnectConnection) -> String {
    fcc.uid().unwrap_or_else(|| fcc.name_any())
}

fn api(fcc: &FastConnectConnection, ctx: &Context) -> Api<FastConnectConnection> {
    Api::namespaced(ctx.kube.clone(), &fcc.namespace().unwrap_or_default())
}

fn park_if_api_down(ctx: &Context, fcc: &FastConnectConnection, error: Option<&Error>) {
    if error.is_some_and(Error::api_down) {
        ctx.outage.settle(ObjectRef::from_obj(fcc), true);
    }
}

/// The next look at this resource, from the reason of this reconcile: poll cadence, backoff, or
/// wait for a spec change.
fn requeue(
    ctx: &Context,
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
    report: &Report,
    error: Option<&Error>,
) -> Action {
    let key = key(fcc);
    park_if_api_down(ctx, fcc, error);
    let reason = error.map_or(report.reason, Diagnosis::reason);
    match reason.retry() {
        Retry::SpecChange => Action::await_change(),
        Retry::Backoff => {
            Action::requeue(ctx.backoff.next(&key, error.and_then(|e| e.retry_after())))
        }
        Retry::Poll => {
            ctx.backoff.reset(&key);
            Action::requeue(backoff::jitter(reconcile::poll_cadence(ctx, status)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_neither_managed_fields_nor_the_last_applied_copy() {
        let mut fcc: FastConnectConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": {"name": "hk", "namespace": "net",
                "annotations": {LAST_APPLIED: "{\"spec\":{}}", "fastconnect.dev/paused": "true"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"companyUsername": "acme",
                "credentials": {"apiKeySecretRef": {"name": "a"}, "oracleOcidSecretRef": {"name": "o"}},
                "sourcePort": {"name": "p"}, "destination": {"metro": "HKG"},
                "speedMbps": 100, "term": {"duration": 1, "unit": "m"}}
        }))
        .unwrap();
        trim_for_cache(&mut fcc);
        assert!(fcc.managed_fields().is_empty());
        assert!(!fcc.annotations().contains_key(LAST_APPLIED));
        assert!(fcc.is_paused(), "annotations the operator reads stay");
    }
}
