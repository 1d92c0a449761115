//! Docker events, turned into triggers: one task per registered host streams the events of
//! this fleet's containers (die, destroy, oom, health changes) and pushes a trigger for each,
//! so a container removed or crashed by hand is replaced within a sync. A stream that breaks
//! is reconnected with backoff, and a reconnection triggers a sync too (events may have been
//! missed meanwhile).
//!
//! Failover on time: each watcher pings its host every [`PING_EVERY`]; a host that stops
//! answering (even one whose link went silent, which never breaks the stream) triggers a sync
//! once, so the loop marks it away and wakes at the end of its grace period; a host answering
//! again triggers a sync at once (its surplus copies go).
//!
//! No extra sync per rollout: the apply's engine is wrapped in [`Noting`], which tells
//! [`Quiet`] which events each of its calls causes (a stop: `die` of that container id); those
//! events, during the apply and for [`LINGER`] after it, trigger nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::trigger::{Trigger, Triggers};
use crate::apply::Engine;
use crate::apply::engine::{ContainerStatus, EngineResult, FileToDeliver};
use crate::diff::desired::DesiredObject;
use crate::diff::spec::ContainerSpec;
use crate::git::poll::backoff;
use crate::hosts::{self, container_events};
use crate::model::{Host, Model, PullPolicy};

/// How often a watched host is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// How long a ping may take before the host counts as not answering.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after an apply the events of the containers it touched are still its own.
pub const LINGER: Duration = Duration::from_secs(3);

/// The Docker events an apply causes itself, by host and container id: a container it stops
/// dies, one it removes is destroyed, one it starts reports its health. Those events, during
/// the apply and for [`LINGER`] after it, trigger nothing. Anything else about the same
/// containers (removed or killed by hand, unhealthy later) still triggers a sync.
#[derive(Debug, Default)]
pub struct Quiet {
    state: Mutex<Expected>,
}

#[derive(Debug, Default)]
struct Expected {
    /// (host, container id) → the actions (prefixes of Docker's action text) expected.
    events: BTreeMap<(String, String), BTreeSet<&'static str>>,
    /// When the expectations lapse; `None` while the apply runs.
    until: Option<tokio::time::Instant>,
}

impl Quiet {
    /// An apply starts: forget the previous one's expectations.
    pub fn begin(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Expected::default();
    }

    /// The apply is about to cause `actions` on container `id` of `host`.
    pub fn expect(&self, host: &str, id: &str, actions: &[&'static str]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = state.events.entry((host.to_string(), id.to_string())).or_default();
        entry.extend(actions.iter().copied());
    }

    /// The apply ended: its events still count as its own for [`LINGER`].
    pub fn end(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).until =
            Some(tokio::time::Instant::now() + LINGER);
    }

    /// Whether `action` on container `id` of `host` is the apply's own doing.
    pub fn is_own(&self, host: &str, id: &str, action: &str) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.until.is_some_and(|u| tokio::time::Instant::now() >= u) {
            return false;
        }
        state
            .events
            .get(&(host.to_string(), id.to_string()))
            .is_some_and(|actions| actions.iter().any(|a| action.starts_with(a)))
    }
}

/// An [`Engine`] that tells [`Quiet`] which events each call will cause, then makes it.
pub struct Noting<'a, E> {
    pub engine: &'a E,
    pub quiet: &'a Quiet,
}

impl<E: Engine> Engine for Noting<'_, E> {
    async fn ensure_network(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.engine.ensure_network(host, object, labels).await
    }
    async fn ensure_volume(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.engine.ensure_volume(host, object, labels).await
    }
    async fn ensure_image(&self, host: &str, image: &str, policy: PullPolicy) -> EngineResult<()> {
        self.engine.ensure_image(host, image, policy).await
    }
    async fn create(
        &self,
        host: &str,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
        files: &[FileToDeliver],
    ) -> EngineResult<String> {
        self.engine.create(host, name, spec, labels, files).await
    }
    async fn start(&self, host: &str, id: &str) -> EngineResult<()> {
        // Its health goes starting → healthy while the apply waits for it.
        self.quiet.expect(host, id, &["health_status: starting", "health_status: healthy"]);
        self.engine.start(host, id).await
    }
    async fn stop(&self, host: &str, id: &str, grace: Duration) -> EngineResult<()> {
        self.quiet.expect(host, id, &["die"]);
        self.engine.stop(host, id, grace).await
    }
    async fn remove(&self, host: &str, id: &str) -> EngineResult<()> {
        self.quiet.expect(host, id, &["die", "destroy"]);
        self.engine.remove(host, id).await
    }
    async fn rename(&self, host: &str, id: &str, name: &str) -> EngineResult<()> {
        self.engine.rename(host, id, name).await
    }
    async fn status(&self, host: &str, id: &str) -> EngineResult<ContainerStatus> {
        self.engine.status(host, id).await
    }
    async fn logs(&self, host: &str, id: &str, lines: usize) -> EngineResult<String> {
        self.engine.logs(host, id, lines).await
    }
    async fn remove_network(&self, host: &str, id: &str) -> EngineResult<()> {
        self.engine.remove_network(host, id).await
    }
}

/// The running watchers, by host name.
pub struct EventWatchers {
    triggers: Arc<Triggers>,
    quiet: Arc<Quiet>,
    /// Host → (what it was started for, its task).
    tasks: BTreeMap<String, (String, JoinHandle<()>)>,
}

impl EventWatchers {
    pub fn new(triggers: Arc<Triggers>, quiet: Arc<Quiet>) -> Self {
        EventWatchers { triggers, quiet, tasks: BTreeMap::new() }
    }

    /// Watches exactly the hosts of `model`: starts new ones, restarts those whose endpoint
    /// changed, stops those no longer registered.
    pub fn update(&mut self, model: &Model) {
        let fleet = model.fleet.settings.name.clone();
        let wanted: BTreeMap<&String, String> = model
            .fleet
            .hosts
            .iter()
            .map(|(name, host)| (name, format!("{fleet} {}", host.endpoint)))
            .collect();
        self.tasks.retain(|name, (key, task)| {
            let keep = wanted.get(name) == Some(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, key) in wanted {
            if self.tasks.contains_key(name) {
                continue;
            }
            let host = model.fleet.hosts[name].clone();
            let task =
                tokio::spawn(watch(host, fleet.clone(), self.triggers.clone(), self.quiet.clone()));
            self.tasks.insert(name.clone(), (key, task));
        }
    }
}

impl Drop for EventWatchers {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

async fn watch(host: Host, fleet: String, triggers: Arc<Triggers>, quiet: Arc<Quiet>) {
    let mut attempt: u32 = 0;
    // Whether the host was answering when last tried (a host never reached is not "back").
    let mut answering: Option<bool> = None;
    let trigger = |action: &str| {
        triggers.push(Trigger::DockerEvent { host: host.name.clone(), action: action.into() })
    };
    loop {
        let docker = hosts::connect_with_timeout(&host, PING_TIMEOUT).await.ok();
        let pong = match &docker {
            Some(docker) => ping(docker).await,
            None => false,
        };
        match (answering, pong) {
            (Some(false), true) => trigger("host-answers"),
            (Some(true), false) => trigger("host-silent"),
            _ => {}
        }
        answering = Some(pong);
        if let (Some(docker), true) = (docker, pong) {
            attempt = 0;
            let mut events = container_events(&docker, &fleet);
            let mut pings = tokio::time::interval(PING_EVERY);
            pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(Ok(event)) => {
                            if quiet.is_own(&host.name, &event.id, &event.action) {
                                tracing::debug!(host = %host.name, action = %event.action, container = %event.container, "the apply's own event");
                                continue;
                            }
                            tracing::debug!(host = %host.name, action = %event.action, container = %event.container, "docker event");
                            trigger(&event.action);
                        }
                        Some(Err(error)) => {
                            tracing::debug!(host = %host.name, %error, "events stream broke");
                            // Events may have been missed until the reconnection.
                            trigger("events-reconnecting");
                            break;
                        }
                        None => {
                            trigger("events-reconnecting");
                            break;
                        }
                    },
                    _ = pings.tick() => {
                        if !ping(&docker).await {
                            tracing::debug!(host = %host.name, "host does not answer");
                            trigger("host-silent");
                            answering = Some(false);
                            break;
                        }
                    }
                }
            }
        }
        // Short waits: a host coming back is noticed within a couple of seconds.
        tokio::time::sleep(backoff(attempt, Duration::from_millis(500), Duration::from_secs(2)))
            .await;
        attempt = attempt.saturating_add(1);
    }
}

/// Whether the host answers `/_ping` within [`PING_TIMEOUT`].
async fn ping(docker: &bollard::Docker) -> bool {
    matches!(tokio::time::timeout(PING_TIMEOUT, docker.ping()).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_the_applys_own_events_are_quiet_until_a_moment_after_it() {
        let quiet = Quiet::default();
        quiet.begin();
        quiet.expect("a", "old", &["die", "destroy"]);
        quiet.expect("a", "new", &["health_status: starting", "health_status: healthy"]);
        assert!(quiet.is_own("a", "old", "die"));
        assert!(quiet.is_own("a", "old", "destroy"));
        assert!(quiet.is_own("a", "new", "health_status: healthy"));
        assert!(!quiet.is_own("a", "new", "destroy"), "the new one removed by hand");
        assert!(!quiet.is_own("a", "new", "health_status: unhealthy"));
        assert!(!quiet.is_own("a", "new", "die"), "the new one crashed");
        assert!(!quiet.is_own("b", "old", "die"), "another host");
        quiet.end();
        tokio::time::advance(LINGER - Duration::from_millis(1)).await;
        assert!(quiet.is_own("a", "old", "destroy"));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!quiet.is_own("a", "old", "destroy"), "expectations lapse");
        quiet.begin();
        assert!(!quiet.is_own("a", "old", "die"), "a new apply starts afresh");
    }
}
