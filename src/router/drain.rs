//! The router's side of a rollout (`apply::Guard`'s `after_ready` and `before_stop`):
//! a replica gets traffic only once gitfleet saw it healthy, and leaves rotation and drains
//! before gitfleet stops it.
//!
//! # Guarantees
//!
//! * [`Router::after_ready`] returns once the new replica is in the table (in rotation),
//!   when the router can learn where its route port is published (through the
//!   [`Resolve`] it is given); otherwise it enters with the next status snapshot, after a
//!   passed probe.
//! * [`Router::before_stop`] returns once the replica is out of rotation and nothing is in
//!   flight to it, or after the drain timeout (upgraded connections still open are then
//!   closed). A replica the router does not route to returns at once.
//!
//! # Caveats
//!
//! * A drained replica that keeps running (its stop failed and it was rolled back) stays out
//!   of rotation until `after_ready` names it again or a new container replaces it.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use super::endpoint::EndpointKey;
use super::table::Backend;
use super::{DockerHealth, Router};
use crate::diff::ReplicaKey;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a container's port is reachable: `address:port`, or `None` if it is not published.
pub trait Resolve: Send + Sync {
    fn published<'a>(
        &'a self,
        host: &'a str,
        container_id: &'a str,
        container_port: u16,
    ) -> BoxFuture<'a, Option<String>>;
}

impl Router {
    /// A new replica passed its health gate: route to it now. `resolver` says where its
    /// route ports are published (the controller inspects the container).
    pub async fn after_ready(
        &self,
        host: &str,
        container_id: &str,
        replica: &ReplicaKey,
        resolver: &dyn Resolve,
    ) {
        let key = EndpointKey { host: host.to_string(), container: container_id.to_string() };
        let service = format!("{}/{}", replica.app, replica.service);
        let rules: Vec<(String, String, u16)> = {
            let mut state = self.lock();
            if let Some(endpoint) = state.registry.endpoints.get(&key) {
                if !endpoint.is_closed() {
                    // A drained replica started again (a rollback): back in rotation.
                    endpoint.undrain();
                    endpoint.update_health(|h| h.admitted = true);
                    return;
                }
                // Its drain timed out and closed it: a fresh endpoint takes its place.
                state.registry.endpoints.remove(&key);
            }
            state
                .base
                .iter()
                .filter(|s| s.service == service)
                .map(|s| (s.host.clone(), s.path_prefix.clone(), s.port))
                .collect()
        };
        if rules.is_empty() {
            return;
        }
        let mut admitted = Vec::new();
        let mut ports: Vec<(u16, Option<String>)> = Vec::new();
        for (rule_host, prefix, port) in rules {
            let address = match ports.iter().find(|(p, _)| *p == port) {
                Some((_, address)) => address.clone(),
                None => {
                    let address = resolver.published(host, container_id, port).await;
                    ports.push((port, address.clone()));
                    address
                }
            };
            let Some(address) = address else { continue };
            let backend = Backend {
                key: key.clone(),
                address,
                replica: Some(replica.clone()),
                health: DockerHealth::None,
            };
            admitted.push((rule_host, prefix, backend));
        }
        if admitted.is_empty() {
            tracing::warn!(%replica, host, "router: the new replica's route port is not published; it is routed once observed");
            return;
        }
        let mut state = self.lock();
        state.admitted.insert(key.clone(), (admitted, Instant::now()));
        self.rebuild(&mut state);
        if let Some(endpoint) = state.registry.endpoints.get(&key) {
            endpoint.update_health(|h| h.admitted = true);
        }
        tracing::info!(%replica, host, container = %&container_id[..container_id.len().min(12)], "router: replica admitted");
    }

    /// Gitfleet is about to stop a replica: take it out of rotation and drain it.
    pub async fn before_stop(&self, host: &str, container_id: &str, replica: &ReplicaKey) {
        let key = EndpointKey { host: host.to_string(), container: container_id.to_string() };
        let endpoint = {
            // The endpoint stays in the registry, draining, until the snapshot drops it.
            let mut state = self.lock();
            state.admitted.remove(&key);
            state.registry.endpoints.get(&key).cloned()
        };
        let Some(endpoint) = endpoint else { return };
        let started = Instant::now();
        let drained = endpoint.drain(self.shared.config.drain_timeout).await;
        tracing::info!(
            %replica, host, drained, in_flight = endpoint.in_flight(),
            millis = started.elapsed().as_millis() as u64,
            "router: replica drained before stop"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::table::RouteSpec;
    use crate::router::{Config, EndpointKey};

    struct Fixed(Option<String>);

    impl Resolve for Fixed {
        fn published<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            port: u16,
        ) -> BoxFuture<'a, Option<String>> {
            assert_eq!(port, 80, "asked for the route's container port");
            Box::pin(async move { self.0.clone() })
        }
    }

    fn web(backends: Vec<crate::router::Backend>) -> Vec<RouteSpec> {
        vec![RouteSpec {
            host: "shop.test".into(),
            path_prefix: "/".into(),
            service: "shop/web".into(),
            port: 80,
            backends,
        }]
    }

    fn states(router: &Router) -> Vec<&'static str> {
        router.view()[0].endpoints.iter().map(|e| e.state).collect()
    }

    #[tokio::test]
    async fn a_ready_replica_is_routed_at_once_and_drained_before_its_stop() {
        let router = Router::new(Config::default());
        router.set_routes(web(Vec::new()));
        let replica = ReplicaKey { app: "shop".into(), service: "web".into(), replica: 1 };
        router.after_ready("a", "c1", &replica, &Fixed(Some("10.0.0.1:32768".into()))).await;
        assert_eq!(states(&router), ["in_rotation"], "admitted without waiting for a probe");
        assert_eq!(router.view()[0].endpoints[0].address, "10.0.0.1:32768");

        // The next snapshot lists it: the same endpoint stays (its counters with it).
        let listed = Backend {
            key: EndpointKey { host: "a".into(), container: "c1".into() },
            address: "10.0.0.1:32768".into(),
            replica: Some(replica.clone()),
            health: DockerHealth::None,
        };
        router.set_routes(web(vec![listed.clone()]));
        assert_eq!(states(&router), ["in_rotation"]);

        router.before_stop("a", "c1", &replica).await;
        assert_eq!(states(&router), ["draining"]);
        // Started again (a rollback): back in rotation.
        router.after_ready("a", "c1", &replica, &Fixed(None)).await;
        assert_eq!(states(&router), ["in_rotation"]);

        // A replica of another service, or one whose port is not published, is not routed.
        let other = ReplicaKey { app: "shop".into(), service: "db".into(), replica: 1 };
        router.after_ready("a", "c2", &other, &Fixed(Some("10.0.0.1:1".into()))).await;
        router.after_ready("a", "c3", &replica, &Fixed(None)).await;
        assert_eq!(router.view()[0].endpoints.len(), 1);
        // Unknown to the router: before_stop returns at once.
        router.before_stop("b", "nope", &replica).await;
    }
}
