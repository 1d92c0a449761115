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

#[cfg(test)]
mod tests {
    use super::super::testing::{check, shop, tree};
    use crate::model::types::UpdateConfig;

    fn web(extra: &str) -> String {
        format!("services:\n  web:\n    image: nginx:1.27\n{extra}")
    }

    #[test]
    fn deploy_and_healthcheck_values_are_refused_where_they_are_written() {
        check(&[
            (
                &web(
                    "    deploy:\n      placement:\n        constraints: [node.role == manager]\n",
                ),
                // The schema's pattern sees it first (its hint lists the forms).
                "apps/shop/compose.yaml:6:23: invalid-value: `services.web.deploy.placement.constraints[0]` is \"node.role == manager\", expected a placement constraint",
            ),
            (
                &web("    deploy:\n      resources:\n        limits:\n          memory: 12q\n"),
                // The schema sees it first (a number or a size string), at the value, and
                // says what a size is (its hint, from the schema, how to write one).
                "apps/shop/compose.yaml:7:19: invalid-value: `services.web.deploy.resources.limits.memory` is \"12q\", expected a size",
            ),
            (
                // A number the schema lets through, but no CPU count.
                &web(
                    "    deploy:\n      resources:\n        reservations:\n          cpus: \"0\"\n",
                ),
                "apps/shop/compose.yaml:7:17: invalid-value: \"0\" is not a CPU count; write it like 0.5 or 2",
            ),
            (
                // Of the form the schema wants, yet too long for any clock.
                &web("    deploy:\n      update_config:\n        delay: 99999999999999999999h\n"),
                "apps/shop/compose.yaml:6:16: invalid-value: \"99999999999999999999h\" is not a duration; write it like 10s, 1m30s or 500ms",
            ),
            (
                &web("    healthcheck:\n      test: [wget, -q, http://127.0.0.1/]\n"),
                "apps/shop/compose.yaml:5:13: invalid-value: a healthcheck test list must start with \"CMD\", \"CMD-SHELL\" or \"NONE\"",
            ),
            (
                &web(
                    "    healthcheck:\n      test: curl -f http://127.0.0.1/\n      interval: 1fortnight\n",
                ),
                "apps/shop/compose.yaml:6:17: invalid-value: `services.web.healthcheck.interval` is \"1fortnight\", expected a duration",
            ),
        ]);
    }

    #[test]
    fn what_is_left_out_takes_compose_defaults() {
        let compose = web(
            "    healthcheck:\n      test: curl -f http://127.0.0.1/\n      interval: 1m30s\n    deploy:\n      update_config:\n        parallelism: 2\n      restart_policy: {}\n      resources:\n        limits:\n          cpus: \"0.5\"\n          memory: 512m\n",
        );
        let service = shop(&tree(&compose, "")).unwrap().services["web"].clone();
        let health = service.healthcheck.unwrap();
        assert_eq!(health.test, ["CMD-SHELL", "curl -f http://127.0.0.1/"]);
        assert_eq!((health.interval_ms, health.timeout_ms), (Some(90_000), None));
        let deploy = service.deploy;
        assert_eq!(deploy.replicas, 1);
        let defaults = UpdateConfig::default();
        assert_eq!(deploy.update_config.parallelism, 2);
        assert_eq!(deploy.update_config.delay_ms, defaults.delay_ms);
        assert_eq!(deploy.rollback_config, defaults);
        assert_eq!(deploy.restart_policy.unwrap().condition, "any");
        let limits = deploy.resources.limits;
        assert_eq!((limits.millicpus, limits.memory_bytes), (Some(500), Some(512 << 20)));
        let disabled = web("    healthcheck:\n      disable: true\n");
        let health = shop(&tree(&disabled, "")).unwrap().services["web"].healthcheck.clone();
        assert_eq!(health.unwrap().test, ["NONE"]);
    }
}
