//! A service's healthcheck and `deploy` section: replicas, placement, resources, update and
//! rollback settings.

use super::*;

impl ServiceBuilder<'_, '_> {
    pub(super) fn healthcheck(&mut self, raw: &RawHealthcheck) -> Option<Healthcheck> {
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

    pub(super) fn deploy(&mut self, raw: &RawDeploy) -> Deploy {
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

    pub(super) fn amounts(&mut self, raw: &Option<RawAmounts>, path: &Path) -> ResourceAmounts {
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

    pub(super) fn update_config(
        &mut self,
        raw: &Option<RawUpdateConfig>,
        path: &Path,
    ) -> UpdateConfig {
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
