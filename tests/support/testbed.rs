//! [`Testbed`] (N hosts started in parallel, dropped in parallel) and [`DockerHost`] (one
//! namespaced dockerd: start, wait, handles for tests, failure injection, clean-up).
//!
//! # dockerd's flags, and why
//!
//! * `--host unix://<dir>/docker.sock --host tcp://10.250.<k>.2:2375`: its own socket, and the
//!   network endpoint the controller under test uses.
//! * `--tls=false` (plain TCP): dockerd 20.10 that listens on TCP without TLS *and without
//!   saying so explicitly* sleeps 16 s at start-up ("Startup is intentionally being slowed
//!   down"). With it a daemon is up in about 1.5 s.
//! * `--tlsverify --tlscacert --tlscert --tlskey` and `:2376` instead, for TLS hosts. TLS is
//!   daemon-wide, so a host is either plain or TLS on TCP.
//! * `--data-root`, `--exec-root`, `--pidfile` under the slot's directory: what two daemons
//!   must not share. The exec-root also holds the daemon's own containerd (started by
//!   dockerd, `--containerd` not given), so every host has its own containerd too.
//! * `--config-file <dir>/daemon.json` (`{}`): a machine's `/etc/docker/daemon.json` must not
//!   leak into the test hosts.
//! * `--shutdown-timeout 1`: dropping a test bed stops running containers in about a second
//!   instead of 15.
//! * No `--bridge` / `--bip` / `--iptables=false`: each daemon is alone in its network
//!   namespace, and `docker0`, 172.17.0.0/16, the iptables rules and `ip_forward` are all per
//!   namespace, so the defaults do not collide and ports publish exactly as in production.
//!
//! The root namespace also gets `unreachable 10.250.<k>.0/24 metric 4000`: when a test sets
//! the outer veth down, the kernel drops the connected route, and without this fallback
//! traffic to 10.250.<k>.2 would follow the default route out of the machine. With it, a cut
//! host answers "no route to host" at once, and nothing leaves.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::slot::{Slot, alive, ip, signal};
use super::tls::{self, TlsMaterial};
use super::{require_prerequisites, tool};

/// How long a daemon may take to answer `_ping` before the test bed gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// The API version the hosts speak (Debian's docker.io 20.10).
pub const API_VERSION: &str = "1.41";

/// Which endpoint a [`gitfleet::model::Host`] built from a test host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `unix://<dir>/docker.sock`
    Unix,
    /// `tcp://10.250.<k>.2:2375`, or `:2376` with the client TLS files on a TLS host.
    Tcp,
}

/// How to start a test bed; see [`Testbed::builder`].
#[derive(Debug, Clone)]
pub struct TestbedBuilder {
    hosts: usize,
    images: bool,
    tls: bool,
    daemon_args: Vec<String>,
}

impl TestbedBuilder {
    /// Number of hosts, named `a`, `b`, ... (default 2).
    pub fn hosts(mut self, n: usize) -> Self {
        assert!((1..=26).contains(&n), "a test bed has 1 to 26 hosts");
        self.hosts = n;
        self
    }
    /// Build the test images (`scripts/build-images.sh`) into every host after start.
    pub fn images(mut self) -> Self {
        self.images = true;
        self
    }
    /// Serve the TCP endpoint with TLS (`:2376`, client certificates required).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }
    /// An extra dockerd argument for every host (`--insecure-registry=10.250.100.1:5000`, say).
    pub fn daemon_arg(mut self, arg: impl Into<String>) -> Self {
        self.daemon_args.push(arg.into());
        self
    }

    /// Starts the hosts in parallel and waits until each answers. Panics (after cleaning up
    /// whatever did start) if any host cannot start.
    pub fn start(self) -> Testbed {
        require_prerequisites(self.tls, self.images);
        let started = Instant::now();
        let results: Vec<Result<DockerHost, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.hosts)
                .map(|i| {
                    let name = ((b'a' + i as u8) as char).to_string();
                    let opts = &self;
                    s.spawn(move || DockerHost::start(name, opts))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("the start thread panicked".into())))
                .collect()
        });
        let mut hosts = Vec::new();
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(host) => hosts.push(host),
                Err(e) => errors.push(e),
            }
        }
        let bed = Testbed { hosts };
        if !errors.is_empty() {
            drop(bed);
            panic!("the Docker test bed did not start:\n{}", errors.join("\n"));
        }
        eprintln!(
            "testbed: {} host(s) up in {:.1}s: {}",
            bed.hosts.len(),
            started.elapsed().as_secs_f64(),
            bed.hosts
                .iter()
                .map(|h| format!("{}={}", h.name, h.tcp_endpoint()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        bed
    }
}

/// N real Docker hosts; dropping it stops them all (in parallel) and removes every trace.
#[derive(Debug)]
pub struct Testbed {
    hosts: Vec<DockerHost>,
}

impl Testbed {
    pub fn builder() -> TestbedBuilder {
        TestbedBuilder { hosts: 2, images: false, tls: false, daemon_args: Vec::new() }
    }

    /// `n` plain hosts without images.
    pub fn start(n: usize) -> Testbed {
        Testbed::builder().hosts(n).start()
    }

    pub fn hosts(&self) -> &[DockerHost] {
        &self.hosts
    }

    /// The host named `name` (`"a"`, `"b"`, ...). Panics if there is none.
    pub fn host(&self, name: &str) -> &DockerHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("the test bed has no host {name:?}"))
    }

    /// The hosts as `fleet.yaml` would register them, keyed by name, each with its address and
    /// the label `zone=<name>`.
    pub fn fleet_hosts(&self, via: Via) -> BTreeMap<String, gitfleet::model::Host> {
        self.hosts.iter().map(|h| (h.name.clone(), h.model_host(via))).collect()
    }

    /// Builds the test images into every host, in parallel.
    pub fn build_images(&self) {
        std::thread::scope(|s| {
            for host in &self.hosts {
                s.spawn(move || host.build_images());
            }
        });
    }
}

impl std::ops::Index<usize> for Testbed {
    type Output = DockerHost;
    fn index(&self, i: usize) -> &DockerHost {
        &self.hosts[i]
    }
}

impl std::ops::IndexMut<usize> for Testbed {
    fn index_mut(&mut self, i: usize) -> &mut DockerHost {
        &mut self.hosts[i]
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let hosts = std::mem::take(&mut self.hosts);
        let (count, started) = (hosts.len(), Instant::now());
        std::thread::scope(|s| {
            for host in hosts {
                s.spawn(move || drop(host));
            }
        });
        eprintln!(
            "testbed: {count} host(s) stopped and removed in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// One test host: a dockerd in its own network namespace. Dropping it stops the daemon and
/// removes its namespace, veth, route and directory.
#[derive(Debug)]
pub struct DockerHost {
    name: String,
    slot: Slot,
    child: Option<Child>,
    tls: Option<TlsMaterial>,
}

impl DockerHost {
    fn start(name: String, opts: &TestbedBuilder) -> Result<DockerHost, String> {
        let started = Instant::now();
        let slot = Slot::acquire();
        // From here on, dropping `host` cleans up whatever part of the setup happened.
        let mut host = DockerHost { name, slot, child: None, tls: None };
        let dir = host.dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::write(dir.join("daemon.json"), "{}\n").map_err(|e| e.to_string())?;
        host.setup_network()?;
        if opts.tls {
            host.tls = Some(tls::generate(&dir.join("tls"), host.slot.inner_addr())?);
        }
        host.spawn_daemon(&opts.daemon_args)?;
        host.wait_until_up(started)?;
        eprintln!(
            "testbed: host {} up in {:.1}s: {} and {} (namespace {})",
            host.name,
            started.elapsed().as_secs_f64(),
            host.unix_endpoint(),
            host.tcp_endpoint(),
            host.netns()
        );
        if opts.images {
            host.try_build_images()?;
        }
        Ok(host)
    }

    fn setup_network(&self) -> Result<(), String> {
        let (ns, outer, inner) = (self.netns(), self.veth_outer(), self.slot.veth_inner());
        let subnet = self.slot.subnet();
        let outer_cidr = format!("{}/24", self.slot.outer_addr());
        let inner_cidr = format!("{}/24", self.slot.inner_addr());
        // The fallback route first, so that no moment exists where a down veth sends
        // 10.250.<k>.x out of the machine.
        ip(&["route", "add", "unreachable", &subnet, "metric", "4000"])?;
        ip(&["netns", "add", &ns])?;
        ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
        ip(&["link", "set", &inner, "netns", &ns])?;
        ip(&["addr", "add", &outer_cidr, "dev", &outer])?;
        ip(&["link", "set", &outer, "up"])?;
        ip(&["-n", &ns, "addr", "add", &inner_cidr, "dev", &inner])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn spawn_daemon(&mut self, extra: &[String]) -> Result<(), String> {
        let dir = self.dir();
        let d = |name: &str| dir.join(name).display().to_string();
        let mut args: Vec<String> = vec![
            format!("--net=/var/run/netns/{}", self.netns()),
            tool("dockerd").display().to_string(),
            format!("--config-file={}", d("daemon.json")),
            format!("--host=unix://{}", d("docker.sock")),
            format!("--host=tcp://{}:{}", self.slot.inner_addr(), self.tcp_port()),
            format!("--data-root={}", d("data")),
            format!("--exec-root={}", d("exec")),
            format!("--pidfile={}", d("docker.pid")),
            "--shutdown-timeout=1".into(),
        ];
        match &self.tls {
            None => args.push("--tls=false".into()),
            Some(t) => args.extend([
                "--tlsverify".into(),
                format!("--tlscacert={}", t.ca.display()),
                format!("--tlscert={}", t.server_cert.display()),
                format!("--tlskey={}", t.server_key.display()),
            ]),
        }
        args.extend(extra.iter().cloned());
        let log = std::fs::File::create(self.log_path()).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(tool("nsenter"))
            .args(&args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_CONFIG")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start dockerd for host {}: {e}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_until_up(&mut self, started: Instant) -> Result<(), String> {
        let deadline = started + START_DEADLINE;
        let socket = self.socket_path();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "dockerd for host {} exited ({status}) during start-up; its log ends:\n{}",
                        self.name,
                        self.log_tail(30)
                    ));
                }
            }
            if ping_unix(&socket) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "dockerd for host {} did not answer _ping on {} within {START_DEADLINE:?}; \
                     its log ends:\n{}",
                    self.name,
                    socket.display(),
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The TCP listener is set up with the unix one; check the network path anyway.
        let addr = SocketAddr::from((self.slot.inner_addr(), self.tcp_port()));
        loop {
            let ok = if self.tls.is_some() {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            } else {
                ping_tcp(addr)
            };
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "dockerd for host {} answers on its socket but not on {addr}; its log ends:\n{}",
                    self.name,
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // --- what tests use ---------------------------------------------------------------------

    /// The host's name in the fleet: `a`, `b`, ...
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The subnet index: the host is 10.250.<k>.2.
    pub fn slot(&self) -> u8 {
        self.slot.k
    }
    /// The network namespace the daemon runs in (`gftb-<k>`).
    pub fn netns(&self) -> String {
        self.slot.netns()
    }
    /// The veth end in the root namespace; set it down to cut the host off.
    pub fn veth_outer(&self) -> String {
        self.slot.veth_outer()
    }
    /// The slot's directory: socket, data-root, exec-root, pidfile, log, TLS files.
    pub fn dir(&self) -> PathBuf {
        self.slot.dir()
    }
    pub fn socket_path(&self) -> PathBuf {
        self.dir().join("docker.sock")
    }
    /// `unix://<dir>/docker.sock`
    pub fn unix_endpoint(&self) -> String {
        format!("unix://{}", self.socket_path().display())
    }
    /// 2375, or 2376 on a TLS host.
    pub fn tcp_port(&self) -> u16 {
        if self.tls.is_some() { 2376 } else { 2375 }
    }
    /// `tcp://10.250.<k>.2:2375` (`:2376` with TLS).
    pub fn tcp_endpoint(&self) -> String {
        format!("tcp://{}:{}", self.slot.inner_addr(), self.tcp_port())
    }
    /// Where the host's published ports are reached: 10.250.<k>.2.
    pub fn address(&self) -> Ipv4Addr {
        self.slot.inner_addr()
    }
    /// The root namespace's end of the link: 10.250.<k>.1.
    pub fn gateway(&self) -> Ipv4Addr {
        self.slot.outer_addr()
    }
    /// The TLS files, on a TLS host.
    pub fn tls(&self) -> Option<&TlsMaterial> {
        self.tls.as_ref()
    }
    /// The daemon's pid (dockerd itself: nsenter execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("dockerd.log")
    }
    /// The last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// This host as `fleet.yaml` would register it.
    pub fn model_host(&self, via: Via) -> gitfleet::model::Host {
        use gitfleet::model::{Endpoint, Host, TlsFiles};
        let endpoint = match via {
            Via::Unix => Endpoint::Unix { path: self.socket_path().display().to_string() },
            Via::Tcp => Endpoint::Tcp {
                host: self.address().to_string(),
                port: self.tcp_port(),
                tls: self.tls.as_ref().map(|t| TlsFiles {
                    ca: t.ca.display().to_string(),
                    cert: t.client_cert.display().to_string(),
                    key: t.client_key.display().to_string(),
                }),
            },
        };
        Host {
            name: self.name.clone(),
            endpoint,
            address: Some(self.address().to_string()),
            labels: BTreeMap::from([("zone".to_string(), self.name.clone())]),
            capacity: Default::default(),
            platform: Default::default(),
        }
    }

    /// A bollard client on the unix socket, speaking API 1.41 (no negotiation needed).
    pub fn client(&self) -> bollard::Docker {
        let version = bollard::ClientVersion { major_version: 1, minor_version: 41 };
        bollard::Docker::connect_with_unix(&self.unix_endpoint(), 120, &version)
            .unwrap_or_else(|e| panic!("cannot make a client for host {}: {e}", self.name))
    }

    /// `docker -H unix://<socket> ARGS` (the v28 CLI, pinned to API 1.41, classic builder),
    /// without touching the machine's own Docker settings.
    pub fn docker_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool("docker"));
        cmd.arg("-H")
            .arg(self.unix_endpoint())
            .args(args)
            .env("DOCKER_API_VERSION", API_VERSION)
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", self.dir().join("cli"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the docker CLI; the whole output, whatever the exit status.
    pub fn docker_output(&self, args: &[&str]) -> Output {
        self.docker_command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the docker CLI: {e}"))
    }

    /// Runs the docker CLI and returns its trimmed stdout; panics with stderr if it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        if !out.status.success() {
            panic!(
                "`docker {}` on host {} failed ({}):\n{}",
                args.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Builds the test images (`gitfleet/web:1`, `web:2`, `api:1`, `db:1`, `exits:1`) into
    /// this host with `scripts/build-images.sh`.
    pub fn build_images(&self) {
        self.try_build_images().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_build_images(&self) -> Result<(), String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-images.sh");
        let out = Command::new(tool("bash"))
            .arg(&script)
            .arg(self.unix_endpoint())
            .env("DOCKER_API_VERSION", API_VERSION)
            .env("DOCKER_CONFIG", self.dir().join("cli"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "building the test images into host {} failed:\n{}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Copies `image` from `from` into this host (`docker save | docker load`).
    pub fn copy_image_from(&self, from: &DockerHost, image: &str) {
        let mut save = from
            .docker_command(&["save", image])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run docker save");
        let stdout = save.stdout.take().expect("piped stdout");
        let load = self
            .docker_command(&["load", "-q"])
            .stdin(Stdio::from(stdout))
            .output()
            .expect("cannot run docker load");
        let saved = save.wait_with_output().expect("docker save");
        if !saved.status.success() || !load.status.success() {
            panic!(
                "copying {image} from host {} to host {} failed:\n{}{}",
                from.name,
                self.name,
                String::from_utf8_lossy(&saved.stderr),
                String::from_utf8_lossy(&load.stderr)
            );
        }
    }

    // --- failure injection ------------------------------------------------------------------

    /// Sets the outer veth down: the host's TCP endpoint stops answering ("no route to host").
    pub fn cut_network(&self) {
        ip(&["link", "set", &self.veth_outer(), "down"]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Undoes [`cut_network`](Self::cut_network).
    pub fn restore_network(&self) {
        ip(&["link", "set", &self.veth_outer(), "up"]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGSTOP to dockerd: connections are accepted by the kernel but never answered.
    pub fn freeze(&self) {
        if let Some(pid) = self.pid() {
            signal(pid as i32, Signal::STOP);
        }
    }

    /// SIGCONT to dockerd, undoing [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            signal(pid as i32, Signal::CONT);
        }
    }

    /// Stops dockerd gracefully (SIGTERM; it stops its containers) and waits for it: the
    /// endpoints then refuse connections. The namespace and directory stay until drop.
    pub fn stop_daemon(&mut self) {
        self.end_daemon(Signal::TERM);
    }

    /// SIGKILL to dockerd ("losing a host"); its containerd and containers keep running until
    /// the host is dropped.
    pub fn kill_daemon(&mut self) {
        self.end_daemon(Signal::KILL);
    }

    fn end_daemon(&mut self, sig: Signal) {
        let Some(child) = self.child.as_mut() else { return };
        let pid = child.id() as i32;
        signal(pid, Signal::CONT);
        signal(pid, sig);
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(pid) && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().ok().flatten().is_none() {
            signal(pid, Signal::KILL);
            let _ = child.wait();
        }
    }

    /// Whether dockerd still runs.
    pub fn daemon_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for DockerHost {
    fn drop(&mut self) {
        // The pidfile-based clean-up also covers a daemon this process did not start.
        self.slot.clean();
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                // Alive although its pidfile did not say so (it died before writing it?).
                let _ = child.kill();
            }
            let _ = child.wait();
            // Anything the first pass could not see while the daemon still ran.
            self.slot.clean();
        }
    }
}

/// `GET /_ping` over the unix socket, by hand: the daemon answers `OK` once it serves the API.
fn ping_unix(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    http_ping(&mut stream)
}

fn ping_tcp(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    http_ping(&mut stream)
}

fn http_ping(stream: &mut (impl std::io::Read + std::io::Write)) -> bool {
    if stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.ends_with("OK")
}
