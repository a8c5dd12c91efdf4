//! Read step: the Secrets a resource points at, from its own namespace only.
//!
//! Secrets are read with a plain `get` on every reconcile rather than watched: watching would
//! need cluster-wide list/watch on Secrets, and a `get` picks up a rotated key without a restart.
//! Secret values never leave this module except as an [`ApiKey`], which cannot be printed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
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

use super::{Diagnosis, reason::Reason};

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
        #[source]
        source: kube::Error,
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

/// Secret reads shared by every resource for a few seconds: a thousand resources naming one
/// Secret cost one `get`, not a thousand, and a rotated key is still picked up within `ttl`
/// (at once after Console Connect refuses a key, see [`SecretCache::forget`]).
pub struct SecretCache {
    ttl: Duration,
    entries: Mutex<HashMap<SecretName, Read>>,
}

/// Namespace and name.
type SecretName = (String, String);

/// A Secret as read at one moment (`None`: it did not exist).
type Read = (Instant, Option<Arc<Secret>>);

impl SecretCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    async fn get(
        &self,
        api: &Api<Secret>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some((read_at, secret)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && read_at.elapsed() < self.ttl
        {
            return Ok(secret.clone());
        }
        let secret = api.get_opt(name).await?.map(Arc::new);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), secret.clone()));
        Ok(secret)
    }

    /// Drops a Secret so that the next read sees its current content.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()));
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
        let current = self
            .cache
            .get(&self.api, &self.namespace, &secret.name)
            .await
            .map_err(|source| self.unreadable(&secret.name, source))?;
        let guarded = current.as_ref().is_some_and(|s| {
            s.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == SECRET_FINALIZER))
        });
        if guarded || current.is_none() {
            return Ok(());
        }
        self.apply_guard(&secret.name, &[SECRET_FINALIZER]).await?;
        self.cache.forget(&self.namespace, &secret.name);
        Ok(())
    }

    /// Removes [`SECRET_FINALIZER`] from a Secret no resource needs any more.
    pub async fn unguard(&self, name: &str) -> Result<(), Error> {
        self.apply_guard(name, &[]).await?;
        self.cache.forget(&self.namespace, name);
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

    fn unreadable(&self, name: &str, source: kube::Error) -> Error {
        Error::SecretUnreadable {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            source,
        }
    }

    async fn value(&self, name: &str, key: &str) -> Result<String, Error> {
        let secret = self
            .cache
            .get(&self.api, &self.namespace, name)
            .await
            .map_err(|source| self.unreadable(name, source))?;
        let Some(secret) = secret else {
            return Err(Error::SecretNotFound {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
            });
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| bytes.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|data| data.get(key))
                    .map(|text| text.clone().into_bytes())
            })
            .ok_or_else(|| Error::SecretKeyMissing {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
            })?;
        match String::from_utf8(bytes) {
            Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
            _ => Err(Error::SecretValueUnusable {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
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
