//! Leader election against the real control plane: two electors in one process on one Lease; a
//! holder whose clock runs an hour behind, against our lock and against kube-lease-manager; then
//! two operator processes where only the leader may order anything, both are ready, and
//! `fastconnect_leader` says which one leads.

use fastconnect_test_support as support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fastconnect_operator::{
    crd::{FastConnectConnection, Phase},
    leader::{LeaseConfig, LeaseLock, Standing},
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder};
use serde_json::json;
use support::{
    cluster, fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::MissedTickBehavior,
};
use tracing_subscriber::EnvFilter;

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

// ---- A holder whose clock runs an hour behind ----

/// The other replica's identity.
const OTHER: &str = "other";
/// How far the other replica's clock runs behind ours.
const SKEW: SignedDuration = SignedDuration::from_hours(1);
/// How often it renews: a third of the lease, as ours do.
const SKEWED_RENEW_EVERY: Duration = Duration::from_secs(1);
/// The longest our lock waits between two reads of a held Lease: a third of `LEASE`, stretched
/// by up to 20 % of jitter.
const POLL_MAX: Duration = Duration::from_millis(1200);
/// What the lock logs (at debug) at each read that finds the Lease held and not expired.
const HELD_NOT_EXPIRED: &str = "the lease is held by another replica and has not expired";

/// What the skewed holder did until it stopped.
#[derive(Debug)]
struct SkewedRun {
    /// Successful renewals, the creation not counted.
    renewals: u32,
    /// When its last successful write (creation or renewal) was sent.
    last_write: Instant,
    /// Who held the Lease when it gave up by itself; `None` when it was told to stop.
    displaced_by: Option<String>,
}

/// Another replica whose clock runs an hour behind ours, doing what a client-go replica on such
/// a node does: it holds the Lease as `other` and renews it every second (each renewal changes the
/// record; its `renewTime` is always an hour in the past), takes it back when it names nobody, and
/// gives up once another replica holds it.
struct SkewedHolder {
    stop: oneshot::Sender<()>,
    renewals: watch::Receiver<u32>,
    run: JoinHandle<SkewedRun>,
}

impl SkewedHolder {
    /// Creates the Lease `lock` held by `other`, then renews it in the background.
    async fn start(api: Api<Lease>) -> Self {
        let created = Instant::now();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some("lock".to_owned()),
                ..ObjectMeta::default()
            },
            spec: None,
        };
        api.create(&PostParams::default(), &held_by_other_now(lease))
            .await
            .expect("the skewed holder creates the lease");
        let (stop, stopped) = oneshot::channel();
        let (count, renewals) = watch::channel(0);
        let run = tokio::spawn(renew_skewed(api, stopped, count, created));
        Self {
            stop,
            renewals,
            run,
        }
    }

    /// Waits until it has renewed `n` times.
    async fn wait_renewals(&mut self, n: u32) {
        tokio::time::timeout(WAIT, self.renewals.wait_for(|&done| done >= n))
            .await
            .expect("the skewed holder renews")
            .expect("the skewed holder still runs");
    }

    /// Tells it to stop; it writes nothing once this returns.
    async fn stop(self) -> SkewedRun {
        // It may have given up by itself already.
        let _ = self.stop.send(());
        self.run.await.expect("the skewed holder ran to the end")
    }

    /// Waits until it gives up by itself because another replica holds the Lease.
    async fn displaced(self) -> SkewedRun {
        // Kept until the end: dropping it would tell the holder to stop.
        let SkewedHolder {
            stop: _running,
            run,
            ..
        } = self;
        tokio::time::timeout(WAIT, run)
            .await
            .expect("the skewed holder gives up")
            .expect("the skewed holder ran to the end")
    }
}

/// `lease` as the skewed holder writes it: held by `other` for `LEASE`, renewed now by its clock.
fn held_by_other_now(mut lease: Lease) -> Lease {
    let now = MicroTime(Timestamp::now() - SKEW);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(OTHER) {
        spec.holder_identity = Some(OTHER.to_owned());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.map_or(0, |n| n + 1));
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(LEASE.as_secs().try_into().expect("a short lease"));
    lease
}

/// The skewed holder at work: every second a read and a resourceVersion-checked write.
async fn renew_skewed(
    api: Api<Lease>,
    mut stop: oneshot::Receiver<()>,
    renewals: watch::Sender<u32>,
    created: Instant,
) -> SkewedRun {
    let mut run = SkewedRun {
        renewals: 0,
        last_write: created,
        displaced_by: None,
    };
    let mut ticks = tokio::time::interval(SKEWED_RENEW_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate, and the Lease was just created.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => return run,
            _ = ticks.tick() => {}
        }
        let current = api
            .get("lock")
            .await
            .expect("the skewed holder reads the lease");
        let holder = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone());
        if let Some(holder) = holder.filter(|h| !h.is_empty() && h != OTHER) {
            run.displaced_by = Some(holder);
            return run;
        }
        let sent = Instant::now();
        match api
            .replace("lock", &PostParams::default(), &held_by_other_now(current))
            .await
        {
            Ok(_) => {
                run.renewals += 1;
                run.last_write = sent;
                renewals.send_replace(run.renewals);
            }
            // Someone wrote in between: look again at the next tick.
            Err(e) if cluster::is_status(&e, 409) => {}
            Err(e) => panic!("the skewed holder cannot renew: {e}"),
        }
    }
}

/// The leader module's log on this thread, kept for a test to count the lock's attempts.
/// `#[tokio::test]` runs the test and the tasks it spawns on one thread, so a thread-local
/// subscriber sees them all and no other test's.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Captures until the guard is dropped.
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let log = Self::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("fastconnect_operator::leader=debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    /// How many lines contain all of `parts`.
    fn count(&self, parts: &[&str]) -> usize {
        let bytes = self.0.lock().expect("the log is readable");
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| parts.iter().all(|part| line.contains(part)))
            .count()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log is writable")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_renewing_holder_an_hour_behind_keeps_the_lease_and_loses_it_a_lease_after_it_stops() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "leader-skew").await;
    let other = SkewedHolder::start(Api::namespaced(client.clone(), &ns)).await;
    let (log, _capturing) = CapturedLog::start();
    let me = lock(&client, &ns, "me");

    // By its renewTime the lease ran out an hour ago; but its record keeps changing, so the lock
    // reads it again and again and leaves it, for longer than a lease duration.
    let watching = Instant::now();
    let mut acquire = std::pin::pin!(me.acquire());
    let attempts = || log.count(&[HELD_NOT_EXPIRED, "holder=other", "identity=me"]);
    tokio::select! {
        taken = &mut acquire => panic!(
            "me took a lease its holder renews: {:?}",
            taken.map(|leadership| leadership.is_leading())
        ),
        () = cluster::wait_for("me to find the lease held 5 times", WAIT, || async {
            (attempts() >= 5).then_some(())
        }) => {}
    }
    let watched = watching.elapsed();
    assert!(watched > LEASE, "me watched for {watched:?} only");
    assert_eq!(standing(&me), following(OTHER));
    let held = lease(&client, &ns, "lock").await;
    assert_eq!(holder(&held).as_deref(), Some(OTHER));
    let behind = Timestamp::now().duration_since(renew_time(&held).expect("a renewTime"));
    assert!(
        behind > SignedDuration::from_mins(59),
        "the holder's renewTime is {behind} behind"
    );

    // Once it stops, the lock takes the Lease a lease duration after the last renewal it saw,
    // at its next read: one read to see that renewal, one to find it a lease duration old.
    let run = other.stop().await;
    assert_eq!(run.displaced_by, None, "{run:?}");
    assert!(run.renewals >= 4, "{run:?}");
    let leadership = tokio::time::timeout(WAIT, &mut acquire)
        .await
        .expect("me acquires once the holder stops")
        .expect("no error");
    let took = run.last_write.elapsed();
    eprintln!("takeover after the skewed holder's last renewal: {took:?}");
    assert!(
        took >= LEASE,
        "me took the lease {took:?} after its last renewal"
    );
    assert!(
        took < LEASE + 2 * POLL_MAX + Duration::from_millis(500),
        "me took {took:?} to take over"
    );
    let taken = lease(&client, &ns, "lock").await;
    assert_eq!(holder(&taken).as_deref(), Some("me"));
    assert_eq!(transitions(&taken), Some(1));
    assert_eq!(standing(&me), Standing::Leading);
    leadership.release().await.expect("released");
}

/// kube-lease-manager 0.13.1 compares this node's clock with the holder's `renewTime`
/// (`LeaseState::sync`, `is_expired`), so it clears and takes a Lease whose holder renews every
/// second: the reason `src/leader.rs` is our own.
#[tokio::test]
async fn kube_lease_manager_takes_a_lease_its_skewed_holder_still_renews() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "leader-klm").await;
    let mut other = SkewedHolder::start(Api::namespaced(client.clone(), &ns)).await;
    other.wait_renewals(2).await;

    let manager = LeaseManagerBuilder::new(client.clone(), "lock")
        .with_namespace(ns.clone())
        .with_identity("klm")
        .with_grace(1)
        .with_duration(LEASE.as_secs())
        .with_create_mode(LeaseCreateMode::UseExistent)
        .build()
        .await
        .expect("kube-lease-manager starts on the existing lease");
    let started = Instant::now();
    let leading = tokio::time::timeout(WAIT, manager.changed())
        .await
        .expect("kube-lease-manager makes up its mind")
        .expect("no error");
    let took_at = Instant::now();
    assert!(leading, "kube-lease-manager says it leads");
    assert_eq!(
        holder(&lease(&client, &ns, "lock").await).as_deref(),
        Some("klm")
    );

    // The holder had renewed less than a lease duration before: by client-go's rule, and ours,
    // the Lease was still its own.
    let run = other.displaced().await;
    assert_eq!(run.displaced_by.as_deref(), Some("klm"), "{run:?}");
    assert!(run.renewals >= 2, "{run:?}");
    let since_renewal = took_at.saturating_duration_since(run.last_write);
    eprintln!(
        "kube-lease-manager led {:?} after it started, {since_renewal:?} after the holder's \
         last renewal",
        took_at - started
    );
    assert!(
        since_renewal < LEASE,
        "the holder stopped renewing {since_renewal:?} before"
    );
    manager
        .release()
        .await
        .expect("kube-lease-manager releases");
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
