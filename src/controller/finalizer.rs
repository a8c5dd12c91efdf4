//! The finalizer that guards the remote connection. It is added only right before something
//! remote may exist (an order or an adoption), so a resource that never ordered anything is
//! deleted at once.

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::crd::FastConnectConnection;

use super::{Error, status};

/// Guards the remote connection: the resource stays until the connection is disconnected.
pub const FINALIZER: &str = "fastconnect.dev/connection";

pub(super) fn has_finalizer(fcc: &FastConnectConnection) -> bool {
    fcc.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds our finalizer, only if the object is unchanged since it was read.
pub(super) async fn add_finalizer(
    api: &Api<FastConnectConnection>,
    fcc: &FastConnectConnection,
) -> Result<FastConnectConnection, Error> {
    if has_finalizer(fcc) {
        return Ok(fcc.clone());
    }
    let mut finalizers = fcc.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    patch_finalizers(api, fcc, finalizers).await
}

pub(super) async fn remove_finalizer(
    api: &Api<FastConnectConnection>,
    fcc: &FastConnectConnection,
) -> Result<(), Error> {
    let finalizers: Vec<String> = fcc
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match patch_finalizers(api, fcc, finalizers).await {
        // Already gone: someone else finished the job.
        Err(Error::Finalizer(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn patch_finalizers(
    api: &Api<FastConnectConnection>,
    fcc: &FastConnectConnection,
    finalizers: Vec<String>,
) -> Result<FastConnectConnection, Error> {
    let patch = json!({
        "metadata": {
            "resourceVersion": fcc.resource_version(),
            "finalizers": finalizers,
        }
    });
    api.patch(
        &fcc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|error| match error {
        kube::Error::Api(e) if e.code == 409 => Error::Status(status::Error::Conflict),
        other => Error::Finalizer(other),
    })
}
