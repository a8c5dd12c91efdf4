//! An outage of the operator's own API server (kube-apiserver restarted with
//! `hack/testenv.sh restart apiserver`). The only test in its binary: the restart would fail any
//! test running beside it.

use fastconnect_test_support as support;

use std::time::{Duration, Instant};

use fastconnect_operator::crd::Phase;
use futures::future::join_all;
use support::{
    cluster,
    env::{Env, connection_id, metric_value},
};

const RESOURCES: usize = 6;

/// Far longer than the outage and the test's wait: a resource that is Active soon after the API
/// server is back was not waiting out its backoff.
const BACKOFF_MIN: &str = "120s";

#[tokio::test]
async fn resources_whose_writes_failed_in_an_api_server_outage_go_on_once_it_answers() {
    let env = Env::start_with(
        &["--creating-delay", "0", "--manual-approval"],
        &[
            ("FCO_BACKOFF_MIN", BACKOFF_MIN),
            ("FCO_BACKOFF_MAX", "600s"),
        ],
    )
    .await;
    let names: Vec<String> = (0..RESOURCES).map(|i| format!("outage-{i}")).collect();
    for name in &names {
        env.create_small(name).await;
    }
    let ids: Vec<String> = join_all(
        names
            .iter()
            .map(|name| env.wait_phase(name, Phase::AwaitingApproval)),
    )
    .await
    .iter()
    .map(connection_id)
    .collect();

    let restart = std::thread::spawn(|| {
        let status = std::process::Command::new(support::repo_root().join("hack/testenv.sh"))
            .args(["restart", "apiserver"])
            .status()
            .expect("run hack/testenv.sh restart apiserver");
        assert!(
            status.success(),
            "hack/testenv.sh restart apiserver: {status}"
        );
        Instant::now()
    });
    let probe = cluster::client().await;
    cluster::wait_for_ok(
        "the API server to stop",
        Duration::from_secs(60),
        || async {
            match probe.apiserver_version().await {
                Ok(_) => Err("still answering"),
                Err(_) => Ok(()),
            }
        },
    )
    .await;

    // Approved while the API server is down: each resource's next poll sees ACTIVE and its
    // status write fails, which would back off for at least half of BACKOFF_MIN.
    for id in &ids {
        env.sandbox.activate(id).await;
    }
    let failures = r#"fastconnect_reconcile_failures_total{reason="KubernetesApiError"}"#;
    cluster::wait_for_ok(
        "status writes to fail while the API server is down",
        Duration::from_secs(60),
        || async {
            let metrics = env.operator().metrics().await;
            // Absent until the first failure.
            let failed = if metrics.contains(failures) {
                metric_value(&metrics, failures)
            } else {
                0.0
            };
            if failed >= RESOURCES as f64 {
                Ok(())
            } else {
                Err(failed)
            }
        },
    )
    .await;

    let back = tokio::task::spawn_blocking(move || restart.join().expect("restart thread"))
        .await
        .expect("join");
    for name in &names {
        env.wait_phase(name, Phase::Active).await;
    }
    let after = back.elapsed();
    // The first backoff is BACKOFF_MIN jittered into its upper half: 60 s at the least.
    assert!(
        after < Duration::from_secs(50),
        "Active {after:?} after the API server was back: the resources waited out their backoff"
    );
    for id in &ids {
        assert_eq!(env.sandbox.status_of(id).await.as_deref(), Some("ACTIVE"));
    }
    assert_eq!(
        env.creates().await,
        RESOURCES as u64,
        "one order per resource"
    );
}
