//! The controller's HTTP side: the webhook receivers (`/hooks/...`), liveness (`/healthz`:
//! 503 once the loop made no progress for the heartbeat's bound), readiness (`/readyz`: 200
//! once the repository has been read and a first sync finished), metrics for Prometheus
//! (`/metrics`), and the status snapshot as JSON (`/api/status`). Everything is read from a
//! [`StatusReader`] and the [`Heartbeat`], never from the loop itself.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::health::Heartbeat;
use super::state::{Snapshot, StatusReader};
use crate::webhook::{HookSink, ReceiverSettings, router as webhook_router};

#[derive(Clone)]
struct Shared {
    status: StatusReader,
    heartbeat: Arc<Heartbeat>,
}

/// Every route the controller serves.
pub fn router(
    status: StatusReader,
    heartbeat: Arc<Heartbeat>,
    receivers: Arc<ReceiverSettings>,
    sink: HookSink,
) -> Router {
    let state_routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/status", get(status_json))
        .route("/metrics", get(metrics))
        .with_state(Shared { status, heartbeat });
    state_routes.merge(webhook_router(receivers, sink))
}

async fn healthz(State(shared): State<Shared>) -> Response {
    match shared.heartbeat.check() {
        Ok(()) => "ok\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn readyz(State(shared): State<Shared>) -> Response {
    match shared.status.get().ready() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response()
        }
    }
}

async fn metrics(State(shared): State<Shared>) -> String {
    super::metrics::render(&shared.status.get())
}

async fn status_json(State(shared): State<Shared>) -> Json<Arc<Snapshot>> {
    Json(shared.status.get())
}
