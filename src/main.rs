//! Wiring only: configuration, telemetry, clients, the metrics server, leader election and the
//! controller.

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use fastconnect_operator::{
    config::Config,
    consoleconnect::{self, Client},
    controller::{self, Context},
    leader::LeaseLock,
    metrics::Metrics,
    server::{self, Readiness},
    telemetry,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

#[tokio::main]
async fn main() -> ExitCode {
    // Test hooks, from FAILPOINTS; compiled in only with the `failpoints` feature.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
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
    controller::check_crd(&kube, &namespaces)
        .await
        .map_err(|e| {
            format!(
                "cannot list FastConnectConnections ({e}); install the CRD with \
             `kubectl apply -f crds/` (or the Helm chart) and check the RBAC"
            )
        })?;

    let readiness = Readiness::default();
    let app = server::router(metrics.clone(), readiness.clone());
    let listen = config.listen;
    let listener = server::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} for /metrics, /healthz, /readyz: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = server::serve(listener, app).await {
            error!("metrics server on {listen} stopped: {e}");
        }
    });

    // Follow before acting. With leader election, /readyz turns ready once the Lease has been
    // read, on followers too: a rollout must not wait for the old leader to let go, and a
    // follower is ready to take over. Without it, once the controller's watches have synced.
    let leadership = match config.leader_election()? {
        None => None,
        Some(lease) => {
            let lock = LeaseLock::new(kube.clone(), lease).map_err(|e| e.to_string())?;
            tokio::spawn(server::report_standing(
                lock.standing(),
                readiness.clone(),
                metrics.clone(),
            ));
            info!(
                lease = lock.lease(),
                identity = lock.identity(),
                "waiting for leadership"
            );
            tokio::select! {
                acquired = lock.acquire() => {
                    Some(acquired.map_err(|e| format!("leader election failed: {e}"))?)
                }
                () = shutdown_signal() => {
                    info!("shutdown requested while waiting for leadership");
                    return Ok(());
                }
            }
        }
    };

    let ctx = Arc::new(Context::new(kube, api, config.settings(), metrics.clone()));
    info!(api = %config.api_base_url, namespaces = ?namespaces.0, "starting controller");
    let Some(leadership) = leadership else {
        // The only replica: it reconciles, so it counts as leader (the gauge sums to 1 either
        // way).
        metrics.set_leader(true);
        controller::run(ctx, namespaces, readiness.clone()).await;
        metrics.set_leader(false);
        readiness.set_not_ready();
        info!("controller stopped");
        return Ok(());
    };
    // Losing the Lease ends the process at once (dropping the controller mid-reconcile), so
    // that two replicas never act together; the restarted Pod follows again. Readiness and the
    // leader gauge fall with the Lease (report_standing), not with the watches.
    tokio::select! {
        () = controller::run(ctx, namespaces, readiness) => {
            info!("controller stopped; releasing the lease");
            if let Err(e) = leadership.release().await {
                warn!(error = %e, "cannot release the lease; it expires by itself");
            }
            Ok(())
        }
        reason = leadership.lost() => Err(format!("lost leadership ({reason}); exiting")),
    }
}

/// SIGTERM (Kubernetes stopping the Pod) or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            // Without a SIGTERM handler the default action ends the process anyway.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        Ok(()) = tokio::signal::ctrl_c() => {}
    }
}
