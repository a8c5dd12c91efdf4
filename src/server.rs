//! The HTTP server for `/metrics`, `/healthz` and `/readyz`.
//!
//! `/healthz` answers as soon as the process serves. `/readyz` says whether this replica is fit
//! to do the operator's work: without leader election, once its watches have synced; with
//! leader election, once it has read the Lease, whether it then leads or follows. Followers are
//! ready on purpose: a rollout (maxUnavailable 0) waits for a new pod to be ready before it
//! stops an old one, and the new pod follows as long as the old leader holds the Lease, so a
//! follower that is never ready would hang it.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::{net::TcpListener, sync::watch};

use crate::{leader::Standing, metrics::Metrics};

/// What `/readyz` answers; see the module documentation for when it is set.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// For a replica that is shutting down or has lost the Lease: it will not reconcile again.
    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(AppState { metrics, readiness })
}

/// Binds the server's address. Done at start-up, before [`serve`], so that a port that cannot
/// be bound stops the process instead of leaving it running without probes or metrics.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

/// Keeps `/readyz` and the `leader` gauge in step with the election, until the election's
/// [`LeaseLock`](crate::leader::LeaseLock) is gone. Ready while following or leading (either
/// can do the work, the follower once it takes over); not ready before the Lease was ever read
/// and once leadership ended.
pub async fn report_standing(
    mut standing: watch::Receiver<Standing>,
    readiness: Readiness,
    metrics: Arc<Metrics>,
) {
    loop {
        let now = standing.borrow_and_update().clone();
        metrics.set_leader(now == Standing::Leading);
        match now {
            Standing::Unknown => {}
            Standing::Following { .. } | Standing::Leading => readiness.set_ready(),
            Standing::Stopped => readiness.set_not_ready(),
        }
        if standing.changed().await.is_err() {
            return;
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    match state.metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_line(metrics: &Metrics) -> String {
        let text = metrics.render().unwrap();
        text.lines()
            .find(|l| l.starts_with("fastconnect_leader "))
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the reporter has seen the latest value: it marks it seen before it acts, so
    /// poll for the effect rather than for the mark.
    async fn settled(check: impl Fn() -> bool) {
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while !check() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the reporter followed the standing");
    }

    #[tokio::test]
    async fn followers_and_leaders_are_ready_and_only_the_leader_counts_as_leader() {
        let (tx, rx) = watch::channel(Standing::Unknown);
        let readiness = Readiness::default();
        let metrics = Arc::new(Metrics::new());
        let reporter = tokio::spawn(report_standing(rx, readiness.clone(), metrics.clone()));

        settled(|| leader_line(&metrics) == "fastconnect_leader 0").await;
        assert!(!readiness.is_ready(), "not ready before the Lease was read");

        tx.send_replace(Standing::Following {
            holder: "other".into(),
        });
        settled(|| readiness.is_ready()).await;
        assert_eq!(leader_line(&metrics), "fastconnect_leader 0");

        tx.send_replace(Standing::Leading);
        settled(|| leader_line(&metrics) == "fastconnect_leader 1").await;
        assert!(readiness.is_ready());

        tx.send_replace(Standing::Stopped);
        settled(|| !readiness.is_ready()).await;
        assert_eq!(leader_line(&metrics), "fastconnect_leader 0");

        drop(tx);
        reporter.await.expect("the reporter ends with the election");
    }
}
