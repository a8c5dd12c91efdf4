//! Per-resource exponential backoff with jitter.
//!
//! kube-runtime requeues at the time we return; the growing delay per resource is ours to keep.
//! Jitter spreads retries of many resources that failed together (one outage, one 429) so they
//! do not return together.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use rand::Rng;

pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before the next attempt after one more failure of `key`: doubling from `min`
    /// up to `max`, jittered into its upper half, and never shorter than `at_least`.
    pub fn next(&self, key: &str, at_least: Option<Duration>) -> Duration {
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let count = failures.entry(key.to_owned()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self.min.saturating_mul(1 << exponent).min(self.max);
        let delay = rand::rng().random_range(ceiling / 2..=ceiling);
        delay.max(at_least.unwrap_or_default())
    }

    pub fn reset(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

/// `cadence` give or take a tenth, so that polls of many resources spread out.
pub fn jitter(cadence: Duration) -> Duration {
    let spread = cadence / 10;
    rand::rng().random_range(cadence - spread..=cadence + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_with_jitter() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next("a", None)).collect();
        let ceilings = [1, 2, 4, 8, 8, 8].map(Duration::from_secs);
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            assert!(
                *delay >= ceiling / 2 && *delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
        }
    }

    #[test]
    fn honours_retry_after_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(
            backoff.next("a", Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        backoff.next("a", None);
        backoff.reset("a");
        assert!(backoff.next("a", None) <= Duration::from_secs(1));
    }

    #[test]
    fn keys_are_independent() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(64));
        for _ in 0..5 {
            backoff.next("a", None);
        }
        assert!(backoff.next("b", None) <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(60));
            assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66));
        }
    }
}
