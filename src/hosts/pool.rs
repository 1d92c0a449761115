//! Clients kept between observations, for the long-running controller: each host is
//! connected (and its API version negotiated) once, and reconnected only after it failed, so
//! a resync with nothing to do costs the list calls and nothing else.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;
use futures_util::future::join_all;
use tokio::sync::Mutex;

use super::connect::connect_with_timeout;
use super::error::HostError;
use super::observe::{observe_host, unreachable};
use crate::diff::{HostObservation, Observed};
use crate::model::Host;

/// Connected clients by host name.
#[derive(Default)]
pub struct Pool {
    clients: Mutex<BTreeMap<String, Docker>>,
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
        let known = self.clients.lock().await.clone();
        let rounds = hosts.iter().map(|(name, host)| {
            let cached = known.get(name).cloned();
            async move {
                let bounded = tokio::time::timeout(timeout, async {
                    let docker = match cached {
                        Some(docker) => docker,
                        None => connect_with_timeout(host, timeout).await?,
                    };
                    let state = observe_host(&docker, fleet).await?;
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
        let mut keep = BTreeMap::new();
        for (name, host, outcome) in join_all(rounds).await {
            match outcome {
                Ok((docker, state)) => {
                    keep.insert(name.clone(), docker.clone());
                    clients.insert(name.clone(), Ok(docker));
                    observed.hosts.insert(name, HostObservation::Reachable(state));
                }
                Err(error) => {
                    let observation = unreachable(host, &error);
                    if let HostObservation::Unreachable { reason, .. } = &observation {
                        clients.insert(name.clone(), Err(reason.clone()));
                    }
                    observed.hosts.insert(name, observation);
                }
            }
        }
        *self.clients.lock().await = keep;
        (observed, clients)
    }
}
