//! Read step: the Secrets a resource points at, from its own namespace only.
//!
//! Secrets are read with a plain `get` on every reconcile rather than watched: watching would
//! need cluster-wide list/watch on Secrets, and a `get` picks up a rotated key without a restart.
//! Secret values never leave this module except as an [`ApiKey`], which cannot be printed.

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    consoleconnect::ApiKey,
    crd::{ApiKeySecretRef, OcidSecretRef},
};

use super::{
    Diagnosis,
    cache::{SingleFlight, ago},
    reason::Reason,
};

/// Keeps an API key Secret while a connection made with it may exist: deleting a namespace
/// deletes its Secrets and our resources together, and without the key nothing can be
/// disconnected.
pub const SECRET_FINALIZER: &str = "fastconnect.dev/api-key-in-use";

/// The field manager that owns [`SECRET_FINALIZER`] and nothing else on a Secret, so that
/// applying an empty list removes exactly our finalizer.
const SECRET_GUARD_MANAGER: &str = "fastconnect-operator-secret-guard";

/// What every FastConnect virtual circuit OCID starts with.
const VIRTUAL_CIRCUIT_OCID_PREFIX: &str = "ocid1.virtualcircuit.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Secret {namespace}/{name} not found; create it with the key {key}")]
    SecretNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "Secret {namespace}/{name} has no key {key}; add it or fix the key in spec.credentials"
    )]
    SecretKeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name} key {key} is empty or not UTF-8 text")]
    SecretValueUnusable {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "Secret {namespace}/{name} key {key} does not hold an Oracle virtual circuit OCID \
         (ocid1.virtualcircuit.<realm>.<region>.<unique id>); put the OCID of your FastConnect virtual circuit there"
    )]
    InvalidOcid {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("cannot read Secret {namespace}/{name}: {source}")]
    SecretUnreadable {
        namespace: String,
        name: String,
        /// Shared by every reader that waited on the failed `get`.
        #[source]
        source: Arc<kube::Error>,
    },
    #[error("cannot guard Secret {namespace}/{name} with a finalizer: {source}")]
    SecretUnguarded {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Secrets are not watched, so a fix to one is only seen by reading it again (backoff).
impl Diagnosis for Error {
    fn reason(&self) -> Reason {
        match self {
            Error::SecretNotFound { .. } => Reason::SecretNotFound,
            Error::SecretKeyMissing { .. } => Reason::SecretKeyMissing,
            Error::SecretValueUnusable { .. } => Reason::SecretValueUnusable,
            Error::InvalidOcid { .. } => Reason::InvalidOcid,
            Error::SecretUnreadable { .. } => Reason::SecretUnreadable,
            Error::SecretUnguarded { .. } => Reason::KubernetesApiError,
        }
    }
}

/// How long the values of a Secret nobody reads stay in memory (or `ttl`, if longer). Only the
/// keys asked for so far are kept, and they would be read again after `ttl` anyway; the entry
/// outlives `ttl` only so that a Secret read for two keys is not read once per key.
const SECRET_IDLE: Duration = Duration::from_secs(60);

/// Secrets kept at most.
const SECRET_CAPACITY: u64 = 4096;

/// Secret reads shared by every resource for a few seconds: a thousand resources naming one
/// Secret cost one `get`, not a thousand, made once for every reader waiting (its failure too),
/// and a rotated key is still picked up within `ttl` (at once after Console Connect refuses a
/// key, see [`SecretCache::forget`]). Only the values asked for are kept, never the Secret.
pub struct SecretCache {
    ttl: Duration,
    reads: SingleFlight<SecretName, Arc<SecretRead>, kube::Error>,
}

/// Namespace and name.
type SecretName = (String, String);

/// What is kept of one read of a Secret: whether it exists, whether it carries
/// [`SECRET_FINALIZER`], and the bytes of the keys asked for so far; the rest of the object is
/// dropped as soon as it is read. No `Debug`: it holds secret values.
struct SecretRead {
    /// When the `get` began: the values are no older.
    read_at: Instant,
    exists: bool,
    guarded: bool,
    /// Each key asked for, with its bytes (`None`: the Secret has no such key).
    values: HashMap<String, Option<Vec<u8>>>,
}

impl SecretRead {
    /// Keeps `keys` of `secret`'s `data`. `stringData` is write-only: the API server folds it
    /// into `data` and never returns it.
    fn keep(read_at: Instant, secret: Option<Secret>, keys: BTreeSet<String>) -> Self {
        let exists = secret.is_some();
        let guarded = secret.as_ref().is_some_and(carries_guard);
        let mut data = secret.and_then(|s| s.data).unwrap_or_default();
        let values = keys
            .into_iter()
            .map(|key| {
                let bytes = data.remove(&key).map(|bytes| bytes.0);
                (key, bytes)
            })
            .collect();
        Self {
            read_at,
            exists,
            guarded,
            values,
        }
    }

    /// Whether this read answers for `key`: a missing Secret has no keys to read again for.
    fn covers(&self, key: &str) -> bool {
        !self.exists || self.values.contains_key(key)
    }

    fn value(&self, key: &str) -> Option<&[u8]> {
        self.values.get(key)?.as_deref()
    }

    fn keys(&self) -> BTreeSet<String> {
        self.values.keys().cloned().collect()
    }
}

fn carries_guard(secret: &Secret) -> bool {
    let mut finalizers = secret.metadata.finalizers.iter().flatten();
    finalizers.any(|f| f == SECRET_FINALIZER)
}

impl SecretCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            reads: SingleFlight::new(SECRET_CAPACITY, ttl.max(SECRET_IDLE)),
        }
    }

    /// Secret `name` as read with `get` at most `ttl` before this call, holding `key` if one is
    /// asked for; else read again, once for every caller waiting, keeping the keys asked for
    /// before as well.
    async fn read<F, Fut>(
        &self,
        namespace: &str,
        name: &str,
        key: Option<&str>,
        get: F,
    ) -> Result<Arc<SecretRead>, Arc<kube::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Secret>, kube::Error>>,
    {
        let fresh_after = ago(self.ttl);
        let usable = |read: &Arc<SecretRead>| {
            read.read_at >= fresh_after && key.is_none_or(|key| read.covers(key))
        };
        let read_again = |last: Option<Arc<SecretRead>>| async move {
            let mut keys = last.map(|last| last.keys()).unwrap_or_default();
            keys.extend(key.map(str::to_owned));
            let read_at = Instant::now();
            let secret = get().await?;
            Ok::<_, kube::Error>(Arc::new(SecretRead::keep(read_at, secret, keys)))
        };
        let name = (namespace.to_owned(), name.to_owned());
        self.reads.get(name, usable, read_again).await
    }

    /// Drops a Secret so that the next read sees its current content.
    pub async fn forget(&self, namespace: &str, name: &str) {
        let name = (namespace.to_owned(), name.to_owned());
        self.reads.forget(&name).await;
    }
}

/// The Secrets of one namespace.
pub struct Secrets<'a> {
    api: Api<Secret>,
    namespace: String,
    cache: &'a SecretCache,
}

impl<'a> Secrets<'a> {
    pub fn new(client: kube::Client, namespace: &str, cache: &'a SecretCache) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            cache,
        }
    }

    pub async fn api_key(&self, secret: &ApiKeySecretRef) -> Result<ApiKey, Error> {
        let value = self.value(&secret.name, &secret.key).await?;
        Ok(ApiKey::new(value))
    }

    /// Checks that the OCID Secret holds a virtual circuit OCID. The OCID itself is not
    /// returned: no API field carries it, and nothing else may show it.
    pub async fn check_ocid(&self, secret: &OcidSecretRef) -> Result<(), Error> {
        let value = self.value(&secret.name, &secret.key).await?;
        if is_virtual_circuit_ocid(&value) {
            Ok(())
        } else {
            Err(Error::InvalidOcid {
                namespace: self.namespace.clone(),
                name: secret.name.clone(),
                key: secret.key.clone(),
            })
        }
    }

    /// Puts [`SECRET_FINALIZER`] on the API key Secret unless it is there already.
    pub async fn guard(&self, secret: &ApiKeySecretRef) -> Result<(), Error> {
        let current = self.read(&secret.name, None).await?;
        if current.guarded || !current.exists {
            return Ok(());
        }
        self.apply_guard(&secret.name, &[SECRET_FINALIZER]).await?;
        self.cache.forget(&self.namespace, &secret.name).await;
        Ok(())
    }

    /// Removes [`SECRET_FINALIZER`] from a Secret no resource needs any more.
    pub async fn unguard(&self, name: &str) -> Result<(), Error> {
        self.apply_guard(name, &[]).await?;
        self.cache.forget(&self.namespace, name).await;
        Ok(())
    }

    async fn apply_guard(&self, name: &str, finalizers: &[&str]) -> Result<(), Error> {
        let patch = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "finalizers": finalizers},
        });
        match self
            .api
            .patch(
                name,
                &PatchParams::apply(SECRET_GUARD_MANAGER),
                &Patch::Apply(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Gone already: nothing to guard or to release.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(source) => Err(Error::SecretUnguarded {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// What is kept of Secret `name`, with `key` among it if one is asked for.
    async fn read(&self, name: &str, key: Option<&str>) -> Result<Arc<SecretRead>, Error> {
        let get = || self.api.get_opt(name);
        self.cache
            .read(&self.namespace, name, key, get)
            .await
            .map_err(|source| Error::SecretUnreadable {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                source,
            })
    }

    async fn value(&self, name: &str, key: &str) -> Result<String, Error> {
        let read = self.read(name, Some(key)).await?;
        let (namespace, name, key) = (self.namespace.clone(), name.to_owned(), key.to_owned());
        if !read.exists {
            return Err(Error::SecretNotFound {
                namespace,
                name,
                key,
            });
        }
        let Some(bytes) = read.value(&key) else {
            return Err(Error::SecretKeyMissing {
                namespace,
                name,
                key,
            });
        };
        match std::str::from_utf8(bytes).map(str::trim) {
            Ok(text) if !text.is_empty() => Ok(text.to_owned()),
            _ => Err(Error::SecretValueUnusable {
                namespace,
                name,
                key,
            }),
        }
    }
}

/// `ocid1.virtualcircuit.<realm>.[region][.future use].<unique id>`, in OCID characters.
pub fn is_virtual_circuit_ocid(value: &str) -> bool {
    let Some(rest) = value.strip_prefix(VIRTUAL_CIRCUIT_OCID_PREFIX) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    let realm_ok = parts.first().is_some_and(|realm| !realm.is_empty());
    let id_ok = parts.last().is_some_and(|id| id.len() >= 8);
    let charset_ok = rest
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    parts.len() >= 3 && realm_ok && id_ok && charset_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cache::tests::{held, queued_then_released};
    use k8s_openapi::{ByteString, apimachinery::pkg::apis::meta::v1::ObjectMeta};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Semaphore;

    fn secret(values: &[(&str, &str)], finalizers: &[&str]) -> Secret {
        let data = values
            .iter()
            .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())));
        Secret {
            metadata: ObjectMeta {
                name: Some("creds".into()),
                finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
                ..ObjectMeta::default()
            },
            data: Some(data.collect()),
            ..Secret::default()
        }
    }

    /// A `get` answering `secret`, counting its calls.
    async fn get(calls: &AtomicUsize, secret: &Secret) -> Result<Option<Secret>, kube::Error> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(secret.clone()))
    }

    fn minute() -> SecretCache {
        SecretCache::new(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn concurrent_reads_of_a_secret_are_one_get() {
        let cache = minute();
        let (gate, calls) = (Semaphore::new(0), AtomicUsize::new(0));
        let creds = secret(&[("apiKey", "k1")], &[]);
        let reading = || held(&gate, &calls, Ok(Some(creds.clone())));
        let reads = (0..20).map(|_| cache.read("ns", "creds", Some("apiKey"), reading));
        let reads = queued_then_released(reads, &gate).await;
        let first = reads[0].as_ref().unwrap();
        assert!(
            reads
                .iter()
                .all(|r| Arc::ptr_eq(r.as_ref().unwrap(), first))
        );
        assert_eq!(first.value("apiKey"), Some(&b"k1"[..]));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_get_is_shared_by_the_readers_waiting_and_not_kept() {
        let cache = minute();
        let (gate, calls) = (Semaphore::new(0), AtomicUsize::new(0));
        let failing = || held(&gate, &calls, Err(kube::Error::TlsRequired));
        let reads = (0..20).map(|_| cache.read("ns", "creds", Some("apiKey"), failing));
        let reads = queued_then_released(reads, &gate).await;
        assert_eq!(reads.len(), 20);
        assert!(reads.iter().all(Result::is_err));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let creds = secret(&[("apiKey", "k1")], &[]);
        assert_eq!(api_key(&cache, &calls, &creds).await, b"k1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// The API key as read through `cache` from a `get` answering `secret`.
    async fn api_key(cache: &SecretCache, calls: &AtomicUsize, secret: &Secret) -> Vec<u8> {
        let read = cache.read("ns", "creds", Some("apiKey"), || get(calls, secret));
        read.await.unwrap().value("apiKey").unwrap().to_vec()
    }

    #[tokio::test]
    async fn only_the_values_asked_for_and_the_guard_are_kept() {
        let cache = minute();
        let calls = AtomicUsize::new(0);
        let creds = secret(&[("apiKey", "k1"), ("other", "o")], &[SECRET_FINALIZER]);
        let read = cache
            .read("ns", "creds", Some("apiKey"), || get(&calls, &creds))
            .await
            .unwrap();
        assert!(read.exists && read.guarded);
        assert_eq!(read.keys(), BTreeSet::from(["apiKey".to_owned()]));
        assert_eq!(read.value("apiKey"), Some(&b"k1"[..]));
        assert_eq!(read.value("other"), None);
    }

    #[tokio::test]
    async fn string_data_is_never_read() {
        let cache = minute();
        let calls = AtomicUsize::new(0);
        let creds = Secret {
            data: None,
            string_data: Some([("apiKey".to_owned(), "k1".to_owned())].into()),
            ..secret(&[], &[])
        };
        let read = cache
            .read("ns", "creds", Some("apiKey"), || get(&calls, &creds))
            .await
            .unwrap();
        assert!(read.exists);
        assert_eq!(read.value("apiKey"), None);
    }

    #[tokio::test]
    async fn another_key_reads_again_and_both_are_kept() {
        let cache = minute();
        let calls = AtomicUsize::new(0);
        let creds = secret(&[("apiKey", "k1"), ("ocid", "o")], &[]);
        for key in ["apiKey", "ocid", "apiKey", "ocid"] {
            let read = cache.read("ns", "creds", Some(key), || get(&calls, &creds));
            assert!(read.await.unwrap().value(key).is_some());
        }
        let guard = cache.read("ns", "creds", None, || get(&calls, &creds));
        assert_eq!(guard.await.unwrap().keys().len(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_rotated_key_is_seen_after_forget() {
        let cache = minute();
        let calls = AtomicUsize::new(0);
        let (old, new) = (
            secret(&[("apiKey", "old")], &[]),
            secret(&[("apiKey", "new")], &[]),
        );
        assert_eq!(api_key(&cache, &calls, &old).await, b"old");
        assert_eq!(api_key(&cache, &calls, &new).await, b"old");
        cache.forget("ns", "creds").await;
        assert_eq!(api_key(&cache, &calls, &new).await, b"new");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_rotated_key_is_seen_once_the_ttl_is_over() {
        let cache = SecretCache::new(Duration::ZERO);
        let calls = AtomicUsize::new(0);
        let (old, new) = (
            secret(&[("apiKey", "old")], &[]),
            secret(&[("apiKey", "new")], &[]),
        );
        assert_eq!(api_key(&cache, &calls, &old).await, b"old");
        assert_eq!(api_key(&cache, &calls, &new).await, b"new");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_missing_secret_is_kept_as_missing() {
        let cache = minute();
        let calls = AtomicUsize::new(0);
        let missing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        };
        for key in [Some("apiKey"), Some("ocid"), None] {
            let read = cache.read("ns", "creds", key, missing).await.unwrap();
            assert!(!read.exists && !read.guarded);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn accepts_virtual_circuit_ocids() {
        assert!(is_virtual_circuit_ocid(
            "ocid1.virtualcircuit.oc1.ap-hongkong-1.aaaaaaaabbbbbbbbccccccccdddddddd"
        ));
        // The region part may be empty in OCIDs of realm-wide resources.
        assert!(is_virtual_circuit_ocid(
            "ocid1.virtualcircuit.oc1..aaaaaaaaexample1"
        ));
    }

    #[test]
    fn refuses_other_ocids_and_garbage() {
        for bad in [
            "",
            "ocid1.vcn.oc1.ap-hongkong-1.aaaaaaaabbbbbbbb",
            "ocid1.virtualcircuit.",
            "ocid1.virtualcircuit.oc1.short",
            "ocid1.virtualcircuit.oc1.ap-hongkong-1.AAAA UPPER SPACE",
            "my-circuit",
        ] {
            assert!(!is_virtual_circuit_ocid(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn errors_name_the_secret_but_never_a_value() {
        let err = Error::InvalidOcid {
            namespace: "network".into(),
            name: "oracle-vc".into(),
            key: "ocid".into(),
        };
        let text = err.to_string();
        assert!(text.contains("Secret network/oracle-vc key ocid"), "{text}");
    }
}
