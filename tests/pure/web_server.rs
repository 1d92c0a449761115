//! The hardened HTTP server (`gitfleet::web::serve`) on a loopback port, against misbehaving
//! TCP clients: one that trickles its headers, a flood of idle connections beyond the cap, and
//! clients that never finish while the server shuts down.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use gitfleet::controller::state::{Snapshot, StatusWriter};
use gitfleet::web::{self, Limits, Web};
use tokio_util::sync::CancellationToken;

/// A server with `limits` on a loopback port, on its own runtime thread; the address, the
/// shutdown token and the thread (which ends when `serve` returns).
fn start(
    app: Router,
    limits: Limits,
) -> (SocketAddr, CancellationToken, std::thread::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let token = shutdown.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            web::serve(listener, app, limits, token).await;
        });
    });
    (rx.recv().unwrap(), shutdown, thread)
}

fn hello() -> Router {
    Router::new().route("/", get(|| async { "hello\n" }))
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response before closing
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn get_ok(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") && response.ends_with("hello\n")
}

#[test]
fn a_client_trickling_its_headers_is_cut_off() {
    let limits = Limits { header_read_timeout: Duration::from_secs(2), ..Limits::default() };
    let (addr, shutdown, thread) = start(hello(), limits);
    let mut slow = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: slow\r\n\r\n";
    let mut cut = None;
    for byte in head {
        if slow.write_all(&[*byte]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        if closed_within(&mut slow, Duration::from_secs(1)) {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("a client sending a byte a second was never cut off");
    eprintln!("trickling client cut off after {cut:?} (header-read timeout 2 s)");
    assert!(cut < Duration::from_secs(5), "{cut:?}");
    // The server still serves others.
    assert!(get_ok(addr));
    shutdown.cancel();
    thread.join().unwrap();
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    // The memory bound below reads this process's RSS, which other tests of this binary
    // would move while they run beside it: the test runs alone in a child process.
    if std::env::var_os(ALONE).is_none() {
        let name = "web_server::connections_beyond_the_cap_are_closed_at_once";
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let output =
            String::from_utf8_lossy(&child.stdout) + String::from_utf8_lossy(&child.stderr);
        assert!(child.status.success(), "{name} failed in its own process:\n{output}");
        // Its figures, without the child's own test summary (the suite counts this test once).
        eprintln!(
            "{}",
            output.lines().filter(|l| l.contains("RSS")).collect::<Vec<_>>().join("\n")
        );
        return;
    }
    let cap = 50;
    let limits = Limits { max_connections: cap, ..Limits::default() };
    let (addr, shutdown, thread) = start(hello(), limits);
    // Fill the cap with idle connections (each waits for headers).
    let held: Vec<TcpStream> = (0..cap).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_kib();
    // 2,000 more, in batches of 200: each is closed by the server without a byte read.
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..10 {
        let mut batch: Vec<TcpStream> =
            (0..200).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for stream in &mut batch {
            if closed_within(stream, Duration::from_secs(5)) {
                refused += 1;
            }
        }
    }
    let rss_after = rss_kib();
    eprintln!(
        "2,000 connections beyond a cap of {cap}: {refused} closed in {:?}; this process's RSS {rss_before} → {rss_after} KiB",
        started.elapsed()
    );
    assert_eq!(refused, 2000);
    // Bounded: nothing is kept per refused connection (a generous bound: the test's own
    // sockets and allocator noise are in the same process).
    assert!(rss_after.saturating_sub(rss_before) < 32 * 1024, "{rss_before} → {rss_after} KiB");
    // Once the held connections go, the server serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !get_ok(addr) {
        assert!(
            Instant::now() < deadline,
            "the server did not serve again after the idle connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    shutdown.cancel();
    thread.join().unwrap();
}

#[test]
fn shutdown_does_not_wait_for_clients_that_never_finish() {
    let limits = Limits { shutdown_grace: Duration::from_secs(1), ..Limits::default() };
    // A live stream (ends on the token) next to a request that never finishes by itself.
    let writer = StatusWriter::new(Snapshot::default());
    let shutdown_web = CancellationToken::new();
    let site = Web::new(writer.reader(), shutdown_web.clone());
    let app = web::app(site).route(
        "/forever",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "late"
        }),
    );
    let (addr, shutdown, thread) = start(app, limits);
    let mut clients = Vec::new();
    for path in ["/api/events", "/forever"] {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        clients.push(stream);
    }
    // Half a request head, never finished.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET / HTT").unwrap();
    clients.push(half);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    shutdown_web.cancel();
    shutdown.cancel();
    thread.join().unwrap();
    let took = started.elapsed();
    eprintln!("shutdown with 3 unfinished clients took {took:?} (grace 1 s)");
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop(writer);
}

/// This process's resident memory, in KiB.
/// Set in the child process a test re-runs itself in.
const ALONE: &str = "GITFLEET_TEST_ALONE";

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
