//! Clients kept between observations, for the long-running controller: each host is
//! connected (and its API version negotiated) once, and reconnected only after it failed or
//! when its endpoint in `fleet.yaml` changed, so a resync with nothing to do costs the list
//! calls and nothing else. The engine's `/info` (its platform) is read once per connection
//! and kept with the client.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;
use futures_util::future::join_all;
use tokio::sync::Mutex;

use super::connect::connect_with_timeout;
use super::error::{FailureClass, HostError};
use super::observe::{observe_host, unreachable};
use super::platform::{RegistryCache, engine_info, mixed, model_images, observe_images};
use crate::diff::platform::EngineInfo;
use crate::diff::{HostObservation, Observed};
use crate::model::{Endpoint, Host, Model};

/// Connected clients by host name, each with the endpoint it was connected to.
#[derive(Default)]
pub struct Pool {
    clients: Mutex<BTreeMap<String, (Endpoint, Docker)>>,
    /// Each connected engine's `/info`, read when it was connected.
    engines: Mutex<BTreeMap<String, EngineInfo>>,
    /// What registries said about images, through the engines' distribution endpoint.
    registry: RegistryCache,
}

/// The kept client for `host`, if it was made for the endpoint (and TLS files) `host` names
/// now: a commit that moves a host elsewhere must not keep talking to the old daemon.
fn reusable(
    known: &BTreeMap<String, (Endpoint, Docker)>,
    name: &str,
    host: &Host,
) -> Option<Docker> {
    known.get(name).filter(|(endpoint, _)| *endpoint == host.endpoint).map(|(_, d)| d.clone())
}

/// Each host's client (or why there is none), as an observation round leaves them.
pub type Clients = BTreeMap<String, Result<Docker, String>>;

/// One observation round of every host, through the pool. `C`: what the round leaves for
/// the apply that may follow (the pool's: each host's client); the controller's in-process
/// tests put their own there (`controller::edges`).
pub struct Round<C = Clients> {
    /// What each host runs, or why it could not be seen.
    pub observed: Observed,
    /// Each host's client (or why there is none), for the apply that may follow.
    pub clients: C,
    /// For each host that could not be observed: gone, or answering with errors. The
    /// controller's liveness counts only [`FailureClass::Connection`] toward away and down.
    pub failures: BTreeMap<String, FailureClass>,
}

impl Pool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`observe_all`](super::observe_all), with the pool's clients; also returns the
    /// client (or why there is none) for every host, for the apply that may follow.
    pub async fn observe_all(
        &self,
        hosts: &BTreeMap<String, Host>,
        fleet: &str,
        timeout: Duration,
    ) -> (Observed, BTreeMap<String, Result<Docker, String>>) {
        let round = self.observe_round(hosts, fleet, timeout).await;
        (round.observed, round.clients)
    }

    /// [`Pool::observe_all`], also saying which kind of failure kept each unobserved host
    /// from being seen.
    pub async fn observe_round(
        &self,
        hosts: &BTreeMap<String, Host>,
        fleet: &str,
        timeout: Duration,
    ) -> Round {
        let known = self.clients.lock().await.clone();
        let engines = self.engines.lock().await.clone();
        let rounds = hosts.iter().map(|(name, host)| {
            let cached = reusable(&known, name, host).zip(engines.get(name).cloned());
            async move {
                let bounded = tokio::time::timeout(timeout, async {
                    let (docker, engine) = match cached {
                        Some(kept) => kept,
                        None => {
                            let docker = connect_with_timeout(host, timeout).await?;
                            let engine = engine_info(&docker).await?;
                            (docker, engine)
                        }
                    };
                    let mut state = observe_host(&docker, fleet).await?;
                    state.engine = Some(engine);
                    Ok::<_, HostError>((docker, state))
                })
                .await
                .unwrap_or_else(|_| {
                    Err(HostError::Timeout { endpoint: host.endpoint.to_string(), timeout })
                });
                (name.clone(), host, bounded)
            }
        });
        let mut observed = Observed::default();
        let mut clients = BTreeMap::new();
        let mut failures = BTreeMap::new();
        let mut keep = BTreeMap::new();
        let mut keep_engines = BTreeMap::new();
        for (name, host, outcome) in join_all(rounds).await {
            match outcome {
                Ok((docker, state)) => {
                    keep.insert(name.clone(), (host.endpoint.clone(), docker.clone()));
                    if let Some(engine) = &state.engine {
                        keep_engines.insert(name.clone(), engine.clone());
                    }
                    clients.insert(name.clone(), Ok(docker));
                    observed.hosts.insert(name, HostObservation::Reachable(state));
                }
                Err(error) => {
                    failures.insert(name.clone(), error.class());
                    let observation = unreachable(host, &error);
                    if let HostObservation::Unreachable { reason, .. } = &observation {
                        clients.insert(name.clone(), Err(reason.clone()));
                    }
                    observed.hosts.insert(name, observation);
                }
            }
        }
        *self.clients.lock().await = keep;
        *self.engines.lock().await = keep_engines;
        Round { observed, clients, failures }
    }

    /// [`observe_round`](Self::observe_round) for `model`'s hosts (each bounded by its
    /// `settings.observe_timeout`), and in a fleet with a host that is not Linux the platforms
    /// of the model's images ([`super::platform::observe_images`]), for placement.
    pub async fn observe_model(&self, model: &Model) -> Round {
        let settings = &model.fleet.settings;
        let timeout = Duration::from_millis(settings.observe_timeout_ms);
        let mut round = self.observe_round(&model.fleet.hosts, &settings.name, timeout).await;
        if mixed(&model.fleet.hosts, &round.observed) {
            let images = model_images(model);
            observe_images(&mut round.observed, &round.clients, &images, &self.registry, timeout)
                .await;
        }
        round
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(endpoint: &str) -> Host {
        let fleet = format!("hosts:\n  a:\n    endpoint: {endpoint}\n");
        let mut tree = crate::model::SourceTree::new();
        tree.insert_file("fleet.yaml", fleet.into_bytes());
        tree.insert_file("apps/x/compose.yaml", b"services:\n  s:\n    image: x:1\n".to_vec());
        crate::model::load(&tree).expect("valid fleet").fleet.hosts["a"].clone()
    }

    #[test]
    fn a_client_is_reused_only_for_its_own_endpoint() {
        let old = host("tcp://127.0.0.1:2375");
        // A client is lazy: nothing connects until a request is sent.
        let docker =
            Docker::connect_with_http("tcp://127.0.0.1:2375", 5, bollard::API_DEFAULT_VERSION)
                .unwrap();
        let known = BTreeMap::from([("a".to_string(), (old.endpoint.clone(), docker))]);
        assert!(reusable(&known, "a", &old).is_some());
        assert!(reusable(&known, "a", &host("tcp://127.0.0.1:2376")).is_none());
        assert!(reusable(&known, "a", &host("unix:///run/other.sock")).is_none());
        assert!(reusable(&known, "b", &old).is_none());
    }
}
