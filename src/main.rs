//! Wiring only: configuration, telemetry, clients, the metrics server and the controller.

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use fastconnect_operator::{
    config::Config,
    consoleconnect::{self, Client},
    controller::{self, Context},
    metrics::Metrics,
    server::{self, Readiness},
    telemetry,
};
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(error) = telemetry::init(&config.log_level, config.log_format) {
        eprintln!("invalid --log-level {:?}: {error}", config.log_level);
        return ExitCode::FAILURE;
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    consoleconnect::install_crypto_provider();
    let metrics = Arc::new(Metrics::new());
    let observer = {
        let metrics = metrics.clone();
        Arc::new(move |endpoint, code, took| metrics.observe_request(endpoint, code, took))
    };
    let api = Client::new(config.client())
        .map_err(|e| format!("cannot build the Console Connect client: {e}"))?
        .with_observer(observer);
    let kube = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes: {e}"))?;
    let namespaces = config.namespaces();
    controller::check_crd(&kube, &namespaces).await.map_err(|e| {
        format!(
            "cannot list FastConnectConnections ({e}); install the CRD with \
             `kubectl apply -f crds/` (or the Helm chart) and check the RBAC"
        )
    })?;

    let readiness = Readiness::default();
    let app = server::router(metrics.clone(), readiness.clone());
    let listen = config.listen;
    tokio::spawn(async move {
        if let Err(e) = server::serve(listen, app).await {
            error!("metrics server on {listen} stopped: {e}");
        }
    });

    let ctx = Arc::new(Context::new(kube, api, config.settings(), metrics));
    info!(api = %config.api_base_url, namespaces = ?namespaces.0, "starting controller");
    controller::run(ctx, namespaces, readiness).await;
    info!("controller stopped");
    Ok(())
}
