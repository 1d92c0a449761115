//! Folding one schema-valid app document (Compose's shape) into the normalised [`App`]:
//! short and long syntaxes into one form, units parsed, env files and config / secret files
//! read from the source tree. Problems found on the way are findings with their YAML path.
//! `raw` holds the serde shapes, `syntax` the string syntaxes (ports, constraints, env
//! files).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::encryption::{self, DecryptFailure, Identities};
use super::finding::Findings;
use super::limits::{Limits, limit_hint, quoted};
use super::path::Path;
use super::source::{SourceEntry, SourceTree};
use super::types::*;
use super::units::{parse_bytes, parse_duration_ms, parse_millicpus};

mod raw;
mod syntax;

pub use syntax::parse_constraint;

use raw::*;
use syntax::*;

/// Folds `document` (schema-valid) of app `name` into an [`App`]; problems go to `findings`.
///
/// Secret files that are age-encrypted (see [`encryption::is_encrypted`]) are decrypted with
/// `identities`; the secret's content (and so its digest) is the plaintext.
pub fn normalise(
    name: &str,
    document: &Json,
    tree: &SourceTree,
    identities: &Identities,
    limits: &Limits,
    findings: &mut Findings<'_>,
) -> App {
    let raw: RawApp = match serde_json::from_value(document.clone()) {
        Ok(raw) => raw,
        Err(e) => {
            // The schema should have caught this; say so rather than hide it.
            findings.add(
                Path::root(),
                "schema",
                format!("the file does not have the expected shape: {e}"),
            );
            RawApp::default()
        }
    };
    let folder = findings.file.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
    let mut app = App {
        name: name.to_string(),
        file: findings.file.to_string(),
        services: BTreeMap::new(),
        networks: objects(name, &raw.networks, |o, docker_name| NetworkDef {
            docker_name,
            external: o.external,
            driver: o.driver.clone(),
            internal: o.internal,
            labels: labels(&o.labels),
        }),
        volumes: objects(name, &raw.volumes, |o, docker_name| VolumeDef {
            docker_name,
            external: o.external,
            driver: o.driver.clone(),
            labels: labels(&o.labels),
        }),
        configs: file_defs("configs", &raw.configs, &folder, tree, None, limits, findings),
        secrets: file_defs(
            "secrets",
            &raw.secrets,
            &folder,
            tree,
            Some(identities),
            limits,
            findings,
        ),
    };
    for (key, network) in &app.networks {
        reserved_labels(&Path::of(&["networks", key]), &network.labels, findings);
    }
    for (key, volume) in &app.volumes {
        reserved_labels(&Path::of(&["volumes", key]), &volume.labels, findings);
    }
    for (service_name, service) in &raw.services {
        let path = Path::of(&["services", service_name]);
        let service = ServiceBuilder {
            path: path.clone(),
            folder: &folder,
            tree,
            limits,
            findings: &mut *findings,
        }
        .build(service_name, service);
        reserved_labels(&path, &service.labels, findings);
        app.services.insert(service_name.clone(), service);
    }
    let uses_default = app.services.values().any(|s| s.networks.contains_key(DEFAULT_NETWORK));
    if uses_default && !app.networks.contains_key(DEFAULT_NETWORK) {
        app.networks.insert(
            DEFAULT_NETWORK.to_string(),
            NetworkDef {
                docker_name: format!("{name}_{DEFAULT_NETWORK}"),
                external: false,
                driver: None,
                internal: false,
                labels: BTreeMap::new(),
            },
        );
    }
    app
}

fn objects<T>(
    app: &str,
    raw: &BTreeMap<String, Option<RawObject>>,
    make: impl Fn(&RawObject, String) -> T,
) -> BTreeMap<String, T> {
    let empty = RawObject::default();
    raw.iter()
        .map(|(key, object)| {
            let object = object.as_ref().unwrap_or(&empty);
            let docker_name = match (&object.name, object.external) {
                (Some(name), _) => name.clone(),
                (None, true) => key.clone(),
                (None, false) => format!("{app}_{key}"),
            };
            (key.clone(), make(object, docker_name))
        })
        .collect()
}

/// Labels under `io.gitfleet.` are gitfleet's own (fleet, app, spec hash, ...): a model that
/// sets one is refused, since it could make gitfleet mistake or lose track of its objects.
fn reserved_labels(owner: &Path, labels: &BTreeMap<String, String>, findings: &mut Findings<'_>) {
    for key in labels.keys() {
        if key == "io.gitfleet" || key.starts_with("io.gitfleet.") {
            findings
                .add(
                    owner.key("labels"),
                    "reserved-label",
                    format!("the label {} is reserved for gitfleet's own use", quoted(key)),
                )
                .with_hint("remove it, or name it under your own prefix (com.example.…)");
        }
    }
}

fn labels(raw: &Option<ListOrDict>) -> BTreeMap<String, String> {
    raw.as_ref()
        .map(|l| l.entries().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
        .unwrap_or_default()
}

/// The configs or secrets of one app. `identities` is `Some` for secrets: encrypted secret
/// files are decrypted with them. Configs are never decrypted, whatever their name.
fn file_defs(
    section: &str,
    raw: &BTreeMap<String, RawFileDef>,
    folder: &str,
    tree: &SourceTree,
    identities: Option<&Identities>,
    limits: &Limits,
    findings: &mut Findings<'_>,
) -> BTreeMap<String, FileDef> {
    let mut defs = BTreeMap::new();
    for (name, def) in raw {
        let path = Path::of(&[section, name]);
        let (repo_path, content) = match (&def.file, &def.content) {
            (Some(file), None) => {
                // On failure the entry stays declared (the load fails anyway), so references
                // to it do not add a second, misleading error.
                match read_app_file(folder, file, tree, limits, &path.key("file"), findings) {
                    None => (None, Default::default()),
                    Some((repo_path, bytes)) => match identities {
                        Some(identities) if encryption::is_encrypted(&repo_path, &bytes) => {
                            match encryption::decrypt(&bytes, identities) {
                                Ok(plaintext) => (Some(repo_path), std::sync::Arc::new(plaintext)),
                                Err(failure) => {
                                    let (message, hint) =
                                        decrypt_problem(name, &repo_path, &failure, identities);
                                    findings
                                        .add(path.key("file"), "secret-decrypt", message)
                                        .with_hint(hint);
                                    (Some(repo_path), Default::default())
                                }
                            }
                        }
                        _ => (Some(repo_path), bytes),
                    },
                }
            }
            (None, Some(content)) => (None, std::sync::Arc::new(content.clone().into_bytes())),
            _ => {
                findings
                    .add(
                        path,
                        "invalid-value",
                        format!(
                            "{section} entry `{name}` needs exactly one of `file` or `content`"
                        ),
                    )
                    .with_hint("name a file in the app's folder with `file: ./name`");
                continue;
            }
        };
        let digest = super::digest::sha256_hex(&content);
        defs.insert(name.clone(), FileDef { path: repo_path, digest, content });
    }
    defs
}

/// What to say when secret `name` in `repo_path` does not decrypt: the message, and a hint
/// naming the recipients gitfleet holds (public keys, safe to show).
fn decrypt_problem(
    name: &str,
    repo_path: &str,
    failure: &DecryptFailure,
    identities: &Identities,
) -> (String, String) {
    let recipients = identities.recipients();
    let message = format!("secret `{name}`: cannot decrypt {repo_path}: {failure}");
    let encrypt = match recipients.as_slice() {
        [] => format!("age -r <gitfleet's recipient> -o {repo_path} PLAINTEXT_FILE"),
        [only] => format!("age -r {only} -o {repo_path} PLAINTEXT_FILE"),
        several => {
            let flags: Vec<String> = several.iter().map(|r| format!("-r {r}")).collect();
            format!("age {} -o {repo_path} PLAINTEXT_FILE", flags.join(" "))
        }
    };
    let held = if recipients.is_empty() {
        String::new()
    } else {
        format!(" (gitfleet holds the identities of {})", recipients.join(", "))
    };
    let hint = match failure {
        DecryptFailure::NoIdentity => format!(
            "give gitfleet its age identity file (--age-identity FILE or GITFLEET_AGE_IDENTITY),              and encrypt the secret to that identity's recipient: {encrypt}"
        ),
        DecryptFailure::NoMatchingIdentity => {
            format!("encrypt it to the recipient of gitfleet's identity: {encrypt}{held}")
        }
        DecryptFailure::Passphrase => format!(
            "gitfleet cannot type a passphrase; encrypt it to the recipient of gitfleet's \
             identity instead: {encrypt}{held}"
        ),
        DecryptFailure::Corrupt(_) => {
            format!("encrypt the secret again and commit the result: {encrypt}{held}")
        }
    };
    (message, hint)
}

/// Reads `relative` (as written in the app file) from the app's folder in the tree. Paths
/// that leave the folder (`..`, absolute) or go through a symbolic link are refused.
fn read_app_file(
    folder: &str,
    relative: &str,
    tree: &SourceTree,
    limits: &Limits,
    path: &Path,
    findings: &mut Findings<'_>,
) -> Option<(String, std::sync::Arc<Vec<u8>>)> {
    let hint = format!("keep the file inside {folder}/ and name it relative to it, like ./file");
    if relative.starts_with('/') {
        findings
            .add(path.clone(), "path-escape", format!("{relative:?} is an absolute path"))
            .with_hint(hint);
        return None;
    }
    let mut parts: Vec<&str> = folder.split('/').collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                findings
                    .add(
                        path.clone(),
                        "path-escape",
                        format!("{relative:?} leaves the app's folder with `..`"),
                    )
                    .with_hint(hint);
                return None;
            }
            part => parts.push(part),
        }
    }
    // Every prefix must be a plain directory, and the file itself a plain file.
    for end in folder.split('/').count() + 1..=parts.len() {
        let prefix = parts[..end].join("/");
        if let Some(SourceEntry::Symlink(target)) = tree.get(&prefix) {
            findings
                .add(path.clone(), "path-escape", format!("{prefix} is a symbolic link (to {target:?}); gitfleet does not follow links"))
                .with_hint("commit the file itself instead of a link to it");
            return None;
        }
    }
    let repo_path = parts.join("/");
    match tree.get(&repo_path) {
        Some(SourceEntry::File(bytes)) if bytes.len() as u64 > limits.max_file_size => {
            findings
                .add(
                    path.clone(),
                    "limit",
                    format!(
                        "{repo_path} is {} bytes, more than the limit of {} bytes (limit `max_file_size`)",
                        bytes.len(),
                        limits.max_file_size
                    ),
                )
                .with_hint(limit_hint("max_file_size"));
            None
        }
        Some(SourceEntry::File(bytes)) => Some((repo_path, bytes.clone())),
        Some(SourceEntry::Unreadable(what)) => {
            findings
                .add(path.clone(), "not-a-file", format!("{repo_path} is {what}, not a file"))
                .with_hint("commit a plain file at this path");
            None
        }
        _ => {
            findings
                .add(
                    path.clone(),
                    "missing-file",
                    format!("{repo_path} does not exist in this revision"),
                )
                .with_hint("commit the file, or fix the path (it is relative to the app's folder)");
            None
        }
    }
}

struct ServiceBuilder<'a, 'f> {
    path: Path,
    folder: &'a str,
    tree: &'a SourceTree,
    limits: &'a Limits,
    findings: &'a mut Findings<'f>,
}

impl ServiceBuilder<'_, '_> {
    fn build(mut self, name: &str, raw: &RawService) -> Service {
        let path = self.path.clone();
        Service {
            name: name.to_string(),
            image: raw.image.clone(),
            command: raw.command.as_ref().and_then(|c| self.words(c, &path.key("command"))),
            entrypoint: raw
                .entrypoint
                .as_ref()
                .and_then(|c| self.words(c, &path.key("entrypoint"))),
            environment: self.environment(raw),
            ports: self.ports(&raw.ports),
            expose: self.expose(&raw.expose),
            networks: match &raw.networks {
                None => BTreeMap::from([(DEFAULT_NETWORK.to_string(), ServiceNetwork::default())]),
                Some(RawServiceNetworks::List(names)) => {
                    names.iter().map(|n| (n.clone(), ServiceNetwork::default())).collect()
                }
                Some(RawServiceNetworks::Map(map)) => map
                    .iter()
                    .map(|(n, v)| {
                        let aliases = v.as_ref().map(|v| v.aliases.clone()).unwrap_or_default();
                        (n.clone(), ServiceNetwork { aliases })
                    })
                    .collect(),
            },
            mounts: self.mounts(&raw.volumes),
            configs: self.file_mounts(&raw.configs, "configs", "/"),
            secrets: self.file_mounts(&raw.secrets, "secrets", "/run/secrets/"),
            labels: labels(&raw.labels),
            healthcheck: raw.healthcheck.as_ref().and_then(|h| self.healthcheck(h)),
            depends_on: match &raw.depends_on {
                None => BTreeMap::new(),
                Some(RawDependsOn::List(names)) => names
                    .iter()
                    .map(|n| {
                        (
                            n.clone(),
                            Dependency {
                                condition: DependencyCondition::ServiceStarted,
                                required: true,
                            },
                        )
                    })
                    .collect(),
                Some(RawDependsOn::Map(map)) => map
                    .iter()
                    .map(|(n, d)| {
                        let condition = d.condition.unwrap_or(DependencyCondition::ServiceStarted);
                        (n.clone(), Dependency { condition, required: d.required })
                    })
                    .collect(),
            },
            restart: raw.restart.clone(),
            user: raw.user.clone(),
            working_dir: raw.working_dir.clone(),
            stop_grace_period_ms: self
                .duration(&raw.stop_grace_period, &path.key("stop_grace_period")),
            stop_signal: raw.stop_signal.clone(),
            hostname: raw.hostname.clone(),
            extra_hosts: raw.extra_hosts.as_ref().map(|e| e.entries()).unwrap_or_default(),
            pull_policy: raw.pull_policy.as_deref().map(|p| match p {
                "always" => PullPolicy::Always,
                "never" => PullPolicy::Never,
                _ => PullPolicy::Missing,
            }),
            deploy: self.deploy(&raw.deploy),
            routes: raw
                .routes
                .iter()
                .map(|r| Route {
                    host: r.host.to_ascii_lowercase(),
                    path_prefix: r.path_prefix.clone().unwrap_or_else(|| "/".to_string()),
                    port: r.port,
                })
                .collect(),
        }
    }

    fn words(&mut self, raw: &StringOrList, path: &Path) -> Option<Vec<String>> {
        match raw {
            StringOrList::Many(words) => Some(words.clone()),
            StringOrList::One(line) => match shell_words::split(line) {
                Ok(words) => Some(words),
                Err(e) => {
                    self.findings
                        .add(
                            path.clone(),
                            "invalid-value",
                            format!("cannot split {line:?} into words: {e}"),
                        )
                        .with_hint("check the quotes, or write the command as a list");
                    None
                }
            },
        }
    }

    fn duration(&mut self, raw: &Option<String>, path: &Path) -> Option<u64> {
        let text = raw.as_ref()?;
        match parse_duration_ms(text) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.findings.add(path.clone(), "invalid-value", e);
                None
            }
        }
    }

    fn environment(&mut self, raw: &RawService) -> BTreeMap<String, String> {
        let mut environment = BTreeMap::new();
        let env_files: Vec<(String, bool)> = match &raw.env_file {
            None => Vec::new(),
            Some(RawEnvFiles::One(path)) => vec![(path.clone(), true)],
            Some(RawEnvFiles::Many(files)) => files
                .iter()
                .map(|f| match f {
                    RawEnvFile::Path(path) => (path.clone(), true),
                    RawEnvFile::Entry { path, required } => (path.clone(), *required),
                })
                .collect(),
        };
        for (i, (file, required)) in env_files.iter().enumerate() {
            let path = match &raw.env_file {
                Some(RawEnvFiles::One(_)) => self.path.key("env_file"),
                _ => self.path.key("env_file").index(i),
            };
            let exists =
                matches!(self.tree.get(&join(self.folder, file)), Some(SourceEntry::File(_)));
            if !required && !exists {
                continue;
            }
            let mut scratch = Findings::new(self.findings.file);
            let read =
                read_app_file(self.folder, file, self.tree, self.limits, &path, &mut scratch);
            self.findings.list.append(&mut scratch.list);
            if let Some((repo_path, bytes)) = read {
                match parse_env_file(&bytes) {
                    Ok(pairs) => environment.extend(pairs),
                    Err((line, message)) => {
                        self.findings
                            .add(path, "invalid-env-file", format!("{repo_path}:{line}: {message}"))
                            .with_hint("write one KEY=VALUE per line; # starts a comment");
                    }
                }
            }
        }
        if let Some(env) = &raw.environment {
            for (key, value) in env.entries() {
                match value {
                    Some(value) => {
                        environment.insert(key, value);
                    }
                    None => {
                        self.findings
                            .add(
                                self.path.key("environment").key(&key),
                                "missing-value",
                                format!("environment variable {key} has no value; Compose would copy it from the shell, gitfleet takes values only from the repository"),
                            )
                            .with_hint(format!("give it a value, e.g. {key}=${{{key}}} with {key} declared under `variables:` in fleet.yaml"));
                    }
                }
            }
        }
        environment
    }

    fn ports(&mut self, raw: &[RawPort]) -> Vec<PortMapping> {
        let mut ports = Vec::new();
        for (i, port) in raw.iter().enumerate() {
            let path = self.path.key("ports").index(i);
            let parsed = match port {
                RawPort::Number(target) => port_number(*target).map(|target| {
                    vec![PortMapping {
                        target,
                        published: None,
                        host_ip: None,
                        protocol: Protocol::Tcp,
                    }]
                }),
                RawPort::Short(text) => parse_short_port(text),
                RawPort::Long { target, published, host_ip, protocol } => (|| {
                    let published = match published {
                        None => None,
                        Some(p) => Some(parse_port(&p.text())?),
                    };
                    Ok(vec![PortMapping {
                        target: port_number(*target)?,
                        published,
                        host_ip: host_ip.clone(),
                        protocol: protocol_of(protocol.as_deref().unwrap_or("tcp"))?,
                    }])
                })(),
            };
            match parsed {
                Ok(mut mappings) => ports.append(&mut mappings),
                Err(message) => {
                    self.findings
                        .add(path, "invalid-port", message)
                        .with_hint("write \"HOST:CONTAINER\" like \"8080:80\", or {target: 80, published: 8080}");
                }
            }
        }
        ports
    }

    fn expose(&mut self, raw: &[Scalar]) -> Vec<String> {
        let mut exposed = Vec::new();
        for (i, item) in raw.iter().enumerate() {
            let text = item.text();
            let (ports, protocol) = match text.rsplit_once('/') {
                Some((ports, protocol)) => (ports, protocol),
                None => (text.as_str(), "tcp"),
            };
            let range = match ports.split_once('-') {
                Some((start, end)) => parse_port(start).and_then(|s| Ok((s, parse_port(end)?))),
                None => parse_port(ports).map(|p| (p, p)),
            };
            match (range, protocol_of(protocol)) {
                (Ok((start, end)), Ok(_)) if start <= end => {
                    exposed.extend((start..=end).map(|port| format!("{port}/{protocol}")));
                }
                (Err(message), _) | (_, Err(message)) => {
                    self.findings
                        .add(self.path.key("expose").index(i), "invalid-port", message)
                        .with_hint("write a container port like 3000, 3000/udp or 8000-8010");
                }
                _ => {
                    self.findings
                        .add(
                            self.path.key("expose").index(i),
                            "invalid-port",
                            format!("{text:?}: the range runs backwards"),
                        )
                        .with_hint("write the lower port first, like 8000-8010");
                }
            }
        }
        exposed.sort();
        exposed.dedup();
        exposed
    }

    fn mounts(&mut self, raw: &[RawMount]) -> Vec<Mount> {
        let mut mounts = Vec::new();
        for (i, mount) in raw.iter().enumerate() {
            let path = self.path.key("volumes").index(i);
            let (kind, source, target, read_only) = match mount {
                RawMount::Short(text) => {
                    let parts = crate::model::windows::split_short_mount(text);
                    match parts.as_slice() {
                        [target] => ("volume", None, target.to_string(), false),
                        [source, target] => (
                            short_kind(source),
                            Some(source.to_string()),
                            target.to_string(),
                            false,
                        ),
                        [source, target, mode] => {
                            let read_only = mode.split(',').any(|m| m == "ro");
                            (
                                short_kind(source),
                                Some(source.to_string()),
                                target.to_string(),
                                read_only,
                            )
                        }
                        _ => {
                            self.findings
                                .add(
                                    path,
                                    "invalid-mount",
                                    format!("{text:?} is not SOURCE:TARGET[:MODE]"),
                                )
                                .with_hint(
                                    "write it like data:/var/lib/data or data:/var/lib/data:ro",
                                );
                            continue;
                        }
                    }
                }
                RawMount::Long { kind, source, target, read_only } => {
                    (kind.as_str(), source.clone(), target.clone(), *read_only)
                }
            };
            let source = match (kind, source) {
                ("volume", None) => MountSource::Anonymous,
                ("volume", Some(volume)) => MountSource::Volume { volume },
                ("tmpfs", _) => MountSource::Tmpfs,
                ("bind", Some(host_path)) if crate::model::windows::is_absolute(&host_path) => {
                    MountSource::Bind { path: host_path }
                }
                ("bind", Some(host_path)) => {
                    self.findings
                        .add(path, "relative-bind", format!("bind mount source {host_path:?} is relative; on a fleet there is no project folder on the host for it to be relative to"))
                        .with_hint("use a named volume, a config file (`configs:`), or an absolute host path");
                    continue;
                }
                (kind, _) => {
                    self.findings
                        .add(path, "invalid-mount", format!("a {kind} mount needs a source"))
                        .with_hint("name the volume or host path in `source:`");
                    continue;
                }
            };
            if !crate::model::windows::is_absolute(&target) {
                self.findings
                    .add(
                        path,
                        "invalid-mount",
                        format!("mount target {target:?} is not an absolute path"),
                    )
                    .with_hint("container paths start with / (or a drive, C:\\, on Windows)");
                continue;
            }
            mounts.push(Mount { source, target, read_only });
        }
        mounts
    }

    fn file_mounts(
        &mut self,
        raw: &[RawFileMount],
        section: &str,
        default_dir: &str,
    ) -> Vec<FileMount> {
        let mut mounts = Vec::new();
        for (i, item) in raw.iter().enumerate() {
            let path = self.path.key(section).index(i);
            let mount = match item {
                RawFileMount::Name(name) => FileMount {
                    name: name.clone(),
                    target: format!("{default_dir}{name}"),
                    uid: None,
                    gid: None,
                    mode: None,
                },
                RawFileMount::Long { source, target, uid, gid, mode } => {
                    let mode = match mode {
                        None => None,
                        Some(Scalar::Number(n)) => n.as_u64().map(|m| m as u32),
                        Some(other) => {
                            match u32::from_str_radix(other.text().trim_start_matches("0o"), 8) {
                                Ok(mode) => Some(mode),
                                Err(_) => {
                                    self.findings
                                        .add(
                                            path.key("mode"),
                                            "invalid-value",
                                            format!(
                                                "mode {:?} is not an octal number",
                                                other.text()
                                            ),
                                        )
                                        .with_hint("write it like \"0440\"");
                                    None
                                }
                            }
                        }
                    };
                    if let Some(t) = target.as_deref().filter(|t| t.split('/').any(|p| p == "..")) {
                        self.findings
                            .add(
                                path.key("target"),
                                "path-escape",
                                format!("target {} uses `..`; a {section} target stays in {default_dir} or is a plain absolute path", quoted(t)),
                            )
                            .with_hint(format!("write a name inside {default_dir}, like {default_dir}{source}, or an absolute path without `..`"));
                        continue;
                    }
                    let target = match target {
                        Some(t) if crate::model::windows::is_absolute(t) => t.clone(),
                        Some(t) => format!("{default_dir}{t}"),
                        None => format!("{default_dir}{source}"),
                    };
                    FileMount {
                        name: source.clone(),
                        target,
                        uid: uid.clone(),
                        gid: gid.clone(),
                        mode,
                    }
                }
            };
            mounts.push(mount);
        }
        mounts
    }

    fn healthcheck(&mut self, raw: &RawHealthcheck) -> Option<Healthcheck> {
        let path = self.path.key("healthcheck");
        let test = if raw.disable {
            vec!["NONE".to_string()]
        } else {
            match &raw.test {
                None => Vec::new(),
                Some(StringOrList::One(line)) => vec!["CMD-SHELL".to_string(), line.clone()],
                Some(StringOrList::Many(words)) => {
                    if !matches!(
                        words.first().map(String::as_str),
                        Some("CMD" | "CMD-SHELL" | "NONE")
                    ) {
                        self.findings
                            .add(path.key("test"), "invalid-value", "a healthcheck test list must start with \"CMD\", \"CMD-SHELL\" or \"NONE\"")
                            .with_hint("write [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1/\"] or a plain string for a shell command");
                    }
                    words.clone()
                }
            }
        };
        Some(Healthcheck {
            test,
            interval_ms: self.duration(&raw.interval, &path.key("interval")),
            timeout_ms: self.duration(&raw.timeout, &path.key("timeout")),
            retries: raw.retries,
            start_period_ms: self.duration(&raw.start_period, &path.key("start_period")),
        })
    }

    fn deploy(&mut self, raw: &RawDeploy) -> Deploy {
        let path = self.path.key("deploy");
        let mut constraints = Vec::new();
        for (i, text) in raw.placement.constraints.iter().enumerate() {
            match parse_constraint(text) {
                Ok(c) => constraints.push(c),
                Err(message) => {
                    self.findings
                        .add(path.key("placement").key("constraints").index(i), "invalid-constraint", message)
                        .with_hint("write node.hostname == NAME, node.labels.KEY == VALUE, node.platform.os == linux or node.platform.arch == x86_64 (or !=)");
                }
            }
        }
        let resources = Resources {
            limits: self.amounts(&raw.resources.limits, &path.key("resources").key("limits")),
            reservations: self
                .amounts(&raw.resources.reservations, &path.key("resources").key("reservations")),
        };
        let update_config = self.update_config(&raw.update_config, &path.key("update_config"));
        let rollback_config =
            self.update_config(&raw.rollback_config, &path.key("rollback_config"));
        let restart_policy = raw.restart_policy.as_ref().map(|r| {
            let rp = path.key("restart_policy");
            RestartPolicy {
                condition: r.condition.clone().unwrap_or_else(|| "any".to_string()),
                delay_ms: self.duration(&r.delay, &rp.key("delay")),
                max_attempts: r.max_attempts,
                window_ms: self.duration(&r.window, &rp.key("window")),
            }
        });
        Deploy {
            replicas: raw.replicas.unwrap_or(1),
            placement: Placement {
                constraints,
                max_replicas_per_node: raw.placement.max_replicas_per_node,
            },
            resources,
            update_config,
            rollback_config,
            restart_policy,
        }
    }

    fn amounts(&mut self, raw: &Option<RawAmounts>, path: &Path) -> ResourceAmounts {
        let Some(raw) = raw else { return ResourceAmounts::default() };
        let mut parse =
            |value: &Option<Scalar>, key: &str, parser: fn(&str) -> Result<u64, String>| {
                let value = value.as_ref()?;
                match parser(&value.text()) {
                    Ok(amount) => Some(amount),
                    Err(message) => {
                        self.findings.add(path.key(key), "invalid-value", message);
                        None
                    }
                }
            };
        ResourceAmounts {
            millicpus: parse(&raw.cpus, "cpus", parse_millicpus),
            memory_bytes: parse(&raw.memory, "memory", parse_bytes),
            pids: raw.pids,
        }
    }

    fn update_config(&mut self, raw: &Option<RawUpdateConfig>, path: &Path) -> UpdateConfig {
        let defaults = UpdateConfig::default();
        let Some(raw) = raw else { return defaults };
        UpdateConfig {
            parallelism: raw.parallelism.unwrap_or(defaults.parallelism),
            delay_ms: self.duration(&raw.delay, &path.key("delay")).unwrap_or(defaults.delay_ms),
            order: raw.order.unwrap_or(defaults.order),
            monitor_ms: self
                .duration(&raw.monitor, &path.key("monitor"))
                .unwrap_or(defaults.monitor_ms),
            failure_action: raw.failure_action.unwrap_or(defaults.failure_action),
            max_failure_ratio: raw.max_failure_ratio.unwrap_or(defaults.max_failure_ratio),
        }
    }
}
