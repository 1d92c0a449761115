//! The registered Docker hosts: connecting to their Engine API ([`connect`]), observing the
//! fleet-labelled objects that run there ([`observe_host`], [`observe_all`]), and the thin
//! mutating calls the apply engine makes (networks, volumes, images, containers).
//!
//! This module is one of the edges around the pure core: it turns a [`Host`](crate::model::Host)
//! from `fleet.yaml` into a `bollard::Docker` client, and a host's answer into the plain
//! [`HostState`](crate::diff::HostState) that the scheduler and the planner consume.
//!
//! # Layout
//!
//! * `connect`: endpoint (unix socket, TCP, TCP + TLS) to a client, with the API version
//!   negotiated and a bounded first request.
//! * `observe`: one label-filtered list call per object kind and host, all hosts concurrently.
//! * `objects`: networks and volumes, created only under this fleet's label, never adopted.
//! * `registry`: image presence and pulls, credentials from Docker's `config.json`.
//! * `create` (with `archive`): a container from a canonical spec, configs and secrets
//!   delivered as files before it starts.
//! * `lifecycle`: start, stop, remove (never volumes), rename, status with health, log tail.
//! * `events`: the Docker events stream of one host, for drift repair.
//! * `platform`: the engine's `/info` and the platforms of the model's images (image inspect,
//!   the distribution endpoint), for placement on mixed Linux / Windows fleets.
//! * `pool`: clients kept between observations (with each engine's `/info`), for the
//!   controller.
//! * `observer`: a read-only handle on a pool (lists only, gives out no client), for
//!   standbys.
//! * `error`: [`HostError`], and the human reason an unreachable host is reported with.
//!
//! # Guarantees
//!
//! * Only labelled objects are listed: every list call carries the filter
//!   `label=io.gitfleet.fleet=<fleet>`, and the answers are checked against it again, so an
//!   object without this fleet's label never enters a [`HostState`](crate::diff::HostState).
//! * Observing is read-only: it sends `GET` requests only (`/version`, `/info`,
//!   `/containers/json`, `/networks`, `/volumes`, and in mixed fleets `/images/{name}/json`
//!   and `/distribution/{name}/json`). Only the mutating calls change a host, and only when the apply
//!   engine calls them with a plan's step.
//! * Classified: a host that cannot be observed is either gone ([`FailureClass::Connection`])
//!   or answering with errors ([`FailureClass::Api`]); only the first is host loss
//!   ([`Pool::observe_round`] says which, per host).
//! * Bounded: [`observe_all`] answers within its timeout (plus scheduling noise) whatever the
//!   hosts do; a host that does not answer in time is reported unreachable, never waited for.

mod archive;
mod connect;
mod create;
mod error;
mod events;
mod lifecycle;
mod objects;
mod observe;
mod observer;
mod platform;
mod pool;
mod registry;

pub use connect::{DEFAULT_CONNECT_TIMEOUT, connect, connect_with_timeout};
pub use create::{DEFAULT_FILE_MODE, FileToDeliver, create_container};
pub use error::{FailureClass, HostError};
pub use events::{ContainerEvent, WATCHED_ACTIONS, container_events};
pub use lifecycle::{
    ContainerStatus, Health, container_status, logs_tail, published_ports, remove_container,
    rename_container, start_container, stop_container,
};
pub use objects::{ensure_network, ensure_volume, remove_network};
pub use observe::{host_state, observe_all, observe_host};
pub use observer::{Observer, Sighting};
pub use platform::{engine_info, image_platform, registry_platforms};
pub use pool::{Clients, Pool, Round};
pub use registry::{RegistryAuth, image_present, pull_image, registry_auth_for, registry_of};
