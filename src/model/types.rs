//! The validated, normalised repository model: what `model::load` returns and the rest of
//! gitfleet consumes. Compose's short and long syntaxes are already folded into one shape
//! here, units are parsed (bytes, milli-CPUs, milliseconds) and file contents are read.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A whole repository at one revision: the fleet and its applications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub fleet: Fleet,
    /// Applications keyed by name (the folder name under `apps/`). Shared (`Arc`), so a
    /// load that reuses an unchanged app from the load cache does not copy it.
    pub apps: BTreeMap<String, Arc<App>>,
}

/// `fleet.yaml`: the registered hosts and fleet-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub hosts: BTreeMap<String, Host>,
    pub settings: Settings,
    /// Values available to `${VAR}` interpolation in app files, and only these.
    pub variables: BTreeMap<String, String>,
}

/// Fleet-wide settings, every one with a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The value of the `io.gitfleet.fleet` label; objects with another value are not ours.
    pub name: String,
    /// How long observing one host may take before it is reported unreachable.
    pub observe_timeout_ms: u64,
    /// Pull policy for services that do not set `pull_policy`.
    pub pull_policy: PullPolicy,
    /// Bounds on loading app files (`settings.limits`).
    pub limits: super::limits::Limits,
    /// Whether a revision with no apps may remove every app of a fleet that has some running
    /// (`settings.allow_empty`; refused otherwise).
    pub allow_empty: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: "default".into(),
            observe_timeout_ms: 10_000,
            pull_policy: PullPolicy::Missing,
            limits: super::limits::Limits::default(),
            allow_empty: false,
        }
    }
}

/// One registered Docker host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub endpoint: Endpoint,
    /// Where this host's published ports are reached (an IP or DNS name).
    pub address: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub platform: Platform,
}

/// How to reach a host's Docker Engine API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Endpoint {
    /// `unix:///var/run/docker.sock`
    Unix { path: String },
    /// `tcp://host:port`, optionally with TLS client files (paths on the controller's machine).
    Tcp { host: String, port: u16, tls: Option<TlsFiles> },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix { path } => write!(f, "unix://{path}"),
            Endpoint::Tcp { host, port, tls: None } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Tcp { host, port, tls: Some(_) } => write!(f, "tcp://{host}:{port} (tls)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// What a host can hold; `None` means unlimited (not declared).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub millicpus: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// `node.platform.os` / `node.platform.arch` as `fleet.yaml` declares them.
///
/// An empty field was not declared: the host takes its engine's answer once observed
/// (`diff::platform`), and until then it is Linux on x86_64 (see [`Platform::os`]). A declared
/// field is checked against the engine's answer, never trusted alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Default for Platform {
    fn default() -> Self {
        Platform { os: "linux".into(), arch: "x86_64".into() }
    }
}

impl Platform {
    /// Nothing declared: the engine decides.
    pub fn undeclared() -> Self {
        Platform { os: String::new(), arch: String::new() }
    }

    /// The operating system constraints compare: as declared, else `linux`.
    pub fn os(&self) -> &str {
        if self.os.is_empty() { "linux" } else { &self.os }
    }

    /// The architecture constraints compare: as declared, else `x86_64`.
    pub fn arch(&self) -> &str {
        if self.arch.is_empty() { "x86_64" } else { &self.arch }
    }
}

/// One application: `apps/<name>/compose.yaml` and the files it references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    /// Repository path of the compose file, for messages.
    pub file: String,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, NetworkDef>,
    pub volumes: BTreeMap<String, VolumeDef>,
    pub configs: BTreeMap<String, FileDef>,
    pub secrets: BTreeMap<String, FileDef>,
}

/// The network every service joins when it names none, as in Compose.
pub const DEFAULT_NETWORK: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    /// The Docker object name (`<app>_<key>` unless `name:` or `external`).
    pub docker_name: String,
    pub external: bool,
    pub driver: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeDef {
    /// The Docker object name (`<app>_<key>` unless `name:` or `external`).
    pub docker_name: String,
    pub external: bool,
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A config or secret: the content gitfleet delivers into containers.
///
/// The content never shows: it is skipped when serialised, and `Debug` prints only its
/// length, so a model can be logged or printed in a test failure without leaking a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDef {
    /// Repository path of the file, or `None` for inline `content:`.
    pub path: Option<String>,
    /// sha256 of the content, hex; the only trace of a secret in plans and labels.
    ///
    /// For an age-encrypted secret this is the digest of the decrypted **plaintext**, not of
    /// the file in the repository: encrypting the same value again (which gives different
    /// bytes every time) changes nothing, so it does not restart the containers using it.
    pub digest: String,
    /// What is delivered: the file's bytes, or the plaintext of an encrypted secret.
    #[serde(skip)]
    pub content: Arc<Vec<u8>>,
}

impl std::fmt::Debug for FileDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDef")
            .field("path", &self.path)
            .field("digest", &self.digest)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// env_file entries first, then `environment` over them, as in Compose.
    pub environment: BTreeMap<String, String>,
    pub ports: Vec<PortMapping>,
    /// `expose`: container ports declared without publishing them, as `PORT/PROTOCOL`.
    #[serde(default)]
    pub expose: Vec<String>,
    /// Networks joined, keyed by the app's network key.
    pub networks: BTreeMap<String, ServiceNetwork>,
    pub mounts: Vec<Mount>,
    pub configs: Vec<FileMount>,
    pub secrets: Vec<FileMount>,
    pub labels: BTreeMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
    pub depends_on: BTreeMap<String, Dependency>,
    pub restart: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_grace_period_ms: Option<u64>,
    pub stop_signal: Option<String>,
    pub hostname: Option<String>,
    /// `extra_hosts`: `name:ip` lines added to the containers' /etc/hosts (how consumers
    /// reach a service on another host through the router, by its internal route name).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    pub pull_policy: Option<PullPolicy>,
    pub deploy: Deploy,
    /// `x-routes`: how the router will reach this service.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub target: u16,
    /// Host port; `None` lets Docker choose one.
    pub published: Option<u16>,
    pub host_ip: Option<String>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountSource {
    /// A named volume, by the app's volume key.
    Volume {
        volume: String,
    },
    /// An absolute path on the host.
    Bind {
        path: String,
    },
    /// An anonymous volume: Docker makes one per container.
    Anonymous,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

/// A config or secret delivered into a container as a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMount {
    /// The app's config / secret key.
    pub name: String,
    pub target: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]` when disabled.
    pub test: Vec<String>,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub start_period_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub condition: DependencyCondition,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    pub replicas: u32,
    pub placement: Placement,
    pub resources: Resources,
    pub update_config: UpdateConfig,
    pub rollback_config: UpdateConfig,
    pub restart_policy: Option<RestartPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub constraints: Vec<Constraint>,
    pub max_replicas_per_node: Option<u32>,
}

/// One placement constraint, `node.labels.zone == a` say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub attribute: NodeAttribute,
    pub equal: bool,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum NodeAttribute {
    Hostname,
    Label(String),
    Os,
    Arch,
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attribute = match &self.attribute {
            NodeAttribute::Hostname => "node.hostname".to_string(),
            NodeAttribute::Label(name) => format!("node.labels.{name}"),
            NodeAttribute::Os => "node.platform.os".to_string(),
            NodeAttribute::Arch => "node.platform.arch".to_string(),
        };
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{attribute} {op} {}", self.value)
    }
}

impl Constraint {
    /// Whether `host` satisfies this constraint. A label the host lacks is not equal to any value.
    pub fn satisfied_by(&self, host: &Host) -> bool {
        let actual = match &self.attribute {
            NodeAttribute::Hostname => Some(host.name.as_str()),
            NodeAttribute::Label(name) => host.labels.get(name).map(String::as_str),
            NodeAttribute::Os => Some(host.platform.os()),
            NodeAttribute::Arch => Some(host.platform.arch()),
        };
        (actual == Some(self.value.as_str())) == self.equal
    }

    /// Whether `host` may satisfy this constraint once its engine has answered: a platform
    /// attribute the host does not declare is the engine's to say, so validation (which sees
    /// no engine) does not hold it against the host.
    pub fn may_be_satisfied_by(&self, host: &Host) -> bool {
        let undeclared = match self.attribute {
            NodeAttribute::Os => host.platform.os.is_empty(),
            NodeAttribute::Arch => host.platform.arch.is_empty(),
            NodeAttribute::Hostname | NodeAttribute::Label(_) => false,
        };
        undeclared || self.satisfied_by(host)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub limits: ResourceAmounts,
    pub reservations: ResourceAmounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAmounts {
    pub millicpus: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Rollback,
    Pause,
    Continue,
}

/// `deploy.update_config` / `deploy.rollback_config`, with Swarm's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Replicas updated at once; 0 means all at once.
    pub parallelism: u32,
    pub delay_ms: u64,
    pub order: UpdateOrder,
    pub monitor_ms: u64,
    pub failure_action: FailureAction,
    pub max_failure_ratio: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay_ms: 0,
            order: UpdateOrder::StopFirst,
            monitor_ms: 5_000,
            failure_action: FailureAction::Pause,
            max_failure_ratio: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any`.
    pub condition: String,
    pub delay_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub window_ms: Option<u64>,
}

/// `x-routes` on a service: requests the router sends to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub host: String,
    pub path_prefix: String,
    /// The container port requests go to.
    pub port: u16,
}
