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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::rc::Rc;

use serde::{Deserialize, Serialize, Serializer};

use super::observed::{HostObservation, HostState, Observed, ReplicaKey};
use crate::model::{Capacity, Constraint, Host, Model, MountSource, NodeAttribute, Protocol};

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
    // Hosts with their platforms checked against their engines (`platform`).
    let platforms = super::platform::Platforms::new(model, observed);
    let hosts: Vec<&Host> = platforms.hosts();
    let capacities: Vec<Capacity> = hosts.iter().map(|host| host.capacity).collect();
    let volumes = observed_volumes(fleet, &names, observed);
    let unseen = unseen_hosts(&names, observed);
    let down = down_hosts(&names, observed);
    let away = platforms.with_blocked(away_hosts(&names, observed));
    let mut demands = demands(model, &hosts, &volumes, &unseen, &down, &platforms);
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

/// A container of a desired replica, seen on a registered host (now, or when last reachable).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Existing {
    /// Index into the services (`demands`), which are in app, service order.
    demand: usize,
    replica: u32,
    /// Which copy of a duplicated replica is kept: running before stopped, then the newest.
    preference: (bool, std::cmp::Reverse<i64>),
    host: usize,
}

/// Every container of this fleet holding a replica the model still wants (its service exists
/// and its number is within `deploy.replicas`), sorted by service, replica, preference and
/// host name, without repeats.
fn observed_replicas(
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
            let Some(key) = container.replica_key(fleet) else {
                continue;
            };
            let Some(&demand) = index.get(&(key.app.as_str(), key.service.as_str())) else {
                continue;
            };
            if (1..=demands[demand].replicas).contains(&key.replica) {
                let preference = (!container.is_running(), std::cmp::Reverse(container.created));
                existing.push(Existing { demand, replica: key.replica, preference, host: name });
            }
        }
    }
    existing.sort_unstable();
    existing.dedup();
    existing
}

/// Volumes of this fleet: app → volume key → hosts holding it (ascending, no repeats).
type Volumes = BTreeMap<String, BTreeMap<String, Vec<usize>>>;

fn observed_volumes(fleet: &str, names: &[&str], observed: &Observed) -> Volumes {
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
fn unseen_hosts(names: &[&str], observed: &Observed) -> Vec<usize> {
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
fn away_hosts(names: &[&str], observed: &Observed) -> Vec<bool> {
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
fn down_hosts(names: &[&str], observed: &Observed) -> Vec<bool> {
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

/// What is placed on one host so far.
#[derive(Default)]
struct Load<'m> {
    replicas: u32,
    millicpus: u64,
    memory_bytes: u64,
    ports: BTreeMap<(u16, Protocol), Vec<PortUse<'m>>>,
}

/// A host port taken on a host, and by which service.
struct PortUse<'m> {
    /// `None`: every address.
    ip: Option<&'m str>,
    app: &'m str,
    service: &'m str,
}

/// A host port a service publishes.
struct Published<'m> {
    port: u16,
    protocol: Protocol,
    /// `None`: every address.
    ip: Option<&'m str>,
}

impl std::fmt::Display for Published<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocol = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        match self.ip {
            None => write!(f, "{}/{protocol}", self.port),
            Some(ip) if ip.contains(':') => write!(f, "[{ip}]:{}/{protocol}", self.port),
            Some(ip) => write!(f, "{ip}:{}/{protocol}", self.port),
        }
    }
}

/// `None` for the addresses that mean "all of them".
fn specific_ip(ip: Option<&str>) -> Option<&str> {
    ip.filter(|ip| !matches!(*ip, "" | "0.0.0.0" | "::" | "[::]"))
}

/// One service's needs, and its replicas kept by phase 1.
struct Demand<'m> {
    app: &'m str,
    service: &'m str,
    replicas: u32,
    constraints: &'m [Constraint],
    /// `None`: unlimited.
    max_per_node: Option<u32>,
    millicpus: u64,
    memory_bytes: u64,
    ports: Vec<Published<'m>>,
    /// Host indices satisfying every constraint, ascending.
    candidates: Rc<[usize]>,
    /// Why hosts satisfying the constraints cannot run it (`platform`), if any cannot.
    platform: Option<Rc<str>>,
    /// The hosts satisfying the constraints that hold (or, unseen, may hold) one of the
    /// service's volumes, ascending, including hosts that are down; empty if stateless.
    pinned: Vec<usize>,
    /// The app's named, non-external volumes it mounts.
    volumes: Vec<&'m str>,
    /// `(replica, host)` kept by phase 1, by replica.
    kept: Vec<(u32, usize)>,
}

/// Why a candidate host has no room for one more replica.
enum Exclusion<'d, 'm> {
    MaxPerNode,
    Cpu { free: u64 },
    Memory { free: u64 },
    Port { published: &'d Published<'m>, app: &'m str, service: &'m str },
}

fn demands<'m>(
    model: &'m Model,
    hosts: &[&'m Host],
    volumes: &Volumes,
    unseen: &[usize],
    down: &[bool],
    platforms: &super::platform::Platforms<'_>,
) -> Vec<Demand<'m>> {
    // Services with the same constraints share one list of candidates.
    let mut shared: BTreeMap<Vec<ConstraintKey<'m>>, Rc<[usize]>> = BTreeMap::new();
    let mut demands = Vec::new();
    for (app_name, app) in &model.apps {
        for (service_name, service) in &app.services {
            let deploy = &service.deploy;
            let constraints = deploy.placement.constraints.as_slice();
            // Every host satisfying the constraints; `candidates` leaves out the ones down.
            let satisfying: Rc<[usize]> = shared
                .entry(constraints.iter().map(constraint_key).collect())
                .or_insert_with(|| {
                    (0..hosts.len())
                        .filter(|&h| constraints.iter().all(|c| c.satisfied_by(hosts[h])))
                        .collect()
                })
                .clone();
            let (satisfying, platform) = platforms.admit(service, satisfying);
            let candidates: Rc<[usize]> = if down.iter().any(|&d| d) {
                satisfying.iter().copied().filter(|&h| !down[h]).collect()
            } else {
                satisfying.clone()
            };
            let mounted: Vec<&'m str> = service
                .mounts
                .iter()
                .filter_map(|mount| match &mount.source {
                    MountSource::Volume { volume } => Some(volume.as_str()),
                    MountSource::Bind { .. } | MountSource::Anonymous | MountSource::Tmpfs => None,
                })
                .filter(|volume| app.volumes.get(*volume).is_some_and(|def| !def.external))
                .collect();
            let mut holding: Vec<usize> = mounted
                .iter()
                .flat_map(|volume| {
                    let holders = volumes.get(app_name).and_then(|v| v.get(*volume));
                    holders.into_iter().flatten().copied()
                })
                .collect();
            // A host we cannot see may hold the data too: counting it keeps a stateful
            // replica assigned there from moving to a host that merely holds a copy.
            if !holding.is_empty() {
                holding.extend_from_slice(unseen);
            }
            holding.sort_unstable();
            holding.dedup();
            // The hosts satisfying the constraints that hold one of the volumes (down or not);
            // usually none.
            let pinned: Vec<usize> = if holding.is_empty() {
                Vec::new()
            } else {
                satisfying.iter().copied().filter(|h| holding.binary_search(h).is_ok()).collect()
            };
            let reservations = &deploy.resources.reservations;
            demands.push(Demand {
                app: app_name,
                service: service_name,
                replicas: deploy.replicas,
                constraints,
                max_per_node: deploy.placement.max_replicas_per_node.filter(|&max| max > 0),
                millicpus: reservations.millicpus.unwrap_or(0),
                memory_bytes: reservations.memory_bytes.unwrap_or(0),
                ports: service
                    .ports
                    .iter()
                    .filter_map(|port| {
                        Some(Published {
                            port: port.published?,
                            protocol: port.protocol,
                            ip: specific_ip(port.host_ip.as_deref()),
                        })
                    })
                    .collect(),
                candidates,
                platform,
                pinned,
                volumes: mounted,
                kept: Vec::new(),
            });
        }
    }
    demands
}

/// A constraint as an ordered key, to share candidates between services.
type ConstraintKey<'m> = (u8, &'m str, bool, &'m str);

fn constraint_key(constraint: &Constraint) -> ConstraintKey<'_> {
    let (kind, label) = match &constraint.attribute {
        NodeAttribute::Hostname => (0, ""),
        NodeAttribute::Label(name) => (1, name.as_str()),
        NodeAttribute::Os => (2, ""),
        NodeAttribute::Arch => (3, ""),
    };
    (kind, label, constraint.equal, constraint.value.as_str())
}

impl<'m> Demand<'m> {
    fn key(&self, replica: u32) -> ReplicaKey {
        ReplicaKey { app: self.app.to_string(), service: self.service.to_string(), replica }
    }

    /// Why a host with `load`, already running `count` replicas of this service, has no room
    /// for one more; `None` if it has.
    fn exclusion<'d>(
        &'d self,
        load: &Load<'m>,
        count: u32,
        capacity: &Capacity,
    ) -> Option<Exclusion<'d, 'm>> {
        if self.max_per_node.is_some_and(|max| count >= max) {
            return Some(Exclusion::MaxPerNode);
        }
        if let Some(total) = capacity.millicpus {
            let free = total.saturating_sub(load.millicpus);
            if self.millicpus > free {
                return Some(Exclusion::Cpu { free });
            }
        }
        if let Some(total) = capacity.memory_bytes {
            let free = total.saturating_sub(load.memory_bytes);
            if self.memory_bytes > free {
                return Some(Exclusion::Memory { free });
            }
        }
        for published in &self.ports {
            let Some(uses) = load.ports.get(&(published.port, published.protocol)) else {
                continue;
            };
            let clash = uses.iter().find(|used| match (used.ip, published.ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            });
            if let Some(used) = clash {
                return Some(Exclusion::Port { published, app: used.app, service: used.service });
            }
        }
        None
    }

    /// Records one replica of this service on a host.
    fn occupy(&self, load: &mut Load<'m>) {
        load.replicas += 1;
        // Saturating: absurd reservations on a host of unlimited capacity must not overflow.
        load.millicpus = load.millicpus.saturating_add(self.millicpus);
        load.memory_bytes = load.memory_bytes.saturating_add(self.memory_bytes);
        for published in &self.ports {
            load.ports.entry((published.port, published.protocol)).or_default().push(PortUse {
                ip: published.ip,
                app: self.app,
                service: self.service,
            });
        }
    }

    /// The spread rule over `hosts` (ascending indices): the host with room that has the
    /// fewest replicas of this service, then the fewest in total, then the lowest index.
    fn choose(
        &self,
        hosts: &[usize],
        loads: &[Load<'m>],
        counts: &[u32],
        capacities: &[Capacity],
    ) -> Option<usize> {
        let mut best: Option<(u32, u32, usize)> = None;
        for &h in hosts {
            let rank = (counts[h], loads[h].replicas, h);
            // Cheap rank first; the room check only for a host that would win.
            if best.is_some_and(|best| rank >= best) {
                continue;
            }
            if self.exclusion(&loads[h], counts[h], &capacities[h]).is_none() {
                best = Some(rank);
            }
        }
        best.map(|(_, _, h)| h)
    }

    /// Why no host can take one more replica: the constraints if no host is a candidate,
    /// otherwise what excludes each candidate.
    fn reason(
        &self,
        names: &[&str],
        hosts: &[&Host],
        loads: &[Load<'m>],
        counts: &[u32],
        capacities: &[Capacity],
    ) -> String {
        if self.candidates.is_empty() {
            return match &self.platform {
                Some(why) => why.to_string(),
                None => unsatisfiable(self.constraints, names, hosts),
            };
        }
        let mut max_per_node = Vec::new();
        let mut cpu = Vec::new();
        let mut memory = Vec::new();
        // Grouped by port, in order of first appearance.
        let mut ports: Vec<(&Published, Vec<Taken>)> = Vec::new();
        for &h in self.candidates.iter() {
            let name = names[h];
            match self.exclusion(&loads[h], counts[h], &capacities[h]) {
                None => {}
                Some(Exclusion::MaxPerNode) => max_per_node.push(name.to_string()),
                Some(Exclusion::Cpu { free }) => cpu.push((name, free)),
                Some(Exclusion::Memory { free }) => memory.push((name, free)),
                Some(Exclusion::Port { published, app, service }) => {
                    let taken = Taken { host: name, app, service };
                    match ports.iter_mut().find(|(p, _)| std::ptr::eq(*p, published)) {
                        Some((_, hosts)) => hosts.push(taken),
                        None => ports.push((published, vec![taken])),
                    }
                }
            }
        }
        let max = self.max_per_node.unwrap_or(0);
        let cpus_needed = cpus(self.millicpus);
        let memory_needed = bytes(self.memory_bytes);
        let kinds =
            [!max_per_node.is_empty(), !cpu.is_empty(), !memory.is_empty(), !ports.is_empty()];
        match kinds {
            [true, false, false, false] => {
                return format!(
                    "every candidate host ({}) already runs max_replicas_per_node = {max}",
                    list(max_per_node)
                );
            }
            [false, true, false, false] => {
                let (host, free) = most_free(&cpu);
                return format!(
                    "needs {cpus_needed} reserved; most free on a candidate host is {} ({host})",
                    cpus(free)
                );
            }
            [false, false, true, false] => {
                let (host, free) = most_free(&memory);
                return format!(
                    "needs {memory_needed} of memory reserved; most free on a candidate host is {} \
                     ({host})",
                    bytes(free)
                );
            }
            [false, false, false, true] => {
                if let [(published, hosts)] = ports.as_slice() {
                    return format!(
                        "host port {published} is already published on every candidate host ({})",
                        list(hosts.iter().map(Taken::to_string))
                    );
                }
                let each = ports.iter().flat_map(|(published, hosts)| {
                    hosts.iter().map(move |Taken { host, app, service }| {
                        format!("{host}: {published} by {app}/{service}")
                    })
                });
                return format!(
                    "its host ports are already published on every candidate host ({})",
                    list(each)
                );
            }
            // Only reached if a candidate had room after all, which `choose` rules out.
            [false, false, false, false] => return "no candidate host has room".to_string(),
            _ => {}
        }
        let mut parts = Vec::new();
        if !max_per_node.is_empty() {
            let verb = if max_per_node.len() == 1 { "runs" } else { "run" };
            parts.push(format!(
                "{} already {verb} max_replicas_per_node = {max}",
                list(max_per_node)
            ));
        }
        if !cpu.is_empty() {
            let each = cpu.iter().map(|(host, free)| format!("{host} ({})", cpus(*free)));
            parts
                .push(format!("needs {cpus_needed} reserved, more than is free on {}", list(each)));
        }
        if !memory.is_empty() {
            let each = memory.iter().map(|(host, free)| format!("{host} ({})", bytes(*free)));
            parts.push(format!(
                "needs {memory_needed} of memory reserved, more than is free on {}",
                list(each)
            ));
        }
        for (published, hosts) in &ports {
            let each = hosts.iter().map(Taken::to_string);
            parts.push(format!("host port {published} is already published on {}", list(each)));
        }
        format!("no candidate host has room: {}", parts.join("; "))
    }
}

/// A host where a port is already published, and by which service.
struct Taken<'a> {
    host: &'a str,
    app: &'a str,
    service: &'a str,
}

impl std::fmt::Display for Taken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} by {}/{}", self.host, self.app, self.service)
    }
}

/// The first host (by name) with the most free.
fn most_free<'a>(hosts: &[(&'a str, u64)]) -> (&'a str, u64) {
    // `max_by_key` keeps the last of equals: reversed, that is the first.
    hosts.iter().rev().copied().max_by_key(|&(_, free)| free).unwrap_or(("", 0))
}

/// Why no registered host satisfies `constraints`: each host with the first constraint it
/// fails, grouped by constraint.
fn unsatisfiable(constraints: &[Constraint], names: &[&str], hosts: &[&Host]) -> String {
    if hosts.is_empty() {
        return "the fleet has no hosts".to_string();
    }
    let mut failing: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (name, host) in names.iter().zip(hosts) {
        let first = constraints.iter().position(|c| !c.satisfied_by(host)).unwrap_or(0);
        failing.entry(first).or_default().push(name.to_string());
    }
    if failing.len() == 1 {
        let (first, names) = failing.into_iter().next().unwrap_or_default();
        return format!("no host satisfies {} (hosts: {})", constraints[first], list(names));
    }
    let parts: Vec<String> = failing
        .into_iter()
        .map(|(first, names)| {
            let verb = if names.len() == 1 { "fails" } else { "fail" };
            format!("{} {verb} {}", list(names), constraints[first])
        })
        .collect();
    format!("no host satisfies all placement constraints: {}", parts.join("; "))
}

/// `a, b, c`, or `a, b, …, j and 5 more` past ten items.
fn list(items: impl IntoIterator<Item = String>) -> String {
    const SHOWN: usize = 10;
    let mut out = String::new();
    let mut more = 0;
    for (i, item) in items.into_iter().enumerate() {
        if i >= SHOWN {
            more += 1;
        } else {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&item);
        }
    }
    if more > 0 {
        let _ = write!(out, " and {more} more");
    }
    out
}

/// Milli-CPUs as an operator writes them: `1 CPU`, `2 CPUs`, `1.5 CPUs`, `0.25 CPUs`.
fn cpus(millicpus: u64) -> String {
    if millicpus == 1000 {
        return "1 CPU".to_string();
    }
    format!("{} CPUs", decimal(millicpus / 1000, millicpus % 1000, 3))
}

/// Bytes in binary units, rounded down to two decimals: `512 MiB`, `1.5 GiB`, `900 B`.
fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >> (10 * (unit + 2)) > 0 {
        unit += 1;
    }
    let size = 1_u128 << (10 * (unit + 1));
    let hundredths = u128::from(bytes) * 100 / size;
    let hundredths = u64::try_from(hundredths).unwrap_or(u64::MAX);
    format!("{} {}", decimal(hundredths / 100, hundredths % 100, 2), UNITS[unit])
}

/// `whole.fraction` with `digits` fraction digits, trailing zeros (and dot) trimmed.
fn decimal(whole: u64, fraction: u64, digits: usize) -> String {
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::diff::labels;
    use crate::diff::observed::{HostState, ObservedContainer, ObservedObject};
    use crate::model::{
        App, Deploy, Endpoint, Fleet, Mount, NodeAttribute, Placement, Platform, PortMapping,
        Resources, Service, Settings, UpdateConfig, VolumeDef,
    };

    const FLEET: &str = "prod";
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    // ---- builders -----------------------------------------------------------------------

    fn host(name: &str) -> Host {
        Host {
            name: name.into(),
            endpoint: Endpoint::Unix { path: "/var/run/docker.sock".into() },
            address: None,
            labels: BTreeMap::new(),
            capacity: Capacity::default(),
            platform: Platform::default(),
        }
    }

    trait HostExt {
        fn label(self, key: &str, value: &str) -> Self;
        fn platform(self, os: &str, arch: &str) -> Self;
        fn capacity(self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self;
    }

    impl HostExt for Host {
        fn label(mut self, key: &str, value: &str) -> Self {
            self.labels.insert(key.into(), value.into());
            self
        }
        fn platform(mut self, os: &str, arch: &str) -> Self {
            self.platform = Platform { os: os.into(), arch: arch.into() };
            self
        }
        fn capacity(mut self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self {
            self.capacity = Capacity { millicpus, memory_bytes };
            self
        }
    }

    fn service(name: &str, replicas: u32) -> Service {
        Service {
            name: name.into(),
            image: "nginx:1.27".into(),
            command: None,
            entrypoint: None,
            environment: BTreeMap::new(),
            ports: Vec::new(),
            expose: Vec::new(),
            networks: BTreeMap::new(),
            mounts: Vec::new(),
            configs: Vec::new(),
            secrets: Vec::new(),
            labels: BTreeMap::new(),
            healthcheck: None,
            depends_on: BTreeMap::new(),
            restart: None,
            user: None,
            working_dir: None,
            stop_grace_period_ms: None,
            stop_signal: None,
            hostname: None,
            pull_policy: None,
            deploy: Deploy {
                replicas,
                placement: Placement::default(),
                resources: Resources::default(),
                update_config: UpdateConfig::default(),
                rollback_config: UpdateConfig::default(),
                restart_policy: None,
            },
            routes: Vec::new(),
        }
    }

    /// `"node.labels.zone == a"` and friends, as Compose writes them.
    fn constraint(text: &str) -> Constraint {
        let (attribute, equal, value) = match text.split_once(" == ") {
            Some((attribute, value)) => (attribute, true, value),
            None => {
                let (attribute, value) = text.split_once(" != ").expect("== or !=");
                (attribute, false, value)
            }
        };
        let attribute = match attribute {
            "node.hostname" => NodeAttribute::Hostname,
            "node.platform.os" => NodeAttribute::Os,
            "node.platform.arch" => NodeAttribute::Arch,
            other => NodeAttribute::Label(
                other.strip_prefix("node.labels.").expect("a node attribute").into(),
            ),
        };
        Constraint { attribute, equal, value: value.into() }
    }

    trait ServiceExt {
        fn constraint(self, text: &str) -> Self;
        fn max_per_node(self, max: u32) -> Self;
        fn reserve(self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self;
        /// `"8080"`, `"8080/udp"`, `"10.0.0.1:8080"`, or `"-"` for a port without `published`.
        fn publish(self, spec: &str) -> Self;
        fn mount_volume(self, key: &str) -> Self;
    }

    impl ServiceExt for Service {
        fn constraint(mut self, text: &str) -> Self {
            self.deploy.placement.constraints.push(constraint(text));
            self
        }
        fn max_per_node(mut self, max: u32) -> Self {
            self.deploy.placement.max_replicas_per_node = Some(max);
            self
        }
        fn reserve(mut self, millicpus: Option<u64>, memory_bytes: Option<u64>) -> Self {
            self.deploy.resources.reservations.millicpus = millicpus;
            self.deploy.resources.reservations.memory_bytes = memory_bytes;
            self
        }
        fn publish(mut self, spec: &str) -> Self {
            let (rest, protocol) = match spec.strip_suffix("/udp") {
                Some(rest) => (rest, Protocol::Udp),
                None => (spec.trim_end_matches("/tcp"), Protocol::Tcp),
            };
            let (host_ip, published) = match rest.rsplit_once(':') {
                Some((ip, port)) => (Some(ip.to_string()), port),
                None => (None, rest),
            };
            self.ports.push(PortMapping {
                target: 80,
                published: (published != "-").then(|| published.parse().expect("a port")),
                host_ip,
                protocol,
            });
            self
        }
        fn mount_volume(mut self, key: &str) -> Self {
            self.mounts.push(Mount {
                source: MountSource::Volume { volume: key.into() },
                target: format!("/{key}"),
                read_only: false,
            });
            self
        }
    }

    fn app(name: &str, services: impl IntoIterator<Item = Service>) -> App {
        App {
            name: name.into(),
            file: format!("apps/{name}/compose.yaml"),
            services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            networks: BTreeMap::new(),
            volumes: BTreeMap::new(),
            configs: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }

    trait AppExt {
        fn volume(self, key: &str, external: bool) -> Self;
    }

    impl AppExt for App {
        fn volume(mut self, key: &str, external: bool) -> Self {
            let def = VolumeDef {
                docker_name: format!("{}_{key}", self.name),
                external,
                driver: None,
                labels: BTreeMap::new(),
            };
            self.volumes.insert(key.into(), def);
            self
        }
    }

    fn model(hosts: impl IntoIterator<Item = Host>, apps: impl IntoIterator<Item = App>) -> Model {
        Model {
            fleet: Fleet {
                hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
                settings: Settings { name: FLEET.into(), ..Settings::default() },
                variables: BTreeMap::new(),
            },
            apps: apps.into_iter().map(|a| (a.name.clone(), std::sync::Arc::new(a))).collect(),
        }
    }

    fn hosts(names: &[&str]) -> Vec<Host> {
        names.iter().map(|name| host(name)).collect()
    }

    /// `"shop/web#2"` → its key.
    fn key(text: &str) -> ReplicaKey {
        let (app, rest) = text.split_once('/').expect("app/service#n");
        let (service, replica) = rest.split_once('#').expect("app/service#n");
        ReplicaKey { app: app.into(), service: service.into(), replica: replica.parse().unwrap() }
    }

    fn container(fleet: &str, replica: &str) -> ObservedContainer {
        let key = key(replica);
        let labels = [
            (labels::FLEET, fleet.to_string()),
            (labels::APP, key.app.clone()),
            (labels::SERVICE, key.service.clone()),
            (labels::REPLICA, key.replica.to_string()),
        ];
        ObservedContainer {
            id: format!("id-{fleet}-{replica}"),
            name: format!("{}-{}-{}", key.app, key.service, key.replica),
            state: "running".into(),
            labels: labels.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            created: 0,
            health: None,
        }
    }

    fn volume(fleet: &str, app: &str, key: &str) -> ObservedObject {
        let labels = [(labels::FLEET, fleet), (labels::APP, app), (labels::OBJECT, key)];
        ObservedObject {
            id: format!("{app}_{key}"),
            name: format!("{app}_{key}"),
            labels: labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    /// Observed state, built host by host.
    #[derive(Default)]
    struct Obs(Observed);

    impl Obs {
        fn state(&mut self, host: &str) -> &mut HostState {
            let observation = self
                .0
                .hosts
                .entry(host.into())
                .or_insert_with(|| HostObservation::Reachable(HostState::default()));
            match observation {
                HostObservation::Reachable(state) => state,
                HostObservation::Unreachable { .. } => panic!("{host} is unreachable"),
            }
        }
        /// This fleet's containers for `replicas` (`"shop/web#1"`) on `host`.
        fn run(mut self, host: &str, replicas: &[&str]) -> Self {
            let state = self.state(host);
            state.containers.extend(replicas.iter().map(|r| container(FLEET, r)));
            self
        }
        /// A container labelled for `fleet` (any fleet) holding `replica`.
        fn labelled(mut self, host: &str, fleet: &str, replica: &str) -> Self {
            self.state(host).containers.push(container(fleet, replica));
            self
        }
        fn unlabelled(mut self, host: &str) -> Self {
            let bare = ObservedContainer {
                id: "bare".into(),
                name: "hand-made".into(),
                state: "running".into(),
                labels: BTreeMap::new(),
                created: 0,
                health: None,
            };
            self.state(host).containers.push(bare);
            self
        }
        fn volume(mut self, host: &str, fleet: &str, app: &str, key: &str) -> Self {
            self.state(host).volumes.push(volume(fleet, app, key));
            self
        }
        /// `host` observed, with nothing of this fleet on it.
        fn empty(mut self, host: &str) -> Self {
            self.state(host);
            self
        }
        fn unreachable(mut self, host: &str) -> Self {
            let reason = "connection refused".to_string();
            self.0.hosts.insert(host.into(), HostObservation::unreachable(reason));
            self
        }
        /// `host` unreachable now, remembered as it was built so far; `down` past the grace.
        fn lost(mut self, host: &str, down: bool) -> Self {
            let last_seen = match self.0.hosts.remove(host) {
                Some(HostObservation::Reachable(state)) => Some(state),
                _ => None,
            };
            let reason = "connection refused".to_string();
            self.0
                .hosts
                .insert(host.into(), HostObservation::Unreachable { reason, last_seen, down });
            self
        }
        /// Marks the newest-built container on `host` as created at `when`.
        fn created(mut self, host: &str, when: i64) -> Self {
            if let Some(container) = self.state(host).containers.last_mut() {
                container.created = when;
            }
            self
        }
        fn build(self) -> Observed {
            self.0
        }
    }

    fn nothing() -> Observed {
        Observed::default()
    }

    /// What applying `schedule` would leave on the hosts (every host reachable), plus the
    /// volumes of `before`.
    fn observed_from(model: &Model, schedule: &Schedule, before: &Observed) -> Observed {
        let mut obs = Obs::default();
        for name in model.fleet.hosts.keys() {
            obs.state(name);
        }
        for (replica, host) in &schedule.assignments {
            obs = obs.run(host, &[&replica.to_string()]);
        }
        for (name, observation) in &before.hosts {
            if let HostObservation::Reachable(state) = observation {
                obs.state(name).volumes.extend(state.volumes.iter().cloned());
            }
        }
        obs.build()
    }

    /// `["shop/web#1 a", ...]`
    fn layout(schedule: &Schedule) -> Vec<String> {
        schedule.assignments.iter().map(|(replica, host)| format!("{replica} {host}")).collect()
    }

    /// `["shop/web#3: why", ...]`
    fn reasons(schedule: &Schedule) -> Vec<String> {
        schedule.unplaced.iter().map(|u| format!("{}: {}", u.replica, u.reason)).collect()
    }

    fn hosts_used(schedule: &Schedule) -> Vec<&str> {
        let used: BTreeSet<&str> = schedule.assignments.values().map(String::as_str).collect();
        used.into_iter().collect()
    }

    // ---- spread -------------------------------------------------------------------------

    #[test]
    fn spreads_three_replicas_over_three_hosts() {
        let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 3)])]);
        let s = schedule(&m, &nothing());
        assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b", "shop/web#3 c"]);
        assert!(s.unplaced.is_empty());
    }

    #[test]
    fn spread_breaks_ties_by_total_replicas_then_name() {
        let m = model(
            hosts(&["a", "b", "c"]),
            [app("blog", [service("web", 2)]), app("shop", [service("web", 2)])],
        );
        let s = schedule(&m, &nothing());
        // blog fills a and b; shop's first replica goes to the emptiest host, c.
        assert_eq!(layout(&s), ["blog/web#1 a", "blog/web#2 b", "shop/web#1 c", "shop/web#2 a"]);
    }

    #[test]
    fn more_replicas_than_hosts_wrap_around() {
        let m = model(hosts(&["a", "b"]), [app("shop", [service("web", 5)])]);
        let s = schedule(&m, &nothing());
        let expected = ["#1 a", "#2 b", "#3 a", "#4 b", "#5 a"].map(|r| format!("shop/web{r}"));
        assert_eq!(layout(&s), expected);
    }

    #[test]
    fn zero_replicas_and_no_services_schedule_nothing() {
        let m = model(hosts(&["a"]), [app("shop", [service("web", 0)]), app("empty", [])]);
        assert_eq!(schedule(&m, &nothing()), Schedule::default());
    }

    // ---- constraints --------------------------------------------------------------------

    #[test]
    fn constraints_select_candidate_hosts() {
        let fleet = [
            host("a").label("zone", "x"),
            host("b").label("zone", "y").platform("linux", "aarch64"),
            host("c").platform("windows", "x86_64"),
        ];
        let cases: &[(&[&str], &[&str])] = &[
            // A service that does not say it runs on Windows runs on Linux only (`platform`).
            (&[], &["a", "b"]),
            (&["node.hostname == b"], &["b"]),
            (&["node.hostname != b"], &["a"]),
            (&["node.labels.zone == x"], &["a"]),
            // A host without the label is "not equal".
            (&["node.labels.zone != x"], &["b"]),
            (&["node.platform.os == windows"], &["c"]),
            (&["node.platform.os != windows"], &["a", "b"]),
            (&["node.platform.arch == aarch64"], &["b"]),
            (&["node.platform.arch != aarch64", "node.labels.zone != y"], &["a"]),
        ];
        for (constraints, expected) in cases {
            let web = constraints.iter().fold(service("web", 6), |s, c| s.constraint(c));
            let s = schedule(&model(fleet.clone(), [app("shop", [web])]), &nothing());
            assert_eq!(hosts_used(&s), *expected, "constraints {constraints:?}");
            assert!(s.unplaced.is_empty(), "constraints {constraints:?}");
        }
    }

    #[test]
    fn unsatisfiable_constraints_name_every_host() {
        let fleet = [host("a").label("zone", "a"), host("b").label("zone", "b")];
        let cases: &[(&[&str], &str)] = &[
            (&["node.labels.zone == c"], "no host satisfies node.labels.zone == c (hosts: a, b)"),
            (
                &["node.labels.zone == b", "node.platform.os == windows"],
                "no host satisfies all placement constraints: a fails node.labels.zone == b; \
                 b fails node.platform.os == windows",
            ),
        ];
        for (constraints, reason) in cases {
            let web = constraints.iter().fold(service("web", 2), |s, c| s.constraint(c));
            let s = schedule(&model(fleet.clone(), [app("shop", [web])]), &nothing());
            assert!(s.assignments.is_empty());
            let expected = [format!("shop/web#1: {reason}"), format!("shop/web#2: {reason}")];
            assert_eq!(reasons(&s), expected);
        }
        let s = schedule(&model([], [app("shop", [service("web", 1)])]), &nothing());
        assert_eq!(reasons(&s), ["shop/web#1: the fleet has no hosts"]);
    }

    #[test]
    fn long_host_lists_are_shortened() {
        let names: Vec<String> = (0..15).map(|i| format!("h{i:02}")).collect();
        let fleet = names.iter().map(|n| host(n));
        let web = service("web", 1).constraint("node.labels.zone == z");
        let s = schedule(&model(fleet, [app("shop", [web])]), &nothing());
        assert_eq!(
            reasons(&s),
            ["shop/web#1: no host satisfies node.labels.zone == z (hosts: h00, h01, h02, h03, \
              h04, h05, h06, h07, h08, h09 and 5 more)"]
        );
    }

    // ---- max_replicas_per_node ------------------------------------------------------------

    #[test]
    fn max_replicas_per_node_is_respected() {
        let web = service("web", 5).max_per_node(2);
        let s = schedule(&model(hosts(&["a", "b"]), [app("shop", [web])]), &nothing());
        assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b", "shop/web#3 a", "shop/web#4 b"]);
        assert_eq!(
            reasons(&s),
            ["shop/web#5: every candidate host (a, b) already runs max_replicas_per_node = 2"]
        );
    }

    #[test]
    fn max_replicas_per_node_zero_means_unlimited() {
        let web = service("web", 3).max_per_node(0);
        let s = schedule(&model(hosts(&["a"]), [app("shop", [web])]), &nothing());
        assert_eq!(s.assignments.len(), 3);
    }

    // ---- capacity -----------------------------------------------------------------------

    #[test]
    fn cpu_capacity_exhausted_leaves_replicas_unplaced() {
        let fleet = [host("a").capacity(Some(3500), None), host("b").capacity(Some(1000), None)];
        let web = service("web", 3).reserve(Some(2000), None);
        let s = schedule(&model(fleet, [app("shop", [web])]), &nothing());
        assert_eq!(layout(&s), ["shop/web#1 a"]);
        let reason = "needs 2 CPUs reserved; most free on a candidate host is 1.5 CPUs (a)";
        assert_eq!(reasons(&s), [format!("shop/web#2: {reason}"), format!("shop/web#3: {reason}")]);
    }

    #[test]
    fn memory_capacity_counts_every_service_on_the_host() {
        let fleet = [host("a").capacity(None, Some(GIB)), host("b").capacity(None, Some(GIB))];
        let s = schedule(
            &model(
                fleet,
                [
                    app("blog", [service("db", 2).reserve(None, Some(768 * MIB))]),
                    app("shop", [service("web", 2).reserve(Some(100), Some(512 * MIB))]),
                ],
            ),
            &nothing(),
        );
        assert_eq!(layout(&s), ["blog/db#1 a", "blog/db#2 b"]);
        let reason =
            "needs 512 MiB of memory reserved; most free on a candidate host is 256 MiB (a)";
        assert_eq!(reasons(&s), [format!("shop/web#1: {reason}"), format!("shop/web#2: {reason}")]);
    }

    #[test]
    fn unlimited_capacity_takes_anything() {
        let web = service("web", 3).reserve(Some(64_000), Some(1 << 40));
        let s = schedule(&model(hosts(&["a"]), [app("shop", [web])]), &nothing());
        assert_eq!(s.assignments.len(), 3);
    }

    // ---- ports --------------------------------------------------------------------------

    #[test]
    fn port_conflict_between_services_of_different_apps() {
        let m = model(
            hosts(&["a", "b"]),
            [
                app("blog", [service("web", 1).publish("8080").constraint("node.hostname == b")]),
                app("shop", [service("web", 1).publish("8080").constraint("node.hostname == a")]),
                app("wiki", [service("web", 1).publish("8080"), service("api", 1).publish("9090")]),
            ],
        );
        let s = schedule(&m, &nothing());
        assert_eq!(layout(&s), ["blog/web#1 b", "shop/web#1 a", "wiki/api#1 a"]);
        assert_eq!(
            reasons(&s),
            ["wiki/web#1: host port 8080/tcp is already published on every candidate host \
              (a by shop/web, b by blog/web)"]
        );
    }

    #[test]
    fn port_conflict_within_one_service() {
        let web = service("web", 3).publish("8080").publish("-");
        let s = schedule(&model(hosts(&["a", "b"]), [app("shop", [web])]), &nothing());
        assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b"]);
        assert_eq!(
            reasons(&s),
            ["shop/web#3: host port 8080/tcp is already published on every candidate host \
              (a by shop/web, b by shop/web)"]
        );
    }

    #[test]
    fn which_published_ports_conflict() {
        let cases = [
            ("8080", "8080", true),
            ("8080/tcp", "8080/udp", false),
            ("8080/udp", "8080/udp", true),
            ("8080", "8081", false),
            ("10.0.0.1:8080", "10.0.0.2:8080", false),
            ("10.0.0.1:8080", "10.0.0.1:8080", true),
            ("10.0.0.1:8080", "8080", true),
            ("0.0.0.0:8080", "10.0.0.1:8080", true),
            ("::1:8080", "10.0.0.1:8080", false),
            ("-", "-", false),
        ];
        for (first, second, conflict) in cases {
            let m = model(
                hosts(&["a"]),
                [app("x", [service("one", 1).publish(first), service("two", 1).publish(second)])],
            );
            let s = schedule(&m, &nothing());
            assert_eq!(s.unplaced.len(), usize::from(conflict), "{first} vs {second}: {s:?}");
        }
    }

    #[test]
    fn port_reason_shows_the_address() {
        let m = model(
            hosts(&["a"]),
            [app(
                "x",
                [service("one", 1).publish("10.0.0.1:53/udp"), service("two", 1).publish("53/udp")],
            )],
        );
        assert_eq!(
            reasons(&schedule(&m, &nothing())),
            ["x/two#1: host port 53/udp is already published on every candidate host \
              (a by x/one)"]
        );
    }

    #[test]
    fn different_ports_taken_on_different_hosts() {
        let m = model(
            hosts(&["a", "b"]),
            [
                app("x", [service("dns", 1).publish("53/udp").constraint("node.hostname == a")]),
                app("y", [service("web", 1).publish("8443").constraint("node.hostname == b")]),
                app("z", [service("edge", 1).publish("53/udp").publish("8443")]),
            ],
        );
        assert_eq!(
            reasons(&schedule(&m, &nothing())),
            ["z/edge#1: its host ports are already published on every candidate host \
              (a: 53/udp by x/dns, b: 8443/tcp by y/web)"]
        );
    }

    #[test]
    fn each_host_is_named_with_its_own_reason() {
        let fleet = [host("a"), host("b").capacity(Some(1000), None), host("c"), host("d")];
        let m = model(
            fleet,
            [
                app("blog", [service("web", 1).publish("8080").constraint("node.hostname == c")]),
                app(
                    "shop",
                    [service("web", 2)
                        .max_per_node(1)
                        .reserve(Some(2000), None)
                        .publish("8080")
                        .constraint("node.hostname != d")],
                ),
            ],
        );
        let s = schedule(&m, &nothing());
        assert_eq!(layout(&s), ["blog/web#1 c", "shop/web#1 a"]);
        assert_eq!(
            reasons(&s),
            ["shop/web#2: no candidate host has room: a already runs max_replicas_per_node = 1; \
              needs 2 CPUs reserved, more than is free on b (1 CPU); \
              host port 8080/tcp is already published on c by blog/web"]
        );
    }

    // ---- stability ----------------------------------------------------------------------

    #[test]
    fn adding_a_host_moves_nothing() {
        let web = || service("web", 3);
        let before = model(hosts(&["b", "c"]), [app("shop", [web()])]);
        let first = schedule(&before, &nothing());
        assert_eq!(layout(&first), ["shop/web#1 b", "shop/web#2 c", "shop/web#3 b"]);

        let after = model(hosts(&["a", "b", "c"]), [app("shop", [web()])]);
        let second = schedule(&after, &observed_from(&before, &first, &nothing()));
        assert_eq!(second, first);

        // Scaling up then uses the new host.
        let scaled = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 4)])]);
        let third = schedule(&scaled, &observed_from(&after, &second, &nothing()));
        assert_eq!(
            layout(&third),
            ["shop/web#1 b", "shop/web#2 c", "shop/web#3 b", "shop/web#4 a"]
        );
    }

    #[test]
    fn adding_a_service_moves_nothing() {
        let before = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 2)])]);
        let first = schedule(&before, &nothing());
        let after = model(
            hosts(&["a", "b", "c"]),
            [app("blog", [service("web", 3)]), app("shop", [service("api", 3), service("web", 2)])],
        );
        let second = schedule(&after, &observed_from(&before, &first, &nothing()));
        for (replica, host) in &first.assignments {
            assert_eq!(second.assignments.get(replica), Some(host), "{replica} moved");
        }
        assert_eq!(second.assignments.len(), 8);
    }

    #[test]
    fn existing_replicas_stay_in_any_state_even_where_spread_would_not_put_them() {
        let mut obs = Obs::default().run("c", &["shop/web#1", "shop/web#2"]).build();
        if let Some(HostObservation::Reachable(state)) = obs.hosts.get_mut("c") {
            state.containers[1].state = "exited".into();
        }
        let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 3)])]);
        let s = schedule(&m, &obs);
        assert_eq!(layout(&s), ["shop/web#1 c", "shop/web#2 c", "shop/web#3 a"]);
    }

    #[test]
    fn a_replica_on_a_host_that_no_longer_qualifies_is_moved() {
        let fleet = [host("a").label("zone", "a"), host("b"), host("c")];
        let web = service("web", 2).constraint("node.labels.zone != a");
        let obs = Obs::default().run("a", &["shop/web#1"]).run("b", &["shop/web#2"]).build();
        let s = schedule(&model(fleet, [app("shop", [web])]), &obs);
        assert_eq!(layout(&s), ["shop/web#1 c", "shop/web#2 b"]);
    }

    #[test]
    fn kept_replicas_still_respect_capacity_ports_and_max_per_node() {
        let fleet = [host("a").capacity(Some(1000), None), host("b")];
        let cases = [
            service("web", 2).reserve(Some(1000), None),
            service("web", 2).publish("8080"),
            service("web", 2).max_per_node(1),
        ];
        for web in cases {
            let obs = Obs::default().run("a", &["shop/web#1", "shop/web#2"]).build();
            let s = schedule(&model(fleet.clone(), [app("shop", [web])]), &obs);
            assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b"]);
        }
    }

    #[test]
    fn scaling_down_drops_the_highest_replica_numbers() {
        let obs = Obs::default()
            .run("a", &["shop/web#1", "shop/web#4"])
            .run("b", &["shop/web#2", "shop/web#5"])
            .run("c", &["shop/web#3"])
            .build();
        let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 3)])]);
        let s = schedule(&m, &obs);
        assert_eq!(layout(&s), ["shop/web#1 a", "shop/web#2 b", "shop/web#3 c"]);
        assert!(s.unplaced.is_empty());
    }

    #[test]
    fn a_duplicate_replica_stays_on_the_first_valid_host_by_name() {
        let obs = Obs::default().run("c", &["shop/web#1"]).run("b", &["shop/web#1"]).build();
        let m = model(hosts(&["a", "b", "c"]), [app("shop", [service("web", 2)])]);
        assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 b", "shop/web#2 a"]);

        let web = service("web", 2).constraint("node.hostname != b");
        let m = model(hosts(&["a", "b", "c"]), [app("shop", [web])]);
        assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 c", "shop/web#2 a"]);
    }

    #[test]
    fn containers_on_unregistered_hosts_are_ignored() {
        let obs = Obs::default().run("gone", &["shop/web#1"]).build();
        let m = model(hosts(&["a"]), [app("shop", [service("web", 1)])]);
        assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 a"]);
    }

    // ---- volumes ------------------------------------------------------------------------

    #[test]
    fn a_stateful_service_follows_its_volume() {
        let db = |replicas| {
            app("db", [service("pg", replicas).mount_volume("data").max_per_node(1)])
                .volume("data", false)
        };
        let cases: &[(&[&str], u32, &[&str])] = &[
            // Volume on c: the replica goes there, not to a.
            (&["c"], 1, &["db/pg#1 c"]),
            // On b and c: those first, then fresh data elsewhere once they are full.
            (&["b", "c"], 3, &["db/pg#1 b", "db/pg#2 c", "db/pg#3 a"]),
            // Nowhere yet: plain spread.
            (&[], 2, &["db/pg#1 a", "db/pg#2 b"]),
        ];
        for (holders, replicas, expected) in cases {
            // Every host observed: an unseen host might hold the volume too.
            let seen = ["a", "b", "c"].iter().fold(Obs::default(), |obs, h| obs.empty(h));
            let obs =
                holders.iter().fold(seen, |obs, h| obs.volume(h, FLEET, "db", "data")).build();
            let s = schedule(&model(hosts(&["a", "b", "c"]), [db(*replicas)]), &obs);
            assert_eq!(layout(&s), *expected, "volume on {holders:?}");
        }
    }

    #[test]
    fn volumes_that_do_not_pin() {
        let m = model(
            hosts(&["a", "b", "c"]),
            [
                app("db", [service("pg", 1).mount_volume("ext")]).volume("ext", true),
                app("cache", [service("redis", 1).mount_volume("data")]).volume("data", false),
                app(
                    "queue",
                    [service("mq", 1).mount_volume("data").constraint("node.hostname != c")],
                )
                .volume("data", false),
            ],
        );
        let obs = Obs::default()
            // External volumes are not the app's data.
            .volume("c", FLEET, "db", "ext")
            // Another app's volume of the same key, and another fleet's.
            .volume("c", FLEET, "other", "data")
            .volume("c", "staging", "cache", "data")
            // The app's volume, on a host the service may not use.
            .volume("c", FLEET, "queue", "data")
            .build();
        // Plain spread for all three: c is the emptiest host for none of them.
        assert_eq!(layout(&schedule(&m, &obs)), ["cache/redis#1 a", "db/pg#1 b", "queue/mq#1 a"]);
    }

    #[test]
    fn existing_stateful_replicas_stay_away_from_the_volume() {
        let m = model(
            hosts(&["a", "b"]),
            [app("db", [service("pg", 1).mount_volume("data")]).volume("data", false)],
        );
        let obs = Obs::default().run("a", &["db/pg#1"]).volume("b", FLEET, "db", "data").build();
        assert_eq!(layout(&schedule(&m, &obs)), ["db/pg#1 a"]);
    }

    // ---- unreachable hosts, other fleets, determinism ------------------------------------

    #[test]
    fn an_unreachable_host_keeps_its_replicas() {
        let m = model(
            hosts(&["a", "b", "c"]),
            [app("blog", [service("web", 2)]), app("shop", [service("web", 3)])],
        );
        let first = schedule(&m, &nothing());
        let everything = observed_from(&m, &first, &nothing());

        let mut c_unreachable = everything.clone();
        c_unreachable.hosts.insert("c".into(), HostObservation::unreachable("x"));
        assert_eq!(schedule(&m, &c_unreachable), first);

        let mut c_missing = everything;
        c_missing.hosts.remove("c");
        assert_eq!(schedule(&m, &c_missing), first);

        // Unreachable hosts are still candidates when nothing is observed at all.
        let all_down = Obs::default().unreachable("a").unreachable("b").unreachable("c").build();
        assert_eq!(schedule(&m, &all_down), first);
    }

    #[test]
    fn a_remembered_host_keeps_its_replicas_and_volumes_while_away() {
        let m = model(
            hosts(&["a", "b", "c"]),
            [
                app("shop", [service("web", 3)]),
                app("db", [service("pg", 1).mount_volume("data")]).volume("data", false),
            ],
        );
        // Everything sits on c, as an earlier spread would never put it: only memory keeps it.
        let seen = Obs::default()
            .empty("a")
            .empty("b")
            .run("c", &["shop/web#1", "shop/web#2", "shop/web#3", "db/pg#1"])
            .volume("c", FLEET, "db", "data");
        let s = schedule(&m, &seen.lost("c", false).build());
        assert_eq!(layout(&s), ["db/pg#1 c", "shop/web#1 c", "shop/web#2 c", "shop/web#3 c"]);
        assert!(s.unplaced.is_empty());
    }

    #[test]
    fn a_down_host_loses_its_stateless_replicas_but_keeps_the_ones_its_volume_pins() {
        let m = model(
            hosts(&["a", "b", "c"]),
            [
                app("shop", [service("web", 3)]),
                app("db", [service("pg", 2).mount_volume("data").max_per_node(1)])
                    .volume("data", false),
            ],
        );
        let seen = Obs::default()
            .run("a", &["shop/web#1"])
            .run("b", &["shop/web#2"])
            .run("c", &["shop/web#3", "db/pg#1"])
            .volume("c", FLEET, "db", "data");
        let s = schedule(&m, &seen.lost("c", true).build());
        assert_eq!(layout(&s), ["db/pg#1 c", "shop/web#1 a", "shop/web#2 b", "shop/web#3 a"]);
        // The second replica would need a fresh volume: not while the data is on a down host.
        assert_eq!(
            reasons(&s),
            ["db/pg#2: its volume is on c (down); not placed elsewhere, to keep its data"]
        );
    }

    #[test]
    fn a_down_host_nobody_remembers_is_no_candidate() {
        let m = model(hosts(&["a", "b"]), [app("shop", [service("web", 2)])]);
        let obs = Obs::default().empty("a").lost("b", true).build();
        assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 a", "shop/web#2 a"]);
    }

    #[test]
    fn of_two_copies_the_running_then_the_newest_is_kept() {
        let m = model(hosts(&["a", "b"]), [app("shop", [service("web", 1)])]);
        // b came back after its replica had moved to a: a's copy is newer.
        let back = Obs::default()
            .run("a", &["shop/web#1"])
            .created("a", 2_000)
            .run("b", &["shop/web#1"])
            .created("b", 1_000)
            .build();
        assert_eq!(layout(&schedule(&m, &back)), ["shop/web#1 a"]);
        let mut reversed = back.clone();
        for (host, when) in [("a", 1_000), ("b", 2_000)] {
            if let Some(HostObservation::Reachable(state)) = reversed.hosts.get_mut(host) {
                state.containers[0].created = when;
            }
        }
        assert_eq!(layout(&schedule(&m, &reversed)), ["shop/web#1 b"]);
        // A running copy wins over a newer stopped one.
        let mut stopped = back;
        if let Some(HostObservation::Reachable(state)) = stopped.hosts.get_mut("a") {
            state.containers[0].state = "exited".into();
        }
        assert_eq!(layout(&schedule(&m, &stopped)), ["shop/web#1 b"]);
    }

    #[test]
    fn objects_of_other_fleets_and_unlabelled_ones_are_ignored() {
        let fleet = [host("a").capacity(Some(1000), None), host("b")];
        let m = model(
            fleet,
            [app(
                "shop",
                [service("web", 1).reserve(Some(1000), None).publish("80").mount_volume("data")],
            )
            .volume("data", false)],
        );
        let obs = Obs::default()
            .labelled("b", "staging", "shop/web#1")
            .volume("b", "staging", "shop", "data")
            .unlabelled("a")
            .labelled("a", "staging", "shop/web#2")
            .build();
        assert_eq!(layout(&schedule(&m, &obs)), ["shop/web#1 a"]);
    }

    /// A scenario with a bit of everything, built in the given orders.
    fn busy(reverse: bool) -> (Model, Observed) {
        let mut fleet = vec![
            host("a").label("zone", "x").capacity(Some(4000), Some(8 * GIB)),
            host("b").label("zone", "y").capacity(Some(2000), None),
            host("c").label("zone", "x"),
            host("d").platform("linux", "aarch64"),
        ];
        let mut apps = vec![
            app("blog", [service("web", 3).publish("80"), service("db", 1).mount_volume("data")])
                .volume("data", false),
            app(
                "shop",
                [
                    service("web", 4).reserve(Some(1000), Some(GIB)).max_per_node(2),
                    service("api", 2).constraint("node.labels.zone == x").publish("80"),
                    service("worker", 5).constraint("node.platform.arch != aarch64"),
                ],
            ),
        ];
        let mut hosts_seen = vec![
            ("a", vec!["shop/web#1", "blog/web#1"]),
            ("b", vec!["shop/web#9", "blog/db#1", "shop/worker#2"]),
            ("c", vec!["shop/web#1", "shop/api#1"]),
        ];
        if reverse {
            fleet.reverse();
            apps.reverse();
            hosts_seen.reverse();
            for (_, replicas) in &mut hosts_seen {
                replicas.reverse();
            }
        }
        let obs = hosts_seen
            .iter()
            .fold(Obs::default(), |obs, (h, replicas)| obs.run(h, replicas))
            .volume("d", FLEET, "blog", "data")
            .unreachable("e")
            .build();
        (model(fleet, apps), obs)
    }

    #[test]
    fn deterministic_whatever_the_insertion_order() {
        let (m, obs) = busy(false);
        let first = schedule(&m, &obs);
        assert_eq!(schedule(&m, &obs), first);
        let (m2, obs2) = busy(true);
        assert_eq!(schedule(&m2, &obs2), first);
        assert_eq!(
            layout(&first),
            [
                "blog/db#1 b",
                "blog/web#1 a",
                // c already publishes port 80 (shop/api#1): d is the emptiest.
                "blog/web#2 d",
                "blog/web#3 b",
                "shop/api#1 c",
                "shop/web#1 a", // kept on a, the first of its duplicates on a and c
                "shop/web#2 c",
                "shop/web#3 d",
                "shop/web#4 b",
                "shop/worker#1 a",
                "shop/worker#2 b", // kept
                "shop/worker#3 c",
                "shop/worker#4 a",
                "shop/worker#5 c",
            ]
        );
        assert_eq!(
            reasons(&first),
            ["shop/api#2: host port 80/tcp is already published on every candidate host \
              (a by blog/web, c by shop/api)"]
        );
    }

    #[test]
    fn serialises_to_json_with_readable_keys() {
        let m = model(
            hosts(&["a"]),
            [app("shop", [service("web", 1), service("db", 1).constraint("node.hostname == z")])],
        );
        let json = serde_json::to_value(schedule(&m, &nothing())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "assignments": { "shop/web#1": "a" },
                "unplaced": [{
                    "replica": { "app": "shop", "service": "db", "replica": 1 },
                    "reason": "no host satisfies node.hostname == z (hosts: a)"
                }]
            })
        );
    }

    // ---- formatting ---------------------------------------------------------------------

    #[test]
    fn formats_amounts_for_people() {
        let cpu = [
            (0, "0 CPUs"),
            (1, "0.001 CPUs"),
            (250, "0.25 CPUs"),
            (1000, "1 CPU"),
            (1500, "1.5 CPUs"),
            (2000, "2 CPUs"),
            (64_000, "64 CPUs"),
        ];
        for (millicpus, text) in cpu {
            assert_eq!(cpus(millicpus), text);
        }
        let memory = [
            (0, "0 B"),
            (900, "900 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (512 * MIB, "512 MiB"),
            (GIB + GIB / 2, "1.5 GiB"),
            (GIB - 1, "1023.99 MiB"),
            (3 << 40, "3 TiB"),
            (u64::MAX, "15.99 EiB"),
        ];
        for (amount, text) in memory {
            assert_eq!(bytes(amount), text);
        }
        assert_eq!(list(["a".to_string()]), "a");
        assert_eq!(list((0..12).map(|i| i.to_string())), "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more");
    }

    // ---- properties ---------------------------------------------------------------------

    /// A small random fleet and workload, and a random (possibly inconsistent) observation.
    fn arbitrary_case() -> impl Strategy<Value = (Model, Observed)> {
        let host_spec =
            (any::<bool>(), proptest::option::of(1..=4_u64), proptest::option::of(1..=4_u64));
        let port_spec = (
            prop::sample::select(vec!["80", "81", "-"]),
            any::<bool>(),
            prop::sample::select(vec!["", "10.0.0.1:", "10.0.0.2:", "0.0.0.0:"]),
        );
        let service_spec = (
            0..=4_u32,
            proptest::option::of((any::<bool>(), any::<bool>())),
            proptest::option::of(0..=3_u32),
            (proptest::option::of(0..=3_u64), proptest::option::of(0..=3_u64)),
            prop::collection::vec(port_spec, 0..=2),
            any::<bool>(),
        );
        let apps = prop::collection::vec(prop::collection::vec(service_spec, 1..=3), 1..=3);
        let containers =
            prop::collection::vec((0..3_usize, 0..3_usize, 1..=5_u32, 0..6_usize, 0..5_u8), 0..24);
        let volumes = prop::collection::vec((0..3_usize, 0..6_usize), 0..4);
        let unreachable = prop::collection::vec(prop::bool::weighted(0.15), 6);
        (prop::collection::vec(host_spec, 1..=5), apps, containers, volumes, unreachable).prop_map(
            |(host_specs, app_specs, containers, volumes, unreachable)| {
                let fleet = host_specs.iter().enumerate().map(|(i, (zone, cpu, memory))| {
                    host(&format!("h{i}"))
                        .label("zone", if *zone { "x" } else { "y" })
                        .capacity(cpu.map(|c| c * 1000), memory.map(|m| m * GIB))
                });
                let apps = app_specs.iter().enumerate().map(|(a, services)| {
                    let services = services.iter().enumerate().map(|(s, spec)| {
                        let (replicas, zone, max, (cpu, memory), ports, stateful) = spec;
                        let mut svc = service(&format!("s{s}"), *replicas)
                            .reserve(cpu.map(|c| c * 500), memory.map(|m| m * GIB / 2));
                        if let Some((equal, x)) = zone {
                            let op = if *equal { "==" } else { "!=" };
                            svc = svc.constraint(&format!(
                                "node.labels.zone {op} {}",
                                if *x { "x" } else { "y" }
                            ));
                        }
                        if let Some(max) = max {
                            svc = svc.max_per_node(*max);
                        }
                        let mut seen = BTreeSet::new();
                        for (port, udp, ip) in ports {
                            let proto = if *udp { "/udp" } else { "/tcp" };
                            // One mapping per port and protocol within a service.
                            if *port == "-" || seen.insert((*port, *udp)) {
                                svc = svc.publish(&format!("{ip}{port}{proto}"));
                            }
                        }
                        if *stateful {
                            svc = svc.mount_volume("data");
                        }
                        svc
                    });
                    app(&format!("app{a}"), services).volume("data", false)
                });
                let mut obs = Obs::default();
                for (a, s, replica, h, fleet) in containers {
                    let fleet = if fleet == 0 { "other" } else { FLEET };
                    obs = obs.labelled(&format!("h{h}"), fleet, &format!("app{a}/s{s}#{replica}"));
                }
                for (a, h) in volumes {
                    obs = obs.volume(&format!("h{h}"), FLEET, &format!("app{a}"), "data");
                }
                for (h, down) in unreachable.into_iter().enumerate() {
                    if down {
                        obs = obs.unreachable(&format!("h{h}"));
                    }
                }
                (model(fleet, apps), obs.build())
            },
        )
    }

    /// Every invariant a schedule must hold for `model`.
    fn check_invariants(model: &Model, schedule: &Schedule) -> Result<(), TestCaseError> {
        let mut desired = BTreeSet::new();
        for (a, app) in &model.apps {
            for (s, service) in &app.services {
                for replica in 1..=service.deploy.replicas {
                    desired.insert(ReplicaKey { app: a.clone(), service: s.clone(), replica });
                }
            }
        }
        let mut accounted: Vec<&ReplicaKey> = schedule.assignments.keys().collect();
        accounted.extend(schedule.unplaced.iter().map(|u| &u.replica));
        accounted.sort();
        let unique: BTreeSet<&ReplicaKey> = accounted.iter().copied().collect();
        prop_assert_eq!(
            unique.len(),
            accounted.len(),
            "a replica is both placed and unplaced, or twice unplaced"
        );
        prop_assert_eq!(unique, desired.iter().collect::<BTreeSet<_>>());
        for unplaced in &schedule.unplaced {
            prop_assert!(!unplaced.reason.is_empty());
        }

        let mut on_host: BTreeMap<&str, Vec<(&ReplicaKey, &Service)>> = BTreeMap::new();
        for (replica, host_name) in &schedule.assignments {
            let service = &model.apps[&replica.app].services[&replica.service];
            let host = &model.fleet.hosts[host_name];
            for c in &service.deploy.placement.constraints {
                prop_assert!(c.satisfied_by(host), "{} on {} breaks {}", replica, host_name, c);
            }
            on_host.entry(host_name).or_default().push((replica, service));
        }
        for (host_name, replicas) in &on_host {
            let capacity = model.fleet.hosts[*host_name].capacity;
            let reserved = |f: fn(&Service) -> Option<u64>| {
                replicas.iter().map(|(_, s)| f(s).unwrap_or(0)).sum::<u64>()
            };
            let cpu = reserved(|s| s.deploy.resources.reservations.millicpus);
            let memory = reserved(|s| s.deploy.resources.reservations.memory_bytes);
            prop_assert!(capacity.millicpus.is_none_or(|c| cpu <= c), "{} over CPU", host_name);
            prop_assert!(
                capacity.memory_bytes.is_none_or(|m| memory <= m),
                "{} over memory",
                host_name
            );

            let mut per_service: BTreeMap<(&str, &str), u32> = BTreeMap::new();
            for (replica, service) in replicas {
                let count = per_service.entry((&replica.app, &replica.service)).or_default();
                *count += 1;
                if let Some(max) = service.deploy.placement.max_replicas_per_node.filter(|&m| m > 0)
                {
                    prop_assert!(
                        *count <= max,
                        "{} exceeds max_replicas_per_node on {}",
                        replica,
                        host_name
                    );
                }
            }

            let published: Vec<(&ReplicaKey, u16, Protocol, Option<&str>)> = replicas
                .iter()
                .flat_map(|(replica, service)| {
                    service.ports.iter().filter_map(move |p| {
                        Some((
                            *replica,
                            p.published?,
                            p.protocol,
                            specific_ip(p.host_ip.as_deref()),
                        ))
                    })
                })
                .collect();
            for (i, (r1, port1, proto1, ip1)) in published.iter().enumerate() {
                for (r2, port2, proto2, ip2) in &published[i + 1..] {
                    let clash = port1 == port2
                        && proto1 == proto2
                        && (ip1.is_none() || ip2.is_none() || ip1 == ip2);
                    prop_assert!(
                        r1 == r2 || !clash,
                        "{} and {} both publish {} on {}",
                        r1,
                        r2,
                        port1,
                        host_name
                    );
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn schedules_hold_every_invariant_and_are_a_fixed_point((model, observed) in arbitrary_case()) {
            let first = schedule(&model, &observed);
            check_invariants(&model, &first)?;
            prop_assert_eq!(&schedule(&model, &observed), &first, "not deterministic");
            let applied = observed_from(&model, &first, &observed);
            let second = schedule(&model, &applied);
            prop_assert_eq!(&second.assignments, &first.assignments, "rescheduling moved replicas");
            let unplaced = |s: &Schedule| s.unplaced.iter().map(|u| u.replica.clone()).collect::<Vec<_>>();
            prop_assert_eq!(unplaced(&second), unplaced(&first));
        }

        #[test]
        fn adding_a_host_and_an_app_moves_no_replica((model, observed) in arbitrary_case()) {
            let first = schedule(&model, &observed);
            let applied = observed_from(&model, &first, &observed);
            let mut grown = model.clone();
            let extra = host("h9").label("zone", "x");
            grown.fleet.hosts.insert(extra.name.clone(), extra);
            let newcomer = app("new", [service("web", 3), service("db", 1).max_per_node(1)]);
            grown.apps.insert(newcomer.name.clone(), std::sync::Arc::new(newcomer));
            let second = schedule(&grown, &applied);
            check_invariants(&grown, &second)?;
            for (replica, host) in &first.assignments {
                prop_assert_eq!(second.assignments.get(replica), Some(host), "{} moved", replica);
            }
        }
    }
}
