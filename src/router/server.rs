//! The router's listeners (HTTP/1 and HTTP/2 on one port, upgrades passed through, graceful
//! shutdown; in clear, or TLS with ALPN h2 / http/1.1) and the active prober.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::join_all;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Router;
use super::endpoint::Endpoint;
use super::proxy;
use super::tls::Tls;
use super::upstream;

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Router {
    /// Serves clients on `listener` until `shutdown` is cancelled; then stops accepting and
    /// lets the open connections finish their requests, at most the drain timeout.
    pub async fn serve(&self, listener: TcpListener, shutdown: CancellationToken) {
        self.accept_loop(listener, None, shutdown).await
    }

    /// [`serve`](Self::serve) over TLS: each connection's handshake (bounded by
    /// [`HANDSHAKE_TIMEOUT`]) picks its certificate by SNI and its protocol by ALPN.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: Arc<Tls>,
        shutdown: CancellationToken,
    ) {
        self.accept_loop(listener, Some(tls), shutdown).await
    }

    async fn accept_loop(
        &self,
        listener: TcpListener,
        tls: Option<Arc<Tls>>,
        shutdown: CancellationToken,
    ) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.shared.config.client_idle_timeout)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, "router: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            if let Some(tls) = &tls {
                let (acceptor, builder, watcher) =
                    (tls.acceptor().clone(), builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "router: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "router: TLS handshake timed out");
                            return;
                        }
                    };
                    let client = Arc::new(proxy::Client::new(peer, true));
                    let service = service_fn(move |req| {
                        Box::pin(proxy::handle(shared.clone(), client.clone(), req))
                    });
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %error, "router: client connection ended");
                    }
                });
                continue;
            }
            let client = Arc::new(proxy::Client::new(peer, false));
            // Boxed: hyper keeps room for the service's future in every connection, idle
            // ones included; a box is made per request instead and freed when it ends.
            let service =
                service_fn(move |req| Box::pin(proxy::handle(shared.clone(), client.clone(), req)));
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, error = %error, "router: client connection ended");
                }
            });
        }
        drop(listener);
        let timeout = self.shared.config.drain_timeout;
        if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
            tracing::warn!(?timeout, "router: client connections still open at shutdown");
        }
    }

    /// Binds `addr` and serves on it in a task; returns the bound address.
    pub async fn spawn_listener(
        &self,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let router = self.clone();
        Ok((bound, tokio::spawn(async move { router.serve(listener, shutdown).await })))
    }

    /// Binds `addr` and serves TLS on it in a task; returns the bound address.
    pub async fn spawn_tls_listener(
        &self,
        addr: SocketAddr,
        tls: Arc<Tls>,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let router = self.clone();
        Ok((bound, tokio::spawn(async move { router.serve_tls(listener, tls, shutdown).await })))
    }

    /// Probes every endpoint of the table each probe interval (and at once when new
    /// endpoints appear) until `shutdown`.
    pub async fn run_prober(&self, shutdown: CancellationToken) {
        loop {
            let table = self.table();
            let mut endpoints: Vec<&Arc<Endpoint>> =
                table.rules().flat_map(|r| r.endpoints.iter()).collect();
            endpoints.sort_by_key(|e| Arc::as_ptr(e));
            endpoints.dedup_by(|a, b| Arc::ptr_eq(a, b));
            join_all(endpoints.into_iter().map(|e| self.probe(e))).await;
            drop(table);
            tokio::select! {
                () = tokio::time::sleep(self.shared.config.probe_interval) => {}
                () = self.shared.probe_now.notified() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn probe(&self, endpoint: &Endpoint) {
        let upstream = self.shared.upstream;
        endpoint.pool.purge(std::time::Instant::now(), upstream.idle_timeout);
        if endpoint.is_draining() {
            return;
        }
        let config = &self.shared.config;
        let request = Request::get(config.probe_path.as_str())
            .header(header::HOST, endpoint.authority.as_str())
            .header(header::USER_AGENT, "gitfleet-router-probe")
            .body(Empty::new().map_err(|e| match e {}).boxed());
        let Ok(request) = request else { return };
        let answer = tokio::time::timeout(config.probe_timeout, async {
            let pool = &endpoint.pool;
            let closing = endpoint.closing_token();
            let (response, lease) =
                upstream::send(pool, endpoint.authority.as_str(), closing, upstream, request)
                    .await?;
            let status = response.status();
            // Read the body so the connection can be reused.
            if response.into_body().collect().await.is_ok() {
                lease.release(pool, upstream.max_idle);
            }
            Ok::<_, upstream::SendError>(status)
        })
        .await;
        match answer {
            Ok(Ok(status)) if status.as_u16() < 500 => endpoint.update_health(|h| h.probe_passed()),
            Ok(Ok(status)) => {
                endpoint.update_health(|h| h.probe_failed(format!("probe answered {status}")))
            }
            Ok(Err(error)) => {
                endpoint.update_health(|h| h.probe_failed(format!("probe failed: {error}")))
            }
            Err(_) => endpoint.update_health(|h| {
                h.probe_failed(format!("probe: no answer within {:?}", config.probe_timeout))
            }),
        }
    }
}
