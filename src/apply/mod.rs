//! Executing a [`Plan`](crate::diff::Plan) on the hosts: [`rollout`] arranges it (pure),
//! [`execute`] carries it out through an [`Engine`], [`docker`] is the engine that talks to
//! real Docker hosts.

pub mod docker;
pub mod engine;
pub mod execute;
pub mod guard;
pub mod rollout;

pub use engine::{Engine, EngineError};
pub use execute::{Event, EventKind, Options, Report, execute};
pub use guard::{CancelGuard, Guard, Unguarded};
