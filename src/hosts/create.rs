//! Creating a replica's container from its [`ContainerSpec`]: every field mapped onto the
//! Engine API, its further networks connected and its configs and secrets written into it,
//! all before it first starts ([`create_container`]).
//!
//! # The mapping (API 1.41)
//!
//! | spec | Engine API |
//! | --- | --- |
//! | `image`, `command`, `entrypoint` | `Image`, `Cmd`, `Entrypoint` (`None`: the image's) |
//! | `environment` | `Env`, `K=V` |
//! | `expose` | `ExposedPorts` only |
//! | `ports` | `ExposedPorts` and `HostConfig.PortBindings`, keyed `80/tcp`; `HostIp` as given (`""`: all addresses), `HostPort` `""` when unpublished (Docker picks one) |
//! | `networks` | the first by name: `HostConfig.NetworkMode` and `NetworkingConfig.EndpointsConfig` with its aliases; the others looked up, then connected after create, before start (API 1.41 takes one network at create, and lets a created container "connect" to a network that does not exist, failing only at start) |
//! | `mounts` | `HostConfig.Mounts`: `volume` / `bind` / `tmpfs`; `anonymous` is a volume mount without a source. A bind's host path must exist (the Mounts API does not create it) |
//! | labels (argument) | `Labels` |
//! | `healthcheck` | `Healthcheck`: `Test`, `Interval` / `Timeout` / `StartPeriod` in nanoseconds, `Retries` |
//! | `restart` | `HostConfig.RestartPolicy`: `no`, `always`, `unless-stopped`, `on-failure[:N]` (`MaximumRetryCount` N) |
//! | `user`, `working_dir`, `hostname`, `stop_signal` | `User`, `WorkingDir`, `Hostname`, `StopSignal` |
//! | `extra_hosts` | `HostConfig.ExtraHosts`, `name:ip` |
//! | `stop_grace_period_ms` | `StopTimeout`, whole seconds rounded up |
//! | `limits` | `HostConfig.NanoCpus` (milli-CPUs × 10⁶), `Memory` (bytes), `PidsLimit` |
//! | `files` (with [`FileToDeliver`]) | a tar archive uploaded to `/` (`PUT /containers/{id}/archive`); for a Windows spec (`os: windows`, targets `C:\...`) uploaded to `C:\`, owner `0:0` and the default mode whatever was asked (Windows has neither) |
//!
//! # Guarantees
//!
//! * All or nothing: if connecting a network or writing the files fails, the new container is
//!   removed again (force, volumes kept), so no half-made container carries a valid spec hash.
//! * Secret and config contents go only into the archive's body: never into a log line, an
//!   error or a label. The body is streamed, so even bollard's request tracing shows nothing.
//!
//! # Caveats
//!
//! * Config and secret files live in the container's writable layer (Docker has no tmpfs to
//!   write into before a container starts); they go when the container is removed. A file
//!   under a mount point is hidden by the mount.
//! * Missing parent directories of a file are created by Docker, `0755` and owned by root.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkConnectRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectNetworkOptions, UploadToContainerOptions,
};

use super::archive::{TarFile, tar};
use super::error::HostError;
use super::lifecycle::remove_container;
use super::objects::to_hash_map;
use crate::diff::spec::ContainerSpec;
use crate::model::Protocol;

const CREATING: &str = "creating container";

/// A config or secret to write into a container before it starts.
///
/// The apply engine builds these from the spec's `files` and the model's contents. `Debug`
/// shows the content's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct FileToDeliver {
    /// Absolute path inside the container: `/app.conf`, `/run/secrets/db_password`.
    pub target: String,
    pub content: Arc<Vec<u8>>,
    /// Numeric user id of the file's owner; `None` is root (`0`).
    pub uid: Option<String>,
    /// Numeric group id; `None` is `0`.
    pub gid: Option<String>,
    /// Permission bits; `None` is `0o444`, Compose's and Swarm's default for configs and
    /// secrets alike.
    pub mode: Option<u32>,
}

impl std::fmt::Debug for FileToDeliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileToDeliver")
            .field("target", &self.target)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &self.mode.map(|m| format!("{m:o}")))
            .finish()
    }
}

/// The mode a delivered file gets when [`FileToDeliver::mode`] is `None`.
pub const DEFAULT_FILE_MODE: u32 = 0o444;

/// Creates the container `name` from `spec` with exactly `labels` (gitfleet's labels and the
/// service's own, as [`crate::diff::labels::for_container`] makes them), connects its further
/// networks and writes `files` into it. The container is created, not started; the answer is
/// its id.
///
/// # Errors
///
/// [`HostError::Invalid`] when the spec cannot be expressed (an unknown restart policy, a
/// relative or duplicate file target, a non-numeric uid / gid), before anything is sent;
/// [`HostError::Refused`] naming the container (and the network, for a connect) with Docker's
/// message: a name already in use (409), an image that is not on the host (404), a bind
/// source that does not exist; [`HostError::Interrupted`] when the connection breaks. After a
/// failure nothing of the container is left (see the module's guarantees).
pub async fn create_container(
    docker: &Docker,
    name: &str,
    spec: &ContainerSpec,
    labels: &BTreeMap<String, String>,
    files: &[FileToDeliver],
) -> Result<String, HostError> {
    let (body, more_networks) = container_config(name, spec, labels)?;
    let archive = if files.is_empty() { None } else { Some(file_archive(name, files)?) };
    if let Some((root, _)) = &archive {
        let windows = spec.os.as_deref() == Some(crate::model::windows::WINDOWS);
        if windows != (*root == WINDOWS_ROOT) {
            return Err(HostError::Invalid {
                operation: "writing configs and secrets into container",
                object: name.to_string(),
                reason: format!(
                    "the files' targets are {} paths but the spec is for {}",
                    if windows { "Linux" } else { "Windows" },
                    if windows { "Windows" } else { "Linux" }
                ),
            });
        }
    }
    let options = CreateContainerOptions { name: Some(name.to_string()), ..Default::default() };
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| HostError::about(CREATING, name, e))?;
    let id = created.id;
    for warning in created.warnings.iter().filter(|w| !w.trim().is_empty()) {
        tracing::warn!(container = %name, warning = %warning.trim(), "the daemon warned at create");
    }
    if let Err(err) = finish(docker, name, &id, more_networks, archive).await {
        if let Err(cleanup) = remove_container(docker, &id).await {
            tracing::warn!(
                container = %name, %id, error = %cleanup,
                "could not remove the half-made container"
            );
        }
        return Err(err);
    }
    Ok(id)
}

/// A network to join and the container's aliases on it.
type NetworkAliases = (String, Vec<String>);

/// What cannot be said at create: further networks, then the files.
async fn finish(
    docker: &Docker,
    name: &str,
    id: &str,
    networks: Vec<NetworkAliases>,
    archive: Option<(&'static str, Vec<u8>)>,
) -> Result<(), HostError> {
    for (network, aliases) in networks {
        let error = |e| HostError::about("connecting", format!("{name} to network {network}"), e);
        // Docker 20.10 lets a created container "connect" to a network that does not exist
        // (it fails only at start), so look first.
        docker.inspect_network(&network, None::<InspectNetworkOptions>).await.map_err(error)?;
        let request = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(aliases),
                ..Default::default()
            }),
        };
        docker.connect_network(&network, request).await.map_err(error)?;
    }
    if let Some((root, archive)) = archive {
        let options = UploadToContainerOptions {
            path: root.to_string(),
            // A file where the image has a directory is an error, not a silent replacement.
            no_overwrite_dir_non_dir: Some("true".to_string()),
            ..Default::default()
        };
        // A one-item stream rather than a full body: bollard traces full bodies verbatim.
        let body = bollard::body_stream(futures_util::stream::once(async move { archive.into() }));
        docker
            .upload_to_container(id, Some(options), body)
            .await
            .map_err(|e| HostError::about("writing configs and secrets into container", name, e))?;
    }
    Ok(())
}

/// The create request for `spec`, and the networks to connect after create (name, aliases).
/// Pure: every mapping decision is here (see the module's table).
pub(crate) fn container_config(
    name: &str,
    spec: &ContainerSpec,
    labels: &BTreeMap<String, String>,
) -> Result<(ContainerCreateBody, Vec<NetworkAliases>), HostError> {
    let invalid = |reason: String| HostError::Invalid {
        operation: CREATING,
        object: name.to_string(),
        reason,
    };

    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let protocol = match port.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let key = format!("{}/{protocol}", port.target);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(
            PortBinding {
                host_ip: Some(port.host_ip.clone().unwrap_or_default()),
                host_port: Some(port.published.map(|p| p.to_string()).unwrap_or_default()),
            },
        );
    }

    let mut networks = spec.networks.iter();
    let first = networks.next();
    let more_networks: Vec<NetworkAliases> =
        networks.map(|(network, aliases)| (network.clone(), aliases.clone())).collect();
    let networking_config = first.map(|(network, aliases)| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.clone(),
            EndpointSettings { aliases: Some(aliases.clone()), ..Default::default() },
        )])),
    });

    for port in &spec.expose {
        if !exposed.contains(port) {
            exposed.push(port.clone());
        }
    }

    let mounts = spec
        .mounts
        .iter()
        .map(|m| {
            let (typ, source) = match m.kind.as_str() {
                "volume" => (MountType::VOLUME, Some(m.source.clone())),
                "bind" => (MountType::BIND, Some(m.source.clone())),
                "anonymous" => (MountType::VOLUME, None),
                "tmpfs" => (MountType::TMPFS, None),
                other => {
                    return Err(invalid(format!(
                        "mount {}: unknown kind {other:?} (volume, bind, anonymous or tmpfs)",
                        m.target
                    )));
                }
            };
            Ok(Mount {
                target: Some(m.target.clone()),
                source,
                typ: Some(typ),
                read_only: Some(m.read_only),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let restart_policy = restart_policy(&spec.restart).map_err(invalid)?;
    let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: h.interval_ms.map(ms_to_ns),
        timeout: h.timeout_ms.map(ms_to_ns),
        retries: h.retries.map(i64::from),
        start_period: h.start_period_ms.map(ms_to_ns),
        ..Default::default()
    });

    let host_config = HostConfig {
        network_mode: first.map(|(network, _)| network.clone()),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        restart_policy: Some(restart_policy),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
        nano_cpus: spec.limits.millicpus.map(|m| saturating_i64(m.saturating_mul(1_000_000))),
        memory: spec.limits.memory_bytes.map(saturating_i64),
        pids_limit: spec.limits.pids,
        ..Default::default()
    };

    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        labels: Some(to_hash_map(labels)),
        healthcheck,
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec.stop_grace_period_ms.map(|ms| saturating_i64(ms.div_ceil(1000))),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    };
    Ok((body, more_networks))
}

/// `no`, `always`, `unless-stopped`, `on-failure`, `on-failure:N`.
fn restart_policy(text: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match text.split_once(':') {
        Some(("on-failure", n)) => {
            let n: i64 = n.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                format!("restart policy {text:?}: the retry count must be a whole number")
            })?;
            (RestartPolicyNameEnum::ON_FAILURE, Some(n))
        }
        Some(_) => return Err(unknown_restart(text)),
        None => match text {
            "no" | "" => (RestartPolicyNameEnum::NO, None),
            "always" => (RestartPolicyNameEnum::ALWAYS, None),
            "unless-stopped" => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
            "on-failure" => (RestartPolicyNameEnum::ON_FAILURE, None),
            _ => return Err(unknown_restart(text)),
        },
    };
    Ok(RestartPolicy { name: Some(name), maximum_retry_count: count })
}

fn unknown_restart(text: &str) -> String {
    format!("unknown restart policy {text:?} (no, always, unless-stopped, on-failure[:N])")
}

fn ms_to_ns(ms: u64) -> i64 {
    saturating_i64(ms.saturating_mul(1_000_000))
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Where an archive of Windows targets (`C:\...`) is extracted.
const WINDOWS_ROOT: &str = "C:\\";

/// A target's path inside the archive and the directory the archive goes to: `/run/x` →
/// (`run/x`, `/`); `C:\ProgramData\x` → (`ProgramData/x`, `C:\`).
fn archive_path(target: &str) -> Option<(String, &'static str)> {
    if let Some(relative) = target.strip_prefix('/') {
        return Some((relative.to_string(), "/"));
    }
    let rest = target.strip_prefix("C:").or_else(|| target.strip_prefix("c:"))?;
    let rest = rest.strip_prefix(['\\', '/'])?;
    Some((rest.replace('\\', "/"), WINDOWS_ROOT))
}

/// The tar archive of `files` and the directory it is extracted to, checked: absolute targets
/// without `..`, each once, all Linux paths or all on Windows' `C:` drive, numeric owners.
/// Windows targets get owner `0:0` and the default mode (Windows has neither). Errors name the
/// target, never the content.
fn file_archive(name: &str, files: &[FileToDeliver]) -> Result<(&'static str, Vec<u8>), HostError> {
    let invalid = |target: &str, reason: &str| HostError::Invalid {
        operation: "writing configs and secrets into container",
        object: name.to_string(),
        reason: format!("{target}: {reason}"),
    };
    let mtime = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut seen = std::collections::BTreeSet::new();
    let mut entries = Vec::with_capacity(files.len());
    let mut relatives = Vec::with_capacity(files.len());
    let mut root = None;
    for file in files {
        let target = file.target.as_str();
        let Some((relative, this_root)) = archive_path(target) else {
            return Err(invalid(
                target,
                "the target must be an absolute path (/..., or C:\\... for Windows)",
            ));
        };
        if *root.get_or_insert(this_root) != this_root {
            return Err(invalid(target, "Linux and Windows targets cannot be mixed"));
        }
        relatives.push(relative);
    }
    let windows = root == Some(WINDOWS_ROOT);
    for (file, relative) in files.iter().zip(&relatives) {
        let target = file.target.as_str();
        let relative = relative.trim_end_matches('/');
        if relative.is_empty()
            || relative.split('/').any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(invalid(target, "the target must name a file, without `.`, `..` or `//`"));
        }
        if !seen.insert(relative) {
            return Err(invalid(target, "two files have this target"));
        }
        let id = |value: &Option<String>, what: &str| match value.as_deref() {
            None | Some("") => Ok(0),
            Some(text) => text.parse::<u64>().map_err(|_| {
                invalid(
                    target,
                    &format!(
                        "the {what} must be numeric (got {text:?}): names cannot be looked up \
                         before the container starts"
                    ),
                )
            }),
        };
        let (mode, uid, gid) = if windows {
            (DEFAULT_FILE_MODE, 0, 0)
        } else {
            (file.mode.unwrap_or(DEFAULT_FILE_MODE), id(&file.uid, "uid")?, id(&file.gid, "gid")?)
        };
        entries.push(TarFile { path: relative, mode, uid, gid, mtime, content: &file.content });
    }
    Ok((root.unwrap_or("/"), tar(&entries)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::spec::SpecMount;
    use crate::model::{Healthcheck, PortMapping, ResourceAmounts};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "gitfleet/web:1".into(),
            restart: "always".into(),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn restart_policies_map_to_name_and_count() {
        let p = restart_policy("on-failure:5").unwrap();
        assert_eq!(p.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(p.maximum_retry_count, Some(5));
        assert_eq!(restart_policy("on-failure").unwrap().maximum_retry_count, None);
        assert_eq!(restart_policy("no").unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(
            restart_policy("unless-stopped").unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        assert!(restart_policy("sometimes").unwrap_err().contains("unknown restart policy"));
        assert!(restart_policy("always:3").is_err());
        assert!(restart_policy("on-failure:x").is_err());
    }

    #[test]
    fn ports_share_a_key_per_target_and_unpublished_ports_let_docker_pick() {
        let mut s = spec();
        let port = |target, published, host_ip: Option<&str>, protocol| PortMapping {
            target,
            published,
            host_ip: host_ip.map(str::to_string),
            protocol,
        };
        s.ports = vec![
            port(80, Some(8080), None, Protocol::Tcp),
            port(80, None, Some("127.0.0.1"), Protocol::Tcp),
            port(53, Some(5353), None, Protocol::Udp),
        ];
        let (body, _) = container_config("c", &s, &BTreeMap::new()).unwrap();
        let mut exposed = body.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, ["53/udp", "80/tcp"]);
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let tcp = bindings["80/tcp"].as_ref().unwrap();
        assert_eq!(tcp[0].host_ip.as_deref(), Some(""));
        assert_eq!(tcp[0].host_port.as_deref(), Some("8080"));
        assert_eq!(tcp[1].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(tcp[1].host_port.as_deref(), Some(""));
        assert_eq!(bindings["53/udp"].as_ref().unwrap()[0].host_port.as_deref(), Some("5353"));
    }

    #[test]
    fn scalars_convert_units() {
        let mut s = spec();
        s.stop_grace_period_ms = Some(2_001);
        s.limits =
            ResourceAmounts { millicpus: Some(250), memory_bytes: Some(1 << 26), pids: Some(64) };
        s.healthcheck = Some(Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval_ms: Some(1_500),
            timeout_ms: Some(250),
            retries: Some(4),
            start_period_ms: None,
        });
        let (body, _) = container_config("c", &s, &BTreeMap::new()).unwrap();
        assert_eq!(body.stop_timeout, Some(3));
        let health = body.healthcheck.unwrap();
        assert_eq!(health.interval, Some(1_500_000_000));
        assert_eq!(health.timeout, Some(250_000_000));
        assert_eq!(health.retries, Some(4));
        assert_eq!(health.start_period, None);
        let host = body.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.memory, Some(1 << 26));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.network_mode, None);
        assert_eq!(body.env, Some(Vec::new()));
    }

    #[test]
    fn the_first_network_goes_in_the_create_and_the_rest_after() {
        let mut s = spec();
        s.networks = BTreeMap::from([
            ("b_net".into(), vec!["web".into()]),
            ("a_net".into(), vec!["web".into(), "www".into()]),
        ]);
        let (body, more) = container_config("c", &s, &BTreeMap::new()).unwrap();
        assert_eq!(body.host_config.unwrap().network_mode.as_deref(), Some("a_net"));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints["a_net"].aliases, Some(vec!["web".to_string(), "www".to_string()]));
        assert_eq!(more, vec![("b_net".to_string(), vec!["web".to_string()])]);
    }

    #[test]
    fn anonymous_mounts_are_volumes_without_a_source() {
        let mut s = spec();
        let mount = |kind: &str, source: &str, target: &str| SpecMount {
            kind: kind.into(),
            source: source.into(),
            target: target.into(),
            read_only: false,
        };
        s.mounts = vec![mount("anonymous", "", "/cache"), mount("tmpfs", "", "/t")];
        let (body, _) = container_config("c", &s, &BTreeMap::new()).unwrap();
        let mounts = body.host_config.unwrap().mounts.unwrap();
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source, None);
        assert_eq!(mounts[1].typ, Some(MountType::TMPFS));
        s.mounts = vec![mount("nfs", "x", "/y")];
        assert!(container_config("c", &s, &BTreeMap::new()).is_err());
    }

    #[test]
    fn file_errors_name_the_target_and_never_the_content() {
        let file = |target: &str, uid: Option<&str>| FileToDeliver {
            target: target.into(),
            content: Arc::new(b"hunter2-secret".to_vec()),
            uid: uid.map(str::to_string),
            gid: None,
            mode: Some(0o400),
        };
        for (files, expected) in [
            (vec![file("run/secrets/db", None)], "absolute"),
            (vec![file("/run/../etc/passwd", None)], "`..`"),
            (vec![file("/a", None), file("/a", None)], "two files"),
            (vec![file("/run/secrets/db", Some("postgres"))], "numeric"),
        ] {
            let err = file_archive("shop-db-1", &files).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(expected) && text.contains("shop-db-1"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!format!("{err:?}").contains("hunter2"));
        }
        assert!(!format!("{:?}", file("/x", None)).contains("hunter2"));
        assert!(file_archive("c", &[file("/run/secrets/db", Some("70"))]).is_ok());
    }

    #[test]
    fn windows_targets_go_under_c_without_owner_or_mode() {
        let file = |target: &str| FileToDeliver {
            target: target.into(),
            content: Arc::new(b"x".to_vec()),
            uid: Some("1000".into()),
            gid: Some("1000".into()),
            mode: Some(0o400),
        };
        let (root, archive) =
            file_archive("c", &[file(r"C:\ProgramData\Docker\secrets\db"), file(r"C:\web.config")])
                .unwrap();
        assert_eq!(root, r"C:\");
        // The first header: path, mode, uid, gid as ustar writes them.
        assert_eq!(&archive[..30], b"ProgramData/Docker/secrets/db\0");
        assert_eq!(&archive[100..107], b"0000444");
        assert_eq!(&archive[108..115], b"0000000");
        assert_eq!(&archive[116..123], b"0000000");
        let mixed = file_archive("c", &[file(r"C:\a"), file("/b")]).unwrap_err().to_string();
        assert!(mixed.contains("cannot be mixed"), "{mixed}");
        assert!(file_archive("c", &[file(r"D:\a")]).is_err());
        let (root, _) = file_archive("c", &[file("/run/secrets/db")]).unwrap();
        assert_eq!(root, "/");
    }
}
