//! The sandbox's own behaviour over HTTP: every create validation rule, the lifecycle, admin
//! actions, faults and statistics, the paged search, listing lag, late answers, duplicate
//! names, cancellation, deleted reads, error shapes, read-only keys, port capacity, the spec
//! shapes, and the day-2 calls (speed and name updates, change requests). Waiting is done by
//! polling, never by sleeping.

use fastconnect_test_support as support;

use std::process::Command;
use std::time::{Duration, Instant};

use consoleconnect::{ApiKey, ConnectionStatus, Error};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use support::sandbox::*;

const CREATE: &str = "/api/v2/company/acme/connections/layer2";
const WAIT: Duration = Duration::from_secs(10);

/// The v2 read by id (stats label `get_connection`).
fn get_path(id: &str) -> String {
    format!("/api/v2/company/acme/connections/{id}")
}

/// The older read by id (stats label `get_connection_v1`).
fn get_path_v1(id: &str) -> String {
    format!("/api/company/acme/connections/{id}")
}

const LIST_V1: &str = "/api/company/acme/connections";

fn delete_path(id: &str) -> String {
    format!("/api/v2/company/acme/connections/{id}")
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn without(mut body: Value, field: &str) -> Value {
    body.as_object_mut().unwrap().remove(field);
    body
}

fn message(response: &Value) -> &str {
    response["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {response}"))
}

async fn create(sandbox: &Sandbox, body: Value) -> (u16, Value) {
    sandbox
        .request(Method::PUT, CREATE, Some(DEFAULT_KEY), Some(body))
        .await
}

async fn create_ok(sandbox: &Sandbox, name: &str) -> String {
    let (status, body) = create(sandbox, valid_request_json(name)).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Asserts a 400 whose message names `field` (and contains `also`, if given).
async fn assert_rejected(body: Value, field: &str, also: &str) {
    let sandbox = Sandbox::start(&[]);
    let (status, response) = create(&sandbox, body).await;
    assert_eq!(status, 400, "{response}");
    let text = message(&response);
    assert!(
        text.contains(field),
        "message {text:?} does not name {field}"
    );
    assert!(
        text.contains(also),
        "message {text:?} does not say {also:?}"
    );
    assert_eq!(response["error"]["statusCode"], 400);
    assert_eq!(response["error"]["name"], "BadRequestError");
    assert!(sandbox.connections().await.is_empty());
}

async fn api_status(sandbox: &Sandbox, id: &str) -> (u16, Value) {
    sandbox
        .request(Method::GET, &get_path(id), Some(DEFAULT_KEY), None)
        .await
}

async fn wait_for_api_status(sandbox: &Sandbox, id: &str, wanted: &str) -> Value {
    eventually(&format!("{id} to be {wanted}"), WAIT, || async move {
        let (status, body) = api_status(sandbox, id).await;
        (status == 200 && body["status"] == wanted).then_some(body)
    })
    .await
}

// ---- Validation rules ----

#[tokio::test]
async fn a_valid_create_is_accepted() {
    let sandbox = Sandbox::start(&[]);
    let (status, body) = create(&sandbox, valid_request_json("fc")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CREATING");
    assert_eq!(body["type"], "LAYER2");
    assert_eq!(body["destCompany"], "oracle");
    assert_eq!(body["subconnections"], json!([]));
    assert_eq!(body["cdrBillingType"], "METRO");
    for field in [
        "id",
        "srcRegionId",
        "destRegionId",
        "createdAt",
        "updatedAt",
        "vlan",
        "speed",
    ] {
        assert!(!body[field].is_null(), "{field} missing in {body}");
    }
    assert_eq!(
        (body["deleted"].as_bool(), body["deletedAt"].clone()),
        (Some(false), Value::Null)
    );
    for field in ["srcVlanRequest", "destVlanRequest"] {
        assert!(body.get(field).is_some(), "{field} missing in {body}");
    }
}

#[tokio::test]
async fn type_must_be_layer2() {
    assert_rejected(
        with(valid_request_json("x"), "type", json!("LAYER3")),
        "'type'",
        "LAYER2",
    )
    .await;
    assert_rejected(without(valid_request_json("x"), "type"), "'type'", "LAYER2").await;
}

#[tokio::test]
async fn name_is_required_and_not_empty() {
    assert_rejected(
        without(valid_request_json("x"), "name"),
        "'name'",
        "required",
    )
    .await;
    assert_rejected(
        with(valid_request_json("x"), "name", json!("  ")),
        "'name'",
        "empty",
    )
    .await;
}

#[tokio::test]
async fn port_must_exist() {
    let body = with(
        valid_request_json("x"),
        "portId",
        json!("ffffffffffffffffffffffff"),
    );
    assert_rejected(body, "'portId'", "does not match any port").await;
}

#[tokio::test]
async fn port_must_belong_to_the_company() {
    let body = with(
        valid_request_json("x"),
        "portId",
        json!(OTHER_COMPANY_PORT.id),
    );
    assert_rejected(body, "'portId'", "not a port of company 'acme'").await;
}

#[tokio::test]
async fn port_must_be_active() {
    let body = with(valid_request_json("x"), "portId", json!(PORT_INACTIVE.id));
    assert_rejected(body, "'portId'", "not ACTIVE").await;
}

#[tokio::test]
async fn port_must_not_be_deleted() {
    let body = with(valid_request_json("x"), "portId", json!(PORT_DELETED.id));
    assert_rejected(body, "'portId'", "deleted").await;
}

#[tokio::test]
async fn speed_must_fit_the_port() {
    assert_rejected(
        with(valid_request_json("x"), "speed", json!(2000)),
        "'speed'",
        "exceeds",
    )
    .await;
    assert_rejected(
        with(valid_request_json("x"), "speed", json!(0)),
        "'speed'",
        "positive",
    )
    .await;
    assert_rejected(
        with(valid_request_json("x"), "speed", json!("1G")),
        "'speed'",
        "positive",
    )
    .await;
    let sandbox = Sandbox::start(&[]);
    let big = with(valid_request_json("x"), "portId", json!(PORT_10G.id));
    let (status, body) = create(&sandbox, with(big, "speed", json!(10000))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn dest_company_must_be_oracle() {
    let body = with(valid_request_json("x"), "destCompany", json!("aws"));
    assert_rejected(body, "'destCompany'", "oracle").await;
}

#[tokio::test]
async fn dest_metro_must_be_an_oracle_metro() {
    let body = with(
        valid_request_json("x"),
        "destMetroId",
        json!("ffffffffffffffffffffffff"),
    );
    assert_rejected(body, "'destMetroId'", "not a metro where Oracle is present").await;
}

#[tokio::test]
async fn dest_metro_must_be_ready() {
    let body = with(valid_request_json("x"), "destMetroId", json!(METRO_TYO.id));
    assert_rejected(
        with(body, "destDcf", json!(METRO_TYO.dcf)),
        "'destMetroId'",
        "not ready",
    )
    .await;
}

#[tokio::test]
async fn dest_metro_must_offer_layer2() {
    let body = with(valid_request_json("x"), "destMetroId", json!(METRO_SYD.id));
    assert_rejected(
        with(body, "destDcf", json!(METRO_SYD.dcf)),
        "'destMetroId'",
        "layer 2",
    )
    .await;
}

#[tokio::test]
async fn dest_metro_must_differ_from_the_ports() {
    let body = with(valid_request_json("x"), "destMetroId", json!(METRO_SIN.id));
    assert_rejected(
        with(body, "destDcf", json!(METRO_SIN.dcf)),
        "'destMetroId'",
        "metro of the source port",
    )
    .await;
}

#[tokio::test]
async fn creditcard_is_refused_with_the_references_reason() {
    let sandbox = Sandbox::start(&[]);
    let (status, response) = create(
        &sandbox,
        with(valid_request_json("x"), "paymentType", json!("creditcard")),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        message(&response),
        "A 'paymentType' of 'creditcard' is only supported via the Console Connect web application"
    );
    assert_rejected(
        with(valid_request_json("x"), "paymentType", json!("cash")),
        "'paymentType'",
        "invoice",
    )
    .await;
    assert_rejected(
        without(valid_request_json("x"), "paymentType"),
        "'paymentType'",
        "required",
    )
    .await;
}

#[tokio::test]
async fn dest_dcf_is_required_and_must_be_the_metros() {
    assert_rejected(
        without(valid_request_json("x"), "destDcf"),
        "'destDcf'",
        "required",
    )
    .await;
    let body = with(valid_request_json("x"), "destDcf", json!(METRO_LON.dcf));
    assert_rejected(body, "'destDcf'", METRO_HKG.dcf).await;
}

#[tokio::test]
async fn duration_is_required_and_positive() {
    assert_rejected(
        without(valid_request_json("x"), "duration"),
        "'duration'",
        "required",
    )
    .await;
    assert_rejected(
        with(valid_request_json("x"), "duration", json!(0)),
        "'duration'",
        "positive",
    )
    .await;
    assert_rejected(
        with(valid_request_json("x"), "duration", json!(-3)),
        "'duration'",
        "positive",
    )
    .await;
}

#[tokio::test]
async fn duration_unit_is_required_and_known() {
    assert_rejected(
        without(valid_request_json("x"), "durationUnit"),
        "'durationUnit'",
        "required",
    )
    .await;
    assert_rejected(
        with(valid_request_json("x"), "durationUnit", json!("h")),
        "'durationUnit'",
        "'d', 'w', 'm', 'y'",
    )
    .await;
}

#[tokio::test]
async fn class_of_service_is_optional_but_from_its_enum() {
    assert_rejected(
        with(valid_request_json("x"), "classOfService", json!("PLATINUM")),
        "'classOfService'",
        "GOLD",
    )
    .await;
    let sandbox = Sandbox::start(&[]);
    let (status, body) = create(&sandbox, without(valid_request_json("x"), "classOfService")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["classOfService"], "BRONZE");
}

#[tokio::test]
async fn vlan_requests_are_null_or_in_range() {
    for field in ["srcVlanRequest", "destVlanRequest"] {
        for bad in [json!(0), json!(4095), json!("100"), json!(1.5)] {
            assert_rejected(
                with(valid_request_json("x"), field, bad),
                field,
                "1 to 4094",
            )
            .await;
        }
    }
    let sandbox = Sandbox::start(&[]);
    let body = with(valid_request_json("x"), "srcVlanRequest", json!(4094));
    let (status, created) = create(&sandbox, with(body, "destVlanRequest", Value::Null)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["vlan"]["srcVlan"], 4094);
}

#[tokio::test]
async fn unknown_fields_are_rejected_by_name() {
    let body = with(
        valid_request_json("x"),
        "ocid",
        json!("ocid1.virtualcircuit.oc1..x"),
    );
    assert_rejected(body, "'ocid'", "unknown field").await;
}

#[tokio::test]
async fn bodies_must_be_json_objects() {
    let sandbox = Sandbox::start(&[]);
    let (status, response) = create(&sandbox, json!([1, 2])).await;
    assert_eq!(status, 400);
    assert!(message(&response).contains("JSON object"), "{response}");
    let response = reqwest::Client::new()
        .put(format!("{}{CREATE}", sandbox.url))
        .bearer_auth(DEFAULT_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(message(&body).contains("not valid JSON"), "{body}");
    // Even a body that is not JSON is recorded.
    assert_eq!(
        sandbox.stats().await.creates().last().unwrap(),
        &json!("{not json")
    );
}

// ---- Authentication and scoping ----

#[tokio::test]
async fn api_requires_a_valid_bearer_key() {
    let sandbox = Sandbox::start(&[]);
    let path = "/api/company/acme/ports";
    let (status, body) = sandbox.request(Method::GET, path, None, None).await;
    assert_eq!(
        (status, message(&body)),
        (401, "Missing Authorization header")
    );
    let (status, body) = sandbox
        .request(Method::GET, path, Some("wrong"), None)
        .await;
    assert_eq!((status, message(&body)), (401, "Invalid API key"));
    assert_eq!(body["error"]["name"], "UnauthorizedError");
    let (status, _) = sandbox
        .request(
            Method::GET,
            "/api/company/oracle/metro/capabilities",
            Some(OTHER_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200, "any valid key may read Oracle's metros");
}

#[tokio::test]
async fn companies_cannot_reach_each_other() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = create_ok(&sandbox, "fc-acme").await;
    for (method, path) in [
        (Method::GET, "/api/company/acme/ports".to_owned()),
        (Method::GET, LIST_V1.to_owned()),
        (Method::GET, search_path(DEFAULT_COMPANY, "ACTIVE", 1, 20)),
        (Method::GET, get_path(&id)),
        (Method::GET, get_path_v1(&id)),
        (Method::DELETE, delete_path(&id)),
        (Method::PUT, CREATE.to_owned()),
    ] {
        let (status, body) = sandbox
            .request(method.clone(), &path, Some(OTHER_KEY), Some(json!({})))
            .await;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    // Through its own company path, another company's connection does not exist.
    let path = format!("/api/v2/company/globex/connections/{id}");
    let (status, _) = sandbox
        .request(Method::GET, &path, Some(OTHER_KEY), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(sandbox.status_of(&id).await.as_deref(), Some("ACTIVE"));
}

#[tokio::test]
async fn ports_deleted_query_filters_deleted_ports() {
    let sandbox = Sandbox::start(&[]);
    let ids = |body: Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |query: &'static str| sandbox.request(Method::GET, query, Some(DEFAULT_KEY), None);
    let (_, live) = get("/api/company/acme/ports?deleted=false").await;
    assert!(!ids(live).contains(&PORT_DELETED.id.to_owned()));
    let (_, all) = get("/api/company/acme/ports").await;
    assert!(ids(all.clone()).contains(&PORT_DELETED.id.to_owned()));
    let deleted = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == PORT_DELETED.id)
        .unwrap();
    assert_eq!(deleted["deleted"], true);
    assert!(deleted["deletedAt"].is_string());
    let (_, explicit) = get("/api/company/acme/ports?deleted=true").await;
    assert!(ids(explicit).contains(&PORT_DELETED.id.to_owned()));
    let (status, body) = get("/api/company/acme/ports?deleted=maybe").await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("'deleted'"));
}

#[tokio::test]
async fn port_and_metro_shapes_follow_the_reference() {
    let sandbox = Sandbox::start(&[]);
    let (_, ports) = sandbox
        .request(
            Method::GET,
            "/api/company/acme/ports?deleted=false",
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    let port = &ports["results"][0];
    for field in [
        "id",
        "name",
        "speed",
        "tags",
        "dataCenterFacilityId",
        "popId",
        "metroId",
        "companyId",
        "status",
        "updatedAt",
        "createdAt",
        "deleted",
        "deletedAt",
        "paymentType",
        "payg",
    ] {
        assert!(port.get(field).is_some(), "port lacks {field}: {port}");
    }
    let (_, metros) = sandbox
        .request(
            Method::GET,
            "/api/company/oracle/metro/capabilities",
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    let metro = &metros["results"][0];
    for field in [
        "name",
        "code",
        "logo",
        "canCreateController",
        "tags",
        "description",
        "country",
        "rir",
        "regionIds",
        "ready",
        "id",
        "deletedAt",
        "createdAt",
        "updatedAt",
        "deleted",
        "capabilities",
        "firstDataCenterFacilityIdInMetro",
    ] {
        assert!(metro.get(field).is_some(), "metro lacks {field}: {metro}");
    }
    assert_eq!(metro["capabilities"]["layer2"], true);
}

// ---- Lifecycle ----

#[tokio::test]
async fn zero_delays_make_connections_active_on_the_next_read() {
    let sandbox = Sandbox::start(&INSTANT);
    let (_, created) = create(&sandbox, valid_request_json("fc")).await;
    assert_eq!(created["status"], "CREATING");
    let (status, read) = api_status(&sandbox, created["id"].as_str().unwrap()).await;
    assert_eq!((status, read["status"].as_str()), (200, Some("ACTIVE")));
}

#[tokio::test]
async fn connections_go_creating_pending_active_on_time() {
    let sandbox = Sandbox::start(&["--creating-delay", "400ms", "--approval-delay", "400ms"]);
    let id = create_ok(&sandbox, "fc").await;
    let order = ["CREATING", "PENDING", "ACTIVE"];
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + WAIT;
    let active = loop {
        let (_, body) = api_status(&sandbox, &id).await;
        let status = body["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "ACTIVE" {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "not ACTIVE in time; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ranks: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seen:?}"
    );
    // Transition times come from the configured delays, not from when they were observed.
    let created: jiff::Timestamp = active["createdAt"].as_str().unwrap().parse().unwrap();
    let updated: jiff::Timestamp = active["updatedAt"].as_str().unwrap().parse().unwrap();
    let took = updated.duration_since(created).as_millis();
    assert!((799..=801).contains(&took), "{took} ms");
}

#[tokio::test]
async fn manual_approval_holds_pending_until_activated() {
    let sandbox = Sandbox::start(&["--creating-delay", "0", "--manual-approval"]);
    let id = create_ok(&sandbox, "fc").await;
    wait_for_api_status(&sandbox, &id, "PENDING").await;
    assert_eq!(sandbox.activate(&id).await["status"], "ACTIVE");
    wait_for_api_status(&sandbox, &id, "ACTIVE").await;

    sandbox.set_manual_approval(false).await;
    sandbox.set_lifecycle(Lifecycle::instant()).await;
    let later = create_ok(&sandbox, "fc-later").await;
    wait_for_api_status(&sandbox, &later, "ACTIVE").await;
}

#[tokio::test]
async fn manual_approval_can_be_switched_on_at_runtime() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let id = create_ok(&sandbox, "fc").await;
    wait_for_api_status(&sandbox, &id, "PENDING").await;
}

#[tokio::test]
async fn deny_and_error_are_visible_through_the_api() {
    let sandbox = Sandbox::start(&["--manual-approval"]);
    let denied = create_ok(&sandbox, "fc-denied").await;
    sandbox.deny(&denied).await;
    wait_for_api_status(&sandbox, &denied, "DENIED").await;

    let failed = create_ok(&sandbox, "fc-failed").await;
    sandbox.error(&failed, "VLAN clash at Oracle").await;
    let body = wait_for_api_status(&sandbox, &failed, "ERROR").await;
    assert_eq!(body["errorReason"], "VLAN clash at Oracle");
}

#[tokio::test]
async fn delete_goes_through_deleting_then_the_connection_is_gone() {
    let sandbox = Sandbox::start(&[
        "--creating-delay",
        "0",
        "--approval-delay",
        "0",
        "--deleting-delay",
        "800ms",
    ]);
    let id = create_ok(&sandbox, "fc").await;
    let (status, body) = sandbox
        .request(Method::DELETE, &delete_path(&id), Some(DEFAULT_KEY), None)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("DELETING")));
    let (status, again) = sandbox
        .request(Method::DELETE, &delete_path(&id), Some(DEFAULT_KEY), None)
        .await;
    assert_eq!(
        (status, again["updatedAt"].clone()),
        (200, body["updatedAt"].clone()),
        "a second delete changes nothing"
    );

    let (sandbox_ref, id_ref) = (&sandbox, id.as_str());
    eventually("the connection to disappear", WAIT, || async move {
        let (status, _) = api_status(sandbox_ref, id_ref).await;
        (status == 404).then_some(())
    })
    .await;
    let (_, list) = sandbox
        .request(Method::GET, LIST_V1, Some(DEFAULT_KEY), None)
        .await;
    assert_eq!(list["results"], json!([]));
    assert_eq!(sandbox.status_of(&id).await.as_deref(), Some("DELETED"));
    let (status, _) = sandbox
        .request(Method::DELETE, &delete_path(&id), Some(DEFAULT_KEY), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = sandbox
        .request(
            Method::DELETE,
            &delete_path("ffffffffffffffffffffffff"),
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn out_of_band_delete_removes_the_connection_from_the_api() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = create_ok(&sandbox, "fc").await;
    let body = sandbox.delete_out_of_band(&id).await;
    assert_eq!(
        (body["status"].as_str(), body["deleted"].as_bool()),
        (Some("DELETED"), Some(true))
    );
    let (status, _) = api_status(&sandbox, &id).await;
    assert_eq!(status, 404);
    let all = sandbox.connections().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["company"], "acme");
    // Admin changes to a deleted or unknown connection are refused.
    let (status, _) = sandbox
        .request(
            Method::POST,
            &format!("/_sandbox/connections/{id}/activate"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = sandbox
        .request(Method::POST, "/_sandbox/connections/nope/deny", None, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_client_sees_the_lifecycle_too() {
    let sandbox = Sandbox::start(&["--creating-delay", "0", "--manual-approval"]);
    let client = sandbox.client();
    let key = ApiKey::new(DEFAULT_KEY);
    let id = client
        .create_layer2(&key, DEFAULT_COMPANY, &valid_request("fc"))
        .await
        .unwrap()
        .id;
    assert_eq!(
        client
            .get_connection(&key, DEFAULT_COMPANY, &id)
            .await
            .unwrap()
            .status,
        ConnectionStatus::Pending
    );
    sandbox.activate(&id).await;
    assert_eq!(
        client
            .get_connection(&key, DEFAULT_COMPANY, &id)
            .await
            .unwrap()
            .status,
        ConnectionStatus::Active
    );
    sandbox.delete_out_of_band(&id).await;
    let gone = client.get_connection(&key, DEFAULT_COMPANY, &id).await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
}

// ---- Statistics, faults, scale ----

#[tokio::test]
async fn stats_count_every_call_and_record_create_bodies() {
    let sandbox = Sandbox::start(&INSTANT);
    let key = Some(DEFAULT_KEY);
    sandbox
        .request(
            Method::GET,
            "/api/company/acme/ports?deleted=false",
            key,
            None,
        )
        .await;
    sandbox
        .request(Method::GET, "/api/company/acme/ports", Some("wrong"), None)
        .await;
    sandbox
        .request(Method::GET, "/api/company/globex/ports", key, None)
        .await;
    sandbox
        .request(Method::GET, "/api/nowhere", key, None)
        .await;
    let id = create_ok(&sandbox, "fc-counted").await;
    create(
        &sandbox,
        with(valid_request_json("fc-bad"), "speed", json!(5000)),
    )
    .await;
    api_status(&sandbox, &id).await;

    let stats = sandbox.stats().await;
    assert_eq!(stats.count("list_ports", 200), 1);
    assert_eq!(stats.count("list_ports", 401), 1);
    assert_eq!(stats.count("list_ports", 403), 1);
    assert_eq!(stats.count("other", 404), 1);
    assert_eq!(stats.count("create_layer2", 200), 1);
    assert_eq!(stats.count("create_layer2", 400), 1);
    assert_eq!(stats.total("create_layer2"), 2);
    assert_eq!(stats.count("get_connection", 200), 1);
    assert_eq!(stats.0["totalRequests"], 7);
    let records = stats.create_records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["body"], valid_request_json("fc-counted"));
    assert_eq!(
        (
            records[0]["status"].as_u64(),
            records[0]["connectionId"].as_str()
        ),
        (Some(200), Some(id.as_str()))
    );
    assert_eq!(
        (
            records[1]["status"].as_u64(),
            records[1]["body"]["speed"].as_u64()
        ),
        (Some(400), Some(5000))
    );

    sandbox.reset_stats().await;
    let stats = sandbox.stats().await;
    assert_eq!((stats.total("list_ports"), stats.creates().len()), (0, 0));
    assert_eq!(
        sandbox.connections().await.len(),
        1,
        "reset-stats keeps connections"
    );
    sandbox.reset().await;
    assert!(sandbox.connections().await.is_empty());
}

#[tokio::test]
async fn faults_apply_to_the_api_only_and_can_change_at_runtime() {
    let sandbox = Sandbox::start(&["--error-rate", "1"]);
    let (status, _) = sandbox
        .request(
            Method::GET,
            "/api/company/acme/ports",
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(sandbox.stats().await.count("list_ports", 500), 1);
    let faults = sandbox
        .set_faults(Faults {
            throttle_rate: 1.0,
            retry_after_seconds: Some(4),
            ..Faults::default()
        })
        .await;
    assert_eq!(faults["throttleRate"], 1.0);
    let response = reqwest::Client::new()
        .get(format!("{}/api/company/acme/ports", sandbox.url))
        .bearer_auth(DEFAULT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "4");
    sandbox.clear_faults().await;
    let (status, _) = sandbox
        .request(
            Method::GET,
            "/api/company/acme/ports",
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = sandbox
        .request(
            Method::PUT,
            "/_sandbox/faults",
            None,
            Some(json!({"errorRate": 2})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn answer_faults_are_checked_counted_down_and_reset() {
    const ANSWERS: &str = "/_sandbox/faults/answers";
    const PORTS: &str = "/api/company/acme/ports";
    let sandbox = Sandbox::start(&[]);
    for refused in [
        json!({"endpoint": "no_such_call"}),
        json!({"endpoint": "list_ports", "bytes": 10}),
        json!({"endpoint": "list_ports", "contentLength": true}),
        json!({"endpoint": "list_ports", "chunkBytes": 0}),
        json!({"endpoint": "list_ports", "times": 0}),
        json!({"endpoint": "list_ports", "status": 1000}),
    ] {
        let (status, body) = sandbox
            .request(Method::POST, ANSWERS, None, Some(refused.clone()))
            .await;
        assert_eq!(status, 400, "{refused}: {body}");
    }
    let fault = json!({"endpoint": "list_ports", "times": 2, "bytes": 100, "contentLength": true});
    let (status, armed) = sandbox
        .request(Method::POST, ANSWERS, None, Some(fault))
        .await;
    assert_eq!(status, 200, "{armed}");
    assert_eq!(armed["armed"][0]["timesLeft"], 2);
    // Unauthenticated requests do not use the fault up.
    let (status, _) = sandbox.request(Method::GET, PORTS, None, None).await;
    assert_eq!(status, 401);
    for _ in 0..2 {
        let (status, body) = sandbox
            .request(Method::GET, PORTS, Some(DEFAULT_KEY), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["results"], json!([]));
        assert_eq!(body["padding"].as_str().unwrap().len(), 100 - 27);
    }
    let (_, body) = sandbox
        .request(Method::GET, PORTS, Some(DEFAULT_KEY), None)
        .await;
    assert!(!body["results"].as_array().unwrap().is_empty(), "disarmed");
    assert_eq!(sandbox.stats().await.count("list_ports", 200), 3);
    let (_, answers) = sandbox.request(Method::GET, ANSWERS, None, None).await;
    assert_eq!(answers["armed"], json!([]));
    let served = answers["served"].as_array().unwrap();
    assert_eq!(served.len(), 2);
    for answer in served {
        assert_eq!(answer["sentBytes"], 100);
        assert_eq!(answer["complete"], true);
    }
    // A reset disarms them and forgets what was served.
    let fault = json!({"endpoint": "oracle_metros"});
    sandbox
        .request(Method::POST, ANSWERS, None, Some(fault))
        .await;
    sandbox.reset().await;
    let (_, answers) = sandbox.request(Method::GET, ANSWERS, None, None).await;
    assert_eq!(answers, json!({"armed": [], "served": []}));
}

#[tokio::test]
async fn holds_thousands_of_connections() {
    let sandbox = Sandbox::start(&INSTANT);
    // 1 Mbps each, so 2000 fit on the 10 Gbps port.
    let body = |i: usize| {
        let body = with(
            valid_request_json(&format!("fc-{i}")),
            "portId",
            json!(PORT_10G.id),
        );
        with(body, "speed", json!(1))
    };
    let sandbox_ref = &sandbox;
    let created = futures::stream::iter(0..2000)
        .map(|i| async move { create(sandbox_ref, body(i)).await.0 })
        .buffer_unordered(16)
        .filter(|status| std::future::ready(*status == 200))
        .count()
        .await;
    assert_eq!(created, 2000);
    let started = Instant::now();
    let (status, listed) = sandbox
        .request(Method::GET, LIST_V1, Some(DEFAULT_KEY), None)
        .await;
    assert_eq!(status, 200);
    let listed = listed["results"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2000);
    assert!(listed.iter().all(|c| c["status"] == "ACTIVE"));
    let mut paged = 0;
    for page in 1.. {
        let ids = sandbox
            .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "ACTIVE", page, 50)
            .await;
        if ids.is_empty() {
            break;
        }
        paged += ids.len();
    }
    assert_eq!(paged, 2000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "listing took {:?}",
        started.elapsed()
    );
}

// ---- The paged search and what the spec leaves open ----

/// Ids of the connections in `results`.
fn ids_of(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {body}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn delete_api(sandbox: &Sandbox, id: &str) -> (u16, Value) {
    sandbox
        .request(Method::DELETE, &delete_path(id), Some(DEFAULT_KEY), None)
        .await
}

#[tokio::test]
async fn search_pages_oldest_first_and_serves_a_larger_count_as_the_maximum() {
    let sandbox = Sandbox::start(&[
        "--search-max-count",
        "5",
        "--creating-delay",
        "0",
        "--approval-delay",
        "0",
    ]);
    let seeded = sandbox.seed(DEFAULT_COMPANY, 17, "ACTIVE", "other-").await;
    assert_eq!(seeded.len(), 17);
    sandbox
        .seed(DEFAULT_COMPANY, 4, "PENDING", "waiting-")
        .await;
    let stats = sandbox.stats().await;
    assert_eq!(stats.0["totalRequests"], 0, "seeding is not counted");
    let newest = create_ok(&sandbox, "fc-new").await;
    wait_for_api_status(&sandbox, &newest, "ACTIVE").await;

    let mut pages = Vec::new();
    for page in 1..=5 {
        let (status, body) = sandbox
            .search(DEFAULT_KEY, DEFAULT_COMPANY, "ACTIVE", page, 20)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "only results: {body}");
        pages.push(ids_of(&body));
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![5, 5, 5, 3, 0], "count 20 is served as 5");
    let all: Vec<String> = pages.concat();
    let mut expected = seeded.clone();
    expected.push(newest.clone());
    assert_eq!(
        all, expected,
        "oldest first; the new one lands on the last page"
    );
    let stats = sandbox.stats().await;
    assert_eq!(stats.count("search_connections", 200), 5);
    assert_eq!(stats.total("search_connections"), 5);

    // The maximum can change at run time.
    sandbox
        .change_behaviour(json!({"searchMaxCount": 100}))
        .await;
    let ids = sandbox
        .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "ACTIVE", 1, 20)
        .await;
    assert_eq!(ids.len(), 18);
}

#[tokio::test]
async fn search_requires_page_count_and_status() {
    let sandbox = Sandbox::start(&[]);
    let base = "/api/v2/company/acme/connections";
    for (query, named) in [
        ("", "'page'"),
        ("?count=20&status=ACTIVE", "'page'"),
        ("?page=1&status=ACTIVE", "'count'"),
        ("?page=1&count=20", "'status'"),
        ("?page=1&count=20&status=", "'status'"),
        ("?page=0&count=20&status=ACTIVE", "'page'"),
        ("?page=1&count=-2&status=ACTIVE", "'count'"),
        ("?page=one&count=20&status=ACTIVE", "'page'"),
        ("?page=1&count=0&status=ACTIVE", "'count'"),
    ] {
        let (status, body) = sandbox
            .request(
                Method::GET,
                &format!("{base}{query}"),
                Some(DEFAULT_KEY),
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(message(&body).contains(named), "{query}: {body}");
    }
    assert_eq!(sandbox.stats().await.count("search_connections", 400), 9);
}

#[tokio::test]
async fn search_matches_statuses_ignoring_case_spaces_and_underscores() {
    let sandbox = Sandbox::start(&[]);
    let waiting = sandbox
        .seed(DEFAULT_COMPANY, 2, "PENDING_ACCEPTANCE", "waiting-")
        .await;
    sandbox.seed(DEFAULT_COMPANY, 3, "ACTIVE", "up-").await;
    for status in [
        "PENDING ACCEPTANCE",
        "pending_acceptance",
        "Pending Acceptance",
    ] {
        let ids = sandbox
            .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, status, 1, 20)
            .await;
        assert_eq!(ids, waiting, "{status}");
    }
    let (status, body) = sandbox
        .search(DEFAULT_KEY, DEFAULT_COMPANY, "ALL", 1, 20)
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"results": []})),
        "there is no 'all'"
    );
    // Another company's connections never show.
    let (status, body) = sandbox
        .search(OTHER_KEY, OTHER_COMPANY, "ACTIVE", 1, 20)
        .await;
    assert_eq!((status, body), (200, json!({"results": []})));
}

#[tokio::test]
async fn listing_lag_hides_new_connections_from_search_and_list_but_not_from_reads() {
    let sandbox = Sandbox::start(&[
        "--list-lag",
        "3s",
        "--creating-delay",
        "0",
        "--approval-delay",
        "0",
    ]);
    let id = create_ok(&sandbox, "fc-lagging").await;
    let (status, read) = api_status(&sandbox, &id).await;
    assert_eq!((status, read["status"].as_str()), (200, Some("ACTIVE")));
    let searched = sandbox
        .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "ACTIVE", 1, 20)
        .await;
    assert!(!searched.contains(&id), "lagging connection searched");
    let (_, listed) = sandbox
        .request(Method::GET, LIST_V1, Some(DEFAULT_KEY), None)
        .await;
    assert!(!ids_of(&listed).contains(&id), "lagging connection listed");
    let (sandbox_ref, id_ref) = (&sandbox, id.as_str());
    eventually("the connection to be searchable", WAIT, || async move {
        let ids = sandbox_ref
            .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "ACTIVE", 1, 20)
            .await;
        ids.contains(&id_ref.to_owned()).then_some(())
    })
    .await;
    let (_, listed) = sandbox
        .request(Method::GET, LIST_V1, Some(DEFAULT_KEY), None)
        .await;
    assert!(ids_of(&listed).contains(&id));

    // Set at run time, the lag applies to connections that exist.
    let settings = sandbox
        .change_behaviour(json!({"listLagMs": 600_000}))
        .await;
    assert_eq!(settings["listLagMs"], 600_000);
    let ids = sandbox
        .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "ACTIVE", 1, 20)
        .await;
    assert!(ids.is_empty(), "{ids:?}");
    sandbox.change_behaviour(json!({"listLagMs": 0})).await;
    let ids = sandbox
        .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "ACTIVE", 1, 20)
        .await;
    assert_eq!(ids, vec![id]);
}

#[tokio::test]
async fn a_late_create_answer_comes_after_the_order_is_stored() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox
        .change_behaviour(json!({"createDelayMs": 3000}))
        .await;
    let started = Instant::now();
    let sandbox_ref = &sandbox;
    let ((status, answer, answered), (stored, seen)) = tokio::join!(
        async {
            let (status, answer) = create(sandbox_ref, valid_request_json("fc-late")).await;
            (status, answer, started.elapsed())
        },
        async {
            let stored = eventually("the order to be stored", WAIT, || async move {
                let all = sandbox_ref.connections().await;
                all.into_iter().find(|c| c["name"] == "fc-late")
            })
            .await;
            (stored, started.elapsed())
        },
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        seen + Duration::from_secs(1) < answered,
        "stored after {seen:?}, answered after {answered:?}"
    );
    assert!(answered >= Duration::from_secs(3), "{answered:?}");
    assert_eq!(stored["id"], answer["id"]);
    assert_eq!(answer["status"], "CREATING");
    // The lifecycle started with the order, not with the answer.
    assert_eq!(stored["status"], "ACTIVE");
    let stats = sandbox.stats().await;
    assert_eq!(stats.count("create_layer2", 200), 1);
    // Refusals are not delayed.
    let before = Instant::now();
    let (status, _) = create(&sandbox, without(valid_request_json("x"), "name")).await;
    assert_eq!(status, 400);
    assert!(before.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn duplicate_names_are_refused_while_the_name_is_in_use() {
    let sandbox = Sandbox::start(&[
        "--refuse-duplicate-names",
        "--creating-delay",
        "0",
        "--approval-delay",
        "0",
        "--deleting-delay",
        "0",
    ]);
    let first = create_ok(&sandbox, "fc-dup").await;
    let (status, body) = create(&sandbox, valid_request_json("fc-dup")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(message(&body), "Connection name 'fc-dup' is already in use");
    assert_eq!(sandbox.connections().await.len(), 1);
    // Another company may use the name.
    let globex = with(
        valid_request_json("fc-dup"),
        "portId",
        json!(OTHER_COMPANY_PORT.id),
    );
    let (status, body) = sandbox
        .request(
            Method::PUT,
            "/api/v2/company/globex/connections/layer2",
            Some(OTHER_KEY),
            Some(globex),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Once deleted, the name is free again.
    assert_eq!(delete_api(&sandbox, &first).await.0, 200);
    assert_eq!(sandbox.status_of(&first).await.as_deref(), Some("DELETED"));
    let second = create_ok(&sandbox, "fc-dup").await;
    assert_ne!(first, second);
    // Switched off at run time, duplicates are accepted.
    sandbox
        .change_behaviour(json!({"refuseDuplicateNames": false}))
        .await;
    create_ok(&sandbox, "fc-dup").await;
}

#[tokio::test]
async fn deleting_a_request_never_active_cancels_it() {
    let sandbox = Sandbox::start(&["--creating-delay", "0", "--manual-approval"]);
    let pending = create_ok(&sandbox, "fc-pending").await;
    wait_for_api_status(&sandbox, &pending, "PENDING").await;
    let (status, body) = delete_api(&sandbox, &pending).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
    let (status, read) = api_status(&sandbox, &pending).await;
    assert_eq!((status, read["status"].as_str()), (200, Some("CANCELLED")));
    assert_eq!(read["deleted"], false);
    let (status, again) = delete_api(&sandbox, &pending).await;
    assert_eq!(
        (status, again["status"].as_str(), &again["updatedAt"]),
        (200, Some("CANCELLED"), &body["updatedAt"]),
        "a repeated DELETE changes nothing"
    );
    let cancelled = sandbox
        .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "CANCELLED", 1, 20)
        .await;
    assert_eq!(cancelled, vec![pending.clone()]);
    let deleted = sandbox
        .search_ids(DEFAULT_KEY, DEFAULT_COMPANY, "DELETED", 1, 20)
        .await;
    assert!(deleted.is_empty());

    // A CREATING one is cancelled too, and so is a PENDING_ACCEPTANCE one.
    sandbox
        .set_lifecycle(Lifecycle {
            creating_delay: Duration::from_secs(600),
            ..Lifecycle::fixture()
        })
        .await;
    let creating = create_ok(&sandbox, "fc-creating").await;
    let (status, body) = delete_api(&sandbox, &creating).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
    let accepting = create_ok(&sandbox, "fc-accepting").await;
    sandbox.set_status(&accepting, "PENDING_ACCEPTANCE").await;
    let (status, body) = delete_api(&sandbox, &accepting).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
    assert_eq!(
        sandbox.status_of(&pending).await.as_deref(),
        Some("CANCELLED")
    );
}

#[tokio::test]
async fn deleting_a_live_connection_is_asynchronous_by_default() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = create_ok(&sandbox, "fc").await;
    wait_for_api_status(&sandbox, &id, "ACTIVE").await;
    let (status, body) = delete_api(&sandbox, &id).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("DELETING")));
    let (status, read) = api_status(&sandbox, &id).await;
    assert_eq!((status, read["status"].as_str()), (200, Some("DELETING")));
    let (sandbox_ref, id_ref) = (&sandbox, id.as_str());
    eventually("the connection to be DELETED", WAIT, || async move {
        (api_status(sandbox_ref, id_ref).await.0 == 404).then_some(())
    })
    .await;
    let (status, found) = sandbox
        .search(DEFAULT_KEY, DEFAULT_COMPANY, "DELETED", 1, 20)
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids_of(&found), vec![id.clone()]);
    assert_eq!(found["results"][0]["deleted"], true);
    assert!(found["results"][0]["deletedAt"].is_string());
    // Other live statuses are deleted the same way.
    for status in [
        "ACCEPTED",
        "DENIED",
        "ERROR",
        "DISABLED",
        "MANUAL",
        "SOMETHING_NEW",
    ] {
        let id = create_ok(&sandbox, &format!("fc-{status}")).await;
        sandbox.set_status(&id, status).await;
        let (code, body) = delete_api(&sandbox, &id).await;
        assert_eq!(
            (code, body["status"].as_str()),
            (200, Some("DELETING")),
            "{status}"
        );
    }
}

#[tokio::test]
async fn deleted_connections_can_be_shown_on_read() {
    let sandbox = Sandbox::start(&[
        "--deleted-reads",
        "show",
        "--creating-delay",
        "0",
        "--approval-delay",
        "0",
        "--deleting-delay",
        "0",
    ]);
    let id = create_ok(&sandbox, "fc").await;
    assert_eq!(delete_api(&sandbox, &id).await.0, 200);
    let (status, read) = api_status(&sandbox, &id).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        (read["status"].as_str(), read["deleted"].as_bool()),
        (Some("DELETED"), Some(true))
    );
    assert!(read["deletedAt"].is_string(), "{read}");
    let (status, _) = sandbox
        .request(Method::GET, &get_path_v1(&id), Some(DEFAULT_KEY), None)
        .await;
    assert_eq!(status, 200, "the older path too");
    // Still left out of the unpaged list; a second DELETE is 404.
    let (_, listed) = sandbox
        .request(Method::GET, LIST_V1, Some(DEFAULT_KEY), None)
        .await;
    assert!(ids_of(&listed).is_empty());
    assert_eq!(delete_api(&sandbox, &id).await.0, 404);
    sandbox
        .change_behaviour(json!({"deletedReads": "404"}))
        .await;
    assert_eq!(api_status(&sandbox, &id).await.0, 404);
}

#[tokio::test]
async fn errors_come_in_the_three_documented_shapes() {
    let sandbox = Sandbox::start(&["--error-shape", "flat"]);
    let unknown = get_path("ffffffffffffffffffffffff");
    let (status, body) = sandbox
        .request(Method::GET, &unknown, Some(DEFAULT_KEY), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"statusCode": 404, "name": "NotFoundError",
               "message": "Connection 'ffffffffffffffffffffffff' not found"})
    );
    for (shape, expected) in [
        (
            ErrorShape::Message,
            json!({"message": "Invalid API key", "status": 401, "statusCode": 401}),
        ),
        (
            ErrorShape::Nested,
            json!({"error": {"statusCode": 401, "name": "UnauthorizedError",
                             "message": "Invalid API key"}}),
        ),
        (
            ErrorShape::Flat,
            json!({"statusCode": 401, "name": "UnauthorizedError", "message": "Invalid API key"}),
        ),
    ] {
        sandbox
            .set_behaviour(Behaviour {
                error_shape: shape,
                ..Behaviour::default()
            })
            .await;
        let (status, body) = sandbox
            .request(Method::GET, &unknown, Some("wrong"), None)
            .await;
        assert_eq!((status, body), (401, expected), "{shape:?}");
    }
    // Unknown routes and injected faults follow the shape too.
    sandbox
        .change_behaviour(json!({"errorShape": "message"}))
        .await;
    let (status, body) = sandbox
        .request(Method::GET, "/api/nowhere", Some(DEFAULT_KEY), None)
        .await;
    assert_eq!((status, body["status"].as_u64()), (404, Some(404)));
    sandbox
        .set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        })
        .await;
    let (status, body) = sandbox
        .request(
            Method::GET,
            "/api/company/acme/ports",
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    assert_eq!((status, body["statusCode"].as_u64()), (500, Some(500)));
    assert!(body.get("error").is_none(), "{body}");
}

#[tokio::test]
async fn a_read_only_key_reads_but_is_denied_writes() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = create_ok(&sandbox, "fc").await;
    for path in [
        "/api/company/acme/ports".to_owned(),
        "/api/company/oracle/metro/capabilities".to_owned(),
        search_path(DEFAULT_COMPANY, "ACTIVE", 1, 20),
        LIST_V1.to_owned(),
        get_path(&id),
        get_path_v1(&id),
    ] {
        let (status, body) = sandbox
            .request(Method::GET, &path, Some(READONLY_KEY), None)
            .await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = sandbox
        .request(
            Method::PUT,
            CREATE,
            Some(READONLY_KEY),
            Some(valid_request_json("ro")),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": {
            "accessRequests": [{
                "action": "network:CreateConnection",
                "resource": format!("company/{DEFAULT_COMPANY_ID}/connections"),
            }],
            "message": "Access denied",
            "status": 401,
            "statusCode": 401,
        }})
    );
    let (status, body) = sandbox
        .request(Method::DELETE, &delete_path(&id), Some(READONLY_KEY), None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["accessRequests"][0]["action"],
        "network:DeleteConnection"
    );
    assert_eq!(sandbox.connections().await.len(), 1);
    assert_eq!(sandbox.status_of(&id).await.as_deref(), Some("ACTIVE"));
    let stats = sandbox.stats().await;
    assert_eq!(stats.count("create_layer2", 401), 1);
    assert_eq!(stats.count("delete_connection", 401), 1);
    // The read-only key is still scoped to its company.
    let (status, _) = sandbox
        .request(
            Method::GET,
            "/api/company/globex/ports",
            Some(READONLY_KEY),
            None,
        )
        .await;
    assert_eq!(status, 403);
}

async fn remaining(sandbox: &Sandbox, key: &str, company: &str, port_id: &str) -> u64 {
    let (status, body) = sandbox
        .request(
            Method::GET,
            &format!("/api/company/{company}/ports"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == port_id)
        .and_then(|p| p["capacity"]["remaining"].as_u64())
        .unwrap_or_else(|| panic!("no capacity for {port_id} in {body}"))
}

#[tokio::test]
async fn port_capacity_is_shown_and_enforced() {
    let sandbox = Sandbox::start(&INSTANT);
    assert_eq!(
        remaining(&sandbox, DEFAULT_KEY, DEFAULT_COMPANY, PORT_1G.id).await,
        1000
    );
    let (status, big) = create(
        &sandbox,
        with(valid_request_json("fc-900"), "speed", json!(900)),
    )
    .await;
    assert_eq!(status, 200, "{big}");
    assert_eq!(
        remaining(&sandbox, DEFAULT_KEY, DEFAULT_COMPANY, PORT_1G.id).await,
        100
    );
    assert_eq!(
        remaining(&sandbox, DEFAULT_KEY, DEFAULT_COMPANY, PORT_10G.id).await,
        10000
    );
    let (status, body) = create(
        &sandbox,
        with(valid_request_json("fc-200"), "speed", json!(200)),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let text = message(&body);
    assert!(
        text.contains("200") && text.contains("100") && text.contains("'speed'"),
        "{text}"
    );
    let small = create_ok(&sandbox, "fc-100").await;
    assert_eq!(
        remaining(&sandbox, DEFAULT_KEY, DEFAULT_COMPANY, PORT_1G.id).await,
        0
    );
    // A denied connection gives its bandwidth back.
    sandbox.deny(&small).await;
    assert_eq!(
        remaining(&sandbox, DEFAULT_KEY, DEFAULT_COMPANY, PORT_1G.id).await,
        100
    );
}

#[tokio::test]
async fn fixture_capacity_and_port_statuses_are_honoured() {
    let yaml = r#"
lifecycle: {creatingDelay: 0, approvalDelay: 0}
companies:
  - username: initech
    id: 00000000000000000000000a
    apiKeys: [initech-key]
    ports:
      - {id: p1, name: Busy, speedMbps: 1000, capacityRemainingMbps: 300, metroId: m-home}
      - {id: p2, name: Fresh, speedMbps: 1000, status: READY, metroId: m-home}
      - {id: p3, name: Boarding, speedMbps: 1000, status: ONBOARDING, metroId: m-home}
oracleMetros:
  - {id: m-away, name: Away, code: AWY, firstDataCenterFacilityIdInMetro: dcf-away}
"#;
    let sandbox = Sandbox::start_with_config(yaml);
    let order = |port: &str, speed: u64| {
        json!({
            "type": "LAYER2", "name": format!("fc-{port}-{speed}"), "portId": port,
            "speed": speed, "destMetroId": "m-away", "destCompany": "oracle",
            "paymentType": "invoice", "destDcf": "dcf-away", "duration": 1, "durationUnit": "y"
        })
    };
    let path = "/api/v2/company/initech/connections/layer2";
    let key = Some("initech-key");
    assert_eq!(
        remaining(&sandbox, "initech-key", "initech", "p1").await,
        300
    );
    let (status, body) = sandbox
        .request(Method::PUT, path, key, Some(order("p1", 400)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("300"), "{body}");
    let (status, body) = sandbox
        .request(Method::PUT, path, key, Some(order("p1", 250)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        remaining(&sandbox, "initech-key", "initech", "p1").await,
        50
    );
    let (_, ports) = sandbox
        .request(Method::GET, "/api/company/initech/ports", key, None)
        .await;
    let statuses: Vec<&str> = ports["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["ACTIVE", "READY", "ONBOARDING"]);
    for port in ["p2", "p3"] {
        let (status, body) = sandbox
            .request(Method::PUT, path, key, Some(order(port, 10)))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains("not ACTIVE"), "{body}");
    }
}

#[tokio::test]
async fn the_spec_shape_writes_connections_and_metros_like_the_spec_example() {
    let sandbox = Sandbox::start(&[
        "--connection-shape",
        "spec",
        "--creating-delay",
        "0",
        "--manual-approval",
    ]);
    let (status, created) = create(&sandbox, valid_request_json("fc-spec")).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let read = wait_for_api_status(&sandbox, &id, "PENDING").await;
    for body in [&created, &read] {
        assert!(body.get("srcPortId").is_none(), "{body}");
        assert!(body.get("destMetroId").is_none(), "{body}");
        assert_eq!(body["destMetro"], json!([{"id": METRO_HKG.id}]));
        assert_eq!(
            body["port"],
            json!([{"id": PORT_1G.id}, {"companyId": DEFAULT_COMPANY_ID}])
        );
        let dest_company = body["destCompany"].as_array().unwrap();
        assert!(dest_company[0]["id"].is_string(), "{body}");
        assert!(body["vlan"].is_array(), "{body}");
        assert!(
            body["srcVlan"].is_u64() && body["destVlan"].is_u64(),
            "{body}"
        );
        assert_eq!(body["deleted"], false);
        assert!(body.get("srcVlanRequest").is_some() && body.get("destVlanRequest").is_some());
    }
    assert_eq!(
        read["request"],
        json!([{"status": "PENDING"}, {"speed": 100}])
    );
    sandbox.activate(&id).await;
    let active = wait_for_api_status(&sandbox, &id, "ACTIVE").await;
    assert_eq!(active["request"], json!([]));
    let (_, metros) = sandbox
        .request(
            Method::GET,
            "/api/company/oracle/metro/capabilities",
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    let hkg = metros["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == METRO_HKG.id)
        .unwrap();
    assert_eq!(hkg["firstDataCenterFacilityId"], METRO_HKG.dcf);
    assert!(hkg.get("firstDataCenterFacilityIdInMetro").is_none());
    // Back to the reference shape at run time; the admin view always uses it.
    assert_eq!(
        sandbox.connection(&id).await.unwrap()["srcPortId"],
        PORT_1G.id
    );
    sandbox
        .change_behaviour(json!({"connectionShape": "reference"}))
        .await;
    let (_, read) = api_status(&sandbox, &id).await;
    assert_eq!(
        (read["srcPortId"].as_str(), read["destCompany"].as_str()),
        (Some(PORT_1G.id), Some("oracle"))
    );
}

#[tokio::test]
async fn the_older_paths_still_answer_under_their_own_labels() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = create_ok(&sandbox, "fc").await;
    let (status, read) = sandbox
        .request(Method::GET, &get_path_v1(&id), Some(DEFAULT_KEY), None)
        .await;
    assert_eq!((status, read["id"].as_str()), (200, Some(id.as_str())));
    let (status, listed) = sandbox
        .request(Method::GET, LIST_V1, Some(DEFAULT_KEY), None)
        .await;
    assert_eq!((status, ids_of(&listed)), (200, vec![id.clone()]));
    api_status(&sandbox, &id).await;
    let stats = sandbox.stats().await;
    assert_eq!(stats.count("get_connection_v1", 200), 1);
    assert_eq!(stats.count("list_connections", 200), 1);
    assert_eq!(stats.count("get_connection", 200), 1);
}

#[tokio::test]
async fn behaviour_switches_round_trip_and_reset() {
    let sandbox = Sandbox::start(&[]);
    let defaults = sandbox.behaviour().await;
    assert_eq!(defaults, Behaviour::default().to_json());
    let wanted = Behaviour {
        list_lag: Duration::from_millis(1500),
        create_delay: Duration::from_millis(20),
        change_delay: Duration::from_millis(30),
        refuse_duplicate_names: true,
        deleted_reads: DeletedReads::Show,
        error_shape: ErrorShape::Message,
        connection_shape: ConnectionShape::Spec,
        search_max_count: 7,
    };
    assert_eq!(
        sandbox.set_behaviour(wanted.clone()).await,
        wanted.to_json()
    );
    assert_eq!(sandbox.behaviour().await, wanted.to_json());
    for bad in [
        json!({"errorShape": "xml"}),
        json!({"deletedReads": "410"}),
        json!({"connectionShape": "v3"}),
        json!({"searchMaxCount": 0}),
        json!({"colour": "red"}),
    ] {
        let (status, body) = sandbox
            .request(Method::PUT, "/_sandbox/behaviour", None, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = sandbox
        .request(
            Method::POST,
            "/_sandbox/seed",
            None,
            Some(json!({"company": "nobody", "count": 1})),
        )
        .await;
    assert_eq!(status, 400);
    sandbox.reset().await;
    assert_eq!(sandbox.behaviour().await, defaults);
}

// ---- Day-2 calls: speed and name updates, change requests ----

/// An ACTIVE connection of acme on [`PORT_1G`] at `speed` Mbps, created a day ago (so its
/// `updatedAt` is clearly older than any change), named `<prefix>0`.
async fn seeded_active(sandbox: &Sandbox, prefix: &str, speed: u64) -> String {
    let ids = sandbox
        .seed_with(json!({
            "company": DEFAULT_COMPANY, "count": 1, "status": "ACTIVE", "namePrefix": prefix,
            "portId": PORT_1G.id, "speedMbps": speed,
        }))
        .await;
    ids[0].clone()
}

async fn update(sandbox: &Sandbox, id: &str, body: Value) -> (u16, Value) {
    sandbox
        .request(
            Method::POST,
            &update_path(DEFAULT_COMPANY, id),
            Some(DEFAULT_KEY),
            Some(body),
        )
        .await
}

async fn change(sandbox: &Sandbox, id: &str, speed: u64) -> (u16, Value) {
    change_with(sandbox, id, json!({ "speed": speed })).await
}

async fn change_with(sandbox: &Sandbox, id: &str, body: Value) -> (u16, Value) {
    sandbox
        .request(
            Method::PUT,
            &change_path(DEFAULT_COMPANY, id),
            Some(DEFAULT_KEY),
            Some(body),
        )
        .await
}

async fn withdraw(sandbox: &Sandbox, id: &str) -> (u16, Value) {
    sandbox
        .request(
            Method::DELETE,
            &change_path(DEFAULT_COMPANY, id),
            Some(DEFAULT_KEY),
            None,
        )
        .await
}

fn speed_of(connection: &Value) -> u64 {
    connection["speed"]["value"]
        .as_u64()
        .unwrap_or_else(|| panic!("no speed in {connection}"))
}

/// Asserts a 400 whose message contains every one of `says`.
fn assert_400(status: u16, body: &Value, says: &[&str]) {
    assert_eq!(status, 400, "{body}");
    let text = message(body);
    for part in says {
        assert!(
            text.contains(part),
            "message {text:?} does not say {part:?}"
        );
    }
}

async fn port_1g_remaining(sandbox: &Sandbox) -> u64 {
    remaining(sandbox, DEFAULT_KEY, DEFAULT_COMPANY, PORT_1G.id).await
}

#[tokio::test]
async fn an_update_lowers_the_speed_at_once() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let (_, before) = api_status(&sandbox, &id).await;
    let (status, updated) = update(&sandbox, &id, json!({"speed": 50})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(speed_of(&updated), 50);
    assert_eq!(updated["speed"]["name"], "50 Mbps");
    assert_eq!(updated["status"], "ACTIVE");
    let moved = updated["updatedAt"].as_str().unwrap();
    assert!(moved > before["updatedAt"].as_str().unwrap(), "{updated}");
    let (_, read) = api_status(&sandbox, &id).await;
    assert_eq!(speed_of(&read), 50);
    assert_eq!(speed_of(&sandbox.connection(&id).await.unwrap()), 50);
    assert_eq!(port_1g_remaining(&sandbox).await, 950);
    // The same speed again changes nothing, not even `updatedAt`.
    let (status, again) = update(&sandbox, &id, json!({"speed": 50})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["updatedAt"], moved);
    // No change request is made by an update.
    assert!(again.get("request").is_none(), "{again}");
}

#[tokio::test]
async fn an_update_cannot_raise_the_speed() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let (status, body) = update(&sandbox, &id, json!({"speed": 200, "name": "fc-new"})).await;
    let path = change_path(DEFAULT_COMPANY, &id);
    assert_400(
        status,
        &body,
        &[
            "'speed'",
            "the speed of a connection to another company can only be reduced",
            &path,
        ],
    );
    // Nothing of a refused update applies, not even the name.
    let admin = sandbox.connection(&id).await.unwrap();
    assert_eq!(
        (speed_of(&admin), admin["name"].as_str()),
        (100, Some("fc-0"))
    );
}

#[tokio::test]
async fn an_update_renames() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let other = create_ok(&sandbox, "taken").await;
    let (status, renamed) = update(&sandbox, &id, json!({"name": "fc-renamed"})).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(
        (renamed["name"].as_str(), speed_of(&renamed)),
        (Some("fc-renamed"), 100)
    );
    assert_eq!(sandbox.connection(&id).await.unwrap()["name"], "fc-renamed");
    // Without the duplicate-name switch a name may be shared.
    let (status, _) = update(&sandbox, &id, json!({"name": "taken"})).await;
    assert_eq!(status, 200);
    sandbox
        .change_behaviour(json!({"refuseDuplicateNames": true}))
        .await;
    let (status, body) = update(&sandbox, &other, json!({"name": "fc-spare"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = update(&sandbox, &id, json!({"name": "fc-spare"})).await;
    assert_400(
        status,
        &body,
        &["Connection name 'fc-spare' is already in use"],
    );
    // Its own name is no clash; a name freed by a deletion is free again.
    let (status, _) = update(&sandbox, &other, json!({"name": "fc-spare"})).await;
    assert_eq!(status, 200);
    sandbox.delete_out_of_band(&other).await;
    let (status, body) = update(&sandbox, &id, json!({"name": "fc-spare"})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_update_refuses_other_fields_and_bad_bodies() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    for (body, says) in [
        (json!({}), vec!["'speed' or 'name'"]),
        (json!([]), vec!["JSON object"]),
        (
            json!({"portId": PORT_1G.id}),
            vec![
                "'portId'",
                "connection requests only",
                "only 'speed' and 'name'",
            ],
        ),
        (json!({"untagged": true}), vec!["'untagged'"]),
        (json!({"destUntagged": true}), vec!["'destUntagged'"]),
        (json!({"destPortId": "p"}), vec!["'destPortId'"]),
        (json!({"controllerId": "c"}), vec!["'controllerId'"]),
        (
            json!({"destControllerId": "c", "speed": 50}),
            vec!["'destControllerId'"],
        ),
        (json!({"colour": "red"}), vec!["unknown field 'colour'"]),
        (
            json!({"speed": 0}),
            vec!["'speed'", "positive whole number"],
        ),
        (json!({"speed": "50"}), vec!["'speed'"]),
        (json!({"speed": 50.5}), vec!["'speed'"]),
        (json!({"speed": null}), vec!["'speed'"]),
        (json!({"name": 7}), vec!["'name'"]),
        (json!({"name": "  "}), vec!["'name'", "empty"]),
        (json!({"name": "x".repeat(129)}), vec!["'name'", "128"]),
    ] {
        let (status, response) = update(&sandbox, &id, body.clone()).await;
        assert_400(status, &response, &says);
    }
    let response = reqwest::Client::new()
        .post(format!(
            "{}{}",
            sandbox.url,
            update_path(DEFAULT_COMPANY, &id)
        ))
        .bearer_auth(DEFAULT_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_400(status, &body, &["not valid JSON"]);
    let admin = sandbox.connection(&id).await.unwrap();
    assert_eq!(
        (speed_of(&admin), admin["name"].as_str()),
        (100, Some("fc-0"))
    );
}

#[tokio::test]
async fn an_update_answers_like_the_read_for_missing_and_finished_connections() {
    let sandbox = Sandbox::start(&["--creating-delay", "0", "--manual-approval"]);
    let (status, body) = update(&sandbox, &"f".repeat(24), json!({"speed": 50})).await;
    assert_eq!(status, 404, "{body}");
    // Another company's connection is not found under its own company.
    let theirs = sandbox
        .seed_with(json!({"company": OTHER_COMPANY, "count": 1, "speedMbps": 100}))
        .await;
    let (status, _) = update(&sandbox, &theirs[0], json!({"speed": 50})).await;
    assert_eq!(status, 404);
    let (status, _) = sandbox
        .request(
            Method::POST,
            &update_path(OTHER_COMPANY, &theirs[0]),
            Some(DEFAULT_KEY),
            Some(json!({"speed": 50})),
        )
        .await;
    assert_eq!(status, 403);
    // A connection request (PENDING) may be reduced too, as the spec says.
    let pending = create_ok(&sandbox, "fc-request").await;
    wait_for_api_status(&sandbox, &pending, "PENDING").await;
    let (status, body) = update(&sandbox, &pending, json!({"speed": 40})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), speed_of(&body)),
        (Some("PENDING"), 40)
    );
    // Cancelled, being deleted, deleted.
    delete_api(&sandbox, &pending).await;
    let (status, body) = update(&sandbox, &pending, json!({"name": "x"})).await;
    assert_400(status, &body, &["cannot change", "CANCELLED"]);
    sandbox
        .set_lifecycle(Lifecycle {
            deleting_delay: Duration::from_secs(600),
            ..Lifecycle::instant()
        })
        .await;
    let live = seeded_active(&sandbox, "fc-", 100).await;
    delete_api(&sandbox, &live).await;
    let (status, body) = update(&sandbox, &live, json!({"name": "x"})).await;
    assert_400(status, &body, &["cannot change", "DELETING"]);
    sandbox.delete_out_of_band(&live).await;
    let (status, _) = update(&sandbox, &live, json!({"name": "x"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_change_request_waits_for_oracle_and_reserves_its_bandwidth() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let id = seeded_active(&sandbox, "fc-", 100).await;
    assert_eq!(port_1g_remaining(&sandbox).await, 900);
    let (status, answer) = change(&sandbox, &id, 500).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], id.as_str());
    assert_eq!(speed_of(&answer), 100);
    let request = &answer["request"];
    assert_eq!(
        (
            request["status"].as_str(),
            request["speed"].as_u64(),
            request["srcApproval"].as_str(),
        ),
        (Some("PENDING"), Some(500), Some(DEFAULT_COMPANY_ID))
    );
    assert!(request["destApproval"].is_null(), "{answer}");
    assert_eq!(request["updatedAt"], answer["updatedAt"]);
    // The increase is reserved as soon as it is requested.
    assert_eq!(port_1g_remaining(&sandbox).await, 500);
    let (_, read) = api_status(&sandbox, &id).await;
    assert_eq!(
        (speed_of(&read), read["request"]["status"].as_str()),
        (100, Some("PENDING"))
    );
    assert_eq!(
        sandbox.connection(&id).await.unwrap()["request"],
        answer["request"]
    );

    let approved = sandbox.approve_change(&id).await;
    assert_eq!(speed_of(&approved), 500);
    assert_eq!(approved["request"]["status"], "APPROVED");
    assert!(
        approved["request"]["destApproval"].is_string(),
        "{approved}"
    );
    let (_, read) = api_status(&sandbox, &id).await;
    assert_eq!(speed_of(&read), 500);
    assert_eq!(read["request"]["status"], "APPROVED");
    assert_eq!(port_1g_remaining(&sandbox).await, 500);
    // Nothing is pending any more.
    let (status, body) = sandbox
        .request(
            Method::POST,
            &format!("/_sandbox/connections/{id}/change/approve"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn a_rejected_change_keeps_the_speed() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let (status, _) = change(&sandbox, &id, 300).await;
    assert_eq!(status, 200);
    let rejected = sandbox.reject_change(&id).await;
    assert_eq!(
        (speed_of(&rejected), rejected["request"]["status"].as_str()),
        (100, Some("REJECTED"))
    );
    let (_, read) = api_status(&sandbox, &id).await;
    assert_eq!(read["request"]["status"], "REJECTED");
    assert_eq!(read["request"]["speed"], 300);
    assert_eq!(port_1g_remaining(&sandbox).await, 900);
    let (status, _) = sandbox
        .request(
            Method::POST,
            &format!("/_sandbox/connections/{id}/change/reject"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_withdrawn_change_is_withdrawn() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let (status, body) = withdraw(&sandbox, &id).await;
    assert_400(
        status,
        &body,
        &[&format!("no change request is pending on connection {id}")],
    );
    change(&sandbox, &id, 300).await;
    let (status, withdrawn) = withdraw(&sandbox, &id).await;
    assert_eq!(status, 200, "{withdrawn}");
    assert_eq!(
        (
            speed_of(&withdrawn),
            withdrawn["request"]["status"].as_str()
        ),
        (100, Some("WITHDRAWN"))
    );
    assert_eq!(port_1g_remaining(&sandbox).await, 900);
    let (status, _) = withdraw(&sandbox, &id).await;
    assert_eq!(status, 400);
    let (status, _) = sandbox
        .request(
            Method::DELETE,
            &change_path(DEFAULT_COMPANY, "nope"),
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Deleting a connection takes its pending change with it.
    change(&sandbox, &id, 300).await;
    delete_api(&sandbox, &id).await;
    let admin = sandbox.connection(&id).await.unwrap();
    assert_eq!(admin["request"]["status"], "WITHDRAWN");
}

#[tokio::test]
async fn a_pending_change_can_be_updated_or_undone_by_a_decrease() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let id = seeded_active(&sandbox, "fc-", 100).await;
    change(&sandbox, &id, 500).await;
    // The update call's speed waits for the pending change; its name does not.
    let (status, body) = update(&sandbox, &id, json!({"speed": 50})).await;
    assert_400(
        status,
        &body,
        &[&format!(
            "a change request is pending on connection {id}; withdraw it first"
        )],
    );
    let (status, body) = update(&sandbox, &id, json!({"name": "fc-renamed"})).await;
    assert_eq!(status, 200, "{body}");
    // A lower increase updates the pending request and its reservation.
    let (status, lowered) = change(&sandbox, &id, 300).await;
    assert_eq!(status, 200, "{lowered}");
    assert_eq!(
        (
            lowered["request"]["status"].as_str(),
            lowered["request"]["speed"].as_u64()
        ),
        (Some("PENDING"), Some(300))
    );
    assert_eq!(port_1g_remaining(&sandbox).await, 700);
    // Asking for the pending speed again is a safe retry.
    let (status, again) = change(&sandbox, &id, 300).await;
    assert_eq!(status, 200);
    assert_eq!(again["request"], lowered["request"]);
    // A speed under the current one applies at once and withdraws the pending request.
    let (status, decreased) = change(&sandbox, &id, 60).await;
    assert_eq!(status, 200, "{decreased}");
    assert_eq!(
        (
            speed_of(&decreased),
            decreased["request"]["status"].as_str()
        ),
        (60, Some("WITHDRAWN"))
    );
    assert_eq!(port_1g_remaining(&sandbox).await, 940);
    // Without anything pending, a decrease through the change call just applies.
    let (status, decreased) = change(&sandbox, &id, 30).await;
    assert_eq!(status, 200);
    assert_eq!(speed_of(&decreased), 30);
}

#[tokio::test]
async fn change_requests_are_bounded_by_port_speed_and_capacity() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let small = seeded_active(&sandbox, "small-", 100).await;
    let big = seeded_active(&sandbox, "big-", 600).await;
    assert_eq!(port_1g_remaining(&sandbox).await, 300);
    let (status, body) = change(&sandbox, &small, 1001).await;
    assert_400(
        status,
        &body,
        &["'speed' of 1001 Mbps exceeds the 1000 Mbps of port 'My-Port-1'"],
    );
    let (status, body) = change(&sandbox, &small, 500).await;
    assert_400(
        status,
        &body,
        &[
            "'speed' of 500 Mbps",
            "400 Mbps more",
            "300 Mbps remaining on port 'My-Port-1'",
        ],
    );
    let (status, body) = change(&sandbox, &small, 400).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(port_1g_remaining(&sandbox).await, 0);
    // The reservation holds against other changes and new orders alike.
    let (status, body) = change(&sandbox, &big, 601).await;
    assert_400(status, &body, &["0 Mbps remaining"]);
    let (status, body) = create(
        &sandbox,
        with(valid_request_json("fc-1"), "speed", json!(1)),
    )
    .await;
    assert_400(status, &body, &["'speed'", "0 Mbps remaining"]);
    // Its own reservation does not count against a new speed for the same request.
    let (status, body) = change(&sandbox, &small, 350).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(port_1g_remaining(&sandbox).await, 50);
}

#[tokio::test]
async fn a_change_needs_an_active_connection_a_new_speed_and_a_speed_only_body() {
    let sandbox = Sandbox::start(&["--creating-delay", "0", "--manual-approval"]);
    let pending = create_ok(&sandbox, "fc-request").await;
    wait_for_api_status(&sandbox, &pending, "PENDING").await;
    let (status, body) = change(&sandbox, &pending, 500).await;
    assert_400(status, &body, &["ACTIVE", "PENDING"]);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    sandbox.error(&id, "broken").await;
    let (status, body) = change(&sandbox, &id, 500).await;
    assert_400(status, &body, &["ACTIVE", "ERROR"]);
    sandbox.activate(&id).await;
    let (status, body) = change(&sandbox, &id, 100).await;
    assert_400(status, &body, &["'speed'", "current speed"]);
    for (body, says) in [
        (json!({}), "'speed' is required"),
        (json!({"speed": 0}), "'speed'"),
        (json!({"speed": "500"}), "'speed'"),
        (json!({"speed": 500, "name": "n"}), "unknown field 'name'"),
        (json!([500]), "JSON object"),
    ] {
        let (status, response) = change_with(&sandbox, &id, body).await;
        assert_400(status, &response, &[says]);
    }
    let (status, _) = change(&sandbox, &"f".repeat(24), 500).await;
    assert_eq!(status, 404);
    let (status, _) = sandbox
        .request(
            Method::PUT,
            &change_path(OTHER_COMPANY, &id),
            Some(DEFAULT_KEY),
            Some(json!({"speed": 500})),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        sandbox
            .connection(&id)
            .await
            .unwrap()
            .get("request")
            .is_none()
    );
}

#[tokio::test]
async fn a_read_only_key_cannot_change_connections() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let resource = format!("company/{DEFAULT_COMPANY_ID}/connections/{id}");
    for (method, path, body) in [
        (
            Method::POST,
            update_path(DEFAULT_COMPANY, &id),
            Some(json!({"speed": 50})),
        ),
        (
            Method::PUT,
            change_path(DEFAULT_COMPANY, &id),
            Some(json!({"speed": 500})),
        ),
        (Method::DELETE, change_path(DEFAULT_COMPANY, &id), None),
    ] {
        let (status, response) = sandbox
            .request(method.clone(), &path, Some(READONLY_KEY), body)
            .await;
        assert_eq!(status, 401, "{method} {path}: {response}");
        assert_eq!(
            response,
            json!({"error": {
                "accessRequests": [{"action": "network:UpdateConnection", "resource": resource}],
                "message": "Access denied",
                "status": 401,
                "statusCode": 401,
            }})
        );
    }
    let admin = sandbox.connection(&id).await.unwrap();
    assert_eq!(speed_of(&admin), 100);
    assert!(admin.get("request").is_none());
    let stats = sandbox.stats().await;
    for label in ["update_connection", "change_request", "withdraw_change"] {
        assert_eq!(stats.count(label, 401), 1, "{label}");
    }
}

#[tokio::test]
async fn a_change_is_approved_automatically_after_the_approval_delay() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    // With no approval delay, the answer already shows the change approved.
    let (status, answer) = change(&sandbox, &id, 200).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (speed_of(&answer), answer["request"]["status"].as_str()),
        (200, Some("APPROVED"))
    );
    sandbox
        .set_lifecycle(Lifecycle {
            approval_delay: Duration::from_millis(1500),
            ..Lifecycle::instant()
        })
        .await;
    let (status, answer) = change(&sandbox, &id, 400).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (speed_of(&answer), answer["request"]["status"].as_str()),
        (200, Some("PENDING"))
    );
    let requested_at = answer["request"]["updatedAt"].as_str().unwrap().to_owned();
    let approved = eventually("the change to be approved", WAIT, || async {
        let (_, read) = api_status(&sandbox, &id).await;
        (read["request"]["status"] == "APPROVED").then_some(read)
    })
    .await;
    assert_eq!(speed_of(&approved), 400);
    let approved_at = approved["request"]["updatedAt"].as_str().unwrap();
    assert!(approved_at > requested_at.as_str(), "{approved}");
    assert_eq!(approved["updatedAt"], approved_at);
    assert_eq!(port_1g_remaining(&sandbox).await, 600);
    // The approval is real: a later decrease starts from the approved speed.
    let (status, body) = update(&sandbox, &id, json!({"speed": 300})).await;
    assert_eq!((status, speed_of(&body)), (200, 300));
    assert_eq!(body["request"]["status"], "APPROVED");
}

#[tokio::test]
async fn a_late_change_answer_comes_after_the_change_is_stored() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    sandbox
        .change_behaviour(json!({"changeDelayMs": 3000}))
        .await;
    assert_eq!(sandbox.behaviour().await["changeDelayMs"], 3000);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let started = Instant::now();
    let (sandbox_ref, id_ref) = (&sandbox, id.as_str());
    let ((status, answer, answered), (stored, seen)) = tokio::join!(
        async {
            let (status, answer) = change(sandbox_ref, id_ref, 500).await;
            (status, answer, started.elapsed())
        },
        async {
            let stored = eventually("the change to be stored", WAIT, || async move {
                let connection = sandbox_ref.connection(id_ref).await?;
                (connection["request"]["status"] == "PENDING").then_some(connection)
            })
            .await;
            (stored, started.elapsed())
        },
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        seen + Duration::from_secs(1) < answered,
        "stored after {seen:?}, answered after {answered:?}"
    );
    assert!(answered >= Duration::from_secs(3), "{answered:?}");
    assert_eq!(stored["request"]["speed"], 500);
    assert_eq!(answer["request"], stored["request"]);
    // Refusals answer at once.
    let before = Instant::now();
    let (status, _) = change(&sandbox, &id, 100).await;
    assert_eq!(status, 400);
    assert!(before.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn both_shapes_show_the_change_request() {
    let sandbox = Sandbox::start(&["--creating-delay", "0", "--manual-approval"]);
    // A new connection waiting for approval has no `request` in the reference shape.
    let fresh = create_ok(&sandbox, "fc-request").await;
    let read = wait_for_api_status(&sandbox, &fresh, "PENDING").await;
    assert!(read.get("request").is_none(), "{read}");
    let id = seeded_active(&sandbox, "fc-", 100).await;
    let (_, reference) = change(&sandbox, &id, 500).await;
    let updated_at = reference["request"]["updatedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        reference["request"],
        json!({"status": "PENDING", "speed": 500, "srcApproval": DEFAULT_COMPANY_ID,
               "destApproval": null, "updatedAt": updated_at})
    );
    sandbox
        .change_behaviour(json!({"connectionShape": "spec"}))
        .await;
    let (_, spec) = api_status(&sandbox, &id).await;
    let metro = spec["destMetro"][0]["id"].clone();
    assert_eq!(
        spec["request"],
        json!([{"status": "PENDING"}, {"destMetroId": metro}, {"speed": 500},
               {"srcApproval": DEFAULT_COMPANY_ID}, {"destApproval": null}, {"read": false},
               {"updatedAt": updated_at}])
    );
    assert_eq!(speed_of(&spec), 100);
    // The spec shape's connection request is unchanged.
    let (_, fresh) = api_status(&sandbox, &fresh).await;
    assert_eq!(
        fresh["request"],
        json!([{"status": "PENDING"}, {"speed": 100}])
    );
    let (_, withdrawn) = withdraw(&sandbox, &id).await;
    assert_eq!(withdrawn["request"][0], json!({"status": "WITHDRAWN"}));
    // The admin view keeps the reference shape.
    assert_eq!(
        sandbox.connection(&id).await.unwrap()["request"]["status"],
        "WITHDRAWN"
    );
}

#[tokio::test]
async fn an_admin_edit_changes_speed_and_name_without_rules() {
    let sandbox = Sandbox::start(&INSTANT);
    let id = seeded_active(&sandbox, "fc-", 100).await;
    // Faster than the port and than its capacity: the portal's doing, not the API's.
    let edited = sandbox
        .edit(&id, json!({"speed": 5000, "name": "renamed-in-portal"}))
        .await;
    assert_eq!(
        (speed_of(&edited), edited["name"].as_str()),
        (5000, Some("renamed-in-portal"))
    );
    let (_, read) = api_status(&sandbox, &id).await;
    assert_eq!(
        (speed_of(&read), read["name"].as_str()),
        (5000, Some("renamed-in-portal"))
    );
    assert_eq!(port_1g_remaining(&sandbox).await, 0);
    let edited = sandbox.edit(&id, json!({"speed": 10})).await;
    assert_eq!(
        (speed_of(&edited), edited["name"].as_str()),
        (10, Some("renamed-in-portal"))
    );
    for (path, body, wanted) in [
        (
            format!("/_sandbox/connections/{id}/edit"),
            json!({"colour": "red"}),
            400,
        ),
        (format!("/_sandbox/connections/{id}/edit"), json!({}), 400),
        (
            "/_sandbox/connections/nope/edit".to_owned(),
            json!({"speed": 1}),
            404,
        ),
    ] {
        let (status, response) = sandbox.request(Method::POST, &path, None, Some(body)).await;
        assert_eq!(status, wanted, "{path}: {response}");
    }
    // Admin calls are never counted: only the read and the ports list are.
    assert_eq!(sandbox.stats().await.0["totalRequests"], 2);
}

#[tokio::test]
async fn day2_calls_are_counted_under_their_labels() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let id = seeded_active(&sandbox, "fc-", 100).await;
    update(&sandbox, &id, json!({"speed": 90})).await;
    update(&sandbox, &id, json!({"speed": 900})).await;
    change(&sandbox, &id, 500).await;
    change(&sandbox, &id, 90).await;
    withdraw(&sandbox, &id).await;
    withdraw(&sandbox, &id).await;
    let (status, _) = sandbox
        .request(
            Method::PUT,
            &format!("{}/approve", change_path(DEFAULT_COMPANY, &id)),
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let stats = sandbox.stats().await;
    for (label, status, count) in [
        ("update_connection", 200, 1),
        ("update_connection", 400, 1),
        ("change_request", 200, 1),
        ("change_request", 400, 1),
        ("withdraw_change", 200, 1),
        ("withdraw_change", 400, 1),
        ("other", 404, 1),
    ] {
        assert_eq!(
            stats.count(label, status),
            count,
            "{label} {status}: {}",
            stats.0
        );
    }
    assert_eq!(stats.total_requests(), 7);
    // Change requests are recorded like creates, refused ones included.
    let records = stats.change_records();
    assert_eq!(
        stats.changes(),
        vec![json!({"speed": 500}), json!({"speed": 90})]
    );
    assert_eq!(
        records
            .iter()
            .map(|r| (r["status"].as_u64(), r["connectionId"].as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Some(200), Some(id.as_str())),
            (Some(400), Some(id.as_str()))
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r["company"] == DEFAULT_COMPANY && r["receivedAt"].is_string())
    );
    sandbox.reset_stats().await;
    assert!(sandbox.stats().await.changes().is_empty());
}

// ---- The binary itself ----

#[test]
fn starts_quickly() {
    let started = Instant::now();
    let sandbox = Sandbox::start(&[]);
    let took = started.elapsed();
    assert!(sandbox.url.starts_with("http://127.0.0.1:"));
    assert!(took < Duration::from_secs(3), "start took {took:?}");
}

#[test]
fn help_documents_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_consoleconnect-sandbox"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--config",
        "--print-default-config",
        "--creating-delay",
        "--approval-delay",
        "--manual-approval",
        "--deleting-delay",
        "--latency",
        "--error-rate",
        "--throttle-rate",
        "--retry-after",
        "--lost-create-rate",
        "--search-max-count",
        "--list-lag",
        "--create-delay",
        "--change-delay",
        "--refuse-duplicate-names",
        "--deleted-reads",
        "--error-shape",
        "--connection-shape",
        "SANDBOX_CREATING_DELAY",
        "SANDBOX_LIST_LAG",
        "SANDBOX_CHANGE_DELAY",
        "/api/company/{company}/connections/{id}/change",
        "/_sandbox/connections/{id}/change/approve|reject",
        "/_sandbox/faults",
        "/_sandbox/faults/answers",
        "/_sandbox/behaviour",
        "/_sandbox/seed",
        "/api/v2/company/{company}/connections?page=1&count=20&status=ACTIVE",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[test]
fn default_config_matches_the_test_constants() {
    let out = Command::new(env!("CARGO_BIN_EXE_consoleconnect-sandbox"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed,
        include_str!("../../../deploy/sandbox/sandbox.yaml")
    );
    let config: Value = serde_saphyr::from_str(&printed).unwrap();
    let acme = &config["companies"][0];
    assert_eq!(
        (acme["username"].as_str(), acme["id"].as_str()),
        (Some(DEFAULT_COMPANY), Some(DEFAULT_COMPANY_ID))
    );
    assert_eq!(acme["apiKeys"][0], DEFAULT_KEY);
    assert_eq!(acme["readOnlyApiKeys"][0], READONLY_KEY);
    assert_eq!(config["lifecycle"]["deletingDelay"], "1s");
    assert_eq!(config["search"]["maxCount"], 50);
    assert_eq!(config["companies"][1]["apiKeys"][0], OTHER_KEY);
    let ports = acme["ports"].as_array().unwrap();
    for fixture in [
        PORT_1G,
        PORT_10G,
        PORT_INACTIVE,
        PORT_DELETED,
        PORT_DUP_A,
        PORT_DUP_B,
    ] {
        let port = ports
            .iter()
            .find(|p| p["id"] == fixture.id)
            .unwrap_or_else(|| panic!("{fixture:?}"));
        assert_eq!(port["name"], fixture.name);
        assert_eq!(port["speedMbps"], fixture.speed_mbps);
    }
    let metros = config["oracleMetros"].as_array().unwrap();
    for fixture in [METRO_HKG, METRO_SIN, METRO_TYO, METRO_SYD, METRO_LON] {
        let metro = metros
            .iter()
            .find(|m| m["id"] == fixture.id)
            .unwrap_or_else(|| panic!("{fixture:?}"));
        assert_eq!(metro["code"], fixture.code);
        assert_eq!(metro["firstDataCenterFacilityIdInMetro"], fixture.dcf);
    }
}

#[tokio::test]
async fn a_config_file_seeds_companies_ports_and_metros() {
    let yaml = r#"
lifecycle: {creatingDelay: 0, approvalDelay: 0}
companies:
  - username: initech
    id: 00000000000000000000000a
    apiKeys: [initech-key]
    ports:
      - {id: p1, name: Initech-1, speedMbps: 500, metroId: m-home}
oracleMetros:
  - {id: m-away, name: Away, code: AWY, firstDataCenterFacilityIdInMetro: dcf-away}
"#;
    let sandbox = Sandbox::start_with_config(yaml);
    let body = json!({
        "type": "LAYER2", "name": "fc", "portId": "p1", "speed": 500, "destMetroId": "m-away",
        "destCompany": "oracle", "paymentType": "invoice", "destDcf": "dcf-away",
        "duration": 1, "durationUnit": "y"
    });
    let path = "/api/v2/company/initech/connections/layer2";
    let (status, created) = sandbox
        .request(Method::PUT, path, Some("initech-key"), Some(body))
        .await;
    assert_eq!(status, 200, "{created}");
    let (status, _) = sandbox
        .request(
            Method::GET,
            "/api/company/acme/ports",
            Some(DEFAULT_KEY),
            None,
        )
        .await;
    assert_eq!(status, 401, "the default fixture is replaced");
}

#[test]
fn a_broken_config_stops_the_start_with_a_reason() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, b"companies: []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_consoleconnect-sandbox"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least one company"), "{stderr}");
}
