//! Demand and choice: one service's needs (candidates, reservations, ports, volumes), what is
//! placed on each host so far, whether a host has room, and the spread rule.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::view::Volumes;
use crate::diff::observed::ReplicaKey;
use crate::model::{Capacity, Constraint, Host, Model, MountSource, NodeAttribute, Protocol};

/// What is placed on one host so far.
#[derive(Default)]
pub(super) struct Load<'m> {
    pub(super) replicas: u32,
    pub(super) millicpus: u64,
    pub(super) memory_bytes: u64,
    pub(super) ports: BTreeMap<(u16, Protocol), Vec<PortUse<'m>>>,
}

/// A host port taken on a host, and by which service.
pub(super) struct PortUse<'m> {
    /// `None`: every address.
    pub(super) ip: Option<&'m str>,
    pub(super) app: &'m str,
    pub(super) service: &'m str,
}

/// A host port a service publishes.
pub(super) struct Published<'m> {
    pub(super) port: u16,
    pub(super) protocol: Protocol,
    /// `None`: every address.
    pub(super) ip: Option<&'m str>,
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
pub(super) fn specific_ip(ip: Option<&str>) -> Option<&str> {
    ip.filter(|ip| !matches!(*ip, "" | "0.0.0.0" | "::" | "[::]"))
}

/// One service's needs, and its replicas kept by phase 1.
pub(super) struct Demand<'m> {
    pub(super) app: &'m str,
    pub(super) service: &'m str,
    pub(super) replicas: u32,
    pub(super) constraints: &'m [Constraint],
    /// `None`: unlimited.
    pub(super) max_per_node: Option<u32>,
    pub(super) millicpus: u64,
    pub(super) memory_bytes: u64,
    pub(super) ports: Vec<Published<'m>>,
    /// Host indices satisfying every constraint, ascending.
    pub(super) candidates: Rc<[usize]>,
    /// Why hosts satisfying the constraints cannot run it (`platform`), if any cannot.
    pub(super) platform: Option<Rc<str>>,
    /// The hosts satisfying the constraints that hold (or, unseen, may hold) one of the
    /// service's volumes, ascending, including hosts that are down; empty if stateless.
    pub(super) pinned: Vec<usize>,
    /// The app's named, non-external volumes it mounts.
    pub(super) volumes: Vec<&'m str>,
    /// `(replica, host)` kept by phase 1, by replica.
    pub(super) kept: Vec<(u32, usize)>,
}

/// Why a candidate host has no room for one more replica.
pub(super) enum Exclusion<'d, 'm> {
    MaxPerNode,
    Cpu { free: u64 },
    Memory { free: u64 },
    Port { published: &'d Published<'m>, app: &'m str, service: &'m str },
}

pub(super) fn demands<'m>(
    model: &'m Model,
    hosts: &[&'m Host],
    volumes: &Volumes,
    unseen: &[usize],
    down: &[bool],
    platforms: &crate::diff::platform::Platforms<'_>,
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
    pub(super) fn key(&self, replica: u32) -> ReplicaKey {
        ReplicaKey { app: self.app.into(), service: self.service.into(), replica }
    }

    /// Why a host with `load`, already running `count` replicas of this service, has no room
    /// for one more; `None` if it has.
    pub(super) fn exclusion<'d>(
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
    pub(super) fn occupy(&self, load: &mut Load<'m>) {
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
    pub(super) fn choose(
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
}
