//! One client request through the router: match the rule, choose a replica, forward with the
//! `X-Forwarded-*` / `Forwarded` headers, retry by the rules of [`retry`](super::retry),
//! pass upgrades (WebSocket) through, log and count.
//!
//! # Guarantees
//!
//! * A request is in flight on its endpoint until its response body has ended (or the
//!   upgraded connection closed), which is what draining waits for.
//! * Every wait is bounded: the body read for buffering and the wait for response headers
//!   by the response timeout, connecting by the connect timeout.
//! * Answers of its own: 400 (no host), 404 (no rule), 413 (body over the limit), 502 (the
//!   replicas failed), 503 + `Retry-After` (no usable replica), 504 (no response in time).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;

use super::Shared;
use super::endpoint::{Endpoint, InFlight};
use super::retry::{self, Failure};
use super::table::Rule;

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

/// Serves one request. Never fails: errors become responses.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let Some(host) = request_host(&req) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "no Host header\n"));
    };
    let path = req.uri().path().to_string();
    let rule = shared.table.load().find(&host, &path).cloned();
    let Some(rule) = rule else {
        access(Line::of(&req), &host, StatusCode::NOT_FOUND, None, 0, started);
        return Ok(plain(StatusCode::NOT_FOUND, "no route for this host and path\n"));
    };
    let response = if is_upgrade(&req) {
        upgrade(&shared, &rule, req, peer, tls, &host, started).await
    } else {
        forward(&shared, &rule, req, peer, tls, &host, started).await
    };
    rule.metrics.response(response.status().as_u16(), started.elapsed());
    Ok(response)
}

/// The host a request is for: `:authority` (HTTP/2, absolute-form) or `Host`.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_string());
    }
    req.headers().get(header::HOST)?.to_str().ok().map(str::to_string)
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
    peer: SocketAddr,
    tls: bool,
    host: &str,
    started: Instant,
) -> Response<ProxyBody> {
    let config = &shared.config;
    let length = content_length(req.headers());
    if length.is_some_and(|l| l > config.body_limit) {
        access(Line::of(&req), host, StatusCode::PAYLOAD_TOO_LARGE, None, 0, started);
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
                access(Line::of_parts(&parts), host, StatusCode::BAD_REQUEST, None, 0, started);
                return plain(StatusCode::BAD_REQUEST, "could not read the request body\n");
            }
        }
    } else {
        RequestBody::Streamed(Some(body))
    };
    let replayable = matches!(body, RequestBody::Buffered(_));
    shared.budget.request(started);
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut tries = 0;
    loop {
        let Some(endpoint) = rule.pick(config.policy, &tried).cloned() else {
            if tried.is_empty() {
                access(
                    Line::of_parts(&parts),
                    host,
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    tries,
                    started,
                );
                return no_replica(shared, rule);
            }
            access(
                Line::of_parts(&parts),
                host,
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
            RequestBody::Buffered(bytes) => {
                Full::new(bytes.clone()).map_err(|e| match e {}).boxed()
            }
            RequestBody::Streamed(body) => match body.take() {
                Some(body) => Limited::new(body, config.body_limit as usize).boxed(),
                None => unreachable_body(),
            },
        };
        let upstream = upstream_request(&parts, &endpoint, peer, tls, host, upstream_body, false);
        let sent = tokio::select! {
            sent = tokio::time::timeout(config.response_timeout, shared.client.request(upstream)) => {
                sent.map(|answer| answer.map_err(Some))
            }
            () = endpoint.closed() => Ok(Err(None)),
        };
        let failure = match sent {
            Ok(Err(None)) => {
                // The endpoint left the fleet (its host cut off) while this was in flight.
                rule.metrics.upstream_error();
                endpoint.request_failed();
                Failure::BeforeResponse
            }
            Ok(Ok(response)) => {
                endpoint.succeeded();
                access(
                    Line::of_parts(&parts),
                    host,
                    response.status(),
                    Some(&endpoint),
                    tries,
                    started,
                );
                return client_response(response, in_flight);
            }
            Ok(Err(Some(error))) => {
                rule.metrics.upstream_error();
                if error.is_connect() {
                    endpoint.connect_failed(format!("connect: {}", error_chain(&error)));
                    Failure::Connect
                } else {
                    endpoint.request_failed();
                    tracing::debug!(upstream = %endpoint.authority, error = %error_chain(&error), "upstream failed before responding");
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
            access(Line::of_parts(&parts), host, status, Some(&endpoint), tries, started);
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

/// A streamed body is never sent twice (retries require a buffered one).
fn unreachable_body() -> ProxyBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The request to send upstream: HTTP/1.1 to `endpoint`, hop-by-hop headers removed (kept
/// for an upgrade), `Host` the client's, forwarding headers added.
fn upstream_request(
    parts: &http::request::Parts,
    endpoint: &Endpoint,
    peer: SocketAddr,
    tls: bool,
    host: &str,
    body: ProxyBody,
    upgrade: bool,
) -> Request<ProxyBody> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(endpoint.authority.clone())
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| Uri::from_static("/"));
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    if upgrade {
        if let Some(protocol) = parts.headers.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, protocol.clone());
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
    if let Ok(value) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, value.clone());
        headers.insert(HeaderName::from_static("x-forwarded-host"), value);
    }
    let ip = peer.ip().to_string();
    let xff = HeaderName::from_static("x-forwarded-for");
    let forwarded_for = match headers.get(&xff).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(xff, value);
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
    let node = if peer.is_ipv6() { format!("\"[{ip}]\"") } else { ip };
    let this = format!("for={node};proto={proto};host=\"{}\"", host.replace('"', ""));
    let forwarded = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {this}"),
        None => this,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert(header::FORWARDED, value);
    }
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    request
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

/// The upstream's response for the client: hop-by-hop headers removed, the body tracked so
/// the request stays in flight until it ends.
fn client_response(response: Response<Incoming>, in_flight: InFlight) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = Tracked { inner: body, _in_flight: in_flight };
    Response::from_parts(parts, body.map_err(BoxError::from).boxed())
}

/// A response body that holds its request's in-flight count until it ends or is dropped.
struct Tracked {
    inner: Incoming,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An upgrade (WebSocket): forward the request, and on the upstream's 101 join the two
/// upgraded connections. The copy holds the in-flight count; a drain that times out closes it.
async fn upgrade(
    shared: &Shared,
    rule: &Rule,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    host: &str,
    started: Instant,
) -> Response<ProxyBody> {
    let Some(endpoint) = rule.pick(shared.config.policy, &[]).cloned() else {
        access(Line::of(&req), host, StatusCode::SERVICE_UNAVAILABLE, None, 0, started);
        return no_replica(shared, rule);
    };
    let in_flight = endpoint.begin();
    let client_side = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let body = Empty::new().map_err(|e| match e {}).boxed();
    let upstream = upstream_request(&parts, &endpoint, peer, tls, host, body, true);
    let sent =
        tokio::time::timeout(shared.config.response_timeout, shared.client.request(upstream)).await;
    let mut response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            if error.is_connect() {
                endpoint.connect_failed(format!("connect: {}", error_chain(&error)));
            }
            access(
                Line::of_parts(&parts),
                host,
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
                host,
                StatusCode::GATEWAY_TIMEOUT,
                Some(&endpoint),
                1,
                started,
            );
            return plain(StatusCode::GATEWAY_TIMEOUT, "the replica did not answer in time\n");
        }
    };
    endpoint.succeeded();
    access(Line::of_parts(&parts), host, response.status(), Some(&endpoint), 1, started);
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return client_response(response, in_flight);
    }
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
    Response::from_parts(parts, Empty::new().map_err(|e| match e {}).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::endpoint::{DockerHealth, EndpointKey};
    use crate::router::matching::normalize_host;
    use http::uri::Authority;

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
        let endpoint = Endpoint::new(
            EndpointKey { host: "a".into(), container: "c".into() },
            Authority::from_static("10.0.0.1:32768"),
            None,
            DockerHealth::None,
        );
        let peer: SocketAddr = "198.51.100.7:5555".parse().unwrap();
        let body = Empty::new().map_err(|e| match e {}).boxed();
        let up = upstream_request(&parts, &endpoint, peer, false, "shop.test", body, false);
        assert_eq!(up.uri().to_string(), "http://10.0.0.1:32768/api/x?y=1");
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
        let endpoint = Endpoint::new(
            EndpointKey { host: "a".into(), container: "c".into() },
            Authority::from_static("10.0.0.1:1"),
            None,
            DockerHealth::None,
        );
        let peer: SocketAddr = "[2001:db8::1]:5555".parse().unwrap();
        let body = Empty::new().map_err(|e| match e {}).boxed();
        let up = upstream_request(&parts, &endpoint, peer, true, "chat.test", body, true);
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
        assert_eq!(request_host(&h2).as_deref(), Some("api.test:8443"));
        assert_eq!(normalize_host("api.test:8443"), "api.test");
    }
}
