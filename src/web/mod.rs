//! The web side of `gitfleet run`: the read-only status page, its JSON and live-update
//! endpoints, `/metrics`, health, and the webhook receivers' listener. It only reads status
//! snapshots from a `watch` channel the controller publishes; it never reaches into the loop.
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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::controller::state::{Snapshot, Store};

pub use routes::{app, hooks};
pub use server::{Limits, serve};

/// The status as the web side receives it: the latest snapshot, and a way to wait for the
/// next one.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

/// What the web routes share.
#[derive(Clone)]
pub struct Web {
    snapshots: Snapshots,
    shutdown: CancellationToken,
    deliveries: Arc<Mutex<metrics::Deliveries>>,
}

impl Web {
    /// The web side over `snapshots`; live streams end when `shutdown` is cancelled.
    pub fn new(snapshots: Snapshots, shutdown: CancellationToken) -> Self {
        Web { snapshots, shutdown, deliveries: Arc::default() }
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    fn deliveries(&self) -> BTreeMap<(String, String), u64> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count_delivery(&self, forge: &str, result: &str) {
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        *deliveries.entry((forge.to_string(), result.to_string())).or_default() += 1;
    }
}

/// Publishes the store's state as snapshots: checks it every `every` and sends a new
/// snapshot when it changed, until `shutdown`.
///
/// The adapter between today's [`Store`] (a lock the loop writes) and the web side (which
/// reads snapshots from a channel); it goes when the controller publishes snapshots itself.
pub fn follow_store(store: Arc<Store>, every: Duration, shutdown: CancellationToken) -> Snapshots {
    let (tx, rx) = watch::channel(Arc::new(store.snapshot()));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let snapshot = store.snapshot();
            tx.send_if_modified(|current| {
                let changed = **current != snapshot;
                if changed {
                    *current = Arc::new(snapshot);
                }
                changed
            });
        }
    });
    rx
}
