//! Leader election against the real control plane: two electors in one process on one Lease,
//! then two operator processes where only the leader may order anything, both are ready, and
//! `fastconnect_leader` says which one leads.

mod support;

use std::time::{Duration, Instant};

use fastconnect_operator::{
    crd::{FastConnectConnection, Phase},
    leader::{LeaseConfig, LeaseLock, Standing},
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client, CustomResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use support::{
    cluster, fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};

const WAIT: Duration = Duration::from_secs(60);
const OCID: &str = "ocid1.virtualcircuit.oc1.ap-hongkong-1.aaaaaaaatestcircuitleader0001";

/// Short enough for a quick test, long enough that a loaded 2-core machine still renews in
/// time (the holder gives up after two thirds of it).
const LEASE: Duration = Duration::from_secs(3);
/// The lease of the operator processes, and the Lease they share.
const PROCESS_LEASE: &str = "5s";
const PROCESS_LEASE_DURATION: Duration = Duration::from_secs(5);
const LEASE_NAME: &str = "fastconnect-operator";

// ---- Two electors in one process ----

fn lock(client: &Client, ns: &str, identity: &str) -> LeaseLock {
    let config = LeaseConfig::new(ns, "lock", identity).with_lease_duration(LEASE);
    LeaseLock::new(client.clone(), config).expect("valid lease settings")
}

async fn lease(client: &Client, ns: &str, name: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("read the lease")
}

fn holder(lease: &Option<Lease>) -> Option<String> {
    lease.as_ref()?.spec.as_ref()?.holder_identity.clone()
}

fn transitions(lease: &Option<Lease>) -> Option<i32> {
    lease.as_ref()?.spec.as_ref()?.lease_transitions
}

fn renew_time(lease: &Option<Lease>) -> Option<Timestamp> {
    Some(lease.as_ref()?.spec.as_ref()?.renew_time.as_ref()?.0)
}

fn standing(lock: &LeaseLock) -> Standing {
    lock.standing().borrow().clone()
}

fn following(holder: &str) -> Standing {
    Standing::Following {
        holder: holder.to_owned(),
    }
}

#[tokio::test]
async fn one_holder_at_a_time_release_hands_over_at_once_a_crash_after_expiry() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "leader").await;
    let a = lock(&client, &ns, "a");
    let b = lock(&client, &ns, "b");
    assert_eq!(standing(&a), Standing::Unknown, "nothing read yet");

    let first = tokio::time::timeout(WAIT, a.acquire())
        .await
        .expect("a acquires a missing lease")
        .expect("no error");
    let created = lease(&client, &ns, "lock").await;
    assert_eq!(holder(&created).as_deref(), Some("a"));
    assert_eq!(transitions(&created), Some(0));

    // While a renews, b waits: three lease durations pass without b getting it.
    let waited = tokio::time::timeout(LEASE * 3, b.acquire()).await;
    assert!(waited.is_err(), "b acquired a lease that a renews");
    assert!(first.is_leading());
    assert_eq!(standing(&a), Standing::Leading);
    assert_eq!(standing(&b), following("a"));
    let renewed = lease(&client, &ns, "lock").await;
    assert_eq!(holder(&renewed).as_deref(), Some("a"));
    assert!(
        renew_time(&renewed) > renew_time(&created),
        "a renewed meanwhile"
    );

    // A release hands over at b's next poll, well before the lease would expire.
    let released_at = Instant::now();
    first.release().await.expect("released");
    assert_eq!(holder(&lease(&client, &ns, "lock").await), None);
    assert_eq!(standing(&a), Standing::Stopped);
    let second = tokio::time::timeout(WAIT, b.acquire())
        .await
        .expect("b acquires")
        .expect("no error");
    let took = released_at.elapsed();
    eprintln!("takeover after release(): {took:?}");
    assert!(took < LEASE / 2, "b took {took:?} to take a released lease");
    let taken = lease(&client, &ns, "lock").await;
    assert_eq!(holder(&taken).as_deref(), Some("b"));
    assert_eq!(transitions(&taken), Some(1));
    assert_eq!(standing(&b), Standing::Leading);

    // A crash (the renewer stops, nothing is released): a waits for the lease to expire.
    let crashed_at = Timestamp::now();
    drop(second);
    assert_eq!(
        standing(&b),
        Standing::Stopped,
        "nobody renews: b no longer leads"
    );
    let third = tokio::time::timeout(WAIT, a.acquire())
        .await
        .expect("a acquires after expiry")
        .expect("no error");
    let retaken = lease(&client, &ns, "lock").await;
    assert_eq!(holder(&retaken).as_deref(), Some("a"));
    assert_eq!(transitions(&retaken), Some(2));
    // b last renewed at most a third of the lease before the crash, so the lease ran at least
    // two thirds of it past the crash (less a little for clock granularity).
    let acquired = retaken
        .and_then(|l| l.spec?.acquire_time)
        .expect("acquireTime")
        .0;
    let earliest = crashed_at + SignedDuration::try_from(LEASE * 2 / 3).unwrap()
        - SignedDuration::from_millis(100);
    assert!(
        acquired >= earliest,
        "a took over at {acquired}, before the lease expired"
    );
    third.release().await.expect("released");
}

#[tokio::test]
async fn leadership_is_lost_when_another_replica_holds_the_lease() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "leader-lost").await;
    let a = lock(&client, &ns, "a");
    let leadership = a.acquire().await.expect("acquired");
    let lost = leadership.lost();
    assert_eq!(standing(&a), Standing::Leading);

    // Someone else writes the Lease (as a replica that judged it expired would).
    let api = Api::<Lease>::namespaced(client.clone(), &ns);
    let patch = json!({"spec": {"holderIdentity": "intruder"}});
    api.patch("lock", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");

    let reason = tokio::time::timeout(LEASE, lost)
        .await
        .expect("the loss is noticed within the lease duration");
    assert!(reason.contains("intruder"), "{reason}");
    assert!(!leadership.is_leading());
    assert_eq!(standing(&a), Standing::Stopped);
    // Releasing a lost lease leaves the new holder alone.
    leadership.release().await.expect("release is a no-op");
    assert_eq!(
        holder(&lease(&client, &ns, "lock").await).as_deref(),
        Some("intruder")
    );
}

// ---- Two operator processes ----

/// A namespace with the demo Secrets and a sandbox; operators are started by the test.
struct Env {
    client: Client,
    ns: String,
    sandbox: Sandbox,
    fccs: Api<FastConnectConnection>,
}

impl Env {
    async fn start() -> Env {
        let client = cluster::client().await;
        cluster::apply_crd(&client, &FastConnectConnection::crd()).await;
        let ns = cluster::test_namespace(&client, "leader-op").await;
        let env = Env {
            fccs: Api::namespaced(client.clone(), &ns),
            client,
            ns,
            sandbox: Sandbox::start(&sandbox::INSTANT),
        };
        env.put_secret("consoleconnect", "apiKey", sandbox::DEFAULT_KEY)
            .await;
        env.put_secret("oracle-vc", "ocid", OCID).await;
        env
    }

    async fn put_secret(&self, name: &str, key: &str, value: &str) {
        fixtures::put_secret(&self.client, &self.ns, name, key, value).await;
    }

    /// An operator replica named `pod` with leader election on.
    fn replica(&self, pod: &str) -> Operator {
        Operator::start_with(
            &self.sandbox.url,
            &self.ns,
            &[
                ("FCO_LEADER_ELECTION", "true"),
                ("POD_NAMESPACE", &self.ns),
                ("POD_NAME", pod),
                ("FCO_LEASE_DURATION", PROCESS_LEASE),
            ],
        )
    }

    async fn holder(&self) -> Option<String> {
        holder(&lease(&self.client, &self.ns, LEASE_NAME).await)
    }

    async fn wait_holder(&self, pod: &str, timeout: Duration) {
        cluster::wait_for_ok(&format!("{pod} to hold the lease"), timeout, || async {
            match self.holder().await {
                Some(holder) if holder == pod => Ok(()),
                other => Err(other),
            }
        })
        .await
    }

    /// Creates the demo sample under `name`.
    async fn create(&self, name: &str) {
        let object = fixtures::small_connection(name);
        let fcc: FastConnectConnection = serde_json::from_value(object).expect("valid object");
        self.fccs
            .create(&PostParams::default(), &fcc)
            .await
            .expect("resource created");
    }

    async fn wait_active(&self, name: &str) {
        let fccs = &self.fccs;
        cluster::wait_for_ok(&format!("{name} to be Active"), WAIT, || async move {
            let fcc = fccs.get(name).await.map_err(|e| e.to_string())?;
            let status = fcc.status.unwrap_or_default();
            if status.phase == Some(Phase::Active) {
                Ok(())
            } else {
                Err(format!("{:?}: {:?}", status.phase, status.message))
            }
        })
        .await
    }

    /// Create calls the sandbox received for the resource `name`.
    async fn creates_of(&self, name: &str) -> usize {
        let remote_name = format!("{}.{name}", self.ns);
        let creates = self.sandbox.stats().await.creates();
        creates.iter().filter(|c| c["name"] == remote_name).count()
    }
}

/// The HTTP status of `path` on the operator's metrics/health server.
async fn http_status(operator: &Operator, path: &str) -> Result<u16, String> {
    let url = format!("http://{}{path}", operator.metrics_addr);
    let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

async fn wait_status(operator: &Operator, path: &str, want: u16) {
    cluster::wait_for_ok(&format!("{path} to answer {want}"), WAIT, || async {
        match http_status(operator, path).await {
            Ok(code) if code == want => Ok(()),
            other => Err(other),
        }
    })
    .await
}

/// The first log line with `message`, so that its fields can be checked ("" when none).
fn log_line<'a>(logs: &'a str, message: &str) -> &'a str {
    logs.lines()
        .find(|l| l.contains(message))
        .unwrap_or_default()
}

/// The `fastconnect_leader` gauge's line, as exposed.
const LEADING: &str = "\nfastconnect_leader 1\n";
const NOT_LEADING: &str = "\nfastconnect_leader 0\n";

/// Starts a, waits until it leads and is ready, then starts b and waits until b follows and is
/// ready too (so that a rollout can go on while a still holds the Lease).
async fn leader_and_follower(env: &Env) -> (Operator, Operator) {
    let a = env.replica("a");
    env.wait_holder("a", WAIT).await;
    wait_status(&a, "/readyz", 200).await;
    a.wait_metric(LEADING).await;
    let b = env.replica("b");
    cluster::wait_for("b to follow", WAIT, || async {
        b.logs().contains("held by another replica").then_some(())
    })
    .await;
    wait_status(&b, "/readyz", 200).await;
    (a, b)
}

#[tokio::test]
async fn only_the_leader_acts_and_a_killed_leader_is_replaced_without_ordering_twice() {
    let env = Env::start().await;
    let (mut a, b) = leader_and_follower(&env).await;

    // The follower is alive and ready, says it does not lead, and acts on nothing.
    wait_status(&b, "/healthz", 200).await;
    assert_eq!(http_status(&b, "/readyz").await, Ok(200));
    let follower_metrics = b.metrics().await;
    assert!(follower_metrics.contains(NOT_LEADING), "{follower_metrics}");
    assert!(a.metrics().await.contains(LEADING));
    env.create("first").await;
    env.wait_active("first").await;
    assert!(a.logs().contains("ordering connection"));
    let follower = b.logs();
    assert!(follower.contains("waiting for leadership"), "{follower}");
    let line = log_line(&follower, "held by another replica; following");
    assert!(
        line.contains(&format!("lease={}/{LEASE_NAME}", env.ns))
            && line.contains("holder=a ")
            && line.contains("identity=b"),
        "the follower names the Lease and its holder: {follower}"
    );
    assert!(!follower.contains("starting controller"), "{follower}");
    assert!(!follower.contains("ordering connection"), "{follower}");
    assert_eq!(
        http_status(&b, "/readyz").await,
        Ok(200),
        "still ready while following"
    );

    // A crash: b takes over once the lease expires, and orders what was created meanwhile once.
    let killed = Instant::now();
    a.kill();
    env.create("across").await;
    env.wait_holder("b", Duration::from_secs(30)).await;
    let took = killed.elapsed();
    eprintln!("takeover after SIGKILL: {took:?}");
    assert!(
        took < Duration::from_secs(15),
        "b took {took:?} to take over"
    );
    env.wait_active("across").await;
    wait_status(&b, "/readyz", 200).await;
    b.wait_metric(LEADING).await;
    let logs = b.logs();
    let line = log_line(&logs, "acquired the lease; leading");
    assert!(
        line.contains(&format!("lease={}/{LEASE_NAME}", env.ns)) && line.contains("holder=b"),
        "{logs}"
    );
    assert_eq!(env.creates_of("first").await, 1);
    assert_eq!(env.creates_of("across").await, 1);
    let lease = lease(&env.client, &env.ns, LEASE_NAME).await;
    assert_eq!(transitions(&lease), Some(1));
}

#[tokio::test]
async fn a_terminated_leader_releases_the_lease_and_the_follower_takes_over_at_once() {
    let env = Env::start().await;
    let (mut a, b) = leader_and_follower(&env).await;

    let terminated = Instant::now();
    a.terminate();
    env.wait_holder("b", Duration::from_secs(30)).await;
    let took = terminated.elapsed();
    eprintln!("takeover after SIGTERM: {took:?}");
    assert!(
        took < PROCESS_LEASE_DURATION,
        "b took {took:?}: the lease was not released"
    );
    b.wait_metric(LEADING).await;
    let exit = a.wait_exit(WAIT).await;
    assert!(exit.success(), "a clean shutdown exits 0: {exit}");
    let logs = a.logs();
    let line = log_line(&logs, "released the lease");
    assert!(
        line.contains(&format!("lease={}/{LEASE_NAME}", env.ns)) && line.contains("identity=a"),
        "{logs}"
    );

    // The new leader acts.
    env.create("after").await;
    env.wait_active("after").await;
    assert!(b.logs().contains("ordering connection"));
    assert_eq!(env.creates_of("after").await, 1);
}

#[tokio::test]
async fn a_leader_that_loses_the_lease_exits_at_once_with_an_error() {
    let env = Env::start().await;
    let mut a = env.replica("a");
    env.wait_holder("a", WAIT).await;
    wait_status(&a, "/readyz", 200).await;

    // Another replica holds the Lease now (as one that judged it expired would).
    let patch = json!({"spec": {"holderIdentity": "intruder"}});
    Api::<Lease>::namespaced(env.client.clone(), &env.ns)
        .patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");
    let exit = a.wait_exit(PROCESS_LEASE_DURATION).await;
    assert!(!exit.success(), "losing the lease is an error exit: {exit}");
    let logs = a.logs();
    assert!(logs.contains("lost leadership"), "{logs}");
    let line = log_line(&logs, "leadership lost");
    assert!(
        line.contains("holder=intruder") && line.contains("identity=a"),
        "the loss names the new holder: {logs}"
    );
    assert!(!logs.contains("released the lease"), "{logs}");
    assert_eq!(
        env.holder().await.as_deref(),
        Some("intruder"),
        "a left the new holder alone"
    );
}
