//! High availability end to end: two `gitfleet run --etcd` instances on a real 3-member etcd
//! cluster (Debian's etcd 3.4, loopback, tmpfs) and two real Docker daemons. Faults are
//! injected into the real processes; the ground truth is the daemons' own event streams
//! (`docker events`) and the containers' `io.gitfleet.epoch` labels, never gitfleet's logs.
//!
//! Scenarios (each a trial; `GITFLEET_HA_TRIALS` trials of each, 1 in CI, 20 by
//! `scripts/ha-faults.sh`):
//!
//! * `kill9`: the leader is killed (SIGKILL) mid-rollout; the other takes over and converges.
//! * `sigstop`: the leader is frozen (SIGSTOP) mid-rollout past its TTL, the other takes over,
//!   then the old one is thawed (SIGCONT): it must not write after the new leader did.
//! * `sigterm`: the leader is stopped (SIGTERM) with a change pending: it resigns, and the
//!   other applies the change.
//! * `quorum`: two of three etcd members are frozen: nobody writes from TTL after that until
//!   quorum returns; then the change is applied.
//!
//! Invariants checked after every trial, on every host: no container created by epoch E after
//! one created by a higher epoch; after convergence exactly the wanted replicas, each once, no
//! `.old-` left; no container already at the target replaced (destroyed) because of the
//! failover. Each trial prints one `HA-RESULT` line for the script's table.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::controller::Controller;
use crate::support::{BareRepo, DockerHost, EtcdCluster, GitHttpServer, GitRepo, Testbed};

const FLEET: &str = "ha";
const TTL_S: u64 = 5;
const REPLICAS: u32 = 4;

fn fleet_yaml(bed: &Testbed) -> String {
    let mut text = format!("settings: {{name: {FLEET}, observe_timeout: 3s}}\nhosts:\n");
    for host in bed.hosts() {
        text.push_str(&format!("  {}:\n    endpoint: {}\n", host.name(), host.tcp_endpoint()));
    }
    text
}

/// A rollout that takes a few seconds: one replica at a time, a short monitor. Stop-first:
/// a start-first replacement cut short by a crash leaves its `.next-` container, which a later
/// start-first replacement of the same replica collides with (409; found here, reported).
fn shop(tag: u32) -> String {
    format!(
        "services:\n  web:\n    image: gitfleet/web:{tag}\n    deploy:\n      replicas: {REPLICAS}\n      update_config: {{parallelism: 1, order: stop-first, monitor: 1s}}\n"
    )
}

/// One container event from a daemon.
#[derive(Debug, Clone)]
struct Event {
    nanos: u128,
    action: String,
    id: String,
    name: String,
    image: String,
    epoch: Option<i64>,
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// The fleet's container events on `host` between two times (nanoseconds since the epoch).
fn events(host: &DockerHost, since: u128, until: u128) -> Vec<Event> {
    let secs = |n: u128| format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000);
    let text = host.docker(&[
        "events",
        "--since",
        &secs(since),
        "--until",
        &secs(until),
        "--filter",
        "type=container",
        "--filter",
        &format!("label=io.gitfleet.fleet={FLEET}"),
        "--format",
        "{{json .}}",
    ]);
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|e| {
            let attributes = &e["Actor"]["Attributes"];
            Event {
                nanos: e["timeNano"].as_u64().unwrap_or_default() as u128,
                action: e["Action"].as_str().unwrap_or_default().to_string(),
                id: e["Actor"]["ID"].as_str().unwrap_or_default().to_string(),
                name: attributes["name"].as_str().unwrap_or_default().to_string(),
                image: attributes["image"].as_str().unwrap_or_default().to_string(),
                epoch: attributes["io.gitfleet.epoch"].as_str().and_then(|e| e.parse().ok()),
            }
        })
        .collect()
}

/// One of the fleet's containers on a host.
#[derive(Debug)]
struct Container {
    name: String,
    image: String,
    state: String,
    /// `service#replica`, from the labels (names can carry a temporary suffix).
    replica: String,
}

/// The fleet's containers on `host`.
fn containers(host: &DockerHost) -> Vec<Container> {
    host.docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.gitfleet.fleet={FLEET}"),
        "--format",
        "{{.Names}}\t{{.Image}}\t{{.State}}\t{{.Label \"io.gitfleet.service\"}}#{{.Label \"io.gitfleet.replica\"}}",
    ])
    .lines()
    .filter_map(|line| {
        let mut p = line.split('\t');
        Some(Container {
            name: p.next()?.to_string(),
            image: p.next()?.to_string(),
            state: p.next()?.to_string(),
            replica: p.next()?.to_string(),
        })
    })
    .collect()
}

/// Whether the hosts run exactly the wanted replicas of `tag`, each once (by their labels),
/// nothing left over (no stopped copy, no `.old-` container).
fn converged(bed: &Testbed, tag: u32) -> Result<(), String> {
    let mut replicas = BTreeSet::new();
    for host in bed.hosts() {
        for c in containers(host) {
            if c.image != format!("gitfleet/web:{tag}")
                || c.state != "running"
                || c.name.contains(".old-")
            {
                return Err(format!("{}: {} {} {}", host.name(), c.name, c.image, c.state));
            }
            if !replicas.insert(c.replica.clone()) {
                return Err(format!("{} twice (duplicate)", c.replica));
            }
        }
    }
    let wanted: BTreeSet<String> = (1..=REPLICAS).map(|i| format!("web#{i}")).collect();
    if replicas != wanted { Err(format!("replicas {replicas:?}")) } else { Ok(()) }
}

fn wait_converged(bed: &Testbed, tag: u32, within: Duration) {
    let until = Instant::now() + within;
    loop {
        match converged(bed, tag) {
            Ok(()) => return,
            Err(why) if Instant::now() > until => {
                panic!("not converged to web:{tag} within {within:?}: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Any container of `tag` created yet (the rollout under way)?
fn rollout_started(bed: &Testbed, tag: u32) -> bool {
    let image = format!("gitfleet/web:{tag}");
    bed.hosts().iter().any(|h| containers(h).iter().any(|c| c.image == image))
}

/// `/api/status` of the instance at `addr`, or `None` if it does not answer (killed, frozen).
fn status_of(addr: std::net::SocketAddr) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    stream.write_all(b"GET /api/status HTTP/1.0\r\nHost: gitfleet\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.0 200") && !response.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(response.split("\r\n\r\n").nth(1)?).ok()
}

/// The two instances and how to (re)start one.
struct Pair {
    repo: String,
    etcd: String,
    caches: [tempfile::TempDir; 2],
    instances: [Option<Controller>; 2],
}

impl Pair {
    fn start_instance(&mut self, i: usize) {
        let cache = self.caches[i].path().to_path_buf();
        let member = format!("m{i}");
        let ttl = format!("{TTL_S}s");
        let controller = Controller::start(
            &self.repo,
            &cache,
            &[
                "--no-status",
                "--resync-interval",
                "30s",
                "--etcd",
                &self.etcd,
                "--fleet",
                FLEET,
                "--etcd-member",
                &member,
                "--lease-ttl",
                &ttl,
            ],
        );
        self.instances[i] = Some(controller);
    }

    fn role(&self, i: usize) -> Option<(String, Option<i64>)> {
        let c = self.instances[i].as_ref()?;
        let status = status_of(c.addr)?;
        let leadership = &status["leadership"];
        Some((leadership["role"].as_str()?.to_string(), leadership["epoch"].as_i64()))
    }

    /// Waits (bounded) for a leader among the running instances: its index and epoch.
    fn leader(&self, within: Duration) -> (usize, i64) {
        let until = Instant::now() + within;
        loop {
            for i in 0..2 {
                if let Some((role, Some(epoch))) = self.role(i) {
                    if role == "leader" {
                        return (i, epoch);
                    }
                }
            }
            assert!(Instant::now() < until, "no leader within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self, i: usize) -> String {
        self.instances[i].as_ref().expect("running").child.id().to_string()
    }

    fn signal(&self, i: usize, signal: &str) {
        let sent = Command::new("kill").args([signal, &self.pid(i)]).status().expect("kill");
        assert!(sent.success());
    }

    /// Sends the push hook to instance `i` (a standby hands it to the leader through etcd).
    fn hook(&self, i: usize, commit: &str) {
        let c = self.instances[i].as_ref().expect("running");
        assert_eq!(c.push_hook(commit), 200);
    }
}

/// What the invariants found in one trial's events; panics on a violation.
fn check_invariants(bed: &Testbed, scenario: &str, since: u128, before: &BTreeMap<String, String>) {
    let until = now_nanos();
    for host in bed.hosts() {
        let all = events(host, since, until);
        // No creation by a lower epoch after one by a higher epoch.
        let mut highest: Option<(i64, u128)> = None;
        for e in all.iter().filter(|e| e.action == "create") {
            let Some(epoch) = e.epoch else {
                panic!("{scenario}: {} created without an epoch label: {e:?}", host.name())
            };
            if let Some((top, at)) = highest {
                assert!(
                    epoch >= top,
                    "{scenario}: on {} epoch {epoch} created {} after epoch {top} created at {at}",
                    host.name(),
                    e.name
                );
            }
            if highest.is_none_or(|(top, _)| epoch > top) {
                highest = Some((epoch, e.nanos));
            }
        }
        // No container that was already at the target destroyed by the failover.
        for e in all.iter().filter(|e| e.action == "destroy") {
            if let Some(image) = before.get(&e.id) {
                assert!(
                    !image.ends_with(&e.image) || e.image.is_empty(),
                    "{scenario}: {} destroyed {} ({}) which already ran the target",
                    host.name(),
                    e.name,
                    e.id
                );
            }
        }
    }
}

/// Container id → image of the replicas already at `tag` (the ones a failover must keep).
fn at_target(bed: &Testbed, tag: u32) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for host in bed.hosts() {
        let ids = host.docker(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=io.gitfleet.fleet={FLEET}"),
            "--filter",
            &format!("ancestor=gitfleet/web:{tag}"),
        ]);
        for id in ids.lines().filter(|l| !l.is_empty()) {
            found.insert(id.to_string(), format!("gitfleet/web:{tag}"));
        }
    }
    found
}

/// The first container creation labelled with an epoch above `old` after `since`, on any
/// host: the next leader's first creation (a stop-first replacement creates right after
/// stopping the old container, so this is its first mutating call plus one stop).
fn first_create_above(bed: &Testbed, old: i64, since: u128) -> Option<u128> {
    let until = now_nanos();
    bed.hosts()
        .iter()
        .flat_map(|h| events(h, since, until))
        .filter(|e| e.action == "create" && e.epoch.is_some_and(|x| x > old))
        .map(|e| e.nanos)
        .min()
}

fn wait_first_create_above(bed: &Testbed, old: i64, since: u128, within: Duration) -> u128 {
    let until = Instant::now() + within;
    loop {
        if let Some(at) = first_create_above(bed, old, since) {
            return at;
        }
        assert!(Instant::now() < until, "no creation by a new epoch within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn trials() -> usize {
    std::env::var("GITFLEET_HA_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(1)
}

/// Commits and pushes `tag`; returns the commit.
fn change(work: &GitRepo, origin: &BareRepo, tag: u32) -> String {
    work.commit(&[("apps/shop/compose.yaml", &shop(tag))], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    work.head()
}

fn report(scenario: &str, trial: usize, figures: &[(&str, f64)]) {
    let figures: Vec<String> = figures.iter().map(|(k, v)| format!("{k}={v:.0}")).collect();
    eprintln!("HA-RESULT scenario={scenario} trial={trial} {} ok", figures.join(" "));
}

#[test]
fn failover_scenarios_keep_one_writer_and_converge() {
    let bed = Testbed::builder().hosts(2).images().start();
    let cluster = EtcdCluster::start(3);
    let origin = BareRepo::new("fleet.git");
    let server = GitHttpServer::start(origin.root(), None);
    let work =
        GitRepo::new(&[("fleet.yaml", &fleet_yaml(&bed)), ("apps/shop/compose.yaml", &shop(1))]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let mut pair = Pair {
        repo: server.url("fleet.git"),
        etcd: cluster.endpoints_arg(),
        caches: [tempfile::TempDir::new().unwrap(), tempfile::TempDir::new().unwrap()],
        instances: [None, None],
    };
    pair.start_instance(0);
    pair.start_instance(1);
    let (_, epoch) = pair.leader(Duration::from_secs(20));
    assert!(epoch > 0);
    wait_converged(&bed, 1, Duration::from_secs(60));
    let mut tag = 1;
    let ttl = Duration::from_secs(TTL_S);

    for trial in 0..trials() {
        // kill -9 of the leader mid-rollout.
        {
            let since = now_nanos();
            let (leader, epoch) = pair.leader(Duration::from_secs(20));
            let standby = 1 - leader;
            let before = at_target(&bed, 3 - tag);
            tag = 3 - tag; // web:1 and web:2 are the test bed's images
            let commit = change(&work, &origin, tag);
            pair.hook(standby, &commit);
            let until = Instant::now() + Duration::from_secs(30);
            while !rollout_started(&bed, tag) {
                assert!(Instant::now() < until, "kill9: the rollout did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            let before_kill = at_target(&bed, tag);
            let killed = now_nanos();
            pair.signal(leader, "-KILL");
            let first = wait_first_create_above(&bed, epoch, killed, ttl * 4);
            wait_converged(&bed, tag, Duration::from_secs(60));
            let mut keep = before;
            keep.extend(before_kill);
            check_invariants(&bed, "kill9", since, &keep);
            let (new_leader, _) = pair.leader(Duration::from_secs(5));
            assert_eq!(new_leader, standby);
            drop(pair.instances[leader].take());
            pair.start_instance(leader);
            report("kill9", trial, &[("failover_ms", (first - killed) as f64 / 1e6)]);
        }
        // SIGSTOP of the leader mid-rollout past its TTL, then SIGCONT.
        {
            let since = now_nanos();
            let (leader, epoch) = pair.leader(Duration::from_secs(20));
            let standby = 1 - leader;
            tag = 3 - tag; // web:1 and web:2 are the test bed's images
            let commit = change(&work, &origin, tag);
            pair.hook(leader, &commit);
            let until = Instant::now() + Duration::from_secs(30);
            while !rollout_started(&bed, tag) {
                assert!(Instant::now() < until, "sigstop: the rollout did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            let before = at_target(&bed, tag);
            let frozen = now_nanos();
            pair.signal(leader, "-STOP");
            let first = wait_first_create_above(&bed, epoch, frozen, ttl * 4);
            pair.signal(leader, "-CONT");
            wait_converged(&bed, tag, Duration::from_secs(60));
            // The thawed instance has time to misbehave before the check.
            std::thread::sleep(Duration::from_secs(1));
            check_invariants(&bed, "sigstop", since, &before);
            let (now_leading, _) = pair.leader(Duration::from_secs(5));
            assert_eq!(now_leading, standby, "the thawed instance took the lead back");
            assert_eq!(pair.role(leader).map(|r| r.0).as_deref(), Some("standby"));
            report("sigstop", trial, &[("takeover_ms", (first - frozen) as f64 / 1e6)]);
        }
        // SIGTERM of the leader with a change pending: it resigns, the other applies it.
        {
            let since = now_nanos();
            let (leader, epoch) = pair.leader(Duration::from_secs(20));
            tag = 3 - tag; // web:1 and web:2 are the test bed's images
            change(&work, &origin, tag);
            let stopped = now_nanos();
            let started = Instant::now();
            pair.signal(leader, "-TERM");
            while pair.role(1 - leader).map(|r| r.0).as_deref() != Some("leader") {
                assert!(started.elapsed() < Duration::from_secs(5), "sigterm: no hand-off in 5 s");
                std::thread::sleep(Duration::from_millis(5));
            }
            let elected_ms = started.elapsed().as_secs_f64() * 1e3;
            let first = wait_first_create_above(&bed, epoch, stopped, Duration::from_secs(20));
            wait_converged(&bed, tag, Duration::from_secs(60));
            check_invariants(&bed, "sigterm", since, &BTreeMap::new());
            let exited = pair.instances[leader].as_mut().unwrap().child.wait().unwrap();
            assert_eq!(exited.code(), Some(0));
            drop(pair.instances[leader].take());
            pair.start_instance(leader);
            report(
                "sigterm",
                trial,
                &[("elected_ms", elected_ms), ("first_write_ms", (first - stopped) as f64 / 1e6)],
            );
        }
        // Loss of etcd quorum: nobody writes from TTL after it until it returns.
        {
            let since = now_nanos();
            let (leader, epoch) = pair.leader(Duration::from_secs(20));
            cluster.freeze(1);
            cluster.freeze(2);
            let lost = now_nanos();
            tag = 3 - tag; // web:1 and web:2 are the test bed's images
            let commit = change(&work, &origin, tag);
            pair.hook(leader, &commit);
            std::thread::sleep(ttl + Duration::from_secs(1));
            let writes: Vec<Event> = bed
                .hosts()
                .iter()
                .flat_map(|h| events(h, lost + ttl.as_nanos(), now_nanos()))
                .collect();
            cluster.thaw(1);
            cluster.thaw(2);
            assert!(writes.is_empty(), "quorum: writes without quorum: {writes:?}");
            let first = wait_first_create_above(&bed, epoch - 1, lost, ttl * 6);
            wait_converged(&bed, tag, Duration::from_secs(60));
            check_invariants(&bed, "quorum", since, &BTreeMap::new());
            report("quorum", trial, &[("resumed_after_ms", (first - lost) as f64 / 1e6)]);
        }
    }
}
