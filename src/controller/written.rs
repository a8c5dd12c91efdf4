//! The status this process wrote last for each resource, to tell a watch cache that has not yet
//! caught up with our own write from a resource someone changed since.
//!
//! Our finalizer patch wakes a reconcile (finalizer changes must, so that a removed finalizer is
//! put back), which kube-runtime runs once the reconcile that made the patch has finished: by
//! then that reconcile has also written a status or two, which the cache may not show yet. A
//! reconcile from that stale copy redoes a step: its status write is refused with 409 Conflict
//! (the resourceVersion precondition), one wasted Kubernetes write per new resource. Status is
//! written only by us, so a copy whose status is not the one we last wrote is older than our
//! write; a newer copy (a spec edit, a deletion) carries our status.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    time::Duration,
};

use kube::runtime::reflector::ObjectRef;
use moka::future::Cache;

use crate::crd::{FastConnectConnection, FastConnectConnectionStatus};

/// How long a copy may lag behind our write before it is trusted anyway: a status written by
/// someone else (`kubectl edit --subresource=status`) must not stop the resource for longer.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Resources remembered at most; one entry is a reference and a hash.
const CAPACITY: u64 = 100_000;

pub struct LastWritten {
    statuses: Cache<ObjectRef<FastConnectConnection>, u64>,
}

impl Default for LastWritten {
    fn default() -> Self {
        Self {
            statuses: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(CATCH_UP)
                .build(),
        }
    }
}

impl LastWritten {
    /// `written` is the resource as the API server answered our last write of it.
    pub async fn record(&self, written: &FastConnectConnection) {
        self.statuses
            .insert(
                ObjectRef::from_obj(written),
                fingerprint(written.status.as_ref()),
            )
            .await;
    }

    /// True when the copy is older than our last status write.
    pub async fn is_behind(&self, fcc: &FastConnectConnection) -> bool {
        self.statuses
            .get(&ObjectRef::from_obj(fcc))
            .await
            .is_some_and(|ours| ours != fingerprint(fcc.status.as_ref()))
    }
}

/// Statuses compare by their JSON: equal exactly when `status::write` would skip the write.
fn fingerprint(status: Option<&FastConnectConnectionStatus>) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(&status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::Phase;

    fn fcc(phase: Option<Phase>) -> FastConnectConnection {
        let mut fcc: FastConnectConnection = serde_json::from_value(json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": {"name": "hk", "namespace": "net"},
            "spec": {"companyUsername": "acme",
                "credentials": {"apiKeySecretRef": {"name": "a"}, "oracleOcidSecretRef": {"name": "o"}},
                "sourcePort": {"name": "p"}, "destination": {"metro": "HKG"},
                "speedMbps": 100, "term": {"duration": 1, "unit": "m"}}
        }))
        .unwrap();
        fcc.status = phase.map(|phase| FastConnectConnectionStatus {
            phase: Some(phase),
            ..Default::default()
        });
        fcc
    }

    #[tokio::test]
    async fn a_copy_without_our_last_status_is_behind_and_one_with_it_is_not() {
        let written = LastWritten::default();
        let stale = fcc(Some(Phase::Creating));
        assert!(!written.is_behind(&stale).await, "nothing written yet");

        let ours = fcc(Some(Phase::Active));
        written.record(&ours).await;
        assert!(written.is_behind(&stale).await);
        assert!(written.is_behind(&fcc(None)).await);
        assert!(!written.is_behind(&ours).await);

        // A newer copy (say a deletion) carries our status.
        let mut deleting = ours.clone();
        deleting.metadata.generation = Some(2);
        assert!(!written.is_behind(&deleting).await);
    }
}
