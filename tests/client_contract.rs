//! The Console Connect client against the sandbox (every call and error class) and against tiny
//! ad-hoc servers for responses the sandbox never gives (malformed bodies, odd headers).

use fastconnect_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fastconnect_operator::consoleconnect::{
    ApiKey, Client, ClientConfig, ConnectionStatus, ConnectionUpdate, Endpoint, Error, PortStatus,
    Resolution,
};
use support::sandbox::*;

const SECRET: &str = "sandbox-api-key";

fn key() -> ApiKey {
    ApiKey::new(DEFAULT_KEY)
}

fn client_for(url: &str, request_timeout: Duration) -> Client {
    Client::new(ClientConfig {
        base_url: url.parse().unwrap(),
        connect_timeout: Duration::from_secs(2),
        request_timeout,
        rate_limit: None,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "the API key leaked into: {text}");
}

/// Debug and Display of an error must never carry the key.
fn assert_clean(err: &Error) {
    assert_no_secret(&format!("{err:?}"));
    assert_no_secret(&format!("{err}"));
}

// ---- Every call against the sandbox ----

#[tokio::test]
async fn list_ports_returns_ports_that_are_not_deleted() {
    let sandbox = Sandbox::start(&[]);
    let ports = sandbox
        .client()
        .list_ports(&key(), DEFAULT_COMPANY)
        .await
        .unwrap();

    assert!(ports.iter().all(|p| !p.deleted));
    assert!(!ports.iter().any(|p| p.id == PORT_DELETED.id));
    let port = ports.iter().find(|p| p.id == PORT_1G.id).unwrap();
    assert_eq!(port.name, PORT_1G.name);
    assert_eq!(port.speed.as_ref().unwrap().value, 1000.0);
    assert_eq!(
        port.speed.as_ref().unwrap().name.as_deref(),
        Some("1000 Mbps")
    );
    assert_eq!(port.status, PortStatus::Active);
    assert_eq!(port.metro_id.as_deref(), Some(METRO_SIN.id));
    assert_eq!(port.company_id.as_deref(), Some(DEFAULT_COMPANY_ID));
    assert!(port.data_center_facility_id.is_some());
    let inactive = ports.iter().find(|p| p.id == PORT_INACTIVE.id).unwrap();
    assert_eq!(inactive.status, PortStatus::Disabled);
    let duplicates = ports.iter().filter(|p| p.name == DUP_PORT_NAME).count();
    assert_eq!(duplicates, 2);
    assert_eq!(sandbox.stats().await.count("list_ports", 200), 1);
}

#[tokio::test]
async fn oracle_metros_carry_readiness_capabilities_and_facility() {
    let sandbox = Sandbox::start(&[]);
    let metros = sandbox.client().oracle_metros(&key()).await.unwrap();

    let by_code = |code: &str| metros.iter().find(|m| m.code == code).unwrap().clone();
    let hkg = by_code("HKG");
    assert_eq!(hkg.id, METRO_HKG.id);
    assert!(hkg.ready && hkg.capabilities.layer2 && !hkg.deleted);
    assert_eq!(hkg.facility_id(), Some(METRO_HKG.dcf));
    assert_eq!(hkg.country.as_deref(), Some("hk"));
    assert!(!by_code("TYO").ready);
    assert!(!by_code("SYD").capabilities.layer2);
}

#[tokio::test]
async fn create_get_list_and_delete_round_trip() {
    let sandbox = Sandbox::start(&INSTANT_WITH_DELETE);
    let client = sandbox.client();
    let key = key();

    let created = client
        .create_layer2(&key, DEFAULT_COMPANY, &valid_request("fc-round-trip"))
        .await
        .unwrap();
    assert_eq!(created.id.len(), 24);
    assert_eq!(created.status, ConnectionStatus::Creating);
    assert_eq!(created.name, "fc-round-trip");
    assert_eq!(created.kind.as_deref(), Some("LAYER2"));
    assert_eq!(created.src_port_id.as_deref(), Some(PORT_1G.id));
    assert_eq!(created.dest_metro_id.as_deref(), Some(METRO_HKG.id));
    assert_eq!(created.class_of_service.as_deref(), Some("GOLD"));
    assert_eq!(created.speed.as_ref().unwrap().value, 100.0);
    assert!(created.created_at.is_some() && !created.vlans.is_empty());

    let read = client
        .get_connection(&key, DEFAULT_COMPANY, &created.id)
        .await
        .unwrap();
    assert_eq!(read.status, ConnectionStatus::Active);
    assert_eq!(read.error_reason, None);

    let listed = client
        .search_connections(&key, DEFAULT_COMPANY, "ACTIVE")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);

    client
        .delete_connection(&key, DEFAULT_COMPANY, &created.id)
        .await
        .unwrap();
    let gone = client
        .get_connection(&key, DEFAULT_COMPANY, &created.id)
        .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    let again = client
        .delete_connection(&key, DEFAULT_COMPANY, &created.id)
        .await;
    assert!(matches!(again, Err(Error::NotFound { .. })), "{again:?}");
    assert!(
        client
            .search_connections(&key, DEFAULT_COMPANY, "ACTIVE")
            .await
            .unwrap()
            .is_empty()
    );

    let stats = sandbox.stats().await;
    assert_eq!(stats.count("create_layer2", 200), 1);
    assert_eq!(stats.count("delete_connection", 200), 1);
    assert_eq!(stats.count("delete_connection", 404), 1);
    assert_eq!(stats.creates()[0], valid_request_json("fc-round-trip"));
}

#[tokio::test]
async fn statuses_set_by_the_service_are_read() {
    let sandbox = Sandbox::start(&["--creating-delay", "0", "--manual-approval"]);
    let client = sandbox.client();
    let key = key();
    let id = client
        .create_layer2(&key, DEFAULT_COMPANY, &valid_request("fc-status"))
        .await
        .unwrap()
        .id;

    let read = || client.get_connection(&key, DEFAULT_COMPANY, &id);
    assert_eq!(read().await.unwrap().status, ConnectionStatus::Pending);
    sandbox.error(&id, "Oracle rejected the OCID").await;
    let failed = read().await.unwrap();
    assert_eq!(failed.status, ConnectionStatus::Error);
    assert_eq!(
        failed.error_reason.as_deref(),
        Some("Oracle rejected the OCID")
    );
    sandbox.set_status(&id, "PENDING ACCEPTANCE").await;
    assert_eq!(
        read().await.unwrap().status,
        ConnectionStatus::PendingAcceptance
    );
    sandbox.set_status(&id, "REWIRING").await;
    assert_eq!(
        read().await.unwrap().status,
        ConnectionStatus::Other("REWIRING".into())
    );
}

// ---- Error classes from the sandbox ----

#[tokio::test]
async fn wrong_key_is_unauthorized() {
    let sandbox = Sandbox::start(&[]);
    let client = sandbox.client();
    let wrong = ApiKey::new("not-the-key");

    let err = client
        .list_ports(&wrong, DEFAULT_COMPANY)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("Invalid API key"), "{err}");
    let err = client.oracle_metros(&wrong).await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    let err = client
        .create_layer2(&wrong, DEFAULT_COMPANY, &valid_request("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(sandbox.stats().await.creates().is_empty());
}

#[tokio::test]
async fn another_companys_resources_are_forbidden() {
    let sandbox = Sandbox::start(&[]);
    let client = sandbox.client();
    let other = ApiKey::new(OTHER_KEY);

    let err = client
        .list_ports(&other, DEFAULT_COMPANY)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 403, .. }),
        "{err:?}"
    );
    let err = client
        .search_connections(&other, DEFAULT_COMPANY, "ACTIVE")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    let err = client
        .create_layer2(&other, DEFAULT_COMPANY, &valid_request("x"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // The other company's own view works.
    let ports = client.list_ports(&other, OTHER_COMPANY).await.unwrap();
    assert_eq!(ports[0].id, OTHER_COMPANY_PORT.id);
}

#[tokio::test]
async fn unknown_connection_is_not_found() {
    let sandbox = Sandbox::start(&[]);
    let client = sandbox.client();
    let err = client
        .get_connection(&key(), DEFAULT_COMPANY, "0123456789abcdef01234567")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string().contains("0123456789abcdef01234567"),
        "{err}"
    );
}

#[tokio::test]
async fn rejected_create_carries_the_services_message() {
    let sandbox = Sandbox::start(&[]);
    let mut request = valid_request("fc-card");
    request.payment_type = fastconnect_operator::consoleconnect::PaymentType::Creditcard;

    let err = sandbox
        .client()
        .create_layer2(&key(), DEFAULT_COMPANY, &request)
        .await
        .unwrap_err();
    let Error::InvalidRequest { status, message } = &err else {
        panic!("expected InvalidRequest, got {err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(
        message,
        "A 'paymentType' of 'creditcard' is only supported via the Console Connect web application"
    );
}

#[tokio::test]
async fn throttling_reports_retry_after() {
    let sandbox = Sandbox::start(&["--throttle-rate", "1", "--retry-after", "7"]);
    let client = sandbox.client();

    let err = client
        .list_ports(&key(), DEFAULT_COMPANY)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Throttled {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.status(), Some(429));

    sandbox
        .set_faults(Faults {
            throttle_rate: 1.0,
            retry_after_seconds: None,
            ..Faults::default()
        })
        .await;
    let err = client.oracle_metros(&key()).await.unwrap_err();
    assert_eq!(err, Error::Throttled { retry_after: None });
    assert_eq!(sandbox.stats().await.count("list_ports", 429), 1);
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let sandbox = Sandbox::start(&["--error-rate", "1"]);
    let err = sandbox
        .client()
        .get_connection(&key(), DEFAULT_COMPANY, "0123456789abcdef01234567")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err:?}");
    assert!(err.to_string().contains("injected"), "{err}");
}

#[tokio::test]
async fn lost_create_responses_are_server_errors_but_the_connection_exists() {
    let sandbox = Sandbox::start(&["--lost-create-rate", "1"]);
    let client = sandbox.client();
    let err = client
        .create_layer2(&key(), DEFAULT_COMPANY, &valid_request("fc-lost"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server { status: 502, .. }), "{err:?}");
    let listed = client
        .search_connections(&key(), DEFAULT_COMPANY, "CREATING")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "fc-lost");
}

#[tokio::test]
async fn slow_responses_time_out() {
    let sandbox = Sandbox::start(&["--latency", "3s"]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = client_for(&sandbox.url, Duration::from_millis(300)).with_observer(Arc::new(
        move |endpoint, status, took| log.lock().unwrap().push((endpoint, status, took)),
    ));

    let err = client
        .search_connections(&key(), DEFAULT_COMPANY, "ACTIVE")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Timeout {
            endpoint: Endpoint::SearchConnections
        }
    );
    assert_eq!(err.status(), None);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].0, seen[0].1), (Endpoint::SearchConnections, None));
    assert!(seen[0].2 >= Duration::from_millis(250), "{:?}", seen[0].2);
}

#[tokio::test]
async fn observer_sees_every_request_with_its_status() {
    let sandbox = Sandbox::start(&INSTANT_WITH_DELETE);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = sandbox
        .client()
        .with_observer(Arc::new(move |endpoint, status, _| {
            log.lock().unwrap().push((endpoint, status))
        }));
    let key = key();

    // A connection for the day-2 calls, made before the observed ones.
    let active = sandbox
        .client()
        .create_layer2(&key, DEFAULT_COMPANY, &valid_request("fc-changed"))
        .await
        .unwrap()
        .id;
    client.list_ports(&key, DEFAULT_COMPANY).await.unwrap();
    client.oracle_metros(&key).await.unwrap();
    let id = client
        .create_layer2(&key, DEFAULT_COMPANY, &valid_request("fc-observed"))
        .await
        .unwrap()
        .id;
    client
        .get_connection(&key, DEFAULT_COMPANY, &id)
        .await
        .unwrap();
    client
        .search_connections(&key, DEFAULT_COMPANY, "ACTIVE")
        .await
        .unwrap();
    client
        .delete_connection(&key, DEFAULT_COMPANY, &id)
        .await
        .unwrap();
    client
        .get_connection(&key, DEFAULT_COMPANY, &id)
        .await
        .unwrap_err();
    let lowered = ConnectionUpdate {
        speed: Some(50),
        name: None,
    };
    client
        .update_connection(&key, DEFAULT_COMPANY, &active, &lowered)
        .await
        .unwrap();
    sandbox.set_manual_approval(true).await;
    client
        .request_change(&key, DEFAULT_COMPANY, &active, 200)
        .await
        .unwrap();
    client
        .withdraw_change(&key, DEFAULT_COMPANY, &active)
        .await
        .unwrap();
    let now = jiff::Timestamp::now();
    let hour_ago = now - jiff::SignedDuration::from_hours(1);
    client
        .connection_traffic(
            &key,
            DEFAULT_COMPANY,
            &active,
            (hour_ago, now),
            Resolution::Minute,
        )
        .await
        .unwrap();

    let seen = seen.lock().unwrap().clone();
    // A search whose one page is short reads one more page: nothing yet says that the
    // service honours `count`, so the short page may be a capped one.
    let expected: Vec<(Endpoint, Option<u16>)> = Endpoint::ALL
        .iter()
        .flat_map(|endpoint| match endpoint {
            Endpoint::SearchConnections => vec![(*endpoint, Some(200)); 2],
            _ => vec![(*endpoint, Some(200))],
        })
        .collect();
    // The 404 read of the deleted connection comes between the delete and the day-2 calls.
    let mut expected = expected;
    let after_delete = 1 + expected
        .iter()
        .position(|(e, _)| *e == Endpoint::DeleteConnection)
        .unwrap();
    expected.insert(after_delete, (Endpoint::GetConnection, Some(404)));
    assert_eq!(seen, expected);
    let labels: Vec<&str> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(
        labels,
        [
            "list_ports",
            "oracle_metros",
            "create_layer2",
            "get_connection",
            "search_connections",
            "delete_connection",
            "update_connection",
            "change_request",
            "withdraw_change",
            "connection_utilization"
        ]
    );
    // The sandbox counts under the same names.
    let stats = sandbox.stats().await;
    for label in labels {
        assert!(stats.count(label, 200) >= 1, "{label}: {:?}", stats.0);
    }
}

#[tokio::test]
async fn refused_connections_are_transport_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client_for(&url, Duration::from_secs(2))
        .list_ports(&key(), DEFAULT_COMPANY)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                endpoint: Some(Endpoint::ListPorts),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("http://"),
        "no URL in transport errors: {err}"
    );
}

// ---- Ad-hoc servers for responses the sandbox never gives ----

/// A server answering every request with the same response, recording what it received.
struct Canned {
    url: String,
    requests: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

async fn canned(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> Canned {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let headers = headers.to_vec();
    let app = Router::new().fallback(
        move |method: axum::http::Method, uri: Uri, got: HeaderMap| {
            let headers = headers.clone();
            log.lock().unwrap().push((format!("{method} {uri}"), got));
            async move {
                let mut response: Response =
                    (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        },
    );
    Canned {
        url: serve(app).await,
        requests,
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn canned_client(server: &Canned) -> Client {
    client_for(&server.url, Duration::from_secs(5))
}

#[tokio::test]
async fn requests_carry_auth_user_agent_and_the_documented_paths() {
    let server = canned(
        200,
        &[("content-type", "application/json")],
        r#"{"results":[]}"#,
    )
    .await;
    let client = canned_client(&server);
    client.list_ports(&key(), "acme").await.unwrap();
    client.oracle_metros(&key()).await.unwrap();
    client
        .search_connections(&key(), "acme", "ACTIVE")
        .await
        .unwrap();
    client
        .delete_connection(&key(), "acme", "abc")
        .await
        .unwrap();

    let requests = server.requests.lock().unwrap();
    let lines: Vec<&str> = requests.iter().map(|(line, _)| line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /api/company/acme/ports",
            "GET /api/company/oracle/metro/capabilities",
            "GET /api/v2/company/acme/connections?page=1&count=100&status=ACTIVE",
            "DELETE /api/v2/company/acme/connections/abc",
        ]
    );
    let headers = &requests[0].1;
    assert_eq!(headers["authorization"], "Bearer sandbox-api-key");
    assert_eq!(
        headers["user-agent"],
        concat!("fastconnect-operator/", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn malformed_json_is_a_decode_error() {
    let server = canned(
        200,
        &[("content-type", "application/json")],
        r#"{"results": ["#,
    )
    .await;
    let err = canned_client(&server)
        .list_ports(&key(), "acme")
        .await
        .unwrap_err();
    let Error::Decode { endpoint, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*endpoint, Endpoint::ListPorts);
    assert!(message.contains("not valid JSON"), "{message}");
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn html_on_success_is_a_decode_error_naming_the_content_type() {
    let server = canned(
        200,
        &[("content-type", "text/html")],
        "<html><body>Login</body></html>",
    )
    .await;
    let err = canned_client(&server)
        .oracle_metros(&key())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode {
                endpoint: Endpoint::OracleMetros,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("text/html"), "{err}");
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_a_decode_error() {
    let server = canned(200, &[], r#"{"results": {"id": "x"}}"#).await;
    let err = canned_client(&server)
        .search_connections(&key(), "acme", "ACTIVE")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode {
                endpoint: Endpoint::SearchConnections,
                ..
            }
        ),
        "{err:?}"
    );

    let server = canned(200, &[], "").await;
    let err = canned_client(&server)
        .get_connection(&key(), "acme", "abc")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty body"), "{err}");

    let server = canned(200, &[], r#"{"name": "no id"}"#).await;
    let err = canned_client(&server)
        .create_layer2(&key(), "acme", &valid_request("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing field `id`"), "{err}");
}

#[tokio::test]
async fn values_of_the_wrong_type_stay_out_of_decode_errors() {
    // serde quotes the value it did not expect; an answer's values can be secrets (an OCID
    // echoed back, the key echoed by a proxy), so the error keeps only their kind.
    const OCID: &str = "ocid1.virtualcircuit.oc1.phx.aaaasecretvalue";
    let cases: [(&'static str, &str); 3] = [
        (
            r#"{"results": ["ocid1.virtualcircuit.oc1.phx.aaaasecretvalue"]}"#,
            "item 0: invalid type: string, expected struct Port",
        ),
        (
            r#"{"results": ["Authorization: Bearer sandbox-api-key"]}"#,
            "item 0: invalid type: string, expected struct Port",
        ),
        (
            r#"{"results": [{"id": 80012345}]}"#,
            "item 0: invalid type: integer, expected a string",
        ),
    ];
    for (body, expected) in cases {
        let server = canned(200, &[("content-type", "application/json")], body).await;
        let err = canned_client(&server)
            .list_ports(&key(), "acme")
            .await
            .unwrap_err();
        let Error::Decode { endpoint, message } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*endpoint, Endpoint::ListPorts);
        assert!(message.contains(expected), "{message}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(OCID) && !text.contains("80012345"), "{text}");
        assert_clean(&err);
    }
}

#[tokio::test]
async fn lenient_reading_keeps_unknown_statuses_and_odd_fields() {
    let body = r#"{"id": "abc", "status": "PENDING ACCEPTANCE", "speed": "fast", "extra": [1]}"#;
    let server = canned(200, &[], body).await;
    let connection = canned_client(&server)
        .get_connection(&key(), "acme", "abc")
        .await
        .unwrap();
    assert_eq!(connection.status, ConnectionStatus::PendingAcceptance);
    assert_eq!(connection.speed, None);

    let server = canned(200, &[], r#"{"id": "abc", "status": "Quantum"}"#).await;
    let connection = canned_client(&server)
        .get_connection(&key(), "acme", "abc")
        .await
        .unwrap();
    assert_eq!(connection.status.to_string(), "Quantum");
}

#[tokio::test]
async fn html_error_pages_become_short_server_errors() {
    let page: &'static str =
        Box::leak(format!("<html>{}</html>", "Bad Gateway ".repeat(100)).into_boxed_str());
    let server = canned(502, &[("content-type", "text/html")], page).await;
    let err = canned_client(&server)
        .list_ports(&key(), "acme")
        .await
        .unwrap_err();
    let Error::Server {
        status: 502,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(message.starts_with("<html>Bad Gateway"), "{message}");
    assert!(message.chars().count() <= 301, "{}", message.len());
}

#[tokio::test]
async fn other_error_bodies_and_statuses() {
    let server = canned(404, &[], "nothing here").await;
    let err = canned_client(&server)
        .get_connection(&key(), "acme", "abc")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::NotFound {
            message: "nothing here".into()
        }
    );

    let server = canned(422, &[], r#"{"message": "speed too high"}"#).await;
    let err = canned_client(&server)
        .create_layer2(&key(), "acme", &valid_request("x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::InvalidRequest {
            status: 422,
            message: "speed too high".into()
        }
    );

    let server = canned(418, &[], "").await;
    let err = canned_client(&server)
        .list_ports(&key(), "acme")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::UnexpectedStatus {
            status: 418,
            message: "I'm a teapot".into()
        }
    );

    let server = canned(503, &[], "").await;
    let err = canned_client(&server)
        .list_ports(&key(), "acme")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Server {
            status: 503,
            message: "Service Unavailable".into()
        }
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = canned(302, &[("location", "http://127.0.0.1:1/elsewhere")], "").await;
    let err = canned_client(&server)
        .create_layer2(&key(), "acme", &valid_request("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedStatus { status: 302, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retry_after_as_http_date_and_absent() {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    let date: &'static str = Box::leak(
        jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&at)
            .unwrap()
            .into_boxed_str(),
    );
    let server = canned(429, &[("retry-after", date)], "").await;
    let err = canned_client(&server)
        .list_ports(&key(), "acme")
        .await
        .unwrap_err();
    let wait = err.retry_after().expect("a wait from the HTTP date");
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );

    let server = canned(429, &[], "slow down").await;
    let err = canned_client(&server)
        .list_ports(&key(), "acme")
        .await
        .unwrap_err();
    assert_eq!(err, Error::Throttled { retry_after: None });
}

#[tokio::test]
async fn connection_closed_without_a_response_is_a_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            drop(socket);
        }
    });
    let err = client_for(&url, Duration::from_secs(2))
        .get_connection(&key(), "acme", "abc")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                endpoint: Some(Endpoint::GetConnection),
                ..
            }
        ),
        "{err:?}"
    );
}

// ---- The key stays secret ----

#[tokio::test]
async fn echoed_keys_are_redacted_from_errors() {
    let app = Router::new().fallback(|headers: HeaderMap| async move {
        let echoed = headers["authorization"].to_str().unwrap().to_owned();
        (
            StatusCode::BAD_REQUEST,
            format!(r#"{{"message": "bad header: {echoed}"}}"#),
        )
    });
    let url = serve(app).await;
    let err = client_for(&url, Duration::from_secs(2))
        .list_ports(&key(), "acme")
        .await
        .unwrap_err();
    assert_clean(&err);
    assert!(err.to_string().contains("<redacted>"), "{err}");
}

#[tokio::test]
async fn the_key_appears_in_no_debug_or_display_output() {
    let key = key();
    assert_eq!(format!("{key:?}"), "<redacted>");
    assert_eq!(format!("{key}"), "<redacted>");

    let sandbox = Sandbox::start(&["--error-rate", "0"]);
    let client = sandbox.client();
    assert_no_secret(&format!("{client:?}"));
    assert_no_secret(&format!("{:?}", sandbox.client_config()));
    assert_no_secret(&format!("{:?}", valid_request("x")));

    let mut errors = Vec::new();
    errors.push(
        client
            .list_ports(&ApiKey::new("sandbox-api-keyX"), DEFAULT_COMPANY)
            .await
            .unwrap_err(),
    );
    errors.push(
        client
            .list_ports(&ApiKey::new(OTHER_KEY), DEFAULT_COMPANY)
            .await
            .unwrap_err(),
    );
    errors.push(
        client
            .get_connection(&key, DEFAULT_COMPANY, "nope")
            .await
            .unwrap_err(),
    );
    let mut bad = valid_request("x");
    bad.speed = 100_000;
    errors.push(
        client
            .create_layer2(&key, DEFAULT_COMPANY, &bad)
            .await
            .unwrap_err(),
    );
    sandbox
        .set_faults(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        })
        .await;
    errors.push(client.list_ports(&key, DEFAULT_COMPANY).await.unwrap_err());
    sandbox
        .set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        })
        .await;
    errors.push(client.list_ports(&key, DEFAULT_COMPANY).await.unwrap_err());
    sandbox
        .set_faults(Faults {
            latency: Duration::from_secs(2),
            ..Faults::default()
        })
        .await;
    let impatient = client_for(&sandbox.url, Duration::from_millis(200));
    errors.push(
        impatient
            .list_ports(&key, DEFAULT_COMPANY)
            .await
            .unwrap_err(),
    );
    drop(sandbox);
    errors.push(client.list_ports(&key, DEFAULT_COMPANY).await.unwrap_err());

    let kinds: Vec<&str> = errors.iter().map(Error::kind).collect();
    assert_eq!(
        kinds,
        [
            "unauthorized",
            "unauthorized",
            "not_found",
            "invalid_request",
            "throttled",
            "server",
            "timeout",
            "transport"
        ]
    );
    for err in &errors {
        assert_clean(err);
    }
}

// ---- Paging (the search is paged; no maximum page size is documented) ----

/// A search endpoint over `total` connections named `c0`.. that serves at most `cap` per page,
/// whatever `count` asks, and logs each request's query. With `ignore_page`, every page is
/// page 1.
async fn paged_server(total: usize, cap: usize, ignore_page: bool) -> Canned {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let app = Router::new().fallback(move |uri: Uri, got: HeaderMap| {
        log.lock().unwrap().push((uri.to_string(), got));
        async move {
            let query: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            let page: usize = query["page"].parse().unwrap();
            let count: usize = query["count"].parse().unwrap();
            let size = count.min(cap);
            let page = if ignore_page { 1 } else { page };
            let results: Vec<serde_json::Value> = (0..total)
                .skip((page - 1) * size)
                .take(size)
                .map(|i| serde_json::json!({"id": format!("c{i}"), "name": format!("n{i}"), "status": query["status"]}))
                .collect();
            axum::Json(serde_json::json!({ "results": results })).into_response()
        }
    });
    Canned {
        url: serve(app).await,
        requests,
    }
}

fn paging_client(url: &str, page_size: u32, max_pages: u32) -> Client {
    Client::new(ClientConfig {
        base_url: url.parse().unwrap(),
        page_size,
        max_pages,
        rate_limit: None,
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_search_reads_every_page_even_when_the_service_caps_the_page_size() {
    // 23 connections, pages capped at 5 while the client asks for 10: a short page is not
    // the end until the service has been seen to fill a page of 10.
    let server = paged_server(23, 5, false).await;
    let client = paging_client(&server.url, 10, 50);
    let found = client
        .search_connections(&key(), "acme", "ACTIVE")
        .await
        .unwrap();
    let ids: Vec<String> = found.iter().map(|c| c.id.clone()).collect();
    let expected: Vec<String> = (0..23).map(|i| format!("c{i}")).collect();
    assert_eq!(ids, expected);
    let queries: Vec<String> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(uri, _)| uri.clone())
        .collect();
    assert_eq!(
        queries.len(),
        6,
        "pages of 5, 5, 5, 5, 3, then an empty one: {queries:?}"
    );
    assert!(
        queries[0].ends_with("?page=1&count=10&status=ACTIVE"),
        "{queries:?}"
    );
}

#[tokio::test]
async fn once_the_count_is_honoured_a_short_page_ends_the_search() {
    let server = paged_server(25, 100, false).await;
    let client = paging_client(&server.url, 10, 50);
    let found = client
        .search_connections(&key(), "acme", "PENDING")
        .await
        .unwrap();
    assert_eq!(found.len(), 25);
    assert_eq!(server.requests.lock().unwrap().len(), 3, "10 + 10 + 5");
    // The service has filled a page of 10: the next search stops at the first short page.
    let small = paged_server(3, 100, false).await;
    let learned = paging_client(&small.url, 10, 50);
    learned
        .search_connections(&key(), "acme", "A")
        .await
        .unwrap();
    assert_eq!(
        small.requests.lock().unwrap().len(),
        2,
        "unknown yet: one empty page confirms"
    );
}

#[tokio::test]
async fn a_service_ignoring_the_page_fails_loudly() {
    let server = paged_server(30, 100, true).await;
    let err = paging_client(&server.url, 10, 50)
        .search_connections(&key(), "acme", "ACTIVE")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Decode { endpoint: Endpoint::SearchConnections, message } if message.contains("ignore `page`")),
        "{err:?}"
    );
}

#[tokio::test]
async fn more_pages_than_the_limit_fail_loudly_rather_than_return_part() {
    let server = paged_server(100, 100, false).await;
    let err = paging_client(&server.url, 10, 4)
        .search_connections(&key(), "acme", "ACTIVE")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 4 pages"), "{err}");
}

#[tokio::test]
async fn the_rate_limit_paces_requests_per_company() {
    let server = canned(200, &[], r#"{"results":[]}"#).await;
    let client = Client::new(ClientConfig {
        base_url: server.url.parse().unwrap(),
        rate_limit: Some(fastconnect_operator::consoleconnect::RateLimit {
            per_second: std::num::NonZeroU32::new(10).unwrap(),
            burst: std::num::NonZeroU32::new(2).unwrap(),
        }),
        ..ClientConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let key = key();
    let calls = (0..6).map(|_| client.list_ports(&key, "acme"));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    // A burst of 2, then 4 more at 10 per second: at least 0.35 s (jitter only adds).
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    // Another company has its own bucket.
    let other = std::time::Instant::now();
    client.list_ports(&key, "globex").await.unwrap();
    assert!(
        other.elapsed() < Duration::from_millis(300),
        "{:?}",
        other.elapsed()
    );
}

/// The statuses the operator searches must find a connection in each documented status; a
/// status missing from `SEARCHED_STATUSES` would make an order invisible, so this fails then.
#[tokio::test]
async fn every_documented_status_is_found_by_the_searches() {
    use fastconnect_operator::consoleconnect::SEARCHED_STATUSES;
    let sandbox = Sandbox::start(&INSTANT);
    let client = sandbox.client();
    let key = key();
    let documented = [
        "CREATING",
        "PENDING",
        "PENDING_ACCEPTANCE",
        "ACCEPTED",
        "ACTIVATING",
        "ACTIVE",
        "DISABLING",
        "DISABLED",
        "DENIED",
        "CANCELLED",
        "DELETING",
        "MANUAL",
        "ERROR",
    ];
    for status in documented {
        let mut request = valid_request(&format!("fc-{status}"));
        request.speed = 10;
        let created = client
            .create_layer2(&key, DEFAULT_COMPANY, &request)
            .await
            .unwrap();
        sandbox.set_status(&created.id, status).await;
    }
    let mut found = std::collections::BTreeMap::new();
    for status in SEARCHED_STATUSES {
        for connection in client
            .search_connections(&key, DEFAULT_COMPANY, status)
            .await
            .unwrap()
        {
            found.insert(connection.name.clone(), connection.status.clone());
        }
    }
    for status in documented {
        let name = format!("fc-{status}");
        let seen = found
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not found by any search"));
        assert_eq!(seen, &ConnectionStatus::parse(status));
    }
}

#[tokio::test]
async fn reads_use_the_v2_path() {
    let server = canned(200, &[], r#"{"id": "abc", "status": "ACTIVE"}"#).await;
    let client = canned_client(&server);
    let read = client.get_connection(&key(), "acme", "abc").await.unwrap();
    assert_eq!(read.status, ConnectionStatus::Active);
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests[0].0, "GET /api/v2/company/acme/connections/abc");
}

#[tokio::test]
async fn day_2_calls_decode_in_both_shapes_and_refusals_are_classified() {
    let sandbox = Sandbox::start(&INSTANT);
    sandbox.set_manual_approval(true).await;
    let client = sandbox.client();
    let key = key();
    for shape in ["reference", "spec"] {
        sandbox
            .change_behaviour(serde_json::json!({ "connectionShape": shape }))
            .await;
        let id = client
            .create_layer2(
                &key,
                DEFAULT_COMPANY,
                &valid_request(&format!("fc-{shape}")),
            )
            .await
            .unwrap()
            .id;
        sandbox.activate(&id).await;

        // A raise through the update call is refused, and says why.
        let raise = ConnectionUpdate {
            speed: Some(200),
            name: None,
        };
        let err = client
            .update_connection(&key, DEFAULT_COMPANY, &id, &raise)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidRequest { .. }),
            "{shape}: {err:?}"
        );
        assert!(err.to_string().contains("change"), "{shape}: {err}");

        let renamed = client
            .update_connection(
                &key,
                DEFAULT_COMPANY,
                &id,
                &ConnectionUpdate {
                    speed: Some(50),
                    name: Some(format!("fc-{shape}-renamed")),
                },
            )
            .await
            .unwrap()
            .expect("the answer is the connection");
        assert_eq!(renamed.speed_mbps(), Some(50), "{shape}");
        assert_eq!(renamed.name, format!("fc-{shape}-renamed"));

        let asked = client
            .request_change(&key, DEFAULT_COMPANY, &id, 300)
            .await
            .unwrap()
            .expect("the answer is the connection");
        let open = asked.open_change().expect("an open change request");
        assert_eq!(open.speed_mbps(), Some(300), "{shape}");
        assert_eq!(asked.speed_mbps(), Some(50), "{shape}: not before approval");
        let read = client
            .get_connection(&key, DEFAULT_COMPANY, &id)
            .await
            .unwrap();
        assert_eq!(read.open_change().and_then(|r| r.speed_mbps()), Some(300));

        let withdrawn = client
            .withdraw_change(&key, DEFAULT_COMPANY, &id)
            .await
            .unwrap()
            .expect("the answer is the connection");
        assert!(withdrawn.open_change().is_none(), "{shape}");
        let status = withdrawn.request.and_then(|r| r.status);
        assert_eq!(status.as_deref(), Some("WITHDRAWN"), "{shape}");
    }

    let readonly = ApiKey::new(READONLY_KEY);
    let some_id = client
        .create_layer2(&key, DEFAULT_COMPANY, &valid_request("fc-readonly"))
        .await
        .unwrap()
        .id;
    let err = client
        .request_change(&readonly, DEFAULT_COMPANY, &some_id, 300)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessDenied { .. }), "{err:?}");
}
