//! The route table: rules (host pattern, path prefix) → the service's endpoints. Built from
//! plain [`RouteSpec`]s and the endpoint registry, immutable once built; the router swaps a
//! whole new table in atomically on every change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::uri::Authority;
use serde::Serialize;

use super::balance::{self, Policy};
use super::endpoint::{DockerHealth, Endpoint, EndpointKey, EndpointView};
use super::matching::Matcher;
use super::metrics::RouteMetrics;
use crate::diff::ReplicaKey;

/// One rule as derived from the model and the observed replicas (or written by hand for a
/// static table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSpec {
    /// `shop.example.com` or `*.example.com`.
    pub host: String,
    pub path_prefix: String,
    /// `app/service`, for logs, metrics and the status page.
    pub service: String,
    /// The container port requests go to (0 in a static table).
    pub port: u16,
    pub backends: Vec<Backend>,
}

/// One replica able to serve a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    pub key: EndpointKey,
    /// `address:port` to connect to.
    pub address: String,
    pub replica: Option<ReplicaKey>,
    pub health: DockerHealth,
}

/// A rule with its live endpoints.
#[derive(Debug)]
pub struct Rule {
    pub host: String,
    pub path_prefix: String,
    pub service: String,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub metrics: Arc<RouteMetrics>,
    turn: AtomicU64,
}

impl Rule {
    /// The endpoint to try next, skipping those in `tried`; `None` when none is usable.
    pub fn pick(&self, policy: Policy, tried: &[Arc<Endpoint>]) -> Option<&Arc<Endpoint>> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let usable = |i: usize| {
            let e = &self.endpoints[i];
            e.available() && !tried.iter().any(|t| Arc::ptr_eq(t, e))
        };
        let load = |i: usize| self.endpoints[i].in_flight();
        balance::pick(policy, self.endpoints.len(), usable, load, turn).map(|i| &self.endpoints[i])
    }

    pub fn name(&self) -> String {
        format!("{}{}", self.host, self.path_prefix)
    }
}

/// The rules, matched by host and path.
#[derive(Debug, Default)]
pub struct Table {
    matcher: Matcher<Arc<Rule>>,
    pub generation: u64,
}

/// A rule as the status page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    pub host: String,
    pub path_prefix: String,
    pub service: String,
    pub endpoints: Vec<EndpointView>,
}

impl Table {
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Rule>> {
        self.matcher.find(host, path)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.matcher.values()
    }

    /// Every rule with its endpoints' states, sorted by host and prefix.
    pub fn view(&self) -> Vec<RuleView> {
        let mut rules: Vec<RuleView> = self
            .rules()
            .map(|r| RuleView {
                host: r.host.clone(),
                path_prefix: r.path_prefix.clone(),
                service: r.service.clone(),
                endpoints: r.endpoints.iter().map(|e| e.view()).collect(),
            })
            .collect();
        rules.sort_by(|a, b| (&a.host, &a.path_prefix).cmp(&(&b.host, &b.path_prefix)));
        rules
    }
}

/// Endpoints and route metrics that outlive table generations.
#[derive(Debug, Default)]
pub struct Registry {
    pub endpoints: HashMap<EndpointKey, Arc<Endpoint>>,
    pub metrics: BTreeMap<String, Arc<RouteMetrics>>,
}

/// A backend address that cannot be used, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBackend {
    pub service: String,
    pub address: String,
    pub reason: String,
}

/// Builds a table from `specs`, taking endpoints from `registry` by key (new ones are made)
/// and dropping from it those no rule uses any more, except the keys in `keep`. Returns the
/// table and the backends whose address does not parse.
pub fn build(
    specs: &[RouteSpec],
    registry: &mut Registry,
    keep: &dyn Fn(&EndpointKey) -> bool,
    generation: u64,
) -> (Table, Vec<BadBackend>) {
    let mut matcher = Matcher::new();
    let mut used: HashMap<EndpointKey, ()> = HashMap::new();
    let mut bad = Vec::new();
    for spec in specs {
        let mut endpoints = Vec::with_capacity(spec.backends.len());
        for backend in &spec.backends {
            let endpoint = match registry.endpoints.get(&backend.key) {
                Some(e) if e.authority.as_str() == backend.address => {
                    e.update_health(|h| h.docker = backend.health);
                    e.clone()
                }
                _ => match backend.address.parse::<Authority>() {
                    Ok(authority) => {
                        let e = Arc::new(Endpoint::new(
                            backend.key.clone(),
                            authority,
                            backend.replica.clone(),
                            backend.health,
                        ));
                        registry.endpoints.insert(backend.key.clone(), e.clone());
                        e
                    }
                    Err(e) => {
                        bad.push(BadBackend {
                            service: spec.service.clone(),
                            address: backend.address.clone(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                },
            };
            used.insert(backend.key.clone(), ());
            if !endpoints.iter().any(|e: &Arc<Endpoint>| Arc::ptr_eq(e, &endpoint)) {
                endpoints.push(endpoint);
            }
        }
        let name = format!("{}{}", spec.host, spec.path_prefix);
        let metrics = registry.metrics.entry(name).or_default().clone();
        let rule = Rule {
            host: spec.host.clone(),
            path_prefix: spec.path_prefix.clone(),
            service: spec.service.clone(),
            endpoints,
            metrics,
            turn: AtomicU64::new(0),
        };
        matcher.insert(&spec.host, &spec.path_prefix, Arc::new(rule));
    }
    registry.endpoints.retain(|key, endpoint| {
        let stays = used.contains_key(key) || keep(key);
        if !stays {
            // Gone from the fleet (its host cut off, the container died): requests still in
            // flight to it fail now rather than at their timeout, and may be retried.
            endpoint.close();
        }
        stays
    });
    let names: Vec<String> = matcher.values().map(|r: &Arc<Rule>| r.name()).collect();
    registry.metrics.retain(|name, _| names.contains(name));
    (Table { matcher, generation }, bad)
}

/// A backend that is healthy according to Docker, for tests and static tables.
pub fn static_backend(host: &str, container: &str, address: &str) -> Backend {
    Backend {
        key: EndpointKey { host: host.into(), container: container.into() },
        address: address.into(),
        replica: None,
        health: DockerHealth::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, backends: &[(&str, &str)]) -> RouteSpec {
        RouteSpec {
            host: host.into(),
            path_prefix: "/".into(),
            service: "app/web".into(),
            port: 80,
            backends: backends.iter().map(|(c, a)| static_backend("h", c, a)).collect(),
        }
    }

    #[test]
    fn endpoints_survive_generations_and_go_when_unused() {
        let mut registry = Registry::default();
        let specs = vec![spec("a.test", &[("c1", "10.0.0.1:80"), ("c2", "10.0.0.2:80")])];
        let (t1, bad) = build(&specs, &mut registry, &|_| false, 1);
        assert!(bad.is_empty());
        let e1 = t1.find("a.test", "/").unwrap().endpoints[0].clone();
        let _busy = e1.begin();
        let specs = vec![spec("a.test", &[("c1", "10.0.0.1:80"), ("c3", "10.0.0.3:80")])];
        let (t2, _) = build(&specs, &mut registry, &|_| false, 2);
        let again = &t2.find("a.test", "/").unwrap().endpoints[0];
        assert!(Arc::ptr_eq(&e1, again), "same key, same endpoint: counters kept");
        assert_eq!(again.in_flight(), 1);
        assert_eq!(registry.endpoints.len(), 2, "c2 left the registry");
        // A kept key stays even when no rule uses it.
        let (_, _) = build(&[], &mut registry, &|k| k.container == "c3", 3);
        assert_eq!(registry.endpoints.len(), 1);
        assert!(registry.metrics.is_empty());
    }

    #[test]
    fn a_bad_address_is_reported_not_fatal() {
        let mut registry = Registry::default();
        let specs = vec![spec("a.test", &[("c1", "not an address"), ("c2", "10.0.0.2:80")])];
        let (table, bad) = build(&specs, &mut registry, &|_| false, 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(table.find("a.test", "/x").unwrap().endpoints.len(), 1);
    }

    #[test]
    fn picking_skips_tried_and_unavailable() {
        let mut registry = Registry::default();
        let specs = vec![spec("a.test", &[("c1", "10.0.0.1:80"), ("c2", "10.0.0.2:80")])];
        let (table, _) = build(&specs, &mut registry, &|_| false, 1);
        let rule = table.find("a.test", "/").unwrap();
        // No probe has passed and Docker has no health check: nothing usable yet.
        assert!(rule.pick(Policy::PowerOfTwo, &[]).is_none());
        for e in &rule.endpoints {
            e.update_health(|h| h.probe_passed());
        }
        let first = rule.pick(Policy::RoundRobin, &[]).unwrap().clone();
        let other = rule.pick(Policy::PowerOfTwo, std::slice::from_ref(&first)).unwrap();
        assert!(!Arc::ptr_eq(&first, other));
        let both = [first.clone(), other.clone()];
        assert!(rule.pick(Policy::PowerOfTwo, &both).is_none());
    }
}
