//! The web side of `gitfleet run`: the read-only status page, its JSON and live-update
//! endpoints, `/metrics`, health, and the webhook receivers' listener. It only reads status
//! snapshots through the controller's `StatusReader`; it never reaches into the loop.
//!
//! * [`view`]: what the page shows, as values (pure).
//! * [`page`]: the HTML, from embedded templates with HTML escaping (pure).
//! * [`assets`]: the embedded stylesheet, script and favicon; the palette's contrast test.
//! * [`metrics`]: `/metrics` through `prometheus-client` (pure).
//! * [`routes`]: the axum [`Router`]s: [`app`] (page, API, metrics, health) and [`hooks`].
//! * [`server`]: the hardened HTTP/1 server: header-read and body timeouts, a cap on
//!   connections, bounded graceful shutdown.
//!
//! # Guarantees
//!
//! * Read-only by construction: the routes of [`app`] accept GET and HEAD only (others answer
//!   405) and only read a snapshot. Only [`hooks`] takes POSTs, and it hands hooks to the
//!   controller's sink.
//! * Every response carries a strict Content-Security-Policy (`default-src 'none'`, scripts,
//!   styles and images from the page's own origin only); nothing is loaded from elsewhere.
//! * Secrets never reach the page: the snapshot carries none (the repository URL is
//!   redacted before it gets there).

pub mod assets;
pub mod metrics;
pub mod page;
pub mod routes;
pub mod server;
pub mod view;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use crate::controller::Heartbeat;
use crate::controller::state::{Snapshot, StatusReader};

pub use routes::{app, hooks};
pub use server::{Limits, serve};

/// What the web routes share.
#[derive(Clone)]
pub struct Web {
    status: StatusReader,
    heartbeat: Option<Arc<Heartbeat>>,
    shutdown: CancellationToken,
    deliveries: Arc<Mutex<metrics::Deliveries>>,
    /// Rejected webhook deliveries, newest first, at most [`REJECTED`]; the page lists them
    /// among the events (never with the delivery's body).
    rejected: Arc<Mutex<VecDeque<view::LocalEvent>>>,
    /// Bumped on each rejection, so live streams send the events again.
    rejections: Arc<tokio::sync::watch::Sender<u64>>,
}

/// How many rejected deliveries are kept.
pub const REJECTED: usize = 50;

impl Web {
    /// The web side over the controller's `status`; live streams end when `shutdown` is
    /// cancelled.
    pub fn new(status: StatusReader, shutdown: CancellationToken) -> Self {
        Web {
            status,
            heartbeat: None,
            shutdown,
            deliveries: Arc::default(),
            rejected: Arc::default(),
            rejections: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// `/healthz` answers from the reconcile loop's heartbeat (without one, it only says the
    /// server answers).
    pub fn with_heartbeat(mut self, heartbeat: Arc<Heartbeat>) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.status.get()
    }

    fn deliveries(&self) -> BTreeMap<(String, String), u64> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count_delivery(&self, forge: &str, result: &str) {
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        *deliveries.entry((forge.to_string(), result.to_string())).or_default() += 1;
    }

    /// Notes a rejected delivery for the page's events (`message` is gitfleet's own words,
    /// never the delivery's body).
    fn reject_delivery(&self, message: String) {
        tracing::debug!(%message, "rejected delivery noted for the page");
        {
            let mut rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
            rejected.push_front(view::LocalEvent {
                at: SystemTime::now(),
                kind: "webhook",
                message,
            });
            rejected.truncate(REJECTED);
        }
        self.rejections.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The rejected deliveries, newest first.
    fn local_events(&self) -> Vec<view::LocalEvent> {
        self.rejected.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}
