//! Shared, short-lived copies of Console Connect's lists, one per company and API key.
//!
//! The bill of API calls must not grow with the number of resources: every resource of a company
//! reads the same copy of the company's connections, ports and Oracle's metros, and concurrent
//! reconciles wait for one fetch instead of starting their own, and share its failure too.

use std::{
    future::Future,
    hash::{BuildHasher, Hash, RandomState},
    sync::Arc,
    time::{Duration, Instant},
};

use moka::{Entry, Expiry, future::Cache, policy::EvictionPolicy};

use crate::consoleconnect::{ApiKey, Connection, Error as ApiError, Metro, Port};

/// A list nobody has read for this long (or for the catalog TTL, if longer) is dropped: longer
/// than the poll intervals, so the lists in use stay.
const LIST_IDLE: Duration = Duration::from_secs(15 * 60);

/// Lists kept at most: a company and key has 16 (ports, metros and one search per status).
const LIST_CAPACITY: u64 = 16 * 1024;

/// The longest pause honoured: a `Retry-After` beyond it is more likely a broken header than a
/// plan, and it would overflow the clock if large enough.
const MAX_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// One value per key, fetched by one caller at a time.
///
/// moka runs the callers of a key one after the other (`and_upsert_with` holds a per-key lock
/// while its closure runs), so callers arriving during a fetch wait for it; it also drops keys
/// nobody reads. What a caller takes once its turn comes is decided here:
/// - the newest value fetched, if it is usable to this caller (fresh enough, holding what it
///   asks for);
/// - the error of the last fetch, if that fetch failed after this caller arrived: the caller
///   waited on it, and fetching again one caller after another would multiply a timeout by the
///   length of the queue. A caller arriving after the failure fetches again;
/// - otherwise a fetch of its own, whose outcome it leaves to the callers behind it.
///
/// moka's `try_get_with` shares an error the same way, but gives every waiter the value being
/// fetched whatever it asked for: a caller that needs a copy begun after some instant (see
/// [`Catalog::connections`]) would get an older one.
pub struct SingleFlight<K, V, E> {
    entries: Cache<K, Turn<V, E>>,
}

/// What a key holds after a caller's turn.
struct Turn<V, E> {
    /// What that caller was given: `and_upsert_with` hands back the entry it stored, so each
    /// caller reads its answer here.
    answer: Result<V, Arc<E>>,
    /// The newest value fetched, kept through failed fetches: a fetch for a fresher copy that
    /// fails must not take away the copy other callers can still use.
    newest: Option<V>,
    /// The last fetch's failure, until a fetch succeeds.
    failure: Option<Failure<E>>,
}

struct Failure<E> {
    at: Instant,
    error: Arc<E>,
}

// By hand: a derive would ask for `E: Clone`, and the error is shared through its `Arc`.
impl<V: Clone, E> Clone for Turn<V, E> {
    fn clone(&self) -> Self {
        Turn {
            answer: self.answer.clone(),
            newest: self.newest.clone(),
            failure: self.failure.clone(),
        }
    }
}

impl<E> Clone for Failure<E> {
    fn clone(&self) -> Self {
        Failure {
            at: self.at,
            error: Arc::clone(&self.error),
        }
    }
}

impl<V: Clone, E> Turn<V, E> {
    /// The turn of a caller that arrived at `arrived`, after `last`.
    async fn take<F, Fut>(
        last: Option<Turn<V, E>>,
        arrived: Instant,
        usable: impl FnOnce(&V) -> bool,
        fetch: F,
    ) -> Self
    where
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let (newest, failure) = last.map_or((None, None), |last| (last.newest, last.failure));
        let fits = newest.as_ref().is_some_and(usable);
        match (newest, failure) {
            (Some(value), failure) if fits => Turn::taking(value, failure),
            // It waited on this fetch: share the failure rather than repeat the fetch.
            (newest, Some(failure)) if failure.at >= arrived => Turn::sharing(newest, failure),
            (newest, _) => match fetch(newest.clone()).await {
                Ok(value) => Turn::taking(value, None),
                Err(error) => Turn::sharing(
                    newest,
                    Failure {
                        at: Instant::now(),
                        error: Arc::new(error),
                    },
                ),
            },
        }
    }

    fn taking(value: V, failure: Option<Failure<E>>) -> Self {
        Turn {
            answer: Ok(value.clone()),
            newest: Some(value),
            failure,
        }
    }

    fn sharing(newest: Option<V>, failure: Failure<E>) -> Self {
        Turn {
            answer: Err(Arc::clone(&failure.error)),
            newest,
            failure: Some(failure),
        }
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// At most `capacity` keys, each dropped once nobody has read it for `idle`.
    pub fn new(capacity: u64, idle: Duration) -> Self {
        let entries = Cache::builder()
            .max_capacity(capacity)
            .time_to_idle(idle)
            // LRU admits every new key; TinyLFU may refuse one, and the callers queued behind
            // its fetch would then find nothing and fetch again.
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { entries }
    }

    /// The newest value of `key` if it is `usable`, the error of a fetch that failed while
    /// this caller waited, else the outcome of `fetch`, which is given the newest value (usable
    /// or not) to build on.
    pub async fn get<U, F, Fut>(&self, key: K, usable: U, fetch: F) -> Result<V, Arc<E>>
    where
        U: FnOnce(&V) -> bool,
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let arrived = Instant::now();
        let turn = self
            .entries
            .entry(key)
            .and_upsert_with(|last| Turn::take(last.map(Entry::into_value), arrived, usable, fetch))
            .await;
        turn.into_value().answer
    }

    /// Drops what the fetches of `key` left, so that the next caller fetches.
    pub async fn forget(&self, key: &K) {
        self.entries.invalidate(key).await;
    }
}

/// Which copy: a company as seen with one API key. Different keys never share a copy, so a
/// refused key cannot read what another key fetched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    company: String,
    key_fingerprint: u64,
}

/// A list as fetched at one moment.
#[derive(Debug)]
pub struct Snapshot<T> {
    /// When the fetch began: the list shows nothing older.
    pub fetched_at: Instant,
    pub items: Vec<T>,
}

/// The copies of one kind of list.
type Lists<K, T> = SingleFlight<K, Arc<Snapshot<T>>, ApiError>;

/// Pauses per scope after the service said to slow down: one 429 pauses every resource of that
/// company until `Retry-After`, instead of each resource finding out on its own. A pause is an
/// entry that moka drops when it ends, so pauses over leave nothing behind.
struct Throttle {
    ends: Cache<Scope, Instant>,
}

/// Drops a pause when it ends.
struct AtTheEnd;

impl Expiry<Scope, Instant> for AtTheEnd {
    fn expire_after_create(&self, _: &Scope, end: &Instant, now: Instant) -> Option<Duration> {
        Some(end.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &Scope,
        end: &Instant,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(end.saturating_duration_since(now))
    }
}

impl Throttle {
    fn new() -> Self {
        // No capacity bound: evicting a pause early would let calls through during it.
        let ends = Cache::builder().expire_after(AtTheEnd).build();
        Self { ends }
    }

    async fn remaining(&self, scope: &Scope) -> Option<Duration> {
        let end = self.ends.get(scope).await?;
        end.checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// `Throttled` with what is left of the pause, if the scope is paused.
    async fn check(&self, scope: &Scope) -> Result<(), ApiError> {
        match self.remaining(scope).await {
            Some(remaining) => Err(ApiError::Throttled {
                retry_after: Some(remaining),
            }),
            None => Ok(()),
        }
    }

    /// Pauses `scope` for `pause`, or longer if it is paused longer already.
    async fn pause(&self, scope: &Scope, pause: Duration) {
        let end = Instant::now() + pause.min(MAX_PAUSE);
        self.ends
            .entry(scope.clone())
            .and_upsert_with(|current| async move {
                current.map_or(end, |current| end.max(current.into_value()))
            })
            .await;
    }

    /// A 429 shared with callers queued behind it says what is left of the pause, not the
    /// whole of it.
    async fn with_remaining_pause(&self, scope: &Scope, error: ApiError) -> ApiError {
        if matches!(error, ApiError::Throttled { .. })
            && let Some(remaining) = self.remaining(scope).await
        {
            return ApiError::Throttled {
                retry_after: Some(remaining),
            };
        }
        error
    }
}

/// The caches of the whole controller.
pub struct Catalog {
    hasher: RandomState,
    catalog_ttl: Duration,
    ports: Lists<Scope, Port>,
    metros: Lists<Scope, Metro>,
    /// One search per status: the search's `status` filter is required.
    connections: Lists<(Scope, String), Connection>,
    throttle: Throttle,
}

impl Catalog {
    pub fn new(catalog_ttl: Duration) -> Self {
        let idle = catalog_ttl.max(LIST_IDLE);
        Self {
            hasher: RandomState::new(),
            catalog_ttl,
            ports: SingleFlight::new(LIST_CAPACITY, idle),
            metros: SingleFlight::new(LIST_CAPACITY, idle),
            connections: SingleFlight::new(LIST_CAPACITY, idle),
            throttle: Throttle::new(),
        }
    }

    /// The scope of a company and key. The fingerprint uses this process's random hash keys and
    /// never leaves memory.
    pub fn scope(&self, company: &str, key: &ApiKey) -> Scope {
        Scope {
            company: company.to_owned(),
            key_fingerprint: self.hasher.hash_one(key.expose()),
        }
    }

    pub async fn ports<F, Fut>(
        &self,
        scope: &Scope,
        fetch: F,
    ) -> Result<Arc<Snapshot<Port>>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Port>, ApiError>>,
    {
        let fresh_after = ago(self.catalog_ttl);
        self.list(&self.ports, scope, scope.clone(), fresh_after, fetch)
            .await
    }

    pub async fn metros<F, Fut>(
        &self,
        scope: &Scope,
        fetch: F,
    ) -> Result<Arc<Snapshot<Metro>>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Metro>, ApiError>>,
    {
        let fresh_after = ago(self.catalog_ttl);
        self.list(&self.metros, scope, scope.clone(), fresh_after, fetch)
            .await
    }

    /// The company's connections with `status`, as searched at or after `fresh_after`.
    pub async fn connections<F, Fut>(
        &self,
        scope: &Scope,
        status: &str,
        fresh_after: Instant,
        fetch: F,
    ) -> Result<Arc<Snapshot<Connection>>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Connection>, ApiError>>,
    {
        let key = (scope.clone(), status.to_owned());
        self.list(&self.connections, scope, key, fresh_after, fetch)
            .await
    }

    /// The copy of `key` fetched at or after `fresh_after`, else a new one: one fetch for every
    /// caller waiting, whose error they all get. A copy older than a caller asks for is fetched
    /// again, once for all the callers who ask for it. While the scope is paused, a copy that
    /// will do is still handed out (it costs no call) and a fetch is refused.
    async fn list<K, T, F, Fut>(
        &self,
        lists: &Lists<K, T>,
        scope: &Scope,
        key: K,
        fresh_after: Instant,
        fetch: F,
    ) -> Result<Arc<Snapshot<T>>, ApiError>
    where
        K: Hash + Eq + Send + Sync + 'static,
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<T>, ApiError>>,
    {
        let fresh = |copy: &Arc<Snapshot<T>>| copy.fetched_at >= fresh_after;
        let copy = lists.get(key, fresh, |_| self.snapshot(scope, fetch)).await;
        match copy {
            Ok(copy) => Ok(copy),
            Err(shared) => Err(self
                .throttle
                .with_remaining_pause(scope, Arc::unwrap_or_clone(shared))
                .await),
        }
    }

    /// Fetches a list within the scope's pause: a caller whose turn comes during a pause must
    /// not call either.
    async fn snapshot<T, Fut>(
        &self,
        scope: &Scope,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Arc<Snapshot<T>>, ApiError>
    where
        Fut: Future<Output = Result<Vec<T>, ApiError>>,
    {
        let fetched_at = Instant::now();
        let items = self.guarded(scope, async move { fetch().await }).await?;
        Ok(Arc::new(Snapshot { fetched_at, items }))
    }

    /// Runs a call unless the scope is paused, and pauses the scope when the call is throttled.
    pub async fn guarded<T>(
        &self,
        scope: &Scope,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        self.throttle.check(scope).await?;
        let result = call.await;
        if let Err(ApiError::Throttled {
            retry_after: Some(pause),
        }) = &result
        {
            self.throttle.pause(scope, *pause).await;
        }
        result
    }
}

/// The monotonic instant of a wall-clock time in the past (now, if it is in the future).
pub fn instant_of(at: jiff::Timestamp) -> Instant {
    let age = jiff::Timestamp::now().duration_since(at);
    ago(Duration::try_from(age).unwrap_or(Duration::ZERO))
}

/// The instant `age` ago, or the process start if that is earlier than the clock allows.
pub fn ago(age: Duration) -> Instant {
    let now = Instant::now();
    now.checked_sub(age).unwrap_or(now)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Semaphore;

    /// Polls each future once, so that every caller has arrived and the first one is held in
    /// its fetch by `gate`, then lets the fetches go and awaits them all. Callers thus wait on
    /// a fetch without any sleep deciding who comes when.
    pub(crate) async fn queued_then_released<F: Future>(
        callers: impl IntoIterator<Item = F>,
        gate: &Semaphore,
    ) -> Vec<F::Output> {
        let mut callers: Vec<_> = callers.into_iter().map(Box::pin).collect();
        for caller in &mut callers {
            assert!(
                futures::poll!(caller.as_mut()).is_pending(),
                "a caller finished while the fetch was held"
            );
        }
        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        futures::future::join_all(callers).await
    }

    /// A fetch held until the gate opens, counting its calls.
    pub(crate) async fn held<T>(gate: &Semaphore, calls: &AtomicUsize, result: T) -> T {
        calls.fetch_add(1, Ordering::SeqCst);
        let _open = gate.acquire().await.unwrap();
        result
    }

    /// The first instant after `t`, so that a demand made now is newer than anything begun by
    /// then, however coarse the clock.
    fn strictly_after(t: Instant) -> Instant {
        loop {
            let now = Instant::now();
            if now > t {
                return now;
            }
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(Duration::from_secs(60))
    }

    fn unavailable() -> ApiError {
        ApiError::Server {
            status: 503,
            message: "down".into(),
        }
    }

    fn throttled(seconds: u64) -> ApiError {
        ApiError::Throttled {
            retry_after: Some(Duration::from_secs(seconds)),
        }
    }

    fn is_throttled_for_about(result: &Result<impl Sized, ApiError>, seconds: u64) -> bool {
        let most = Duration::from_secs(seconds);
        matches!(result, Err(ApiError::Throttled { retry_after: Some(d) })
            if *d <= most && *d > most - Duration::from_secs(5))
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fetch() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let (gate, calls) = (Semaphore::new(0), AtomicUsize::new(0));
        let fetch = || held(&gate, &calls, Ok(Vec::new()));
        let reads = (0..20)
            .map(|_| catalog.connections(&scope, "ACTIVE", ago(Duration::from_secs(5)), fetch));
        let results = queued_then_released(reads, &gate).await;
        let first = results[0].as_ref().unwrap();
        assert!(
            results
                .iter()
                .all(|r| Arc::ptr_eq(r.as_ref().unwrap(), first))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_shared_by_everyone_waiting_on_it() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let (gate, calls) = (Semaphore::new(0), AtomicUsize::new(0));
        let fetch = || held(&gate, &calls, Err(unavailable()));
        let reads = (0..32).map(|_| catalog.connections(&scope, "ACTIVE", Instant::now(), fetch));
        let results = queued_then_released(reads, &gate).await;
        assert_eq!(results.len(), 32);
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().err() == Some(&unavailable()))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_for_later_callers() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let calls = AtomicUsize::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<Vec<Port>, _>(unavailable())
        };
        assert!(catalog.ports(&scope, failing).await.is_err());
        let working = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        assert!(catalog.ports(&scope, working).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_of_a_fresher_copy_leaves_the_older_one_to_whom_it_suits() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let calls = AtomicUsize::new(0);
        let working = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(unavailable())
        };
        let minute_ago = ago(Duration::from_secs(60));
        let search = |fresh_after, fetch| catalog.connections(&scope, "ACTIVE", fresh_after, fetch);
        let copy = search(minute_ago, working).await.unwrap();
        let fresher = strictly_after(copy.fetched_at);
        assert!(
            catalog
                .connections(&scope, "ACTIVE", fresher, failing)
                .await
                .is_err()
        );
        let again = search(minute_ago, working).await.unwrap();
        assert!(Arc::ptr_eq(&copy, &again));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_newer_copy_is_fetched_when_asked_for() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        catalog
            .connections(&scope, "ACTIVE", ago(Duration::from_secs(5)), fetch)
            .await
            .unwrap();
        catalog
            .connections(&scope, "ACTIVE", Instant::now(), fetch)
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn callers_asking_for_newer_than_the_fetch_under_way_share_one_more() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let (gate, calls) = (Semaphore::new(0), AtomicUsize::new(0));
        let fetch = || held(&gate, &calls, Ok(Vec::new()));
        let mut first =
            Box::pin(catalog.connections(&scope, "ACTIVE", ago(Duration::from_secs(5)), fetch));
        assert!(futures::poll!(first.as_mut()).is_pending());
        let demand = strictly_after(Instant::now());
        let mut newer: Vec<_> = (0..5)
            .map(|_| Box::pin(catalog.connections(&scope, "ACTIVE", demand, fetch)))
            .collect();
        for caller in &mut newer {
            assert!(futures::poll!(caller.as_mut()).is_pending());
        }
        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        let old = first.await.unwrap();
        assert!(old.fetched_at < demand);
        let results = futures::future::join_all(newer).await;
        let new = results[0].as_ref().unwrap();
        assert!(new.fetched_at >= demand);
        assert!(
            results
                .iter()
                .all(|r| Arc::ptr_eq(r.as_ref().unwrap(), new))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn keys_do_not_share_copies() {
        let catalog = catalog();
        let good = catalog.scope("acme", &ApiKey::new("good"));
        let other = catalog.scope("acme", &ApiKey::new("other"));
        assert_ne!(good, other);
        assert_eq!(good, catalog.scope("acme", &ApiKey::new("good")));
    }

    #[tokio::test]
    async fn a_throttled_scope_is_paused_without_calling() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let calls = AtomicUsize::new(0);
        let first = catalog
            .guarded(&scope, async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(throttled(30))
            })
            .await;
        assert!(first.is_err());
        let paused = catalog
            .guarded(&scope, async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(is_throttled_for_about(&paused, 30), "{paused:?}");
        let listed = catalog
            .ports(&scope, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Vec::new())
            })
            .await;
        assert!(is_throttled_for_about(&listed, 30), "{listed:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_copy_that_will_do_is_still_handed_out_during_a_pause() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        let minute_ago = ago(Duration::from_secs(60));
        let copy = catalog.connections(&scope, "ACTIVE", minute_ago, fetch);
        let copy = copy.await.unwrap();
        let pause = catalog.guarded(&scope, async { Err::<(), _>(throttled(30)) });
        assert!(pause.await.is_err());
        let again = catalog.connections(&scope, "ACTIVE", minute_ago, fetch);
        assert!(Arc::ptr_eq(&copy, &again.await.unwrap()));
        let fresher = catalog.connections(&scope, "ACTIVE", Instant::now(), fetch);
        let fresher = fresher.await;
        assert!(is_throttled_for_about(&fresher, 30), "{fresher:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_429_during_a_fetch_throttles_everyone_queued_on_it() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let (gate, calls) = (Semaphore::new(0), AtomicUsize::new(0));
        let fetch = || held(&gate, &calls, Err(throttled(30)));
        let reads = (0..32).map(|_| catalog.connections(&scope, "ACTIVE", Instant::now(), fetch));
        let results = queued_then_released(reads, &gate).await;
        assert!(results.iter().all(|r| is_throttled_for_about(r, 30)));
        let later = catalog
            .metros(&scope, || held(&gate, &calls, Ok(Vec::new())))
            .await;
        assert!(is_throttled_for_about(&later, 30), "{later:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn callers_whose_turn_comes_during_a_pause_do_not_call() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let (gate, calls) = (Semaphore::new(0), AtomicUsize::new(0));
        let fetch = || held(&gate, &calls, Ok(Vec::new()));
        let mut first =
            Box::pin(catalog.connections(&scope, "PENDING", ago(Duration::from_secs(5)), fetch));
        assert!(futures::poll!(first.as_mut()).is_pending());
        // These need a search begun after the one under way, so each would fetch in turn...
        let demand = strictly_after(Instant::now());
        let mut queued: Vec<_> = (0..5)
            .map(|_| Box::pin(catalog.connections(&scope, "PENDING", demand, fetch)))
            .collect();
        for caller in &mut queued {
            assert!(futures::poll!(caller.as_mut()).is_pending());
        }
        // ...but another call of the company is throttled meanwhile.
        let other = catalog.guarded(&scope, async { Err::<(), _>(throttled(30)) });
        assert!(other.await.is_err());
        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        assert!(first.await.is_ok(), "the fetch under way was already sent");
        for result in futures::future::join_all(queued).await {
            assert!(is_throttled_for_about(&result, 30), "{result:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_longer_pause_is_not_shortened() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        for seconds in [60, 10] {
            let pause = Duration::from_secs(seconds);
            catalog.throttle.pause(&scope, pause).await;
        }
        let paused = catalog.guarded(&scope, async { Ok(()) }).await;
        assert!(is_throttled_for_about(&paused, 60), "{paused:?}");
    }

    #[tokio::test]
    async fn a_pause_beyond_the_clock_is_capped() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let call = async {
            Err::<(), _>(ApiError::Throttled {
                retry_after: Some(Duration::MAX),
            })
        };
        assert!(catalog.guarded(&scope, call).await.is_err());
        let paused = catalog.guarded(&scope, async { Ok(()) }).await;
        assert!(
            is_throttled_for_about(&paused, MAX_PAUSE.as_secs()),
            "{paused:?}"
        );
    }
}
