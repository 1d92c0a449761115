//! Connections to replicas: HTTP/1.1 over TCP, one hyper client connection per socket, kept
//! idle per endpoint ([`Pool`], owned by the endpoint, so it survives table swaps and goes
//! with the endpoint) for reuse.
//!
//! Why not hyper-util's pooled client: per request it boxes the future, clones the connector
//! and the pool key, locks a pool map keyed by scheme and authority, rewrites the URI and
//! spawns a task to put the connection back. Here the endpoint is in hand: a checkout is one
//! uncontended lock of its own short list, and the connection goes back when the response
//! body ends ([`Lease`]).
//!
//! # Guarantees
//!
//! * A connection is reused only while younger than the upstream idle timeout (below the
//!   backends' keep-alive timeouts) and not closed; stale ones are dropped at checkout and by
//!   [`Pool::purge`] (the prober calls it).
//! * A request that a reused connection refused before writing a byte (the backend had
//!   just closed it) is sent again on another connection, as hyper-util does; that is not a
//!   failure of the request.
//! * A connection goes back to the pool only after its response body ended cleanly; one
//!   whose response was abandoned is dropped (hyper then closes it).
//! * When the endpoint is closed (it left the fleet), its connections' tasks end at once:
//!   a request waiting on one fails, and a response body streaming from one ends with an
//!   error, instead of waiting on a dead host until a timeout.
//! * Connecting is bounded by the connect timeout; waiting for a pooled connection to be
//!   ready again is bounded the same way.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::proxy::ProxyBody;

/// Idle connections to one endpoint, most recently used last.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection younger than `max_age`; older ones are
    /// dropped.
    fn checkout(&self, now: Instant, max_age: Duration) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.lock();
        while let Some(entry) = idle.pop() {
            if now.saturating_duration_since(entry.since) >= max_age {
                // The rest are older still.
                idle.clear();
                return None;
            }
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Puts a connection back for reuse, unless `max_idle` are already kept.
    fn put(&self, sender: SendRequest<ProxyBody>, max_idle: usize) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < max_idle {
            idle.push(Idle { sender, since: Instant::now() });
        }
    }

    /// Drops idle connections older than `max_age` or closed.
    pub fn purge(&self, now: Instant, max_age: Duration) {
        self.lock()
            .retain(|e| now.saturating_duration_since(e.since) < max_age && !e.sender.is_closed());
    }

    /// Drops every idle connection.
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }
}

/// The settings connections are made and kept with.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
}

/// Why a request could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: nothing was sent.
    Connect(String),
    /// The connection failed after the request was handed to it, before response headers.
    Request(hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(why) => write!(f, "connect: {why}"),
            SendError::Request(error) => {
                write!(f, "{error}")?;
                let mut source = std::error::Error::source(error);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

/// A connection lent to one request; [`release`](Self::release) gives it back to the pool.
#[derive(Debug)]
pub struct Lease {
    sender: SendRequest<ProxyBody>,
}

impl Lease {
    /// Back to `pool` for the next request (its response body ended cleanly).
    pub fn release(self, pool: &Pool, max_idle: usize) {
        pool.put(self.sender, max_idle);
    }
}

/// Sends `req` (origin-form URI, `Host` set) to `authority` over a pooled connection or a
/// new one. Returns the response head with the connection's lease.
pub async fn send(
    pool: &Pool,
    authority: &str,
    closing: &CancellationToken,
    settings: Settings,
    mut req: Request<ProxyBody>,
) -> Result<(Response<Incoming>, Lease), SendError> {
    loop {
        let (mut sender, reused) = match pool.checkout(Instant::now(), settings.idle_timeout) {
            Some(sender) => (sender, true),
            None => (connect(authority, closing, settings.connect_timeout).await?, false),
        };
        if reused && !sender.is_ready() {
            // Its last response ended a moment ago; the connection's task has not yet
            // asked for the next request.
            match tokio::time::timeout(settings.connect_timeout, sender.ready()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => continue,
            }
        }
        match sender.try_send_request(req).await {
            Ok(response) => return Ok((response, Lease { sender })),
            Err(mut error) => match error.take_message() {
                // Refused before a byte was written: the backend had closed it.
                Some(unsent) if reused => req = unsent,
                _ => return Err(SendError::Request(error.into_error())),
            },
        }
    }
}

/// A new connection to `authority`, its task spawned (ended when `closing` is cancelled).
async fn connect(
    authority: &str,
    closing: &CancellationToken,
    timeout: Duration,
) -> Result<SendRequest<ProxyBody>, SendError> {
    if closing.is_cancelled() {
        return Err(SendError::Connect("the replica left the fleet".into()));
    }
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(SendError::Connect(format!("{authority}: {error}"))),
        Err(_) => {
            return Err(SendError::Connect(format!(
                "{authority}: no connection within {timeout:?}"
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(format!("{authority}: {e}")))?;
    let closing = closing.clone();
    tokio::spawn(async move {
        tokio::select! {
            result = connection.with_upgrades() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "router: upstream connection ended");
                }
            }
            () = closing.cancelled() => {}
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::service::service_fn;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A keep-alive HTTP/1 server on loopback that counts the connections it accepted.
    async fn server() -> (String, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicU32::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    fn get(addr: &str) -> Request<ProxyBody> {
        Request::get("/")
            .header(http::header::HOST, addr)
            .body(Empty::new().map_err(|e| match e {}).boxed())
            .unwrap()
    }

    #[tokio::test]
    async fn connections_are_reused_while_fresh_and_dropped_when_stale() {
        let (addr, accepted) = server().await;
        let pool = Pool::default();
        let closing = CancellationToken::new();
        let settings = Settings {
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_millis(300),
            max_idle: 4,
        };
        for _ in 0..5 {
            let (response, lease) =
                send(&pool, &addr, &closing, settings, get(&addr)).await.unwrap();
            assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "ok");
            lease.release(&pool, settings.max_idle);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection served every request");
        assert_eq!(pool.idle_count(), 1);

        // Older than the idle timeout: never reused, a new connection is made.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let (response, lease) = send(&pool, &addr, &closing, settings, get(&addr)).await.unwrap();
        let _ = response.into_body().collect().await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        lease.release(&pool, settings.max_idle);
        pool.purge(Instant::now() + Duration::from_secs(1), settings.idle_timeout);
        assert_eq!(pool.idle_count(), 0, "purged once stale");

        // A closed endpoint makes no new connection.
        closing.cancel();
        let error = send(&pool, &addr, &closing, settings, get(&addr)).await.unwrap_err();
        assert!(error.is_connect(), "{error}");
    }
}
