//! Every way a command can fail, each saying what is wrong, where, and what to do. No variant
//! holds a Secret's value: the API key only ever travels as an `ApiKey`, which prints as
//! `<redacted>`, and the OCID is checked, never kept.

use fastconnect_operator::{
    consoleconnect as cc,
    controller::{Diagnosis, inputs, resolve},
    crd::Phase,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load the kubeconfig: {0}; check --kubeconfig, --context and $KUBECONFIG")]
    Kubeconfig(#[source] kube::config::KubeconfigError),

    #[error("cannot set up a Kubernetes client: {0}")]
    KubeClient(#[source] kube::Error),

    #[error(
        "Secret {namespace}/{name} not found; create it with `kubectl -n {namespace} create \
         secret generic {name} --from-literal={key}=...`, or name another one (--secret, -n)"
    )]
    SecretNotFound {
        namespace: String,
        name: String,
        key: String,
    },

    #[error("Secret {namespace}/{name} has no key {key}; name the key that holds it with {flag}")]
    SecretKeyMissing {
        namespace: String,
        name: String,
        key: String,
        /// The flag that names the key.
        flag: &'static str,
    },

    #[error("Secret {namespace}/{name} key {key} is empty or not UTF-8 text; put {holds} there")]
    SecretValueUnusable {
        namespace: String,
        name: String,
        key: String,
        /// What belongs there.
        holds: &'static str,
    },

    /// The operator's checks of its inputs, in its words (an OCID that is not one).
    #[error(transparent)]
    Inputs(#[from] inputs::Error),

    #[error(
        "cannot read Secret {namespace}/{name}: {}; the plugin needs `get` on secrets in \
         {namespace} (check with `kubectl auth can-i get secret/{name} -n {namespace}`)",
        brief(source)
    )]
    SecretUnreadable {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("cannot set up the Console Connect client for --api-url: {0}")]
    ApiClient(#[source] cc::Error),

    #[error("{call} at {url}: {source}{hint}")]
    ConsoleConnect {
        call: &'static str,
        url: String,
        #[source]
        source: cc::Error,
        /// What to do, starting with "; ", or empty.
        hint: String,
    },

    /// The port, metro or speed does not resolve: the operator's own words, and the reason and
    /// phase it would report.
    #[error("{}", resolve_message(.0))]
    Resolve(#[from] resolve::Error),

    #[error(
        "the cluster does not know FastConnectConnections: install the operator's CRD \
         (`kubectl apply -f crds/` or the Helm chart)"
    )]
    CrdMissing(#[source] kube::Error),

    #[error(
        "cannot list FastConnectConnections {scope}: {}; the plugin needs `list` on \
         fastconnectconnections.fastconnect.dev there (check with `kubectl auth can-i list \
         fastconnectconnections.fastconnect.dev`)",
        brief(source)
    )]
    ListConnections {
        scope: String,
        #[source]
        source: kube::Error,
    },

    #[error("cannot write the resource as YAML: {0}")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

impl Error {
    /// A failed list: a 404 means the API server has no such resource, i.e. no CRD.
    pub fn list_connections(scope: String, source: kube::Error) -> Error {
        match &source {
            kube::Error::Api(status) if status.code == 404 => Error::CrdMissing(source),
            _ => Error::ListConnections { scope, source },
        }
    }
}

/// The API server's own sentence for a refusal (it names the user, verb and resource), without
/// the debug dump kube's `Display` appends.
fn brief(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} (HTTP {})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

fn resolve_message(error: &resolve::Error) -> String {
    let reason = error.reason();
    let phase = reason.phase().unwrap_or(Phase::Failed);
    format!("{error}\n  (the operator would report phase {phase}, reason {reason})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolve_error_keeps_the_operators_words_and_names_its_reason() {
        let error = || resolve::Error::MetroNotReady {
            metro: "TYO (Tokyo)".into(),
        };
        let text = Error::from(error()).to_string();
        assert!(text.starts_with(&error().to_string()), "{text}");
        assert!(
            text.ends_with("phase Failed, reason MetroNotReady)"),
            "{text}"
        );
    }
}
