//! Admin endpoints under `/_sandbox`: no authentication, never faulted, never counted.
//! They play the parts of Console Connect Support and Oracle, and let tests inspect and steer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::answers::AnswerFault;
use crate::api::ENDPOINTS;
use crate::config::{ConnectionShape, DeletedReads, ErrorShape, check_rate};
use crate::error::ApiError;
use crate::state::{ACTIVE, AdminRefusal, AppState, DELETED, Seed, Settings};
use crate::validate::update_body;

type App = Arc<AppState>;

const DEFAULT_ERROR_REASON: &str = "Provisioning failed (set by the sandbox)";

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/_sandbox/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/reset-stats", post(reset_stats))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/connections", get(connections))
        .route(
            "/_sandbox/connections/{id}",
            get(connection).delete(delete_out_of_band),
        )
        .route("/_sandbox/connections/{id}/activate", post(activate))
        .route("/_sandbox/connections/{id}/deny", post(deny))
        .route("/_sandbox/connections/{id}/error", post(error))
        .route("/_sandbox/connections/{id}/status", post(set_status))
        .route("/_sandbox/connections/{id}/edit", post(edit))
        .route("/_sandbox/connections/{id}/traffic", post(set_traffic))
        .route(
            "/_sandbox/connections/{id}/change/approve",
            post(approve_change),
        )
        .route(
            "/_sandbox/connections/{id}/change/reject",
            post(reject_change),
        )
        .route(
            "/_sandbox/connections/{id}/delete",
            post(delete_out_of_band),
        )
        .route("/_sandbox/faults", get(faults).put(update_faults))
        .route(
            "/_sandbox/faults/answers",
            get(answer_faults)
                .post(arm_answer_fault)
                .delete(clear_answer_faults),
        )
        .route("/_sandbox/lifecycle", get(lifecycle).put(update_lifecycle))
        .route("/_sandbox/behaviour", get(behaviour).put(update_behaviour))
        .route("/_sandbox/seed", post(seed))
}

async fn stats(State(app): State<App>) -> Json<Value> {
    Json(app.stats_json())
}

async fn reset_stats(State(app): State<App>) -> Json<Value> {
    app.reset_stats();
    Json(app.stats_json())
}

async fn reset(State(app): State<App>) -> Json<Value> {
    app.reset();
    tracing::info!("sandbox reset");
    Json(json!({"status": "reset"}))
}

async fn connections(State(app): State<App>) -> Json<Value> {
    Json(json!({ "results": app.all_connections() }))
}

async fn connection(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.connection_for_admin(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Connection '{id}' not found")))
}

async fn activate(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    force(&app, &id, ACTIVE, None, false)
}

async fn deny(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    force(&app, &id, "DENIED", None, false)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ErrorBody {
    error_reason: Option<String>,
}

async fn error(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ErrorBody = parse_optional(&body)?;
    let reason = body
        .error_reason
        .unwrap_or_else(|| DEFAULT_ERROR_REASON.to_owned());
    force(&app, &id, "ERROR", Some(reason), false)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusBody {
    status: String,
    error_reason: Option<String>,
}

/// Sets any status, including ones the operator has never heard of.
async fn set_status(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: StatusBody = parse(&body)?;
    if body.status.trim().is_empty() {
        return Err(ApiError::bad_request("'status' must not be empty"));
    }
    force(&app, &id, &body.status, body.error_reason, false)
}

/// Deletes as if done in the Console Connect web application: the API no longer shows it.
async fn delete_out_of_band(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    force(&app, &id, DELETED, None, true)
}

fn force(
    app: &AppState,
    id: &str,
    status: &str,
    error_reason: Option<String>,
    out_of_band: bool,
) -> Result<Json<Value>, ApiError> {
    let connection = app
        .force_status(id, status, error_reason, out_of_band)
        .map_err(|refusal| refused(id, refusal))?;
    tracing::info!(id, status, "status set by admin");
    Ok(Json(connection))
}

fn refused(id: &str, refusal: AdminRefusal) -> ApiError {
    match refusal {
        AdminRefusal::NotFound => ApiError::not_found(format!("Connection '{id}' not found")),
        AdminRefusal::Deleted => ApiError::not_found(format!("Connection '{id}' is deleted")),
        AdminRefusal::BeingDeleted => ApiError::conflict(format!(
            "Connection '{id}' is being deleted; only an out-of-band delete applies"
        )),
        AdminRefusal::NothingPending => {
            ApiError::conflict(format!("no change request is pending on connection {id}"))
        }
    }
}

/// Oracle approves the pending change request: the requested speed is in force.
async fn approve_change(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(&app, &id, true)
}

/// Oracle rejects the pending change request: the speed stays.
async fn reject_change(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(&app, &id, false)
}

fn decide(app: &AppState, id: &str, approve: bool) -> Result<Json<Value>, ApiError> {
    let connection = app
        .decide_change(id, approve)
        .map_err(|refusal| refused(id, refusal))?;
    tracing::info!(id, approve, "change request decided by admin");
    Ok(Json(connection))
}

/// Changes the speed and/or name as someone using the Console Connect portal would: the body
/// is checked like the update call's, the connection rules are not.
async fn edit(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Value = parse(&body)?;
    let edit = update_body(&body).map_err(ApiError::bad_request)?;
    let connection = app
        .edit(&id, &edit)
        .map_err(|refusal| refused(&id, refusal))?;
    tracing::info!(
        id,
        speed = edit.speed,
        name = edit.name,
        "connection edited by admin"
    );
    Ok(Json(connection))
}

/// `{"rxMbps": .., "txMbps": ..}`: the traffic the utilization call reports from now on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrafficUpdate {
    rx_mbps: f64,
    tx_mbps: f64,
}

async fn set_traffic(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let update: TrafficUpdate = parse(&body)?;
    let level = crate::traffic::Level {
        rx_mbps: update.rx_mbps,
        tx_mbps: update.tx_mbps,
    };
    if ![level.rx_mbps, level.tx_mbps]
        .iter()
        .all(|mbps| mbps.is_finite() && *mbps >= 0.0)
    {
        return Err(ApiError::bad_request("rxMbps and txMbps must be 0 or more"));
    }
    app.set_traffic(&id, level)
        .map_err(|refusal| refused(&id, refusal))?;
    tracing::info!(
        id,
        rx = level.rx_mbps,
        tx = level.tx_mbps,
        "traffic set by admin"
    );
    Ok(Json(
        json!({ "id": id, "rxMbps": level.rx_mbps, "txMbps": level.tx_mbps }),
    ))
}

/// Faults as the admin API shows and takes them. In updates, absent fields keep their value
/// and `retryAfterSeconds: null` stops sending `Retry-After`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultsUpdate {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    throttle_rate: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    retry_after_seconds: Option<Option<u64>>,
    lost_create_rate: Option<f64>,
}

fn faults_json(settings: &Settings) -> Json<Value> {
    let faults = &settings.faults;
    Json(json!({
        "latencyMs": millis(faults.latency),
        "errorRate": faults.error_rate,
        "throttleRate": faults.throttle_rate,
        "retryAfterSeconds": faults.retry_after_seconds,
        "lostCreateRate": faults.lost_create_rate,
    }))
}

async fn faults(State(app): State<App>) -> Json<Value> {
    faults_json(&app.settings())
}

async fn update_faults(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let update: FaultsUpdate = parse_optional_update(&body)?;
    for (field, rate) in [
        ("errorRate", update.error_rate),
        ("throttleRate", update.throttle_rate),
        ("lostCreateRate", update.lost_create_rate),
    ] {
        if let Some(rate) = rate {
            check_rate(&format!("'{field}'"), rate).map_err(ApiError::bad_request)?;
        }
    }
    let settings = app.update_settings(|settings| {
        let faults = &mut settings.faults;
        if let Some(ms) = update.latency_ms {
            faults.latency = Duration::from_millis(ms);
        }
        faults.error_rate = update.error_rate.unwrap_or(faults.error_rate);
        faults.throttle_rate = update.throttle_rate.unwrap_or(faults.throttle_rate);
        faults.lost_create_rate = update.lost_create_rate.unwrap_or(faults.lost_create_rate);
        if let Some(retry_after) = update.retry_after_seconds {
            faults.retry_after_seconds = retry_after;
        }
    });
    tracing::info!(faults = ?settings.faults, "faults changed");
    Ok(faults_json(&settings))
}

async fn answer_faults(State(app): State<App>) -> Json<Value> {
    Json(app.answers.to_json())
}

/// Arms a fault for the next answers of an endpoint; see [`crate::answers`].
async fn arm_answer_fault(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let fault: AnswerFault = parse(&body)?;
    let known = ENDPOINTS
        .iter()
        .any(|(label, _, _)| *label == fault.endpoint);
    fault.check(known).map_err(ApiError::bad_request)?;
    tracing::info!(?fault, "answer fault armed");
    app.answers.arm(fault);
    Ok(Json(app.answers.to_json()))
}

async fn clear_answer_faults(State(app): State<App>) -> Json<Value> {
    app.answers.clear();
    Json(app.answers.to_json())
}

/// Lifecycle settings; changes apply to connections created afterwards.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LifecycleUpdate {
    creating_delay_ms: Option<u64>,
    approval_delay_ms: Option<u64>,
    deleting_delay_ms: Option<u64>,
    manual_approval: Option<bool>,
}

fn lifecycle_json(settings: &Settings) -> Json<Value> {
    let lifecycle = &settings.lifecycle;
    Json(json!({
        "creatingDelayMs": millis(lifecycle.creating_delay),
        "approvalDelayMs": millis(lifecycle.approval_delay),
        "deletingDelayMs": millis(lifecycle.deleting_delay),
        "manualApproval": lifecycle.manual_approval,
    }))
}

async fn lifecycle(State(app): State<App>) -> Json<Value> {
    lifecycle_json(&app.settings())
}

async fn update_lifecycle(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let update: LifecycleUpdate = parse_optional_update(&body)?;
    let settings = app.update_settings(|settings| {
        let lifecycle = &mut settings.lifecycle;
        let set = |target: &mut Duration, ms: Option<u64>| {
            if let Some(ms) = ms {
                *target = Duration::from_millis(ms);
            }
        };
        set(&mut lifecycle.creating_delay, update.creating_delay_ms);
        set(&mut lifecycle.approval_delay, update.approval_delay_ms);
        set(&mut lifecycle.deleting_delay, update.deleting_delay_ms);
        lifecycle.manual_approval = update.manual_approval.unwrap_or(lifecycle.manual_approval);
    });
    tracing::info!(lifecycle = ?settings.lifecycle, "lifecycle changed");
    Ok(lifecycle_json(&settings))
}

/// Behaviour switches; absent fields keep their value. Lag and delay apply at once, also to
/// connections that already exist.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BehaviourUpdate {
    list_lag_ms: Option<u64>,
    create_delay_ms: Option<u64>,
    change_delay_ms: Option<u64>,
    refuse_duplicate_names: Option<bool>,
    deleted_reads: Option<String>,
    error_shape: Option<String>,
    connection_shape: Option<String>,
    search_max_count: Option<u32>,
}

fn behaviour_json(settings: &Settings) -> Json<Value> {
    let behaviour = &settings.behaviour;
    Json(json!({
        "listLagMs": millis(behaviour.list_lag),
        "createDelayMs": millis(behaviour.create_delay),
        "changeDelayMs": millis(behaviour.change_delay),
        "refuseDuplicateNames": behaviour.refuse_duplicate_names,
        "deletedReads": behaviour.deleted_reads.as_str(),
        "errorShape": behaviour.error_shape.as_str(),
        "connectionShape": behaviour.connection_shape.as_str(),
        "searchMaxCount": behaviour.search_max_count,
    }))
}

async fn behaviour(State(app): State<App>) -> Json<Value> {
    behaviour_json(&app.settings())
}

fn choice<T>(
    field: &str,
    text: Option<&str>,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, ApiError> {
    text.map(|text| {
        parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("'{field}' must be one of {allowed}, not '{text}'"))
        })
    })
    .transpose()
}

async fn update_behaviour(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let update: BehaviourUpdate = parse_optional_update(&body)?;
    let deleted_reads = choice(
        "deletedReads",
        update.deleted_reads.as_deref(),
        DeletedReads::parse,
        "'404', 'show'",
    )?;
    let error_shape = choice(
        "errorShape",
        update.error_shape.as_deref(),
        ErrorShape::parse,
        "'nested', 'flat', 'message'",
    )?;
    let connection_shape = choice(
        "connectionShape",
        update.connection_shape.as_deref(),
        ConnectionShape::parse,
        "'reference', 'spec'",
    )?;
    if update.search_max_count == Some(0) {
        return Err(ApiError::bad_request("'searchMaxCount' must be at least 1"));
    }
    let settings = app.update_settings(|settings| {
        let behaviour = &mut settings.behaviour;
        if let Some(ms) = update.list_lag_ms {
            behaviour.list_lag = Duration::from_millis(ms);
        }
        if let Some(ms) = update.create_delay_ms {
            behaviour.create_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = update.change_delay_ms {
            behaviour.change_delay = Duration::from_millis(ms);
        }
        if let Some(on) = update.refuse_duplicate_names {
            behaviour.refuse_duplicate_names = on;
        }
        if let Some(value) = deleted_reads {
            behaviour.deleted_reads = value;
        }
        if let Some(value) = error_shape {
            behaviour.error_shape = value;
        }
        if let Some(value) = connection_shape {
            behaviour.connection_shape = value;
        }
        if let Some(max) = update.search_max_count {
            behaviour.search_max_count = max;
        }
    });
    tracing::info!(behaviour = ?settings.behaviour, "behaviour changed");
    Ok(behaviour_json(&settings))
}

/// Many connections at once, for scale tests.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedBody {
    company: String,
    count: usize,
    #[serde(default = "active")]
    status: String,
    #[serde(default = "seeded")]
    name_prefix: String,
    port_id: Option<String>,
    #[serde(default)]
    speed_mbps: u64,
}

fn active() -> String {
    ACTIVE.to_owned()
}

fn seeded() -> String {
    "seeded-".to_owned()
}

/// Most connections one seed call makes.
const MAX_SEED: usize = 100_000;

async fn seed(State(app): State<App>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: SeedBody = parse(&body)?;
    if body.count > MAX_SEED {
        return Err(ApiError::bad_request(format!(
            "'count' must be at most {MAX_SEED}"
        )));
    }
    if body.status.trim().is_empty() {
        return Err(ApiError::bad_request("'status' must not be empty"));
    }
    let seed = Seed {
        company: body.company,
        count: body.count,
        status: body.status,
        name_prefix: body.name_prefix,
        port_id: body.port_id,
        speed: body.speed_mbps,
    };
    let ids = app.seed(&seed).map_err(ApiError::bad_request)?;
    tracing::info!(
        company = seed.company,
        count = ids.len(),
        status = seed.status,
        "seeded"
    );
    Ok(Json(json!({ "ids": ids, "count": ids.len() })))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Distinguishes an absent field (outer `None`, via `default`) from `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(deserializer).map(Some)
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("Invalid request body: {err}")))
}

/// An empty body counts as `{}`.
fn parse_optional<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(body)
}

fn parse_optional_update<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return parse(b"{}");
    }
    parse(body)
}
