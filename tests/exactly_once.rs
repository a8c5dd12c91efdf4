//! Exactly one circuit per resource and clean deletion, against what the published spec allows
//! the real service to do: lists that page and lag, creates that answer late or not at all,
//! names refused as in use, asynchronous deletes, requests that end CANCELLED. Real control
//! plane, sandbox over HTTP, the operator binary as its own process.

use fastconnect_test_support as support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, CustomResourceExt, ResourceExt,
    api::{DeleteParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use support::{
    cluster,
    env::*,
    fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};

/// Events of the namespace with this reason.
async fn events_with_reason(env: &Env, reason: &str) -> usize {
    env.events()
        .await
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count()
}

async fn wait_for_remote(env: &Env, count: usize) {
    let sandbox = &env.sandbox;
    sandbox::eventually("the orders to reach the sandbox", WAIT, || async move {
        (sandbox.connections().await.len() >= count).then_some(())
    })
    .await;
}

/// The list shows a new order only 5 s after it is placed, and the create answers after 3 s,
/// past the operator's 1 s timeout: every order's outcome is unknown, the first look finds
/// nothing, and the operator is killed while it is confirming. Still one circuit each.
#[tokio::test]
async fn a_lagging_list_and_late_answers_never_order_twice_even_across_a_crash() {
    let operator_env = [("FCO_API_TIMEOUT", "1s"), ("FCO_ORDER_SETTLE", "9s")];
    let mut env = Env::start_with(
        &[
            &sandbox::INSTANT[..],
            &["--list-lag", "5s", "--create-delay", "3s"],
        ]
        .concat(),
        &operator_env,
    )
    .await;
    let names = ["lag-0", "lag-1", "lag-2"];
    for name in names {
        env.create_small(name).await;
    }
    wait_for_remote(&env, names.len()).await;
    env.operator.as_mut().expect("operator").kill();
    env.start_operator(&operator_env);
    for name in names {
        env.wait_phase(name, Phase::Active).await;
    }
    for name in names {
        let live = env.live_remote(name).await;
        assert_eq!(live.len(), 1, "{name}: {live:?}");
        let fcc = env.fccs.get(name).await.unwrap();
        assert_eq!(connection_id(&fcc), live[0]["id"].as_str().unwrap());
    }
    assert_eq!(env.sandbox.connections().await.len(), names.len());
    assert!(
        events_with_reason(&env, "ConfirmingOrder").await > 0,
        "the lost answers were reported as being confirmed"
    );
}

/// 90 older connections of others, pages of at most 20 although the operator asks for 50:
/// the new orders are on the fifth page. Every create's answer is lost, so each order can
/// only be found by searching all pages.
#[tokio::test]
async fn orders_on_the_last_of_many_pages_are_found() {
    let env = Env::start_with(
        &[
            &sandbox::INSTANT[..],
            &["--search-max-count", "20", "--lost-create-rate", "1"],
        ]
        .concat(),
        &[("FCO_SEARCH_PAGE_SIZE", "50")],
    )
    .await;
    let older = env
        .sandbox
        .seed(sandbox::DEFAULT_COMPANY, 90, "ACTIVE", "others-")
        .await;
    assert_eq!(older.len(), 90);
    for name in ["page-0", "page-1"] {
        env.create_small(name).await;
    }
    for name in ["page-0", "page-1"] {
        env.wait_phase(name, Phase::Active).await;
        assert_eq!(env.live_remote(name).await.len(), 1, "{name}");
    }
    let stats = env.sandbox.stats().await;
    assert_eq!(
        stats.total("create_layer2"),
        2,
        "one order each: {:?}",
        stats.0
    );
    assert_eq!(
        stats.count("create_layer2", 502),
        2,
        "both answers were lost"
    );
    assert!(stats.total("search_connections") >= 5, "{:?}", stats.0);
}

/// The answer is lost, the list lags past the settle window, and the service refuses the
/// second order because the name is in use: that means "find it", never "failed".
#[tokio::test]
async fn a_name_in_use_after_a_lost_answer_means_find_it() {
    let env = Env::start_with(
        &[
            &sandbox::INSTANT[..],
            &[
                "--refuse-duplicate-names",
                "--list-lag",
                "6s",
                "--lost-create-rate",
                "1",
            ],
        ]
        .concat(),
        &[("FCO_ORDER_SETTLE", "2s")],
    )
    .await;
    env.create_small("in-use").await;
    let fcc = env.wait_phase("in-use", Phase::Active).await;
    let live = env.live_remote("in-use").await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(connection_id(&fcc), live[0]["id"].as_str().unwrap());
    let status = fcc.status.unwrap();
    assert_eq!(status.refused_generation, None, "never taken as a refusal");
    let stats = env.sandbox.stats().await;
    assert_eq!(stats.count("create_layer2", 502), 1, "{:?}", stats.0);
    assert!(stats.count("create_layer2", 400) >= 1, "{:?}", stats.0);
    assert!(events_with_reason(&env, "NameInUse").await > 0);
}

/// Deleting a request Console Connect has not approved yet: it ends CANCELLED (never
/// DELETED), the resource goes, and at most two DELETE calls are made.
#[tokio::test]
async fn deleting_a_pending_request_cancels_it_with_at_most_two_deletes() {
    let env = Env::start(&["--creating-delay", "0", "--manual-approval"]).await;
    env.create_small("pending").await;
    let fcc = env.wait_phase("pending", Phase::AwaitingApproval).await;
    let id = connection_id(&fcc);
    env.fccs
        .delete("pending", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("pending").await;
    assert_eq!(
        env.sandbox.status_of(&id).await.as_deref(),
        Some("CANCELLED")
    );
    let deletes = env.sandbox.stats().await.total("delete_connection");
    assert!((1..=2).contains(&deletes), "{deletes} DELETE calls");
}

/// Deleting the namespace deletes its Secrets together with our resources; the key Secret's
/// guard keeps the key readable until the connection is disconnected.
#[tokio::test]
async fn deleting_the_namespace_disconnects() {
    let env = Env::start(&sandbox::INSTANT_WITH_DELETE).await;
    env.create_small("ns-gone").await;
    let id = connection_id(&env.wait_phase("ns-gone", Phase::Active).await);
    let secret = Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .get("consoleconnect")
        .await
        .unwrap();
    assert!(
        secret
            .finalizers()
            .iter()
            .any(|f| f == fastconnect_operator::controller::SECRET_FINALIZER),
        "the key Secret is guarded while the connection exists: {:?}",
        secret.finalizers()
    );
    cluster::delete_namespace(&env.client, &env.ns, Duration::from_secs(120)).await;
    let remote = env.sandbox.connection(&id).await.expect("admin view");
    assert_eq!(remote["deleted"], true, "{remote}");
}

fn guarded(secret: &Secret) -> bool {
    secret
        .finalizers()
        .iter()
        .any(|f| f == fastconnect_operator::controller::SECRET_FINALIZER)
}

/// Many resources sharing one key, deleted at once: the key stays guarded while one resource
/// still needs it, and the guard goes once the last is released.
#[tokio::test]
async fn the_key_guard_outlives_a_mass_deletion_and_goes_with_the_last_resource() {
    let env = Env::start(&sandbox::INSTANT_WITH_DELETE).await;
    let names: Vec<String> = (0..12).map(|i| format!("many-{i}")).collect();
    for name in names.iter().map(String::as_str).chain(["keeper"]) {
        env.create_small(name).await;
    }
    for name in names.iter().map(String::as_str).chain(["keeper"]) {
        env.wait_phase(name, Phase::Active).await;
    }
    let secrets = Api::<Secret>::namespaced(env.client.clone(), &env.ns);
    assert!(guarded(&secrets.get("consoleconnect").await.unwrap()));
    // Every state of the Secret from now on: a guard lost even for a moment counts (the
    // keeper's next poll would put it back).
    let states = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = states.clone();
    let config = watcher::Config::default().fields("metadata.name=consoleconnect");
    let watch = tokio::spawn(watcher(secrets.clone(), config).applied_objects().for_each(
        move |secret| {
            if let Ok(secret) = secret {
                sink.lock().unwrap().push(guarded(&secret));
            }
            futures::future::ready(())
        },
    ));

    for name in &names {
        env.fccs
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    for name in &names {
        env.wait_gone(name).await;
    }
    // A release decides on the guard after its finalizer is gone: two more polls of the keeper
    // leave every release time to have decided.
    let reads = |s: &sandbox::Stats| s.total("search_connections") + s.total("get_connection");
    let before = reads(&env.sandbox.stats().await);
    let sandbox = &env.sandbox;
    cluster::wait_for("two more polls", Duration::from_secs(60), || async move {
        (reads(&sandbox.stats().await) >= before + 2).then_some(())
    })
    .await;
    assert!(
        guarded(&secrets.get("consoleconnect").await.unwrap()),
        "the keeper still needs the key"
    );
    watch.abort();
    let seen = states.lock().unwrap().clone();
    assert!(
        seen.iter().all(|guarded| *guarded),
        "the guard went while the keeper needed the key: {seen:?}"
    );

    env.fccs
        .delete("keeper", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_gone("keeper").await;
    let secrets = &secrets;
    cluster::wait_for("the guard to go", Duration::from_secs(30), || async move {
        let secret = secrets.get("consoleconnect").await.ok()?;
        (!guarded(&secret)).then_some(())
    })
    .await;
}

/// A resource whose status was lost (a restore) still has our finalizer: on deletion the
/// operator finds the order by name and disconnects it rather than letting go of it.
#[tokio::test]
async fn a_resource_whose_status_was_wiped_is_disconnected_on_deletion() {
    let mut env = Env::start(&sandbox::INSTANT_WITH_DELETE).await;
    env.create_small("wiped").await;
    let id = connection_id(&env.wait_phase("wiped", Phase::Active).await);
    env.operator.as_mut().expect("operator").kill();
    cluster::kubectl_ok(&[
        "-n",
        &env.ns,
        "patch",
        "fcc",
        "wiped",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":null}"#,
    ]);
    let wiped = env.fccs.get("wiped").await.unwrap();
    assert_eq!(wiped.status, None, "the status is gone");
    env.fccs
        .delete("wiped", &DeleteParams::default())
        .await
        .unwrap();
    env.start_operator(&[]);
    env.wait_gone("wiped").await;
    let remote = env.sandbox.connection(&id).await.expect("admin view");
    assert_eq!(
        remote["deleted"], true,
        "disconnected, not leaked: {remote}"
    );
    assert_eq!(env.creates().await, 1, "nothing was ordered again");
}

/// `team-a`/`x` and `team`/`a-x` had the same default name; now they get two connections,
/// and deleting one leaves the other running.
#[tokio::test]
async fn default_names_of_two_namespaces_do_not_collide() {
    let client = cluster::client().await;
    cluster::apply_crd(&client, &FastConnectConnection::crd()).await;
    let base = cluster::unique_name("team");
    let (first, second) = (format!("{base}-a"), base.clone());
    for ns in [&first, &second] {
        cluster::create_namespace(&client, ns).await;
        fixtures::put_secret(
            &client,
            ns,
            "consoleconnect",
            "apiKey",
            sandbox::DEFAULT_KEY,
        )
        .await;
        fixtures::put_secret(&client, ns, "oracle-vc", "ocid", OCID).await;
    }
    let sandbox = Sandbox::start(&sandbox::INSTANT_WITH_DELETE);
    let _operator = Operator::start(&sandbox.url, &format!("{first},{second}"));
    let create = |ns: &str, name: &str| {
        let api: Api<FastConnectConnection> = Api::namespaced(client.clone(), ns);
        let fcc: FastConnectConnection =
            serde_json::from_value(fixtures::small_connection(name)).unwrap();
        async move {
            api.create(&PostParams::default(), &fcc).await.unwrap();
            api
        }
    };
    let in_first = create(&first, "x").await;
    let in_second = create(&second, "a-x").await;
    let id_of = |api: Api<FastConnectConnection>, name: &'static str| async move {
        cluster::wait_for("the connection to be Active", WAIT, || async {
            let fcc = api.get(name).await.ok()?;
            let status = fcc.status?;
            (status.phase == Some(Phase::Active)).then_some(status.connection_id?)
        })
        .await
    };
    let first_id = id_of(in_first.clone(), "x").await;
    let second_id = id_of(in_second.clone(), "a-x").await;
    assert_ne!(first_id, second_id);
    let names: Vec<Value> = sandbox
        .connections()
        .await
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_ne!(names[0], names[1], "{names:?}");

    in_first
        .delete("x", &DeleteParams::default())
        .await
        .unwrap();
    cluster::wait_for("x to be gone", WAIT, || async {
        in_first.get_opt("x").await.unwrap().is_none().then_some(())
    })
    .await;
    let other = sandbox.connection(&second_id).await.unwrap();
    assert_eq!(
        other["status"], "ACTIVE",
        "the other namespace's circuit runs on"
    );
    assert_eq!(other["deleted"], false);
    let fcc = in_second.get("a-x").await.unwrap();
    assert_eq!(fcc.status.unwrap().phase, Some(Phase::Active));
}

/// Answers in the spec's own example shapes (`port`, `destMetro` and `destCompany` as arrays
/// of one-key objects, `firstDataCenterFacilityId`): an order whose answer is lost is still
/// recognised as ours and adopted.
#[tokio::test]
async fn spec_shaped_answers_are_read_and_a_lost_order_is_recognised() {
    let env = Env::start(
        &[
            &sandbox::INSTANT[..],
            &["--connection-shape", "spec", "--lost-create-rate", "1"],
        ]
        .concat(),
    )
    .await;
    env.create_small("shapes").await;
    let fcc = env.wait_phase("shapes", Phase::Active).await;
    assert_eq!(env.creates().await, 1);
    let status = fcc.status.unwrap();
    assert_eq!(status.dest_dcf.as_deref(), Some(sandbox::METRO_HKG.dcf));
    assert!(status.vlan.is_some(), "{:?}", status.vlan);
}

/// A search answer the operator cannot read (results without ids) after a lost create answer:
/// a clear reason on Synced, and no second order however long it lasts.
#[tokio::test]
async fn an_unreadable_search_gets_a_clear_reason_and_never_an_order() {
    let sandbox = Sandbox::start(&[&sandbox::INSTANT[..], &["--lost-create-rate", "1"]].concat());
    let (proxy, garbled) = garbling_proxy(&sandbox.url).await;
    let mut env = Env::without_operator(&sandbox::INSTANT).await;
    env.operator = Some(Operator::start(&proxy, &env.ns));
    env.create_small("garbled").await;
    let fccs = &env.fccs;
    let synced = cluster::wait_for("Synced=False UnexpectedResponse", WAIT, || async {
        let fcc = fccs.get("garbled").await.ok()?;
        fcc.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Synced" && c.reason == "UnexpectedResponse")
    })
    .await;
    assert!(
        synced.message.contains("searching connections"),
        "{}",
        synced.message
    );
    // Several more reconciles fail the same way, and none of them orders.
    let seen = garbled.load(Ordering::SeqCst);
    cluster::wait_for("three more unreadable searches", WAIT, || async {
        (garbled.load(Ordering::SeqCst) >= seen + 3).then_some(())
    })
    .await;
    assert_eq!(sandbox.stats().await.total("create_layer2"), 1);
    let fcc = env.fccs.get("garbled").await.unwrap();
    assert_eq!(fcc.status.unwrap().connection_id, None);
}

/// Forwards everything to `upstream` except the connection search, which it answers with
/// results that have no id; counts those answers.
async fn garbling_proxy(upstream: &str) -> (String, Arc<AtomicUsize>) {
    use axum::{body::Bytes, extract::Request, http::StatusCode, response::IntoResponse};
    let upstream = upstream.trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();
    let garbled = Arc::new(AtomicUsize::new(0));
    let count = garbled.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let (upstream, http, count) = (upstream.clone(), http.clone(), count.clone());
        async move {
            let path = request.uri().path().to_owned();
            if request.method() == "GET" && path.ends_with("/connections") {
                count.fetch_add(1, Ordering::SeqCst);
                return axum::Json(json!({"results": [{"name": "no id"}]})).into_response();
            }
            let method = request.method().clone();
            let query = request
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let headers = request.headers().clone();
            let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let mut forward = http.request(method, format!("{upstream}{path}{query}"));
            for name in ["authorization", "content-type"] {
                if let Some(value) = headers.get(name) {
                    forward = forward.header(name, value.clone());
                }
            }
            match forward.body(body).send().await {
                Ok(answer) => {
                    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
                    let body = answer.bytes().await.unwrap_or_default();
                    (status, [("content-type", "application/json")], body).into_response()
                }
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, garbled)
}

/// A company with 1,000 connections, five of them ours: in steady state the operator's calls
/// follow the number of search pages of the statuses its connections are in, not the number of
/// connections or resources. Measured over a window of polls (a rate, not a synchronisation).
#[tokio::test]
async fn steady_state_calls_follow_pages_not_connections() {
    let env = Env::start_with(
        &[&sandbox::INSTANT[..], &["--search-max-count", "50"]].concat(),
        &[("FCO_POLL_ACTIVE", "2s")],
    )
    .await;
    env.sandbox
        .seed(sandbox::DEFAULT_COMPANY, 995, "ACTIVE", "others-")
        .await;
    let names: Vec<String> = (0..5).map(|i| format!("steady-{i}")).collect();
    for name in &names {
        env.create_small(name).await;
    }
    for name in &names {
        env.wait_phase(name, Phase::Active).await;
    }
    // Let the first ACTIVE polls pass, then measure five poll intervals.
    env.operator()
        .wait_metric("fastconnect_consoleconnect_requests_total{endpoint=\"search_connections\"")
        .await;
    env.sandbox.reset_stats().await;
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let stats = env.sandbox.stats().await;
    let searches = stats.total("search_connections");
    let reads = stats.total("get_connection");
    // 1,000 ACTIVE connections in pages of 50: 20 pages, plus the empty page that ends a
    // search while the service has not filled a page of the 100 asked for.
    let pages_per_poll = 21;
    let polls = window.as_secs() / 2;
    println!(
        "steady state, 1000 connections, 5 ours: {searches} searches and {reads} reads in {}s \
         ({} per poll interval)",
        window.as_secs(),
        searches as f64 / polls as f64
    );
    assert_eq!(
        reads, 0,
        "no per-connection reads in steady state: {:?}",
        stats.0
    );
    assert!(
        searches <= pages_per_poll * (polls + 2),
        "{searches} searches in {polls} polls: more than one paged search per poll"
    );
    assert!(searches >= pages_per_poll, "the poll did run: {searches}");
    assert_eq!(stats.total("create_layer2"), 0);
}

/// A key that may read but not order (401 "Access denied"): its own reason, distinct from a
/// refused key, and nothing ordered.
#[tokio::test]
async fn a_key_without_permission_to_order_says_so_and_orders_nothing() {
    let env = Env::start(&sandbox::INSTANT).await;
    env.put_secret("consoleconnect", "apiKey", sandbox::READONLY_KEY)
        .await;
    env.create_small("read-only").await;
    let (fcc, ready) = env.wait_reason("read-only", "AccessDenied").await;
    assert_eq!(fcc.status.as_ref().unwrap().phase, Some(Phase::Pending));
    assert!(
        ready.message.contains("network:CreateConnection"),
        "{}",
        ready.message
    );
    assert_eq!(fcc.status.unwrap().ordered_at, None, "nothing was ordered");
    assert!(env.sandbox.connections().await.is_empty());
}

/// A second live connection carrying the same order (here created behind the operator's back,
/// as a lagging duplicate would be): the verification after the settle window reports it on
/// Synced, as a Warning Event and a metric, and deletes neither.
#[tokio::test]
async fn a_duplicate_of_an_order_is_reported_loudly_and_left_alone() {
    let env = Env::start_with(&sandbox::INSTANT, &[("FCO_ORDER_SETTLE", "4s")]).await;
    env.create_small("twin").await;
    let fcc = env.wait_phase("twin", Phase::Active).await;
    let ours = connection_id(&fcc);
    let mut request = sandbox::valid_request(&format!("{}.twin", env.ns));
    request.port_id = sandbox::PORT_10G.id.into();
    request.speed = 5;
    let twin = env
        .sandbox
        .client()
        .create_layer2(&sandbox::default_key(), sandbox::DEFAULT_COMPANY, &request)
        .await
        .unwrap();
    let fccs = &env.fccs;
    let synced = cluster::wait_for("Synced=False DuplicateConnections", WAIT, || async {
        let fcc = fccs.get("twin").await.ok()?;
        fcc.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Synced" && c.reason == "DuplicateConnections")
    })
    .await;
    assert!(synced.message.contains(&twin.id), "{}", synced.message);
    let fcc = env.fccs.get("twin").await.unwrap();
    assert_eq!(
        connection_id(&fcc),
        ours,
        "the recorded connection stays ours"
    );
    assert_eq!(fcc.status.unwrap().phase, Some(Phase::Active));
    assert!(events_with_reason(&env, "DuplicateConnections").await > 0);
    env.operator()
        .wait_metric("fastconnect_duplicate_connections_found_total 1")
        .await;
    assert_eq!(
        env.live_remote("twin").await.len(),
        2,
        "neither was deleted"
    );
}
