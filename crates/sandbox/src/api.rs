//! The public API under `/api`, as far as ordering Oracle connections and changing their speed
//! and name needs it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, MatchedPath, Path, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::config::{CompanyConfig, ConnectionShape, MetroConfig, PortConfig};
use crate::error::{ApiError, reshape};
use crate::state::{AppState, ChangeRefusal, Search, normalise_status, port_capacity, timestamp};
use crate::validate::{change_body, update_body, validate};

type App = Arc<AppState>;

const PORTS: &str = "/api/company/{company}/ports";
const METROS: &str = "/api/company/oracle/metro/capabilities";
const CREATE: &str = "/api/v2/company/{company}/connections/layer2";
const CONNECTION_V2: &str = "/api/v2/company/{company}/connections/{id}";
const CONNECTIONS_V2: &str = "/api/v2/company/{company}/connections";
const CONNECTION_V1: &str = "/api/company/{company}/connections/{id}";
const CONNECTIONS_V1: &str = "/api/company/{company}/connections";
const CHANGE: &str = "/api/company/{company}/connections/{id}/change";
const UTILIZATION: &str = "/api/company/{company}/connections/{id}/utilization";

/// What a read-only key lacks for the day-2 calls.
const UPDATE_ACTION: &str = "network:UpdateConnection";

/// Stats label, method and route of every endpoint; the labels match the client's `Endpoint`.
pub const ENDPOINTS: [(&str, Method, &str); 12] = [
    ("list_ports", Method::GET, PORTS),
    ("oracle_metros", Method::GET, METROS),
    ("create_layer2", Method::PUT, CREATE),
    ("get_connection", Method::GET, CONNECTION_V2),
    ("search_connections", Method::GET, CONNECTIONS_V2),
    ("delete_connection", Method::DELETE, CONNECTION_V2),
    ("get_connection_v1", Method::GET, CONNECTION_V1),
    ("list_connections", Method::GET, CONNECTIONS_V1),
    ("update_connection", Method::POST, CONNECTION_V2),
    ("change_request", Method::PUT, CHANGE),
    ("withdraw_change", Method::DELETE, CHANGE),
    ("connection_utilization", Method::GET, UTILIZATION),
];

/// Stats label of requests to `/api` that match no endpoint.
pub const OTHER: &str = "other";

/// Fixture timestamps; ports and metros never change.
const FIXTURE_CREATED_AT: &str = "2024-08-19T01:09:16.376Z";
const FIXTURE_DELETED_AT: &str = "2024-09-02T03:04:05.678Z";

/// The company a valid API key belongs to, and whether the key may only read.
#[derive(Clone)]
pub struct Caller {
    company: String,
    read_only: bool,
}

pub fn router(app: App) -> Router<App> {
    Router::new()
        .route(PORTS, get(list_ports))
        .route(METROS, get(oracle_metros))
        .route(CREATE, put(create_layer2))
        .route(
            CONNECTION_V2,
            get(get_connection)
                .delete(delete_connection)
                .post(update_connection),
        )
        .route(CHANGE, put(change_request).delete(withdraw_change))
        .route(UTILIZATION, get(connection_utilization))
        .route(CONNECTIONS_V2, get(search_connections))
        .route(CONNECTION_V1, get(get_connection))
        .route(CONNECTIONS_V1, get(list_connections))
        .route_layer(middleware::from_fn_with_state(app, gate))
}

/// Counts the request, then applies latency, injected faults, authentication and answer faults
/// ([`crate::answers`]); errors are written in the error shape in force.
async fn gate(State(app): State<App>, request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>();
    let label = endpoint_label(request.method(), matched.map(MatchedPath::as_str));
    // Counted per company too: the company whose key made the call (not the path's, which is
    // `oracle` for the metros).
    let company = authenticate(&app, request.headers())
        .ok()
        .map(|caller| caller.company);
    let response = guard(&app, label, request, next).await;
    app.record_request(label, response.status().as_u16(), company.as_deref());
    reshape(response, app.settings().behaviour.error_shape)
}

async fn guard(app: &AppState, label: &str, mut request: Request, next: Next) -> Response {
    let faults = app.settings().faults;
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if roll(faults.throttle_rate) {
        return ApiError::throttled(faults.retry_after_seconds).into_response();
    }
    if roll(faults.error_rate) {
        let message = "Internal server error (injected by the sandbox)";
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
    }
    match authenticate(app, request.headers()) {
        Ok(caller) => {
            // An answer fault replaces the whole answer: the request is not carried out.
            if let Some(answer) = app.answers.answer(label) {
                return answer;
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

pub fn endpoint_label(method: &Method, matched_path: Option<&str>) -> &'static str {
    ENDPOINTS
        .iter()
        .find(|(_, m, path)| m == method && Some(*path) == matched_path)
        .map_or(OTHER, |(label, _, _)| label)
}

/// True with probability `rate`; 0 and 1 are exact.
pub fn roll(rate: f64) -> bool {
    rate >= 1.0 || (rate > 0.0 && rand::random::<f64>() < rate)
}

fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("Missing Authorization header"))?;
    let text = value.to_str().unwrap_or_default();
    let key = text
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer <API key>'"))?;
    app.fixtures
        .company_of_key(key)
        .map(|(company, read_only)| Caller {
            company: company.to_owned(),
            read_only,
        })
        .ok_or_else(|| ApiError::unauthorized("Invalid API key"))
}

/// Companies see only themselves.
fn authorize<'a>(
    app: &'a AppState,
    caller: &Caller,
    company: &str,
) -> Result<&'a CompanyConfig, ApiError> {
    if caller.company != company {
        return Err(ApiError::forbidden(format!(
            "This API key may not access company '{company}'"
        )));
    }
    app.fixtures
        .company(company)
        .ok_or_else(|| ApiError::forbidden(format!("Unknown company '{company}'")))
}

/// Read-only keys may not change anything: the documented 401 "Access denied".
fn authorize_write(caller: &Caller, action: &str, resource: &str) -> Result<(), ApiError> {
    if caller.read_only {
        return Err(ApiError::access_denied(action, resource));
    }
    Ok(())
}

async fn list_ports(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(company): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let company = authorize(&app, &caller, &company)?;
    let include_deleted = match query.get("deleted").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Query parameter 'deleted' must be true or false, not '{other}'"
            )));
        }
    };
    let usage = app.port_usage(&company.username);
    let results: Vec<Value> = company
        .ports
        .iter()
        .filter(|port| include_deleted || !port.deleted)
        .map(|port| {
            let used = usage.get(&port.id).copied().unwrap_or(0);
            port_json(company, port, used)
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

async fn oracle_metros(State(app): State<App>) -> Json<Value> {
    let shape = app.settings().behaviour.connection_shape;
    let results: Vec<Value> = app
        .fixtures
        .metros()
        .iter()
        .map(|metro| metro_json(metro, shape))
        .collect();
    Json(json!({ "results": results }))
}

async fn create_layer2(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(company): Path<String>,
    body: Bytes,
) -> Response {
    let received_at = jiff::Timestamp::now();
    let outcome = create(&app, &caller, &company, &body);
    let created = outcome.is_ok();
    let (status, connection_id, response) = match outcome {
        Ok(connection) => lose_response_maybe(&app, connection),
        Err(err) => (err.status(), None, err.into_response()),
    };
    app.record_create(json!({
        "receivedAt": timestamp(received_at),
        "company": company,
        "status": status.as_u16(),
        "connectionId": connection_id,
        "body": received_body(&body),
    }));
    // The order is stored; only the answer is late.
    let delay = app.settings().behaviour.create_delay;
    if created && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

fn create(app: &AppState, caller: &Caller, company: &str, body: &[u8]) -> Result<Value, ApiError> {
    let owner = authorize(app, caller, company)?;
    let resource = format!("company/{}/connections", owner.id);
    authorize_write(caller, "network:CreateConnection", &resource)?;
    let order =
        validate(&app.fixtures, company, &json_body(body)?).map_err(ApiError::bad_request)?;
    let connection = app.insert(company, order).map_err(ApiError::bad_request)?;
    tracing::info!(
        company,
        id = connection["id"].as_str(),
        "connection created"
    );
    Ok(connection)
}

/// Simulates a gateway losing the response of a create that was carried out.
fn lose_response_maybe(
    app: &AppState,
    connection: Value,
) -> (StatusCode, Option<String>, Response) {
    let id = connection["id"].as_str().map(str::to_owned);
    if roll(app.settings().faults.lost_create_rate) {
        let err = ApiError::new(
            StatusCode::BAD_GATEWAY,
            "Bad gateway (injected by the sandbox)",
        );
        return (err.status(), id, err.into_response());
    }
    (StatusCode::OK, id, Json(connection).into_response())
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("The request body is not valid JSON: {err}")))
}

/// The body as JSON for the stats, or as text when it is not JSON.
fn received_body(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// `GET` by id, under `/api/v2` and the older `/api` path alike.
async fn get_connection(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((company, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &caller, &company)?;
    let deleted_reads = app.settings().behaviour.deleted_reads;
    app.visible(&company, &id, deleted_reads)
        .map(Json)
        .ok_or_else(|| connection_not_found(&id))
}

/// The older unpaged list: every connection not DELETED, past the listing lag.
async fn list_connections(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(company): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &caller, &company)?;
    Ok(Json(json!({ "results": app.visible_list(&company) })))
}

/// `?page=&count=&status=`, all required as the spec marks them.
async fn search_connections(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(company): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &caller, &company)?;
    let max_count = app.settings().behaviour.search_max_count;
    let search = search_params(&query, max_count).map_err(ApiError::bad_request)?;
    Ok(Json(json!({ "results": app.search(&company, &search) })))
}

/// Reads the search's query; `Err` is a 400 message naming the parameter. A `count` above
/// `max_count` is served as `max_count`.
pub fn search_params(query: &HashMap<String, String>, max_count: u32) -> Result<Search, String> {
    let positive = |name: &str| -> Result<u64, String> {
        let text = query
            .get(name)
            .ok_or_else(|| format!("Query parameter '{name}' is required"))?;
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("Query parameter '{name}' must be a positive whole number, not '{text}'")
            })
    };
    let page = positive("page")?;
    let count = positive("count")?.min(u64::from(max_count));
    let status = query
        .get("status")
        .map(|s| normalise_status(s))
        .filter(|s| !s.is_empty())
        .ok_or("Query parameter 'status' is required and must not be empty")?;
    Ok(Search {
        status,
        page,
        count,
    })
}

async fn delete_connection(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((company, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let owner = authorize(&app, &caller, &company)?;
    let resource = format!("company/{}/connections/{id}", owner.id);
    authorize_write(&caller, "network:DeleteConnection", &resource)?;
    let connection = app
        .delete(&company, &id)
        .ok_or_else(|| connection_not_found(&id))?;
    tracing::info!(
        company,
        id,
        status = connection["status"].as_str(),
        "connection deletion requested"
    );
    Ok(Json(connection))
}

fn connection_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Connection '{id}' not found"))
}

/// Checks that `caller` may change connection `id` of `company`: scope, then write access.
fn authorize_change(
    app: &AppState,
    caller: &Caller,
    company: &str,
    id: &str,
) -> Result<(), ApiError> {
    let owner = authorize(app, caller, company)?;
    let resource = format!("company/{}/connections/{id}", owner.id);
    authorize_write(caller, UPDATE_ACTION, &resource)
}

fn change_refused(id: &str, refusal: ChangeRefusal) -> ApiError {
    match refusal {
        ChangeRefusal::NotFound => connection_not_found(id),
        ChangeRefusal::Invalid(message) => ApiError::bad_request(message),
    }
}

/// "Update a connection": a lower speed and/or a new name, applied at once.
async fn update_connection(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((company, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize_change(&app, &caller, &company, &id)?;
    let update = update_body(&json_body(&body)?).map_err(ApiError::bad_request)?;
    let connection = app
        .update(&company, &id, &update)
        .map_err(|refusal| change_refused(&id, refusal))?;
    tracing::info!(
        company,
        id,
        speed = update.speed,
        name = update.name,
        "connection updated"
    );
    Ok(Json(connection))
}

/// "Create or update a change request" for a new speed.
async fn change_request(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((company, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let received_at = jiff::Timestamp::now();
    let outcome = request_change(&app, &caller, &company, &id, &body);
    let status = outcome
        .as_ref()
        .map_or_else(ApiError::status, |_| StatusCode::OK);
    app.record_change(json!({
        "receivedAt": timestamp(received_at),
        "company": company,
        "connectionId": id,
        "status": status.as_u16(),
        "body": received_body(&body),
    }));
    let connection = match outcome {
        Ok(connection) => connection,
        Err(err) => return err.into_response(),
    };
    // The change is stored; only the answer is late.
    let delay = app.settings().behaviour.change_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Json(connection).into_response()
}

fn request_change(
    app: &AppState,
    caller: &Caller,
    company: &str,
    id: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    authorize_change(app, caller, company, id)?;
    let speed = change_body(&json_body(body)?).map_err(ApiError::bad_request)?;
    let connection = app
        .request_change(company, id, speed)
        .map_err(|refusal| change_refused(id, refusal))?;
    tracing::info!(company, id, speed, "change requested");
    Ok(connection)
}

/// "Reject or cancel a change request", on the side that proposed it: WITHDRAWN.
async fn withdraw_change(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((company, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize_change(&app, &caller, &company, &id)?;
    let connection = app
        .withdraw_change(&company, &id)
        .map_err(|refusal| change_refused(&id, refusal))?;
    tracing::info!(company, id, "change request withdrawn");
    Ok(Json(connection))
}

/// "Get connection utilization data": `start`, `end` and `resolution` are all required.
async fn connection_utilization(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((company, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    authorize(&app, &caller, &company)?;
    let window = crate::traffic::window(&query).map_err(ApiError::bad_request)?;
    app.utilization(&company, &id, window)
        .map(Json)
        .ok_or_else(|| connection_not_found(&id))
}

/// A port; `used` is the Mbps its live connections take.
fn port_json(company: &CompanyConfig, port: &PortConfig, used: u64) -> Value {
    let speed_name = port
        .speed_name
        .clone()
        .unwrap_or_else(|| format!("{} Mbps", port.speed_mbps));
    json!({
        "id": port.id,
        "name": port.name,
        "speed": {"value": port.speed_mbps, "name": speed_name},
        "tags": [],
        "dataCenterFacilityId": port.data_center_facility_id,
        "popId": port.pop_id,
        "metroId": port.metro_id,
        "companyId": company.id,
        "status": port.status,
        "capacity": {"remaining": port_capacity(port).saturating_sub(used)},
        "updatedAt": FIXTURE_CREATED_AT,
        "createdAt": FIXTURE_CREATED_AT,
        "deleted": port.deleted,
        "deletedAt": port.deleted.then_some(FIXTURE_DELETED_AT),
        "paymentType": "invoice",
        "payg": true,
    })
}

fn metro_json(metro: &MetroConfig, shape: ConnectionShape) -> Value {
    let facility = match shape {
        ConnectionShape::Reference => "firstDataCenterFacilityIdInMetro",
        ConnectionShape::Spec => "firstDataCenterFacilityId",
    };
    let mut json = json!({
        "name": metro.name,
        "code": metro.code,
        "logo": null,
        "canCreateController": false,
        "tags": [],
        "description": "",
        "country": metro.country,
        "rir": metro.rir,
        "regionIds": metro.region_ids,
        "ready": metro.ready,
        "id": metro.id,
        "deletedAt": metro.deleted.then_some(FIXTURE_DELETED_AT),
        "createdAt": "2017-12-18T00:45:44.120Z",
        "updatedAt": "2024-02-25T05:02:47.267Z",
        "deleted": metro.deleted,
        "capabilities": {"layer2": metro.layer2},
    });
    if let Some(object) = json.as_object_mut() {
        let id = metro.first_data_center_facility_id_in_metro.clone();
        object.insert(facility.into(), Value::from(id));
    }
    json
}

/// Answers requests that match no route; under `/api` they are counted as `other`.
pub async fn fallback(State(app): State<App>, method: Method, uri: axum::http::Uri) -> Response {
    let err = ApiError::not_found(format!("No route for {method} {}", uri.path()));
    if uri.path().starts_with("/api/") {
        app.record_request(OTHER, err.status().as_u16(), None);
        return reshape(err.into_response(), app.settings().behaviour.error_shape);
    }
    err.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_method_and_route() {
        assert_eq!(
            endpoint_label(&Method::PUT, Some(ENDPOINTS[2].2)),
            "create_layer2"
        );
        assert_eq!(
            endpoint_label(&Method::GET, Some(CONNECTION_V2)),
            "get_connection"
        );
        assert_eq!(
            endpoint_label(&Method::DELETE, Some(CONNECTION_V2)),
            "delete_connection"
        );
        assert_eq!(
            endpoint_label(&Method::GET, Some(CONNECTION_V1)),
            "get_connection_v1"
        );
        assert_eq!(
            endpoint_label(&Method::GET, Some(CONNECTIONS_V2)),
            "search_connections"
        );
        assert_eq!(
            endpoint_label(&Method::POST, Some(CONNECTION_V2)),
            "update_connection"
        );
        assert_eq!(endpoint_label(&Method::PUT, Some(CHANGE)), "change_request");
        assert_eq!(
            endpoint_label(&Method::DELETE, Some(CHANGE)),
            "withdraw_change"
        );
        assert_eq!(endpoint_label(&Method::POST, Some(CHANGE)), OTHER);
        assert_eq!(endpoint_label(&Method::POST, Some(CONNECTION_V1)), OTHER);
        assert_eq!(endpoint_label(&Method::GET, None), OTHER);
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn search_parameters_are_all_required() {
        let ok = search_params(
            &query(&[
                ("page", "2"),
                ("count", "20"),
                ("status", "pending acceptance"),
            ]),
            50,
        )
        .unwrap();
        assert_eq!(
            (ok.page, ok.count, ok.status.as_str()),
            (2, 20, "PENDING_ACCEPTANCE")
        );
        let clamped = search_params(
            &query(&[("page", "1"), ("count", "500"), ("status", "ACTIVE")]),
            50,
        )
        .unwrap();
        assert_eq!(clamped.count, 50);
        for (pairs, named) in [
            (&[("count", "1"), ("status", "ACTIVE")][..], "'page'"),
            (&[("page", "1"), ("status", "ACTIVE")][..], "'count'"),
            (&[("page", "1"), ("count", "1")][..], "'status'"),
            (
                &[("page", "0"), ("count", "1"), ("status", "ACTIVE")][..],
                "'page'",
            ),
            (
                &[("page", "1"), ("count", "x"), ("status", "ACTIVE")][..],
                "'count'",
            ),
            (
                &[("page", "-1"), ("count", "1"), ("status", "ACTIVE")][..],
                "'page'",
            ),
            (
                &[("page", "1"), ("count", "1"), ("status", " ")][..],
                "'status'",
            ),
        ] {
            let err = search_params(&query(pairs), 50).unwrap_err();
            assert!(err.contains(named), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn rates_of_zero_and_one_are_exact() {
        assert!((0..1000).all(|_| !roll(0.0)));
        assert!((0..1000).all(|_| roll(1.0)));
    }
}
