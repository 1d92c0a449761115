//! The state a plan promises: `observed` with every step of `plan` carried out, as a perfect
//! apply would leave it. Used to check that planning is idempotent (plan, apply, plan again:
//! nothing to do) without a Docker engine.

use super::labels;
use super::observed::{HostObservation, Observed, ObservedContainer, ObservedObject};
use super::plan::{Plan, Step};

/// Applies `plan` to `observed`, giving the state a successful apply leaves behind.
pub fn apply_plan(observed: &Observed, plan: &Plan) -> Observed {
    let mut next = observed.clone();
    for host_plan in &plan.hosts {
        let Some(HostObservation::Reachable(state)) = next.hosts.get_mut(&host_plan.host) else {
            continue;
        };
        for step in &host_plan.steps {
            match step {
                Step::CreateNetwork { app, key, network, .. } => {
                    state.networks.push(ObservedObject {
                        id: format!("net-{}", network.name),
                        name: network.name.clone(),
                        labels: labels::with_repository(
                            labels::for_object(&plan.fleet, app, key, &network.labels),
                            plan.repository.as_deref(),
                        ),
                    })
                }
                Step::CreateVolume { app, key, volume, .. } => state.volumes.push(ObservedObject {
                    id: volume.name.clone(),
                    name: volume.name.clone(),
                    labels: labels::with_repository(
                        labels::for_object(&plan.fleet, app, key, &volume.labels),
                        plan.repository.as_deref(),
                    ),
                }),
                Step::PullImage { .. } => {}
                Step::CreateContainer { replica, container, .. }
                | Step::ReplaceContainer { replica, container, .. } => {
                    if let Step::ReplaceContainer { id, .. } = step {
                        state.containers.retain(|c| &c.id != id);
                    }
                    state.containers.push(ObservedContainer {
                        id: format!("ctr-{}-{}", container.name, container.spec_hash),
                        name: container.name.clone(),
                        state: "running".into(),
                        labels: labels::with_repository(
                            labels::for_container(
                                &plan.fleet,
                                replica,
                                &container.spec,
                                &container.spec_hash,
                                plan.revision.as_deref(),
                            ),
                            plan.repository.as_deref(),
                        ),
                        // Created now: newer than anything observed.
                        created: i64::MAX,
                        health: None,
                        ports: Vec::new(),
                    });
                }
                Step::RemoveContainer { id, .. } => state.containers.retain(|c| &c.id != id),
                Step::RemoveNetwork { id, .. } => state.networks.retain(|n| &n.id != id),
            }
        }
    }
    next
}
