//! The canonical container spec: everything that decides what a replica's container is,
//! in one deterministic shape. Its hash, carried in the `io.gitfleet.spec-hash` label, decides
//! replacement; the spec itself, in `io.gitfleet.spec`, lets a plan say which fields changed.
//! Secrets and configs appear by content digest only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::model::{
    App, Healthcheck, MountSource, PortMapping, Protocol, ResourceAmounts, Service,
};

/// What a container is, independent of which replica or host it is. (`Default` is an empty
/// spec with no image, for building specs field by field in tests.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub ports: Vec<PortMapping>,
    /// Container ports declared but not published (`PORT/PROTOCOL`).
    pub expose: Vec<String>,
    /// Docker network name → aliases (the service name is always one).
    pub networks: BTreeMap<String, Vec<String>>,
    pub mounts: Vec<SpecMount>,
    /// Configs and secrets, keyed by their path in the container.
    pub files: BTreeMap<String, SpecFile>,
    pub labels: BTreeMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
    /// Docker's restart policy name: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    pub restart: String,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub stop_grace_period_ms: Option<u64>,
    pub stop_signal: Option<String>,
    pub hostname: Option<String>,
    pub limits: ResourceAmounts,
    /// `name:ip` entries for /etc/hosts. Left out of the canonical JSON when empty, so specs
    /// (and hashes) of services without it are what they were before the field existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `windows` for a spec made for a Windows host ([`super::windows::translate`]); absent
    /// (and so not in the canonical JSON, nor changing its hash) for Linux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
}

/// A mount with the volume resolved to its Docker name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecMount {
    /// `volume`, `bind`, `anonymous` or `tmpfs`.
    pub kind: String,
    /// Docker volume name or host path; empty for anonymous and tmpfs.
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// A config or secret file delivered into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecFile {
    /// `config` or `secret`.
    pub kind: String,
    /// The app's key for it.
    pub name: String,
    /// sha256 of the content.
    pub digest: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

impl ContainerSpec {
    /// The spec of `service` of `app`.
    pub fn of(app: &App, service: &Service) -> Self {
        let networks = service
            .networks
            .iter()
            .map(|(key, network)| {
                let docker_name =
                    app.networks.get(key).map_or_else(|| key.clone(), |n| n.docker_name.clone());
                let mut aliases = vec![service.name.clone()];
                aliases.extend(network.aliases.iter().cloned());
                aliases.sort();
                aliases.dedup();
                (docker_name, aliases)
            })
            .collect();
        let mounts = service
            .mounts
            .iter()
            .map(|m| {
                let (kind, source) = match &m.source {
                    MountSource::Volume { volume } => (
                        "volume",
                        app.volumes
                            .get(volume)
                            .map_or_else(|| volume.clone(), |v| v.docker_name.clone()),
                    ),
                    MountSource::Bind { path } => ("bind", path.clone()),
                    MountSource::Anonymous => ("anonymous", String::new()),
                    MountSource::Tmpfs => ("tmpfs", String::new()),
                };
                SpecMount {
                    kind: kind.into(),
                    source,
                    target: m.target.clone(),
                    read_only: m.read_only,
                }
            })
            .collect();
        let mut files = BTreeMap::new();
        for (kind, mounts, defs) in
            [("config", &service.configs, &app.configs), ("secret", &service.secrets, &app.secrets)]
        {
            for mount in mounts {
                let digest = defs.get(&mount.name).map(|d| d.digest.clone()).unwrap_or_default();
                files.insert(
                    mount.target.clone(),
                    SpecFile {
                        kind: kind.into(),
                        name: mount.name.clone(),
                        digest,
                        uid: mount.uid.clone(),
                        gid: mount.gid.clone(),
                        mode: mount.mode,
                    },
                );
            }
        }
        ContainerSpec {
            image: service.image.clone(),
            command: service.command.clone(),
            entrypoint: service.entrypoint.clone(),
            environment: service.environment.clone(),
            ports: ports_with_routes(service),
            expose: service.expose.clone(),
            networks,
            mounts,
            files,
            labels: service.labels.clone(),
            healthcheck: service.healthcheck.clone(),
            restart: restart_policy(service),
            user: service.user.clone(),
            working_dir: service.working_dir.clone(),
            stop_grace_period_ms: service.stop_grace_period_ms,
            stop_signal: service.stop_signal.clone(),
            hostname: service.hostname.clone(),
            limits: service.deploy.resources.limits,
            extra_hosts: service.extra_hosts.clone(),
            os: None,
        }
    }

    /// The canonical JSON text: the value of the `io.gitfleet.spec` label.
    pub fn canonical_json(&self) -> String {
        // Struct fields serialise in declaration order and maps are BTreeMaps: deterministic.
        serde_json::to_string(self).expect("a spec always serialises")
    }

    /// The first 16 hex digits of the sha256 of the canonical JSON.
    pub fn hash(&self) -> String {
        // Room for a typical spec (about 700 bytes) at once: no regrowing while writing.
        let mut json = Vec::with_capacity(1024);
        serde_json::to_writer(&mut json, self).expect("a spec always serialises");
        hex::encode(&Sha256::digest(&json)[..8])
    }
}

/// The service's ports, plus each `x-routes` port not published already, published on a host
/// port Docker chooses (`published: None`): the router reads the chosen port back from the
/// observation. Such a port never conflicts on a host, so routed services may update
/// start-first.
fn ports_with_routes(service: &Service) -> Vec<PortMapping> {
    let mut ports = service.ports.clone();
    for route in &service.routes {
        let published = ports.iter().any(|p| p.target == route.port && p.protocol == Protocol::Tcp);
        if !published {
            ports.push(PortMapping {
                target: route.port,
                published: None,
                host_ip: None,
                protocol: Protocol::Tcp,
            });
        }
    }
    ports
}

/// Compose's `restart`, else Swarm's `deploy.restart_policy`, else `always`: a replica that
/// dies is brought back by the engine first, and by gitfleet if the engine gives up.
fn restart_policy(service: &Service) -> String {
    if let Some(restart) = &service.restart {
        return restart.clone();
    }
    match &service.deploy.restart_policy {
        Some(policy) => match (policy.condition.as_str(), policy.max_attempts) {
            ("none", _) => "no".to_string(),
            ("on-failure", Some(n)) => format!("on-failure:{n}"),
            ("on-failure", None) => "on-failure".to_string(),
            _ => "always".to_string(),
        },
        None => "always".to_string(),
    }
}

/// The fields that differ between an old spec (as found in a label) and a new one, as
/// dotted paths: `image`, `environment.GREETING`, `files./run/secrets/db`. If the old spec
/// cannot be read, `["(unknown: the container has no readable spec label)"]`.
pub fn changed_fields(old_json: Option<&str>, new: &ContainerSpec) -> Vec<String> {
    let old: Option<Json> = old_json.and_then(|text| serde_json::from_str(text).ok());
    let Some(Json::Object(old)) = old else {
        return vec!["(unknown: the container has no readable spec label)".to_string()];
    };
    let Ok(Json::Object(new)) = serde_json::to_value(new) else { return Vec::new() };
    let mut fields = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a == b {
            continue;
        }
        match (a, b) {
            (Some(Json::Object(a)), Some(Json::Object(b))) if key != "limits" => {
                let inner: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                fields.extend(
                    inner
                        .into_iter()
                        .filter(|k| a.get(*k) != b.get(*k))
                        .map(|k| format!("{key}.{k}")),
                );
            }
            _ => fields.push(key.clone()),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "web:1".into(),
            environment: BTreeMap::from([("A".into(), "1".into())]),
            restart: "always".into(),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = spec();
        assert_eq!(a.hash(), spec().hash());
        assert_eq!(a.hash().len(), 16);
        let mut b = spec();
        b.environment.insert("A".into(), "2".into());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn hash_is_the_sha256_prefix_of_the_canonical_json() {
        // The value running containers carry: computing it differently must not change it.
        let a = spec();
        let full = crate::model::digest::sha256_hex(a.canonical_json().as_bytes());
        assert_eq!(a.hash(), full[..16]);
    }

    #[test]
    fn changed_fields_name_the_difference() {
        let old = spec().canonical_json();
        let mut new = spec();
        new.image = "web:2".into();
        new.environment.insert("B".into(), "x".into());
        assert_eq!(changed_fields(Some(&old), &new), vec!["environment.B", "image"]);
        assert_eq!(changed_fields(Some(&old), &spec()), Vec::<String>::new());
        assert_eq!(changed_fields(None, &new).len(), 1);
    }
}
