//! One test's world: a namespace with the demo Secrets, a sandbox, and an operator watching
//! only that namespace, with waits on the resource's phase and reasons.

use std::time::Duration;

use fastconnect_operator::crd::{FastConnectConnection, Phase};
use k8s_openapi::{
    api::core::v1::Event as CoreEvent, apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{ListParams, PostParams},
};
use serde_json::Value;

use super::{
    cluster, fixtures,
    operator::Operator,
    sandbox::{self, Sandbox},
};

pub const WAIT: Duration = Duration::from_secs(60);
pub const OCID: &str = "ocid1.virtualcircuit.oc1.ap-hongkong-1.aaaaaaaatestcircuitsecret0001";

/// A namespace with the demo Secrets, a sandbox and an operator watching only that namespace.
pub struct Env {
    pub client: Client,
    pub ns: String,
    pub sandbox: Sandbox,
    pub operator: Option<Operator>,
    pub fccs: Api<FastConnectConnection>,
}

impl Env {
    pub async fn start(sandbox_args: &[&str]) -> Env {
        let mut env = Env::without_operator(sandbox_args).await;
        env.operator = Some(Operator::start(&env.sandbox.url, &env.ns));
        env
    }

    /// Like [`Env::start`], with extra operator environment.
    pub async fn start_with(sandbox_args: &[&str], operator_env: &[(&str, &str)]) -> Env {
        let mut env = Env::without_operator(sandbox_args).await;
        env.start_operator(operator_env);
        env
    }

    /// Starts (or restarts) the operator with extra environment.
    pub fn start_operator(&mut self, operator_env: &[(&str, &str)]) {
        self.operator = Some(Operator::start_with(
            &self.sandbox.url,
            &self.ns,
            operator_env,
        ));
    }

    pub async fn without_operator(sandbox_args: &[&str]) -> Env {
        let client = cluster::client().await;
        cluster::apply_crd(&client, &FastConnectConnection::crd()).await;
        let ns = cluster::test_namespace(&client, "operator").await;
        let sandbox = Sandbox::start(sandbox_args);
        let env = Env {
            fccs: Api::namespaced(client.clone(), &ns),
            client,
            ns,
            sandbox,
            operator: None,
        };
        env.put_secret("consoleconnect", "apiKey", sandbox::DEFAULT_KEY)
            .await;
        env.put_secret("oracle-vc", "ocid", OCID).await;
        env
    }

    pub fn operator(&self) -> &Operator {
        self.operator.as_ref().expect("operator running")
    }

    pub async fn put_secret(&self, name: &str, key: &str, value: &str) {
        fixtures::put_secret(&self.client, &self.ns, name, key, value).await;
    }

    /// Creates a small connection resource (5 Mbps on the 10 Gbps port, so that many fit).
    pub async fn create_small(&self, name: &str) -> FastConnectConnection {
        let fcc: FastConnectConnection =
            serde_json::from_value(fixtures::small_connection(name)).expect("valid object");
        self.fccs
            .create(&PostParams::default(), &fcc)
            .await
            .expect("resource created")
    }

    /// The sandbox's live (not deleted) connections carrying the default name of `name`.
    pub async fn live_remote(&self, name: &str) -> Vec<Value> {
        self.remote(&format!("{}.{name}", self.ns))
            .await
            .into_iter()
            .filter(|c| c["deleted"] != true && c["status"] != "CANCELLED")
            .collect()
    }

    /// Creates a connection resource: the demo sample changed by `edit`.
    pub async fn create(&self, name: &str, edit: impl FnOnce(&mut Value)) -> FastConnectConnection {
        let mut object = fixtures::connection(name);
        edit(&mut object);
        let fcc: FastConnectConnection = serde_json::from_value(object).expect("valid object");
        self.fccs
            .create(&PostParams::default(), &fcc)
            .await
            .expect("resource created")
    }

    pub async fn wait_phase(&self, name: &str, phase: Phase) -> FastConnectConnection {
        let fccs = &self.fccs;
        cluster::wait_for_ok(&format!("{name} to be {phase}"), WAIT, || async move {
            let fcc = fccs.get(name).await.map_err(|e| e.to_string())?;
            let status = fcc.status.clone().unwrap_or_default();
            if status.phase == Some(phase) {
                Ok(fcc)
            } else {
                Err(format!("{:?}: {:?}", status.phase, status.message))
            }
        })
        .await
    }

    /// Waits until the Ready condition has `reason`, and returns it.
    pub async fn wait_reason(
        &self,
        name: &str,
        reason: &str,
    ) -> (FastConnectConnection, Condition) {
        let fccs = &self.fccs;
        cluster::wait_for_ok(
            &format!("{name} to have reason {reason}"),
            WAIT,
            || async move {
                let fcc = fccs.get(name).await.map_err(|e| e.to_string())?;
                let ready = ready_condition(&fcc);
                match ready {
                    Some(c) if c.reason == reason => Ok((fcc, c)),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }

    pub async fn wait_gone(&self, name: &str) {
        let fccs = &self.fccs;
        cluster::wait_for(&format!("{name} to be gone"), WAIT, || async move {
            fccs.get_opt(name)
                .await
                .expect("get")
                .is_none()
                .then_some(())
        })
        .await
    }

    pub async fn events(&self) -> Vec<CoreEvent> {
        Api::<CoreEvent>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
    }

    /// The sandbox's record of the connections of this test, by name.
    pub async fn remote(&self, name: &str) -> Vec<Value> {
        self.sandbox
            .connections()
            .await
            .into_iter()
            .filter(|c| c["name"] == name)
            .collect()
    }

    pub async fn creates(&self) -> u64 {
        self.sandbox.stats().await.total("create_layer2")
    }
}

pub fn ready_condition(fcc: &FastConnectConnection) -> Option<Condition> {
    fcc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
}

pub fn connection_id(fcc: &FastConnectConnection) -> String {
    fcc.status
        .as_ref()
        .and_then(|s| s.connection_id.clone())
        .expect("status.connectionId")
}

pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

/// Sets the field at a `/`-separated path, creating what is missing on the way.
pub fn set(object: &mut Value, path: &str, value: Value) {
    let target = path
        .split('/')
        .filter(|part| !part.is_empty())
        .fold(object, |node, part| &mut node[part]);
    *target = value;
}

pub fn repo_path(path: &str) -> String {
    format!("{}/{path}", super::repo_root().display())
}
