//! Helm as a user runs it, against the test control plane: the chart, a release of it, and the
//! check that `helm uninstall` leaves nothing behind.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{Api, Client, Resource, api::ListParams};
use serde::de::DeserializeOwned;

use super::cluster;

pub const CHART: &str = "deploy/helm/fastconnect-operator";
const UNINSTALL_WAIT: Duration = Duration::from_secs(90);

pub fn repo_path(path: &str) -> PathBuf {
    super::repo_root().join(path)
}

pub fn chart() -> String {
    repo_path(CHART).display().to_string()
}

pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if cluster::testenv_available() {
        command.env("KUBECONFIG", cluster::kubeconfig_path());
    }
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {program}: {e}; put it on PATH with `eval \"$(hack/testenv.sh env)\"` \
             (make test does)"
        )
    });
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for the command");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `helm args...`; panics unless it succeeds; returns stdout.
pub fn helm_ok(args: &[&str]) -> String {
    let out = run("helm", args, None);
    assert!(
        out.ok,
        "helm {args:?} failed:\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// Runs `helm args...`; panics if it succeeds; returns stdout and stderr together.
pub fn helm_fails(args: &[&str]) -> String {
    let out = run("helm", args, None);
    assert!(
        !out.ok,
        "helm {args:?} should have failed; it printed:\n{}",
        out.stdout
    );
    format!("{}{}", out.stdout, out.stderr)
}

/// A Helm release of the chart in the test control plane, uninstalled on drop if the test did not.
pub struct Release {
    pub name: String,
    pub namespace: String,
    installed: bool,
}

impl Release {
    pub fn install(namespace: &str, sets: &[&str]) -> (Release, String) {
        let name = cluster::unique_name("fco");
        let chart = chart();
        let mut args = vec![
            "install",
            name.as_str(),
            chart.as_str(),
            "--namespace",
            namespace,
        ];
        for set in sets {
            args.extend(["--set", set]);
        }
        let notes = helm_ok(&args);
        (
            Release {
                name,
                namespace: namespace.to_owned(),
                installed: true,
            },
            notes,
        )
    }

    /// The full name of the release's objects (release name + chart name).
    pub fn fullname(&self) -> String {
        format!("{}-fastconnect-operator", self.name)
    }

    pub fn selector(&self) -> String {
        format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/name=fastconnect-operator",
            self.name
        )
    }

    pub fn uninstall(&mut self) {
        helm_ok(&["uninstall", &self.name, "--namespace", &self.namespace]);
        self.installed = false;
    }

    /// Polls until no object with the release's labels is left anywhere, nor Helm's record.
    pub async fn assert_nothing_left(&self, client: &Client) {
        let labels = ListParams::default().labels(&self.selector());
        let helm_record = ListParams::default().labels(&format!("owner=helm,name={}", self.name));
        cluster::wait_for_ok(
            "helm uninstall to remove every object",
            UNINSTALL_WAIT,
            || async {
                let mut left = Vec::new();
                left.extend(names::<ClusterRole>(Api::all(client.clone()), &labels).await);
                left.extend(names::<ClusterRoleBinding>(Api::all(client.clone()), &labels).await);
                left.extend(names::<Role>(Api::all(client.clone()), &labels).await);
                left.extend(names::<RoleBinding>(Api::all(client.clone()), &labels).await);
                left.extend(
                    names::<ServiceAccount>(
                        Api::namespaced(client.clone(), &self.namespace),
                        &labels,
                    )
                    .await,
                );
                left.extend(
                    names::<Deployment>(Api::namespaced(client.clone(), &self.namespace), &labels)
                        .await,
                );
                left.extend(
                    names::<Service>(Api::namespaced(client.clone(), &self.namespace), &labels)
                        .await,
                );
                left.extend(
                    names::<Secret>(
                        Api::namespaced(client.clone(), &self.namespace),
                        &helm_record,
                    )
                    .await,
                );
                if left.is_empty() { Ok(()) } else { Err(left) }
            },
        )
        .await;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed {
            // Best effort after a failed test: no ClusterRole outlives it.
            let _ = run(
                "helm",
                &["uninstall", &self.name, "--namespace", &self.namespace],
                None,
            );
        }
    }
}

pub async fn names<K>(api: Api<K>, params: &ListParams) -> Vec<String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(params)
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                K::kind(&()),
                o.meta().name.clone().unwrap_or_default()
            )
        })
        .collect()
}
