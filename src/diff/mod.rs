//! From desired to observed: where each replica runs ([`schedule`]), each host's platform and
//! the hosts each image can run on ([`platform`]), the canonical container spec and its hash
//! ([`spec`]) with its Windows translation ([`windows`]), the desired objects per host
//! ([`desired`]), the [`Plan`] of steps per host ([`plan()`]) and its renderings ([`render`]).
//! Pure: no I/O.

pub mod desired;
pub mod interrupted;
pub mod labels;
pub mod observed;
pub mod ownership;
pub mod parts;
pub mod plan;
pub mod platform;
pub mod render;
pub mod schedule;
pub mod simulate;
pub mod spec;
pub mod windows;

pub use desired::Desired;
pub use observed::{
    HostObservation, HostState, Observed, ObservedContainer, ObservedObject, ReplicaKey,
};
pub use parts::{MemoStats, SpecMemo};
pub use plan::{HostPlan, HostStatus, Plan, Reason, Step, Summary, plan};
