//! Helpers for integration tests against the real control plane that `hack/testenv.sh up` starts
//! (etcd + kube-apiserver + kube-controller-manager on loopback; `make test` does it for you).
//!
//! Everything here reads `KUBECONFIG`, which `eval "$(hack/testenv.sh env)"` sets; without it the
//! helpers panic with instructions rather than talk to whatever cluster `~/.kube/config` names.

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use rand::Rng;

const HOW_TO_RUN: &str = "run the tests with `make test` (or `eval $(hack/testenv.sh env)`)";

/// Label put on every namespace [`test_namespace`] creates.
pub const TEST_NAMESPACE_LABEL: &str = "fastconnect.dev/test";

/// How often [`wait_for`] polls.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The kubeconfig of the test control plane (`$KUBECONFIG`). Panics when it is not set.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("KUBECONFIG") {
        Some(p) if !p.is_empty() => {
            // hack/testenv.sh sets a single file; with a list, the first one is ours.
            let first = std::env::split_paths(&p).next().unwrap_or_default();
            assert!(
                first.is_file(),
                "KUBECONFIG={} does not exist (is the control plane down?): {HOW_TO_RUN}",
                first.display()
            );
            first
        }
        _ => panic!("KUBECONFIG is not set: {HOW_TO_RUN}"),
    }
}

/// True when `KUBECONFIG` is set, i.e. the tests run inside `make test` or an evaluated
/// `hack/testenv.sh env`.
pub fn testenv_available() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|p| !p.is_empty())
}

/// A `kube::Config` for the admin user of the test control plane.
pub async fn config() -> Config {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {HOW_TO_RUN}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}; {HOW_TO_RUN}", path.display()))
}

/// A client for the admin user (group `system:masters`) of the test control plane.
pub async fn client() -> Client {
    Client::try_from(config().await).expect("cannot build a kube client from the test kubeconfig")
}

/// A client for the same server that authenticates with `token` alone (e.g. a service account
/// token from the TokenRequest API), to test what RBAC lets that identity do.
pub async fn client_with_token(token: &str) -> Client {
    let mut config = config().await;
    config.auth_info = AuthInfo {
        token: Some(token.to_owned().into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).expect("cannot build a kube client with a bearer token")
}

/// `prefix` + a random suffix, usable as a DNS-1123 label (namespace or object name).
pub fn unique_name(prefix: &str) -> String {
    let mut base: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(50);
    let base = base.trim_matches('-');
    let suffix: String = (0..8)
        .map(|_| {
            const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            CHARS[rand::rng().random_range(0..CHARS.len())] as char
        })
        .collect();
    if base.is_empty() {
        format!("t-{suffix}")
    } else {
        format!("{base}-{suffix}")
    }
}

/// Creates a namespace named `prefix-<random>` (labelled [`TEST_NAMESPACE_LABEL`]) and returns
/// its name. The control plane is thrown away after the run, so deleting it is optional
/// ([`delete_namespace`]).
pub async fn test_namespace(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    create_namespace(client, &name).await;
    name
}

/// Creates the namespace `name`, labelled [`TEST_NAMESPACE_LABEL`].
pub async fn create_namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("cannot create test namespace {name}: {e}"));
}

/// Deletes a namespace and waits until it is gone (kube-controller-manager's namespace
/// controller empties it first).
pub async fn delete_namespace(client: &Client, name: &str, timeout: Duration) {
    let api = Api::<Namespace>::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => return,
        Err(e) => panic!("cannot delete namespace {name}: {e}"),
    }
    wait_for(
        &format!("namespace {name} to be deleted"),
        timeout,
        || async {
            match api.get_opt(name).await {
                Ok(None) => Some(()),
                Ok(Some(_)) => None,
                Err(e) => panic!("cannot get namespace {name}: {e}"),
            }
        },
    )
    .await
}

/// The `kubectl` on PATH (with `make test` / `hack/testenv.sh env`, the one built for the
/// control plane's release), pointed at the test kubeconfig.
pub fn kubectl() -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig_path());
    cmd
}

/// Runs `kubectl args...`, panics unless it succeeds, and returns its stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kubectl printed non-UTF-8")
}

/// Polls `poll` every 200 ms until it returns `Some(value)` and returns that value; panics with
/// `what` once `timeout` has passed. Use it instead of sleeping until something has happened.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut poll: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = poll().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Like [`wait_for`], for a poll that says why it is not done yet: `Err(reason)` means "not
/// yet"; the last reason is in the panic message on timeout.
pub async fn wait_for_ok<T, E, F, Fut>(what: &str, timeout: Duration, mut poll: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match poll().await {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last: {last:?}");
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Applies a CRD (server-side apply, so calling it again, also from tests running in parallel, is
/// harmless) and waits until it is Established.
pub async fn apply_crd(client: &Client, crd: &CustomResourceDefinition) {
    let name = crd
        .metadata
        .name
        .clone()
        .expect("the CRD has no metadata.name");
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut crd = crd.clone();
    crd.metadata.managed_fields = None;
    crd.metadata.resource_version = None;
    api.patch(
        &name,
        &PatchParams::apply("fastconnect-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot apply CRD {name}: {e}"));
    wait_for_crd_established(client, &name, Duration::from_secs(60)).await;
}

/// Waits until the CRD `name` has the condition Established=True.
pub async fn wait_for_crd_established(client: &Client, name: &str, timeout: Duration) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    wait_for(
        &format!("CRD {name} to be Established"),
        timeout,
        || async {
            let crd = api
                .get(name)
                .await
                .unwrap_or_else(|e| panic!("cannot get CRD {name}: {e}"));
            let established = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            established.then_some(())
        },
    )
    .await
}

/// True if `err` is an API error with HTTP status `code`.
pub fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}
