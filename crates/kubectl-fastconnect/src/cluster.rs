//! Kubernetes as the user sees it: their kubeconfig, their context's namespace, their RBAC. The
//! only Secret reads are plain `get`s of the Secrets a command names.

use fastconnect_operator::{
    consoleconnect::ApiKey,
    controller::inputs::{self, is_virtual_circuit_ocid},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{cli::KubeArgs, error::Error};

/// A client for the kubeconfig and context the flags name, and the namespace to work in.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

impl Cluster {
    pub async fn connect(args: &KubeArgs) -> Result<Cluster, Error> {
        let options = KubeConfigOptions {
            context: args.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(Error::Kubeconfig)?;
                Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => Config::from_kubeconfig(&options).await,
        }
        .map_err(Error::Kubeconfig)?;
        // kube sets the context's namespace, or "default", as kubectl does.
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(Error::KubeClient)?;
        Ok(Cluster { client, namespace })
    }

    /// The Console Connect API key in Secret `name`, key `key`, of the namespace.
    pub async fn api_key(&self, name: &str, key: &str) -> Result<ApiKey, Error> {
        let text = self.secret_text(name, key, &API_KEY).await?;
        Ok(ApiKey::new(text))
    }

    /// Checks, as the operator does before it orders, that Secret `name` holds a virtual
    /// circuit OCID at `key`. The value is dropped here: nothing may print it.
    pub async fn check_ocid(&self, name: &str, key: &str) -> Result<(), Error> {
        let text = self.secret_text(name, key, &OCID).await?;
        if is_virtual_circuit_ocid(&text) {
            return Ok(());
        }
        Err(inputs::Error::InvalidOcid {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            key: key.to_owned(),
        }
        .into())
    }

    /// The trimmed UTF-8 text at `key` of Secret `name`.
    async fn secret_text(&self, name: &str, key: &str, what: &Held) -> Result<String, Error> {
        let secrets = Api::<Secret>::namespaced(self.client.clone(), &self.namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|source| Error::SecretUnreadable {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                source,
            })?
            .ok_or_else(|| Error::SecretNotFound {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
            })?;
        let mut data = secret.data.unwrap_or_default();
        let bytes = data.remove(key).ok_or_else(|| Error::SecretKeyMissing {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            key: key.to_owned(),
            flag: what.key_flag,
        })?;
        match String::from_utf8(bytes.0) {
            Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
            _ => Err(Error::SecretValueUnusable {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
                holds: what.holds,
            }),
        }
    }
}

/// What a Secret holds, for the messages about it.
struct Held {
    key_flag: &'static str,
    holds: &'static str,
}

const API_KEY: Held = Held {
    key_flag: "--key",
    holds: "the Console Connect API key",
};

const OCID: Held = Held {
    key_flag: "--ocid-key",
    holds: "the OCID of your FastConnect virtual circuit",
};
