//! The router beside the reconcile loop (`gitfleet run --router-listen`): a task that follows
//! the status snapshot into the router's table, and the apply guard that lets the router admit
//! a new replica after its health gate and drain an old one before it is stopped.
//!
//! The router itself never talks to Docker; the one thing it needs from a host during a
//! rollout (where a just-started container's route port is published, before the next
//! observation says so) is read here, with one bounded inspect call.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::state::StatusReader;
use crate::apply::Guard;
use crate::diff::ReplicaKey;
use crate::hosts;
use crate::model::Host;
use crate::router::drain::{BoxFuture, Resolve};
use crate::router::{Router, derive};

/// Feeds every new status snapshot's routes to the router until `cancel`.
pub async fn follow(router: Router, mut status: StatusReader, cancel: CancellationToken) {
    loop {
        let snapshot = status.get_and_mark_seen();
        router.set_routes(snapshot.routes.as_ref().clone());
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

/// `inner` (shutdown, leadership) for `check`, plus the router's admission and draining.
pub struct RoutedGuard<'a, G> {
    pub inner: G,
    pub router: Option<&'a Router>,
    pub hosts: &'a BTreeMap<String, Host>,
    /// Bounds the inspect call that finds a new container's published port.
    pub timeout: Duration,
}

impl<G: Guard> Guard for RoutedGuard<'_, G> {
    async fn check(&self) -> Result<(), String> {
        self.inner.check().await
    }

    async fn before_stop(&self, host: &str, container_id: &str, replica: &ReplicaKey) {
        self.inner.before_stop(host, container_id, replica).await;
        if let Some(router) = self.router {
            router.before_stop(host, container_id, replica).await;
        }
    }

    async fn after_ready(&self, host: &str, container_id: &str, replica: &ReplicaKey) {
        self.inner.after_ready(host, container_id, replica).await;
        if let Some(router) = self.router {
            let resolver = Inspect { hosts: self.hosts, timeout: self.timeout };
            router.after_ready(host, container_id, replica, &resolver).await;
        }
    }

    async fn stopped(&self) -> String {
        self.inner.stopped().await
    }
}

/// Finds a container's published port with one inspect call on its host.
struct Inspect<'a> {
    hosts: &'a BTreeMap<String, Host>,
    timeout: Duration,
}

impl Resolve for Inspect<'_> {
    fn published<'a>(
        &'a self,
        host: &'a str,
        container_id: &'a str,
        container_port: u16,
    ) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let model_host = self.hosts.get(host)?;
            let lookup = async {
                let docker = hosts::connect_with_timeout(model_host, self.timeout).await.ok()?;
                hosts::published_ports(&docker, container_id).await.ok()
            };
            let ports = tokio::time::timeout(self.timeout, lookup).await.ok().flatten()?;
            let port = ports
                .iter()
                .filter(|p| p.container_port == container_port && p.protocol == "tcp")
                .min_by_key(|p| p.host_ip.contains(':'))?;
            let address = model_host.address.as_deref().unwrap_or("127.0.0.1");
            Some(derive::authority(address, port.host_port))
        })
    }
}
