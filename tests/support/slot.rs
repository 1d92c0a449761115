//! Slots: the machine-wide allocation of a test host's subnet index `k` and of every name
//! derived from it, and the clean-up of everything a slot's host may have left behind.
//!
//! A slot `k` (in [`FIRST`]..=[`LAST`]) owns, while its lock is held:
//!
//! * the lock file `/tmp/gitfleet-testbed/slot-<k>.lock` (an exclusive `flock`; the kernel
//!   releases it when the holder dies, however it dies),
//! * the directory `/tmp/gitfleet-testbed/<k>/` (sockets, data-root, exec-root, pidfile, log),
//! * the network namespace `gftb-<k>` and the veth pair `gftb<k>o` (outer) / `gftb<k>i` (inner),
//! * the addresses 10.250.<k>.1/24 (outer) and 10.250.<k>.2/24 (inner), and the root
//!   namespace's fallback route `unreachable 10.250.<k>.0/24 metric 4000`.
//!
//! Test threads of one process and separate test processes all allocate through the locks, so
//! names never collide. A process that died without cleaning up (SIGKILL, Ctrl-C, `abort`)
//! leaves its slot's objects behind; the next holder of the slot removes them, by these names
//! and by the pidfiles in the slot's directory, before using it.
//!
//! Slots start at 100 so that hand-made hosts (`10.250.1.2` in the docs and examples) do not
//! meet the test bed; a slot whose subnet is in use by anything else is skipped.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use rustix::process::{Pid, Signal, kill_process};

/// Where lock files and host directories live. Fixed, not `$TMPDIR`: every process on the
/// machine must agree on it.
pub const ROOT: &str = "/tmp/gitfleet-testbed";
pub const FIRST: u8 = 100;
pub const LAST: u8 = 249;

/// One allocated slot; dropping it releases the lock (call [`Slot::clean`] first).
#[derive(Debug)]
pub struct Slot {
    pub k: u8,
    _lock: File,
}

impl Slot {
    /// Takes the first free slot, cleaning what a dead previous holder left. Panics when none
    /// is free.
    pub fn acquire() -> Slot {
        std::fs::create_dir_all(ROOT).unwrap_or_else(|e| panic!("cannot create {ROOT}: {e}"));
        for k in FIRST..=LAST {
            let path = Path::new(ROOT).join(format!("slot-{k}.lock"));
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => continue,
                Err(e) => panic!("cannot lock {}: {e}", path.display()),
            }
            // For people looking: who holds it.
            let _ = file.set_len(0);
            let _ = writeln!(file, "{}", std::process::id());
            let slot = Slot { k, _lock: file };
            slot.clean();
            if let Some(user) = slot.foreign_use() {
                eprintln!("testbed: skipping slot {k}, its subnet is in use: {user}");
                continue;
            }
            return slot;
        }
        panic!(
            "all test host slots ({FIRST}..={LAST}) are taken; see the holders' pids in \
             {ROOT}/slot-*.lock"
        )
    }

    pub fn netns(&self) -> String {
        format!("gftb-{}", self.k)
    }
    pub fn veth_outer(&self) -> String {
        format!("gftb{}o", self.k)
    }
    pub fn veth_inner(&self) -> String {
        format!("gftb{}i", self.k)
    }
    pub fn dir(&self) -> PathBuf {
        Path::new(ROOT).join(self.k.to_string())
    }
    pub fn outer_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.k, 1)
    }
    pub fn inner_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 250, self.k, 2)
    }
    pub fn subnet(&self) -> String {
        format!("10.250.{}.0/24", self.k)
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir().join("docker.pid")
    }
    pub fn containerd_pidfile(&self) -> PathBuf {
        self.dir().join("exec/containerd/containerd.pid")
    }

    /// Something other than this slot's own objects using its subnet (a hand-made host).
    fn foreign_use(&self) -> Option<String> {
        let addrs = ip(&["-o", "-4", "addr", "show", "to", &self.subnet()]).unwrap_or_default();
        let routes = ip(&["-4", "route", "show", "exact", &self.subnet()]).unwrap_or_default();
        let used = format!("{}{}", addrs.trim(), routes.trim());
        (!used.is_empty()).then_some(used)
    }

    /// Removes everything this slot's host may have left: its daemons (by pidfile, checked
    /// against the process's command line), the processes in its namespace, its containers'
    /// processes and cgroups (by container id), mounts under its directory, its veth, route
    /// and namespace, and its directory. Idempotent; never panics; touches nothing by pattern.
    pub fn clean(&self) {
        let dir = self.dir();
        // Every process of ours names the directory on its command line.
        let marker = format!("{}/", dir.display());
        stop_by_pidfile(&self.pidfile(), &marker, Duration::from_secs(20));
        stop_by_pidfile(&self.containerd_pidfile(), &marker, Duration::from_secs(5));

        let netns_path = Path::new("/var/run/netns").join(self.netns());
        if netns_path.exists() {
            // Shims and docker-proxy processes left in the namespace.
            if let Ok(pids) = ip(&["netns", "pids", &self.netns()]) {
                for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                    signal(pid, Signal::KILL);
                }
            }
        }
        kill_container_cgroups(&dir.join("data/containers"));
        unmount_under(&dir);

        let _ = ip(&["link", "del", &self.veth_outer()]);
        if netns_path.exists() {
            if let Err(e) = ip(&["netns", "del", &self.netns()]) {
                eprintln!("testbed: cannot delete namespace {}: {e}", self.netns());
            }
        }
        let _ = ip(&["route", "del", "unreachable", &self.subnet(), "metric", "4000"]);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("testbed: cannot remove {}: {e}", dir.display()),
        }
    }
}

/// Runs `ip ARGS`, returning stdout, or stderr as the error.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new(super::tool("ip"))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn signal(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, sig);
    }
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// SIGCONT + SIGTERM to the pid in `pidfile` if that process's command line contains `marker`,
/// then SIGKILL if it is still alive after `grace`.
fn stop_by_pidfile(pidfile: &Path, marker: &str, grace: Duration) {
    let Some(pid) =
        std::fs::read_to_string(pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    if !alive(pid) || !cmdline(pid).contains(marker) {
        return;
    }
    signal(pid, Signal::CONT); // a frozen daemon cannot act on TERM
    signal(pid, Signal::TERM);
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        eprintln!("testbed: pid {pid} ({marker}) ignored SIGTERM for {grace:?}; killing it");
        signal(pid, Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Containers whose daemon died without stopping them: kill their processes through their
/// cgroups, named by container id (`<cgroup hierarchy>/docker/<id>`), and remove the cgroups.
fn kill_container_cgroups(containers_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(containers_dir) else { return };
    let ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    if ids.is_empty() {
        return;
    }
    let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        hierarchies.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    for id in &ids {
        let dirs: Vec<PathBuf> =
            hierarchies.iter().map(|h| h.join("docker").join(id)).filter(|d| d.is_dir()).collect();
        for dir in &dirs {
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                    signal(pid, Signal::KILL);
                }
            }
        }
        for dir in &dirs {
            let deadline = Instant::now() + Duration::from_secs(2);
            while std::fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Lazily unmounts every mount point at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(&prefix) || p == &dir.display().to_string())
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for point in points {
        let out = Command::new(super::tool("umount")).arg("-l").arg(&point).output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!(
                    "testbed: cannot unmount {point}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
