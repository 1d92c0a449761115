//! In-memory doubles of the loop's edges ([`super::super::edges`]): hosts that keep their
//! containers, networks and volumes in memory and record every mutating call with the (paused)
//! tokio time it came at, and a repository that publishes what a test commits.
//!
//! The hosts behave as Docker does where the loop's logic depends on it: names are unique per
//! host (a create or rename onto a taken name fails), a host that is gone refuses every call
//! as a lost host, observation carries exactly the labels the apply created the containers
//! with, and a host the test takes away tells the trigger queue, as the Docker events
//! watchers do in production.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::apply::Options;
use crate::apply::engine::{ContainerStatus, Engine, EngineError, EngineResult, FileToDeliver};
use crate::controller::edges::Hosts;
use crate::controller::repository::{FetchProblem, Published, ReadHead, RepositoryView};
use crate::controller::source::SourceError;
use crate::controller::state::RevisionInfo;
use crate::controller::trigger::{Trigger, Triggers};
use crate::diff::desired::DesiredObject;
use crate::diff::spec::ContainerSpec;
use crate::diff::{HostObservation, HostState, Observed, ObservedContainer, ObservedObject};
use crate::hosts::{FailureClass, Health, Round};
use crate::leader::Term;
use crate::model::{LoadOptions, Model, PullPolicy, SourceTree};

/// One mutating call a fake host received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// When, since the fleet was made (tokio's clock).
    pub at: Duration,
    pub host: String,
    /// `create shop-web-1 web:2`, `start <id>`, `stop <id>`, `remove <id>`, `rename <id> <name>`.
    pub what: String,
}

#[derive(Debug, Clone)]
struct Container {
    id: String,
    name: String,
    image: String,
    labels: BTreeMap<String, String>,
    state: &'static str,
    exit_code: Option<i64>,
    created: i64,
    started: Option<Instant>,
}

#[derive(Debug, Default)]
struct Host {
    /// Why it does not answer; `None` while it does.
    gone: Option<String>,
    /// The error its engine answers list calls with (an HTTP 500); `None`: it lists fine.
    failing: Option<String>,
    containers: BTreeMap<String, Container>,
    networks: BTreeMap<String, ObservedObject>,
    volumes: BTreeMap<String, ObservedObject>,
}

/// How containers of an image behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Its health check never passes.
    Unhealthy,
    /// Its health check passes this long after it starts (`starting` until then).
    SlowStart(Duration),
    /// It exits with code 1 this long after it starts (a crash loop).
    CrashAfter(Duration),
}

#[derive(Default)]
struct World {
    hosts: BTreeMap<String, Host>,
    calls: Vec<Call>,
    observations: u64,
    images: BTreeMap<String, Behaviour>,
    next: u64,
}

struct Shared {
    world: Mutex<World>,
    since: Instant,
    triggers: Arc<Triggers>,
}

/// In-memory Docker hosts, shared by the loop (through [`Hosts`]) and the test.
#[derive(Clone)]
pub struct FakeHosts(Arc<Shared>);

impl FakeHosts {
    /// Hosts `names`, empty and answering; events go to `triggers`.
    pub fn new(names: &[&str], triggers: Arc<Triggers>) -> Self {
        let hosts = names.iter().map(|n| (n.to_string(), Host::default())).collect();
        let world = World { hosts, ..World::default() };
        FakeHosts(Arc::new(Shared { world: Mutex::new(world), since: Instant::now(), triggers }))
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Containers of `image` behave so from now on.
    pub fn set_behaviour(&self, image: &str, behaviour: Option<Behaviour>) {
        let mut world = self.world();
        match behaviour {
            Some(b) => world.images.insert(image.to_string(), b),
            None => world.images.remove(image),
        };
    }

    /// When the hosts were made: the zero of [`Call::at`].
    pub fn since(&self) -> Instant {
        self.0.since
    }

    /// Every mutating call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The calls after the first `skip`, as `host: what`.
    pub fn calls_since(&self, skip: usize) -> Vec<String> {
        self.world().calls[skip..].iter().map(|c| format!("{}: {}", c.host, c.what)).collect()
    }

    /// How many observation rounds the loop made.
    pub fn observations(&self) -> u64 {
        self.world().observations
    }

    /// `host`'s containers as `name image state`, by name.
    pub fn containers(&self, host: &str) -> Vec<String> {
        let world = self.world();
        let mut list: Vec<String> = world.hosts[host]
            .containers
            .values()
            .map(|c| format!("{} {} {}", c.name, c.image, c.state))
            .collect();
        list.sort();
        list
    }

    /// The ids of the containers whose name starts with `prefix`, on every host.
    pub fn ids(&self, prefix: &str) -> BTreeSet<String> {
        let world = self.world();
        let all = world.hosts.values().flat_map(|h| h.containers.values());
        all.filter(|c| c.name.starts_with(prefix)).map(|c| c.id.clone()).collect()
    }

    /// Takes `host` off the network (`Some(why)`) or brings it back, and tells the trigger
    /// queue as the events watcher's ping would.
    pub fn set_gone(&self, host: &str, why: Option<&str>) {
        let action = if why.is_some() { "host-silent" } else { "host-answers" };
        self.world().hosts.get_mut(host).expect("a fake host").gone = why.map(str::to_string);
        self.0.triggers.push(Trigger::DockerEvent { host: host.into(), action: action.into() });
    }

    /// Makes `host`'s engine answer its list calls with `error` (`None`: normally again).
    pub fn set_failing(&self, host: &str, error: Option<&str>) {
        self.world().hosts.get_mut(host).expect("a fake host").failing = error.map(str::to_string);
    }

    /// Removes the container named `name` from `host` behind the controller's back (someone
    /// with `docker rm -f`), and tells the trigger queue as its events stream would.
    pub fn remove_by_hand(&self, host: &str, name: &str) {
        let mut world = self.world();
        let containers = &mut world.hosts.get_mut(host).expect("a fake host").containers;
        let id = containers.values().find(|c| c.name == name).map(|c| c.id.clone());
        containers.remove(&id.expect("the container exists"));
        drop(world);
        self.0.triggers.push(Trigger::DockerEvent { host: host.into(), action: "destroy".into() });
    }

    fn record(&self, world: &mut World, host: &str, what: String) {
        let at = Instant::now() - self.0.since;
        world.calls.push(Call { at, host: host.into(), what });
    }

    /// The host for a call of the apply: `clients` is who answered the round before it.
    fn host<'w>(
        world: &'w mut World,
        clients: &BTreeSet<String>,
        host: &str,
    ) -> EngineResult<&'w mut Host> {
        let entry = world.hosts.get_mut(host).ok_or_else(|| EngineError::new("no such host"))?;
        match &entry.gone {
            Some(why) => Err(EngineError { message: why.clone(), host_lost: true }),
            None if !clients.contains(host) => {
                Err(EngineError { message: "not connected".into(), host_lost: true })
            }
            None => Ok(entry),
        }
    }

    fn health(world: &World, container: &Container) -> Option<Health> {
        match world.images.get(&container.image)? {
            Behaviour::Unhealthy => Some(Health::Unhealthy),
            Behaviour::SlowStart(after) => {
                let up = container.started.is_some_and(|s| Instant::now() >= s + *after);
                Some(if up { Health::Healthy } else { Health::Starting })
            }
            Behaviour::CrashAfter(_) => None,
        }
    }

    /// A crashing container exits `after` its start, and its host's events stream says so.
    fn crash_later(&self, host: &str, id: &str, after: Duration) {
        let (fake, host, id) = (self.clone(), host.to_string(), id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut world = fake.world();
            let Some(entry) = world.hosts.get_mut(&host) else { return };
            let Some(container) = entry.containers.get_mut(&id) else { return };
            if container.state != "running" || entry.gone.is_some() {
                return;
            }
            container.state = "exited";
            container.exit_code = Some(1);
            drop(world);
            fake.0.triggers.push(Trigger::DockerEvent { host, action: "die".into() });
        });
    }
}

/// The health as the container list's status text shows it.
fn health_text(health: Option<Health>) -> Option<String> {
    let text = match health? {
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
        Health::Starting => "starting",
    };
    Some(text.to_string())
}

impl Hosts for FakeHosts {
    /// The hosts that answered the round.
    type Clients = BTreeSet<String>;
    type Engine = FakeEngine;

    async fn observe_model(&self, model: &Model) -> Round<BTreeSet<String>> {
        let mut world = self.world();
        world.observations += 1;
        let mut observed = Observed::default();
        let mut clients = BTreeSet::new();
        let mut failures = BTreeMap::new();
        for (name, declared) in &model.fleet.hosts {
            let Some(host) = world.hosts.get(name) else {
                failures.insert(name.clone(), FailureClass::Connection);
                let why = format!("cannot reach {}: no such host", declared.endpoint);
                observed.hosts.insert(name.clone(), HostObservation::unreachable(why));
                continue;
            };
            if let Some(why) = &host.gone {
                failures.insert(name.clone(), FailureClass::Connection);
                let why = format!("cannot reach {}: {why}", declared.endpoint);
                observed.hosts.insert(name.clone(), HostObservation::unreachable(why));
                continue;
            }
            if let Some(error) = &host.failing {
                // It answers, with an error: no client for the apply, as the pool gives none.
                failures.insert(name.clone(), FailureClass::Api);
                let why = format!("{}: listing containers: {error}", declared.endpoint);
                observed.hosts.insert(name.clone(), HostObservation::unreachable(why));
                continue;
            }
            let mut containers: Vec<ObservedContainer> = host
                .containers
                .values()
                .map(|c| ObservedContainer {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    state: c.state.to_string(),
                    labels: c.labels.clone(),
                    created: c.created,
                    health: health_text(Self::health(&world, c)),
                    ports: Vec::new(),
                })
                .collect();
            containers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
            let state = HostState {
                containers,
                networks: host.networks.values().cloned().collect(),
                volumes: host.volumes.values().cloned().collect(),
                ..HostState::default()
            };
            clients.insert(name.clone());
            observed.hosts.insert(name.clone(), HostObservation::Reachable(state));
        }
        Round { observed, clients, failures }
    }

    fn engine(&self, clients: BTreeSet<String>, _: Option<&Term>) -> FakeEngine {
        FakeEngine { hosts: self.clone(), clients }
    }
}

/// The engine of one apply: calls reach only the hosts that answered the round before it.
pub struct FakeEngine {
    hosts: FakeHosts,
    clients: BTreeSet<String>,
}

impl FakeEngine {
    /// Runs `f` on `host`'s state, recording `what` first (a call that cannot reach the host
    /// is not recorded: the host never received it).
    fn on<T>(
        &self,
        host: &str,
        what: String,
        f: impl FnOnce(&mut World, &mut Host) -> EngineResult<T>,
    ) -> EngineResult<T> {
        let mut world = self.hosts.world();
        FakeHosts::host(&mut world, &self.clients, host)?;
        self.hosts.record(&mut world, host, what);
        // Borrow the host apart from the world (`f` may look at the images' behaviour).
        let mut entry = std::mem::take(world.hosts.get_mut(host).expect("checked"));
        let result = f(&mut world, &mut entry);
        *world.hosts.get_mut(host).expect("checked") = entry;
        result
    }
}

fn missing(id: &str) -> EngineError {
    EngineError::new(format!("No such container: {id}"))
}

impl Engine for FakeEngine {
    async fn ensure_network(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        let network = ObservedObject {
            id: object.name.clone(),
            name: object.name.clone(),
            labels: labels.clone(),
        };
        self.on(host, format!("network {}", object.name), |_, h| {
            h.networks.entry(object.name.clone()).or_insert(network);
            Ok(())
        })
    }

    async fn ensure_volume(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        let volume = ObservedObject {
            id: object.name.clone(),
            name: object.name.clone(),
            labels: labels.clone(),
        };
        self.on(host, format!("volume {}", object.name), |_, h| {
            h.volumes.entry(object.name.clone()).or_insert(volume);
            Ok(())
        })
    }

    async fn ensure_image(&self, host: &str, _: &str, _: PullPolicy) -> EngineResult<()> {
        // Every image is there: not recorded (the tests look at containers).
        let world = &mut self.hosts.world();
        FakeHosts::host(world, &self.clients, host).map(|_| ())
    }

    async fn create(
        &self,
        host: &str,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
        _: &[FileToDeliver],
    ) -> EngineResult<String> {
        self.on(host, format!("create {name} {}", spec.image), |world, h| {
            if h.containers.values().any(|c| c.name == name) {
                return Err(EngineError::new(format!(
                    "Conflict. The container name \"/{name}\" is already in use"
                )));
            }
            world.next += 1;
            let id = format!("{host}{:011}", world.next);
            let container = Container {
                id: id.clone(),
                name: name.to_string(),
                image: spec.image.clone(),
                labels: labels.clone(),
                state: "created",
                exit_code: None,
                created: 1_700_000_000 + world.next as i64,
                started: None,
            };
            h.containers.insert(id.clone(), container);
            Ok(id)
        })
    }

    async fn start(&self, host: &str, id: &str) -> EngineResult<()> {
        let crash = self.on(host, format!("start {id}"), |world, h| {
            let container = h.containers.get_mut(id).ok_or_else(|| missing(id))?;
            container.state = "running";
            container.exit_code = None;
            container.started = Some(Instant::now());
            Ok(match world.images.get(&container.image) {
                Some(Behaviour::CrashAfter(after)) => Some(*after),
                _ => None,
            })
        })?;
        if let Some(after) = crash {
            self.hosts.crash_later(host, id, after);
        }
        Ok(())
    }

    async fn stop(&self, host: &str, id: &str, _: Duration) -> EngineResult<()> {
        self.on(host, format!("stop {id}"), |_, h| {
            let container = h.containers.get_mut(id).ok_or_else(|| missing(id))?;
            if container.state == "running" {
                container.state = "exited";
                container.exit_code = Some(0);
            }
            Ok(())
        })
    }

    async fn remove(&self, host: &str, id: &str) -> EngineResult<()> {
        self.on(host, format!("remove {id}"), |_, h| {
            h.containers.remove(id);
            Ok(())
        })
    }

    async fn rename(&self, host: &str, id: &str, name: &str) -> EngineResult<()> {
        self.on(host, format!("rename {id} {name}"), |_, h| {
            if h.containers.values().any(|c| c.name == name && c.id != id) {
                return Err(EngineError::new(format!(
                    "Conflict. The container name \"/{name}\" is already in use"
                )));
            }
            h.containers.get_mut(id).ok_or_else(|| missing(id))?.name = name.to_string();
            Ok(())
        })
    }

    async fn status(&self, host: &str, id: &str) -> EngineResult<ContainerStatus> {
        let mut world = self.hosts.world();
        let entry = FakeHosts::host(&mut world, &self.clients, host)?;
        let container = entry.containers.get(id).ok_or_else(|| missing(id))?.clone();
        let health = FakeHosts::health(&world, &container);
        Ok(ContainerStatus {
            running: container.state == "running",
            state: container.state.to_string(),
            exit_code: container.exit_code,
            health,
            health_output: None,
            restart_count: 0,
            oom_killed: false,
            error: None,
        })
    }

    async fn logs(&self, host: &str, _: &str, _: usize) -> EngineResult<String> {
        let world = &mut self.hosts.world();
        FakeHosts::host(world, &self.clients, host)?;
        Ok("health check failed: connection refused".into())
    }

    async fn remove_network(&self, host: &str, id: &str) -> EngineResult<()> {
        self.on(host, format!("remove network {id}"), |_, h| {
            h.networks.remove(id);
            Ok(())
        })
    }
}

/// The repository task's side of the channel: publishes what a test commits.
pub struct FakeRepository {
    publish: watch::Sender<Arc<Published>>,
    commits: u64,
}

impl FakeRepository {
    /// The publisher, and the view the loop reads (the real [`RepositoryView`]).
    pub fn new() -> (Self, RepositoryView) {
        let (publish, view) = watch::channel(Arc::new(Published::default()));
        (FakeRepository { publish, commits: 0 }, view)
    }

    /// Publishes a new head with `files` as its whole tree (read as the repository task
    /// reads a head: app by app, a broken `fleet.yaml` failing the whole head); returns its
    /// commit id.
    pub fn commit(&mut self, message: &str, files: &[(&str, &str)]) -> String {
        self.commits += 1;
        let commit = format!("c{:06}{}", self.commits, "0".repeat(33));
        let mut tree = SourceTree::new();
        for (path, text) in files {
            tree.insert_file(*path, text.as_bytes().to_vec());
        }
        let model = crate::model::load_partial(&tree, &LoadOptions::default())
            .map(Arc::new)
            .map_err(|diagnostics| Arc::new(SourceError::Invalid(diagnostics)));
        let revision = RevisionInfo {
            commit: commit.clone(),
            author: "test".into(),
            message: message.into(),
            time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        };
        self.send(|p| {
            p.fetches += 1;
            p.fetch_error = None;
            p.head = Some(ReadHead { revision, model });
        });
        commit
    }

    /// A fetch that has not finished (or failed): `message` is published as the problem.
    pub fn fetch_fails(&mut self, message: &str) {
        let problem = FetchProblem { message: message.into(), since: SystemTime::now() };
        self.send(|p| p.fetch_error = Some(problem));
    }

    fn send(&self, change: impl FnOnce(&mut Published)) {
        self.publish.send_modify(|published| {
            let mut next = Published::clone(published);
            change(&mut next);
            *published = Arc::new(next);
        });
    }
}

/// Apply options for the tests: health checks polled every 100 ms, at most 30 s.
pub fn apply_options() -> Options {
    Options {
        poll: Duration::from_millis(100),
        health_timeout: Duration::from_secs(30),
        ..Options::default()
    }
}
