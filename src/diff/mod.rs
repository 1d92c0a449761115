//! From desired to observed: where each replica runs ([`schedule`]), the canonical container
//! spec and its hash ([`spec`]), the [`Plan`] of steps per host ([`plan`]) and its renderings
//! ([`render`]). Pure: this module performs no I/O.

pub mod labels;
pub mod observed;
pub mod schedule;

pub use observed::{
    HostObservation, HostState, Observed, ObservedContainer, ObservedObject, ReplicaKey,
};
