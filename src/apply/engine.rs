//! The narrow interface the apply executor drives, one Docker operation a method, addressed
//! by host name. [`DockerEngine`](super::docker::DockerEngine) is the real one; tests of the
//! executor's logic may use their own.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::diff::desired::DesiredObject;
use crate::diff::spec::ContainerSpec;
use crate::model::PullPolicy;

pub use crate::hosts::{ContainerStatus, FileToDeliver, Health};

/// A failed operation: Docker's message, and whether the host itself is gone (connection
/// refused, timed out): then nothing more is attempted on it in this apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    pub message: String,
    pub host_lost: bool,
}

impl EngineError {
    pub fn new(message: impl Into<String>) -> Self {
        EngineError { message: message.into(), host_lost: false }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// One Docker operation a method. Every method is idempotent where Docker allows: removing
/// what is already gone succeeds.
pub trait Engine: Sync {
    fn ensure_network(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = EngineResult<()>> + Send;
    fn ensure_volume(
        &self,
        host: &str,
        object: &DesiredObject,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = EngineResult<()>> + Send;
    /// Pulls `image` when the policy says so (`missing`: only if absent).
    fn ensure_image(
        &self,
        host: &str,
        image: &str,
        policy: PullPolicy,
    ) -> impl Future<Output = EngineResult<()>> + Send;
    /// Creates (does not start) a container; returns its id.
    fn create(
        &self,
        host: &str,
        name: &str,
        spec: &ContainerSpec,
        labels: &BTreeMap<String, String>,
        files: &[FileToDeliver],
    ) -> impl Future<Output = EngineResult<String>> + Send;
    fn start(&self, host: &str, id: &str) -> impl Future<Output = EngineResult<()>> + Send;
    fn stop(
        &self,
        host: &str,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = EngineResult<()>> + Send;
    /// Removes a container (never its volumes).
    fn remove(&self, host: &str, id: &str) -> impl Future<Output = EngineResult<()>> + Send;
    fn rename(
        &self,
        host: &str,
        id: &str,
        name: &str,
    ) -> impl Future<Output = EngineResult<()>> + Send;
    fn status(
        &self,
        host: &str,
        id: &str,
    ) -> impl Future<Output = EngineResult<ContainerStatus>> + Send;
    fn logs(
        &self,
        host: &str,
        id: &str,
        lines: usize,
    ) -> impl Future<Output = EngineResult<String>> + Send;
    fn remove_network(&self, host: &str, id: &str)
    -> impl Future<Output = EngineResult<()>> + Send;
}
