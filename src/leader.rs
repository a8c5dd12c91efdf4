//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! orders and disconnects connections at a time.
//!
//! Why our own: kube-runtime has no leader election, and the maintained crates
//! (kube-lease-manager, kube-leader-election, ...) are built on kube 4; taking one would put a
//! second kube into the build. The protocol is small — the one client-go's `leaderelection`
//! speaks, so `kubectl get lease` shows the usual fields:
//!
//! * A replica takes the Lease when it is missing (create), names nobody, or its holder let
//!   `renewTime + leaseDurationSeconds` pass. Every write is a replace carrying the
//!   `resourceVersion` that was read, so of two replicas racing for it exactly one wins; the
//!   loser gets 409 and reads again.
//! * The holder renews every `renew_every` (default a third of the lease). It counts itself
//!   leader only until `renew_deadline` (two thirds of the lease) after the start of its last
//!   successful renewal; past that, or as soon as it sees another holder, leadership is lost.
//!   The last third of the lease is the margin for clock skew between nodes and for stopping:
//!   a replica that lost leadership stops before anyone else may take over.
//! * [`Leadership::release`] clears `holderIdentity` (resourceVersion-checked), so a waiting
//!   replica takes over at its next poll instead of after the lease expires.
//! * [`LeaseLock::standing`] publishes where the replica stands (following whom, leading,
//!   stopped), so that readiness and the leader metric follow the election without it knowing
//!   about either.
//!
//! Expiry is judged by the wall clock against `renewTime`, as the Lease API intends; replicas
//! whose clocks differ by more than the margin above could overlap.

use std::{future::Future, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use rand::Rng;
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tracing::{debug, info, warn};

/// How long a Lease lasts without renewal unless configured otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Why leader election failed. [`Error::is_retryable`] says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The timings cannot work (e.g. renewing no faster than the lease expires). Retrying
    /// cannot help; fix the configuration.
    #[error("invalid leader election settings: {0}")]
    Settings(String),
    /// RBAC forbids reading or writing the Lease. Retrying cannot help until the Role grants
    /// get, create and update on leases.coordination.k8s.io.
    #[error(
        "not allowed to {verb} Lease {lease} (grant get, create and update on \
         leases.coordination.k8s.io): {source}"
    )]
    Forbidden {
        verb: &'static str,
        lease: String,
        #[source]
        source: kube::Error,
    },
    /// The API server refused the request as such (an invalid name, a missing namespace).
    /// Retrying cannot help.
    #[error("the API server refused to {verb} Lease {lease}: {source}")]
    Rejected {
        verb: &'static str,
        lease: String,
        #[source]
        source: kube::Error,
    },
    /// The network, a timeout, an overloaded or restarting API server. Retrying helps.
    #[error("cannot {verb} Lease {lease}: {source}")]
    Transient {
        verb: &'static str,
        lease: String,
        #[source]
        source: kube::Error,
    },
    /// A request did not finish in time. Retrying helps.
    #[error("timed out trying to {verb} Lease {lease}")]
    Timeout { verb: &'static str, lease: String },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Settings(_) | Error::Forbidden { .. } | Error::Rejected { .. } => false,
            Error::Transient { .. } | Error::Timeout { .. } => true,
        }
    }
}

/// Sorts a failed API call by whether retrying can help. Callers handle 409 and the 404s they
/// expect (a Lease deleted under us) before this.
fn classify(verb: &'static str, lease: &str, source: kube::Error) -> Error {
    let lease = lease.to_owned();
    let code = match &source {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    match code {
        Some(403) => Error::Forbidden {
            verb,
            lease,
            source,
        },
        Some(400 | 404 | 422) => Error::Rejected {
            verb,
            lease,
            source,
        },
        // 401 (a token being rotated), 429, 5xx and transport errors pass.
        _ => Error::Transient {
            verb,
            lease,
            source,
        },
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Which Lease, who we are, and how fast leadership moves.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Written to `holderIdentity`; unique per replica (the Pod name).
    pub identity: String,
    /// How long a Lease lasts unrenewed: the longest a crash leaves nobody in charge.
    pub lease_duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// The defaults: a 15 s lease renewed every 5 s.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_every: DEFAULT_LEASE_DURATION / 3,
        }
    }

    /// Sets the lease duration and renews every third of it.
    pub fn with_lease_duration(mut self, lease_duration: Duration) -> Self {
        self.lease_duration = lease_duration;
        self.renew_every = lease_duration / 3;
        self
    }

    pub fn with_renew_every(mut self, renew_every: Duration) -> Self {
        self.renew_every = renew_every;
        self
    }
}

/// The timings derived from a [`LeaseConfig`], checked once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timing {
    lease: Duration,
    /// `leaseDurationSeconds`: the lease rounded up to whole seconds (others wait at least
    /// as long as we count on).
    lease_seconds: i32,
    renew_every: Duration,
    /// How long the holder counts itself leader after the start of its last good renewal.
    renew_deadline: Duration,
}

impl Timing {
    fn new(lease: Duration, renew_every: Duration) -> Result<Self, Error> {
        if lease < Duration::from_secs(1) {
            return Err(Error::Settings(format!(
                "the lease duration must be at least 1s, not {lease:?}"
            )));
        }
        let lease_seconds = i32::try_from(lease.as_secs() + u64::from(lease.subsec_nanos() > 0))
            .map_err(|_| Error::Settings(format!("the lease duration {lease:?} is too long")))?;
        let renew_deadline = lease * 2 / 3;
        if renew_every.is_zero() || renew_every >= renew_deadline {
            return Err(Error::Settings(format!(
                "renewing every {renew_every:?} cannot keep a {lease:?} lease: renew more often \
                 than every {renew_deadline:?} (two thirds of the lease)"
            )));
        }
        Ok(Self {
            lease,
            lease_seconds,
            renew_every,
            renew_deadline,
        })
    }

    /// How long a failed renewal waits before the next attempt: a few tries fit before the
    /// deadline.
    fn renew_retry(&self) -> Duration {
        self.renew_every / 4
    }
}

/// Where a replica stands in the election, as it last saw the Lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Standing {
    /// The Lease has not been read yet, or every attempt so far failed: nothing shows yet
    /// that this replica could take over.
    #[default]
    Unknown,
    /// Another replica holds the Lease; this one read it and waits to take over.
    Following { holder: String },
    /// This replica holds the Lease.
    Leading,
    /// This replica held the Lease and no longer does: lost, released or dropped.
    Stopped,
}

/// What a replica may do with a Lease, judged from its spec alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The Lease names us: renew it.
    Ours,
    /// Nobody holds it, or its holder let it expire: take it.
    Free,
    /// Someone else holds it until `until`.
    HeldBy { holder: String, until: Timestamp },
}

/// The holder named in a Lease; an empty name (a released Lease) is nobody.
pub fn holder_of(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec?
        .holder_identity
        .as_deref()
        .filter(|holder| !holder.is_empty())
}

/// When a Lease expires: `renewTime` (else `acquireTime`) plus `leaseDurationSeconds` (else
/// `default_duration`). `None` when it carries no time at all, so it cannot be live.
pub fn expiry(spec: &LeaseSpec, default_duration: Duration) -> Option<Timestamp> {
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let duration = match spec.lease_duration_seconds {
        Some(seconds) if seconds > 0 => SignedDuration::from_secs(i64::from(seconds)),
        // A missing or nonsensical duration: assume ours rather than "already expired".
        _ => SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::MAX),
    };
    // Past the end of time still counts as live: never take a lease early.
    Some(since.checked_add(duration).unwrap_or(Timestamp::MAX))
}

/// Whether `identity` may hold the Lease at `now`.
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Decision {
    let Some(holder) = holder_of(spec) else {
        return Decision::Free;
    };
    if holder == identity {
        return Decision::Ours;
    }
    match spec.and_then(|spec| expiry(spec, default_duration)) {
        Some(until) if now < until => Decision::HeldBy {
            holder: holder.to_owned(),
            until,
        },
        _ => Decision::Free,
    }
}

/// The spec that makes `identity` the holder at `now`: a renewal if it already was (acquire
/// time and transitions kept), else a takeover (one more transition).
pub fn claimed(
    previous: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    lease_seconds: i32,
) -> LeaseSpec {
    let mut spec = previous.cloned().unwrap_or_default();
    let renewal = holder_of(previous) == Some(identity);
    if !renewal {
        spec.holder_identity = Some(identity.to_owned());
        spec.acquire_time = Some(MicroTime(now));
        // A new Lease starts at 0; every change of holder on an existing one counts, as in
        // client-go.
        spec.lease_transitions = Some(match previous {
            Some(previous) => previous.lease_transitions.unwrap_or(0).saturating_add(1),
            None => 0,
        });
    } else if spec.acquire_time.is_none() {
        spec.acquire_time = Some(MicroTime(now));
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(lease_seconds);
    spec
}

/// The spec of a released Lease: it names nobody, so any replica may take it at once, and its
/// duration is the shortest, for clients that only look at the time.
pub fn released(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        renew_time: Some(MicroTime(now)),
        lease_duration_seconds: Some(1),
        ..previous.clone()
    }
}

/// `d` stretched by up to 20 %, so that replicas started together do not poll in lockstep.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(1.0 + rand::rng().random_range(0.0..0.2))
}

/// What one attempt on the Lease came to.
enum Attempt {
    /// We hold it; its `leaseTransitions`, for the log.
    Held { transitions: Option<i32> },
    /// Someone else holds it, or (when renewing) it is gone or released.
    HeldBy(Option<String>),
    /// Someone wrote in between (409, or the Lease vanished): read again.
    Raced,
}

impl Attempt {
    fn held(stored: &Lease) -> Self {
        Attempt::Held {
            transitions: stored.spec.as_ref().and_then(|s| s.lease_transitions),
        }
    }
}

/// One replica's handle on the Lease. Clones share one [`Standing`].
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    config: LeaseConfig,
    timing: Timing,
    /// `namespace/name`, for messages.
    lease: String,
    standing: watch::Sender<Standing>,
}

impl LeaseLock {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Result<Self, Error> {
        let timing = Timing::new(config.lease_duration, config.renew_every)?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            lease: format!("{}/{}", config.namespace, config.name),
            config,
            timing,
            standing: watch::Sender::new(Standing::Unknown),
        })
    }

    /// Follows where this replica stands: [`Standing::Following`] once it has read a Lease held
    /// by another replica, [`Standing::Leading`] once it holds it, [`Standing::Stopped`] once it
    /// lost or released it.
    pub fn standing(&self) -> watch::Receiver<Standing> {
        self.standing.subscribe()
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// `namespace/name` of the Lease.
    pub fn lease(&self) -> &str {
        &self.lease
    }

    /// Waits until this replica holds the Lease, then keeps renewing it in the background.
    /// Returns early only on errors that retrying cannot fix; cancelling the future is safe
    /// (at worst a Lease just taken stays ours until it expires).
    pub async fn acquire(&self) -> Result<Leadership, Error> {
        let mut last_holder: Option<String> = None;
        loop {
            let started = Instant::now();
            match self.try_acquire().await {
                Ok(Attempt::Held { transitions }) => {
                    info!(lease = %self.lease, holder = %self.config.identity, ?transitions, "acquired the lease; leading");
                    self.standing.send_replace(Standing::Leading);
                    return Ok(Leadership::start(self.clone(), started));
                }
                // Lost a race: the winner is visible at once, no need to wait.
                Ok(Attempt::Raced) => continue,
                Ok(Attempt::HeldBy(holder)) => {
                    if holder != last_holder {
                        info!(lease = %self.lease, holder = %holder.as_deref().unwrap_or(""), identity = %self.config.identity, "the lease is held by another replica; following");
                        if let Some(holder) = &holder {
                            self.standing.send_replace(Standing::Following {
                                holder: holder.clone(),
                            });
                        }
                        last_holder = holder;
                    }
                }
                Err(error) if error.is_retryable() => {
                    warn!(%error, "cannot acquire the lease yet; retrying");
                }
                Err(error) => return Err(error),
            }
            tokio::time::sleep(jittered(self.timing.renew_every)).await;
        }
    }

    /// Reads the Lease and takes it if it is free, expired or ours.
    async fn try_acquire(&self) -> Result<Attempt, Error> {
        let Some(current) = self.get().await? else {
            return self.create().await;
        };
        let now = Timestamp::now();
        match decide(
            current.spec.as_ref(),
            self.identity(),
            now,
            self.timing.lease,
        ) {
            Decision::Ours | Decision::Free => self.claim(current, now).await,
            Decision::HeldBy { holder, .. } => Ok(Attempt::HeldBy(Some(holder))),
        }
    }

    /// Reads the Lease and renews it if it still names us. Unlike acquiring, a free or missing
    /// Lease is not taken: someone released or deleted it under us, and another replica may
    /// already be taking it.
    async fn try_renew(&self) -> Result<Attempt, Error> {
        let Some(current) = self.get().await? else {
            return Ok(Attempt::HeldBy(None));
        };
        let now = Timestamp::now();
        match decide(
            current.spec.as_ref(),
            self.identity(),
            now,
            self.timing.lease,
        ) {
            Decision::Ours => self.claim(current, now).await,
            Decision::Free | Decision::HeldBy { .. } => Ok(Attempt::HeldBy(
                holder_of(current.spec.as_ref()).map(str::to_owned),
            )),
        }
    }

    async fn get(&self) -> Result<Option<Lease>, Error> {
        self.api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| classify("read", &self.lease, e))
    }

    async fn create(&self) -> Result<Attempt, Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(claimed(
                None,
                self.identity(),
                Timestamp::now(),
                self.timing.lease_seconds,
            )),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(stored) => Ok(Attempt::held(&stored)),
            // Another replica created it first.
            Err(e) if is_status(&e, 409) => Ok(Attempt::Raced),
            Err(e) => Err(classify("create", &self.lease, e)),
        }
    }

    /// Writes `current` back naming us; its resourceVersion makes the write fail if anyone
    /// wrote since we read it.
    async fn claim(&self, mut current: Lease, now: Timestamp) -> Result<Attempt, Error> {
        current.spec = Some(claimed(
            current.spec.as_ref(),
            self.identity(),
            now,
            self.timing.lease_seconds,
        ));
        self.replace(&current).await.map(|stored| match stored {
            Some(stored) => Attempt::held(&stored),
            None => Attempt::Raced,
        })
    }

    /// A resourceVersion-checked replace; `None` when someone wrote or deleted it meanwhile.
    async fn replace(&self, lease: &Lease) -> Result<Option<Lease>, Error> {
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), lease)
            .await
        {
            Ok(stored) => Ok(Some(stored)),
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(None),
            Err(e) => Err(classify("update", &self.lease, e)),
        }
    }

    /// Renews until it works or `deadline` passes. Returns when the successful attempt started
    /// (the renewTime written is no earlier), or why leadership is lost.
    async fn renew_before(&self, deadline: Instant) -> Result<Instant, Lost> {
        loop {
            let started = Instant::now();
            match tokio::time::timeout_at(deadline, self.try_renew()).await {
                Err(_) => return Err(self.deadline_passed()),
                Ok(Ok(Attempt::Held { .. })) => return Ok(started),
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    let reason = match &holder {
                        Some(holder) => format!("the lease {} is now held by {holder}", self.lease),
                        None => format!("the lease {} was released or deleted", self.lease),
                    };
                    return Err(Lost { reason, holder });
                }
                Ok(Ok(Attempt::Raced)) => continue,
                Ok(Err(error)) if error.is_retryable() => {
                    debug!(%error, "renewal failed; retrying");
                }
                Ok(Err(error)) => {
                    return Err(Lost {
                        reason: error.to_string(),
                        holder: None,
                    });
                }
            }
            let next = Instant::now() + jittered(self.timing.renew_retry());
            if next >= deadline {
                return Err(self.deadline_passed());
            }
            tokio::time::sleep_until(next).await;
        }
    }

    fn deadline_passed(&self) -> Lost {
        Lost {
            reason: format!(
                "could not renew the lease {} within {:?}",
                self.lease, self.timing.renew_deadline
            ),
            holder: None,
        }
    }

    /// Clears the holder if it is still us. A 409 means someone wrote in between: read again,
    /// since it may have been our own renewal racing this.
    async fn clear(&self) -> Result<(), Error> {
        loop {
            let Some(mut current) = self.get().await? else {
                return Ok(());
            };
            let Some(spec) = current.spec.as_ref() else {
                return Ok(());
            };
            if holder_of(Some(spec)) != Some(self.identity()) {
                return Ok(());
            }
            current.spec = Some(released(spec, Timestamp::now()));
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &current)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_status(&e, 409) => continue,
                Err(e) if is_status(&e, 404) => return Ok(()),
                Err(e) => return Err(classify("release", &self.lease, e)),
            }
        }
    }
}

/// Why a holder stopped leading, and who holds the Lease now when that is known.
struct Lost {
    reason: String,
    holder: Option<String>,
}

/// Holding the Lease. Renews it in the background until released, dropped or lost. Dropping
/// it stops renewing without releasing (as a crash would): others take over after expiry.
pub struct Leadership {
    lock: LeaseLock,
    renewer: JoinHandle<()>,
    /// `Some(reason)` once leadership is lost.
    lost: watch::Receiver<Option<String>>,
}

impl Leadership {
    fn start(lock: LeaseLock, renewed: Instant) -> Self {
        let (tx, lost) = watch::channel(None);
        let renewer = tokio::spawn(renew_loop(lock.clone(), renewed, tx));
        Self {
            lock,
            renewer,
            lost,
        }
    }

    /// False once leadership is lost.
    pub fn is_leading(&self) -> bool {
        self.lost.borrow().is_none()
    }

    /// Resolves, with the reason, once this replica must stop acting as leader: a renewal
    /// could not succeed in time or another replica holds the Lease. The future owns what it
    /// needs, so it can be raced against work that later calls [`Leadership::release`].
    pub fn lost(&self) -> impl Future<Output = String> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            match lost.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                // The renewer is gone without a word: released, dropped or panicked.
                Err(_) => "the lease is no longer renewed".to_owned(),
            }
        }
    }

    /// Stops renewing and clears the holder, so a waiting replica takes over at once instead
    /// of after the lease expires. Bounded by the renew deadline; on error the Lease simply
    /// expires.
    pub async fn release(mut self) -> Result<(), Error> {
        self.renewer.abort();
        // Wait for the renewer to be gone so that no renewal lands after the release.
        let _ = (&mut self.renewer).await;
        // From here on this replica no longer counts as leader, whether or not clearing works.
        self.lock.standing.send_replace(Standing::Stopped);
        let limit = self.lock.timing.renew_deadline;
        match tokio::time::timeout(limit, self.lock.clear()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Timeout {
                    verb: "release",
                    lease: self.lock.lease.clone(),
                });
            }
        }
        info!(lease = %self.lock.lease, identity = %self.lock.config.identity, "released the lease; handing over to the next replica that polls it");
        Ok(())
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renewer.abort();
        // Nobody renews any more, so this replica must not go on counting itself leader (a
        // released or lost leadership says so already).
        self.lock.standing.send_if_modified(|standing| {
            let leading = *standing == Standing::Leading;
            if leading {
                *standing = Standing::Stopped;
            }
            leading
        });
    }
}

/// Renews every `renew_every` after the last good renewal; reports the loss and ends when a
/// renewal cannot succeed within the renew deadline.
async fn renew_loop(lock: LeaseLock, mut renewed: Instant, lost: watch::Sender<Option<String>>) {
    loop {
        tokio::time::sleep_until(renewed + lock.timing.renew_every).await;
        match lock
            .renew_before(renewed + lock.timing.renew_deadline)
            .await
        {
            Ok(at) => renewed = at,
            Err(Lost { reason, holder }) => {
                warn!(
                    lease = %lock.lease,
                    identity = %lock.config.identity,
                    holder = %holder.as_deref().unwrap_or(""),
                    %reason,
                    "leadership lost"
                );
                lock.standing.send_replace(Standing::Stopped);
                lost.send_replace(Some(reason));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "me";
    const D: Duration = Duration::from_secs(15);

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn held(holder: &str, renewed: i64, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            acquire_time: Some(MicroTime(t(0))),
            renew_time: Some(MicroTime(t(renewed))),
            lease_duration_seconds: seconds,
            lease_transitions: Some(4),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_spec_or_an_empty_holder_is_free() {
        assert_eq!(decide(None, ME, t(0), D), Decision::Free);
        let mut spec = held("", 0, Some(15));
        assert_eq!(decide(Some(&spec), ME, t(0), D), Decision::Free);
        spec.holder_identity = None;
        assert_eq!(decide(Some(&spec), ME, t(0), D), Decision::Free);
    }

    #[test]
    fn our_own_lease_is_ours_even_when_expired() {
        let spec = held(ME, 0, Some(15));
        assert_eq!(decide(Some(&spec), ME, t(5), D), Decision::Ours);
        assert_eq!(decide(Some(&spec), ME, t(100), D), Decision::Ours);
    }

    #[test]
    fn another_holder_is_respected_until_renew_time_plus_duration() {
        let spec = held("other", 10, Some(15));
        assert_eq!(
            decide(Some(&spec), ME, t(24), D),
            Decision::HeldBy {
                holder: "other".into(),
                until: t(25)
            }
        );
        assert_eq!(decide(Some(&spec), ME, t(25), D), Decision::Free);
        assert_eq!(decide(Some(&spec), ME, t(40), D), Decision::Free);
    }

    #[test]
    fn a_missing_duration_falls_back_to_ours() {
        let spec = held("other", 10, None);
        assert_eq!(expiry(&spec, Duration::from_secs(30)), Some(t(40)));
        let spec = held("other", 10, Some(0));
        assert_eq!(expiry(&spec, Duration::from_secs(30)), Some(t(40)));
    }

    #[test]
    fn expiry_counts_from_the_acquire_time_without_a_renew_time() {
        let mut spec = held("other", 10, Some(15));
        spec.renew_time = None;
        assert_eq!(expiry(&spec, D), Some(t(15)));
        spec.acquire_time = None;
        assert_eq!(expiry(&spec, D), None);
        assert_eq!(decide(Some(&spec), ME, t(0), D), Decision::Free);
    }

    #[test]
    fn a_new_lease_starts_with_zero_transitions() {
        let spec = claimed(None, ME, t(3), 15);
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.acquire_time, Some(MicroTime(t(3))));
        assert_eq!(spec.renew_time, Some(MicroTime(t(3))));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn a_takeover_counts_a_transition_and_resets_the_acquire_time() {
        let previous = held("other", 10, Some(15));
        let spec = claimed(Some(&previous), ME, t(30), 5);
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.acquire_time, Some(MicroTime(t(30))));
        assert_eq!(spec.renew_time, Some(MicroTime(t(30))));
        assert_eq!(spec.lease_duration_seconds, Some(5));
        assert_eq!(spec.lease_transitions, Some(5));
    }

    #[test]
    fn taking_a_released_lease_counts_a_transition() {
        let previous = released(&held("other", 10, Some(15)), t(11));
        let spec = claimed(Some(&previous), ME, t(12), 15);
        assert_eq!(spec.lease_transitions, Some(5));
    }

    #[test]
    fn a_renewal_keeps_acquire_time_and_transitions() {
        let previous = held(ME, 10, Some(15));
        let spec = claimed(Some(&previous), ME, t(20), 15);
        assert_eq!(spec.acquire_time, Some(MicroTime(t(0))));
        assert_eq!(spec.renew_time, Some(MicroTime(t(20))));
        assert_eq!(spec.lease_transitions, Some(4));
    }

    #[test]
    fn a_released_lease_names_nobody() {
        let spec = released(&held(ME, 10, Some(15)), t(12));
        assert_eq!(holder_of(Some(&spec)), None);
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(decide(Some(&spec), "other", t(12), D), Decision::Free);
    }

    #[test]
    fn default_timing_renews_every_third_and_gives_up_at_two_thirds() {
        let config = LeaseConfig::new("ns", "lease", ME);
        let timing = Timing::new(config.lease_duration, config.renew_every).unwrap();
        assert_eq!(timing.lease_seconds, 15);
        assert_eq!(timing.renew_every, Duration::from_secs(5));
        assert_eq!(timing.renew_deadline, Duration::from_secs(10));
    }

    #[test]
    fn lease_seconds_round_up() {
        let config =
            LeaseConfig::new("ns", "lease", ME).with_lease_duration(Duration::from_millis(2500));
        let timing = Timing::new(config.lease_duration, config.renew_every).unwrap();
        assert_eq!(timing.lease_seconds, 3);
    }

    #[test]
    fn timings_that_cannot_hold_a_lease_are_refused() {
        for (lease, renew) in [
            (0, 0),
            (500, 100),
            (15_000, 0),
            (15_000, 10_000),
            (15_000, 20_000),
        ] {
            let result = Timing::new(Duration::from_millis(lease), Duration::from_millis(renew));
            let error = result.unwrap_err();
            assert!(!error.is_retryable(), "{error}");
        }
    }

    #[test]
    fn only_transient_api_errors_are_retryable() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(matches!(
            classify("read", "ns/l", api(403)),
            Error::Forbidden { .. }
        ));
        assert!(!classify("read", "ns/l", api(403)).is_retryable());
        assert!(!classify("create", "ns/l", api(404)).is_retryable());
        assert!(!classify("update", "ns/l", api(422)).is_retryable());
        for code in [401, 429, 500, 503, 504] {
            assert!(
                classify("update", "ns/l", api(code)).is_retryable(),
                "{code}"
            );
        }
    }
}
