//! Folding a schema-valid `fleet.yaml` into the normalised [`Fleet`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use super::finding::Findings;
use super::path::Path;
use super::types::*;
use super::units::{parse_bytes, parse_duration_ms, parse_millicpus};

#[derive(Deserialize, Default)]
struct RawFleet {
    #[serde(default)]
    hosts: BTreeMap<String, RawHost>,
    #[serde(default)]
    settings: RawSettings,
    #[serde(default)]
    variables: BTreeMap<String, Json>,
}

#[derive(Deserialize)]
struct RawHost {
    endpoint: String,
    tls: Option<TlsFiles>,
    address: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    capacity: RawCapacity,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize, Default)]
struct RawCapacity {
    cpus: Option<Json>,
    memory: Option<Json>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: Option<String>,
    arch: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawSettings {
    name: Option<String>,
    observe_timeout: Option<String>,
    pull_policy: Option<PullPolicy>,
    #[serde(default)]
    limits: super::limits::Limits,
    #[serde(default)]
    allow_empty: bool,
}

/// Folds `document` (schema-valid) into a [`Fleet`]; problems go to `findings`.
pub fn normalise(document: &Json, findings: &mut Findings<'_>) -> Fleet {
    let raw: RawFleet = match serde_json::from_value(document.clone()) {
        Ok(raw) => raw,
        Err(e) => {
            findings.add(
                Path::root(),
                "schema",
                format!("the file does not have the expected shape: {e}"),
            );
            RawFleet::default()
        }
    };
    let defaults = Settings::default();
    let observe_timeout_ms = match raw.settings.observe_timeout.as_deref().map(parse_duration_ms) {
        None => defaults.observe_timeout_ms,
        Some(Ok(ms)) => ms,
        Some(Err(message)) => {
            findings.add(Path::of(&["settings", "observe_timeout"]), "invalid-value", message);
            defaults.observe_timeout_ms
        }
    };
    let settings = Settings {
        name: raw.settings.name.unwrap_or(defaults.name),
        observe_timeout_ms,
        pull_policy: raw.settings.pull_policy.unwrap_or(defaults.pull_policy),
        limits: raw.settings.limits,
        allow_empty: raw.settings.allow_empty,
    };
    let hosts = raw
        .hosts
        .into_iter()
        .filter_map(|(name, host)| {
            let path = Path::of(&["hosts", &name]);
            let host = normalise_host(&name, host, &path, findings)?;
            Some((name, host))
        })
        .collect();
    let variables = raw
        .variables
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Json::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    Fleet { hosts, settings, variables }
}

fn normalise_host(
    name: &str,
    raw: RawHost,
    path: &Path,
    findings: &mut Findings<'_>,
) -> Option<Host> {
    let endpoint = match parse_endpoint(&raw.endpoint, raw.tls) {
        Ok(endpoint) => endpoint,
        Err(message) => {
            findings.add(path.key("endpoint"), "invalid-endpoint", message).with_hint(
                "write unix:///var/run/docker.sock or tcp://HOST:PORT (with `tls:` for TLS)",
            );
            return None;
        }
    };
    let address = raw.address.or_else(|| match &endpoint {
        Endpoint::Tcp { host, .. } => Some(host.clone()),
        Endpoint::Unix { .. } => None,
    });
    let mut amount = |value: Option<Json>, key: &str, parser: fn(&str) -> Result<u64, String>| {
        let text = match value? {
            Json::String(s) => s,
            other => other.to_string(),
        };
        parser(&text)
            .map_err(|m| findings.add(path.key("capacity").key(key), "invalid-value", m))
            .ok()
    };
    let capacity = Capacity {
        millicpus: amount(raw.capacity.cpus, "cpus", parse_millicpus),
        memory_bytes: amount(raw.capacity.memory, "memory", parse_bytes),
    };
    // What is not declared stays empty: the engine's answer fills it (`diff::platform`).
    let platform = match raw.platform {
        None => Platform::undeclared(),
        Some(p) => Platform { os: p.os.unwrap_or_default(), arch: p.arch.unwrap_or_default() },
    };
    Some(Host { name: name.to_string(), endpoint, address, labels: raw.labels, capacity, platform })
}

fn parse_endpoint(text: &str, tls: Option<TlsFiles>) -> Result<Endpoint, String> {
    if let Some(path) = text.strip_prefix("unix://") {
        if tls.is_some() {
            return Err(format!("{text}: `tls` only applies to tcp:// endpoints"));
        }
        if !path.starts_with('/') {
            return Err(format!("{text}: the socket path must be absolute (unix:///path)"));
        }
        return Ok(Endpoint::Unix { path: path.to_string() });
    }
    let Some(rest) = text.strip_prefix("tcp://") else {
        return Err(format!("{text:?} is neither unix:// nor tcp://"));
    };
    let (host, port) =
        rest.rsplit_once(':').ok_or_else(|| format!("{text}: the port is missing"))?;
    let port: u16 = port.parse().map_err(|_| format!("{text}: {port:?} is not a port number"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("{text}: needs a host and a port"));
    }
    Ok(Endpoint::Tcp { host: host.to_string(), port, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("tcp://10.0.0.1:2375", None).unwrap(),
            Endpoint::Tcp { host: "10.0.0.1".into(), port: 2375, tls: None }
        );
        assert_eq!(
            parse_endpoint("unix:///var/run/docker.sock", None).unwrap(),
            Endpoint::Unix { path: "/var/run/docker.sock".into() }
        );
        assert!(parse_endpoint("tcp://h", None).is_err());
        assert!(parse_endpoint("ssh://h", None).is_err());
        let tls = TlsFiles { ca: "a".into(), cert: "b".into(), key: "c".into() };
        assert!(parse_endpoint("unix:///s", Some(tls)).unwrap_err().contains("tcp://"));
    }
}
