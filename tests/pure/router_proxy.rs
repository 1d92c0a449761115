//! The router against real servers on loopback (no Docker): hyper backends that say who they
//! are and echo upgrades, a raw TCP backend that drops requests, and Debian's curl for
//! HTTP/2 with prior knowledge. Spreading, 404 / 503, forwarding headers, connect failures
//! retried elsewhere and ejected, a POST never sent twice, draining that waits for a request
//! in flight, WebSocket-style upgrades, HTTP/2 clients, the body limit, metrics, a response
//! body that stalls cut after the idle timeout, and a client's request body that stalls cut
//! the same way.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gitfleet::router::table::static_backend;
use gitfleet::router::{Config, Policy, RouteSpec, Router};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A backend: answers `<name> <METHOD> host=<Host> xff=<X-Forwarded-For> fwd=<Forwarded>
/// len=<body bytes>`, sleeps `?sleep=MS` first, and echoes bytes on an upgraded connection.
/// Dropping it closes the listener and every connection.
struct Backend {
    addr: SocketAddr,
    _tasks: JoinSet<()>,
}

async fn backend(name: &'static str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            connections.spawn(async move {
                let service = service_fn(move |req| answer(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend { addr, _tasks: tasks }
}

async fn answer(
    name: &'static str,
    mut req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    use http_body_util::BodyExt;
    if req.headers().contains_key("upgrade") {
        let upgraded = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgraded.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    if let Some(ms) = req.uri().query().and_then(|q| q.strip_prefix("sleep=")) {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    let header =
        |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let text = format!(
        "{name} {} host={} xff={} fwd={} version={:?}",
        req.method(),
        header("host"),
        header("x-forwarded-for"),
        header("forwarded"),
        req.version(),
    );
    let len = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
    Ok(Response::new(Full::new(Bytes::from(format!("{text} len={len}")))))
}

/// A raw backend that answers the router's probes but drops every other request after
/// reading its head, counting them.
async fn dropper() -> (SocketAddr, Arc<AtomicU32>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = Arc::new(AtomicU32::new(0));
    let counter = dropped.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                if read_request_head(&mut stream).await.is_some() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, dropped, task)
}

struct Proxy {
    router: Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn proxy(config: Config, specs: Vec<RouteSpec>) -> Proxy {
    let router = Router::new(config);
    router.set_routes(specs);
    let shutdown = CancellationToken::new();
    let (addr, _) =
        router.spawn_listener("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
    let prober = router.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move { prober.run_prober(stop).await });
    Proxy { router, addr, shutdown }
}

fn fast() -> Config {
    Config {
        probe_interval: Duration::from_millis(100),
        probe_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

fn spec(host: &str, backends: &[SocketAddr]) -> RouteSpec {
    RouteSpec {
        host: host.into(),
        path_prefix: "/".into(),
        service: format!("test/{host}"),
        port: 0,
        backends: backends
            .iter()
            .map(|a| static_backend("local", &a.to_string(), &a.to_string()))
            .collect(),
        sticky: false,
    }
}

/// One HTTP/1.1 request with `Connection: close`: (status, headers, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).to_string()
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("an answer within 10 s");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Waits until every endpoint of every rule is in rotation.
async fn in_rotation(router: &Router) {
    let started = Instant::now();
    loop {
        let view = router.view();
        if view.iter().all(|r| r.endpoints.iter().all(|e| e.state == "in_rotation")) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "not in rotation: {view:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreads_answers_404_and_503_and_forwards_client_details() {
    let (a, b) = (backend("alpha").await, backend("beta").await);
    let p =
        proxy(fast(), vec![spec("shop.test", &[a.addr, b.addr]), spec("empty.test", &[])]).await;
    in_rotation(&p.router).await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let (status, _, body) = request(p.addr, "GET", "Shop.Test:80", "/x", "").await;
        assert_eq!(status, 200, "{body}");
        *seen.entry(body.split(' ').next().unwrap().to_string()).or_insert(0) += 1;
        assert!(body.contains("host=Shop.Test:80"), "the client's Host goes upstream: {body}");
        assert!(body.contains("xff=127.0.0.1"), "{body}");
        assert!(body.contains("fwd=for=127.0.0.1;proto=http;host=\"Shop.Test:80\""), "{body}");
    }
    assert_eq!(seen.len(), 2, "both replicas answer: {seen:?}");
    let (status, _, _) = request(p.addr, "GET", "other.test", "/", "").await;
    assert_eq!(status, 404);
    let (status, head, _) = request(p.addr, "GET", "empty.test", "/", "").await;
    assert_eq!(status, 503);
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    let metrics = p.router.metrics_text();
    assert!(
        metrics.contains("gitfleet_router_responses_total{route=\"shop.test/\",service=\"test/shop.test\",class=\"2xx\"} 40"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "gitfleet_router_no_replica_total{route=\"empty.test/\",service=\"test/empty.test\"} 1"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replica_costs_no_request_and_is_ejected() {
    let a = backend("alpha").await;
    let b = backend("beta").await;
    let p = proxy(
        Config { policy: Policy::RoundRobin, ..fast() },
        vec![spec("shop.test", &[a.addr, b.addr])],
    )
    .await;
    in_rotation(&p.router).await;
    let dead = b.addr;
    drop(b); // listener and connections closed: connects are refused
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..20 {
        let (status, _, body) = request(p.addr, "POST", "shop.test", "/", &format!("n={i}")).await;
        assert_eq!(status, 200, "a refused connect is retried on the other replica: {body}");
        assert!(body.starts_with("alpha POST"), "{body}");
    }
    let view = p.router.view();
    let state = view[0].endpoints.iter().find(|e| e.address == dead.to_string()).unwrap();
    assert!(matches!(state.state, "ejected" | "unhealthy"), "{state:?}");
    assert!(
        state.why.as_deref().unwrap_or_default().contains("onnect") || state.why.is_some(),
        "{state:?}"
    );
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_may_have_arrived_is_retried_only_when_idempotent() {
    let good = backend("good").await;
    let (dropper, dropped, task) = dropper().await;
    let p = proxy(
        Config { policy: Policy::RoundRobin, ..fast() },
        vec![spec("shop.test", &[dropper, good.addr])],
    )
    .await;
    in_rotation(&p.router).await;
    for _ in 0..6 {
        let (status, _, body) = request(p.addr, "GET", "shop.test", "/", "").await;
        assert_eq!(status, 200, "a GET dropped before any answer goes to another replica: {body}");
    }
    let dropped_gets = dropped.load(Ordering::SeqCst);
    assert!(dropped_gets >= 1, "round robin sent some GETs to the dropper first");
    let mut failed = 0;
    for i in 0..6 {
        let (status, _, _) = request(p.addr, "POST", "shop.test", "/", &format!("order={i}")).await;
        if status == 502 {
            failed += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    let dropped_posts = dropped.load(Ordering::SeqCst) - dropped_gets;
    assert_eq!(failed, dropped_posts, "each POST reached at most one replica: never resent");
    assert!(failed >= 1);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_waits_for_the_request_in_flight_then_takes_no_more() {
    let a = backend("alpha").await;
    let p = proxy(fast(), vec![spec("shop.test", &[a.addr])]).await;
    in_rotation(&p.router).await;
    let slow = tokio::spawn(request(p.addr, "GET", "shop.test", "/?sleep=700", ""));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let replica =
        gitfleet::diff::ReplicaKey { app: "test".into(), service: "a".into(), replica: 1 };
    let started = Instant::now();
    p.router.before_stop("local", &a.addr.to_string(), &replica).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "drain returned before the request ended: {waited:?}"
    );
    assert!(slow.is_finished() || slow.await.unwrap().0 == 200);
    let (status, _, _) = request(p.addr, "GET", "shop.test", "/", "").await;
    assert_eq!(status, 503, "a drained replica is out of rotation");
    assert_eq!(p.router.view()[0].endpoints[0].state, "draining");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_passed_through() {
    let a = backend("alpha").await;
    let p = proxy(fast(), vec![spec("chat.test", &[a.addr])]).await;
    in_rotation(&p.router).await;
    let mut stream = TcpStream::connect(p.addr).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed during the handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in ["ping", "a longer message through the upgraded connection"] {
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message.as_bytes());
    }
    assert_eq!(p.router.view()[0].endpoints[0].in_flight, 1, "an upgraded connection is in flight");
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_with_prior_knowledge() {
    let a = backend("alpha").await;
    let p = proxy(fast(), vec![spec("h2.test", &[a.addr])]).await;
    in_rotation(&p.router).await;
    let port = p.addr.port();
    let output = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args([
            "--resolve",
            &format!("h2.test:{port}:127.0.0.1"),
            &format!("http://h2.test:{port}/two"),
        ])
        .output()
        .await
        .expect("curl is installed (apt-get install curl)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.ends_with("\n2 200"), "HTTP/2 end to end: {text}");
    assert!(text.contains(&format!("host=h2.test:{port}")), "Host from :authority: {text}");
    assert!(text.contains("version=HTTP/1.1"), "HTTP/1.1 upstream: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused() {
    let a = backend("alpha").await;
    let p = proxy(Config { body_limit: 1000, ..fast() }, vec![spec("shop.test", &[a.addr])]).await;
    in_rotation(&p.router).await;
    let (status, _, _) = request(p.addr, "POST", "shop.test", "/", &"x".repeat(1001)).await;
    assert_eq!(status, 413);
    let (status, _, body) = request(p.addr, "POST", "shop.test", "/", &"x".repeat(1000)).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("len=1000"), "{body}");
}

/// A GET for `host` with an optional `Cookie` header: (status, head, the answering backend).
async fn get_with_cookie(
    addr: SocketAddr,
    host: &str,
    cookie: Option<&str>,
) -> (u16, String, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let cookie = cookie.map(|c| format!("Cookie: theme=dark; {c}\r\n")).unwrap_or_default();
        let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).to_string()
    };
    let response =
        tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("an answer");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.split(' ').next().unwrap_or("").to_string())
}

/// The `name=value` a `Set-Cookie` header of `head` sets, with the rest of the header.
fn set_cookie(head: &str) -> Option<(String, String)> {
    let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))?;
    let value = line.split_once(':')?.1.trim();
    let (pair, rest) = value.split_once(';')?;
    Some((pair.to_string(), rest.trim().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_clients_stay_and_move_when_their_replica_drains_or_dies() {
    let mut backends = vec![
        ("alpha", backend("alpha").await),
        ("beta", backend("beta").await),
        ("gamma", backend("gamma").await),
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|(_, b)| b.addr).collect();
    let mut sticky = spec("shop.test", &addrs);
    sticky.sticky = true;
    let p = proxy(fast(), vec![sticky, spec("plain.test", &addrs)]).await;
    in_rotation(&p.router).await;
    let addr_of = |name: &str, backends: &[(&str, Backend)]| {
        backends.iter().find(|(n, _)| *n == name).map(|(_, b)| b.addr).unwrap()
    };

    // A first request is pinned with a cookie; with it, every request goes to that replica.
    let (status, head, first) = get_with_cookie(p.addr, "shop.test", None).await;
    assert_eq!(status, 200);
    let (cookie, attributes) = set_cookie(&head).expect("a sticky rule sets its cookie");
    assert!(cookie.starts_with("gitfleet-"), "{cookie}");
    assert_eq!(attributes, "Path=/; HttpOnly; SameSite=Lax");
    for _ in 0..20 {
        let (status, head, who) = get_with_cookie(p.addr, "shop.test", Some(&cookie)).await;
        assert_eq!((status, who.as_str()), (200, first.as_str()));
        assert!(set_cookie(&head).is_none(), "no new cookie while the pin holds: {head}");
    }

    // The pinned replica drains (a rollout stops it): the client moves and is re-pinned.
    let replica =
        gitfleet::diff::ReplicaKey { app: "test".into(), service: "shop".into(), replica: 1 };
    let drained = addr_of(&first, &backends).to_string();
    p.router.before_stop("local", &drained, &replica).await;
    let (status, head, second) = get_with_cookie(p.addr, "shop.test", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert_ne!(second, first, "a draining replica takes no sticky client");
    let (moved, _) = set_cookie(&head).expect("re-pinned");
    assert_ne!(moved, cookie);
    for _ in 0..10 {
        let (_, _, who) = get_with_cookie(p.addr, "shop.test", Some(&moved)).await;
        assert_eq!(who, second);
    }

    // The new pin's replica dies: the request is retried on the last one and re-pinned.
    backends.retain(|(n, _)| *n != second);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, head, third) = get_with_cookie(p.addr, "shop.test", Some(&moved)).await;
    assert_eq!(status, 200, "a dead pinned replica costs the client nothing");
    assert!(third != first && third != second, "{first} {second} {third}");
    let (last, _) = set_cookie(&head).expect("re-pinned after the failure");
    let (_, _, who) = get_with_cookie(p.addr, "shop.test", Some(&last)).await;
    assert_eq!(who, third);

    // A rule without stickiness sets no cookie and ignores one.
    let (status, head, _) = get_with_cookie(p.addr, "plain.test", Some(&last)).await;
    assert_eq!(status, 200);
    assert!(set_cookie(&head).is_none(), "{head}");
}

/// For the raw backends: reads a request's head. A router probe is answered with a 200 and
/// `None`, as is a connection that ends first; otherwise how many body bytes came with it.
async fn read_request_head(stream: &mut TcpStream) -> Option<usize> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await.ok().filter(|&n| n > 0)?;
        seen.extend_from_slice(&buf[..n]);
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    if String::from_utf8_lossy(&seen[..head_end]).contains("gitfleet-router-probe") {
        let probe_answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let _ = stream.write_all(probe_answer).await;
        return None;
    }
    Some(seen.len() - head_end)
}

/// A raw backend that answers probes, and every other request with the head of a
/// 100-byte body, 5 bytes of it, then nothing: the connection stays open, the host stays up.
async fn staller() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            open.push(tokio::spawn(async move {
                if read_request_head(&mut stream).await.is_none() {
                    return;
                }
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello").await;
                // Stalls, the connection open, until the test ends.
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(stream);
            }));
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_that_stalls_ends_after_the_idle_timeout() {
    let (stalling, task) = staller().await;
    let idle = Duration::from_millis(400);
    let p =
        proxy(Config { body_idle_timeout: idle, ..fast() }, vec![spec("slow.test", &[stalling])])
            .await;
    in_rotation(&p.router).await;
    let started = Instant::now();
    let (status, head, body) = request(p.addr, "GET", "slow.test", "/", "").await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, "hello", "the bytes that came are passed on, then the body is cut short");
    assert!(took >= idle, "ended before the idle timeout: {took:?}");
    assert!(took < idle + Duration::from_secs(2), "ended long after the idle timeout: {took:?}");
    // The replica never left the fleet: only the stalled response ended.
    let view = p.router.view();
    assert_eq!(view[0].endpoints.len(), 1);
    assert_eq!(view[0].endpoints[0].state, "in_rotation", "{view:#?}");
    let waiting = Instant::now();
    while p.router.view()[0].endpoints[0].in_flight != 0 {
        assert!(waiting.elapsed() < Duration::from_secs(2), "the cut response stays in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
}

/// A replica that reads a request's head and then its body until the connection ends, and
/// reports how many body bytes came. Probes get a 200.
async fn body_reader()
-> (SocketAddr, tokio::sync::mpsc::Receiver<usize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, reports) = tokio::sync::mpsc::channel(8);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let report = report.clone();
            tokio::spawn(async move {
                let Some(mut body) = read_request_head(&mut stream).await else { return };
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    body += n;
                }
                let _ = report.send(body).await;
            });
        }
    });
    (addr, reports, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_ends_after_the_idle_timeout() {
    let (reader, mut reports, task) = body_reader().await;
    let idle = Duration::from_millis(400);
    // The response timeout is long: only the body idle timeout can end this request soon.
    let config =
        Config { body_idle_timeout: idle, response_timeout: Duration::from_secs(30), ..fast() };
    let p = proxy(config, vec![spec("upload.test", &[reader])]).await;
    in_rotation(&p.router).await;
    let mut client = TcpStream::connect(p.addr).await.unwrap();
    // Over the 64 KiB buffering limit, so the body is streamed; 1,000 bytes, then silence.
    let head = "POST /upload HTTP/1.1\r\nHost: upload.test\r\nContent-Length: 200000\r\n\r\n";
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(&[b'x'; 1000]).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let took = started.elapsed();
    assert!(read.is_ok(), "no answer 10 s after the client went silent");
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 502"), "the client is told the request failed: {answer}");
    assert!(took >= idle, "ended before the idle timeout: {took:?}");
    assert!(took < idle + Duration::from_secs(2), "ended long after the idle timeout: {took:?}");
    let received = tokio::time::timeout(Duration::from_secs(5), reports.recv())
        .await
        .expect("the replica's connection is closed, not left waiting for the rest")
        .unwrap();
    assert_eq!(received, 1000, "the replica got the bytes that came, then the end");
    let view = p.router.view();
    assert_eq!(
        view[0].endpoints[0].state, "in_rotation",
        "a silent client is not the replica's fault: {view:#?}"
    );
    task.abort();
}
