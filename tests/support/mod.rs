//! The integration tests' test bed: several real Docker daemons on this machine, each a
//! separate "host" with its own network namespace, IP address and port space.
//!
//! ```ignore
//! mod support;
//! let bed = support::Testbed::builder().hosts(2).images().start();
//! let a = &bed[0];                       // host "a": 10.250.<k>.2, unix + tcp endpoints
//! a.docker(&["run", "-d", "--name", "web-1", "gitfleet/web:1"]);
//! let fleet = bed.fleet_hosts(support::Via::Tcp); // BTreeMap<String, gitfleet::model::Host>
//! ```
//!
//! # What a host is
//!
//! `dockerd` (Debian's docker.io 20.10, API 1.41) started as
//! `nsenter --net=/var/run/netns/gftb-<k> dockerd ...` inside its own namespace, reached from
//! the test process over a veth pair (outer `10.250.<k>.1/24`, inner `10.250.<k>.2/24`), and
//! listening on a unix socket in its own directory and on `tcp://10.250.<k>.2:2375`
//! (`:2376` with TLS). Its containers' published ports are reached at `10.250.<k>.2:<port>`.
//! See `testbed.rs` for the daemon's flags and why each is there.
//!
//! # Guarantees
//!
//! * Names never collide between tests running in threads of one process or in separate
//!   processes: every name derives from a slot allocated under a machine-wide file lock
//!   (`slot.rs`).
//! * Clean-up, on drop and for slots a dead process left behind, goes by pid (pidfiles checked
//!   against the process's command line) and by the slot's own names only, never by pattern.
//! * Missing prerequisites (root, dockerd, the docker CLI, iproute2, nsenter, openssl,
//!   busybox-static) panic with what to install. These tests never skip.
//!
//! # Caveats
//!
//! * `ip netns exec` cannot start dockerd ("Devices cgroup isn't mounted": it remounts /sys);
//!   `nsenter --net=` does not, so that is what is used.
//! * A process killed with SIGKILL leaves its daemons running until the next test process
//!   takes the same slot (lowest free first) and cleans it.
#![allow(dead_code)]

mod cut;
mod etcd;
mod git;
mod git_http;
mod process;
mod slot;
mod testbed;
mod tls;
pub mod windows_engine;

use std::path::PathBuf;

// Not every test binary uses every item.
#[allow(unused_imports)]
pub use cut::CutProxy;
#[allow(unused_imports)]
pub use etcd::{EtcdCluster, EtcdMember};
#[allow(unused_imports)]
pub use git::GitRepo;
#[allow(unused_imports)]
pub use git_http::{BareRepo, GitHttpServer, Served};
pub use process::{run_gitfleet, spawn_announcing, write_files};
#[allow(unused_imports)]
pub use testbed::{DockerHost, Testbed, TestbedBuilder, Via};
#[allow(unused_imports)]
pub use tls::{TlsMaterial, generate as tls_material};

/// What to install when something is missing (Debian bookworm).
pub const INSTALL_HINT: &str = "apt-get update && apt-get install -y docker.io busybox-static \
                                docker-registry iproute2 util-linux openssl";

/// The absolute path of a program, searched in `$PATH` and the sbin directories (dockerd and
/// ip live in /usr/sbin, which a non-login `$PATH` may lack). Panics with the install hint.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs =
        path.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from),
        );
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the Docker test bed needs `{name}`, which is not installed.\n\
         Install the test prerequisites: {INSTALL_HINT}\n\
         (gitfleet's integration tests run real Docker daemons and never skip.)"
    )
}

/// Panics loudly unless the machine can run the test bed.
pub fn require_prerequisites(tls: bool, images: bool) {
    if !rustix::process::geteuid().is_root() {
        panic!(
            "the Docker test bed must run as root: it creates network namespaces and veth pairs \
             and starts dockerd. Run the tests as root (CI does)."
        );
    }
    for program in ["dockerd", "containerd", "runc", "docker", "nsenter", "ip", "umount"] {
        tool(program);
    }
    if tls {
        tool("openssl");
    }
    if images {
        tool("bash");
        let busybox = std::path::Path::new("/bin/busybox");
        if !busybox.is_file() {
            panic!(
                "the test images need Debian's static busybox at /bin/busybox, which is \
                 missing.\nInstall the test prerequisites: {INSTALL_HINT}"
            );
        }
    }
}
