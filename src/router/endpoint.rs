//! One replica the router can send requests to: its address, in-flight and total counters,
//! health (active probes, Docker's health check, passive ejection) and draining.
//!
//! Endpoints are keyed by host and container id ([`EndpointKey`]) and kept in a registry
//! across route table generations, so counters, health and draining survive every swap.
//!
//! # Health rules (pure, in [`Health`])
//!
//! * Active probes: down after 2 failed probes in a row (fall 2), up after 1 success
//!   (rise 1). A new endpoint is not in rotation until its first probe passes, unless Docker
//!   reports it healthy or the controller admitted it after its health gate.
//! * Docker's health check, when the container has one: `unhealthy` or `starting` keeps it
//!   out of rotation whatever the probes say.
//! * Passive: a failed connect ejects it for a backoff (1 s, doubling to 30 s); after the
//!   backoff it is tried again, and a success clears the count.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::uri::Authority;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::upstream::Pool;
use crate::diff::ReplicaKey;

/// An endpoint's identity: the Docker host's name and the container's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EndpointKey {
    pub host: String,
    pub container: String,
}

/// Docker's health check status as the snapshot last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DockerHealth {
    /// The container has no health check.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl DockerHealth {
    pub fn from_status(status: Option<&str>) -> Self {
        match status {
            None => DockerHealth::None,
            Some("healthy") => DockerHealth::Healthy,
            Some("unhealthy") => DockerHealth::Unhealthy,
            Some(_) => DockerHealth::Starting,
        }
    }
}

const FALL: u32 = 2;
const EJECT_BASE: Duration = Duration::from_secs(1);
const EJECT_MAX: Duration = Duration::from_secs(30);

/// The health state machine of one endpoint. Pure: time is passed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `None` until the first probe.
    pub probe_up: Option<bool>,
    pub probe_failures: u32,
    pub docker: DockerHealth,
    /// Admitted by the controller after its health gate (counts as a passed probe).
    pub admitted: bool,
    pub connect_failures: u32,
    pub ejected_until: Option<Instant>,
    /// Why it is out of rotation, for people.
    pub last_error: Option<String>,
}

impl Health {
    pub fn new(docker: DockerHealth) -> Self {
        Health {
            probe_up: None,
            probe_failures: 0,
            docker,
            admitted: false,
            connect_failures: 0,
            ejected_until: None,
            last_error: None,
        }
    }

    /// Whether requests may go to it at `now` (draining is apart).
    pub fn usable(&self, now: Instant) -> bool {
        let docker_ok = !matches!(self.docker, DockerHealth::Unhealthy | DockerHealth::Starting);
        let probe_ok = match self.probe_up {
            Some(up) => up,
            None => self.admitted || self.docker == DockerHealth::Healthy,
        };
        let ejected = self.ejected_until.is_some_and(|until| now < until);
        docker_ok && probe_ok && !ejected
    }

    pub fn probe_passed(&mut self) {
        self.probe_up = Some(true);
        self.probe_failures = 0;
    }

    pub fn probe_failed(&mut self, why: String) {
        self.probe_failures += 1;
        // A first probe that fails leaves a new endpoint out; one in rotation falls at FALL.
        if self.probe_failures >= FALL || self.probe_up.is_none() && !self.admitted {
            self.probe_up = Some(false);
        }
        self.last_error = Some(why);
    }

    /// A connect failure: ejected for a backoff that doubles with each failure in a row.
    pub fn connect_failed(&mut self, now: Instant, why: String) {
        self.connect_failures += 1;
        let exp = self.connect_failures.saturating_sub(1).min(5);
        let backoff = (EJECT_BASE * 2u32.pow(exp)).min(EJECT_MAX);
        self.ejected_until = Some(now + backoff);
        self.last_error = Some(why);
    }

    /// A response came back: passive failures are forgotten.
    pub fn succeeded(&mut self) {
        self.connect_failures = 0;
        self.ejected_until = None;
    }
}

/// One replica behind a route.
#[derive(Debug)]
pub struct Endpoint {
    pub key: EndpointKey,
    pub authority: Authority,
    pub replica: Option<ReplicaKey>,
    /// What a sticky client's cookie holds to name it ([`super::sticky::token`]).
    pub token: String,
    in_flight: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    draining: AtomicBool,
    /// Mirrors `health.usable(now)` for the hot path, refreshed on every health change and
    /// by the prober; ejection expiry is checked against `health` directly.
    usable: AtomicBool,
    ejected: AtomicBool,
    health: Mutex<Health>,
    idle: Notify,
    /// Cancelled when a drain times out or the endpoint leaves the fleet: its upstream
    /// connections and upgraded connections still open are closed.
    closing: CancellationToken,
    /// Idle upstream connections to it, kept across table generations with it.
    pub pool: Pool,
}

/// The public view of an endpoint, for the status page and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointView {
    pub host: String,
    pub container: String,
    pub address: String,
    pub replica: Option<String>,
    /// `in_rotation`, `draining`, `ejected`, `unhealthy`, `starting`.
    pub state: &'static str,
    pub why: Option<String>,
    pub in_flight: u32,
    pub requests: u64,
    pub failures: u64,
}

impl Endpoint {
    pub fn new(
        key: EndpointKey,
        authority: Authority,
        replica: Option<ReplicaKey>,
        docker: DockerHealth,
    ) -> Self {
        let health = Health::new(docker);
        let usable = health.usable(Instant::now());
        Endpoint {
            token: super::sticky::token(&key),
            key,
            authority,
            replica,
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            usable: AtomicBool::new(usable),
            ejected: AtomicBool::new(false),
            health: Mutex::new(health),
            idle: Notify::new(),
            closing: CancellationToken::new(),
            pool: Pool::default(),
        }
    }

    /// Whether the balancer may pick it now.
    pub fn available(&self) -> bool {
        if self.draining.load(Ordering::Relaxed) {
            return false;
        }
        if self.ejected.load(Ordering::Relaxed) {
            // The backoff may be over: look at the clock (rare path).
            self.refresh();
        }
        self.usable.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Back in rotation (a drained replica that was started again).
    pub fn undrain(&self) {
        self.draining.store(false, Ordering::SeqCst);
    }

    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    pub fn closing_token(&self) -> &CancellationToken {
        &self.closing
    }

    /// Ends what is still in flight to it: its requests fail, its upstream and upgraded
    /// connections close.
    pub fn close(&self) {
        self.closing.cancel();
        self.pool.clear();
    }

    pub fn is_closed(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Resolves once [`close`](Self::close) was called (or a drain timed out).
    pub async fn closed(&self) {
        self.closing.cancelled().await
    }

    /// Changes the health state and refreshes the hot-path flags.
    pub fn update_health(&self, change: impl FnOnce(&mut Health)) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let before = health.usable(Instant::now());
        change(&mut health);
        let now = Instant::now();
        let after = health.usable(now);
        self.usable.store(after, Ordering::Relaxed);
        self.ejected.store(health.ejected_until.is_some_and(|u| now < u), Ordering::Relaxed);
        if before != after {
            tracing::info!(
                endpoint = %self.authority, host = %self.key.host, container = %short(&self.key.container),
                usable = after, why = health.last_error.as_deref().unwrap_or(""),
                "router endpoint {}", if after { "in rotation" } else { "out of rotation" }
            );
        }
    }

    fn refresh(&self) {
        self.update_health(|_| {});
    }

    pub fn connect_failed(&self, why: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.update_health(|h| h.connect_failed(Instant::now(), why));
    }

    pub fn request_failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn succeeded(&self) {
        if self.ejected.load(Ordering::Relaxed) || self.health_snapshot().connect_failures > 0 {
            self.update_health(Health::succeeded);
        }
    }

    pub fn health_snapshot(&self) -> Health {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes it out of rotation and waits until nothing is in flight, at most `timeout`;
    /// then closes upgraded connections still open. Returns whether it drained in time.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        let drained = loop {
            let idle = self.idle.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                break true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break self.in_flight.load(Ordering::SeqCst) == 0;
            }
        };
        if !drained {
            self.close();
        }
        drained
    }

    pub fn view(&self) -> EndpointView {
        let health = self.health_snapshot();
        let now = Instant::now();
        let state = if self.is_draining() {
            "draining"
        } else if health.ejected_until.is_some_and(|u| now < u) {
            "ejected"
        } else if health.usable(now) {
            "in_rotation"
        } else if health.probe_up.is_none() && health.docker != DockerHealth::Unhealthy {
            "starting"
        } else {
            "unhealthy"
        };
        EndpointView {
            host: self.key.host.clone(),
            container: short(&self.key.container).to_string(),
            address: self.authority.to_string(),
            replica: self.replica.as_ref().map(ToString::to_string),
            state,
            why: if state == "in_rotation" { None } else { health.last_error },
            in_flight: self.in_flight(),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// A request in flight to an endpoint; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Only a drain waits for the count to reach 0 (it sets `draining` before it reads
        // the count, and both sides are SeqCst: one of them sees the other).
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.0.draining.load(Ordering::SeqCst)
        {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_fall_two_rise_one() {
        let now = Instant::now();
        let mut h = Health::new(DockerHealth::None);
        assert!(!h.usable(now), "a new endpoint waits for its first probe");
        h.probe_passed();
        assert!(h.usable(now));
        h.probe_failed("refused".into());
        assert!(h.usable(now), "one failure is not a fall");
        h.probe_failed("refused".into());
        assert!(!h.usable(now));
        h.probe_passed();
        assert!(h.usable(now), "one success is a rise");
    }

    #[test]
    fn docker_health_and_admission() {
        let now = Instant::now();
        assert!(Health::new(DockerHealth::Healthy).usable(now));
        let mut starting = Health::new(DockerHealth::Starting);
        starting.probe_passed();
        assert!(!starting.usable(now), "a starting health check keeps it out");
        let mut admitted = Health::new(DockerHealth::None);
        admitted.admitted = true;
        assert!(admitted.usable(now));
        admitted.probe_failed("x".into());
        assert!(admitted.usable(now), "an admitted endpoint falls only after two failures");
        let mut unhealthy = Health::new(DockerHealth::Unhealthy);
        unhealthy.probe_passed();
        assert!(!unhealthy.usable(now));
        let mut first_fails = Health::new(DockerHealth::None);
        first_fails.probe_failed("x".into());
        assert!(!first_fails.usable(now));
    }

    #[test]
    fn connect_failures_eject_with_backoff() {
        let now = Instant::now();
        let mut h = Health::new(DockerHealth::Healthy);
        h.connect_failed(now, "refused".into());
        assert!(!h.usable(now));
        assert!(h.usable(now + Duration::from_millis(1001)));
        h.connect_failed(now, "refused".into());
        assert!(!h.usable(now + Duration::from_millis(1500)));
        assert!(h.usable(now + Duration::from_millis(2001)));
        for _ in 0..10 {
            h.connect_failed(now, "refused".into());
        }
        assert_eq!(h.ejected_until, Some(now + EJECT_MAX));
        h.succeeded();
        assert!(h.usable(now));
    }

    #[tokio::test]
    async fn draining_waits_for_in_flight_and_times_out() {
        let key = EndpointKey { host: "a".into(), container: "c1".into() };
        let e = Arc::new(Endpoint::new(
            key,
            Authority::from_static("127.0.0.1:1"),
            None,
            DockerHealth::Healthy,
        ));
        assert!(e.available());
        let guard = e.begin();
        let drain = tokio::spawn({
            let e = e.clone();
            async move { e.drain(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!e.available(), "a draining endpoint is out of rotation at once");
        assert!(!drain.is_finished());
        drop(guard);
        assert!(drain.await.unwrap(), "drained when the last request ended");

        let key = EndpointKey { host: "a".into(), container: "c2".into() };
        let e = Arc::new(Endpoint::new(
            key,
            Authority::from_static("127.0.0.1:1"),
            None,
            DockerHealth::Healthy,
        ));
        let _stuck = e.begin();
        let closing = e.closing();
        assert!(!e.drain(Duration::from_millis(30)).await);
        assert!(closing.is_cancelled(), "upgraded connections are closed at the drain timeout");
    }
}
