//! The desired state per host: the model, scheduled. For every host, the containers (with
//! their canonical spec and hash), networks and volumes that should exist there.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::observed::{Observed, ReplicaKey};
use super::ownership;
use super::parts::{AppParts, SpecMemo};
use super::platform::HostPlatform;
use super::schedule::{Unplaced, place};
use super::spec::ContainerSpec;
use crate::model::{Model, PullPolicy};

/// Everything that should exist, per host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    /// The value of the fleet label.
    pub fleet: String,
    /// The commit the model was read from, when it came from Git.
    pub revision: Option<String>,
    /// The id of the repository deployed from (the `io.gitfleet.repository` label), if known.
    pub repository: Option<String>,
    /// Hosts where another repository deployed this fleet, with why: nothing is planned
    /// there (see [`super::ownership`]).
    pub refused_hosts: BTreeMap<String, String>,
    pub hosts: BTreeMap<String, DesiredHost>,
    /// Replicas the scheduler could not place, with why.
    pub unplaced: Vec<Unplaced>,
    /// Every host's platform as planned with (its declaration checked against its engine),
    /// with notes on what was translated for it.
    pub platforms: BTreeMap<String, HostPlatform>,
    /// How many apps the model has; none at all is refused against a fleet with running
    /// apps unless `allow_empty` ([`super::plan::plan`]).
    #[serde(default)]
    pub apps: usize,
    /// `settings.allow_empty` of the model.
    #[serde(default)]
    pub allow_empty: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DesiredHost {
    pub containers: BTreeMap<ReplicaKey, DesiredContainer>,
    /// Keyed by `(app, network key)`. The names and the object are shared with every other
    /// host that has the network (`Arc`s made once per app, see [`super::parts`]).
    pub networks: BTreeMap<(Arc<str>, Arc<str>), Arc<DesiredObject>>,
    /// Keyed by `(app, volume key)`, shared like the networks.
    pub volumes: BTreeMap<(Arc<str>, Arc<str>), Arc<DesiredObject>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredContainer {
    /// `<app>-<service>-<replica>`.
    pub name: String,
    /// Shared by every replica of a service.
    pub spec: Arc<ContainerSpec>,
    pub spec_hash: Arc<str>,
    pub pull_policy: PullPolicy,
    /// Services of the same app this one waits for, for ordering.
    pub depends_on: Arc<[String]>,
}

/// A network or volume to exist on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredObject {
    pub name: String,
    pub driver: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// The deterministic container name of a replica: `<app>-<service>-<replica>`.
pub fn container_name(key: &ReplicaKey) -> String {
    use std::fmt::Write;
    // Sized once (a replica number has at most 10 digits): one allocation, no regrowing.
    let mut name = String::with_capacity(key.app.len() + key.service.len() + 12);
    name.push_str(&key.app);
    name.push('-');
    name.push_str(&key.service);
    name.push('-');
    write!(name, "{}", key.replica).expect("writing to a String cannot fail");
    name
}

impl Desired {
    /// [`Desired::new`] for the repository `repository` (its `git::repository_id`): hosts
    /// where another repository deployed this fleet are refused, and no replica is placed
    /// there; everything created carries the repository label.
    pub fn for_repository(
        model: &Model,
        observed: &Observed,
        revision: Option<String>,
        repository: Option<String>,
    ) -> Self {
        Self::for_repository_memo(model, observed, revision, repository, &mut SpecMemo::default())
    }

    /// [`Desired::for_repository`] with a [`SpecMemo`], as [`Desired::new_memo`].
    pub fn for_repository_memo(
        model: &Model,
        observed: &Observed,
        revision: Option<String>,
        repository: Option<String>,
        memo: &mut SpecMemo,
    ) -> Self {
        let Some(ours) = repository else { return Self::new_memo(model, observed, revision, memo) };
        let refused = ownership::refusals(observed, &model.fleet.settings.name, &ours);
        let seen = ownership::without_refused(observed, &refused);
        let mut desired = Self::new_memo(model, &seen, revision, memo);
        desired.repository = Some(ours);
        desired.refused_hosts = refused;
        desired
    }

    /// Schedules `model` against what `observed` shows and lays the result out per host.
    pub fn new(model: &Model, observed: &Observed, revision: Option<String>) -> Self {
        Self::new_memo(model, observed, revision, &mut SpecMemo::default())
    }

    /// [`Desired::new`], taking the canonical specs, hashes, names and objects of every app
    /// that is the same `Arc<App>` as in the previous call from `memo`, and leaving this
    /// model's in it for the next call. The result is the same as [`Desired::new`]'s; what
    /// it saves is making them again for apps that did not change (a sync after a commit
    /// that changed a few apps, or a resync of the same revision). A model whose apps were
    /// all loaded afresh gains nothing.
    pub fn new_memo(
        model: &Model,
        observed: &Observed,
        revision: Option<String>,
        memo: &mut SpecMemo,
    ) -> Self {
        let mut parts = memo.take(model);
        let desired = Self::lay_out(model, observed, revision, &mut parts);
        memo.keep(parts);
        desired
    }

    /// Schedules and lays out with `parts`, one per app of `model` in its order.
    fn lay_out(
        model: &Model,
        observed: &Observed,
        revision: Option<String>,
        parts: &mut [AppParts],
    ) -> Self {
        let mut placement = place(model, observed);
        // For every service index: its app's index and its position in the app.
        let slots: Vec<(usize, usize)> = model
            .apps
            .values()
            .enumerate()
            .flat_map(|(a, app)| (0..app.services.len()).map(move |s| (a, s)))
            .collect();
        let mut layouts: Vec<Layout> = placement
            .platforms
            .iter()
            .map(|p| Layout { on_windows: p.is_windows(), ..Layout::default() })
            .collect();
        // Replicas come sorted by service: one spec and hash per service and OS (Windows
        // hosts get a translated one), shared by its replicas, and its networks and volumes
        // once per host it runs on.
        for replicas in placement.placed.chunk_by(|a, b| a.0 == b.0) {
            let index = replicas[0].0;
            let service = placement.services[index].1;
            let (a, position) = slots[index];
            let on_windows = replicas.iter().any(|&(_, _, h)| layouts[h].on_windows);
            let app = &mut parts[a];
            let app_name = app.name.clone();
            let own = app.service(position, service, on_windows);
            let pull_policy = service.pull_policy.unwrap_or(model.fleet.settings.pull_policy);
            for &(_, replica, h) in replicas {
                let layout = &mut layouts[h];
                let ((spec, spec_hash), notes) = match (&own.windows, layout.on_windows) {
                    (Some((spec, notes)), true) => (spec, notes.as_slice()),
                    _ => (&own.linux, &[][..]),
                };
                if layout.last_service != Some(index) {
                    layout.last_service = Some(index);
                    layout.networks.extend(own.networks.iter().map(|&n| (a, n)));
                    layout.volumes.extend(own.volumes.iter().map(|&v| (a, v)));
                    let platform = &mut placement.platforms[h];
                    for note in notes {
                        if !platform.notes.contains(note) {
                            platform.notes.push(note.clone());
                        }
                    }
                }
                let key = ReplicaKey { app: app_name.clone(), service: own.name.clone(), replica };
                let container = DesiredContainer {
                    name: container_name(&key),
                    spec: spec.clone(),
                    spec_hash: spec_hash.clone(),
                    pull_policy,
                    depends_on: own.depends_on.clone(),
                };
                layout.containers.push((key, container));
            }
        }
        let hosts = placement
            .hosts
            .iter()
            .zip(layouts)
            .map(|(name, layout)| (name.to_string(), layout.into_host(parts)))
            .collect();
        let platforms =
            placement.hosts.iter().map(|name| name.to_string()).zip(placement.platforms).collect();
        Desired {
            fleet: model.fleet.settings.name.clone(),
            revision,
            repository: None,
            refused_hosts: BTreeMap::new(),
            hosts,
            unplaced: placement.unplaced,
            platforms,
            apps: model.apps.len(),
            allow_empty: model.fleet.settings.allow_empty,
        }
    }
}

/// One host's desired objects while they are laid out.
#[derive(Default)]
struct Layout {
    /// In replica order.
    containers: Vec<(ReplicaKey, DesiredContainer)>,
    /// `(app index, position in the app's networks)`, with repeats (services of one app share
    /// networks).
    networks: Vec<(usize, usize)>,
    /// `(app index, position in the app's volumes)`, with repeats.
    volumes: Vec<(usize, usize)>,
    /// The service whose networks and volumes were added last.
    last_service: Option<usize>,
    /// The host runs Windows: its specs are translated, its networks default to `nat`.
    on_windows: bool,
}

impl Layout {
    fn into_host(mut self, parts: &mut [AppParts]) -> DesiredHost {
        // Apps in name order, and each app's objects in key order: sorted by (app, key).
        self.networks.sort_unstable();
        self.networks.dedup();
        self.volumes.sort_unstable();
        self.volumes.dedup();
        let on_windows = self.on_windows;
        DesiredHost {
            // Sorted input: the maps are built in one pass.
            containers: self.containers.into_iter().collect(),
            networks: self
                .networks
                .into_iter()
                .map(|(a, n)| parts[a].network(n, on_windows))
                .collect(),
            volumes: self.volumes.into_iter().map(|(a, v)| parts[a].volume(v)).collect(),
        }
    }
}
