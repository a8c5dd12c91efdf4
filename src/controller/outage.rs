//! Resources waiting out an outage of the Kubernetes API server.
//!
//! A reconcile that fails because the API server did not answer backs off like any other, and
//! its delay doubles with each failure up to `--backoff-max`: after a 30 s outage a resource that
//! failed six times waits minutes for its next turn although the API server answers again. That
//! backoff protects Console Connect from retries, which an outage of our own API server does not
//! call for; so such resources are parked here, and every status write that gets through releases
//! [`RELEASED_PER_ANSWER`] of them at once. Releasing a few per success, never all at once, keeps
//! a half-working API server from a stampede: released resources that fail again are parked
//! again and release nobody, and the count in flight grows only as writes succeed. When nothing
//! gets written at all, one parked resource a few seconds tries its luck ([`Outage::probe`]).

use std::{collections::HashSet, sync::Mutex, time::Duration};

use futures::{Stream, stream};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::broadcast;

use crate::crd::FastConnectConnection;

/// Resources released by each status write that gets through.
const RELEASED_PER_ANSWER: usize = 2;

/// Releases not yet taken by the controllers: more than the controllers' concurrency, so that a
/// burst of releases is not lost; one that is lost only waits for its own backoff.
const RELEASE_BUFFER: usize = 1024;

type Ref = ObjectRef<FastConnectConnection>;

pub struct Outage {
    parked: Mutex<HashSet<Ref>>,
    released: broadcast::Sender<Ref>,
}

impl Default for Outage {
    fn default() -> Self {
        Self {
            parked: Mutex::new(HashSet::new()),
            released: broadcast::channel(RELEASE_BUFFER).0,
        }
    }
}

impl Outage {
    /// Records how a reconcile of `fcc` ended: `api_down` when the API server did not answer.
    pub fn settle(&self, fcc: Ref, api_down: bool) {
        let mut parked = self.lock();
        if api_down {
            parked.insert(fcc);
        } else {
            parked.remove(&fcc);
        }
    }

    /// A write reached the API server: release a few parked resources.
    pub fn answered(&self) {
        self.release(RELEASED_PER_ANSWER);
    }

    /// Releases one parked resource every `every`: when every resource is parked, no write gets
    /// through to release the others, so one of them tries whether the API server is back.
    pub async fn probe(&self, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.release(1);
        }
    }

    fn release(&self, count: usize) {
        let released: Vec<Ref> = {
            let mut parked = self.lock();
            let picked: Vec<Ref> = parked.iter().take(count).cloned().collect();
            for fcc in &picked {
                parked.remove(fcc);
            }
            picked
        };
        for fcc in released {
            // No receiver only before the controllers start; the resource keeps its backoff.
            let _ = self.released.send(fcc);
        }
    }

    /// The released resources of one namespace (`None`: every namespace), for
    /// `Controller::reconcile_on`.
    pub fn releases(&self, namespace: Option<String>) -> impl Stream<Item = Ref> + Send + use<> {
        stream::unfold(self.released.subscribe(), move |mut rx| {
            let namespace = namespace.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(fcc) if namespace.is_none() || fcc.namespace == namespace => {
                            return Some((fcc, rx));
                        }
                        // Another namespace's, or missed in a burst (its own backoff still runs).
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        })
    }

    #[cfg(test)]
    fn parked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Ref>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn fcc(namespace: &str, name: &str) -> Ref {
        Ref::new(name).within(namespace)
    }

    #[tokio::test]
    async fn each_answer_releases_a_few_to_their_namespace_only() {
        let outage = Outage::default();
        let mut net = Box::pin(outage.releases(Some("net".into())));
        let mut all = Box::pin(outage.releases(None));
        for name in ["a", "b", "c"] {
            outage.settle(fcc("net", name), true);
        }
        outage.settle(fcc("other", "d"), true);
        assert_eq!(outage.parked(), 4);

        outage.answered();
        assert_eq!(outage.parked(), 4 - RELEASED_PER_ANSWER);
        outage.answered();
        outage.answered();
        assert_eq!(outage.parked(), 0);

        let mut seen_by_all = Vec::new();
        for _ in 0..4 {
            seen_by_all.push(all.next().await.unwrap().name);
        }
        seen_by_all.sort();
        assert_eq!(seen_by_all, ["a", "b", "c", "d"]);
        let mut seen_by_net = Vec::new();
        for _ in 0..3 {
            seen_by_net.push(net.next().await.unwrap().name);
        }
        seen_by_net.sort();
        assert_eq!(seen_by_net, ["a", "b", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_releases_one_at_a_time() {
        let outage = std::sync::Arc::new(Outage::default());
        let mut all = Box::pin(outage.releases(None));
        for name in ["a", "b", "c"] {
            outage.settle(fcc("net", name), true);
        }
        let probing = tokio::spawn({
            let outage = outage.clone();
            async move { outage.probe(Duration::from_secs(5)).await }
        });
        all.next().await.unwrap();
        assert_eq!(outage.parked(), 2, "the first probe at once");
        let before = tokio::time::Instant::now();
        all.next().await.unwrap();
        assert_eq!(outage.parked(), 1);
        assert!(
            before.elapsed() >= Duration::from_secs(5),
            "one per interval"
        );
        probing.abort();
    }

    #[test]
    fn a_reconcile_that_reached_the_api_server_is_no_longer_parked() {
        let outage = Outage::default();
        outage.settle(fcc("net", "a"), true);
        outage.settle(fcc("net", "a"), false);
        assert_eq!(outage.parked(), 0);
        // Nothing parked: an answer releases nothing.
        outage.answered();
        assert_eq!(outage.parked(), 0);
    }
}
