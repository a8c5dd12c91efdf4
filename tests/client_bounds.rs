//! Bounded answers: the Console Connect client against sandbox answers that are huge or that
//! trickle in and never end (the sandbox's answer faults, `/_sandbox/faults/answers`). The
//! client must neither hold more than its body limit nor wait past its request deadline.

use fastconnect_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastconnect_operator::consoleconnect::{
    ApiKey, Client, ClientConfig, DEFAULT_MAX_BODY_BYTES, Endpoint, Error,
};
use serde_json::{Value, json};
use support::sandbox::*;

const GIB: u64 = 1024 * 1024 * 1024;

fn key() -> ApiKey {
    ApiKey::new(DEFAULT_KEY)
}

/// Arms an answer fault; `fields` adds to `{"endpoint": endpoint}`.
async fn spoil(sandbox: &Sandbox, endpoint: &str, fields: Value) {
    let mut body = json!({ "endpoint": endpoint });
    if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
        body.extend(fields.clone());
    }
    let (status, answer) = sandbox
        .request(
            reqwest::Method::POST,
            "/_sandbox/faults/answers",
            None,
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// The answers served under faults, oldest first.
async fn served(sandbox: &Sandbox) -> Vec<Value> {
    let (_, answer) = sandbox
        .request(reqwest::Method::GET, "/_sandbox/faults/answers", None, None)
        .await;
    answer["served"].as_array().cloned().unwrap_or_default()
}

/// The one answer served under a fault, once the sandbox has dropped its body: written out or
/// abandoned because the client hung up.
async fn ended(sandbox: &Sandbox) -> Value {
    eventually(
        "the spoiled answer to end",
        Duration::from_secs(20),
        || async {
            let served = served(sandbox).await;
            assert_eq!(served.len(), 1, "{served:?}");
            Some(served[0].clone()).filter(|s| s["ended"] == true)
        },
    )
    .await
}

fn sent(served: &Value) -> u64 {
    served["sentBytes"].as_u64().unwrap()
}

/// Error text must carry neither the key nor the padding of the body.
fn assert_clean(err: &Error) {
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(
            !text.contains(DEFAULT_KEY),
            "the API key leaked into: {text}"
        );
        assert!(!text.contains("aaaaaaaaaa"), "the body leaked into: {text}");
    }
}

fn client(sandbox: &Sandbox, config: ClientConfig) -> Client {
    Client::new(ClientConfig {
        base_url: sandbox.base_url(),
        rate_limit: None,
        ..config
    })
    .unwrap()
}

#[tokio::test]
async fn a_huge_answer_declared_in_content_length_is_refused_unread() {
    let sandbox = Sandbox::start(&[]);
    // 1 GiB declared; the body comes at 1 KiB a minute. A client that read it up to the limit
    // would hit its 10 s request timeout instead of refusing it.
    spoil(
        &sandbox,
        "search_connections",
        json!({"bytes": GIB, "contentLength": true, "chunkBytes": 1024, "intervalMs": 60_000}),
    )
    .await;
    let err = sandbox
        .client()
        .search_connections(&key(), DEFAULT_COMPANY, "ACTIVE")
        .await
        .unwrap_err();

    assert_eq!(
        err,
        Error::BodyTooLarge {
            endpoint: Endpoint::SearchConnections,
            limit: DEFAULT_MAX_BODY_BYTES,
        }
    );
    assert_eq!(err.kind(), "body_too_large");
    assert!(err.to_string().contains("limit of 4 MiB"), "{err}");
    assert_clean(&err);
}

#[tokio::test]
async fn a_huge_chunked_answer_is_cut_at_the_limit() {
    let sandbox = Sandbox::start(&[]);
    // No Content-Length: the client finds out only by reading. 1 GiB at full speed.
    spoil(&sandbox, "search_connections", json!({"bytes": GIB})).await;
    let err = sandbox
        .client()
        .search_connections(&key(), DEFAULT_COMPANY, "ACTIVE")
        .await
        .unwrap_err();

    assert_eq!(
        err,
        Error::BodyTooLarge {
            endpoint: Endpoint::SearchConnections,
            limit: DEFAULT_MAX_BODY_BYTES,
        }
    );
    assert_clean(&err);
    // The client hung up: the sandbox stopped writing after the limit plus what the socket
    // buffers on both sides held, far from the gigabyte it would otherwise have sent.
    let served = ended(&sandbox).await;
    assert_eq!(served["complete"], false, "{served}");
    let limit = DEFAULT_MAX_BODY_BYTES as u64;
    assert!(sent(&served) > limit, "{served}");
    assert!(sent(&served) < 16 * limit, "{served}");
}

#[tokio::test]
async fn an_answer_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
    let sandbox = Sandbox::start(&[]);
    let limit = 100_000;
    let client = client(
        &sandbox,
        ClientConfig {
            max_body_bytes: limit,
            ..ClientConfig::default()
        },
    );
    for content_length in [true, false] {
        // Chunks of 4 KiB do not end on the limit: the cut falls inside one.
        let fields = |bytes: usize| json!({"bytes": bytes, "contentLength": content_length, "chunkBytes": 4096});
        spoil(&sandbox, "list_ports", fields(limit)).await;
        let ports = client.list_ports(&key(), DEFAULT_COMPANY).await.unwrap();
        assert!(ports.is_empty(), "the body is a valid, empty list");

        spoil(&sandbox, "list_ports", fields(limit + 1)).await;
        let err = client
            .list_ports(&key(), DEFAULT_COMPANY)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::BodyTooLarge {
                endpoint: Endpoint::ListPorts,
                limit
            },
            "Content-Length: {content_length}"
        );
        assert!(err.to_string().contains("100000 bytes"), "{err}");
    }
}

#[tokio::test]
async fn a_trickling_answer_is_cut_at_the_request_deadline() {
    let sandbox = Sandbox::start(&[]);
    // One byte every 100 ms, forever: every read succeeds quickly, so only a deadline on the
    // whole request can end it.
    spoil(
        &sandbox,
        "search_connections",
        json!({"chunkBytes": 1, "intervalMs": 100}),
    )
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let deadline = Duration::from_secs(1);
    let client = client(
        &sandbox,
        ClientConfig {
            request_timeout: deadline,
            ..ClientConfig::default()
        },
    )
    .with_observer(Arc::new(move |_, status, took| {
        log.lock().unwrap().push((status, took))
    }));
    let started = Instant::now();
    let err = client
        .search_connections(&key(), DEFAULT_COMPANY, "ACTIVE")
        .await
        .unwrap_err();
    let took = started.elapsed();

    assert_eq!(
        err,
        Error::Timeout {
            endpoint: Endpoint::SearchConnections
        }
    );
    assert_clean(&err);
    // The status line had come: the deadline cut the body, not the wait for headers.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, Some(200));
    assert!(took >= deadline, "{took:?}");
    assert!(
        took < 5 * deadline,
        "cut at the deadline, not later: {took:?}"
    );
    let served = served(&sandbox).await;
    assert!(sent(&served[0]) >= 2, "bytes were trickling: {served:?}");
}

#[tokio::test]
async fn a_huge_error_answer_keeps_its_status() {
    let sandbox = Sandbox::start(&[]);
    // A failure's status decides the error; its body is read only as far as a message needs.
    spoil(&sandbox, "list_ports", json!({"status": 503, "bytes": GIB})).await;
    let err = sandbox
        .client()
        .list_ports(&key(), DEFAULT_COMPANY)
        .await
        .unwrap_err();
    let Error::Server { status, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 503);
    assert!(message.chars().count() <= 301, "{message}");
    let served = ended(&sandbox).await;
    assert!(sent(&served) < GIB / 16, "{served}");

    // Declared huge: still read (its start), not refused, so a 429 stays a 429.
    spoil(
        &sandbox,
        "oracle_metros",
        json!({"status": 429, "bytes": GIB, "contentLength": true}),
    )
    .await;
    let err = sandbox.client().oracle_metros(&key()).await.unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
}
