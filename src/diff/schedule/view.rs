//! The scheduler's view of what is observed: the containers of desired replicas, the volumes
//! each host holds, and which hosts are unseen, away or down. Indices are the registered
//! hosts' in name order.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};

use super::demand::Demand;
use crate::diff::observed::{HostObservation, HostState, Observed};

/// A container of a desired replica, seen on a registered host (now, or when last reachable).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Existing {
    /// Index into the services (`demands`), which are in app, service order.
    pub(super) demand: usize,
    pub(super) replica: u32,
    /// Which copy of a duplicated replica is kept: running before stopped, then the newest.
    pub(super) preference: (bool, std::cmp::Reverse<i64>),
    pub(super) host: usize,
}

/// Every container of this fleet holding a replica the model still wants (its service exists
/// and its number is within `deploy.replicas`), sorted by service, replica, preference and
/// host name, without repeats.
pub(super) fn observed_replicas(
    fleet: &str,
    names: &[&str],
    observed: &Observed,
    demands: &[Demand],
) -> Vec<Existing> {
    // For lookups only, never iterated, and with fixed keys: nothing here depends on hash
    // order or on a random seed. (A binary search over the services was the slowest part of
    // a large schedule: 10,000 services, 30,000 containers.)
    let mut index: HashMap<(&str, &str), usize, BuildHasherDefault<DefaultHasher>> =
        HashMap::default();
    index.extend(demands.iter().enumerate().map(|(i, d)| ((d.app, d.service), i)));
    let mut existing = Vec::new();
    for (name, state) in visible(names, observed) {
        for container in &state.containers {
            let Some((app, service, replica)) = container.replica_slot(fleet) else {
                continue;
            };
            let Some(&demand) = index.get(&(app, service)) else {
                continue;
            };
            if (1..=demands[demand].replicas).contains(&replica) {
                let preference = (!container.is_running(), std::cmp::Reverse(container.created));
                existing.push(Existing { demand, replica, preference, host: name });
            }
        }
    }
    existing.sort_unstable();
    existing.dedup();
    existing
}

/// Volumes of this fleet: app → volume key → hosts holding it (ascending, no repeats).
pub(super) type Volumes = BTreeMap<String, BTreeMap<String, Vec<usize>>>;

pub(super) fn observed_volumes(fleet: &str, names: &[&str], observed: &Observed) -> Volumes {
    let mut volumes = Volumes::new();
    for (h, state) in visible(names, observed) {
        for volume in &state.volumes {
            if let Some((app, key)) = volume.owner(fleet) {
                let holders = volumes.entry(app).or_default().entry(key).or_default();
                // Hosts come in ascending order: only a repeat on the same host can occur.
                if holders.last() != Some(&h) {
                    holders.push(h);
                }
            }
        }
    }
    volumes
}

/// Indices of the registered hosts whose state is unknown (unreachable and not remembered, or
/// absent from `observed`), ascending: they may hold volumes we cannot see.
pub(super) fn unseen_hosts(names: &[&str], observed: &Observed) -> Vec<usize> {
    (0..names.len())
        .filter(|&h| {
            !matches!(
                observed.hosts.get(names[h]),
                Some(
                    HostObservation::Reachable(_)
                        | HostObservation::Unreachable { last_seen: Some(_), .. }
                )
            )
        })
        .collect()
}

/// Per registered host: whether it is unreachable but remembered, or down. Such a host keeps
/// the replicas it was last seen with (a down one only those its volumes pin) but gets no new
/// ones: they could not be started there.
pub(super) fn away_hosts(names: &[&str], observed: &Observed) -> Vec<bool> {
    names
        .iter()
        .map(|name| {
            matches!(
                observed.hosts.get(*name),
                Some(HostObservation::Unreachable { last_seen: Some(_), .. })
                    | Some(HostObservation::Unreachable { down: true, .. })
            )
        })
        .collect()
}

/// Per registered host: whether it is down (away past the grace period).
pub(super) fn down_hosts(names: &[&str], observed: &Observed) -> Vec<bool> {
    names
        .iter()
        .map(|name| {
            matches!(
                observed.hosts.get(*name),
                Some(HostObservation::Unreachable { down: true, .. })
            )
        })
        .collect()
}

/// The state of every registered host that could be observed, or that was when it was last
/// reachable, with its index, in name order. Hosts no longer registered are not ours to
/// schedule on.
fn visible<'o>(
    names: &[&str],
    observed: &'o Observed,
) -> impl Iterator<Item = (usize, &'o HostState)> {
    observed.hosts.iter().filter_map(|(name, observation)| {
        let state = match observation {
            HostObservation::Reachable(state) => state,
            HostObservation::Unreachable { last_seen, .. } => last_seen.as_ref()?,
        };
        Some((names.binary_search(&name.as_str()).ok()?, state))
    })
}
