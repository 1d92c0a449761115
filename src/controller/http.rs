//! The controller's HTTP side: the webhook receivers (`/hooks/...`), a health endpoint for
//! probes (`/healthz`), metrics for Prometheus (`/metrics`), and the controller's state as
//! JSON (`/api/status`), read from the
//! [`Store`] without reaching into the loop. The status page proper comes with `web/`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::state::{Snapshot, Store};
use crate::webhook::{HookSink, ReceiverSettings, router as webhook_router};

/// Every route the controller serves.
pub fn router(store: Arc<Store>, receivers: Arc<ReceiverSettings>, sink: HookSink) -> Router {
    let state_routes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(store);
    state_routes.merge(webhook_router(receivers, sink))
}

async fn metrics(State(store): State<Arc<Store>>) -> String {
    super::metrics::render(&store.snapshot())
}

async fn status(State(store): State<Arc<Store>>) -> Json<Snapshot> {
    Json(store.snapshot())
}
