//! Prometheus metrics, all prefixed `fastconnect_`.
//!
//! Labels carry only endpoint names, status codes, phases and reasons: never a company, a key,
//! an OCID or an object name, so cardinality stays fixed and nothing secret can reach a scrape.
//! The one exception is opt-in: the traffic gauges (`--utilization-interval`) are per connection,
//! labelled with the resource's namespace and name and the connection id (none of them secret).

use std::{
    collections::HashMap,
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{consoleconnect::Endpoint, crd::Phase};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// The connection a traffic gauge describes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrafficKey {
    pub namespace: String,
    pub name: String,
    pub connection_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrafficLabels {
    namespace: String,
    name: String,
    connection_id: String,
    /// `in`: Console Connect's `rxAverage`; `out`: its `txAverage`.
    direction: &'static str,
}

impl TrafficLabels {
    fn both(key: &TrafficKey) -> [TrafficLabels; 2] {
        ["in", "out"].map(|direction| TrafficLabels {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            connection_id: key.connection_id.clone(),
            direction,
        })
    }
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_failures: Family<ReasonLabels, Counter>,
    reconcile_duration: Histogram,
    controller_errors: Counter,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<EndpointLabels, Histogram>,
    throttled: Counter,
    connections_ordered: Counter,
    duplicate_connections: Counter,
    phases: Family<PhaseLabels, Gauge>,
    time_to_ready: Histogram,
    time_in_phase: Family<PhaseLabels, Histogram>,
    time_in_phase_max: Family<PhaseLabels, Gauge>,
    traffic: Family<TrafficLabels, Gauge<f64, AtomicU64>>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fastconnect");
        let reconciles = Counter::default();
        let reconcile_failures = Family::<ReasonLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let controller_errors = Counter::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 12))
        });
        let throttled = Counter::default();
        let connections_ordered = Counter::default();
        let duplicate_connections = Counter::default();
        let phases = Family::<PhaseLabels, Gauge>::default();
        // From seconds (sandbox, instant approval) to days (a human approves at Support).
        let time_to_ready = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        // Up to about seven weeks: an approval can wait on people for a long time.
        let time_in_phase = Family::<PhaseLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 4.0, 12))
        });
        let time_in_phase_max = Family::<PhaseLabels, Gauge>::default();
        let traffic = Family::<TrafficLabels, Gauge<f64, AtomicU64>>::default();
        // 0 from the start: a replica counts as leader only once it reconciles.
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that ended in an error, by condition reason",
            reconcile_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile takes",
            reconcile_duration.clone(),
        );
        registry.register(
            "controller_errors",
            "Reconciles whose own status write failed",
            controller_errors.clone(),
        );
        registry.register(
            "consoleconnect_requests",
            "Console Connect API requests by endpoint and HTTP status code (\"none\" when no response)",
            requests.clone(),
        );
        registry.register(
            "consoleconnect_request_duration_seconds",
            "Console Connect API request latency by endpoint",
            request_duration.clone(),
        );
        registry.register(
            "consoleconnect_throttled",
            "Console Connect answers with HTTP 429",
            throttled.clone(),
        );
        registry.register(
            "connections_ordered",
            "Layer 2 connections ordered",
            connections_ordered.clone(),
        );
        registry.register(
            "duplicate_connections_found",
            "Resources found to have more than one live connection carrying their order",
            duplicate_connections.clone(),
        );
        registry.register(
            "connections",
            "FastConnectConnection resources by phase, as last reconciled by this process",
            phases.clone(),
        );
        registry.register(
            "time_to_ready_seconds",
            "Time from a resource's creation to its connection first observed ACTIVE",
            time_to_ready.clone(),
        );
        registry.register(
            "time_in_phase_seconds",
            "Time a resource spent in a phase, observed when it leaves the phase",
            time_in_phase.clone(),
        );
        registry.register(
            "time_in_phase_max_seconds",
            "The longest time any current resource has been in each phase (0: none in it)",
            time_in_phase_max.clone(),
        );
        registry.register(
            "connection_traffic_mbps",
            "Average traffic of a connection over the last --utilization-interval, in Mbps, as \
             Console Connect reports it (in: rxAverage, out: txAverage)",
            traffic.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the one that reconciles (it holds the leader election Lease, \
             or runs without leader election), 0 while it follows or has stopped",
            leader.clone(),
        );
        Self {
            time_to_ready,
            time_in_phase,
            time_in_phase_max,
            traffic,
            leader,
            registry,
            reconciles,
            reconcile_failures,
            reconcile_duration,
            controller_errors,
            requests,
            request_duration,
            throttled,
            connections_ordered,
            duplicate_connections,
            phases,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }

    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: self,
            started: Instant::now(),
        }
    }

    pub fn controller_error(&self) {
        self.controller_errors.inc();
    }

    pub fn connection_ordered(&self) {
        self.connections_ordered.inc();
    }

    pub fn duplicate_connections_found(&self) {
        self.duplicate_connections.inc();
    }

    /// Sets the resources-by-phase gauges, and the longest time in each phase, from the watched
    /// resources: each one's phase and how long it has been in it (`None`: not known, as for
    /// resources last written before `phaseSince` existed). Counting (rather than following
    /// transitions) stays right across restarts and deletions.
    pub fn set_phases(
        &self,
        resources: impl IntoIterator<Item = (Option<Phase>, Option<Duration>)>,
    ) {
        let mut counts: HashMap<&'static str, (i64, Duration)> = Phase::ALL
            .iter()
            .map(|p| (p.as_str(), (0, Duration::ZERO)))
            .collect();
        for (phase, time_in_phase) in resources {
            let (count, longest) = counts
                .entry(phase.map_or("None", Phase::as_str))
                .or_default();
            *count += 1;
            *longest = (*longest).max(time_in_phase.unwrap_or_default());
        }
        for (phase, (count, longest)) in counts {
            let labels = PhaseLabels { phase };
            self.phases.get_or_create(&labels).set(count);
            let seconds = i64::try_from(longest.as_secs()).unwrap_or(i64::MAX);
            self.time_in_phase_max.get_or_create(&labels).set(seconds);
        }
    }

    /// A resource left `phase` after `stayed`.
    pub fn left_phase(&self, phase: Phase, stayed: Duration) {
        let labels = PhaseLabels {
            phase: phase.as_str(),
        };
        self.time_in_phase
            .get_or_create(&labels)
            .observe(stayed.as_secs_f64());
    }

    /// Sets a connection's traffic gauges.
    pub fn set_traffic(&self, key: &TrafficKey, in_mbps: f64, out_mbps: f64) {
        let [inbound, outbound] = TrafficLabels::both(key);
        self.traffic.get_or_create(&inbound).set(in_mbps);
        self.traffic.get_or_create(&outbound).set(out_mbps);
    }

    /// Drops a connection's traffic gauges: it is gone, or nothing was measured.
    pub fn forget_traffic(&self, key: &TrafficKey) {
        for labels in TrafficLabels::both(key) {
            self.traffic.remove(&labels);
        }
    }

    /// Whether this replica is the one that reconciles. Summed over replicas it should be 1.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn became_ready(&self, since_creation: Duration) {
        self.time_to_ready.observe(since_creation.as_secs_f64());
    }

    /// Observer for the Console Connect client.
    pub fn observe_request(&self, endpoint: Endpoint, code: Option<u16>, took: Duration) {
        let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        if code == "429" {
            self.throttled.inc();
        }
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.as_str(),
                code,
            })
            .inc();
        self.request_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .observe(took.as_secs_f64());
    }
}

/// Measures one reconcile.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl ReconcileTimer<'_> {
    pub fn finish(self, failure: Option<&str>) {
        self.metrics
            .reconcile_duration
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(reason) = failure {
            self.metrics
                .reconcile_failures
                .get_or_create(&ReasonLabels {
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_gauge_starts_at_zero_and_follows_leadership() {
        let metrics = Metrics::new();
        let line = |metrics: &Metrics| {
            metrics
                .render()
                .unwrap()
                .lines()
                .find(|l| l.starts_with("fastconnect_leader "))
                .map(str::to_owned)
        };
        assert_eq!(line(&metrics).as_deref(), Some("fastconnect_leader 0"));
        metrics.set_leader(true);
        assert_eq!(line(&metrics).as_deref(), Some("fastconnect_leader 1"));
        metrics.set_leader(false);
        assert_eq!(line(&metrics).as_deref(), Some("fastconnect_leader 0"));
    }

    #[test]
    fn renders_prefixed_counters_with_labels() {
        let metrics = Metrics::new();
        metrics.observe_request(Endpoint::CreateLayer2, Some(200), Duration::from_millis(5));
        metrics.observe_request(
            Endpoint::SearchConnections,
            Some(429),
            Duration::from_millis(5),
        );
        metrics.reconcile_started().finish(Some("Throttled"));
        metrics.set_phases([
            (Some(Phase::Active), Some(Duration::from_secs(30))),
            (Some(Phase::Active), Some(Duration::from_secs(90))),
            (None, None),
        ]);
        metrics.left_phase(Phase::AwaitingApproval, Duration::from_secs(3));
        let text = metrics.render().unwrap();
        for expected in [
            "fastconnect_consoleconnect_requests_total{endpoint=\"create_layer2\",code=\"200\"} 1",
            "fastconnect_consoleconnect_throttled_total 1",
            "fastconnect_reconcile_failures_total{reason=\"Throttled\"} 1",
            "fastconnect_connections{phase=\"Active\"} 2",
            "fastconnect_connections{phase=\"Creating\"} 0",
            "fastconnect_time_in_phase_max_seconds{phase=\"Active\"} 90",
            "fastconnect_time_in_phase_max_seconds{phase=\"Creating\"} 0",
            "fastconnect_time_in_phase_seconds_bucket{le=\"4.0\",phase=\"AwaitingApproval\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }

    #[test]
    fn traffic_gauges_are_per_connection_and_go_away() {
        let metrics = Metrics::new();
        let key = TrafficKey {
            namespace: "net".into(),
            name: "hk".into(),
            connection_id: "c1".into(),
        };
        metrics.set_traffic(&key, 12.5, 3.0);
        let text = metrics.render().unwrap();
        for expected in [
            "fastconnect_connection_traffic_mbps{namespace=\"net\",name=\"hk\",connection_id=\"c1\",direction=\"in\"} 12.5",
            "fastconnect_connection_traffic_mbps{namespace=\"net\",name=\"hk\",connection_id=\"c1\",direction=\"out\"} 3.0",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        metrics.forget_traffic(&key);
        let text = metrics.render().unwrap();
        assert!(!text.contains("connection_id=\"c1\""), "{text}");
    }
}
