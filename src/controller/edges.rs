//! The reconcile loop's two I/O edges, as traits, so the loop's logic runs the same against
//! real Docker daemons and a Git mirror (production) and against in-memory doubles (its
//! in-process tests, under `tokio::time::pause`).
//!
//! * [`Hosts`]: observing every host of a model, and the [`apply::Engine`] an apply drives
//!   on them. [`DockerHosts`] is the real one: the client [`Pool`] kept between rounds, and
//!   a [`DockerEngine`] over the clients a round connected (with Docker's registry
//!   credentials, fenced by the leadership term under high availability).
//! * [`Repository`]: what the repository task publishes (the latest fetched head and fetch
//!   problems). [`RepositoryView`], the receiving end of its `watch` channel, is the real one.
//!
//! Only what the loop calls is here; everything the loop decides stays in `reconcile`.
//!
//! # Contract
//!
//! * `Hosts::observe_model` answers for every host of the model (reachable, or unreachable
//!   with why and, in `failures`, whether it is gone or answering with errors); it is bounded
//!   in time by the implementation (the real one by `settings.observe_timeout`).
//! * `Repository::latest` never waits: the loop calls it at the start of every sync.

use std::future::Future;
use std::sync::Arc;

use crate::apply::{self, docker::DockerEngine};
use crate::hosts::{self, Pool, Round};
use crate::leader::Term;
use crate::model::Model;

use super::repository::{Published, RepositoryView};

/// The hosts, as the reconcile loop observes and changes them.
pub trait Hosts: Send + Sync {
    /// What an observation round leaves for the apply that may follow it.
    type Clients: Send;
    /// What an apply drives.
    type Engine: apply::Engine + Send + Sync;

    /// Observes every host of `model`.
    fn observe_model(&self, model: &Model) -> impl Future<Output = Round<Self::Clients>> + Send;

    /// The engine for an apply after the round that left `clients`; `term`: with high
    /// availability, the leadership term the apply is fenced by.
    fn engine(&self, clients: Self::Clients, term: Option<&Term>) -> Self::Engine;
}

/// The real hosts: Docker daemons through the client pool.
#[derive(Default)]
pub struct DockerHosts {
    pool: Pool,
    /// Docker's `config.json` (`auths`), for pulls from private registries.
    registry_config: Option<serde_json::Value>,
}

impl DockerHosts {
    pub fn new(registry_config: Option<serde_json::Value>) -> Self {
        DockerHosts { pool: Pool::new(), registry_config }
    }

    /// The client pool, for code that lends it out read-only (a standby's observer), so the
    /// connections it keeps warm are the ones the loop applies through once it leads.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Hosts for DockerHosts {
    type Clients = hosts::Clients;
    type Engine = DockerEngine;

    async fn observe_model(&self, model: &Model) -> Round {
        self.pool.observe_model(model).await
    }

    fn engine(&self, clients: hosts::Clients, term: Option<&Term>) -> DockerEngine {
        let mut engine = DockerEngine::from_clients(clients);
        if let Some(config) = &self.registry_config {
            engine = engine.with_registry_config(config.clone());
        }
        match term {
            // The leader's fence: its own-clock gate before each Docker call, its epoch on
            // what it creates, every call abandoned once its term ends.
            Some(term) => engine.fenced(term.epoch, term.gate(), term.ended()),
            None => engine,
        }
    }
}

/// The repository task's publications, as the reconcile loop reads them.
pub trait Repository: Send {
    /// The latest publication, marked as seen (never waits).
    fn latest(&mut self) -> Arc<Published>;

    /// Resolves once something newer than the last seen is published; `Err` when nothing
    /// will ever be (the publisher is gone).
    fn changed(&mut self) -> impl Future<Output = Result<(), Gone>> + Send;
}

/// The repository's publisher is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the repository task is gone")]
pub struct Gone;

impl Repository for RepositoryView {
    fn latest(&mut self) -> Arc<Published> {
        self.borrow_and_update().clone()
    }

    async fn changed(&mut self) -> Result<(), Gone> {
        tokio::sync::watch::Receiver::changed(self).await.map_err(|_| Gone)
    }
}
