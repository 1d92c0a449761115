//! A real etcd cluster for the high-availability tests: Debian's `etcd` (3.4), N members on
//! loopback ports picked free at start, data on tmpfs (`/dev/shm`), stopped and removed on
//! drop. Members can be frozen (SIGSTOP), thawed and killed to inject faults.
//!
//! Panics with what to install when `etcd` is missing: these tests never skip.

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
    child: Child,
}

impl EtcdMember {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// A running cluster.
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
    dir: tempfile::TempDir,
}

/// Free TCP ports on 127.0.0.1 (all bound at once, so distinct, then released for etcd).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local address").port()).collect()
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
        let binary = etcd_binary();
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new().prefix("gitfleet-etcd-").tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("gitfleet-etcd-").tempdir()
        }
        .expect("a directory for etcd's data");
        let ports = free_ports(2 * n);
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
            let data = dir.path().join(name);
            let log = std::fs::File::create(dir.path().join(format!("{name}.log")))
                .expect("etcd log file");
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let child = Command::new(&binary)
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
            members.push(EtcdMember { name: name.clone(), client_port, peer_port, child });
        }
        let cluster = EtcdCluster { members, dir };
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
        let port = self.members[i].client_port;
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

    /// Freezes member `i` (SIGSTOP): it holds its connections but answers nothing.
    pub fn freeze(&self, i: usize) {
        signal(self.members[i].pid(), Signal::STOP);
    }

    /// Thaws member `i` (SIGCONT).
    pub fn thaw(&self, i: usize) {
        signal(self.members[i].pid(), Signal::CONT);
    }
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
