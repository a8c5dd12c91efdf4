//! What the operator tells Prometheus, end to end: the opt-in traffic gauges read from
//! Console Connect's utilization call, and the time resources spend in each phase. The real
//! control plane, the sandbox over HTTP and the operator binary.

use fastconnect_test_support as support;

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::{
    cluster,
    env::*,
    sandbox::{self, INSTANT},
};

fn traffic_line(env: &Env, name: &str, id: &str, direction: &str, mbps: &str) -> String {
    format!(
        "fastconnect_connection_traffic_mbps{{namespace=\"{}\",name=\"{name}\",\
         connection_id=\"{id}\",direction=\"{direction}\"}} {mbps}",
        env.ns
    )
}

async fn create_active(env: &Env, name: &str) -> String {
    env.create_small(name).await;
    connection_id(&env.wait_phase(name, Phase::Active).await)
}

/// Waits until the sandbox has answered `more` further utilization reads for `id`.
async fn wait_reads(env: &Env, id: &str, at_least: u64) -> u64 {
    let sandbox = &env.sandbox;
    cluster::wait_for(
        &format!("{at_least} traffic reads of {id}"),
        WAIT,
        || async move {
            let reads = sandbox.stats().await.traffic_reads(id);
            (reads >= at_least).then_some(reads)
        },
    )
    .await
}

#[tokio::test]
async fn traffic_gauges_follow_console_connect_one_read_per_connection_per_interval() {
    let env = Env::start_with(&INSTANT, &[("FCO_UTILIZATION_INTERVAL", "1s")]).await;
    let a = create_active(&env, "traffic-a").await;
    let b = create_active(&env, "traffic-b").await;
    let paused = create_active(&env, "traffic-paused").await;
    env.sandbox.set_traffic(&a, 12.5, 3.0).await;
    env.sandbox.set_traffic(&b, 100.0, 40.0).await;

    let text = env
        .operator()
        .wait_metric(&traffic_line(&env, "traffic-a", &a, "in", "12.5"))
        .await;
    assert!(
        text.contains(&traffic_line(&env, "traffic-a", &a, "out", "3.0")),
        "{text}"
    );
    env.operator()
        .wait_metric(&traffic_line(&env, "traffic-b", &b, "out", "40.0"))
        .await;
    let requests = "fastconnect_consoleconnect_requests_total{endpoint=\"connection_utilization\",code=\"200\"}";
    assert!(text.contains(requests), "{text}");

    // A paused resource makes no call at all, traffic reads included.
    env.fccs
        .patch(
            "traffic-paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"fastconnect.dev/paused": "true"}}})),
        )
        .await
        .expect("paused");
    let fccs = &env.fccs;
    cluster::wait_for("the pause to be reported", WAIT, || async move {
        let fcc = fccs.get("traffic-paused").await.ok()?;
        let synced = fcc
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Synced")?;
        (synced.reason == "ReconcilePaused").then_some(())
    })
    .await;
    // Once a read of `a` has begun after the pause was seen, no read of the paused one is
    // still under way.
    let after_pause = env.sandbox.stats().await.traffic_reads(&a);
    wait_reads(&env, &a, after_pause + 2).await;
    let paused_reads = env.sandbox.stats().await.traffic_reads(&paused);
    let now_a = env.sandbox.stats().await.traffic_reads(&a);
    wait_reads(&env, &a, now_a + 3).await;
    let stats = env.sandbox.stats().await;
    assert_eq!(
        stats.traffic_reads(&paused),
        paused_reads,
        "a paused resource was read"
    );
    assert!(
        !env.operator()
            .metrics()
            .await
            .contains("name=\"traffic-paused\""),
        "a paused resource keeps no traffic gauge"
    );

    // One read per connection per interval: the two keep pace with each other.
    let (reads_a, reads_b) = (stats.traffic_reads(&a), stats.traffic_reads(&b));
    assert!(
        reads_a.abs_diff(reads_b) <= 1,
        "a read {reads_a} times, b {reads_b}"
    );

    // Traffic moves, and the gauges with it; a deleted resource takes its gauges away.
    env.sandbox.set_traffic(&a, 0.5, 250.0).await;
    env.operator()
        .wait_metric(&traffic_line(&env, "traffic-a", &a, "out", "250.0"))
        .await;
    env.fccs
        .delete("traffic-a", &DeleteParams::default())
        .await
        .expect("deleted");
    env.wait_gone("traffic-a").await;
    let operator = env.operator();
    cluster::wait_for("traffic-a's gauges to go", WAIT, || async move {
        let text = operator.metrics().await;
        (!text.contains("name=\"traffic-a\"")).then_some(())
    })
    .await;
    assert!(
        env.operator().metrics().await.contains(&traffic_line(
            &env,
            "traffic-b",
            &b,
            "in",
            "100.0"
        )),
        "the other connection keeps its gauges"
    );
}

#[tokio::test]
async fn traffic_is_not_read_unless_asked_for() {
    let env = Env::start(&INSTANT).await;
    let id = create_active(&env, "no-traffic").await;
    // The operator has polled the connection since it became Active: it had every chance.
    let reads = |s: &sandbox::Stats| s.total("search_connections") + s.total("get_connection");
    let before = reads(&env.sandbox.stats().await);
    let sandbox = &env.sandbox;
    cluster::wait_for("two more polls", WAIT, || async move {
        (reads(&sandbox.stats().await) >= before + 2).then_some(())
    })
    .await;
    let stats = env.sandbox.stats().await;
    assert_eq!(stats.total("connection_utilization"), 0);
    assert_eq!(stats.traffic_reads(&id), 0);
    assert!(
        !env.operator()
            .metrics()
            .await
            .contains("connection_traffic_mbps{")
    );
}

fn phase_since(fcc: &FastConnectConnection) -> jiff::Timestamp {
    fcc.status
        .as_ref()
        .and_then(|s| s.phase_since.as_deref())
        .expect("status.phaseSince")
        .parse()
        .expect("RFC 3339")
}

#[tokio::test]
async fn time_in_phase_shows_a_waiting_approval_and_is_observed_when_it_ends() {
    let env = Env::start(&INSTANT).await;
    env.sandbox.set_manual_approval(true).await;
    env.create_small("slow-approval").await;
    let waiting = env
        .wait_phase("slow-approval", Phase::AwaitingApproval)
        .await;
    let entered = phase_since(&waiting);

    // The longest wait in approval grows while nobody approves.
    let operator = env.operator();
    let longest = "fastconnect_time_in_phase_max_seconds{phase=\"AwaitingApproval\"}";
    cluster::wait_for("a wait in approval of 1 s or more", WAIT, || async move {
        let value = metric_value(&operator.metrics().await, longest);
        (value >= 1.0).then_some(())
    })
    .await;
    let text = env.operator().metrics().await;
    assert!(
        !text.contains("fastconnect_time_in_phase_seconds_count{phase=\"AwaitingApproval\"}"),
        "observed before the phase ended:\n{text}"
    );

    env.sandbox.activate(&connection_id(&waiting)).await;
    let active = env.wait_phase("slow-approval", Phase::Active).await;
    assert!(
        phase_since(&active) > entered,
        "phaseSince moves with the phase"
    );
    let text = env
        .operator()
        .wait_metric("fastconnect_time_in_phase_seconds_count{phase=\"AwaitingApproval\"} 1")
        .await;
    let stayed = metric_value(
        &text,
        "fastconnect_time_in_phase_seconds_sum{phase=\"AwaitingApproval\"}",
    );
    let upper = active_since(&active, entered);
    assert!(
        stayed >= 1.0 && stayed <= upper,
        "observed {stayed} s in approval; it lasted at most {upper} s"
    );
}

/// Seconds from entering approval to the Active status, as the resource records them.
fn active_since(active: &FastConnectConnection, entered: jiff::Timestamp) -> f64 {
    phase_since(active).duration_since(entered).as_secs_f64() + 1.0
}
