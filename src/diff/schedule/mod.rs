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
//!   hosts, and hosts missing from the observation, are candidates too.
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
#[cfg(test)]
mod tests;
mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use super::observed::{Observed, ReplicaKey};
use crate::model::{Capacity, Host, Model};
use demand::{Demand, Load, demands};
use view::{away_hosts, down_hosts, observed_replicas, observed_volumes, unseen_hosts};

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
    let fleet = model.fleet.settings.name.as_str();
    // Index order is name order: every tie-break below relies on it.
    let names: Vec<&str> = model.fleet.hosts.keys().map(String::as_str).collect();
    let hosts: Vec<&Host> = model.fleet.hosts.values().collect();
    let capacities: Vec<Capacity> = hosts.iter().map(|host| host.capacity).collect();
    let volumes = observed_volumes(fleet, &names, observed);
    let unseen = unseen_hosts(&names, observed);
    let down = down_hosts(&names, observed);
    let away = away_hosts(&names, observed);
    let mut demands = demands(model, &hosts, &volumes, &unseen, &down);
    let existing = observed_replicas(fleet, &names, observed, &demands);

    let mut loads: Vec<Load> = names.iter().map(|_| Load::default()).collect();
    // Replicas of the service at hand per host; all zero between services.
    let mut counts = vec![0_u32; names.len()];

    // Phase 1: existing replicas stay where they are while they may.
    for service in existing.chunk_by(|a, b| a.demand == b.demand) {
        let demand = &mut demands[service[0].demand];
        for copies in service.chunk_by(|a, b| a.replica == b.replica) {
            // A host that is down keeps only the replicas its volumes pin there.
            let keep = copies.iter().map(|copy| copy.host).find(|&h| {
                let allowed = if down[h] {
                    demand.pinned.binary_search(&h).is_ok()
                } else {
                    demand.candidates.binary_search(&h).is_ok()
                };
                allowed && demand.exclusion(&loads[h], counts[h], &capacities[h]).is_none()
            });
            if let Some(h) = keep {
                demand.occupy(&mut loads[h]);
                counts[h] += 1;
                demand.kept.push((copies[0].replica, h));
            }
        }
        for &(_, h) in &demand.kept {
            counts[h] = 0;
        }
    }

    // Hosts that will hold an app's volume because a replica mounting it stays there (phase
    // 1) or goes there (phase 2, other services): the plan creates the volume there, so the
    // next plan would see it; counting it now keeps the next plan from placing differently.
    let mut will_hold: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for demand in &demands {
        for &(_, h) in &demand.kept {
            for &volume in &demand.volumes {
                will_hold.entry((demand.app, volume)).or_default().push(h);
            }
        }
    }

    // Phase 2: every other replica goes where the spread rule says. Assignments are made in
    // replica order, so the map below is built from sorted input.
    let mut placed: Vec<(ReplicaKey, String)> = Vec::new();
    let mut unplaced = Vec::new();
    // Replicas held back because their data is on a host that is away: looked at again once
    // every service is placed, since a later service may put their volume on a host here.
    let mut deferred: Vec<(usize, u32, String)> = Vec::new();
    let pinned_now = |demand: &Demand, will_hold: &BTreeMap<(&str, &str), Vec<usize>>| {
        let mut pinned = demand.pinned.clone();
        for &volume in &demand.volumes {
            let hosts = will_hold.get(&(demand.app, volume)).into_iter().flatten();
            pinned.extend(hosts.filter(|h| demand.candidates.binary_search(h).is_ok()));
        }
        pinned.sort_unstable();
        pinned.dedup();
        pinned
    };
    for (index, demand) in demands.iter().enumerate() {
        let pinned = pinned_now(demand, &will_hold);
        let mut held_back = false;
        let mut placed_here: Vec<usize> = Vec::new();
        for &(_, h) in &demand.kept {
            counts[h] += 1;
        }
        let mut kept = demand.kept.iter().copied().peekable();
        // Once a replica fits nowhere, nothing changes before the next replica of this
        // service: it and every later one fit nowhere either, for the same reason.
        let mut stuck: Option<String> = None;
        for replica in 1..=demand.replicas {
            if let Some((_, h)) = kept.next_if(|&(kept, _)| kept == replica) {
                placed.push((demand.key(replica), names[h].to_string()));
                continue;
            }
            if stuck.is_none() {
                // New replicas go only to hosts that can be seen (or that nobody remembers).
                let here = |hosts: &[usize]| -> Vec<usize> {
                    hosts.iter().copied().filter(|&h| !away[h]).collect()
                };
                let pinned_away: Vec<usize> = pinned.iter().copied().filter(|&h| away[h]).collect();
                let chosen =
                    demand.choose(&here(&pinned), &loads, &counts, &capacities).or_else(|| {
                        // Data on a host that is away is not given up for a fresh volume.
                        pinned_away.is_empty().then(|| {
                            demand.choose(&here(&demand.candidates), &loads, &counts, &capacities)
                        })?
                    });
                if let Some(h) = chosen {
                    demand.occupy(&mut loads[h]);
                    counts[h] += 1;
                    placed.push((demand.key(replica), names[h].to_string()));
                    placed_here.push(h);
                    continue;
                }
                held_back = !pinned_away.is_empty();
                stuck = Some(if pinned_away.is_empty() {
                    demand.reason(&names, &hosts, &loads, &counts, &capacities)
                } else {
                    let hosts: Vec<String> = pinned_away
                        .iter()
                        .map(|&h| {
                            let state = if down[h] { "down" } else { "unreachable" };
                            format!("{} ({state})", names[h])
                        })
                        .collect();
                    format!(
                        "its volume is on {}; not placed elsewhere, to keep its data",
                        hosts.join(", ")
                    )
                });
            }
            let reason = stuck.clone().unwrap_or_default();
            if held_back {
                deferred.push((index, replica, reason));
            } else {
                unplaced.push(Unplaced { replica: demand.key(replica), reason });
            }
        }
        for &h in demand.candidates.iter() {
            counts[h] = 0;
        }
        for &volume in &demand.volumes {
            will_hold.entry((demand.app, volume)).or_default().extend(&placed_here);
        }
    }

    for (index, replica, reason) in deferred {
        let demand = &demands[index];
        let here: Vec<usize> =
            pinned_now(demand, &will_hold).into_iter().filter(|&h| !away[h]).collect();
        let key = demand.key(replica);
        for (placed_key, host) in &placed {
            if placed_key.app == key.app && placed_key.service == key.service {
                if let Ok(h) = names.binary_search(&host.as_str()) {
                    counts[h] += 1;
                }
            }
        }
        match demand.choose(&here, &loads, &counts, &capacities) {
            Some(h) => {
                demand.occupy(&mut loads[h]);
                placed.push((key, names[h].to_string()));
            }
            None => unplaced.push(Unplaced { replica: key, reason }),
        }
        counts.iter_mut().for_each(|c| *c = 0);
    }
    unplaced.sort_by(|a, b| a.replica.cmp(&b.replica));

    Schedule { assignments: placed.into_iter().collect(), unplaced }
}
