//! `plan(desired, observed) -> Plan`: the steps that take every reachable host from what it
//! runs to what it should run, each step with its [`Reason`].
//!
//! # Guarantees
//!
//! * Pure and deterministic: the same inputs give the same plan, byte for byte as JSON.
//! * Only objects that carry this fleet's `io.gitfleet.fleet` label are ever replaced or
//!   removed; anything else in `observed` is ignored.
//! * Volumes are never removed: a volume no longer used is listed as retained.
//! * A host that could not be observed gets no steps and is named with the reason.
//! * A revision with no apps against a fleet that has containers is refused (a plan with
//!   no steps and [`Plan::refused`] set) unless the fleet sets `settings.allow_empty`: a
//!   moved or emptied `apps/` must not quietly remove everything.
//! * Planning again against the state the plan promises gives an empty plan
//!   ([`super::simulate::apply_plan`]; property-tested).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::desired::{Desired, DesiredContainer, DesiredHost, DesiredObject};
use super::labels;
use super::observed::{
    HostObservation, HostState, Observed, ObservedContainer, ObservedObject, ReplicaKey,
};
use super::platform::HostPlatform;
use super::schedule::Unplaced;
use super::spec::changed_fields;
use crate::model::PullPolicy;

/// The version of the JSON shape of [`Plan`]; bumped on any incompatible change.
pub const PLAN_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub fleet: String,
    pub revision: Option<String>,
    /// The repository deployed from (`io.gitfleet.repository` on what apply creates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub hosts: Vec<HostPlan>,
    pub unplaced: Vec<Unplaced>,
    pub summary: Summary,
    /// Why this revision is not applied at all (then there are no steps), with what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    pub status: HostStatus,
    pub steps: Vec<Step>,
    /// Objects already as desired.
    pub unchanged: usize,
    /// Volumes of this fleet no longer used here, kept because volumes are data.
    pub retained_volumes: Vec<String>,
    /// The host's platform (OS, architecture, and what its engine says), with notes on
    /// Windows translations. Added in format 1 (absent from older plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<HostPlatform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HostStatus {
    Reachable,
    /// Not observed, or its platform does not match its declaration (`platform.mismatch`), so
    /// not planned; `replicas` are assigned to it meanwhile.
    Unreachable {
        reason: String,
        replicas: usize,
    },
    /// Another repository deployed this fleet here: nothing is planned, nothing touched.
    Refused {
        reason: String,
    },
}

/// One change to one object on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    CreateNetwork {
        app: String,
        key: String,
        network: DesiredObject,
        reason: Reason,
    },
    CreateVolume {
        app: String,
        key: String,
        volume: DesiredObject,
        reason: Reason,
    },
    /// Make sure the image is on the host before containers need it.
    PullImage {
        image: String,
        policy: PullPolicy,
        reason: Reason,
    },
    CreateContainer {
        replica: ReplicaKey,
        container: DesiredContainer,
        reason: Reason,
    },
    /// Remove the container `id` and create `container` in its place.
    ReplaceContainer {
        replica: ReplicaKey,
        id: String,
        container: DesiredContainer,
        reason: Reason,
    },
    RemoveContainer {
        replica: Option<ReplicaKey>,
        id: String,
        name: String,
        reason: Reason,
    },
    RemoveNetwork {
        app: String,
        key: String,
        id: String,
        name: String,
        reason: Reason,
    },
}

/// Why a step is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// It should exist on this host and does not.
    Missing,
    /// Its canonical spec changed; `fields` are the dotted paths that differ.
    SpecChanged { fields: Vec<String> },
    /// Same spec, but the container is not running.
    NotRunning { state: String },
    /// The replica number is above the service's replica count.
    ScaledDown { replicas: u32 },
    /// Its app or service is no longer in the repository.
    NotInRepository,
    /// The scheduler placed this replica on another host.
    PlacedElsewhere { host: String },
    /// The replica can no longer be placed anywhere (see the plan's `unplaced`).
    Unplaceable,
    /// Another object is kept in its place: a container holding the same replica, or a
    /// network of the same name, app and key, on this host.
    Duplicate,
    /// The container carries this fleet's label but not a complete set of gitfleet labels.
    IncompleteLabels,
    /// A `<name>.next-<hash>` container left by a start-first replacement cut short.
    Interrupted,
    /// No container on this host uses it any more.
    NoLongerUsed,
    /// Containers to be created here need this image.
    NeededBy { containers: usize },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("missing"),
            Reason::SpecChanged { fields } => write!(f, "changed: {}", fields.join(", ")),
            Reason::NotRunning { state } => write!(f, "not running ({state})"),
            Reason::ScaledDown { replicas } => write!(f, "scaled down to {replicas}"),
            Reason::NotInRepository => f.write_str("no longer in the repository"),
            Reason::PlacedElsewhere { host } => write!(f, "moves to host {host}"),
            Reason::Unplaceable => f.write_str("can no longer be placed on this host"),
            Reason::Duplicate => f.write_str("duplicate"),
            Reason::IncompleteLabels => f.write_str("incomplete gitfleet labels"),
            Reason::Interrupted => f.write_str("left by an interrupted replacement"),
            Reason::NoLongerUsed => f.write_str("no longer used on this host"),
            Reason::NeededBy { containers } => {
                write!(
                    f,
                    "needed by {containers} container{}",
                    if *containers == 1 { "" } else { "s" }
                )
            }
        }
    }
}

/// Counts over the whole plan, for the `Plan: ...` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub replace: usize,
    pub remove: usize,
    pub unchanged: usize,
    pub unreachable_hosts: usize,
    pub unplaced: usize,
    /// Hosts where another repository deployed this fleet (nothing planned there).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused_hosts: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.create + self.replace + self.remove == 0
    }
}

impl Step {
    /// The object kind and Docker name this step acts on.
    pub fn target(&self) -> (&'static str, &str) {
        match self {
            Step::CreateNetwork { network, .. } => ("network", &network.name),
            Step::CreateVolume { volume, .. } => ("volume", &volume.name),
            Step::PullImage { image, .. } => ("image", image),
            Step::CreateContainer { container, .. } | Step::ReplaceContainer { container, .. } => {
                ("container", &container.name)
            }
            Step::RemoveContainer { name, .. } => ("container", name),
            Step::RemoveNetwork { name, .. } => ("network", name),
        }
    }

    /// The app the step belongs to, if any (image pulls belong to none).
    pub fn app(&self) -> Option<&str> {
        match self {
            Step::CreateNetwork { app, .. }
            | Step::CreateVolume { app, .. }
            | Step::RemoveNetwork { app, .. } => Some(app),
            Step::CreateContainer { replica, .. } | Step::ReplaceContainer { replica, .. } => {
                Some(&replica.app)
            }
            Step::RemoveContainer { replica, .. } => replica.as_ref().map(|r| &*r.app),
            Step::PullImage { .. } => None,
        }
    }

    pub fn reason(&self) -> &Reason {
        match self {
            Step::CreateNetwork { reason, .. }
            | Step::CreateVolume { reason, .. }
            | Step::PullImage { reason, .. }
            | Step::CreateContainer { reason, .. }
            | Step::ReplaceContainer { reason, .. }
            | Step::RemoveContainer { reason, .. }
            | Step::RemoveNetwork { reason, .. } => reason,
        }
    }
}

/// Plans every host of `desired` against `observed`.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    if let Some(refused) = empty_revision(desired, observed) {
        return Plan {
            format_version: PLAN_FORMAT_VERSION,
            fleet: desired.fleet.clone(),
            revision: desired.revision.clone(),
            repository: desired.repository.clone(),
            hosts: Vec::new(),
            unplaced: Vec::new(),
            summary: Summary::default(),
            refused: Some(refused),
        };
    }
    let mut summary = Summary { unplaced: desired.unplaced.len(), ..Summary::default() };
    let mut hosts = Vec::new();
    for (name, want) in &desired.hosts {
        let platform = desired.platforms.get(name);
        let mismatch = platform.and_then(|p| p.mismatch.as_ref());
        let mut host_plan = match observed.hosts.get(name) {
            _ if desired.refused_hosts.contains_key(name) => HostPlan {
                host: name.clone(),
                status: HostStatus::Refused { reason: desired.refused_hosts[name].clone() },
                steps: Vec::new(),
                unchanged: 0,
                retained_volumes: Vec::new(),
                platform: None,
            },
            // A host whose engine contradicts its declaration gets nothing planned.
            Some(HostObservation::Reachable(_)) if mismatch.is_some() => {
                unreachable(name, mismatch.cloned().unwrap_or_default(), want)
            }
            Some(HostObservation::Reachable(state)) => plan_host(name, want, state, desired),
            Some(HostObservation::Unreachable { reason, .. }) => {
                unreachable(name, reason.clone(), want)
            }
            None => unreachable(name, "not observed".to_string(), want),
        };
        host_plan.platform = platform.cloned();
        count(&host_plan, &mut summary);
        hosts.push(host_plan);
    }
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        fleet: desired.fleet.clone(),
        revision: desired.revision.clone(),
        repository: desired.repository.clone(),
        hosts,
        unplaced: desired.unplaced.clone(),
        summary,
        refused: None,
    }
}

/// The refusal of a revision without apps while hosts run this fleet's containers, unless
/// the fleet allows it.
fn empty_revision(desired: &Desired, observed: &Observed) -> Option<String> {
    if desired.apps > 0 || desired.allow_empty {
        return None;
    }
    let running: usize = observed
        .hosts
        .values()
        .filter_map(|host| match host {
            HostObservation::Reachable(state) => Some(state),
            _ => None,
        })
        .flat_map(|state| &state.containers)
        .filter(|c| super::observed::owned_by(&c.labels, &desired.fleet))
        .count();
    (running > 0).then(|| {
        format!(
            "refused: this revision has no apps and would remove all {running} containers of \
             fleet {:?}; if that is what you want, set `settings.allow_empty: true` in \
             fleet.yaml (otherwise check that apps/ was not moved or deleted)",
            desired.fleet
        )
    })
}

fn unreachable(name: &str, reason: String, want: &DesiredHost) -> HostPlan {
    HostPlan {
        host: name.to_string(),
        status: HostStatus::Unreachable { reason, replicas: want.containers.len() },
        steps: Vec::new(),
        unchanged: 0,
        retained_volumes: Vec::new(),
        platform: None,
    }
}

fn count(host: &HostPlan, summary: &mut Summary) {
    match host.status {
        HostStatus::Unreachable { .. } => summary.unreachable_hosts += 1,
        HostStatus::Refused { .. } => summary.refused_hosts += 1,
        HostStatus::Reachable => {}
    }
    summary.unchanged += host.unchanged;
    for step in &host.steps {
        match step {
            Step::CreateNetwork { .. }
            | Step::CreateVolume { .. }
            | Step::CreateContainer { .. } => summary.create += 1,
            Step::ReplaceContainer { .. } => summary.replace += 1,
            Step::RemoveContainer { .. } | Step::RemoveNetwork { .. } => summary.remove += 1,
            Step::PullImage { .. } => {}
        }
    }
}

/// An observed container of this fleet with its `(app, service, replica)`.
type Slotted<'o> = ((&'o str, &'o str, u32), &'o ObservedContainer);

fn plan_host(host: &str, want: &DesiredHost, state: &HostState, desired: &Desired) -> HostPlan {
    let fleet = desired.fleet.as_str();
    let mut unchanged = 0;
    let mut steps = Vec::new();

    // This fleet's networks and volumes: for each wanted (app, key) the first one with the
    // wanted Docker name is kept; every other one (a duplicate, or one under an older name)
    // is not the wanted object.
    let networks = reconcile_objects(fleet, &state.networks, &want.networks);
    let volumes = reconcile_objects(fleet, &state.volumes, &want.volumes);
    for (((app, key), object), found) in want.networks.iter().zip(&networks.found) {
        match found {
            true => unchanged += 1,
            false => steps.push(Step::CreateNetwork {
                app: app.to_string(),
                key: key.to_string(),
                network: DesiredObject::clone(object),
                reason: Reason::Missing,
            }),
        }
    }
    for (((app, key), object), found) in want.volumes.iter().zip(&volumes.found) {
        match found {
            true => unchanged += 1,
            false => steps.push(Step::CreateVolume {
                app: app.to_string(),
                key: key.to_string(),
                volume: DesiredObject::clone(object),
                reason: Reason::Missing,
            }),
        }
    }
    let retained_volumes = volumes.surplus.iter().map(|(_, v)| v.name.clone()).collect();

    // Observed containers of this fleet by replica, in replica order (the order of
    // `want.containers`), each replica's copies in observed order: one merge of the two sorted
    // lists, without a map or an allocation per container.
    let mut observed: Vec<Slotted> = Vec::with_capacity(state.containers.len());
    let mut removals = Vec::new();
    for container in &state.containers {
        match container.replica_slot(fleet) {
            Some(slot) => observed.push((slot, container)),
            None if super::observed::owned_by(&container.labels, fleet) => {
                removals.push(Step::RemoveContainer {
                    replica: None,
                    id: container.id.clone(),
                    name: container.name.clone(),
                    reason: Reason::IncompleteLabels,
                })
            }
            None => {}
        }
    }
    observed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut observed = observed.as_slice();
    // Observed replicas not wanted here, in replica order.
    let mut leftovers: Vec<&[Slotted]> = Vec::new();
    let mut container_steps = Vec::new();
    for (key, wanted) in &want.containers {
        let slot = (&*key.app, &*key.service, key.replica);
        while let Some(first) = observed.first().filter(|(other, _)| *other < slot) {
            let run = observed.iter().take_while(|(other, _)| *other == first.0).count();
            leftovers.push(&observed[..run]);
            observed = &observed[run..];
        }
        let run = observed.iter().take_while(|(other, _)| *other == slot).count();
        let (copies, rest) = observed.split_at(run);
        observed = rest;
        let keep = match copies {
            // The usual case, one copy under its own name: nothing to choose between.
            [(_, only)] if !super::interrupted::is_next_of(&only.name, &wanted.name) => *only,
            _ => {
                let found: Vec<&ObservedContainer> = copies.iter().map(|&(_, c)| c).collect();
                // Leftovers of a start-first replacement cut short go first (`interrupted`).
                let (mut found, leftovers) =
                    super::interrupted::split_leftovers(found, &wanted.name);
                for leftover in leftovers {
                    removals.push(Step::RemoveContainer {
                        replica: Some(key.clone()),
                        id: leftover.id.clone(),
                        name: leftover.name.clone(),
                        reason: Reason::Interrupted,
                    });
                }
                if found.is_empty() {
                    container_steps.push(Step::CreateContainer {
                        replica: key.clone(),
                        container: wanted.clone(),
                        reason: Reason::Missing,
                    });
                    continue;
                }
                let fitness = |c: &&ObservedContainer| {
                    (c.spec_hash() != Some(&*wanted.spec_hash), !c.is_running(), c.name.clone())
                };
                if found.len() > 1 {
                    found.sort_by_key(fitness);
                }
                for duplicate in &found[1..] {
                    removals.push(Step::RemoveContainer {
                        replica: Some(key.clone()),
                        id: duplicate.id.clone(),
                        name: duplicate.name.clone(),
                        reason: Reason::Duplicate,
                    });
                }
                found[0]
            }
        };
        let reason = if keep.spec_hash() != Some(&*wanted.spec_hash) {
            Some(Reason::SpecChanged {
                fields: changed_fields(
                    keep.labels.get(labels::SPEC).map(String::as_str),
                    &wanted.spec,
                ),
            })
        } else if !keep.is_running() {
            Some(Reason::NotRunning { state: keep.state.clone() })
        } else {
            None
        };
        match reason {
            Some(reason) => container_steps.push(Step::ReplaceContainer {
                replica: key.clone(),
                id: keep.id.clone(),
                container: wanted.clone(),
                reason,
            }),
            None => unchanged += 1,
        }
    }
    while let Some(first) = observed.first() {
        let run = observed.iter().take_while(|(other, _)| *other == first.0).count();
        leftovers.push(&observed[..run]);
        observed = &observed[run..];
    }
    // What is left is not wanted on this host.
    for copies in leftovers {
        let (app, service, replica) = copies[0].0;
        let key = ReplicaKey { app: app.into(), service: service.into(), replica };
        let reason = why_not_here(&key, host, desired);
        for (_, container) in copies {
            removals.push(Step::RemoveContainer {
                replica: Some(key.clone()),
                id: container.id.clone(),
                name: container.name.clone(),
                reason: reason.clone(),
            });
        }
    }

    // Networks go after the containers that used them are removed.
    let network_removals: Vec<Step> = networks
        .surplus
        .iter()
        .map(|&((app, key), network)| {
            let owner: (Arc<str>, Arc<str>) = (app.into(), key.into());
            let wanted_name = want.networks.get(&owner).map(|w| &w.name);
            let wanted_here = wanted_name == Some(&network.name);
            let in_repository = desired.hosts.values().any(|h| h.networks.contains_key(&owner));
            Step::RemoveNetwork {
                app: app.to_string(),
                key: key.to_string(),
                id: network.id.clone(),
                name: network.name.clone(),
                reason: match (wanted_here, in_repository) {
                    (true, _) => Reason::Duplicate,
                    (false, true) => Reason::NoLongerUsed,
                    (false, false) => Reason::NotInRepository,
                },
            }
        })
        .collect();

    steps.extend(pulls(&container_steps));
    steps.extend(removals);
    order_by_dependencies(&mut container_steps, want);
    steps.extend(container_steps);
    steps.extend(network_removals);
    HostPlan {
        host: host.to_string(),
        status: HostStatus::Reachable,
        steps,
        unchanged,
        retained_volumes,
        platform: None,
    }
}

/// This fleet's observed networks or volumes of one host, against the wanted ones.
struct ObjectMatch<'o> {
    /// For each wanted object, in the wanted map's order: whether it exists (by Docker name).
    found: Vec<bool>,
    /// Observed objects of this fleet that are not a wanted one, with their `(app, key)`.
    surplus: Vec<((&'o str, &'o str), &'o ObservedObject)>,
}

fn reconcile_objects<'o>(
    fleet: &str,
    observed: &'o [ObservedObject],
    wanted: &BTreeMap<(Arc<str>, Arc<str>), Arc<DesiredObject>>,
) -> ObjectMatch<'o> {
    // This fleet's objects by (app, key), each key's in observed order, merged with the
    // wanted ones (sorted the same way): no allocation per object.
    let mut ours: Vec<((&str, &str), usize)> = observed
        .iter()
        .enumerate()
        .filter_map(|(i, object)| Some((object.owner_ref(fleet)?, i)))
        .collect();
    ours.sort_unstable();
    let mut ours = ours.as_slice();
    let mut surplus: Vec<usize> = Vec::new();
    let mut found = Vec::with_capacity(wanted.len());
    for ((app, key), object) in wanted {
        let owner = (&**app, &**key);
        let before = ours.iter().take_while(|(other, _)| *other < owner).count();
        surplus.extend(ours[..before].iter().map(|&(_, i)| i));
        ours = &ours[before..];
        let run = ours.iter().take_while(|(other, _)| *other == owner).count();
        let mut kept = false;
        for &(_, i) in &ours[..run] {
            if !kept && observed[i].name == object.name {
                kept = true;
            } else {
                surplus.push(i);
            }
        }
        found.push(kept);
        ours = &ours[run..];
    }
    surplus.extend(ours.iter().map(|&(_, i)| i));
    // In observed order, as the steps list them.
    surplus.sort_unstable();
    let surplus = surplus
        .into_iter()
        .map(|i| (observed[i].owner_ref(fleet).unwrap_or_default(), &observed[i]))
        .collect();
    ObjectMatch { found, surplus }
}

/// Why the observed replica `key` is not wanted on `host`.
fn why_not_here(key: &ReplicaKey, host: &str, desired: &Desired) -> Reason {
    if let Some((other, _)) =
        desired.hosts.iter().find(|(h, d)| h.as_str() != host && d.containers.contains_key(key))
    {
        return Reason::PlacedElsewhere { host: other.clone() };
    }
    if desired.unplaced.iter().any(|u| &u.replica == key) {
        return Reason::Unplaceable;
    }
    // Still in the repository if any replica of the service is desired somewhere.
    let replicas = desired
        .hosts
        .values()
        .flat_map(|h| h.containers.keys())
        .chain(desired.unplaced.iter().map(|u| &u.replica))
        .filter(|k| k.app == key.app && k.service == key.service)
        .map(|k| k.replica)
        .max();
    match replicas {
        Some(replicas) => Reason::ScaledDown { replicas },
        None => Reason::NotInRepository,
    }
}

/// One pull step per distinct image that new containers need (unless the policy is `never`).
fn pulls(container_steps: &[Step]) -> Vec<Step> {
    let mut images: BTreeMap<&str, (PullPolicy, usize)> = BTreeMap::new();
    for step in container_steps {
        if let Step::CreateContainer { container, .. } | Step::ReplaceContainer { container, .. } =
            step
        {
            if container.pull_policy != PullPolicy::Never {
                let entry =
                    images.entry(&container.spec.image).or_insert((container.pull_policy, 0));
                if container.pull_policy == PullPolicy::Always {
                    entry.0 = PullPolicy::Always;
                }
                entry.1 += 1;
            }
        }
    }
    images
        .into_iter()
        .map(|(image, (policy, containers))| Step::PullImage {
            image: image.to_string(),
            policy,
            reason: Reason::NeededBy { containers },
        })
        .collect()
}

/// Orders creates and replaces so that a service comes after the services it depends on.
fn order_by_dependencies(steps: &mut [Step], want: &DesiredHost) {
    if steps.len() < 2 {
        return;
    }
    // Only the apps with a step here matter: a dependency is always in the same app.
    let apps: BTreeSet<&str> = steps.iter().filter_map(Step::app).collect();
    let mut depends: BTreeMap<(&str, &str), &[String]> = BTreeMap::new();
    for (key, container) in &want.containers {
        if apps.contains(&*key.app) {
            depends.insert((&*key.app, &*key.service), &container.depends_on);
        }
    }
    fn depth<'a>(
        app: &'a str,
        service: &'a str,
        depends: &BTreeMap<(&'a str, &'a str), &'a [String]>,
        memo: &mut BTreeMap<(&'a str, &'a str), usize>,
        seen: &mut BTreeSet<(&'a str, &'a str)>,
    ) -> usize {
        if let Some(d) = memo.get(&(app, service)) {
            return *d;
        }
        // Cycles are rejected by validation; `seen` only guards against looping forever.
        if !seen.insert((app, service)) {
            return 0;
        }
        let d = depends
            .get(&(app, service))
            .map(|deps| {
                deps.iter().map(|dep| 1 + depth(app, dep, depends, memo, seen)).max().unwrap_or(0)
            })
            .unwrap_or(0);
        memo.insert((app, service), d);
        d
    }
    let mut memo = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for &(app, service) in depends.keys() {
        depth(app, service, &depends, &mut memo, &mut seen);
    }
    // Keys share the replicas' names (`Arc<str>`): no string is copied.
    let none: Arc<str> = Arc::from("");
    steps.sort_by_cached_key(|step| match step {
        Step::CreateContainer { replica, .. } | Step::ReplaceContainer { replica, .. } => (
            replica.app.clone(),
            memo.get(&(&*replica.app, &*replica.service)).copied().unwrap_or(0),
            replica.service.clone(),
            replica.replica,
        ),
        _ => (none.clone(), 0, none.clone(), 0),
    });
}
