//! Compose keys gitfleet deliberately does not support, each with why and what to do instead.
//! They are reported by name (never silently ignored) and taken out before the schema check,
//! so the user reads the reason rather than a bare "unknown key".

use serde_json::Value as Json;

use super::finding::Finding;
use super::path::Path;

/// `(key, why, what to do)` for keys of a service.
const SERVICE_KEYS: &[(&str, &str, &str)] = &[
    (
        "build",
        "gitfleet deploys images and builds nothing on the hosts",
        "build and push the image in CI, then name it with `image:`",
    ),
    (
        "container_name",
        "gitfleet names containers itself (<app>-<service>-<replica>) so replicas can coexist",
        "remove it; reach the service by its name on the app's network",
    ),
    (
        "network_mode",
        "containers join the app's networks so services find each other by name",
        "use `networks:`",
    ),
    (
        "links",
        "links are a legacy Docker feature",
        "services on the same app network reach each other by service name",
    ),
    (
        "external_links",
        "links are a legacy Docker feature",
        "attach the service to an external network instead",
    ),
    (
        "volumes_from",
        "replicas may run on different hosts, where the other container is not",
        "share data through a named volume",
    ),
    ("scale", "replica counts belong in `deploy.replicas`", "use `deploy.replicas`"),
    (
        "profiles",
        "everything in the repository is deployed",
        "move optional services to their own app",
    ),
    (
        "extends",
        "each app file is self-contained",
        "use YAML anchors and `<<:` merge keys within the file",
    ),
    (
        "privileged",
        "gitfleet does not run privileged containers",
        "grant specific capabilities in a later version, or run it outside gitfleet",
    ),
    ("pid", "sharing the host's process namespace is not supported", "remove it"),
    ("ipc", "sharing IPC namespaces is not supported", "remove it"),
    (
        "devices",
        "host devices differ from host to host",
        "remove it, or pin the service with a placement constraint in a later version",
    ),
    ("cgroup_parent", "cgroup placement is the host's business", "remove it"),
    (
        "platform",
        "gitfleet places by host platform instead",
        "use `deploy.placement.constraints: [node.platform.arch == ...]`",
    ),
    ("dns", "DNS settings are not supported yet", "remove it"),
    ("cap_add", "capabilities are not supported yet", "remove it"),
    ("cap_drop", "capabilities are not supported yet", "remove it"),
    ("sysctls", "sysctls are not supported yet", "remove it"),
    ("ulimits", "ulimits are not supported yet", "remove it"),
    (
        "logging",
        "log drivers are not supported yet; containers use the host's default",
        "configure logging on the Docker daemon",
    ),
    ("security_opt", "security options are not supported yet", "remove it"),
    ("tty", "interactive settings are not supported", "remove it"),
    ("stdin_open", "interactive settings are not supported", "remove it"),
    ("init", "init is not supported yet", "remove it"),
    (
        "mem_limit",
        "the version 2 resource keys are not supported",
        "use `deploy.resources.limits.memory`",
    ),
    ("cpus", "the version 2 resource keys are not supported", "use `deploy.resources.limits.cpus`"),
    (
        "mem_reservation",
        "the version 2 resource keys are not supported",
        "use `deploy.resources.reservations.memory`",
    ),
    ("develop", "`develop` is for `docker compose watch` on a workstation", "remove it"),
    ("read_only", "read-only root filesystems are not supported yet", "remove it"),
    (
        "tmpfs",
        "the service-level `tmpfs` list is not supported",
        "use a long-syntax mount: `volumes: [{type: tmpfs, target: /path}]`",
    ),
    ("runtime", "container runtimes differ from host to host", "remove it"),
    ("annotations", "annotations are not supported yet", "use `labels`"),
    ("mac_address", "a fixed MAC address cannot be shared by replicas", "remove it"),
    ("dns_search", "DNS settings are not supported yet", "remove it"),
    ("dns_opt", "DNS settings are not supported yet", "remove it"),
    ("domainname", "domain names are not supported yet", "remove it"),
    ("group_add", "supplementary groups are not supported yet", "remove it"),
    ("shm_size", "shared memory sizes are not supported yet", "remove it"),
    ("oom_score_adj", "OOM settings are not supported yet", "remove it"),
    ("oom_kill_disable", "OOM settings are not supported yet", "remove it"),
    ("userns_mode", "user namespaces are the daemon's business", "remove it"),
    ("uts", "sharing the host's UTS namespace is not supported", "remove it"),
    ("isolation", "isolation technologies are Windows hosts' business", "remove it"),
    ("cpu_shares", "the version 2 resource keys are not supported", "use `deploy.resources`"),
    (
        "cpu_quota",
        "the version 2 resource keys are not supported",
        "use `deploy.resources.limits.cpus`",
    ),
    ("cpuset", "pinning CPUs differs from host to host", "remove it"),
    (
        "memswap_limit",
        "the version 2 resource keys are not supported",
        "use `deploy.resources.limits.memory`",
    ),
    ("mem_swappiness", "the version 2 resource keys are not supported", "remove it"),
    (
        "pids_limit",
        "the version 2 resource keys are not supported",
        "use `deploy.resources.limits.pids`",
    ),
    ("blkio_config", "block IO settings are not supported yet", "remove it"),
    ("storage_opt", "storage options are not supported yet", "remove it"),
    ("gpus", "GPUs are not supported yet", "remove it"),
    ("attach", "log attachment is `docker compose up`'s business", "remove it"),
];

/// `(key, why, what to do)` for top-level keys of an app file.
const TOP_LEVEL_KEYS: &[(&str, &str, &str)] = &[(
    "include",
    "each app file is self-contained, so the same commit always reads the same files",
    "copy the services into this file, or make the included project an app of its own",
)];

/// `(key, why, what to do)` for keys of a top-level config or secret.
const FILE_KEYS: &[(&str, &str, &str)] = &[
    (
        "external",
        "there is no Swarm to hold it; gitfleet delivers configs and secrets from the repository",
        "add the file under the app's folder and use `file:`",
    ),
    (
        "environment",
        "it would take the value from the environment of whoever deploys",
        "put the value in a file in the app's folder and use `file:`",
    ),
    ("template_driver", "templated configs are not supported", "commit the rendered file"),
    (
        "driver",
        "secret drivers are not supported",
        "use `file:` (age-encrypted files come with the controller)",
    ),
    ("labels", "labels on configs and secrets are not supported yet", "remove them"),
];

/// Reports and removes the unsupported keys of an app document, so the schema check that
/// follows does not report them a second time.
pub fn take_unsupported(file: &str, document: &mut Json) -> Vec<Finding> {
    let mut findings = Vec::new();
    take(file, &Path::root(), document, TOP_LEVEL_KEYS, &mut findings);
    let services = document.get_mut("services").and_then(Json::as_object_mut);
    for (name, service) in services.into_iter().flatten() {
        let path = Path::of(&["services", name]);
        take(file, &path, service, SERVICE_KEYS, &mut findings);
    }
    for section in ["configs", "secrets"] {
        let entries = document.get_mut(section).and_then(Json::as_object_mut);
        for (name, entry) in entries.into_iter().flatten() {
            let path = Path::of(&[section, name]);
            take(file, &path, entry, FILE_KEYS, &mut findings);
        }
    }
    findings
}

fn take(
    file: &str,
    path: &Path,
    object: &mut Json,
    table: &[(&str, &str, &str)],
    out: &mut Vec<Finding>,
) {
    let Some(object) = object.as_object_mut() else { return };
    for (key, why, instead) in table {
        if object.remove(*key).is_some() {
            out.push(
                Finding::new(
                    file,
                    path.key(*key),
                    "unsupported-key",
                    format!("`{key}` is not supported: {why}"),
                )
                .on_key()
                .hint(*instead),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_is_named_with_why_and_removed() {
        let mut doc = serde_json::json!({"services": {"web": {"build": ".", "image": "x"}}});
        let findings = take_unsupported("apps/a/compose.yaml", &mut doc);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, Path::of(&["services", "web", "build"]));
        assert!(findings[0].message.contains("builds nothing"));
        assert!(doc["services"]["web"].get("build").is_none());
    }

    #[test]
    fn external_secrets_are_named() {
        let mut doc = serde_json::json!({"services": {}, "secrets": {"s": {"external": true}}});
        let findings = take_unsupported("apps/a/compose.yaml", &mut doc);
        assert_eq!(findings[0].path, Path::of(&["secrets", "s", "external"]));
    }
}
