//! Compose's string syntaxes: short port mappings, placement constraints, env files.

use crate::model::types::{Constraint, NodeAttribute, PortMapping, Protocol};

pub(super) fn join(folder: &str, relative: &str) -> String {
    let relative = relative.trim_start_matches("./");
    format!("{folder}/{relative}")
}

/// A named volume unless it looks like a path.
pub(super) fn short_kind(source: &str) -> &'static str {
    if source.starts_with('/')
        || source.starts_with('.')
        || source.starts_with('~')
        || crate::model::windows::is_windows_absolute(source)
    {
        "bind"
    } else {
        "volume"
    }
}

pub(super) fn port_number(value: u32) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{value} is not a port number (1 to 65535)")),
    }
}

pub(super) fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u32>().map_err(|_| format!("{text:?} is not a port number")).and_then(port_number)
}

pub(super) fn protocol_of(text: &str) -> Result<Protocol, String> {
    match text {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(format!("protocol {other:?} is not tcp or udp")),
    }
}

/// `[HOST_IP:][PUBLISHED[-END]:]TARGET[-END][/PROTOCOL]`.
pub(super) fn parse_short_port(text: &str) -> Result<Vec<PortMapping>, String> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, protocol)) => (spec, protocol_of(protocol)?),
        None => (text, Protocol::Tcp),
    };
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) =
            after.split_once("]:").ok_or_else(|| format!("{text:?}: unclosed IPv6 address"))?;
        (Some(ip.to_string()), rest)
    } else {
        match spec.matches(':').count() {
            2 => {
                let (ip, rest) = spec.split_once(':').expect("two colons");
                (Some(ip.to_string()), rest)
            }
            0 | 1 => (None, spec),
            _ => return Err(format!("{text:?} has too many ':'")),
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((published, target)) => (Some(published), target),
        None => (None, rest),
    };
    let range = |part: &str| -> Result<(u16, u16), String> {
        match part.split_once('-') {
            Some((start, end)) => {
                let (start, end) = (parse_port(start)?, parse_port(end)?);
                if start > end {
                    return Err(format!("{text:?}: range {part} runs backwards"));
                }
                Ok((start, end))
            }
            None => parse_port(part).map(|p| (p, p)),
        }
    };
    let targets = range(target)?;
    let published = published.filter(|p| !p.is_empty()).map(range).transpose()?;
    let count = targets.1 - targets.0;
    if let Some(published) = published {
        if published.1 - published.0 != count {
            return Err(format!("{text:?}: the published and target ranges differ in length"));
        }
    }
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    Ok((0..=count)
        .map(|offset| PortMapping {
            target: targets.0 + offset,
            published: published.map(|p| p.0 + offset),
            host_ip: host_ip.clone(),
            protocol,
        })
        .collect())
}

/// `node.labels.zone == a`, `node.hostname != b`, ...
pub fn parse_constraint(text: &str) -> Result<Constraint, String> {
    let (attribute, equal, value) = if let Some((a, v)) = text.split_once("==") {
        (a, true, v)
    } else if let Some((a, v)) = text.split_once("!=") {
        (a, false, v)
    } else {
        return Err(format!("constraint {text:?} has no == or !="));
    };
    let (attribute, value) = (attribute.trim(), value.trim());
    if value.is_empty() {
        return Err(format!("constraint {text:?} has no value"));
    }
    let attribute = match attribute {
        "node.hostname" => NodeAttribute::Hostname,
        "node.platform.os" => NodeAttribute::Os,
        "node.platform.arch" => NodeAttribute::Arch,
        "node.role" | "node.id" => {
            return Err(format!(
                "{attribute} has no meaning on plain Docker hosts (there is no Swarm)"
            ));
        }
        other => match other.strip_prefix("node.labels.") {
            Some(label) if !label.is_empty() => NodeAttribute::Label(label.to_string()),
            _ => return Err(format!("{other:?} is not a placement attribute gitfleet knows")),
        },
    };
    Ok(Constraint { attribute, equal, value: value.to_string() })
}

/// `KEY=VALUE` lines; `#` comments, blank lines, `export ` prefixes and quotes allowed.
pub(super) fn parse_env_file(bytes: &[u8]) -> Result<Vec<(String, String)>, (usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (1, "the file is not UTF-8".to_string()))?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) =
            // The line is not quoted back: it may hold a secret value.
            line.split_once('=').ok_or_else(|| (i + 1, "the line has no '='".to_string()))?;
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        pairs.push((key.trim().to_string(), value.to_string()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(
        target: u16,
        published: Option<u16>,
        host_ip: Option<&str>,
        protocol: Protocol,
    ) -> PortMapping {
        PortMapping { target, published, host_ip: host_ip.map(String::from), protocol }
    }

    #[test]
    fn short_port_syntax() {
        use Protocol::*;
        assert_eq!(parse_short_port("80").unwrap(), vec![mapping(80, None, None, Tcp)]);
        assert_eq!(parse_short_port("8080:80").unwrap(), vec![mapping(80, Some(8080), None, Tcp)]);
        assert_eq!(
            parse_short_port("127.0.0.1:8080:80/udp").unwrap(),
            vec![mapping(80, Some(8080), Some("127.0.0.1"), Udp)]
        );
        assert_eq!(
            parse_short_port("[::1]:53:53").unwrap(),
            vec![mapping(53, Some(53), Some("::1"), Tcp)]
        );
        assert_eq!(parse_short_port("9000-9001:90-91").unwrap().len(), 2);
        assert!(parse_short_port("9000-9002:90-91").is_err());
        assert!(parse_short_port("70000:80").is_err());
        assert!(parse_short_port("80/sctp").is_err());
    }

    #[test]
    fn constraints() {
        let c = parse_constraint("node.labels.zone == a").unwrap();
        assert_eq!(c.attribute, NodeAttribute::Label("zone".into()));
        assert!(c.equal);
        assert_eq!(c.to_string(), "node.labels.zone == a");
        assert!(!parse_constraint("node.hostname!=b").unwrap().equal);
        assert!(parse_constraint("node.role == manager").unwrap_err().contains("no meaning"));
        assert!(parse_constraint("node.labels.zone").is_err());
        assert!(parse_constraint("engine.labels.x == y").is_err());
    }

    #[test]
    fn env_files() {
        let pairs = parse_env_file(b"# c\nA=1\nexport B=\"two words\"\n\nC='x'\n").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
        assert_eq!(parse_env_file(b"A=1\nnonsense\n").unwrap_err().0, 2);
    }
}
