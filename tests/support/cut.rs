//! A TCP proxy a test can cut, to put one process out of reach of a service (etcd) while
//! everything else still reaches it: a network partition on loopback, without iptables.
//!
//! While cut, bytes in both directions are read and dropped (the sender's writes succeed,
//! nothing answers, as when packets are lost) and new connections are accepted but never
//! forwarded. Healing closes every connection that lived through the cut (their streams lost
//! bytes) and forwards new ones again. Threads only; stopped on drop.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct CutProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    cut: AtomicBool,
    closed: AtomicBool,
    /// Every socket of every connection (client and target sides), to close on heal.
    sockets: Mutex<Vec<TcpStream>>,
}

impl CutProxy {
    /// Forwards connections to 127.0.0.1:`port` from a new loopback port of its own.
    pub fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.closed.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                accepting.keep(&client);
                if accepting.cut.load(Ordering::Acquire) {
                    continue; // accepted, never answered
                }
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                accepting.keep(&server);
                // As the two ends do: no Nagle delay on the relayed small writes (gRPC).
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(client, server, accepting.clone());
                pump(s2, c2, accepting.clone());
            }
        });
        CutProxy { addr, shared }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on nothing passes.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::Release);
    }

    /// Connections that lived through the cut are closed; new ones pass again.
    pub fn heal(&self) {
        self.shared.close_all();
        self.shared.cut.store(false, Ordering::Release);
    }
}

impl Shared {
    fn keep(&self, socket: &TcpStream) {
        if let Ok(clone) = socket.try_clone() {
            self.sockets.lock().unwrap().push(clone);
        }
    }

    fn close_all(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until either ends; drops the bytes while cut.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if shared.cut.load(Ordering::Acquire) {
                continue;
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.close_all();
        // Wake the accepting thread so it sees `closed`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}
