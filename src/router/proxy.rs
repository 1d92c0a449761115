//! One client request through the router: match the rule, choose a replica, forward with the
//! `X-Forwarded-*` / `Forwarded` headers, retry by the rules of [`retry`](super::retry),
//! pass upgrades (WebSocket) through, log and count.
//!
//! # Guarantees
//!
//! * A request is in flight on its endpoint until its response body has ended (or the
//!   upgraded connection closed), which is what draining waits for.
//! * Every wait is bounded: the body read for buffering and the wait for response headers
//!   by the response timeout, connecting by the connect timeout, a streamed request body
//!   and a response body by the body idle timeout ([`idle`](super::idle): no byte for that
//!   long ends it with an error; the replica sees the request cut short, the client the
//!   response).
//!
//! # Cost per request
//!
//! This is the router's hot path (`scripts/bench-router.sh`): no header map is built twice,
//! the host and path are borrowed, the forwarding headers that depend only on the client
//! connection are made once per connection ([`Client`]), and the upstream connection comes
//! from the endpoint's own pool ([`upstream`](super::upstream)).
//! * Answers of its own: 400 (no host), 404 (no rule), 413 (body over the limit), 502 (the
//!   replicas failed), 503 + `Retry-After` (no usable replica), 504 (no response in time).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;

use super::Shared;
use super::endpoint::{Endpoint, InFlight};
use super::idle::{IdleBody, Side};
use super::retry::{self, Failure};
use super::sticky;
use super::table::Rule;
use super::upstream::{self, Lease};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of requests to upstreams and responses to clients.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// One client connection: who it is from and the forwarding headers that follow from that,
/// made once per connection rather than once per request.
#[derive(Debug)]
pub struct Client {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's address as `X-Forwarded-For` names it.
    ip: HeaderValue,
    /// `for=…;proto=…` of `Forwarded`, without the host.
    forwarded: String,
    /// The first `(Host, Forwarded)` pair made on this connection (clients send the same
    /// host on every request of a connection; another host gets its value made afresh).
    cached: OnceLock<(HeaderValue, HeaderValue)>,
}

impl Client {
    pub fn new(peer: SocketAddr, tls: bool) -> Client {
        let ip = peer.ip().to_string();
        let node = if peer.is_ipv6() { format!("\"[{ip}]\"") } else { ip.clone() };
        let proto = if tls { "https" } else { "http" };
        Client {
            peer,
            tls,
            ip: HeaderValue::from_maybe_shared(Bytes::from(ip))
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded: format!("for={node};proto={proto}"),
            cached: OnceLock::new(),
        }
    }

    fn proto(&self) -> HeaderValue {
        HeaderValue::from_static(if self.tls { "https" } else { "http" })
    }

    /// This hop's `Forwarded` element for a request to `host`.
    fn forwarded(&self, host: &HeaderValue) -> Option<HeaderValue> {
        if let Some((seen, value)) = self.cached.get() {
            if seen == host {
                return Some(value.clone());
            }
        }
        let name = host.to_str().ok()?.replace('"', "");
        let value = HeaderValue::from_maybe_shared(Bytes::from(format!(
            "{};host=\"{name}\"",
            self.forwarded
        )))
        .ok()?;
        let _ = self.cached.set((host.clone(), value.clone()));
        Some(value)
    }
}

/// Serves one request. Never fails: errors become responses.
pub async fn handle(
    shared: Arc<Shared>,
    client: Arc<Client>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let Some(host) = request_host(&req) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "no Host header\n"));
    };
    let Ok(host_name) = host.to_str() else {
        return Ok(plain(StatusCode::BAD_REQUEST, "the Host header is not visible ASCII\n"));
    };
    let rule = shared.table.load().find(host_name, req.uri().path()).cloned();
    let Some(rule) = rule else {
        access(Line::of(&req), host_name, StatusCode::NOT_FOUND, None, 0, started);
        return Ok(plain(StatusCode::NOT_FOUND, "no route for this host and path\n"));
    };
    let response = if is_upgrade(&req) {
        upgrade(&shared, &rule, req, &client, &host, started).await
    } else {
        forward(&shared, &rule, req, &client, &host, started).await
    };
    rule.metrics.response(response.status().as_u16(), started.elapsed());
    Ok(response)
}

/// The host a request is for: `:authority` (HTTP/2, absolute-form) or `Host`.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).ok();
    }
    req.headers().get(header::HOST).cloned()
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes())).map_err(|e| match e {}).boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn no_replica(shared: &Shared, rule: &Rule) -> Response<ProxyBody> {
    rule.metrics.no_replica();
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "no healthy replica\n");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(shared.config.retry_after_secs));
    response
}

/// What the access log needs of a request: its method and path.
struct Line<'a> {
    method: &'a http::Method,
    path: &'a str,
}

impl<'a> Line<'a> {
    fn of<B>(req: &'a Request<B>) -> Self {
        Line { method: req.method(), path: req.uri().path() }
    }

    fn of_parts(parts: &'a http::request::Parts) -> Self {
        Line { method: &parts.method, path: parts.uri.path() }
    }
}

fn access(
    line: Line<'_>,
    host: &str,
    status: StatusCode,
    upstream: Option<&Endpoint>,
    tries: u32,
    started: Instant,
) {
    tracing::info!(
        target: "gitfleet::router::access",
        method = %line.method,
        host = %host,
        path = %line.path,
        status = status.as_u16(),
        upstream = upstream.map(|e| e.authority.as_str()).unwrap_or("-"),
        tries,
        micros = started.elapsed().as_micros() as u64,
    );
}

/// A request body held in memory (so it can be sent again) or streamed once.
enum RequestBody {
    Buffered(Bytes),
    Streamed(Option<Incoming>),
}

async fn forward(
    shared: &Shared,
    rule: &Rule,
    req: Request<Incoming>,
    client: &Client,
    host: &HeaderValue,
    started: Instant,
) -> Response<ProxyBody> {
    let config = &shared.config;
    let host_name = host.to_str().unwrap_or("-");
    let length = content_length(req.headers());
    if length.is_some_and(|l| l > config.body_limit) {
        access(Line::of(&req), host_name, StatusCode::PAYLOAD_TOO_LARGE, None, 0, started);
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    let (parts, body) = req.into_parts();
    let exact = body.size_hint().exact();
    let small = exact.or(length).is_some_and(|l| l <= config.buffer_limit as u64);
    let mut body = if body.is_end_stream() {
        RequestBody::Buffered(Bytes::new())
    } else if small {
        let read = Limited::new(body, config.buffer_limit).collect();
        match tokio::time::timeout(config.response_timeout, read).await {
            Ok(Ok(collected)) => RequestBody::Buffered(collected.to_bytes()),
            Ok(Err(_)) | Err(_) => {
                access(
                    Line::of_parts(&parts),
                    host_name,
                    StatusCode::BAD_REQUEST,
                    None,
                    0,
                    started,
                );
                return plain(StatusCode::BAD_REQUEST, "could not read the request body\n");
            }
        }
    } else {
        RequestBody::Streamed(Some(body))
    };
    let replayable = matches!(body, RequestBody::Buffered(_));
    shared.budget.request(started);
    let head = UpstreamHead::new(&parts, client, host, false);
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut tries = 0;
    let pinned = rule.cookie.as_deref().and_then(|name| sticky::pinned(&parts.headers, name));
    loop {
        let choice = pinned
            .and_then(|token| rule.pinned(token, &tried))
            .or_else(|| rule.pick(config.policy, &tried));
        let Some(endpoint) = choice.cloned() else {
            if tried.is_empty() {
                access(
                    Line::of_parts(&parts),
                    host_name,
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    tries,
                    started,
                );
                return no_replica(shared, rule);
            }
            access(
                Line::of_parts(&parts),
                host_name,
                StatusCode::BAD_GATEWAY,
                tried.last().map(|e| &**e),
                tries,
                started,
            );
            return plain(StatusCode::BAD_GATEWAY, "the replicas failed to answer\n");
        };
        tries += 1;
        let in_flight = endpoint.begin();
        let upstream_body = match &mut body {
            RequestBody::Buffered(bytes) if bytes.is_empty() => empty_body(),
            RequestBody::Buffered(bytes) => {
                Full::new(bytes.clone()).map_err(|e| match e {}).boxed()
            }
            RequestBody::Streamed(body) => match body.take() {
                Some(body) => Limited::new(
                    IdleBody::new(body, config.body_idle_timeout, Side::Request),
                    config.body_limit as usize,
                )
                .boxed(),
                None => empty_body(),
            },
        };
        let upstream = head.request(&parts, upstream_body);
        let sent = send_within_response_timeout(shared, &endpoint, upstream).await;
        let failure = match sent {
            Ok(Ok((response, lease))) => {
                endpoint.succeeded();
                access(
                    Line::of_parts(&parts),
                    host_name,
                    response.status(),
                    Some(&endpoint),
                    tries,
                    started,
                );
                let mut response = client_response(shared, response, in_flight, Some(lease));
                pin(rule, pinned, &endpoint, client.tls, &mut response);
                return response;
            }
            Ok(Err(error)) => {
                rule.metrics.upstream_error();
                if error.is_connect() {
                    endpoint.connect_failed(error.to_string());
                    Failure::Connect
                } else {
                    endpoint.request_failed();
                    tracing::debug!(upstream = %endpoint.authority, %error, "upstream failed before responding");
                    Failure::BeforeResponse
                }
            }
            Err(_elapsed) => {
                rule.metrics.upstream_error();
                endpoint.request_failed();
                Failure::Timeout
            }
        };
        drop(in_flight);
        let retry = retry::may_retry(failure, &parts.method, replayable, tries, started.elapsed())
            && shared.budget.try_retry(Instant::now());
        if !retry {
            let status = if failure == Failure::Timeout {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            access(Line::of_parts(&parts), host_name, status, Some(&endpoint), tries, started);
            return plain(
                status,
                if status == StatusCode::GATEWAY_TIMEOUT {
                    "the replica did not answer in time\n"
                } else {
                    "the replica failed to answer\n"
                },
            );
        }
        rule.metrics.retry();
        tried.push(endpoint);
    }
}

/// Sends `request` to `endpoint` over its pool, up to the response headers, within the
/// response timeout (the outer `Err` when it ran out).
async fn send_within_response_timeout(
    shared: &Shared,
    endpoint: &Endpoint,
    request: Request<ProxyBody>,
) -> Result<Result<(Response<Incoming>, Lease), upstream::SendError>, tokio::time::error::Elapsed> {
    let send = upstream::send(
        &endpoint.pool,
        endpoint.authority.as_str(),
        endpoint.closing_token(),
        shared.upstream,
        request,
    );
    tokio::time::timeout(shared.config.response_timeout, send).await
}

/// For a sticky rule: a `Set-Cookie` naming `endpoint` unless the client's cookie already did.
fn pin(
    rule: &Rule,
    pinned: Option<&str>,
    endpoint: &Endpoint,
    tls: bool,
    response: &mut Response<ProxyBody>,
) {
    let Some(name) = &rule.cookie else { return };
    if pinned == Some(endpoint.token.as_str()) {
        return;
    }
    if let Some(value) = sticky::set_cookie(name, &endpoint.token, &rule.path_prefix, tls) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn empty_body() -> ProxyBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// What every attempt of one request sends upstream, made once: the client's headers with
/// the hop-by-hop ones removed (kept for an upgrade), `Host` the client's, and the
/// forwarding headers added; the path and query in origin form.
struct UpstreamHead {
    headers: HeaderMap,
    path: Uri,
}

impl UpstreamHead {
    fn new(
        parts: &http::request::Parts,
        client: &Client,
        host: &HeaderValue,
        upgrade: bool,
    ) -> Self {
        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        if upgrade {
            if let Some(protocol) = parts.headers.get(header::UPGRADE) {
                headers.insert(header::UPGRADE, protocol.clone());
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
        }
        headers.insert(header::HOST, host.clone());
        headers.insert(X_FORWARDED_HOST, host.clone());
        let forwarded_for = match headers.get(X_FORWARDED_FOR).map(HeaderValue::to_str) {
            Some(Ok(earlier)) => HeaderValue::from_maybe_shared(Bytes::from(format!(
                "{earlier}, {}",
                client.ip.to_str().unwrap_or("unknown")
            )))
            .ok(),
            Some(Err(_)) => None,
            None => Some(client.ip.clone()),
        };
        if let Some(value) = forwarded_for {
            headers.insert(X_FORWARDED_FOR, value);
        }
        headers.insert(X_FORWARDED_PROTO, client.proto());
        let this = client.forwarded(host);
        let forwarded = match (headers.get(header::FORWARDED).map(HeaderValue::to_str), this) {
            (Some(Ok(earlier)), Some(this)) => HeaderValue::from_maybe_shared(Bytes::from(
                format!("{earlier}, {}", this.to_str().unwrap_or_default()),
            ))
            .ok(),
            (None, this) => this,
            (Some(_), _) => None,
        };
        if let Some(value) = forwarded {
            headers.insert(header::FORWARDED, value);
        }
        let path =
            parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        UpstreamHead { headers, path: Uri::from(path) }
    }

    /// One attempt's request: HTTP/1.1, origin-form.
    fn request(&self, parts: &http::request::Parts, body: ProxyBody) -> Request<ProxyBody> {
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = self.path.clone();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim).filter_map(|t| HeaderName::try_from(t).ok()))
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The upstream's response for the client: hop-by-hop headers removed, and the body
/// [`Tracked`]: the request stays in flight until it ends, the connection goes back to the
/// pool when it ends cleanly, and it ends with an error after the body idle timeout without
/// a byte.
fn client_response(
    shared: &Shared,
    response: Response<Incoming>,
    in_flight: InFlight,
    lease: Option<Lease>,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = Tracked {
        inner: IdleBody::new(body, shared.config.body_idle_timeout, Side::Response),
        ended: false,
        lease,
        max_idle: shared.upstream.max_idle,
        in_flight,
    };
    Response::from_parts(parts, body.boxed())
}

/// A response body that holds its request's in-flight count and its upstream connection
/// until it ends or is dropped.
struct Tracked {
    inner: IdleBody<Incoming>,
    /// The upstream body ended cleanly: its connection may serve another request.
    ended: bool,
    lease: Option<Lease>,
    max_idle: usize,
    in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.ended = true,
            // Failed or gone silent: the connection is in an unknown state, closed, not reused.
            Poll::Ready(Some(Err(_))) => this.lease = None,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            if self.ended || self.inner.is_end_stream() {
                lease.release(&self.in_flight.endpoint().pool, self.max_idle);
            }
        }
    }
}

/// An upgrade (WebSocket): forward the request, and on the upstream's 101 join the two
/// upgraded connections. The copy holds the in-flight count; a drain that times out closes it.
async fn upgrade(
    shared: &Shared,
    rule: &Rule,
    mut req: Request<Incoming>,
    client: &Client,
    host: &HeaderValue,
    started: Instant,
) -> Response<ProxyBody> {
    let host_name = host.to_str().unwrap_or("-");
    let pinned = rule
        .cookie
        .as_deref()
        .and_then(|name| sticky::pinned(req.headers(), name))
        .map(str::to_string);
    let choice = pinned
        .as_deref()
        .and_then(|token| rule.pinned(token, &[]))
        .or_else(|| rule.pick(shared.config.policy, &[]));
    let Some(endpoint) = choice.cloned() else {
        access(Line::of(&req), host_name, StatusCode::SERVICE_UNAVAILABLE, None, 0, started);
        return no_replica(shared, rule);
    };
    let in_flight = endpoint.begin();
    let client_side = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let upstream = UpstreamHead::new(&parts, client, host, true).request(&parts, empty_body());
    let sent = send_within_response_timeout(shared, &endpoint, upstream).await;
    let (mut response, lease) = match sent {
        Ok(Ok(sent)) => sent,
        Ok(Err(error)) => {
            if error.is_connect() {
                endpoint.connect_failed(error.to_string());
            }
            access(
                Line::of_parts(&parts),
                host_name,
                StatusCode::BAD_GATEWAY,
                Some(&endpoint),
                1,
                started,
            );
            return plain(StatusCode::BAD_GATEWAY, "the replica failed to answer\n");
        }
        Err(_) => {
            access(
                Line::of_parts(&parts),
                host_name,
                StatusCode::GATEWAY_TIMEOUT,
                Some(&endpoint),
                1,
                started,
            );
            return plain(StatusCode::GATEWAY_TIMEOUT, "the replica did not answer in time\n");
        }
    };
    endpoint.succeeded();
    access(Line::of_parts(&parts), host_name, response.status(), Some(&endpoint), 1, started);
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let mut response = client_response(shared, response, in_flight, Some(lease));
        pin(rule, pinned.as_deref(), &endpoint, client.tls, &mut response);
        return response;
    }
    // The connection now belongs to the upgrade: it never goes back to the pool.
    drop(lease);
    let upstream_side = hyper::upgrade::on(&mut response);
    let closing = endpoint.closing();
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let (client, upstream) = tokio::join!(client_side, upstream_side);
        let (Ok(client), Ok(upstream)) = (client, upstream) else { return };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            _ = closing.cancelled() => {}
        }
    });
    let (mut parts, _) = response.into_parts();
    let keep_upgrade = (
        parts.headers.get(header::UPGRADE).cloned(),
        parts.headers.get(header::CONNECTION).cloned(),
    );
    strip_hop_by_hop(&mut parts.headers);
    if let (Some(protocol), Some(connection)) = keep_upgrade {
        parts.headers.insert(header::UPGRADE, protocol);
        parts.headers.insert(header::CONNECTION, connection);
    }
    let mut response = Response::from_parts(parts, empty_body());
    pin(rule, pinned.as_deref(), &endpoint, client.tls, &mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::matching::normalize_host;

    #[test]
    fn upstream_requests_carry_forwarding_headers_and_lose_hop_by_hop() {
        let req = Request::builder()
            .uri("/api/x?y=1")
            .header("host", "shop.test")
            .header("connection", "keep-alive, x-private")
            .header("x-private", "1")
            .header("keep-alive", "timeout=5")
            .header("x-forwarded-for", "192.0.2.1")
            .header("accept", "text/plain")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let client = Client::new("198.51.100.7:5555".parse().unwrap(), false);
        let host = HeaderValue::from_static("shop.test");
        let head = UpstreamHead::new(&parts, &client, &host, false);
        let up = head.request(&parts, empty_body());
        assert_eq!(up.uri().to_string(), "/api/x?y=1");
        let h = up.headers();
        assert_eq!(h["host"], "shop.test");
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 198.51.100.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.test");
        assert_eq!(h["forwarded"], "for=198.51.100.7;proto=http;host=\"shop.test\"");
        assert_eq!(h["accept"], "text/plain");
        for gone in ["connection", "keep-alive", "x-private"] {
            assert!(!h.contains_key(gone), "{gone} must not be forwarded");
        }
        // The connection's cached Forwarded value follows the host of each request.
        let other = HeaderValue::from_static("other.test");
        let again = UpstreamHead::new(&parts, &client, &other, false).request(&parts, empty_body());
        assert_eq!(again.headers()["forwarded"], "for=198.51.100.7;proto=http;host=\"other.test\"");
        let first = UpstreamHead::new(&parts, &client, &host, false).request(&parts, empty_body());
        assert_eq!(first.headers()["forwarded"], "for=198.51.100.7;proto=http;host=\"shop.test\"");
    }

    #[test]
    fn upgrades_keep_their_headers_and_http2_hosts_come_from_the_authority() {
        let req = Request::builder()
            .uri("/ws")
            .header("host", "chat.test")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert!(is_upgrade(&req));
        let (parts, ()) = req.into_parts();
        let client = Client::new("[2001:db8::1]:5555".parse().unwrap(), true);
        let host = HeaderValue::from_static("chat.test");
        let up = UpstreamHead::new(&parts, &client, &host, true).request(&parts, empty_body());
        assert_eq!(up.headers()["upgrade"], "websocket");
        assert_eq!(up.headers()["connection"], "upgrade");
        assert_eq!(
            up.headers()["forwarded"],
            "for=\"[2001:db8::1]\";proto=https;host=\"chat.test\""
        );
        let h2 = Request::builder()
            .version(Version::HTTP_2)
            .uri("https://api.test:8443/x")
            .body(())
            .unwrap();
        assert_eq!(request_host(&h2).unwrap(), "api.test:8443");
        assert_eq!(normalize_host("api.test:8443"), "api.test");
    }
}
