//! The HTTP routes. [`app`]: the page (`/`), its assets, `/api/status` (the snapshot as JSON),
//! `/api/sections` (the page's sections, rendered), `/api/events` (the sections as server-sent
//! events on every new snapshot), `/metrics`, `/healthz` and `/readyz`; GET and HEAD only.
//! [`hooks`]: the webhook receivers, with their deliveries counted for `/metrics`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Serialize;
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::view::LocalEvent;
use super::{Web, assets, metrics, page};
use crate::controller::state::Snapshot;
use crate::webhook::{HookSink, ReceiverSettings};

/// The shape of `/api/sections`; bumped on incompatible changes (`/api/status` carries the
/// snapshot's own `version`).
pub const SECTIONS_VERSION: u32 = 1;

/// How long an EventSource waits before reconnecting (the `retry:` field).
pub const SSE_RETRY: Duration = Duration::from_secs(3);

/// The Content-Security-Policy of every response: nothing but the page's own script, style
/// and favicon, and connections back to itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page, its API, metrics and health: GET and HEAD only.
pub fn app(web: Web) -> Router {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/api/status", get(status))
        .route("/api/sections", get(sections))
        .route("/api/events", get(events))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready));
    for (path, content_type, body) in assets::FILES {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    // Browsers ask for /favicon.ico whatever the page says.
    let (_, svg_type, svg) = assets::FILES[2];
    router = router.route("/favicon.ico", get(move || async move { asset(svg_type, svg) }));
    router.with_state(web).layer(middleware::map_response(secure))
}

/// The webhook receivers (`POST /hooks/...`), each delivery counted by forge and result, each
/// body read within `body_timeout`.
pub fn hooks(
    web: Web,
    receivers: Arc<ReceiverSettings>,
    sink: HookSink,
    body_timeout: Duration,
) -> Router {
    crate::webhook::router(receivers, sink)
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(middleware::from_fn_with_state(web, count_delivery))
        .layer(middleware::map_response(secure))
}

/// What a rejected delivery was rejected for, in words, from the receiver's answer (its
/// status, and for a 202 its own JSON words); `None` for an accepted or harmlessly ignored
/// one (a ping, another branch).
fn rejection(status: u16, answer: &str) -> Option<&'static str> {
    match status {
        401 => Some("bad signature"),
        413 => Some("body too large"),
        422 => Some("refused by the controller (a retry of an app it does not know)"),
        400 | 408 => Some("malformed or incomplete request"),
        202 if answer.contains("another repository") => Some("about another repository"),
        202 if answer.contains("duplicate delivery") => {
            Some("replayed (a delivery id seen before)")
        }
        _ => None,
    }
}

/// The largest receiver answer read back to classify it (the receivers' answers are a few
/// dozen bytes of their own JSON).
const ANSWER_LIMIT: usize = 4096;

async fn count_delivery(State(web): State<Web>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    // Only the known forges: a path of the client's choosing never becomes a label.
    let forge = match request.uri().path() {
        "/hooks/github" => Some("github"),
        "/hooks/gitlab" => Some("gitlab"),
        "/hooks/gitea" => Some("gitea"),
        "/hooks/generic" => Some("generic"),
        _ => None,
    };
    let response = next.run(request).await;
    if let Some(forge) = forge {
        let result = match response.status().as_u16() {
            200 => "accepted",
            202 => "ignored",
            400 | 408 => "bad_request",
            401 => "unauthorized",
            404 => "not_configured",
            405 => "method_not_allowed",
            413 => "too_large",
            422 => "refused",
            _ => "error",
        };
        web.count_delivery(forge, result);
        let status = response.status().as_u16();
        let (response, answer) = if status == 202 {
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, ANSWER_LIMIT).await.unwrap_or_default();
            let answer = String::from_utf8_lossy(&bytes).into_owned();
            (Response::from_parts(parts, axum::body::Body::from(bytes)), answer)
        } else {
            (response, String::new())
        };
        if let Some(why) = rejection(status, &answer) {
            let from = peer.map(|p| format!(" from {p}")).unwrap_or_default();
            web.reject_delivery(format!("{forge} delivery{from} rejected: {why}"));
        }
        return response;
    }
    response
}

/// Security headers on every response.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

async fn index(State(web): State<Web>) -> Response {
    let html = page::page_with(&web.snapshot(), &web.local_events(), SystemTime::now());
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn status(State(web): State<Web>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(web.snapshot())).into_response()
}

#[derive(Serialize)]
struct SectionsBody {
    version: u32,
    sections: BTreeMap<String, String>,
}

fn sections_json(snapshot: &Snapshot, local: &[LocalEvent]) -> String {
    let body = SectionsBody {
        version: SECTIONS_VERSION,
        sections: page::sections_with(snapshot, local, SystemTime::now()),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

async fn sections(State(web): State<Web>) -> Response {
    let body = sections_json(&web.snapshot(), &web.local_events());
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body)
        .into_response()
}

/// Server-sent events: an `status` event with every section now, then one per new snapshot
/// or rejected delivery. A slow client skips to the latest snapshot (a `watch` channel keeps
/// only that); every stream ends when the server shuts down.
async fn events(State(web): State<Web>) -> Response {
    let mut snapshots = web.status.receiver();
    snapshots.mark_changed();
    let rejections = web.rejections.subscribe();
    let state = (snapshots, rejections, web.clone());
    let stream =
        futures_util::stream::unfold(state, |(mut snapshots, mut rejections, web)| async move {
            tokio::select! {
                changed = snapshots.changed() => changed.ok()?,
                changed = rejections.changed() => changed.ok()?,
            }
            let snapshot = snapshots.borrow_and_update().clone();
            rejections.mark_unchanged();
            let data = sections_json(&snapshot, &web.local_events());
            let event = Event::default().event("status").retry(SSE_RETRY).data(data);
            Some((Ok::<_, Infallible>(event), (snapshots, rejections, web)))
        })
        .take_until(web.shutdown.clone().cancelled_owned());
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    ([(HeaderName::from_static("x-accel-buffering"), "no")], sse).into_response()
}

async fn prometheus(State(web): State<Web>) -> Response {
    let text = metrics::render(&web.snapshot(), &web.deliveries());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

/// Live while the reconcile loop makes progress (its heartbeat).
async fn healthz(State(web): State<Web>) -> Response {
    match web.heartbeat.as_ref().map(|h| h.check()) {
        Some(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
        _ => "ok\n".into_response(),
    }
}

/// Ready once the repository was read and a first sync finished.
async fn ready(State(web): State<Web>) -> Response {
    match web.snapshot().ready() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rejection;

    #[test]
    fn rejections_are_named_from_the_receivers_answer() {
        assert_eq!(rejection(401, ""), Some("bad signature"));
        assert_eq!(rejection(413, ""), Some("body too large"));
        let other = r#"{"ignored":"another repository than the watched one"}"#;
        assert_eq!(rejection(202, other), Some("about another repository"));
        let replay = r#"{"ignored":"duplicate delivery"}"#;
        assert_eq!(rejection(202, replay), Some("replayed (a delivery id seen before)"));
        assert_eq!(rejection(202, r#"{"ignored":"a push to another branch"}"#), None);
        assert_eq!(rejection(200, ""), None);
    }
}
