//! The [`Engine`] that talks to real Docker hosts through `hosts/`, one bollard client per
//! host, connected once per apply.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;

use super::engine::{ContainerStatus, Engine, EngineError, EngineResult, FileToDeliver};
use crate::diff::desired::DesiredObject;
use crate::diff::spec::ContainerSpec;
use crate::hosts::{self, HostError, RegistryAuth};
use crate::model::{Host, PullPolicy};

/// Clients for every host that answered; hosts that did not are lost from the start.
pub struct DockerEngine {
    clients: BTreeMap<String, Result<Docker, String>>,
    /// Docker's `config.json` (`auths`), for pulls from private registries.
    registry_config: Option<serde_json::Value>,
    /// The leadership epoch, labelled on what is created (`io.gitfleet.epoch`).
    epoch: Option<i64>,
    /// Asked right before every mutating call (see [`DockerEngine::fenced`]).
    gate: Option<Gate>,
}

/// Asked right before every mutating Docker call: `Err(why)` refuses the call. With high
/// availability, the leader's own-clock deadline (no etcd round trip: a local clock read), so
/// that a process frozen between a passed leadership check and its call does not write once
/// it wakes after its term.
pub type Gate = std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl DockerEngine {
    /// Connects to every host concurrently, each bounded by `timeout`.
    pub async fn connect(hosts: &BTreeMap<String, Host>, timeout: Duration) -> Self {
        let connections = futures_util::future::join_all(hosts.values().map(|host| async move {
            let client =
                hosts::connect_with_timeout(host, timeout).await.map_err(|e| e.to_string());
            (host.name.clone(), client)
        }))
        .await;
        DockerEngine {
            clients: connections.into_iter().collect(),
            registry_config: None,
            epoch: None,
            gate: None,
        }
    }

    /// Uses clients already connected (from [`hosts::Pool::observe_all`]); a host given as
    /// `Err(reason)` is lost from the start.
    pub fn from_clients(clients: BTreeMap<String, Result<Docker, String>>) -> Self {
        DockerEngine { clients, registry_config: None, epoch: None, gate: None }
    }

    /// Uses Docker's `config.json` (its `auths`) for registry credentials.
    pub fn with_registry_config(mut self, config: serde_json::Value) -> Self {
        self.registry_config = Some(config);
        self
    }

    /// Writes for leadership epoch `epoch`: labels what it creates with it (outside the spec
    /// hash) and asks `gate` right before every mutating call.
    pub fn fenced(mut self, epoch: i64, gate: Gate) -> Self {
        self.epoch = Some(epoch);
        self.gate = Some(gate);
        self
    }

    /// The gate's answer before a mutating call.
    fn may_write(&self) -> EngineResult<()> {
        match &self.gate {
            Some(gate) => gate().map_err(EngineError::new),
            None => Ok(()),
        }
    }

    /// `labels`, with the epoch label when there is an epoch.
    fn labelled<'a>(
        &self,
        labels: &'a BTreeMap<String, String>,
    ) -> std::borrow::Cow<'a, BTreeMap<String, String>> {
        match self.epoch {
            None => std::borrow::Cow::Borrowed(labels),
            Some(epoch) => {
                let mut labels = labels.clone();
                labels.insert(crate::diff::labels::EPOCH.to_string(), epoch.to_string());
                std::borrow::Cow::Owned(labels)
            }
        }
    }

    fn client(&self, host: &str) -> EngineResult<&Docker> {
        match self.clients.get(host) {
            Some(Ok(client)) => Ok(client),
            Some(Err(reason)) => Err(EngineError { message: reason.clone(), host_lost: true }),
            None => Err(EngineError::new(format!("host {host} is not in fleet.yaml"))),
        }
    }

    fn auth_for(&self, image: &str) -> Option<RegistryAuth> {
        hosts::registry_auth_for(image, self.registry_config.as_ref()?)
    }
}

/// A host error as the executor needs it: the message, and whether the host is gone.
fn engine_error(error: HostError) -> EngineError {
    let host_lost = matches!(
        error,
        HostError::Unreachable { .. }
            | HostError::Timeout { .. }
            | HostError::Disconnected { .. }
            | HostError::Interrupted { .. }
    );
    EngineError { message: error.to_string(), host_lost }
}

impl Engine for DockerEngine {
    async fn ensure_network(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.may_write()?;
        let docker = self.client(host)?;
        hosts::ensure_network(
            docker,
            &object.name,
            &self.labelled(labels),
            object.driver.as_deref(),
            object.internal,
        )
        .await
        .map(|_| ())
        .map_err(engine_error)
    }

    async fn ensure_volume(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.may_write()?;
        let docker = self.client(host)?;
        hosts::ensure_volume(docker, &object.name, &self.labelled(labels), object.driver.as_deref())
            .await
            .map_err(engine_error)
    }

    async fn ensure_image(&self, host: &str, image: &str, policy: PullPolicy) -> EngineResult<()> {
        self.may_write()?;
        let docker = self.client(host)?;
        let present = hosts::image_present(docker, image).await.map_err(engine_error)?;
        match policy {
            PullPolicy::Never if !present => Err(EngineError::new(format!(
                "image {image} is not on host {host} and its pull policy is `never`"
            ))),
            PullPolicy::Missing | PullPolicy::Never if present => Ok(()),
            _ => hosts::pull_image(docker, image, self.auth_for(image).as_ref())
                .await
                .map_err(engine_error),
        }
    }

    async fn create(
        &self,
        host: &str,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
        files: &[FileToDeliver],
    ) -> EngineResult<String> {
        self.may_write()?;
        let docker = self.client(host)?;
        hosts::create_container(docker, name, spec, &self.labelled(labels), files)
            .await
            .map_err(engine_error)
    }

    async fn start(&self, host: &str, id: &str) -> EngineResult<()> {
        self.may_write()?;
        hosts::start_container(self.client(host)?, id).await.map_err(engine_error)
    }

    async fn stop(&self, host: &str, id: &str, grace: Duration) -> EngineResult<()> {
        self.may_write()?;
        hosts::stop_container(self.client(host)?, id, grace).await.map_err(engine_error)
    }

    async fn remove(&self, host: &str, id: &str) -> EngineResult<()> {
        self.may_write()?;
        hosts::remove_container(self.client(host)?, id).await.map_err(engine_error)
    }

    async fn rename(&self, host: &str, id: &str, name: &str) -> EngineResult<()> {
        self.may_write()?;
        hosts::rename_container(self.client(host)?, id, name).await.map_err(engine_error)
    }

    async fn status(&self, host: &str, id: &str) -> EngineResult<ContainerStatus> {
        hosts::container_status(self.client(host)?, id).await.map_err(engine_error)
    }

    async fn logs(&self, host: &str, id: &str, lines: usize) -> EngineResult<String> {
        hosts::logs_tail(self.client(host)?, id, lines).await.map_err(engine_error)
    }

    async fn remove_network(&self, host: &str, id: &str) -> EngineResult<()> {
        self.may_write()?;
        hosts::remove_network(self.client(host)?, id).await.map_err(engine_error)
    }
}
