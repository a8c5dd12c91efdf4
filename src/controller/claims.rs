//! Which connections the resources in the watch caches manage, so that a resource never adopts
//! a connection another one manages. A tenant who shares a company's key with other teams could
//! otherwise name another team's connection in `spec.connectionId`, adopt it, and disconnect it
//! by deleting the resource.

use std::sync::OnceLock;

use kube::{ResourceExt, runtime::reflector::Store};
use tokio::sync::watch;

use crate::crd::FastConnectConnection;

use super::finalizer::has_finalizer;

pub struct Claims {
    stores: OnceLock<Vec<Store<FastConnectConnection>>>,
    synced: watch::Sender<bool>,
}

impl Default for Claims {
    fn default() -> Self {
        Self {
            stores: OnceLock::new(),
            synced: watch::channel(false).0,
        }
    }
}

impl Claims {
    /// Every watch has listed its resources: claims can be judged from now on.
    pub fn synced(&self, stores: Vec<Store<FastConnectConnection>>) {
        // Set once, by the one task that waits for the watches.
        let _ = self.stores.set(stores);
        self.synced.send_replace(true);
    }

    /// True when another resource manages, or is adopting, connection `id`. Waits until every
    /// watch has listed its resources: a claim in a namespace not yet listed would go unseen.
    pub async fn taken_by_another(&self, fcc: &FastConnectConnection, id: &str) -> bool {
        // The sender lives in `self`, so the wait ends only with the sync.
        let _ = self.synced.subscribe().wait_for(|synced| *synced).await;
        let Some(stores) = self.stores.get() else {
            return false;
        };
        stores.iter().any(|store| {
            store
                .find(|other| claims(other, id) && other.uid() != fcc.uid())
                .is_some()
        })
    }
}

/// A resource claims a connection it recorded, or holds our finalizer while naming it in
/// `spec.connectionId` (adopting it now). An observe-only resource claims nothing: it never
/// disconnects.
fn claims(fcc: &FastConnectConnection, id: &str) -> bool {
    if fcc.observe_only() {
        return false;
    }
    let recorded = fcc.status.as_ref().and_then(|s| s.connection_id.as_deref()) == Some(id);
    let adopting = fcc.spec.connection_id.as_deref() == Some(id) && has_finalizer(fcc);
    recorded || adopting
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    use super::*;
    use crate::controller::FINALIZER;

    fn fcc(uid: &str, spec_id: Option<&str>, status_id: Option<&str>) -> FastConnectConnection {
        serde_json::from_value(json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": {"name": uid, "namespace": "net", "uid": uid, "finalizers": [FINALIZER]},
            "spec": {"companyUsername": "acme", "connectionId": spec_id,
                "credentials": {"apiKeySecretRef": {"name": "a"}, "oracleOcidSecretRef": {"name": "o"}},
                "sourcePort": {"name": "p"}, "destination": {"metro": "HKG"},
                "speedMbps": 100, "term": {"duration": 1, "unit": "m"}},
            "status": {"connectionId": status_id}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_connection_another_resource_records_or_adopts_is_taken() {
        let (store, mut writer) = reflector::store();
        let owner = fcc("owner", None, Some("c1"));
        let adopting = fcc("adopting", Some("c2"), None);
        let mut observing = fcc("observing", Some("c3"), Some("c3"));
        observing.spec.management_policy = crate::crd::ManagementPolicy::Observe;
        for object in [&owner, &adopting, &observing] {
            writer.apply_watcher_event(&watcher::Event::Apply(object.clone()));
        }
        let claims = Claims::default();
        claims.synced(vec![store]);

        let newcomer = fcc("newcomer", Some("c1"), None);
        assert!(claims.taken_by_another(&newcomer, "c1").await);
        assert!(claims.taken_by_another(&newcomer, "c2").await);
        assert!(
            !claims.taken_by_another(&newcomer, "c3").await,
            "observed only"
        );
        assert!(!claims.taken_by_another(&newcomer, "c4").await);
        assert!(!claims.taken_by_another(&owner, "c1").await, "its own");
    }
}
