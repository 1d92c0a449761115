//! [`HostError`]: what can go wrong talking to a Docker host, and the short human reason
//! (`connection refused`, `no route to host`, ...) extracted from bollard's nested errors.

use std::time::Duration;

/// Why a host could not be connected to or observed.
///
/// Variants that arise while connecting name the endpoint; those raised by a request on an
/// established client ([`observe_host`](super::observe_host)) do not know it, and
/// [`observe_all`](super::observe_all) adds it to the reason it reports.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Nothing answered at the endpoint: no socket file, connection refused, no route, a TLS
    /// handshake that failed. `reason` is short and human (`connection refused`).
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },

    /// The endpoint accepted nothing, or answered nothing, within `timeout`.
    #[error("cannot reach {endpoint}: no answer within {}", human_duration(*.timeout))]
    Timeout { endpoint: String, timeout: Duration },

    /// The endpoint's own settings cannot be used: a TLS file that cannot be read, an address
    /// that is not one. Retrying does not help; `fleet.yaml` or the controller's files must
    /// change.
    #[error("cannot use endpoint {endpoint}: {reason}")]
    Config { endpoint: String, reason: String },

    /// The connection broke during `operation` (the daemon went away between requests, say).
    #[error("{operation}: connection lost: {reason}")]
    Disconnected { operation: &'static str, reason: String },

    /// The daemon answered `operation` with an error, or with something that is not the
    /// Engine API's answer.
    #[error("{operation}: {source}")]
    Api {
        operation: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
}

impl HostError {
    /// Whether the message already names the endpoint it is about.
    pub fn names_endpoint(&self) -> bool {
        matches!(
            self,
            HostError::Unreachable { .. } | HostError::Timeout { .. } | HostError::Config { .. }
        )
    }

    /// The error of a request made on an established client: a broken connection, a timeout
    /// or the daemon's error answer.
    pub(crate) fn from_request(operation: &'static str, err: bollard::errors::Error) -> HostError {
        match transport_reason(&err) {
            Some(reason) => HostError::Disconnected { operation, reason },
            None => HostError::Api { operation, source: err },
        }
    }
}

/// `10s`, `1.5s`, `250ms`: durations as a person writes them.
pub(crate) fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() > 0 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// When `err` says the transport failed (as opposed to the daemon answering with an error),
/// the short reason: `connection refused`, `no route to host`, a TLS complaint, ...
pub(crate) fn transport_reason(err: &bollard::errors::Error) -> Option<String> {
    use bollard::errors::Error as B;
    match err {
        B::SocketNotFoundError(path) => Some(format!("no socket at {path}")),
        B::RequestTimeoutError => Some("the request timed out".to_string()),
        B::HyperLegacyError { .. } | B::HyperResponseError { .. } | B::IOError { .. } => {
            Some(innermost_reason(err))
        }
        _ => None,
    }
}

/// Walks the source chain: the deepest `io::Error` gives the kind (`connection refused`),
/// else the deepest error's own message.
fn innermost_reason(err: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest_io: Option<&std::io::Error> = None;
    let mut deepest: &(dyn std::error::Error + 'static) = err;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            deepest_io = Some(io);
        }
        deepest = e;
        current = e.source();
    }
    if let Some(io) = deepest_io {
        return io_reason(io);
    }
    deepest.to_string()
}

fn io_reason(io: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let known = match io.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::HostUnreachable => "no route to host",
        K::NetworkUnreachable => "network unreachable",
        K::TimedOut => "connection timed out",
        K::NotFound => "no such file or socket",
        K::PermissionDenied => "permission denied",
        K::UnexpectedEof => "the connection closed early",
        K::BrokenPipe => "broken pipe",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    // Wrapped errors (rustls' handshake errors, say) carry their message inside.
    match io.get_ref() {
        Some(inner) => inner.to_string(),
        None => io.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn timeout_message_names_endpoint_and_duration() {
        let err = HostError::Timeout {
            endpoint: "tcp://10.250.1.2:2375".into(),
            timeout: Duration::from_secs(10),
        };
        assert_eq!(err.to_string(), "cannot reach tcp://10.250.1.2:2375: no answer within 10s");
        assert!(err.names_endpoint());
    }

    #[test]
    fn io_kinds_become_short_reasons() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused), "connection refused");
        let wrapped = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(io_reason(&wrapped), "invalid peer certificate: UnknownIssuer");
    }
}
