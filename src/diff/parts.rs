//! What [`Desired::new`](super::Desired::new) derives from each app, made once per app and
//! shared by every replica and host that needs it: the app's and its services' names as
//! `Arc<str>` (for [`ReplicaKey`](super::ReplicaKey)s), each service's canonical spec and hash
//! (and its Windows translation, made only when a Windows host runs it), its `depends_on`, and
//! the app's own networks and volumes as [`DesiredObject`]s.
//!
//! Every part is a pure function of the [`App`] alone (the fleet's settings, such as the pull
//! policy, are applied by the caller), so the parts of an unchanged app can be kept between
//! plans: [`SpecMemo`].
//!
//! # Guarantees
//!
//! * A `Desired` made with a [`SpecMemo`] equals one made without it, whatever the memo held
//!   (unit-tested in `desired`).
//! * An entry is found only for the very same `Arc<App>`: the entry holds a clone of that
//!   `Arc`, so the address it is keyed by stays that app's for as long as the entry exists
//!   (it cannot be freed and reused by another app), and the app cannot change under it.
//! * The memo holds the parts of the last model planned and nothing else: it never grows past
//!   one model.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::desired::DesiredObject;
use super::spec::ContainerSpec;
use super::windows;
use crate::model::{App, Model, MountSource, NetworkDef, Service, VolumeDef};

/// A canonical spec and its hash, shared by the replicas of one service on one OS.
pub(crate) type SharedSpec = (Arc<ContainerSpec>, Arc<str>);

fn shared(spec: ContainerSpec) -> SharedSpec {
    let hash: Arc<str> = spec.hash().into();
    (Arc::new(spec), hash)
}

/// One app's parts; a service's and a Windows variant are made when first asked for.
pub(crate) struct AppParts {
    /// The app these parts were made from, held so that its address stays its own.
    app: Arc<App>,
    pub(crate) name: Arc<str>,
    /// By position in `app.services`.
    services: Vec<Option<ServiceParts>>,
    /// By position in `app.networks`; `None` for an external one (not the app's to create).
    networks: Vec<Option<NetworkParts>>,
    /// By position in `app.volumes`; `None` for an external one.
    volumes: Vec<Option<(Arc<str>, Arc<DesiredObject>)>>,
}

/// One service's parts.
pub(crate) struct ServiceParts {
    pub(crate) name: Arc<str>,
    pub(crate) linux: SharedSpec,
    /// The spec translated for Windows hosts, with the notes on what was ignored (each naming
    /// `app/service`); made only when a Windows host runs the service.
    pub(crate) windows: Option<(SharedSpec, Vec<String>)>,
    pub(crate) depends_on: Arc<[String]>,
    /// Positions in the app's networks of the app's own networks the service joins.
    pub(crate) networks: Vec<usize>,
    /// Positions in the app's volumes of the app's own named volumes the service mounts.
    pub(crate) volumes: Vec<usize>,
}

/// One of the app's own networks: its key and the object to create, for Linux hosts and (made
/// when first needed) for Windows hosts, whose default driver differs.
struct NetworkParts {
    key: Arc<str>,
    linux: Arc<DesiredObject>,
    windows: Option<Arc<DesiredObject>>,
}

impl AppParts {
    pub(crate) fn new(app: &Arc<App>) -> Self {
        let networks = app
            .networks
            .iter()
            .map(|(key, def)| {
                (!def.external).then(|| NetworkParts {
                    key: key.as_str().into(),
                    linux: Arc::new(network_object(def, false)),
                    windows: None,
                })
            })
            .collect();
        let volumes = app
            .volumes
            .iter()
            .map(|(key, def)| {
                (!def.external).then(|| (key.as_str().into(), Arc::new(volume_object(def))))
            })
            .collect();
        AppParts {
            app: Arc::clone(app),
            name: app.name.as_str().into(),
            services: app.services.values().map(|_| None).collect(),
            networks,
            volumes,
        }
    }

    /// The parts of `service`, at `position` in the app's services; with its Windows spec if
    /// `windows`.
    pub(crate) fn service(
        &mut self,
        position: usize,
        service: &Service,
        windows: bool,
    ) -> &ServiceParts {
        let app = &*self.app;
        let parts = self.services[position].get_or_insert_with(|| ServiceParts::new(app, service));
        if windows && parts.windows.is_none() {
            let (translated, said) = windows::translate(&parts.linux.0);
            let notes = said.iter().map(|n| format!("{}/{}: {n}", app.name, service.name));
            parts.windows = Some((shared(translated), notes.collect()));
        }
        parts
    }

    /// `(app, key)` and the object of the network at `position`, for a Windows host or not.
    pub(crate) fn network(
        &mut self,
        position: usize,
        on_windows: bool,
    ) -> ((Arc<str>, Arc<str>), Arc<DesiredObject>) {
        let app = &*self.app;
        let parts = self.networks[position].as_mut().expect("only the app's own networks");
        let object = match on_windows {
            false => &parts.linux,
            true => parts.windows.get_or_insert_with(|| {
                let def = app.networks.values().nth(position).expect("a network of the app");
                Arc::new(network_object(def, true))
            }),
        };
        ((self.name.clone(), parts.key.clone()), object.clone())
    }

    /// `(app, key)` and the object of the volume at `position`.
    pub(crate) fn volume(&self, position: usize) -> ((Arc<str>, Arc<str>), Arc<DesiredObject>) {
        let (key, object) = self.volumes[position].as_ref().expect("only the app's own volumes");
        ((self.name.clone(), key.clone()), object.clone())
    }
}

impl ServiceParts {
    fn new(app: &App, service: &Service) -> Self {
        let own_network = |key: &String| {
            let position = app.networks.keys().position(|k| k == key)?;
            let def = app.networks.values().nth(position)?;
            (!def.external).then_some(position)
        };
        let own_volume = |mount: &crate::model::Mount| {
            let MountSource::Volume { volume } = &mount.source else { return None };
            let position = app.volumes.keys().position(|k| k == volume)?;
            let def = app.volumes.values().nth(position)?;
            (!def.external).then_some(position)
        };
        ServiceParts {
            name: service.name.as_str().into(),
            linux: shared(ContainerSpec::of(app, service)),
            windows: None,
            depends_on: service.depends_on.keys().cloned().collect(),
            networks: service.networks.keys().filter_map(own_network).collect(),
            volumes: service.mounts.iter().filter_map(own_volume).collect(),
        }
    }
}

fn network_object(network: &NetworkDef, on_windows: bool) -> DesiredObject {
    DesiredObject {
        name: network.docker_name.clone(),
        driver: match on_windows {
            true => windows::network_driver(network.driver.as_deref()),
            false => network.driver.clone(),
        },
        internal: network.internal,
        labels: network.labels.clone(),
    }
}

fn volume_object(volume: &VolumeDef) -> DesiredObject {
    DesiredObject {
        name: volume.docker_name.clone(),
        driver: volume.driver.clone(),
        internal: false,
        labels: volume.labels.clone(),
    }
}

/// Every app's parts from the last plan, kept for the next one: an app that is the same
/// `Arc<App>` (the controller's load cache shares unchanged apps between revisions) gets its
/// canonical specs and hashes, names and objects back instead of making them again. See the
/// module documentation for what it guarantees.
///
/// It pays off only when the apps are shared: a model loaded afresh (every `Arc<App>` new)
/// finds nothing, and the memo then only costs the lookups.
#[derive(Default)]
pub struct SpecMemo {
    /// By the address of the `App`; each entry holds that `Arc`.
    apps: BTreeMap<usize, AppParts>,
    stats: MemoStats,
}

/// What the last plan made with a [`SpecMemo`] took from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Apps whose parts were kept from the plan before.
    pub reused: usize,
    /// Apps whose parts were made again (new or changed apps).
    pub made: usize,
}

fn address(app: &Arc<App>) -> usize {
    Arc::as_ptr(app) as usize
}

impl SpecMemo {
    /// The parts of every app of `model`, in its order: kept ones taken out of the memo, the
    /// others new. Apps no longer in the model are dropped.
    pub(crate) fn take(&mut self, model: &Model) -> Vec<AppParts> {
        let mut kept = std::mem::take(&mut self.apps);
        let mut stats = MemoStats::default();
        let parts = model
            .apps
            .values()
            .map(|app| match kept.remove(&address(app)) {
                Some(parts) if Arc::ptr_eq(&parts.app, app) => {
                    stats.reused += 1;
                    parts
                }
                _ => {
                    stats.made += 1;
                    AppParts::new(app)
                }
            })
            .collect();
        self.stats = stats;
        parts
    }

    /// Keeps `parts` (those of the model just planned) for the next plan.
    pub(crate) fn keep(&mut self, parts: Vec<AppParts>) {
        self.apps = parts.into_iter().map(|parts| (address(&parts.app), parts)).collect();
    }

    /// What the last plan took from the memo.
    pub fn stats(&self) -> MemoStats {
        self.stats
    }

    /// How many apps' parts are kept.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}
