//! Fault suite: a flaky, throttling, slow, lagging, paging Console Connect and an operator killed
//! at random, and still every resource ends up with exactly one connection, every deletion
//! completes, and no secret shows up anywhere.
//!
//! `FCO_FAULT_RESOURCES` sets the size (50 in CI; larger on demand).

use fastconnect_test_support as support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::{
    Api, CustomResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use rand::Rng;
use serde_json::Value;
use support::{
    cluster, fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};

const API_KEY: &str = sandbox::DEFAULT_KEY;
const OCID: &str = "ocid1.virtualcircuit.oc1.ap-hongkong-1.aaaaaaaafaultsuitesecretcircuit";
const CONVERGE: Duration = Duration::from_secs(240);

fn resources() -> usize {
    std::env::var("FCO_FAULT_RESOURCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

/// Kills the operator at random every few seconds and starts a new one, keeping every
/// incarnation's logs.
struct Chaos {
    operator: Arc<Mutex<Option<Operator>>>,
    logs: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<u32>>,
    sandbox_url: String,
    ns: String,
}

impl Chaos {
    fn start(sandbox_url: &str, ns: &str) -> Chaos {
        let mut chaos = Chaos {
            operator: Arc::new(Mutex::new(Some(Operator::start(sandbox_url, ns)))),
            logs: Arc::default(),
            stop: Arc::default(),
            task: None,
            sandbox_url: sandbox_url.to_owned(),
            ns: ns.to_owned(),
        };
        chaos.task = Some(chaos.spawn_killer());
        chaos
    }

    fn spawn_killer(&self) -> tokio::task::JoinHandle<u32> {
        let (operator, logs, stop) = (self.operator.clone(), self.logs.clone(), self.stop.clone());
        let (url, ns) = (self.sandbox_url.clone(), self.ns.clone());
        tokio::spawn(async move {
            let mut kills = 0;
            while !stop.load(Ordering::SeqCst) {
                // Chaos timing, not synchronisation: the kill lands wherever the operator is.
                let pause = rand::rng().random_range(1500..4000);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mut slot = operator.lock().unwrap();
                if let Some(mut old) = slot.take() {
                    old.kill();
                    logs.lock().unwrap().push_str(&old.logs());
                }
                *slot = Some(Operator::start(&url, &ns));
                kills += 1;
            }
            kills
        })
    }

    /// Stops killing; the current operator keeps running.
    async fn calm(&mut self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        match self.task.take() {
            Some(task) => task.await.unwrap(),
            None => 0,
        }
    }

    fn resume(&mut self) {
        self.stop.store(false, Ordering::SeqCst);
        self.task = Some(self.spawn_killer());
    }

    fn all_logs(&self) -> String {
        let mut logs = self.logs.lock().unwrap().clone();
        if let Some(current) = self.operator.lock().unwrap().as_ref() {
            logs.push_str(&current.logs());
        }
        logs
    }

    async fn metrics(&self) -> String {
        let addr = self
            .operator
            .lock()
            .unwrap()
            .as_ref()
            .map(|o| o.metrics_addr)
            .unwrap();
        let url = format!("http://{addr}/metrics");
        cluster::wait_for_ok("metrics", Duration::from_secs(20), || async {
            reqwest::get(&url)
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }
}

fn resource(name: &str) -> FastConnectConnection {
    serde_json::from_value(fixtures::small_connection(name)).expect("valid resource")
}

async fn phases(fccs: &Api<FastConnectConnection>) -> Vec<(String, Option<Phase>, Option<String>)> {
    fccs.list(&ListParams::default())
        .await
        .map(|list| {
            list.items
                .into_iter()
                .map(|f| {
                    let status = f.status.unwrap_or_default();
                    (
                        f.metadata.name.unwrap_or_default(),
                        status.phase,
                        status.connection_id,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Our live connections at the sandbox, by resource name.
async fn live_connections(sandbox: &Sandbox, ns: &str) -> Vec<Value> {
    let prefix = format!("{ns}.");
    sandbox
        .connections()
        .await
        .into_iter()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .filter(|c| c["status"] != "DELETED")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_under_faults_and_kills_and_cleans_up_completely() {
    let n = resources();
    let client = cluster::client().await;
    cluster::apply_crd(&client, &FastConnectConnection::crd()).await;
    let ns = cluster::test_namespace(&client, "faults").await;
    fixtures::put_secret(&client, &ns, "consoleconnect", "apiKey", API_KEY).await;
    fixtures::put_secret(&client, &ns, "oracle-vc", "ocid", OCID).await;
    let sandbox = Sandbox::start(&[
        "--creating-delay",
        "500ms",
        "--approval-delay",
        "1s",
        "--error-rate",
        "0.2",
        "--throttle-rate",
        "0.1",
        "--retry-after",
        "1",
        "--latency",
        "50ms",
        "--lost-create-rate",
        "0.1",
        // What the published spec allows on top: new orders listed a second late, pages of
        // ten (the resources span several pages), and a second order of a name refused.
        "--list-lag",
        "1s",
        "--search-max-count",
        "10",
        "--refuse-duplicate-names",
    ]);
    let fccs: Api<FastConnectConnection> = Api::namespaced(client.clone(), &ns);
    let names: Vec<String> = (0..n).map(|i| format!("fc-{i:04}")).collect();
    stream::iter(&names)
        .for_each_concurrent(16, |name| {
            let fccs = fccs.clone();
            async move {
                fccs.create(&PostParams::default(), &resource(name))
                    .await
                    .expect("create");
            }
        })
        .await;

    let mut chaos = Chaos::start(&sandbox.url, &ns);

    // 1. Every resource reaches Active, with exactly one connection each.
    cluster::wait_for_ok("every resource Active", CONVERGE, || async {
        let phases = phases(&fccs).await;
        let waiting: Vec<_> = phases
            .iter()
            .filter(|p| p.1 != Some(Phase::Active))
            .collect();
        if phases.len() == n && waiting.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of {n} not Active, e.g. {:?}",
                waiting.len(),
                waiting.first()
            ))
        }
    })
    .await;
    let kills = chaos.calm().await;
    assert!(
        kills >= 2,
        "the operator was killed during the run ({kills} kills)"
    );
    let live = live_connections(&sandbox, &ns).await;
    assert_eq!(live.len(), n, "exactly one connection per resource");
    let mut seen: Vec<&str> = live.iter().filter_map(|c| c["name"].as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), n, "no name ordered twice");
    for (name, _, id) in phases(&fccs).await {
        let id = id.unwrap_or_else(|| panic!("{name} has no connection id"));
        assert!(
            live.iter().any(|c| c["id"] == id.as_str()),
            "{name} tracks {id}"
        );
    }

    let statuses =
        serde_json::to_string(&fccs.list(&ListParams::default()).await.unwrap().items).unwrap();
    assert!(
        !statuses.contains(API_KEY) && !statuses.contains(OCID),
        "a secret in a resource"
    );

    // 2. Half the connections vanish out of band: each resource says so, and deleting it
    // completes at once.
    let half: Vec<(String, String)> = phases(&fccs)
        .await
        .into_iter()
        .step_by(2)
        .map(|(name, _, id)| (name, id.unwrap_or_default()))
        .collect();
    for (_, id) in &half {
        sandbox.delete_out_of_band(id).await;
    }
    for (name, _) in &half {
        let fccs = &fccs;
        cluster::wait_for_ok(
            &format!("{name} to report DeletedOutOfBand"),
            CONVERGE,
            || async move {
                let fcc = fccs.get(name).await.map_err(|e| e.to_string())?;
                let reason = fcc
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.reason.clone());
                if reason.as_deref() == Some("DeletedOutOfBand") {
                    Ok(())
                } else {
                    Err(format!("{reason:?}"))
                }
            },
        )
        .await;
    }
    let deletes_before = sandbox.stats().await.total("delete_connection");
    for (name, _) in &half {
        fccs.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    cluster::wait_for_ok(
        "out-of-band resources to be released",
        Duration::from_secs(60),
        || async {
            let left = phases(&fccs).await.len();
            if left == n - half.len() {
                Ok(())
            } else {
                Err(left)
            }
        },
    )
    .await;
    assert_eq!(
        sandbox.stats().await.total("delete_connection"),
        deletes_before,
        "nothing was left to disconnect"
    );

    // 3. Deleting the rest, still under faults and kills, disconnects everything and hangs nothing.
    chaos.resume();
    fccs.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete all");
    cluster::wait_for_ok("every resource gone", CONVERGE, || async {
        let left = phases(&fccs).await.len();
        if left == 0 { Ok(()) } else { Err(left) }
    })
    .await;
    chaos.calm().await;
    let live = live_connections(&sandbox, &ns).await;
    assert!(live.is_empty(), "connections left behind: {live:?}");

    // 4. No secret anywhere: logs of every incarnation, events, statuses and metrics.
    let metrics = chaos.metrics().await;
    let logs = chaos.all_logs();
    let events = Api::<CoreEvent>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("events");
    let events = serde_json::to_string(&events.items).unwrap();
    assert!(events.contains("DeletedOutOfBand"), "events were recorded");
    for (what, text) in [("logs", &logs), ("events", &events), ("metrics", &metrics)] {
        assert!(!text.contains(API_KEY), "API key in {what}");
        assert!(!text.contains(OCID), "OCID in {what}");
    }
}
