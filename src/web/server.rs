//! The HTTP/1 server for the page, the API and the webhook receivers, hardened for a port that
//! may face the Internet: hyper's connection builder with a header-read timeout, a cap on open
//! connections, and a graceful shutdown that waits a bounded time.
//!
//! # Guarantees
//!
//! * A client must send a request's headers within [`Limits::header_read_timeout`], counted
//!   from when the server starts waiting for them: a client that trickles its headers (one
//!   byte a second, say) is cut off, and so is a keep-alive connection idle that long between
//!   requests.
//! * At most [`Limits::max_connections`] connections are served at once; a connection beyond
//!   that is accepted and closed at once (nothing is read from it, nothing kept for it), so a
//!   flood of idle connections costs no memory beyond the cap.
//! * Request bodies are read within a deadline where bodies are read (the webhook router's
//!   body timeout, see [`super::hooks`]); headers are capped at [`Limits::max_header_bytes`].
//! * [`serve`] returns within [`Limits::shutdown_grace`] (plus a few milliseconds) of the
//!   shutdown token's cancellation, whatever the clients do: it stops accepting at once, lets
//!   requests in flight finish during the grace period, then drops every connection left.
//!   Live streams end on the same token, so they do not hold shutdown up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The server's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this; also the longest a keep-alive connection
    /// may sit idle between requests.
    pub header_read_timeout: Duration,
    /// A request body must arrive within this (applied by the routers that read bodies).
    pub body_timeout: Duration,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// The largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; see the module's guarantees.
/// Requests carry the peer address as axum's [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's read buffer bounds the head; it needs at least 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.max_connections, "connection closed: too many open");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = connections.len();
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::info!(open, grace = ?limits.shutdown_grace, "connections still open after the grace period: closed");
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
