//! A real etcd cluster for the high-availability tests: Debian's `etcd` (3.4), N members on
//! loopback ports from a machine-wide locked block (see [`PortBlock`]), data on tmpfs
//! (`/dev/shm`), stopped and removed on drop. Members can be frozen (SIGSTOP), thawed and
//! killed to inject faults.
//!
//! Panics with what to install when `etcd` is missing: these tests never skip.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// One member: its process and addresses.
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Where `/health` answers over plain HTTP (the client port, or with TLS a metrics port).
    pub health_port: u16,
    /// `http` or `https` (client TLS).
    pub scheme: &'static str,
    child: Child,
}

impl EtcdMember {
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// A running cluster.
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
    dir: tempfile::TempDir,
    _ports: PortBlock,
}

/// The first port of the blocks etcd clusters take, below the kernel's ephemeral range
/// (32768–60999 here): a port another test gets by binding port 0 is never one of these, so
/// nothing can take a member's port between choosing it and etcd binding it.
const PORT_BASE: u16 = 23000;
/// Ports per block (a cluster of up to 8 members: client and peer port each).
const PORT_BLOCK: u16 = 16;
/// Blocks (`PORT_BASE .. PORT_BASE + BLOCKS * PORT_BLOCK`).
const BLOCKS: u16 = 100;

/// A block of loopback ports held for one cluster: an exclusive `flock` on
/// `/tmp/gitfleet-testbed/etcd-ports-<k>.lock` (machine-wide, like the test bed's slots;
/// released by the kernel however the holder dies), and every port found free when taken.
struct PortBlock {
    ports: Vec<u16>,
    _lock: std::fs::File,
}

fn port_block(n: usize) -> PortBlock {
    assert!(n <= PORT_BLOCK as usize, "at most {PORT_BLOCK} ports per cluster");
    let root = Path::new(super::slot::ROOT);
    std::fs::create_dir_all(root)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    for k in 0..BLOCKS {
        let path = root.join(format!("etcd-ports-{k}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => continue,
            Err(e) => panic!("cannot lock {}: {e}", path.display()),
        }
        let first = PORT_BASE + k * PORT_BLOCK;
        let ports: Vec<u16> = (first..first + n as u16).collect();
        // Something outside the tests may use a port: then take the next block.
        if ports.iter().all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok()) {
            return PortBlock { ports, _lock: file };
        }
    }
    panic!(
        "no free block of etcd test ports in {PORT_BASE}.. (see /tmp/gitfleet-testbed/etcd-ports-*.lock)"
    )
}

fn etcd_binary() -> PathBuf {
    for candidate in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "the high-availability tests need etcd, which is not installed.\n\
         Install it: apt-get install -y etcd-server (or run scripts/install-deps.sh)\n\
         (these tests run a real etcd cluster and never skip.)"
    )
}

impl EtcdCluster {
    /// Starts `n` members and waits (at most 20 s) until every one answers `/health`.
    pub fn start(n: usize) -> EtcdCluster {
        EtcdCluster::start_with(n, None)
    }

    /// One member serving clients over TLS only, with `tls`'s server certificate (valid for
    /// 127.0.0.1), and requiring a client certificate signed by `tls`'s CA
    /// (`--client-cert-auth`). `/health` answers on a plain metrics port.
    pub fn start_tls(tls: &super::TlsMaterial) -> EtcdCluster {
        EtcdCluster::start_with(1, Some(tls))
    }

    /// Turns on etcd's own authentication with `root` / `password` (the root user and role,
    /// through the JSON gateway): from then on every request needs them.
    pub fn enable_auth(&self, password: &str) {
        let port = self.members[0].client_port;
        let calls = [
            ("/v3/auth/role/add", r#"{"name": "root"}"#.to_string()),
            ("/v3/auth/user/add", format!(r#"{{"name": "root", "password": "{password}"}}"#)),
            ("/v3/auth/user/grant", r#"{"user": "root", "role": "root"}"#.to_string()),
            ("/v3/auth/enable", "{}".to_string()),
        ];
        for (path, body) in calls {
            let answer = http_post(port, path, &body)
                .unwrap_or_else(|| panic!("etcd did not answer {path}"));
            assert!(!answer.contains("\"error\""), "{path}: {answer}");
        }
    }

    fn start_with(n: usize, tls: Option<&super::TlsMaterial>) -> EtcdCluster {
        let binary = etcd_binary();
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new().prefix("gitfleet-etcd-").tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("gitfleet-etcd-").tempdir()
        }
        .expect("a directory for etcd's data");
        let block = port_block(3 * n);
        let ports = block.ports.clone();
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let cluster: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name}=http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let token = format!("gitfleet-test-{}-{}", std::process::id(), ports[0]);
        let mut members = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let (client_port, peer_port) = (ports[2 * i], ports[2 * i + 1]);
            let health_port = if tls.is_some() { ports[2 * n + i] } else { client_port };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let data = dir.path().join(name);
            let log = std::fs::File::create(dir.path().join(format!("{name}.log")))
                .expect("etcd log file");
            let client = format!("{scheme}://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let mut command = Command::new(&binary);
            if let Some(tls) = tls {
                command
                    .arg("--cert-file")
                    .arg(&tls.server_cert)
                    .arg("--key-file")
                    .arg(&tls.server_key)
                    .arg("--trusted-ca-file")
                    .arg(&tls.ca)
                    .arg("--client-cert-auth")
                    .args(["--listen-metrics-urls", &format!("http://127.0.0.1:{health_port}")]);
            }
            let child = command
                .args(["--name", name])
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &cluster.join(",")])
                .args(["--initial-cluster-state", "new", "--initial-cluster-token", &token])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            members.push(EtcdMember {
                name: name.clone(),
                client_port,
                peer_port,
                health_port,
                scheme,
                child,
            });
        }
        let cluster = EtcdCluster { members, dir, _ports: block };
        let until = Instant::now() + Duration::from_secs(20);
        for i in 0..n {
            while !cluster.healthy(i) {
                if Instant::now() > until {
                    panic!(
                        "etcd member {} did not become healthy in 20 s; its log:\n{}",
                        cluster.members[i].name,
                        cluster.log(i)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// The `--etcd` argument: the client URLs, comma-separated.
    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// Whether member `i` answers `GET /health` with `"health":"true"` (bounded, 1 s).
    pub fn healthy(&self, i: usize) -> bool {
        let port = self.members[i].health_port;
        let Ok(mut stream) = TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().expect("address"),
            Duration::from_millis(500),
        ) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        if stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    /// Member `i`'s log so far (for failure messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.members[i].name)))
            .unwrap_or_default()
    }

    /// The index of the member that is etcd's Raft leader, as the members themselves say
    /// (`POST /v3/maintenance/status` on each, through etcd's JSON gateway; bounded, 1 s each).
    pub fn raft_leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for member in &self.members {
            let status = http_post(member.client_port, "/v3/maintenance/status", "{}")?;
            let status: serde_json::Value = serde_json::from_str(&status).ok()?;
            ids.push(status["header"]["member_id"].as_str()?.to_string());
            leader = leader.or(status["leader"].as_str().map(str::to_string));
        }
        let leader = leader?;
        ids.iter().position(|id| *id == leader)
    }

    /// Moves Raft leadership away from member `i` if it leads (`MoveLeader` through the JSON
    /// gateway), and waits (bounded, 5 s) until another member leads.
    pub fn move_leader_off(&self, i: usize) {
        if self.raft_leader() != Some(i) {
            return;
        }
        let target = (i + 1) % self.members.len();
        let id = http_post(self.members[target].client_port, "/v3/maintenance/status", "{}")
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|s| s["header"]["member_id"].as_str().map(str::to_string))
            .expect("the target member's id");
        let body = format!(r#"{{"targetID": "{id}"}}"#);
        let _ =
            http_post(self.members[i].client_port, "/v3/maintenance/transfer-leadership", &body);
        let until = Instant::now() + Duration::from_secs(5);
        while self.raft_leader() == Some(i) || self.raft_leader().is_none() {
            assert!(Instant::now() < until, "etcd member {i} still leads after MoveLeader");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves Raft leadership to member `i` (`MoveLeader` through the JSON gateway, sent to the
    /// member that leads), and waits (bounded, 5 s) until `i` leads.
    pub fn move_leader_to(&self, i: usize) {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            match self.raft_leader() {
                Some(leader) if leader == i => return,
                Some(leader) => {
                    let id = http_post(self.members[i].client_port, "/v3/maintenance/status", "{}")
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                        .and_then(|s| s["header"]["member_id"].as_str().map(str::to_string))
                        .expect("the target member's id");
                    let body = format!(r#"{{"targetID": "{id}"}}"#);
                    let port = self.members[leader].client_port;
                    let _ = http_post(port, "/v3/maintenance/transfer-leadership", &body);
                }
                None => {}
            }
            assert!(Instant::now() < until, "etcd member {i} does not lead after MoveLeader");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index of the member that leads, as the members other than `frozen` say (a frozen
    /// member answers nothing); `None` while they know of no leader.
    pub fn raft_leader_except(&self, frozen: usize) -> Option<usize> {
        let mut ids = BTreeMap::new();
        let mut leader = None;
        for (i, member) in self.members.iter().enumerate().filter(|(i, _)| *i != frozen) {
            let status = http_post(member.client_port, "/v3/maintenance/status", "{}")?;
            let status: serde_json::Value = serde_json::from_str(&status).ok()?;
            ids.insert(status["header"]["member_id"].as_str()?.to_string(), i);
            let said = status["leader"].as_str().filter(|l| *l != "0").map(str::to_string);
            leader = leader.or(said);
        }
        ids.get(&leader?).copied()
    }

    /// Freezes member `i` (SIGSTOP): it holds its connections but answers nothing.
    pub fn freeze(&self, i: usize) {
        signal(self.members[i].pid(), Signal::STOP);
    }

    /// Thaws member `i` (SIGCONT).
    pub fn thaw(&self, i: usize) {
        signal(self.members[i].pid(), Signal::CONT);
    }
}

/// The body of a `POST` to 127.0.0.1:`port`, bounded (1 s), or `None`.
fn http_post(port: u16, path: &str, body: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer.split_once("\r\n\r\n")?.1.to_string())
}

fn signal(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, sig);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            signal(member.pid(), Signal::CONT);
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
    }
}
