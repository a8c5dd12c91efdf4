//! Letting go of the API key Secret's guard once no resource needs it, decided from the watch
//! caches rather than a list per released resource: deleting N resources at once used to list
//! the namespace N times (N² objects decoded, the memory peak of a mass deletion).
//!
//! A released resource marks its Secret; every [`SWEEP_EVERY`] the marked Secrets are judged
//! from the caches. The caches lag the API server a little: two resources released together may
//! each still see the other holding its finalizer, so a Secret needed only by resources being
//! deleted stays marked and is judged again, until the last of them is seen gone. A resource that
//! orders while the guard goes puts it back on its next poll (`Step::Record` guards).

use std::{collections::BTreeSet, sync::Mutex, time::Duration};

use kube::{ResourceExt, runtime::reflector::Store};
use tracing::{debug, warn};

use crate::crd::FastConnectConnection;

use super::{Context, FINALIZER, inputs::Secrets};

/// How often marked Secrets are judged; also how long the caches get to catch up.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Namespace and name of an API key Secret.
type SecretName = (String, String);

/// Secrets whose guard may no longer be needed.
#[derive(Default)]
pub struct UnneededGuards {
    marked: Mutex<BTreeSet<SecretName>>,
}

impl UnneededGuards {
    /// A resource naming `name` in `namespace` has let go of its connection.
    pub fn mark(&self, namespace: &str, name: &str) {
        self.lock().insert((namespace.to_owned(), name.to_owned()));
    }

    fn marked(&self) -> Vec<SecretName> {
        self.lock().iter().cloned().collect()
    }

    fn settle(&self, secret: &SecretName) {
        self.lock().remove(secret);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<SecretName>> {
        // A panic elsewhere cannot leave a set of names half-changed.
        self.marked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the caches say of a marked Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// No resource holding our finalizer names it: the guard goes.
    Unneeded,
    /// A resource that is not being deleted names it: the guard stays, and that resource marks
    /// the Secret again when it is released.
    Needed,
    /// Only resources being deleted name it: judge again later.
    Waiting,
}

fn verdict<'a>(
    resources: impl IntoIterator<Item = &'a FastConnectConnection>,
    (namespace, name): &SecretName,
) -> Verdict {
    let mut verdict = Verdict::Unneeded;
    let holders = resources.into_iter().filter(|fcc| {
        fcc.namespace().as_deref() == Some(namespace.as_str())
            && &fcc.spec.credentials.api_key_secret_ref.name == name
            && fcc.finalizers().iter().any(|f| f == FINALIZER)
    });
    for holder in holders {
        if holder.metadata.deletion_timestamp.is_none() {
            return Verdict::Needed;
        }
        verdict = Verdict::Waiting;
    }
    verdict
}

/// Judges the marked Secrets every [`SWEEP_EVERY`], forever.
pub(super) async fn sweep(ctx: &Context, stores: &[Store<FastConnectConnection>]) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let marked = ctx.guards.marked();
        if marked.is_empty() {
            continue;
        }
        let resources: Vec<_> = stores.iter().flat_map(Store::state).collect();
        for secret in marked {
            match verdict(resources.iter().map(|r| r.as_ref()), &secret) {
                Verdict::Waiting => {}
                Verdict::Needed => {
                    let (namespace, name) = &secret;
                    debug!(%namespace, secret = %name, "the API key Secret is still needed; guard kept");
                    ctx.guards.settle(&secret);
                }
                Verdict::Unneeded => unguard(ctx, &secret).await,
            }
        }
    }
}

async fn unguard(ctx: &Context, secret: &SecretName) {
    let (namespace, name) = secret;
    let secrets = Secrets::new(ctx.kube.clone(), namespace, &ctx.secrets);
    match secrets.unguard(name).await {
        Ok(()) => {
            debug!(%namespace, secret = %name, "no resource needs the API key Secret; guard removed");
            ctx.guards.settle(secret);
        }
        // Kept marked: the next sweep tries again.
        Err(error) => warn!(%error, "cannot remove the API key Secret's guard"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fcc(
        namespace: &str,
        secret: &str,
        finalizer: bool,
        deleting: bool,
    ) -> FastConnectConnection {
        let mut metadata = json!({"name": "x", "namespace": namespace});
        if finalizer {
            metadata["finalizers"] = json!([FINALIZER]);
        }
        if deleting {
            metadata["deletionTimestamp"] = json!("2026-11-29T12:00:00Z");
        }
        serde_json::from_value(json!({
            "apiVersion": "fastconnect.dev/v1alpha1", "kind": "FastConnectConnection",
            "metadata": metadata,
            "spec": {"companyUsername": "acme",
                "credentials": {"apiKeySecretRef": {"name": secret}, "oracleOcidSecretRef": {"name": "o"}},
                "sourcePort": {"name": "p"}, "destination": {"metro": "HKG"},
                "speedMbps": 100, "term": {"duration": 1, "unit": "m"}}
        }))
        .unwrap()
    }

    fn secret(namespace: &str, name: &str) -> SecretName {
        (namespace.to_owned(), name.to_owned())
    }

    #[test]
    fn a_guard_goes_when_no_holder_names_the_secret() {
        let others = [
            fcc("net", "other-key", true, false),
            fcc("elsewhere", "key", true, false),
            fcc("net", "key", false, false),
        ];
        assert_eq!(verdict(&others, &secret("net", "key")), Verdict::Unneeded);
    }

    #[test]
    fn a_live_holder_keeps_the_guard_and_deleting_ones_make_it_wait() {
        let deleting = fcc("net", "key", true, true);
        let live = fcc("net", "key", true, false);
        assert_eq!(
            verdict([&deleting], &secret("net", "key")),
            Verdict::Waiting
        );
        assert_eq!(
            verdict([&deleting, &live], &secret("net", "key")),
            Verdict::Needed
        );
    }

    #[test]
    fn marks_are_kept_once_until_settled() {
        let guards = UnneededGuards::default();
        guards.mark("net", "key");
        guards.mark("net", "key");
        assert_eq!(guards.marked(), [secret("net", "key")]);
        guards.settle(&secret("net", "key"));
        assert!(guards.marked().is_empty());
    }
}
