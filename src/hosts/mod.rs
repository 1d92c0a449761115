//! The registered Docker hosts: connecting to their Engine API ([`connect`]) and observing the
//! fleet-labelled objects that run there ([`observe_host`], [`observe_all`]).
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
//! * `error`: [`HostError`], and the human reason an unreachable host is reported with.
//!
//! # Guarantees
//!
//! * Only labelled objects are listed: every list call carries the filter
//!   `label=io.gitfleet.fleet=<fleet>`, and the answers are checked against it again, so an
//!   object without this fleet's label never enters a [`HostState`](crate::diff::HostState).
//! * Read-only: connecting and observing send `GET` requests only (`/version`, `/containers/json`,
//!   `/networks`, `/volumes`); nothing on a host is created, changed or removed here.
//! * Bounded: [`observe_all`] answers within its timeout (plus scheduling noise) whatever the
//!   hosts do; a host that does not answer in time is reported unreachable, never waited for.

mod connect;
mod error;
mod observe;

pub use connect::{DEFAULT_CONNECT_TIMEOUT, connect, connect_with_timeout};
pub use error::HostError;
pub use observe::{observe_all, observe_host};
