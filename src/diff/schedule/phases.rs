//! The phases of [`schedule`](super::schedule) and the state they share: the registered hosts
//! as indices, what each host holds so far, phase 1 (existing replicas stay), phase 2 (the
//! spread rule, service by service) and phase 3 (replicas held back for their data).

use std::collections::BTreeMap;

use super::Unplaced;
use super::demand::{Demand, Load};
use super::view::{Existing, away_hosts, down_hosts, unseen_hosts};
use crate::diff::observed::Observed;
use crate::diff::platform::Platforms;
use crate::model::{Capacity, Host, Model};

/// The registered hosts, by index in name order (every tie-break relies on it), and how each
/// was observed.
pub(super) struct Hosts<'m> {
    pub(super) names: Vec<&'m str>,
    pub(super) hosts: Vec<&'m Host>,
    pub(super) capacities: Vec<Capacity>,
    /// Unknown state: may hold volumes we cannot see (ascending indices).
    pub(super) unseen: Vec<usize>,
    /// Away past the grace period.
    pub(super) down: Vec<bool>,
    /// Unreachable but remembered, or down: keeps replicas, gets no new ones.
    pub(super) away: Vec<bool>,
}

impl<'m> Hosts<'m> {
    /// The hosts of `model` with their platforms as `platforms` resolved them (a host whose
    /// engine contradicts its declaration counts as away).
    pub(super) fn new(model: &'m Model, observed: &Observed, platforms: &'m Platforms<'_>) -> Self {
        let names: Vec<&str> = model.fleet.hosts.keys().map(String::as_str).collect();
        let hosts: Vec<&Host> = platforms.hosts();
        Hosts {
            capacities: hosts.iter().map(|host| host.capacity).collect(),
            unseen: unseen_hosts(&names, observed),
            down: down_hosts(&names, observed),
            away: platforms.with_blocked(away_hosts(&names, observed)),
            names,
            hosts,
        }
    }
}

/// Hosts that will hold an app's volume: (app, volume) → host indices.
pub(super) type WillHold<'m> = BTreeMap<(&'m str, &'m str), Vec<usize>>;

/// Hosts that will hold an app's volume because a replica mounting it stays there (phase 1)
/// or goes there (phase 2, other services, added as they are placed): the plan creates the
/// volume there, so the next plan would see it; counting it now keeps the next plan from
/// placing differently.
pub(super) fn will_hold<'m>(demands: &[Demand<'m>]) -> WillHold<'m> {
    let mut will_hold = WillHold::new();
    for demand in demands {
        for &(_, h) in &demand.kept {
            for &volume in &demand.volumes {
                will_hold.entry((demand.app, volume)).or_default().push(h);
            }
        }
    }
    will_hold
}

/// The hosts a stateful service's data pins it to now: where its volumes are observed, or
/// will be held.
fn pinned_now(demand: &Demand, will_hold: &WillHold) -> Vec<usize> {
    let mut pinned = demand.pinned.clone();
    for &volume in &demand.volumes {
        let hosts = will_hold.get(&(demand.app, volume)).into_iter().flatten();
        pinned.extend(hosts.filter(|h| demand.candidates.binary_search(h).is_ok()));
    }
    pinned.sort_unstable();
    pinned.dedup();
    pinned
}

/// What the phases decide, in the order they decide it.
#[derive(Default)]
pub(super) struct Outcome {
    /// Assignments `(demand index, replica, host index)`, made in replica order per service.
    pub(super) placed: Vec<(usize, u32, usize)>,
    pub(super) unplaced: Vec<Unplaced>,
    /// Replicas held back because their data is on a host that is away: looked at again once
    /// every service is placed, since a later service may put their volume on a host here.
    /// `(demand index, replica, reason if still nowhere)`.
    deferred: Vec<(usize, u32, String)>,
}

/// The placement in progress: what each host holds so far.
pub(super) struct Placing<'h, 'm> {
    hosts: &'h Hosts<'m>,
    loads: Vec<Load<'m>>,
    /// Replicas of the service at hand per host; all zero between services.
    counts: Vec<u32>,
}

impl<'h, 'm> Placing<'h, 'm> {
    pub(super) fn new(hosts: &'h Hosts<'m>) -> Self {
        let loads = hosts.names.iter().map(|_| Load::default()).collect();
        Placing { hosts, loads, counts: vec![0; hosts.names.len()] }
    }

    /// Phase 1: existing replicas stay where they are while they may (`Demand::kept`).
    pub(super) fn keep_existing(&mut self, demands: &mut [Demand<'m>], existing: &[Existing]) {
        for service in existing.chunk_by(|a, b| a.demand == b.demand) {
            let demand = &mut demands[service[0].demand];
            for copies in service.chunk_by(|a, b| a.replica == b.replica) {
                // A host that is down keeps only the replicas its volumes pin there.
                let keep = copies.iter().map(|copy| copy.host).find(|&h| {
                    let allowed = if self.hosts.down[h] {
                        demand.pinned.binary_search(&h).is_ok()
                    } else {
                        demand.candidates.binary_search(&h).is_ok()
                    };
                    allowed && self.room(demand, h)
                });
                if let Some(h) = keep {
                    demand.occupy(&mut self.loads[h]);
                    self.counts[h] += 1;
                    demand.kept.push((copies[0].replica, h));
                }
            }
            for &(_, h) in &demand.kept {
                self.counts[h] = 0;
            }
        }
    }

    /// Phase 2: one service's replicas, the kept ones where they are and every other one
    /// where the spread rule says.
    pub(super) fn spread(
        &mut self,
        index: usize,
        demand: &Demand<'m>,
        will_hold: &mut WillHold<'m>,
        outcome: &mut Outcome,
    ) {
        let hosts = self.hosts;
        let away = &hosts.away;
        let pinned = pinned_now(demand, will_hold);
        // New replicas go only to hosts that can be seen (or that nobody remembers).
        let pinned_here: Vec<usize> = pinned.iter().copied().filter(|&h| !away[h]).collect();
        let pinned_away: Vec<usize> = pinned.iter().copied().filter(|&h| away[h]).collect();
        // Made only if a replica is not kept (usually none is: most services keep all).
        let mut candidates_here: Option<Vec<usize>> = None;
        let mut held_back = false;
        let mut placed_here: Vec<usize> = Vec::new();
        for &(_, h) in &demand.kept {
            self.counts[h] += 1;
        }
        let mut kept = demand.kept.iter().copied().peekable();
        // Once a replica fits nowhere, nothing changes before the next replica of this
        // service: it and every later one fit nowhere either, for the same reason.
        let mut stuck: Option<String> = None;
        for replica in 1..=demand.replicas {
            if let Some((_, h)) = kept.next_if(|&(kept, _)| kept == replica) {
                outcome.placed.push((index, replica, h));
                continue;
            }
            if stuck.is_none() {
                let mut chosen = self.choose(demand, &pinned_here);
                // Data on a host that is away is not given up for a fresh volume.
                if chosen.is_none() && pinned_away.is_empty() {
                    let here = candidates_here.get_or_insert_with(|| {
                        demand.candidates.iter().copied().filter(|&h| !away[h]).collect()
                    });
                    chosen = self.choose(demand, here);
                }
                if let Some(h) = chosen {
                    self.place(demand, h);
                    outcome.placed.push((index, replica, h));
                    placed_here.push(h);
                    continue;
                }
                held_back = !pinned_away.is_empty();
                stuck = Some(if held_back {
                    self.held_back_reason(&pinned_away)
                } else {
                    let (loads, counts) = (&self.loads, &self.counts);
                    demand.reason(&hosts.names, &hosts.hosts, loads, counts, &hosts.capacities)
                });
            }
            let reason = stuck.clone().unwrap_or_default();
            if held_back {
                outcome.deferred.push((index, replica, reason));
            } else {
                outcome.unplaced.push(Unplaced { replica: demand.key(replica), reason });
            }
        }
        for &h in demand.candidates.iter() {
            self.counts[h] = 0;
        }
        for &volume in &demand.volumes {
            will_hold.entry((demand.app, volume)).or_default().extend(&placed_here);
        }
    }

    /// Phase 3: replicas held back for their data, once every service is placed: on a host
    /// that holds (or will hold) their volume and can be seen, or unplaced.
    pub(super) fn place_deferred(
        &mut self,
        demands: &[Demand<'m>],
        will_hold: &WillHold,
        outcome: &mut Outcome,
    ) {
        for (index, replica, reason) in std::mem::take(&mut outcome.deferred) {
            let demand = &demands[index];
            let here: Vec<usize> = pinned_now(demand, will_hold)
                .into_iter()
                .filter(|&h| !self.hosts.away[h])
                .collect();
            for &(service, _, h) in &outcome.placed {
                if service == index {
                    self.counts[h] += 1;
                }
            }
            match self.choose(demand, &here) {
                Some(h) => {
                    demand.occupy(&mut self.loads[h]);
                    outcome.placed.push((index, replica, h));
                }
                None => outcome.unplaced.push(Unplaced { replica: demand.key(replica), reason }),
            }
            self.counts.iter_mut().for_each(|c| *c = 0);
        }
    }

    /// Whether host `h` has room for one more replica of `demand`.
    fn room(&self, demand: &Demand<'m>, h: usize) -> bool {
        demand.exclusion(&self.loads[h], self.counts[h], &self.hosts.capacities[h]).is_none()
    }

    /// The spread rule's choice among `hosts`, if any has room.
    fn choose(&self, demand: &Demand<'m>, hosts: &[usize]) -> Option<usize> {
        demand.choose(hosts, &self.loads, &self.counts, &self.hosts.capacities)
    }

    fn place(&mut self, demand: &Demand<'m>, h: usize) {
        demand.occupy(&mut self.loads[h]);
        self.counts[h] += 1;
    }

    /// Why a replica is held back: the hosts away that hold its data.
    fn held_back_reason(&self, pinned_away: &[usize]) -> String {
        let names = &self.hosts.names;
        let hosts: Vec<String> = pinned_away
            .iter()
            .map(|&h| {
                let state = if self.hosts.down[h] { "down" } else { "unreachable" };
                format!("{} ({state})", names[h])
            })
            .collect();
        format!("its volume is on {}; not placed elsewhere, to keep its data", hosts.join(", "))
    }
}
