//! The scheduler: which host each replica runs on.
//!
//! [`schedule`] is a pure function of the [`Model`] and the [`Observed`] state: no I/O, no
//! clock, no randomness. The same inputs always give the same [`Schedule`], whatever order the
//! inputs were built in (every map is a `BTreeMap`, hosts are visited in name order).
//!
//! # Rules
//!
//! * **Candidates.** A service may run on every registered host that satisfies all of its
//!   `deploy.placement.constraints`. How the host was observed does not matter: unreachable
//!   hosts, and hosts missing from the observation, are candidates too. Hosts its image cannot
//!   run on are not (see `diff::platform`: a service that does not say it runs on Windows runs
//!   on Linux); a host whose engine contradicts its declared platform counts as away.
//! * **Room.** A host has room for one more replica of a service when that keeps the service
//!   within `max_replicas_per_node` (`0` means unlimited, as in Swarm), keeps the sum of the
//!   reservations (`deploy.resources.reservations`) of every replica placed there within the
//!   host's `capacity` (`None` is unlimited), and none of the replica's published host ports
//!   (`port/protocol` on an address) is already published there by any replica of any
//!   service. A port without `published` never conflicts; a wildcard address (none,
//!   `0.0.0.0`, `::`) conflicts with every address, two specific addresses only when equal.
//!   Two mappings of one replica are never checked against each other (that is validation's
//!   job).
//! * **Phase 1, stability.** For every service (apps, services, replica numbers, in order), a
//!   replica already observed as a container of this fleet (in any state) with a replica
//!   number within `deploy.replicas` stays on its host if the host is still a candidate and
//!   has room. A replica seen on several hosts (a duplicate after a crash, or a host back
//!   after its replicas moved away) stays on the host of its preferred copy: a running one
//!   before a stopped one, then the most recently created, then the first host by name. Replicas numbered above `deploy.replicas` are not assigned at all: the
//!   planner removes them (scaling down drops the highest numbers).
//! * **Phase 2, spread.** Every other replica goes to the candidate with room that runs the
//!   fewest replicas of the same service, then the fewest replicas in total, then the first
//!   by name. A *stateful* service (one that mounts a named, non-external volume of its app)
//!   first tries only the candidates where that volume is observed (any of them, if it mounts
//!   several) or that cannot be observed (they may hold it), and the other candidates (fresh
//!   data) only when none of those has room.
//! * **Unplaced.** A replica that fits nowhere is listed in [`Schedule::unplaced`] with a
//!   reason naming the hosts and what excludes each; nothing is silently dropped.
//!
//! Adding a host or a service therefore never moves running replicas.
//!
//! # Unreachable and down hosts
//!
//! An unreachable host nobody remembers shows no containers, so phase 1 keeps nothing there
//! and cannot count what runs there. Its replicas are placed again by phase 2, and because
//! the spread rule is deterministic they normally land where they were: they are then simply
//! assigned to the unreachable host, and the planner shows nothing to do for that host and
//! names it unreachable. It may hold any volume, so it counts as a holder of every volume of
//! a stateful service that is held somewhere.
//!
//! The controller remembers each host's last observation (`last_seen`): an unreachable host
//! with one counts as it was last seen, for its replicas and its volumes, so nothing moves
//! while it is briefly away; new replicas go elsewhere (they could not be started there).
//! Once it has been away longer than the grace period, the
//! controller marks it `down`: it is no longer a candidate, its replicas are placed elsewhere
//! by phase 2, except those of a stateful service whose volume it holds. These stay assigned
//! to it, and a new replica of such a service is unplaced rather than given a fresh volume
//! elsewhere. When the host comes back, its old copies are the older ones and the planner
//! removes them.
//!
//! A host counts as holding an app's volume from the moment a replica mounting it stays or is
//! placed there (the plan creates the volume), so a replica held back for its data on a host
//! that is away is placed on such a host in the same plan, not in the next one (placement is
//! idempotent: the next plan is empty). Replicas held back this way are looked at again after
//! every service is placed.

mod demand;
mod explain;
mod phases;
#[cfg(test)]
mod tests;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use super::observed::{Observed, ReplicaKey};
use super::platform::{HostPlatform, Platforms};
use crate::model::{App, Model, Service};
use demand::demands;
use phases::{Hosts, Outcome, Placing, will_hold};
use view::{observed_replicas, observed_volumes};

/// Where every desired replica runs, or why it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// Where every placed replica runs: replica → host name. In JSON the keys are the
    /// replicas' display form, `app/service#3`.
    #[serde(serialize_with = "serialize_assignments")]
    pub assignments: BTreeMap<ReplicaKey, String>,
    /// Replicas that could not be placed, each with why, in replica order.
    pub unplaced: Vec<Unplaced>,
}

/// A desired replica no host can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    pub replica: ReplicaKey,
    /// What excludes each candidate host, in words for the operator.
    pub reason: String,
}

fn serialize_assignments<S: Serializer>(
    assignments: &BTreeMap<ReplicaKey, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(assignments.iter().map(|(key, host)| (key.to_string(), host)))
}

/// Places every replica of every service of `model` on a host; see the module documentation
/// for the rules.
pub fn schedule(model: &Model, observed: &Observed) -> Schedule {
    place(model, observed).into_schedule()
}

/// A schedule by index, as [`Desired::new`](super::Desired::new) lays it out: no name is
/// copied per replica.
pub(crate) struct Placement<'m> {
    /// The registered hosts' names, ascending: what host indices index.
    pub(crate) hosts: Vec<&'m str>,
    /// Every service of the model, in app and service order: what service indices index.
    pub(crate) services: Vec<(&'m App, &'m Service)>,
    /// Every placed replica as `(service index, replica, host index)`, ascending.
    pub(crate) placed: Vec<(usize, u32, usize)>,
    /// In replica order.
    pub(crate) unplaced: Vec<Unplaced>,
    /// Every host's platform as placed with, by host index.
    pub(crate) platforms: Vec<HostPlatform>,
}

impl Placement<'_> {
    fn into_schedule(self) -> Schedule {
        // One shared name per service (and per app, as apps come in order), not per replica.
        let mut names: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(self.services.len());
        for (app, service) in &self.services {
            let app = match names.last() {
                Some((last, _)) if **last == *app.name => last.clone(),
                _ => app.name.as_str().into(),
            };
            names.push((app, service.name.as_str().into()));
        }
        let assignments = self
            .placed
            .iter()
            .map(|&(s, replica, h)| {
                let (app, service) = names[s].clone();
                (ReplicaKey { app, service, replica }, self.hosts[h].to_string())
            })
            .collect();
        Schedule { assignments, unplaced: self.unplaced }
    }
}

/// [`schedule`], by index.
pub(crate) fn place<'m>(model: &'m Model, observed: &Observed) -> Placement<'m> {
    let fleet = model.fleet.settings.name.as_str();
    // Hosts with their platforms checked against their engines (`platform`).
    let platforms = Platforms::new(model, observed);
    let hosts = Hosts::new(model, observed, &platforms);
    let volumes = observed_volumes(fleet, &hosts.names, observed);
    let mut demands =
        demands(model, &hosts.hosts, &volumes, &hosts.unseen, &hosts.down, &platforms);
    let existing = observed_replicas(fleet, &hosts.names, observed, &demands);

    let mut placing = Placing::new(&hosts);
    placing.keep_existing(&mut demands, &existing);
    let mut will_hold = will_hold(&demands);
    let mut outcome = Outcome::default();
    for (index, demand) in demands.iter().enumerate() {
        placing.spread(index, demand, &mut will_hold, &mut outcome);
    }
    placing.place_deferred(&demands, &will_hold, &mut outcome);

    // Deferred replicas come last: sorted, every service's replicas are together.
    outcome.placed.sort_unstable();
    outcome.unplaced.sort_by(|a, b| a.replica.cmp(&b.replica));
    let services: Vec<(&App, &Service)> = model
        .apps
        .values()
        .flat_map(|app| app.services.values().map(move |service| (&**app, service)))
        .collect();
    debug_assert_eq!(services.len(), demands.len(), "one demand per service, in the same order");
    Placement {
        hosts: model.fleet.hosts.keys().map(String::as_str).collect(),
        services,
        placed: outcome.placed,
        unplaced: outcome.unplaced,
        platforms: platforms.resolved().to_vec(),
    }
}
