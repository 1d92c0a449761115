//! The HTTP router: requests for every `x-routes` rule go to a healthy replica of the
//! service on whichever host it runs.
//!
//! * [`matching`]: host (exact, `*.wildcard`) and longest path prefix, pure.
//! * [`derive`]: the rules and their replicas from the model and the observed hosts, pure.
//! * [`table`]: the immutable route table, built from [`RouteSpec`]s and the endpoint
//!   registry; swapped atomically ([`arc_swap`]) on every change.
//! * [`endpoint`]: one replica: counters, health, draining (kept across tables).
//! * [`balance`]: power of two choices over least in flight, or round robin, pure.
//! * [`retry`]: when a failed attempt may go to another replica, and the retry budget.
//! * [`proxy`]: one request through the router.
//! * [`upstream`]: connections to replicas, pooled per endpoint.
//! * [`idle`]: request and response bodies that may not go silent for longer than the body
//!   idle timeout.
//! * [`server`]: the listeners (HTTP/1 and HTTP/2, upgrades, TLS) and the active prober.
//! * [`tls`]: certificates by SNI from PEM files, reloaded when they change.
//! * [`drain`]: taking replicas out of rotation before gitfleet stops them, and admitting
//!   new ones after their health gate (the router's side of `apply::Guard`).
//! * [`metrics`]: per-route counters in Prometheus' text format.
//! * [`sticky`]: cookie stickiness, pure.
//! * [`static_routes`]: a hand-written table for `gitfleet router-static`.
//!
//! [`Router`] is the handle: cheap to clone, shared by the listener, the prober, the task
//! that follows the status snapshot, and the apply guard.

pub mod balance;
pub mod derive;
pub mod drain;
pub mod endpoint;
mod idle;
pub mod matching;
pub mod metrics;
pub mod proxy;
pub mod retry;
pub mod server;
pub mod static_routes;
pub mod sticky;
pub mod table;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

pub use balance::Policy;
pub use derive::routes as derive_routes;
pub use endpoint::{DockerHealth, EndpointKey};
pub use table::{Backend, RouteSpec, RuleView, Table};

use table::Registry;

/// The router's settings. Defaults suit a fleet of ordinary HTTP services.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// Connecting to a replica (a host cut off costs this, then another replica is tried).
    pub connect_timeout: Duration,
    /// From sending a request to the response headers (and reading a small body to buffer).
    pub response_timeout: Duration,
    /// How long a streamed body may go without a byte before it is ended with an error: a
    /// response body (the replica stays in the fleet but stopped sending; nginx's
    /// `proxy_read_timeout`) and a client's request body streamed to a replica (nginx's
    /// `client_body_timeout`).
    pub body_idle_timeout: Duration,
    /// How long a client connection may sit idle between requests.
    pub client_idle_timeout: Duration,
    /// How long an idle upstream connection is kept for reuse: below the backends' own
    /// keep-alive timeouts (Node's is 5 s), so the router never reuses one being closed.
    pub upstream_idle_timeout: Duration,
    /// Idle upstream connections kept per replica.
    pub upstream_max_idle: usize,
    /// Requests with a larger body are refused with 413.
    pub body_limit: u64,
    /// Bodies up to this size are read into memory before forwarding, so a failed attempt
    /// can be sent to another replica; larger ones are streamed and never retried.
    pub buffer_limit: usize,
    /// How long draining waits for requests in flight before closing what is left.
    pub drain_timeout: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// The path active probes request (any answer below 500 passes).
    pub probe_path: String,
    /// `Retry-After` of a 503 for want of a replica.
    pub retry_after_secs: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::PowerOfTwo,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            client_idle_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(4),
            upstream_max_idle: 64,
            body_limit: 10 * 1024 * 1024,
            buffer_limit: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            probe_path: "/".into(),
            retry_after_secs: 1,
        }
    }
}

/// What the router's handle shares.
pub struct Shared {
    pub config: Config,
    table: ArcSwap<Table>,
    state: Mutex<State>,
    /// How upstream connections are made and kept (from `config`).
    upstream: upstream::Settings,
    budget: retry::Budget,
    /// Wakes the prober when new endpoints appear.
    probe_now: Notify,
}

/// The inputs the table is built from.
#[derive(Default)]
struct State {
    registry: Registry,
    /// Rules as the status snapshot last gave them.
    base: Vec<RouteSpec>,
    /// Replicas admitted by the controller after their health gate that the snapshot does
    /// not list yet, per rule (`host + prefix`), with when they were admitted.
    admitted: HashMap<EndpointKey, Admitted>,
    generation: u64,
}

/// An admitted replica's backends, per rule (`host`, `path_prefix`), and when it was admitted.
type Admitted = (Vec<(String, String, Backend)>, Instant);

/// How long an admitted replica is routed without the snapshot listing it.
const ADMITTED_TTL: Duration = Duration::from_secs(600);

/// The router's handle.
#[derive(Clone)]
pub struct Router {
    shared: Arc<Shared>,
}

impl Router {
    pub fn new(config: Config) -> Router {
        let upstream = upstream::Settings {
            connect_timeout: config.connect_timeout,
            idle_timeout: config.upstream_idle_timeout,
            max_idle: config.upstream_max_idle,
        };
        Router {
            shared: Arc::new(Shared {
                config,
                table: ArcSwap::from_pointee(Table::default()),
                state: Mutex::new(State::default()),
                upstream,
                budget: retry::Budget::default(),
                probe_now: Notify::new(),
            }),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The table in force.
    pub fn table(&self) -> Arc<Table> {
        self.shared.table.load_full()
    }

    /// Every rule with its replicas' states (in rotation, draining, ejected, ... and why).
    pub fn view(&self) -> Vec<RuleView> {
        self.table().view()
    }

    /// Replaces the rules (from a new status snapshot, or a static table); the new table is
    /// in force when this returns. Endpoints keep their state across the swap.
    pub fn set_routes(&self, specs: Vec<RouteSpec>) {
        let mut state = self.lock();
        if state.base == specs {
            // Most snapshots change something else (a sync record, an event).
            return;
        }
        state.base = specs;
        self.rebuild(&mut state);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rebuild(&self, state: &mut State) {
        let now = Instant::now();
        let listed: std::collections::HashSet<&EndpointKey> =
            state.base.iter().flat_map(|s| s.backends.iter().map(|b| &b.key)).collect();
        state
            .admitted
            .retain(|key, (_, at)| !listed.contains(key) && now.duration_since(*at) < ADMITTED_TTL);
        let mut specs = state.base.clone();
        for (rules, _) in state.admitted.values() {
            for (host, prefix, backend) in rules {
                if let Some(spec) =
                    specs.iter_mut().find(|s| &s.host == host && &s.path_prefix == prefix)
                {
                    spec.backends.push(backend.clone());
                }
            }
        }
        state.generation += 1;
        let admitted: Vec<EndpointKey> = state.admitted.keys().cloned().collect();
        let (table, bad) = table::build(
            &specs,
            &mut state.registry,
            &|key| admitted.contains(key),
            state.generation,
        );
        for b in bad {
            tracing::warn!(service = %b.service, address = %b.address, reason = %b.reason, "router: replica address unusable");
        }
        let fresh = table.rules().flat_map(|r| r.endpoints.iter()).any(|e| {
            let h = e.health_snapshot();
            h.probe_up.is_none()
        });
        self.shared.table.store(Arc::new(table));
        if fresh {
            self.shared.probe_now.notify_one();
        }
    }

    /// The routes' metrics in Prometheus' text format (for the web layer's `/metrics`).
    pub fn metrics_text(&self) -> String {
        let table = self.table();
        let mut rules: Vec<_> = table.rules().collect();
        rules.sort_by_key(|r| r.name());
        metrics::render(rules.iter().map(|r| (r.name(), r.service.clone(), &*r.metrics)))
    }
}
