//! Shared, short-lived copies of Console Connect's lists, one per company and API key.
//!
//! The bill of API calls must not grow with the number of resources: every resource of a company
//! reads the same copy of the company's connections, ports and Oracle's metros, and concurrent
//! reconciles wait for one fetch instead of starting their own.

use std::{
    collections::HashMap,
    future::Future,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::consoleconnect::{ApiKey, Connection, Error as ApiError, Metro, Port};

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
    pub fetched_at: Instant,
    pub items: Vec<T>,
}

type Slot<T> = Arc<tokio::sync::Mutex<Option<Arc<Snapshot<T>>>>>;

/// One list per key, fetched at most once per freshness window.
struct ListCache<T, K = Scope> {
    slots: Mutex<HashMap<K, Slot<T>>>,
}

impl<T, K> Default for ListCache<T, K> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T, K: Clone + Eq + std::hash::Hash> ListCache<T, K> {
    fn slot(&self, scope: &K) -> Slot<T> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(scope.clone()).or_default().clone()
    }

    /// The copy for `scope` if it was fetched at or after `fresh_after`, else a new one. Callers
    /// arriving during a fetch wait for it and share its result.
    async fn get<F, Fut>(
        &self,
        scope: &K,
        fresh_after: Instant,
        fetch: F,
    ) -> Result<Arc<Snapshot<T>>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<T>, ApiError>>,
    {
        let slot = self.slot(scope);
        let mut current = slot.lock().await;
        if let Some(snapshot) = current.as_ref()
            && snapshot.fetched_at >= fresh_after
        {
            return Ok(snapshot.clone());
        }
        let started = Instant::now();
        let items = fetch().await?;
        let snapshot = Arc::new(Snapshot {
            fetched_at: started,
            items,
        });
        *current = Some(snapshot.clone());
        Ok(snapshot)
    }
}

/// Gates calls per scope after the service said to slow down: one 429 pauses every resource of
/// that company until `Retry-After`, instead of each resource finding out on its own.
#[derive(Default)]
struct Throttle {
    until: Mutex<HashMap<Scope, Instant>>,
}

impl Throttle {
    fn remaining(&self, scope: &Scope) -> Option<Duration> {
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until
            .get(scope)
            .and_then(|t| t.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    fn pause(&self, scope: &Scope, pause: Duration) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let end = Instant::now() + pause;
        let entry = until.entry(scope.clone()).or_insert(end);
        *entry = (*entry).max(end);
    }
}

/// The caches of the whole controller.
pub struct Catalog {
    hasher: RandomState,
    catalog_ttl: Duration,
    ports: ListCache<Port>,
    metros: ListCache<Metro>,
    /// One search per status: the search's `status` filter is required.
    connections: ListCache<Connection, (Scope, String)>,
    throttle: Throttle,
}

impl Catalog {
    pub fn new(catalog_ttl: Duration) -> Self {
        Self {
            hasher: RandomState::new(),
            catalog_ttl,
            ports: ListCache::default(),
            metros: ListCache::default(),
            connections: ListCache::default(),
            throttle: Throttle::default(),
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
        self.guarded(scope, self.ports.get(scope, fresh_after, fetch))
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
        self.guarded(scope, self.metros.get(scope, fresh_after, fetch))
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
        self.guarded(scope, self.connections.get(&key, fresh_after, fetch))
            .await
    }

    /// Runs a call unless the scope is paused, and pauses the scope when the call is throttled.
    pub async fn guarded<T>(
        &self,
        scope: &Scope,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        if let Some(remaining) = self.throttle.remaining(scope) {
            return Err(ApiError::Throttled {
                retry_after: Some(remaining),
            });
        }
        let result = call.await;
        if let Err(ApiError::Throttled {
            retry_after: Some(pause),
        }) = &result
        {
            self.throttle.pause(scope, *pause);
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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn catalog() -> Catalog {
        Catalog::new(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fetch() {
        let catalog = catalog();
        let scope = catalog.scope("acme", &ApiKey::new("k"));
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(Vec::new())
        };
        let reads = (0..20)
            .map(|_| catalog.connections(&scope, "ACTIVE", ago(Duration::from_secs(5)), fetch));
        for result in futures::future::join_all(reads).await {
            result.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
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
        let throttled = catalog
            .guarded(&scope, async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(ApiError::Throttled {
                    retry_after: Some(Duration::from_secs(30)),
                })
            })
            .await;
        assert!(throttled.is_err());
        let paused = catalog
            .guarded(&scope, async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(
            matches!(paused, Err(ApiError::Throttled { retry_after: Some(d) }) if d > Duration::from_secs(25))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
