//! A read-only handle on the hosts, for instances that must never change them (a high
//! availability standby).
//!
//! An [`Observer`] borrows the controller's [`Pool`] (so the connections a standby keeps
//! warm are the ones it uses when it becomes the leader) and has one method, which lists.
//!
//! # Guarantees
//!
//! * **No mutating call is reachable through it.** [`Observer::observe_model`] returns a
//!   [`Sighting`]: what the hosts run and why a host could not be seen, never a
//!   `bollard::Docker` client (from which a create, stop or remove could be sent). The
//!   observer holds no `Engine` and gives out no client, so code that only holds an observer
//!   cannot write to a host, whatever it does.
//! * It sends what [`Pool::observe_model`] sends: `GET` requests only (see the module's
//!   guarantees in `hosts`), label-filtered, each host bounded by the fleet's observe timeout.

use std::collections::BTreeMap;

use super::error::FailureClass;
use super::pool::Pool;
use crate::diff::Observed;
use crate::model::Model;

/// Lists what the hosts run, and nothing else (see the module's guarantees).
#[derive(Clone, Copy)]
pub struct Observer<'a> {
    pool: &'a Pool,
}

/// One observation round, without the clients.
pub struct Sighting {
    /// What each host runs, or why it could not be seen.
    pub observed: Observed,
    /// For each host that could not be observed: gone, or answering with errors.
    pub failures: BTreeMap<String, FailureClass>,
}

impl<'a> Observer<'a> {
    /// An observer through `pool`'s connections.
    pub fn of(pool: &'a Pool) -> Self {
        Observer { pool }
    }

    /// Every host of `model`, as [`Pool::observe_model`] sees them; the clients stay in the
    /// pool.
    pub async fn observe_model(&self, model: &Model) -> Sighting {
        let round = self.pool.observe_model(model).await;
        Sighting { observed: round.observed, failures: round.failures }
    }
}
