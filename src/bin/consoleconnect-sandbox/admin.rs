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

use crate::config::check_rate;
use crate::error::ApiError;
use crate::state::{ACTIVE, AdminRefusal, AppState, DELETED, Settings};

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
        .route(
            "/_sandbox/connections/{id}/delete",
            post(delete_out_of_band),
        )
        .route("/_sandbox/faults", get(faults).put(update_faults))
        .route("/_sandbox/lifecycle", get(lifecycle).put(update_lifecycle))
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
    match app.force_status(id, status, error_reason, out_of_band) {
        Ok(connection) => {
            tracing::info!(id, status, "status set by admin");
            Ok(Json(connection))
        }
        Err(AdminRefusal::NotFound) => {
            Err(ApiError::not_found(format!("Connection '{id}' not found")))
        }
        Err(AdminRefusal::Deleted) => {
            Err(ApiError::not_found(format!("Connection '{id}' is deleted")))
        }
        Err(AdminRefusal::BeingDeleted) => Err(ApiError::conflict(format!(
            "Connection '{id}' is being deleted; only an out-of-band delete applies"
        ))),
    }
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
