//! The raw shapes of a Compose app file as serde reads them after the schema check: each
//! short and long syntax a variant, nothing normalised yet.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::types::{DependencyCondition, FailureAction, UpdateOrder};

/// `string` or `[string]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// A scalar as Compose allows it where a string is meant.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    pub(super) fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// `["K=V", "K"]` or `{K: V}`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum ListOrDict {
    List(Vec<String>),
    Dict(BTreeMap<String, Option<Scalar>>),
}

impl ListOrDict {
    /// Entries in order, with `None` for a key given without a value.
    pub(super) fn entries(&self) -> Vec<(String, Option<String>)> {
        match self {
            ListOrDict::List(items) => items
                .iter()
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (item.clone(), None),
                })
                .collect(),
            ListOrDict::Dict(map) => {
                map.iter().map(|(k, v)| (k.clone(), v.as_ref().map(Scalar::text))).collect()
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct RawApp {
    #[serde(default)]
    pub(super) services: BTreeMap<String, RawService>,
    #[serde(default)]
    pub(super) networks: BTreeMap<String, Option<RawObject>>,
    #[serde(default)]
    pub(super) volumes: BTreeMap<String, Option<RawObject>>,
    #[serde(default)]
    pub(super) configs: BTreeMap<String, RawFileDef>,
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, RawFileDef>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawObject {
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) external: bool,
    pub(super) driver: Option<String>,
    #[serde(default)]
    pub(super) internal: bool,
    pub(super) labels: Option<ListOrDict>,
}

#[derive(Deserialize)]
pub(super) struct RawFileDef {
    pub(super) file: Option<String>,
    pub(super) content: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawService {
    pub(super) image: String,
    pub(super) command: Option<StringOrList>,
    pub(super) entrypoint: Option<StringOrList>,
    pub(super) environment: Option<ListOrDict>,
    pub(super) env_file: Option<RawEnvFiles>,
    #[serde(default)]
    pub(super) ports: Vec<RawPort>,
    #[serde(default)]
    pub(super) expose: Vec<Scalar>,
    pub(super) networks: Option<RawServiceNetworks>,
    #[serde(default)]
    pub(super) volumes: Vec<RawMount>,
    #[serde(default)]
    pub(super) configs: Vec<RawFileMount>,
    #[serde(default)]
    pub(super) secrets: Vec<RawFileMount>,
    pub(super) labels: Option<ListOrDict>,
    pub(super) healthcheck: Option<RawHealthcheck>,
    pub(super) depends_on: Option<RawDependsOn>,
    pub(super) restart: Option<String>,
    pub(super) user: Option<String>,
    pub(super) working_dir: Option<String>,
    pub(super) stop_grace_period: Option<String>,
    pub(super) stop_signal: Option<String>,
    pub(super) hostname: Option<String>,
    pub(super) extra_hosts: Option<RawExtraHosts>,
    pub(super) pull_policy: Option<String>,
    #[serde(default)]
    pub(super) deploy: RawDeploy,
    #[serde(rename = "x-routes", default)]
    pub(super) routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawEnvFiles {
    One(String),
    Many(Vec<RawEnvFile>),
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawEnvFile {
    Path(String),
    Entry {
        path: String,
        #[serde(default = "yes")]
        required: bool,
    },
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawPort {
    Number(u32),
    Short(String),
    Long {
        target: u32,
        published: Option<Scalar>,
        host_ip: Option<String>,
        protocol: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawServiceNetworks {
    List(Vec<String>),
    Map(BTreeMap<String, Option<RawServiceNetwork>>),
}

#[derive(Deserialize, Default)]
pub(super) struct RawServiceNetwork {
    #[serde(default)]
    pub(super) aliases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawMount {
    Short(String),
    Long {
        #[serde(rename = "type")]
        kind: String,
        source: Option<String>,
        target: String,
        #[serde(default)]
        read_only: bool,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawFileMount {
    Name(String),
    Long {
        source: String,
        target: Option<String>,
        uid: Option<String>,
        gid: Option<String>,
        mode: Option<Scalar>,
    },
}

#[derive(Deserialize)]
pub(super) struct RawHealthcheck {
    pub(super) test: Option<StringOrList>,
    pub(super) interval: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) start_period: Option<String>,
    pub(super) retries: Option<u32>,
    #[serde(default)]
    pub(super) disable: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawDependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, RawDependency>),
}

#[derive(Deserialize)]
pub(super) struct RawDependency {
    pub(super) condition: Option<DependencyCondition>,
    #[serde(default = "yes")]
    pub(super) required: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct RawDeploy {
    pub(super) replicas: Option<u32>,
    #[serde(default)]
    pub(super) placement: RawPlacement,
    #[serde(default)]
    pub(super) resources: RawResources,
    pub(super) update_config: Option<RawUpdateConfig>,
    pub(super) rollback_config: Option<RawUpdateConfig>,
    pub(super) restart_policy: Option<RawRestartPolicy>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawPlacement {
    #[serde(default)]
    pub(super) constraints: Vec<String>,
    pub(super) max_replicas_per_node: Option<u32>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawResources {
    pub(super) limits: Option<RawAmounts>,
    pub(super) reservations: Option<RawAmounts>,
}

#[derive(Deserialize)]
pub(super) struct RawAmounts {
    pub(super) cpus: Option<Scalar>,
    pub(super) memory: Option<Scalar>,
    pub(super) pids: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct RawUpdateConfig {
    pub(super) parallelism: Option<u32>,
    pub(super) delay: Option<String>,
    pub(super) failure_action: Option<FailureAction>,
    pub(super) monitor: Option<String>,
    pub(super) max_failure_ratio: Option<f64>,
    pub(super) order: Option<UpdateOrder>,
}

#[derive(Deserialize)]
pub(super) struct RawRestartPolicy {
    pub(super) condition: Option<String>,
    pub(super) delay: Option<String>,
    pub(super) max_attempts: Option<u32>,
    pub(super) window: Option<String>,
}

/// `["name:ip", "name=ip"]` or `{name: ip}`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawExtraHosts {
    List(Vec<String>),
    Dict(BTreeMap<String, String>),
}

impl RawExtraHosts {
    /// `name:ip` entries as Docker takes them, in order.
    pub(super) fn entries(&self) -> Vec<String> {
        match self {
            RawExtraHosts::List(items) => items
                .iter()
                .map(|item| {
                    let split = item.find(['=', ':']).map(|at| (&item[..at], &item[at + 1..]));
                    split.map_or_else(|| item.clone(), |(name, ip)| format!("{name}:{ip}"))
                })
                .collect(),
            RawExtraHosts::Dict(map) => {
                map.iter().map(|(name, ip)| format!("{name}:{ip}")).collect()
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RawRoute {
    pub(super) host: String,
    pub(super) path_prefix: Option<String>,
    pub(super) port: u16,
}
