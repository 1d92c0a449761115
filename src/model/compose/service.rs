//! One service folded into its normalised form: the builder shared by the service's parts,
//! and the simple fields (command, environment, ports, expose).

use super::*;

pub(super) struct ServiceBuilder<'a, 'f> {
    pub(super) path: Path,
    pub(super) folder: &'a str,
    pub(super) tree: &'a SourceTree,
    pub(super) limits: &'a Limits,
    pub(super) findings: &'a mut Findings<'f>,
}

impl ServiceBuilder<'_, '_> {
    pub(super) fn build(mut self, name: &str, raw: &RawService) -> Service {
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
                    sticky: r.sticky.unwrap_or(false),
                })
                .collect(),
        }
    }

    pub(super) fn words(&mut self, raw: &StringOrList, path: &Path) -> Option<Vec<String>> {
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

    pub(super) fn duration(&mut self, raw: &Option<String>, path: &Path) -> Option<u64> {
        let text = raw.as_ref()?;
        match parse_duration_ms(text) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.findings.add(path.clone(), "invalid-value", e);
                None
            }
        }
    }

    pub(super) fn environment(&mut self, raw: &RawService) -> BTreeMap<String, String> {
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
            let listed = matches!(env, ListOrDict::List(_));
            for (i, (key, value)) in env.entries().into_iter().enumerate() {
                match value {
                    Some(value) => {
                        environment.insert(key, value);
                    }
                    None => {
                        // At the variable itself: the list item, or the mapping's key (a
                        // key without a value has no text of its own to point at).
                        let list = self.path.key("environment");
                        let path = if listed { list.index(i) } else { list.key(&key) };
                        let finding = self
                            .findings
                            .add(
                                path,
                                "missing-value",
                                format!("environment variable {key} has no value; Compose would copy it from the shell, gitfleet takes values only from the repository"),
                            )
                            .with_hint(format!("give it a value, e.g. {key}=${{{key}}} with {key} declared under `variables:` in fleet.yaml"));
                        finding.on_key = !listed;
                    }
                }
            }
        }
        environment
    }

    pub(super) fn ports(&mut self, raw: &[RawPort]) -> Vec<PortMapping> {
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

    pub(super) fn expose(&mut self, raw: &[Scalar]) -> Vec<String> {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, problems, shop, tree};
    use crate::model::types::{PortMapping, Protocol};

    /// A service `web` with `extra` lines under it (indented by four spaces).
    fn web(extra: &str) -> String {
        format!("services:\n  web:\n    image: nginx:1.27\n{extra}")
    }

    #[test]
    fn simple_fields_are_refused_where_they_are_written() {
        check(&[
            (
                &web("    command: \"echo 'hi\"\n"),
                "apps/shop/compose.yaml:4:14: invalid-value: cannot split \"echo 'hi\" into words: missing closing quote",
            ),
            (
                &web("    stop_grace_period: 10x\n"),
                // The schema's pattern sees it first (its hint says how to write one).
                "apps/shop/compose.yaml:4:24: invalid-value: `services.web.stop_grace_period` is \"10x\", expected a duration",
            ),
            (
                // At the item's text, not at the list's first `-`.
                &web("    environment:\n      - A=1\n      - DEBUG\n"),
                "apps/shop/compose.yaml:6:9: missing-value: environment variable DEBUG has no value; Compose would copy it from the shell, gitfleet takes values only from the repository",
            ),
            (
                // At the key (its empty value has no text).
                &web("    environment:\n      A: \"1\"\n      DEBUG:\n"),
                "apps/shop/compose.yaml:6:7: missing-value: environment variable DEBUG has no value; Compose would copy it from the shell, gitfleet takes values only from the repository",
            ),
            (
                &web("    ports:\n      - \"8080:80\"\n      - \"99999:80\"\n"),
                "apps/shop/compose.yaml:6:9: invalid-port: 99999 is not a port number (1 to 65535)",
            ),
            (
                &web("    expose: [\"3000-2000\"]\n"),
                "apps/shop/compose.yaml:4:14: invalid-port: \"3000-2000\": the range runs backwards",
            ),
            (
                &web("    expose: [\"70000\"]\n"),
                "apps/shop/compose.yaml:4:14: invalid-port: 70000 is not a port number (1 to 65535)",
            ),
        ]);
    }

    #[test]
    fn env_files_are_read_required_or_not() {
        let missing = web("    env_file: ./app.env\n");
        assert_eq!(
            problems(&missing, &[]),
            [
                "apps/shop/compose.yaml:4:15: missing-file: apps/shop/app.env does not exist in this revision"
            ]
        );
        // The line of the env file is in the message; the place is the env_file entry.
        let listed = web("    env_file:\n      - ./base.env\n      - ./app.env\n");
        assert_eq!(
            problems(&listed, &[("base.env", "A=1\n"), ("app.env", "# ok\nB=2\nNOT A PAIR\n")]),
            [
                "apps/shop/compose.yaml:6:9: invalid-env-file: apps/shop/app.env:3: the line has no '='"
            ]
        );
        let optional = web(
            "    env_file:\n      - path: ./local.env\n        required: false\n    environment:\n      B: from-compose\n",
        );
        let mut tree = tree(&optional, "");
        assert!(!shop(&tree).unwrap().services["web"].environment.contains_key("A"));
        tree.insert_file("apps/shop/local.env", b"A=1\nB=from-file\n".to_vec());
        let environment = &shop(&tree).unwrap().services["web"].environment;
        // `environment:` wins over the env file, as in Compose.
        assert_eq!(environment["A"], "1");
        assert_eq!(environment["B"], "from-compose");
    }

    #[test]
    fn ports_and_exposed_ranges_are_normalised() {
        let compose = web(
            "    ports:\n      - 80\n      - \"127.0.0.1:8443:443/udp\"\n      - target: 9000\n        published: \"9001\"\n    expose: [\"3001\", \"3000-3001\", 4000/udp]\n",
        );
        let service = shop(&tree(&compose, "")).unwrap().services["web"].clone();
        let mapping = |target, published, host_ip: Option<&str>, protocol| PortMapping {
            target,
            published,
            host_ip: host_ip.map(str::to_string),
            protocol,
        };
        assert_eq!(
            service.ports,
            [
                mapping(80, None, None, Protocol::Tcp),
                mapping(443, Some(8443), Some("127.0.0.1"), Protocol::Udp),
                mapping(9000, Some(9001), None, Protocol::Tcp),
            ]
        );
        assert_eq!(service.expose, ["3000/tcp", "3001/tcp", "4000/udp"]);
    }
}
