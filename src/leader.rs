//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! orders and disconnects connections at a time.
//!
//! Why our own: kube-runtime has no leader election, and kube-lease-manager 0.13.1 (on kube 5)
//! judges a Lease expired by comparing this node's wall clock with the `renewTime` another node
//! wrote (`LeaseState::sync` and `is_expired` in its `src/state.rs`), so it takes the Lease from a
//! holder that renews on time but whose clock runs behind (see docs/design.md and
//! `kube_lease_manager_takes_a_lease_its_skewed_holder_still_renews` in `tests/leader.rs`). The
//! protocol is small — the one client-go's `leaderelection` speaks, so `kubectl get lease` shows
//! the usual fields:
//!
//! * A replica takes the Lease when it is missing (create), names nobody, or names another holder
//!   and its record has not changed for `leaseDurationSeconds` of this replica's own time (see
//!   below). Every write is a replace carrying the `resourceVersion` that was read, so of two
//!   replicas racing for it exactly one wins; the loser gets 409 and reads again.
//! * The holder renews every `renew_every` (default a third of the lease). It counts itself
//!   leader only until `renew_deadline` (two thirds of the lease) after the start of its last
//!   successful renewal; past that, or as soon as it sees another holder, leadership is lost.
//!   The last third of the lease is the margin for clocks that run at slightly different rates
//!   and for stopping: a replica that lost leadership stops before anyone else may take over.
//! * [`Leadership::release`] clears `holderIdentity` (resourceVersion-checked), so a waiting
//!   replica takes over at its next poll instead of after the lease expires.
//! * [`LeaseLock::standing`] publishes where the replica stands (following whom, leading,
//!   stopped), so that readiness and the leader metric follow the election without it knowing
//!   about either.
//!
//! Expiry is judged as client-go judges it: a replica remembers the Lease's spec as it last saw
//! it change and when, on its own monotonic clock ([`Observed`]), and another holder's Lease is
//! free once that record has stayed the same for the lease's duration. The times written in the
//! Lease are never compared with this node's clock, so nodes whose clocks disagree (by an hour,
//! say) still agree on who holds it. The price: a replica that has just started, or starts
//! watching, waits a whole lease duration before taking a Lease that names another holder,
//! however old its `renewTime`.

use std::{future::Future, time::Duration};

use jiff::Timestamp;
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

/// What a replica may do with a Lease, judged from how it last observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The Lease names us: renew it.
    Ours,
    /// Nobody holds it, or its holder let its record stay unchanged for a lease duration: take
    /// it.
    Free,
    /// Someone else holds it; it is free in `expires_in` unless its record changes meanwhile.
    HeldBy {
        holder: String,
        expires_in: Duration,
    },
}

/// The holder named in a Lease; an empty name (a released Lease) is nobody.
pub fn holder_of(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec?
        .holder_identity
        .as_deref()
        .filter(|holder| !holder.is_empty())
}

/// A Lease's spec as this replica last saw it change, and when it first saw it so on its own
/// monotonic clock: client-go's `observedRecord` and `observedTime`. How long a record has stayed
/// the same is the one thing a replica can measure without trusting another node's clock.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    spec: Option<LeaseSpec>,
    since: Instant,
}

/// Notes the Lease's `spec` as read at `now`. The same record as before keeps the moment it was
/// first seen; a changed record, or the first one read, counts from `now` whatever times it
/// carries (so a replica that has just started waits a whole lease duration, as in client-go).
pub fn observe(previous: Option<Observed>, spec: Option<&LeaseSpec>, now: Instant) -> Observed {
    match previous {
        Some(previous) if previous.spec.as_ref() == spec => previous,
        _ => Observed {
            spec: spec.cloned(),
            since: now,
        },
    }
}

/// How long a Lease lasts unchanged: its `leaseDurationSeconds`, else `default_duration`.
fn lease_duration(spec: Option<&LeaseSpec>, default_duration: Duration) -> Duration {
    match spec.and_then(|spec| spec.lease_duration_seconds) {
        Some(seconds) if seconds > 0 => Duration::from_secs(u64::from(seconds.unsigned_abs())),
        // A missing or nonsensical duration: assume ours rather than "already expired".
        _ => default_duration,
    }
}

/// Whether `identity` may hold the Lease it `observed`, at `now` on the same monotonic clock.
/// Another holder keeps it until its record has stayed unchanged for the lease's duration; its
/// `renewTime` is not looked at, since it was written by another node's clock.
pub fn decide(
    observed: &Observed,
    identity: &str,
    now: Instant,
    default_duration: Duration,
) -> Decision {
    let spec = observed.spec.as_ref();
    let Some(holder) = holder_of(spec) else {
        return Decision::Free;
    };
    if holder == identity {
        return Decision::Ours;
    }
    let unchanged_for = now.saturating_duration_since(observed.since);
    match lease_duration(spec, default_duration).checked_sub(unchanged_for) {
        Some(expires_in) if !expires_in.is_zero() => Decision::HeldBy {
            holder: holder.to_owned(),
            expires_in,
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
        // The Lease as this call last saw it change. Starting with nothing, a Lease that names
        // another replica gets a whole lease duration from the first read, whatever its times.
        let mut observed: Option<Observed> = None;
        loop {
            let started = Instant::now();
            match self.try_acquire(&mut observed).await {
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

    /// Reads the Lease, notes it in `observed`, and takes it if it is free, expired or ours.
    async fn try_acquire(&self, observed: &mut Option<Observed>) -> Result<Attempt, Error> {
        let Some(current) = self.get().await? else {
            return self.create().await;
        };
        // Taken once the read returned: the record was written no later than this, so counting
        // from here never shortens the holder's lease.
        let now = Instant::now();
        let seen = observe(observed.take(), current.spec.as_ref(), now);
        let decision = decide(&seen, self.identity(), now, self.timing.lease);
        *observed = Some(seen);
        match decision {
            Decision::Ours | Decision::Free => self.claim(current, Timestamp::now()).await,
            Decision::HeldBy { holder, expires_in } => {
                debug!(lease = %self.lease, %holder, identity = %self.config.identity, ?expires_in, "the lease is held by another replica and has not expired");
                Ok(Attempt::HeldBy(Some(holder)))
            }
        }
    }

    /// Reads the Lease and renews it if it still names us. Unlike acquiring, a free or missing
    /// Lease is not taken: someone released or deleted it under us, and another replica may
    /// already be taking it.
    async fn try_renew(&self) -> Result<Attempt, Error> {
        let Some(current) = self.get().await? else {
            return Ok(Attempt::HeldBy(None));
        };
        if holder_of(current.spec.as_ref()) == Some(self.identity()) {
            return self.claim(current, Timestamp::now()).await;
        }
        Ok(Attempt::HeldBy(
            holder_of(current.spec.as_ref()).map(str::to_owned),
        ))
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

    /// `seconds` after `start` on the monotonic clock.
    fn after(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    fn held_by_other(expires_in: u64) -> Decision {
        Decision::HeldBy {
            holder: "other".into(),
            expires_in: Duration::from_secs(expires_in),
        }
    }

    #[test]
    fn a_missing_spec_or_an_empty_holder_is_free() {
        let start = Instant::now();
        assert_eq!(
            decide(&observe(None, None, start), ME, start, D),
            Decision::Free
        );
        let mut spec = held("", 0, Some(15));
        let seen = observe(None, Some(&spec), start);
        assert_eq!(decide(&seen, ME, start, D), Decision::Free);
        spec.holder_identity = None;
        let seen = observe(None, Some(&spec), start);
        assert_eq!(decide(&seen, ME, start, D), Decision::Free);
    }

    #[test]
    fn our_own_lease_is_ours_even_when_unchanged_for_long() {
        let start = Instant::now();
        let seen = observe(None, Some(&held(ME, 0, Some(15))), start);
        assert_eq!(decide(&seen, ME, after(start, 5), D), Decision::Ours);
        assert_eq!(decide(&seen, ME, after(start, 100), D), Decision::Ours);
    }

    #[test]
    fn another_holder_is_respected_for_a_lease_duration_after_its_record_last_changed() {
        let start = Instant::now();
        let seen = observe(None, Some(&held("other", 10, Some(15))), start);
        assert_eq!(decide(&seen, ME, after(start, 14), D), held_by_other(1));
        assert_eq!(decide(&seen, ME, after(start, 15), D), Decision::Free);
        assert_eq!(decide(&seen, ME, after(start, 40), D), Decision::Free);
    }

    #[test]
    fn the_same_record_keeps_its_first_sighting_and_a_changed_one_starts_over() {
        let start = Instant::now();
        let first = observe(None, Some(&held("other", 10, Some(15))), start);
        let again = observe(
            Some(first.clone()),
            Some(&held("other", 10, Some(15))),
            after(start, 10),
        );
        assert_eq!(again, first, "an unchanged record is not news");
        assert_eq!(decide(&again, ME, after(start, 15), D), Decision::Free);

        let renewed = observe(
            Some(again),
            Some(&held("other", 15, Some(15))),
            after(start, 12),
        );
        assert_eq!(decide(&renewed, ME, after(start, 20), D), held_by_other(7));
        assert_eq!(decide(&renewed, ME, after(start, 27), D), Decision::Free);
    }

    #[test]
    fn a_first_sighting_counts_from_now_however_old_its_renew_time() {
        // A replica that has just started knows nothing of the holder's clock: it waits.
        let start = Instant::now();
        let seen = observe(None, Some(&held("other", -86_400, Some(15))), start);
        assert_eq!(decide(&seen, ME, start, D), held_by_other(15));
        assert_eq!(decide(&seen, ME, after(start, 15), D), Decision::Free);
    }

    #[test]
    fn a_holder_an_hour_behind_that_keeps_renewing_is_never_taken() {
        let start = Instant::now();
        let mut seen = None;
        for second in 0..60 {
            // Its clock says an hour ago; it renews every second all the same.
            let spec = held("other", second - 3600, Some(15));
            let now = after(start, second.unsigned_abs());
            let observed = observe(seen.take(), Some(&spec), now);
            assert_eq!(decide(&observed, ME, now, D), held_by_other(15), "{second}");
            seen = Some(observed);
        }
    }

    #[test]
    fn a_holder_an_hour_ahead_is_taken_a_lease_duration_after_it_stops_changing() {
        let start = Instant::now();
        let mut seen = None;
        for second in 0..5 {
            let spec = held("other", second + 3600, Some(15));
            seen = Some(observe(
                seen.take(),
                Some(&spec),
                after(start, second.unsigned_abs()),
            ));
        }
        // It stopped at its renewal of second 4; its renewTime still lies an hour ahead.
        let last = held("other", 4 + 3600, Some(15));
        let seen = observe(seen, Some(&last), after(start, 10));
        assert_eq!(decide(&seen, ME, after(start, 18), D), held_by_other(1));
        assert_eq!(decide(&seen, ME, after(start, 19), D), Decision::Free);
    }

    #[test]
    fn a_missing_duration_falls_back_to_ours() {
        let start = Instant::now();
        let ours = Duration::from_secs(30);
        for seconds in [None, Some(0), Some(-5)] {
            let seen = observe(None, Some(&held("other", 10, seconds)), start);
            assert_eq!(
                decide(&seen, ME, after(start, 29), ours),
                held_by_other(1),
                "{seconds:?}"
            );
            assert_eq!(decide(&seen, ME, after(start, 30), ours), Decision::Free);
        }
    }

    #[test]
    fn a_lease_without_any_time_still_waits_a_lease_duration() {
        let start = Instant::now();
        let mut spec = held("other", 10, Some(15));
        spec.renew_time = None;
        spec.acquire_time = None;
        let seen = observe(None, Some(&spec), start);
        assert_eq!(decide(&seen, ME, start, D), held_by_other(15));
        assert_eq!(decide(&seen, ME, after(start, 15), D), Decision::Free);
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
        let start = Instant::now();
        let seen = observe(None, Some(&spec), start);
        assert_eq!(decide(&seen, "other", start, D), Decision::Free);
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
