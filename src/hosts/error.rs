//! [`HostError`]: what can go wrong talking to a Docker host, and the short human reason
//! (`connection refused`, `no route to host`, ...) extracted from bollard's nested errors.

use std::time::Duration;

/// Why a host could not be connected to, observed or changed.
///
/// Variants that arise while connecting name the endpoint; those raised by a request on an
/// established client ([`observe_host`](super::observe_host), the mutating calls) do not know
/// it, and the caller adds the host. The mutating calls' errors ([`HostError::Refused`],
/// [`HostError::Interrupted`], [`HostError::NotOurs`], [`HostError::Invalid`]) name the
/// operation and the object, and never carry a config's or secret's content.
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

    /// The daemon refused `operation` on `object` (`creating container shop-web-1`, `pulling
    /// image 10.0.0.1:5000/shop/web:2`). `message` is Docker's own (or the registry's, relayed
    /// by Docker), on one line; `status` is the HTTP status when the refusal came as one (404
    /// no such object, 409 conflict), `None` when it came inside a stream (a failed pull).
    #[error("{operation} {object}: {message}")]
    Refused { operation: &'static str, object: String, status: Option<u16>, message: String },

    /// The connection to the daemon broke during `operation` on `object`; the change may or may
    /// not have been made. Observing the host again tells.
    #[error("{operation} {object}: connection lost: {reason}")]
    Interrupted { operation: &'static str, object: String, reason: String },

    /// A network or volume of the wanted name exists on the host but is not this fleet's: it
    /// has no `io.gitfleet.fleet` label, or another fleet's. gitfleet never adopts an object
    /// it did not create.
    #[error(
        "{kind} {name} already exists on the host and is not fleet {fleet:?}'s ({found}); \
         gitfleet never adopts an object it did not create: remove or rename that {kind}, or \
         give the app's {kind} another name"
    )]
    NotOurs { kind: &'static str, name: String, fleet: String, found: String },

    /// What gitfleet was asked to send cannot be sent (a relative config target, a non-numeric
    /// uid, an unknown restart policy). Nothing was sent; the model or the caller must change.
    #[error("{operation} {object}: {reason}")]
    Invalid { operation: &'static str, object: String, reason: String },
}

/// What a failure says about the host: gone (for now), or there and answering with errors.
/// Only [`FailureClass::Connection`] counts toward a host being away, then down (its replicas
/// move); an [`FailureClass::Api`] failure is an error on that host, reported, and moves
/// nothing (a broken engine answering 500 is not a lost host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Nothing answered: connection refused, timed out, reset or lost, no route, a name that
    /// does not resolve, a failed TLS handshake.
    Connection,
    /// The host answered, with an error (an HTTP 500, a refusal, an answer that is not the
    /// Engine API's), or gitfleet's own settings for it cannot be used.
    Api,
}

impl HostError {
    /// Whether this failure means the host is gone or that it answered with an error.
    pub fn class(&self) -> FailureClass {
        match self {
            HostError::Unreachable { .. }
            | HostError::Timeout { .. }
            | HostError::Disconnected { .. }
            | HostError::Interrupted { .. } => FailureClass::Connection,
            HostError::Config { .. }
            | HostError::Api { .. }
            | HostError::Refused { .. }
            | HostError::NotOurs { .. }
            | HostError::Invalid { .. } => FailureClass::Api,
        }
    }

    /// Whether the message already names the endpoint it is about.
    pub fn names_endpoint(&self) -> bool {
        matches!(
            self,
            HostError::Unreachable { .. } | HostError::Timeout { .. } | HostError::Config { .. }
        )
    }

    /// The HTTP status of the daemon's refusal, if it was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HostError::Refused { status, .. } => *status,
            HostError::Api {
                source: bollard::errors::Error::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }

    /// Whether the daemon said the object does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The error of `operation` on `object` (a mutating call, or one about one object): a
    /// broken connection or timeout is [`HostError::Interrupted`], anything else the daemon's
    /// refusal, [`HostError::Refused`], with Docker's message on one line.
    pub(crate) fn about(
        operation: &'static str,
        object: impl Into<String>,
        err: bollard::errors::Error,
    ) -> HostError {
        use bollard::errors::Error as B;
        let object = object.into();
        if let Some(reason) = transport_reason(&err) {
            return HostError::Interrupted { operation, object, reason };
        }
        let (status, message) = match err {
            B::DockerResponseServerError { status_code, message } => (Some(status_code), message),
            B::DockerStreamError { error } => (None, error),
            other => (None, other.to_string()),
        };
        let message = one_line(&message);
        let message = if message.is_empty() {
            format!("the daemon answered HTTP {}", status.unwrap_or_default())
        } else {
            message
        };
        HostError::Refused { operation, object, status, message }
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

/// Daemons end their messages with a newline and registries sometimes span several lines.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
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
    fn only_transport_failures_are_connection_level() {
        let server_error = || bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "boom".into(),
        };
        let api = HostError::from_request("listing containers", server_error());
        assert_eq!(api.class(), FailureClass::Api);
        assert_eq!(
            HostError::about("creating", "web-1", server_error()).class(),
            FailureClass::Api
        );
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let reset = HostError::from_request(
            "listing containers",
            bollard::errors::Error::IOError { err: io() },
        );
        assert_eq!(reset.class(), FailureClass::Connection);
        let timeout =
            HostError::from_request("listing", bollard::errors::Error::RequestTimeoutError);
        assert_eq!(timeout.class(), FailureClass::Connection);
        let refused = HostError::Unreachable {
            endpoint: "tcp://x:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(refused.class(), FailureClass::Connection);
        let tls = HostError::Config { endpoint: "tcp://x:1".into(), reason: "no such file".into() };
        assert_eq!(tls.class(), FailureClass::Api);
    }

    #[test]
    fn io_kinds_become_short_reasons() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused), "connection refused");
        let wrapped = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(io_reason(&wrapped), "invalid peer certificate: UnknownIssuer");
    }
}
