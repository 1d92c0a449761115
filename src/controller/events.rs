//! Docker events, turned into triggers: one task per registered host streams the events of
//! this fleet's containers (die, destroy, oom, health changes) and pushes a trigger for each,
//! so a container removed or crashed by hand is replaced within a sync. A stream that breaks
//! is reconnected with backoff, and a reconnection triggers a sync too (events may have been
//! missed meanwhile).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::trigger::{Trigger, Triggers};
use crate::git::poll::backoff;
use crate::hosts::{self, container_events};
use crate::model::{Host, Model};

/// The running watchers, by host name.
pub struct EventWatchers {
    triggers: Arc<Triggers>,
    /// Host → (what it was started for, its task).
    tasks: BTreeMap<String, (String, JoinHandle<()>)>,
}

impl EventWatchers {
    pub fn new(triggers: Arc<Triggers>) -> Self {
        EventWatchers { triggers, tasks: BTreeMap::new() }
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
            let task = tokio::spawn(watch(host, fleet.clone(), self.triggers.clone()));
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

async fn watch(host: Host, fleet: String, triggers: Arc<Triggers>) {
    let mut attempt: u32 = 0;
    let mut connected_before = false;
    loop {
        if let Ok(docker) = hosts::connect_with_timeout(&host, Duration::from_secs(10)).await {
            let mut events = container_events(&docker, &fleet);
            if connected_before {
                triggers.push(Trigger::DockerEvent {
                    host: host.name.clone(),
                    action: "events-reconnected".into(),
                });
            }
            connected_before = true;
            attempt = 0;
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        tracing::debug!(host = %host.name, action = %event.action, container = %event.container, "docker event");
                        triggers.push(Trigger::DockerEvent {
                            host: host.name.clone(),
                            action: event.action,
                        });
                    }
                    Err(error) => {
                        tracing::debug!(host = %host.name, %error, "events stream broke");
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(backoff(attempt, Duration::from_secs(1), Duration::from_secs(30))).await;
        attempt = attempt.saturating_add(1);
    }
}
