//! Which repository owns a fleet's objects on a host. Every object gitfleet creates carries
//! `io.gitfleet.repository` (a stable id of the repository it was deployed from, see
//! `git::repository_id`). Two repositories that use one fleet name on one host must not
//! prune or replace each other's objects: the host is refused to the second.
//!
//! # Rules
//!
//! * An object of this fleet whose repository label differs from ours is foreign: the host is
//!   refused (nothing planned onto it, nothing of it touched) and the refusal names the other
//!   repository.
//! * An object of this fleet without the label (made by an older gitfleet) is ours: it is
//!   adopted, and gets the label when it is next created or replaced for another reason (the
//!   label is not part of the spec hash, so adding it replaces nothing).
//! * Without a repository id of our own (`None`), nothing is refused (the old behaviour).

use std::collections::BTreeMap;

use super::labels;
use super::observed::{HostObservation, HostState, Observed, owned_by};

/// The repository that deployed this fleet's objects on `state`, when it is not `ours`.
pub fn foreign_repository(state: &HostState, fleet: &str, ours: &str) -> Option<String> {
    let containers = state.containers.iter().map(|c| &c.labels);
    let objects = state.networks.iter().chain(&state.volumes).map(|o| &o.labels);
    containers
        .chain(objects)
        .filter(|labels| owned_by(labels, fleet))
        .filter_map(|l| l.get(labels::REPOSITORY))
        .find(|repository| repository.as_str() != ours)
        .cloned()
}

/// For every reachable host of `observed` whose fleet objects another repository deployed,
/// why the host is refused.
pub fn refusals(observed: &Observed, fleet: &str, ours: &str) -> BTreeMap<String, String> {
    observed
        .hosts
        .iter()
        .filter_map(|(host, observation)| match observation {
            HostObservation::Reachable(state) => {
                let other = foreign_repository(state, fleet, ours)?;
                Some((host.clone(), refusal(fleet, &other)))
            }
            HostObservation::Unreachable { .. } => None,
        })
        .collect()
}

fn refusal(fleet: &str, other: &str) -> String {
    format!(
        "fleet {fleet:?} on this host is deployed from {other}; a second repository cannot \
         share a fleet name — rename the fleet in fleet.yaml"
    )
}

/// `observed` as the scheduler should see it: refused hosts are down with nothing known, so
/// no replica is placed there.
pub fn without_refused(observed: &Observed, refused: &BTreeMap<String, String>) -> Observed {
    let mut masked = observed.clone();
    for (host, reason) in refused {
        masked.hosts.insert(
            host.clone(),
            HostObservation::Unreachable { reason: reason.clone(), last_seen: None, down: true },
        );
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::ObservedContainer;

    fn container(fleet: &str, repository: Option<&str>) -> ObservedContainer {
        let mut labels = BTreeMap::from([(labels::FLEET.to_string(), fleet.to_string())]);
        if let Some(repository) = repository {
            labels.insert(labels::REPOSITORY.into(), repository.into());
        }
        ObservedContainer {
            id: "1".into(),
            name: "web-1".into(),
            state: "running".into(),
            labels,
            created: 0,
            health: None,
            ports: Vec::new(),
        }
    }

    fn host(containers: Vec<ObservedContainer>) -> HostObservation {
        HostObservation::Reachable(HostState { containers, ..HostState::default() })
    }

    #[test]
    fn only_another_repositorys_label_in_our_fleet_refuses_a_host() {
        let observed = Observed {
            hosts: BTreeMap::from([
                ("a".into(), host(vec![container("prod", Some("github.com/o/other"))])),
                ("b".into(), host(vec![container("prod", Some("github.com/o/ours"))])),
                ("c".into(), host(vec![container("prod", None)])),
                ("d".into(), host(vec![container("staging", Some("github.com/o/other"))])),
                ("e".into(), HostObservation::unreachable("connection refused")),
            ]),
        };
        let refused = refusals(&observed, "prod", "github.com/o/ours");
        assert_eq!(refused.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            refused["a"],
            "fleet \"prod\" on this host is deployed from github.com/o/other; a second \
             repository cannot share a fleet name — rename the fleet in fleet.yaml"
        );
        let masked = without_refused(&observed, &refused);
        assert!(matches!(masked.hosts["a"], HostObservation::Unreachable { down: true, .. }));
        assert_eq!(masked.hosts["b"], observed.hosts["b"]);
    }

    /// The only host is refused: nothing is planned there, the replica is unplaced (with a
    /// reason, not a panic), and the plan says why.
    #[test]
    fn a_refused_host_gets_no_steps_and_no_replicas() {
        use crate::diff::{Desired, HostStatus, plan};
        let mut tree = crate::model::SourceTree::new();
        let fleet = "settings: {name: prod}\nhosts:\n  a:\n    endpoint: tcp://10.250.20.2:2375\n";
        tree.insert_file("fleet.yaml", fleet.as_bytes().to_vec());
        tree.insert_file("apps/x/compose.yaml", b"services:\n  s:\n    image: x:1\n".to_vec());
        let model = crate::model::load(&tree).expect("valid");
        let observed = Observed {
            hosts: BTreeMap::from([(
                "a".into(),
                host(vec![container("prod", Some("github.com/o/other"))]),
            )]),
        };
        let ours = Some("github.com/o/ours".to_string());
        let desired = Desired::for_repository(&model, &observed, None, ours);
        let plan = plan(&desired, &observed);
        assert!(plan.hosts[0].steps.is_empty());
        assert!(
            matches!(&plan.hosts[0].status, HostStatus::Refused { reason } if reason.contains("github.com/o/other"))
        );
        assert_eq!(plan.summary.refused_hosts, 1);
        assert_eq!(plan.unplaced.len(), 1);
        assert!(plan.unplaced[0].reason.contains("down or refused"), "{}", plan.unplaced[0].reason);
        assert_eq!(plan.repository.as_deref(), Some("github.com/o/ours"));
        // Without a repository of our own, the old behaviour: the objects are ours.
        let plain = crate::diff::plan(&Desired::new(&model, &observed, None), &observed);
        assert_eq!(plain.hosts[0].status, HostStatus::Reachable);
    }
}
