//! The sandbox's own behaviour over HTTP: every create validation rule, the lifecycle, admin
//! actions, faults and statistics. Waiting is done by polling, never by sleeping.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use fastconnect_operator::consoleconnect::{ApiKey, ConnectionStatus, Error};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use support::sandbox::*;

const CREATE: &str = "/api/v2/company/acme/connections/layer2";
const WAIT: Duration = Duration::from_secs(10);

fn get_path(id: &str) -> String {
    format!("/api/company/acme/connections/{id}")
}

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
        (Method::GET, "/api/company/acme/connections".to_owned()),
        (Method::GET, get_path(&id)),
        (Method::DELETE, delete_path(&id)),
        (Method::PUT, CREATE.to_owned()),
    ] {
        let (status, body) = sandbox
            .request(method.clone(), &path, Some(OTHER_KEY), Some(json!({})))
            .await;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    // Through its own company path, another company's connection does not exist.
    let path = format!("/api/company/globex/connections/{id}");
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
        .request(
            Method::GET,
            "/api/company/acme/connections",
            Some(DEFAULT_KEY),
            None,
        )
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
async fn holds_thousands_of_connections() {
    let sandbox = Sandbox::start(&INSTANT);
    let client = sandbox.client();
    let key = ApiKey::new(DEFAULT_KEY);
    let created = futures::stream::iter(0..2000)
        .map(|i| {
            let (client, key) = (client.clone(), key.clone());
            async move {
                client
                    .create_layer2(&key, DEFAULT_COMPANY, &valid_request(&format!("fc-{i}")))
                    .await
            }
        })
        .buffer_unordered(16)
        .filter(|result| std::future::ready(result.is_ok()))
        .count()
        .await;
    assert_eq!(created, 2000);
    let started = Instant::now();
    let listed = client
        .list_connections(&key, DEFAULT_COMPANY)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2000);
    assert!(listed.iter().all(|c| c.status == ConnectionStatus::Active));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "listing took {:?}",
        started.elapsed()
    );
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
        "SANDBOX_CREATING_DELAY",
        "/_sandbox/faults",
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
    assert_eq!(printed, include_str!("../deploy/sandbox/sandbox.yaml"));
    let config: Value = serde_yaml::from_str(&printed).unwrap();
    let acme = &config["companies"][0];
    assert_eq!(
        (acme["username"].as_str(), acme["id"].as_str()),
        (Some(DEFAULT_COMPANY), Some(DEFAULT_COMPANY_ID))
    );
    assert_eq!(acme["apiKeys"][0], DEFAULT_KEY);
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
