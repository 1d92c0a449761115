//! How a [`Plan`] is carried out, decided without touching anything: which steps run first
//! on each host (networks, volumes, images, removals), which services roll out in which
//! order (`depends_on` levels), and each service's update settings. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::diff::{Plan, ReplicaKey, Step};
use crate::model::{DependencyCondition, Model, UpdateConfig};

/// A plan arranged for execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Per host, run before any container: networks, volumes, image pulls.
    pub prepare: BTreeMap<String, Vec<Step>>,
    /// Per host, containers to remove, before new ones take their ports.
    pub removals: BTreeMap<String, Vec<Step>>,
    /// Services to roll out, level by level: a level waits for the one before it.
    pub levels: Vec<Vec<ServiceRollout>>,
    /// Per host, run last: networks no longer used.
    pub cleanup: BTreeMap<String, Vec<Step>>,
}

/// The creates and replaces of one service, across hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRollout {
    pub app: String,
    pub service: String,
    /// `(host, step)` for replicas that do not exist yet, in replica order.
    pub creates: Vec<(String, Step)>,
    /// `(host, step)` for replicas to replace, in replica order.
    pub replaces: Vec<(String, Step)>,
    pub update: UpdateConfig,
    /// How replicas already updated are rolled back when the update fails with
    /// `failure_action: rollback` (`parallelism` and `delay`).
    pub rollback: UpdateConfig,
    /// Whether a replica must pass its health check (when it has one) before the service
    /// counts as rolled out: true when a dependent waits for `service_healthy`.
    pub wait_healthy: bool,
}

impl ServiceRollout {
    pub fn replicas(&self) -> impl Iterator<Item = &ReplicaKey> {
        self.creates.iter().chain(&self.replaces).filter_map(|(_, step)| match step {
            Step::CreateContainer { replica, .. } | Step::ReplaceContainer { replica, .. } => {
                Some(replica)
            }
            _ => None,
        })
    }
}

/// Arranges `plan` (made from `model`) for execution.
pub fn arrange(plan: &Plan, model: &Model) -> Rollout {
    let mut rollout = Rollout {
        prepare: BTreeMap::new(),
        removals: BTreeMap::new(),
        levels: Vec::new(),
        cleanup: BTreeMap::new(),
    };
    let mut services: BTreeMap<(String, String), ServiceRollout> = BTreeMap::new();
    for host in &plan.hosts {
        for step in &host.steps {
            let bucket = match step {
                Step::CreateNetwork { .. } | Step::CreateVolume { .. } | Step::PullImage { .. } => {
                    &mut rollout.prepare
                }
                Step::RemoveContainer { .. } => &mut rollout.removals,
                Step::RemoveNetwork { .. } => &mut rollout.cleanup,
                Step::CreateContainer { replica, .. } | Step::ReplaceContainer { replica, .. } => {
                    let entry = services
                        .entry((replica.app.to_string(), replica.service.to_string()))
                        .or_insert_with(|| {
                            let service = model
                                .apps
                                .get(&*replica.app)
                                .and_then(|a| a.services.get(&*replica.service));
                            ServiceRollout {
                                app: replica.app.to_string(),
                                service: replica.service.to_string(),
                                creates: Vec::new(),
                                replaces: Vec::new(),
                                update: service
                                    .map(|s| s.deploy.update_config.clone())
                                    .unwrap_or_default(),
                                rollback: service
                                    .map(|s| s.deploy.rollback_config.clone())
                                    .unwrap_or_default(),
                                wait_healthy: false,
                            }
                        });
                    let list = if matches!(step, Step::CreateContainer { .. }) {
                        &mut entry.creates
                    } else {
                        &mut entry.replaces
                    };
                    list.push((host.host.clone(), step.clone()));
                    continue;
                }
            };
            bucket.entry(host.host.clone()).or_default().push(step.clone());
        }
    }
    let key_of = |step: &Step| match step {
        Step::CreateContainer { replica, .. } | Step::ReplaceContainer { replica, .. } => {
            replica.replica
        }
        _ => 0,
    };
    for rollout in services.values_mut() {
        rollout.creates.sort_by_key(|(_, s)| key_of(s));
        rollout.replaces.sort_by_key(|(_, s)| key_of(s));
    }
    // Who waits for whom to be healthy.
    let mut healthy_needed: BTreeSet<(String, String)> = BTreeSet::new();
    for app in model.apps.values() {
        for service in app.services.values() {
            for (dependency, how) in &service.depends_on {
                if how.condition == DependencyCondition::ServiceHealthy {
                    healthy_needed.insert((app.name.clone(), dependency.clone()));
                }
            }
        }
    }
    let mut by_level: BTreeMap<usize, Vec<ServiceRollout>> = BTreeMap::new();
    for ((app, service), mut rollout) in services {
        rollout.wait_healthy = healthy_needed.contains(&(app.clone(), service.clone()));
        by_level.entry(level(model, &app, &service, 0)).or_default().push(rollout);
    }
    rollout.levels = by_level.into_values().collect();
    rollout
}

/// The length of the longest `depends_on` chain below a service (0 for none).
fn level(model: &Model, app: &str, service: &str, depth: usize) -> usize {
    // Cycles are rejected by validation; the depth bound only guards against looping forever.
    let Some(s) = model.apps.get(app).and_then(|a| a.services.get(service)) else { return 0 };
    if depth > 64 {
        return 0;
    }
    s.depends_on.keys().map(|d| 1 + level(model, app, d, depth + 1)).max().unwrap_or(0)
}

/// Splits `replaces` into the batches a rolling update runs, `parallelism` at a time
/// (0 = all at once).
pub fn batches<T: Clone>(replaces: &[T], parallelism: u32) -> Vec<Vec<T>> {
    if replaces.is_empty() {
        return Vec::new();
    }
    let size = if parallelism == 0 { replaces.len() } else { parallelism as usize };
    replaces.chunks(size).map(<[T]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_parallelism() {
        assert_eq!(batches(&[1, 2, 3], 1), vec![vec![1], vec![2], vec![3]]);
        assert_eq!(batches(&[1, 2, 3], 2), vec![vec![1, 2], vec![3]]);
        assert_eq!(batches(&[1, 2, 3], 0), vec![vec![1, 2, 3]]);
        assert!(batches::<u8>(&[], 1).is_empty());
    }
}
