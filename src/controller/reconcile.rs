//! One reconcile, live or being deleted: read inputs → observe Console Connect → decide (pure,
//! [`super::decide`]) → act (one Console Connect call or Kubernetes write) → write status.

use jiff::{SignedDuration, Timestamp};
use kube::{Api, ResourceExt, api::ListParams, runtime::controller::Action};
use tracing::{debug, info, warn};

use crate::{
    consoleconnect::Connection,
    crd::{
        ChangeState, DeletionPolicy, FastConnectConnection, FastConnectConnectionStatus,
        PAUSED_ANNOTATION, Phase,
    },
};

use super::{
    Context, Diagnosis, Error, api,
    backoff::jitter,
    cache::{ago, instant_of},
    change::Wanted,
    day2::{Target, apply_change},
    decide::{self, Decision, Expected, Facts, Observation, Step},
    events::{RECONCILE, publish, publish_transition},
    finalizer::{FINALIZER, add_finalizer, has_finalizer, remove_finalizer},
    inputs::Secrets,
    reason::Reason,
    remote::Remote,
    requeue, resolve,
    status::{self, News, Report},
};

/// How an act ended.
enum Outcome {
    /// The status tells the story: `reason`, with `detail` for the message.
    Reported {
        reason: Reason,
        detail: Option<String>,
        duplicates: Vec<String>,
        news: Vec<News>,
    },
    /// The finalizer is gone; the object may be gone too.
    Released,
}

impl Outcome {
    fn reported(reason: Reason) -> Outcome {
        Outcome::Reported {
            reason,
            detail: None,
            duplicates: Vec::new(),
            news: Vec::new(),
        }
    }
}

pub(super) async fn reconcile(fcc: &FastConnectConnection, ctx: &Context) -> Result<Action, Error> {
    let deleting = fcc.metadata.deletion_timestamp.is_some();
    if deleting && !has_finalizer(fcc) {
        return Ok(Action::await_change());
    }
    if ctx.written.is_behind(fcc).await {
        debug!("the watch cache does not show our last status write yet; looking again later");
        let status = fcc.status.clone().unwrap_or_default();
        return Ok(Action::requeue(jitter(poll_cadence(ctx, &status))));
    }
    let api = api(fcc, ctx);
    if fcc.is_paused() {
        return paused(fcc, ctx, &api, deleting).await;
    }
    let mut current = fcc.clone();
    let mut status = fcc.status.clone().unwrap_or_default();
    let outcome = run(fcc, ctx, &api, &mut current, &mut status).await;
    if let Err(error) = &outcome {
        warn!(reason = %error.reason(), %error, "reconcile stopped short");
        if error.key_refused() {
            // The Secret may already hold a rotated key: read it afresh next time.
            let secret = &fcc.spec.credentials.api_key_secret_ref.name;
            ctx.secrets
                .forget(&fcc.namespace().unwrap_or_default(), secret)
                .await;
        }
    }
    if matches!(outcome, Ok(Outcome::Released)) {
        return Ok(Action::await_change());
    }
    let report = report(fcc, &status, &outcome, deleting);
    let next = status::next(fcc, status, &report);
    publish_transition(ctx, fcc, current.status.as_ref(), &next, &report).await;
    match status::write(&api, &current, &next).await? {
        Some(written) => {
            ctx.outage.answered();
            ctx.written.record(&written).await;
            observe_left_phase(ctx, current.status.as_ref(), &next);
        }
        // Written earlier in this reconcile (the finalizer, the create marker).
        None if current.resource_version() != fcc.resource_version() => {
            ctx.written.record(&current).await;
        }
        None => {}
    }
    Ok(requeue(ctx, fcc, &next, &report, outcome.as_ref().err()))
}

/// No Console Connect call while paused. Letting go of a resource whose deletion needs no call
/// (Orphan, Observe) still happens: it is only a Kubernetes write.
async fn paused(
    fcc: &FastConnectConnection,
    ctx: &Context,
    api: &Api<FastConnectConnection>,
    deleting: bool,
) -> Result<Action, Error> {
    let orphan = fcc.spec.deletion_policy == DeletionPolicy::Orphan || fcc.observe_only();
    if deleting && orphan {
        let secrets = Secrets::new(ctx.kube.clone(), &namespace(fcc), &ctx.secrets);
        release(fcc, ctx, api, &secrets).await?;
        return Ok(Action::await_change());
    }
    let status = fcc.status.clone().unwrap_or_default();
    let why = if deleting {
        format!(
            "paused by annotation {PAUSED_ANNOTATION}: the connection is not disconnected and \
             the resource stays until the annotation is removed or spec.deletionPolicy is Orphan"
        )
    } else {
        format!(
            "paused by annotation {PAUSED_ANNOTATION}: no Console Connect calls until it is \
             removed"
        )
    };
    let phase = if deleting {
        Phase::Deleting
    } else {
        status.phase.unwrap_or(Phase::Pending)
    };
    let (reason, message) = match previous_ready(fcc) {
        Some((reason, message)) if !deleting => (reason, message.to_owned()),
        _ => (Reason::ReconcilePaused, why.clone()),
    };
    let report = Report {
        phase,
        reason,
        message,
        failure: Some((Reason::ReconcilePaused, why)),
        news: Vec::new(),
    };
    let next = status::next(fcc, status, &report);
    publish_transition(ctx, fcc, fcc.status.as_ref(), &next, &report).await;
    if let Some(written) = status::write(api, fcc, &next).await? {
        ctx.outage.answered();
        ctx.written.record(&written).await;
        observe_left_phase(ctx, fcc.status.as_ref(), &next);
    }
    Ok(Action::await_change())
}

/// Once a status leaving a phase is written, how long the phase lasted.
fn observe_left_phase(
    ctx: &Context,
    before: Option<&FastConnectConnectionStatus>,
    after: &FastConnectConnectionStatus,
) {
    if let Some((phase, stayed)) = status::left_phase(before, after, jiff::Timestamp::now()) {
        ctx.metrics.left_phase(phase, stayed);
    }
}

async fn run(
    fcc: &FastConnectConnection,
    ctx: &Context,
    api: &Api<FastConnectConnection>,
    current: &mut FastConnectConnection,
    status: &mut FastConnectConnectionStatus,
) -> Result<Outcome, Error> {
    let now = Timestamp::now();
    let name = fcc.ordered_name();
    let spec = &fcc.spec;
    if decide::status_lost(has_finalizer(fcc), status) {
        // Kept in the status written at the end of this reconcile, whatever happens now: the
        // search for an earlier order must not be forgotten if it fails.
        warn!("our finalizer but no status: looking for an earlier order before anything else");
        status.ordered_at = fcc
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string());
    }
    let secrets = Secrets::new(ctx.kube.clone(), &namespace(fcc), &ctx.secrets);
    let known_port = status
        .port_id
        .clone()
        .or_else(|| spec.source_port.id.clone());
    let wanted_name = fcc.connection_name();
    let facts = facts(
        fcc,
        ctx,
        status,
        now,
        &name,
        &wanted_name,
        known_port.as_deref(),
    );
    let look = decide::look(&facts);
    let needs_api = look.id.is_some() || look.by_name || !facts.deleting;
    if !needs_api {
        let decision = decide::decide(&facts, &Observation::default());
        return act(fcc, ctx, api, None, current, status, decision).await;
    }

    let key = secrets
        .api_key(&spec.credentials.api_key_secret_ref)
        .await?;
    let remote = Remote::new(ctx, &spec.company_username, &key);
    let mut seen = Observation::default();
    if let Some(id) = &look.id {
        // Deletion reads the connection itself: a shared search may predate our DELETE.
        seen.by_id = Some(if facts.deleting {
            remote.read(id).await?
        } else {
            let fresh_after = observation_fresh_after(ctx, status);
            remote
                .observe(id, status.remote_status.as_deref(), fresh_after)
                .await?
        });
    }
    let mut resolved_port = None;
    if look.by_name {
        if known_port.is_none() {
            resolved_port = port_by_name(&remote, fcc).await?;
        }
        let fresh_after = name_search_fresh_after(status, now, facts.settle, ctx);
        seen.named = Some(remote.named(&name, fresh_after).await?);
    }
    let port = known_port.as_deref().or(resolved_port.as_deref());
    let facts = Facts {
        order: Expected {
            port_id: port,
            ..facts.order
        },
        ..facts
    };
    let decision = decide::decide(&facts, &seen);
    act(fcc, ctx, api, Some(&remote), current, status, decision).await
}

/// How recent the read of a recorded connection must be: within the poll cadence, and while a
/// change request is in flight also begun after it was asked for, so that a request missing
/// from it is really missing.
fn observation_fresh_after(
    ctx: &Context,
    status: &FastConnectConnectionStatus,
) -> std::time::Instant {
    let cadence = ago(poll_cadence(ctx, status));
    let asked = status
        .pending_change
        .as_ref()
        .filter(|p| p.state != ChangeState::Rejected)
        .and_then(|p| p.requested_at.parse::<Timestamp>().ok())
        .map(instant_of);
    asked.map_or(cadence, |asked| asked.max(cadence))
}

/// How recent a search by name must be. Any search begun after the order may show it; only a
/// search begun after the settle window can prove it absent (or, for the verification of a
/// recorded order, prove it alone). Without an order time, anything searched within the active
/// poll interval will do.
fn name_search_fresh_after(
    status: &FastConnectConnectionStatus,
    now: Timestamp,
    settle: SignedDuration,
    ctx: &Context,
) -> std::time::Instant {
    let ordered = status
        .ordered_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    match ordered {
        Some(at) if now >= at + settle || status.connection_id.is_some() => instant_of(at + settle),
        Some(at) => instant_of(at),
        None => ago(ctx.settings.poll_active),
    }
}

fn facts<'a>(
    fcc: &'a FastConnectConnection,
    ctx: &Context,
    status: &'a FastConnectConnectionStatus,
    now: Timestamp,
    name: &'a str,
    wanted_name: &'a str,
    port_id: Option<&'a str>,
) -> Facts<'a> {
    Facts {
        now,
        generation: fcc.metadata.generation,
        created: fcc.metadata.creation_timestamp.as_ref().map(|t| t.0),
        deleting: fcc.metadata.deletion_timestamp.is_some(),
        has_finalizer: has_finalizer(fcc),
        orphan: fcc.spec.deletion_policy == DeletionPolicy::Orphan,
        adopt_id: fcc.spec.connection_id.as_deref(),
        status,
        order: Expected {
            name,
            port_id,
            speed_mbps: fcc.spec.speed_mbps,
            live_speed_mbps: status.speed_mbps,
            metro_id: status
                .dest_metro_id
                .as_deref()
                .or(fcc.spec.destination.metro_id.as_deref()),
        },
        wanted: Wanted {
            speed_mbps: fcc.spec.speed_mbps,
            name: wanted_name,
            observe: fcc.observe_only(),
            generation: fcc.metadata.generation,
        },
        settle: SignedDuration::try_from(ctx.settings.order_settle).unwrap_or(SignedDuration::MAX),
    }
}

/// The source port's id when the spec names it (a wiped status lost the resolved id): the
/// only port of that name, else none, and then nothing found can match.
async fn port_by_name(
    remote: &Remote<'_>,
    fcc: &FastConnectConnection,
) -> Result<Option<String>, Error> {
    let Some(wanted) = &fcc.spec.source_port.name else {
        return Ok(None);
    };
    let ports = remote.ports().await?;
    let mut named = ports
        .items
        .iter()
        .filter(|p| &p.name == wanted && !p.deleted);
    Ok(match (named.next(), named.next()) {
        (Some(only), None) => Some(only.id.clone()),
        _ => None,
    })
}

async fn act(
    fcc: &FastConnectConnection,
    ctx: &Context,
    api: &Api<FastConnectConnection>,
    remote: Option<&Remote<'_>>,
    current: &mut FastConnectConnection,
    status: &mut FastConnectConnectionStatus,
    decision: Decision,
) -> Result<Outcome, Error> {
    let Decision {
        step,
        reason,
        duplicates,
        verified,
        change,
    } = decision;
    let reported = |detail, news| Outcome::Reported {
        reason,
        detail,
        duplicates: duplicates.clone(),
        news,
    };
    let secrets = Secrets::new(ctx.kube.clone(), &namespace(fcc), &ctx.secrets);
    let key_ref = &fcc.spec.credentials.api_key_secret_ref;
    match step {
        Step::Record(connection) => {
            if let Some(connection) = &connection {
                if !fcc.observe_only() {
                    secrets.guard(key_ref).await?;
                }
                record(status, connection);
            }
            if verified {
                status.verified_at = Some(Timestamp::now().to_string());
            }
            let detail = connection.as_ref().and_then(detail_of);
            let news = match (change, &connection, remote) {
                (Some(plan), Some(connection), Some(remote)) => {
                    let target = Target {
                        fcc,
                        api,
                        remote,
                        connection,
                    };
                    apply_change(ctx, &target, current, status, plan).await?
                }
                _ => Vec::new(),
            };
            Ok(reported(detail, news))
        }
        Step::Adopt(connection) => {
            if ctx.claims.taken_by_another(fcc, &connection.id).await {
                warn!(connection = %connection.id, "not adopting: another resource manages it");
                return Ok(Outcome::reported(Reason::ConnectionClaimed));
            }
            secrets.guard(key_ref).await?;
            *current = add_finalizer(api, current).await?;
            info!(connection = %connection.id, "adopting connection");
            record(status, &connection);
            Ok(reported(detail_of(&connection), Vec::new()))
        }
        Step::Order => {
            let Some(remote) = remote else {
                return Ok(reported(None, Vec::new()));
            };
            order(fcc, ctx, api, remote, current, status).await
        }
        Step::Wait => Ok(reported(None, Vec::new())),
        Step::Disconnect(connection) => {
            let Some(remote) = remote else {
                return Ok(reported(None, Vec::new()));
            };
            status.connection_id = Some(connection.id.clone());
            info!(connection = %connection.id, status = %connection.status, "disconnecting");
            if remote.disconnect(&connection.id).await? {
                return release(fcc, ctx, api, &secrets).await;
            }
            status.disconnect_requested_at = Some(Timestamp::now().to_string());
            Ok(reported(None, Vec::new()))
        }
        Step::Release => {
            if reason == Reason::Orphaned
                && let Some(id) = &status.connection_id
            {
                let why = if fcc.observe_only() {
                    "managementPolicy is Observe"
                } else {
                    "deletionPolicy is Orphan"
                };
                let note = format!("left connection {id} running in Console Connect: {why}");
                publish(ctx, fcc, false, reason.as_str(), RECONCILE, &note).await;
            }
            release(fcc, ctx, api, &secrets).await
        }
    }
}

/// Resolves port and metro, writes the create marker, then orders exactly once.
async fn order(
    fcc: &FastConnectConnection,
    ctx: &Context,
    api: &Api<FastConnectConnection>,
    remote: &Remote<'_>,
    current: &mut FastConnectConnection,
    status: &mut FastConnectConnectionStatus,
) -> Result<Outcome, Error> {
    let spec = &fcc.spec;
    let secrets = Secrets::new(ctx.kube.clone(), &namespace(fcc), &ctx.secrets);
    secrets
        .check_ocid(&spec.credentials.oracle_ocid_secret_ref)
        .await?;
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

    status.connection_name = Some(request.name.clone());
    status.port_id = Some(port.id.clone());
    status.dest_metro = Some(metro.code.clone());
    status.dest_metro_id = Some(metro.id.clone());
    status.dest_dcf = metro.facility_id().map(str::to_owned);
    status.ordered_at = Some(Timestamp::now().to_string());
    status.refused_generation = None;
    status.verified_at = None;

    secrets.guard(&spec.credentials.api_key_secret_ref).await?;
    *current = add_finalizer(api, current).await?;
    let marker = status::next(
        fcc,
        status.clone(),
        &Report {
            phase: Phase::Creating,
            reason: Reason::Ordering,
            message: "ordering the connection from Console Connect".into(),
            failure: None,
            news: Vec::new(),
        },
    );
    // The precondition makes the order use the spec as it is now; the marker makes a restarted
    // operator look for this order instead of placing another.
    if let Some(written) = status::write(api, current, &marker).await? {
        observe_left_phase(ctx, current.status.as_ref(), &marker);
        *current = written;
    }

    info!(connection = %request.name, "ordering connection");
    match remote.create(&request).await {
        Ok(connection) => {
            // Test hook (feature `failpoints`): a crash between the create call and the status
            // write, which must never lead to a second order.
            #[cfg(feature = "failpoints")]
            fail::fail_point!("exit-after-create", |_| {
                warn!(connection = %connection.id, "failpoint: exiting after the create call");
                std::process::exit(3)
            });
            ctx.metrics.connection_ordered();
            record(status, &connection);
            Ok(Outcome::reported(decide::remote_reason(&connection)))
        }
        Err(error) if error.nothing_was_ordered() => {
            status.ordered_at = None;
            if error.reason() == Reason::OrderRefused {
                status.refused_generation = fcc.metadata.generation;
            }
            Err(error.into())
        }
        // The outcome is unknown (timeout, 5xx, a lost answer) or the name is in use: the
        // marker stays, and the order is looked for before anything is ordered again.
        Err(error) => Err(error.into()),
    }
}

/// Removes our finalizer, then the Secret's guard if no other resource still needs the key.
async fn release(
    fcc: &FastConnectConnection,
    ctx: &Context,
    api: &Api<FastConnectConnection>,
    secrets: &Secrets<'_>,
) -> Result<Outcome, Error> {
    info!("releasing the resource");
    remove_finalizer(api, fcc).await?;
    let secret = &fcc.spec.credentials.api_key_secret_ref.name;
    let others = api
        .list(&ListParams::default())
        .await
        .map_err(Error::Finalizer)?;
    let still_needed = others.items.iter().any(|other| {
        other.uid() != fcc.uid()
            && other.finalizers().iter().any(|f| f == FINALIZER)
            && &other.spec.credentials.api_key_secret_ref.name == secret
    });
    if !still_needed {
        secrets.unguard(secret).await?;
    }
    ctx.backoff.reset(&super::key(fcc));
    Ok(Outcome::Released)
}

/// Records a connection as observed.
pub(super) fn record(status: &mut FastConnectConnectionStatus, connection: &Connection) {
    status.connection_id = Some(connection.id.clone());
    if !connection.name.is_empty() {
        status.connection_name = Some(connection.name.clone());
    }
    if let Some(speed) = connection.speed_mbps() {
        status.speed_mbps = Some(speed);
    }
    status.remote_status = Some(connection.status.as_str().to_owned());
    status.vlan = (!connection.vlans.is_empty())
        .then(|| serde_json::to_value(connection.vlans).ok())
        .flatten();
}

/// What the service adds to the story: an error reason, or a status we do not know.
fn detail_of(connection: &Connection) -> Option<String> {
    use crate::consoleconnect::ConnectionStatus as S;
    match &connection.status {
        S::Error => Some(
            connection
                .error_reason
                .clone()
                .unwrap_or_else(|| "no reason given".into()),
        ),
        S::Other(raw) => Some(format!("Console Connect reports status {raw}")),
        _ => None,
    }
}

pub(super) fn namespace(fcc: &FastConnectConnection) -> String {
    fcc.namespace().unwrap_or_default()
}

/// Progress cadence while something is on its way: the order, or a change request.
pub(super) fn poll_cadence(
    ctx: &Context,
    status: &FastConnectConnectionStatus,
) -> std::time::Duration {
    let change_in_flight = status
        .pending_change
        .as_ref()
        .is_some_and(|p| p.state != ChangeState::Rejected);
    match status.phase {
        Some(Phase::Active | Phase::Failed) if !change_in_flight => ctx.settings.poll_active,
        _ => ctx.settings.poll_progress,
    }
}

/// The Ready and Synced story of this reconcile.
fn report(
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
    outcome: &Result<Outcome, Error>,
    deleting: bool,
) -> Report {
    let phase_of = |reason: Reason| {
        if deleting {
            Phase::Deleting
        } else {
            reason
                .phase()
                .or(status.phase)
                .unwrap_or(if status.ordered_at.is_some() {
                    Phase::Creating
                } else {
                    Phase::Resolving
                })
        }
    };
    match outcome {
        Ok(Outcome::Reported {
            reason,
            detail,
            duplicates,
            news,
        }) => Report {
            phase: phase_of(*reason),
            reason: *reason,
            message: message(fcc, status, *reason, detail.as_deref()),
            failure: (!duplicates.is_empty()).then(|| {
                (
                    Reason::DuplicateConnections,
                    format!(
                        "more than one live connection carries this order: {} besides {}; \
                         delete the extra ones in Console Connect (the operator deletes none)",
                        duplicates.join(", "),
                        status
                            .connection_id
                            .as_deref()
                            .unwrap_or("the recorded one"),
                    ),
                )
            }),
            news: news.clone(),
        },
        Ok(Outcome::Released) => Report {
            phase: Phase::Deleting,
            reason: Reason::Disconnecting,
            message: String::new(),
            failure: None,
            news: Vec::new(),
        },
        Err(error) => {
            let reason = error.reason();
            let failure = Some((reason, error.to_string()));
            match (&status.connection_id, previous_ready(fcc)) {
                // The connection exists: Ready keeps telling its story; Synced says what failed.
                (Some(_), Some((ready_reason, ready_message))) if !deleting => Report {
                    phase: status.phase.unwrap_or(Phase::Creating),
                    reason: ready_reason,
                    message: ready_message.to_owned(),
                    failure,
                    news: Vec::new(),
                },
                _ if deleting => Report {
                    phase: Phase::Deleting,
                    reason,
                    message: format!(
                        "cannot disconnect yet: {error}; fix it, or set spec.deletionPolicy to \
                         Orphan to let go"
                    ),
                    failure,
                    news: Vec::new(),
                },
                _ => Report {
                    phase: phase_of(reason),
                    reason,
                    message: error.to_string(),
                    failure,
                    news: Vec::new(),
                },
            }
        }
    }
}

fn previous_ready(fcc: &FastConnectConnection) -> Option<(Reason, &str)> {
    use strum::IntoEnumIterator;
    let condition = fcc
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == status::READY)?;
    let reason = Reason::iter().find(|r| r.as_str() == condition.reason)?;
    Some((reason, condition.message.as_str()))
}

/// The Ready message of a reason.
fn message(
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
    reason: Reason,
    detail: Option<&str>,
) -> String {
    let id = status.connection_id.as_deref().unwrap_or("(unknown)");
    match reason {
        Reason::AwaitingApproval => support_handoff(fcc, status),
        Reason::Creating => "Console Connect is creating the connection".to_owned(),
        Reason::Provisioning => "approved; the circuit is being provisioned".to_owned(),
        Reason::Active => match status.speed_mbps {
            Some(speed) => format!("connection {id} is ACTIVE at {speed} Mbps"),
            None => format!("connection {id} is ACTIVE"),
        },
        Reason::UnknownRemoteStatus => detail.unwrap_or("unknown status").to_owned(),
        Reason::Denied => format!(
            "connection {id} was DENIED; contact Console Connect Support, then delete this resource"
        ),
        Reason::Cancelled => format!(
            "connection {id} was CANCELLED; delete this resource and order again if still needed"
        ),
        Reason::Disabled => format!(
            "connection {id} is disabled in Console Connect; contact Console Connect Support"
        ),
        Reason::RemoteError => format!(
            "connection {id} is in ERROR: {}",
            detail.unwrap_or("no reason given")
        ),
        Reason::DeletedOutOfBand => {
            format!("connection {id} no longer exists in Console Connect; delete this resource")
        }
        Reason::Ordering => "ordering the connection from Console Connect".to_owned(),
        Reason::ConfirmingOrder => format!(
            "the answer to the order was lost; looking for connection {} before ordering again",
            fcc.ordered_name()
        ),
        Reason::NameTaken => format!(
            "a connection named {} already exists and does not match this order; set \
             spec.connectionName to a unique name, or spec.connectionId to adopt it",
            fcc.ordered_name()
        ),
        Reason::OrderAmbiguous => format!(
            "several connections are named {}; set spec.connectionId to the one to adopt",
            fcc.ordered_name()
        ),
        Reason::OrderRefused => {
            "Console Connect refused this order; change the spec to try again".to_owned()
        }
        Reason::ConnectionNotFound => format!(
            "connection {} does not exist in company {}; check spec.connectionId",
            fcc.spec.connection_id.as_deref().unwrap_or_default(),
            fcc.spec.company_username
        ),
        // The other resource is not named: it may be in a namespace this tenant cannot read.
        Reason::ConnectionClaimed => format!(
            "connection {} is managed by another FastConnectConnection, so it was not adopted; \
             delete this resource, or the one that manages the connection first",
            fcc.spec.connection_id.as_deref().unwrap_or_default()
        ),
        Reason::Disconnecting => format!("disconnecting connection {id}"),
        Reason::ConfirmingDisconnect => format!(
            "looking for connection {} before letting go, in case its order went through",
            fcc.ordered_name()
        ),
        other => other.explain().to_owned(),
    }
}

/// What the user sends to Console Connect Support to get the Oracle side completed. The OCID is
/// named by the Secret that holds it, never printed.
pub fn support_handoff(
    fcc: &FastConnectConnection,
    status: &FastConnectConnectionStatus,
) -> String {
    let ocid = &fcc.spec.credentials.oracle_ocid_secret_ref;
    format!(
        "waiting for approval: send Console Connect Support the connection id {} and the Oracle \
         virtual circuit OCID stored in Secret {}/{} key {}",
        status.connection_id.as_deref().unwrap_or("(unknown)"),
        namespace(fcc),
        ocid.name,
        ocid.key,
    )
}
