//! Opt-in traffic gauges (`--utilization-interval`): every interval, one utilization call per
//! Active connection, through the same Secret cache, rate limit and throttle pauses as the
//! reconciles. A connection whose traffic cannot be read loses its gauges until the next read
//! succeeds: a gap is honest, a stale value is not.

use std::{collections::BTreeSet, time::Duration};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use kube::{ResourceExt, runtime::reflector::Store};
use tracing::debug;

use crate::{
    consoleconnect::Resolution,
    crd::{FastConnectConnection, Phase},
    metrics::TrafficKey,
};

use super::{Context, inputs::Secrets, remote::Remote};

/// Console Connect reports whole minutes, and the newest may not be reported yet: a window
/// shorter than this could hold no bucket at all.
const MIN_WINDOW: Duration = Duration::from_secs(300);

/// Traffic reads in flight at once; each still waits for its company's rate limit.
const PARALLEL_READS: usize = 4;

/// Reads every Active connection's traffic each `every`, forever.
pub(super) async fn poll(ctx: &Context, stores: &[Store<FastConnectConnection>], every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut exported = BTreeSet::new();
    loop {
        ticks.tick().await;
        let measured: Vec<_> = stores
            .iter()
            .flat_map(|store| store.state())
            .filter(|fcc| is_measured(fcc))
            .collect();
        let window = window(every, Timestamp::now());
        let read: BTreeSet<TrafficKey> = futures::stream::iter(&measured)
            .map(|fcc| read_one(ctx, fcc, window))
            .buffer_unordered(PARALLEL_READS)
            .filter_map(|key| async move { key })
            .collect()
            .await;
        for gone in exported.difference(&read) {
            ctx.metrics.forget_traffic(gone);
        }
        exported = read;
    }
}

/// Active, with a connection, and neither paused (no calls at all) nor being deleted.
fn is_measured(fcc: &FastConnectConnection) -> bool {
    let status = fcc.status.as_ref();
    status.and_then(|s| s.phase) == Some(Phase::Active)
        && status.is_some_and(|s| s.connection_id.is_some())
        && !fcc.is_paused()
        && fcc.metadata.deletion_timestamp.is_none()
}

/// The window ending at `now` that the gauges average over, and the finest resolution Console
/// Connect serves for it without a huge answer.
fn window(every: Duration, now: Timestamp) -> ((Timestamp, Timestamp), Resolution) {
    let span = every.max(MIN_WINDOW);
    let resolution = match span.as_secs() / 60 {
        0..=1440 => Resolution::Minute,
        1441..=86_400 => Resolution::Hour,
        _ => Resolution::Day,
    };
    let span = SignedDuration::try_from(span).unwrap_or(SignedDuration::MAX);
    let start = now.checked_sub(span).unwrap_or(Timestamp::UNIX_EPOCH);
    ((start, now), resolution)
}

/// Reads one connection's traffic into its gauges; `Some`: the gauges it now has. A connection
/// without a reading keeps none: the pass drops every gauge it did not set.
async fn read_one(
    ctx: &Context,
    fcc: &FastConnectConnection,
    (window, resolution): ((Timestamp, Timestamp), Resolution),
) -> Option<TrafficKey> {
    let id = fcc.status.as_ref()?.connection_id.clone()?;
    let key = TrafficKey {
        namespace: fcc.namespace().unwrap_or_default(),
        name: fcc.name_any(),
        connection_id: id,
    };
    let spec = &fcc.spec;
    let secrets = Secrets::new(ctx.kube.clone(), &key.namespace, &ctx.secrets);
    let api_key = match secrets.api_key(&spec.credentials.api_key_secret_ref).await {
        Ok(api_key) => api_key,
        Err(error) => {
            debug!(namespace = %key.namespace, name = %key.name, %error, "traffic not read");
            return None;
        }
    };
    let remote = Remote::new(ctx, &spec.company_username, &api_key);
    match remote.traffic(&key.connection_id, window, resolution).await {
        Ok(Some(traffic)) => {
            ctx.metrics
                .set_traffic(&key, traffic.rx_mbps, traffic.tx_mbps);
            Some(key)
        }
        Ok(None) => None,
        Err(error) => {
            debug!(namespace = %key.namespace, name = %key.name, %error, "traffic not read");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_spans_the_interval_but_at_least_five_minutes() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let ((start, end), resolution) = window(Duration::from_secs(60), now);
        assert_eq!(end, now);
        assert_eq!(now.duration_since(start).as_secs(), 300);
        assert_eq!(resolution, Resolution::Minute);
        let ((start, _), resolution) = window(Duration::from_secs(900), now);
        assert_eq!(now.duration_since(start).as_secs(), 900);
        assert_eq!(resolution, Resolution::Minute);
        let (_, resolution) = window(Duration::from_secs(2 * 86_400), now);
        assert_eq!(
            resolution,
            Resolution::Hour,
            "2 days of minutes is too many buckets"
        );
        let (_, resolution) = window(Duration::from_secs(90 * 86_400), now);
        assert_eq!(resolution, Resolution::Day);
    }

    #[test]
    fn only_active_unpaused_connections_are_measured() {
        let mut fcc: FastConnectConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": {"name": "hk", "namespace": "net"},
            "spec": {"companyUsername": "acme",
                "credentials": {"apiKeySecretRef": {"name": "a"}, "oracleOcidSecretRef": {"name": "o"}},
                "sourcePort": {"name": "p"}, "destination": {"metro": "HKG"},
                "speedMbps": 100, "term": {"duration": 1, "unit": "m"}},
            "status": {"phase": "Active", "connectionId": "c1"}
        }))
        .unwrap();
        assert!(is_measured(&fcc));
        fcc.annotations_mut()
            .insert(crate::crd::PAUSED_ANNOTATION.into(), "true".into());
        assert!(!is_measured(&fcc), "a paused resource makes no calls");
        fcc.annotations_mut().clear();
        fcc.status.as_mut().unwrap().phase = Some(Phase::AwaitingApproval);
        assert!(!is_measured(&fcc));
    }
}
