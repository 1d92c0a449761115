//! From a registered [`Host`] to a `bollard::Docker` client: unix socket, plain TCP, or TCP
//! with TLS client files; the API version negotiated with the daemon and the first request
//! bounded in time.

use std::path::Path;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};

use super::error::{HostError, transport_reason};
use crate::model::{Endpoint, Host, TlsFiles};

/// How long [`connect`] waits for a host to accept a connection and answer `/version`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// bollard's per-request bound (until the response head arrives) on the returned client, in
/// seconds. Callers with a tighter budget wrap their calls in their own timeout.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Connects to `host`'s Docker Engine API and negotiates the API version, waiting at most
/// [`DEFAULT_CONNECT_TIMEOUT`]. See [`connect_with_timeout`].
pub async fn connect(host: &Host) -> Result<Docker, HostError> {
    connect_with_timeout(host, DEFAULT_CONNECT_TIMEOUT).await
}

/// Connects to `host`'s Docker Engine API: `unix://` sockets, plain `tcp://`, and `tcp://` with
/// TLS client files (CA, certificate, key; the server certificate must be valid for the
/// endpoint's host name or IP address).
///
/// The first request (`GET /version`) negotiates the API version, so the client speaks the
/// daemon's version when it is older than bollard's (Debian's docker.io 20.10 speaks 1.41 and
/// answers 404 to newer routes). It must answer within `timeout`; a host that accepts
/// nothing (a dropped route, a black-holed address) is then a [`HostError::Timeout`].
///
/// # Errors
///
/// [`HostError::Config`] for unusable TLS files, [`HostError::Unreachable`] when nothing
/// answers (missing socket, connection refused, no route, failed TLS handshake),
/// [`HostError::Timeout`], or [`HostError::Api`] when the answer is not the Engine API's.
pub async fn connect_with_timeout(host: &Host, timeout: Duration) -> Result<Docker, HostError> {
    let endpoint = host.endpoint.to_string();
    let client = client_for(&host.endpoint, &endpoint)?;
    match tokio::time::timeout(timeout, client.negotiate_version()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(err)) => Err(match transport_reason(&err) {
            Some(reason) => HostError::Unreachable { endpoint, reason },
            None => HostError::Api { operation: "negotiating the API version", source: err },
        }),
        Err(_elapsed) => Err(HostError::Timeout { endpoint, timeout }),
    }
}

/// The client for `endpoint`, before any request. Creating it touches the network not at all,
/// the file system only to check the socket / TLS files.
fn client_for(endpoint: &Endpoint, shown: &str) -> Result<Docker, HostError> {
    let result = match endpoint {
        Endpoint::Unix { path } => {
            Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        Endpoint::Tcp { host, port, tls: None } => Docker::connect_with_http(
            &format!("tcp://{}:{port}", bracket_ipv6(host)),
            REQUEST_TIMEOUT_SECS,
            API_DEFAULT_VERSION,
        ),
        Endpoint::Tcp { host, port, tls: Some(files) } => {
            check_tls_files(files, shown)?;
            Docker::connect_with_ssl(
                &format!("tcp://{}:{port}", bracket_ipv6(host)),
                Path::new(&files.key),
                Path::new(&files.cert),
                Path::new(&files.ca),
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            )
        }
    };
    result.map_err(|err| match transport_reason(&err) {
        Some(reason) => HostError::Unreachable { endpoint: shown.to_string(), reason },
        None => HostError::Config { endpoint: shown.to_string(), reason: err.to_string() },
    })
}

/// bollard reads the CA when the client is made but the certificate and key only during the
/// handshake, where a missing file would look like a network failure. Check all three first.
fn check_tls_files(files: &TlsFiles, shown: &str) -> Result<(), HostError> {
    for (what, path) in [("CA", &files.ca), ("certificate", &files.cert), ("key", &files.key)] {
        if let Err(err) = std::fs::File::open(path) {
            return Err(HostError::Config {
                endpoint: shown.to_string(),
                reason: format!("cannot read the TLS {what} file {path}: {err}"),
            });
        }
    }
    // bollard ignores a key it cannot parse (the handshake then fails without a client
    // certificate, far from the cause): the key must be a PEM private key.
    let key = std::fs::read(&files.key).unwrap_or_default();
    if !is_pem_private_key(&key) {
        return Err(HostError::Config {
            endpoint: shown.to_string(),
            reason: format!(
                "the TLS key file {} is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)",
                files.key
            ),
        });
    }
    Ok(())
}

/// Whether `bytes` hold a PEM block of a private key (PKCS#8, RSA or EC), begun and ended.
fn is_pem_private_key(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"].iter().any(|label| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        text.find(&begin).is_some_and(|at| {
            text[at + begin.len()..].find(&end).is_some_and(|len| {
                let body = &text[at + begin.len()..at + begin.len() + len];
                let body: String = body.split_whitespace().collect();
                !body.is_empty()
                    && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            })
        })
    })
}

/// `::1` → `[::1]`, so that `host:port` parses; names and IPv4 addresses unchanged.
fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Capacity, Platform};

    fn host(endpoint: Endpoint) -> Host {
        Host {
            name: "a".into(),
            endpoint,
            address: None,
            labels: Default::default(),
            capacity: Capacity::default(),
            platform: Platform::default(),
        }
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(bracket_ipv6("::1"), "[::1]");
        assert_eq!(bracket_ipv6("10.250.1.2"), "10.250.1.2");
        assert_eq!(bracket_ipv6("[::1]"), "[::1]");
    }

    #[tokio::test]
    async fn missing_socket_is_unreachable_and_names_it() {
        let err = connect(&host(Endpoint::Unix { path: "/nonexistent/gitfleet.sock".into() }))
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::Unreachable { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "cannot reach unix:///nonexistent/gitfleet.sock: no socket at /nonexistent/gitfleet.sock"
        );
    }

    #[tokio::test]
    async fn unreadable_tls_files_are_a_config_error() {
        let tls = TlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let endpoint = Endpoint::Tcp { host: "127.0.0.1".into(), port: 1, tls: Some(tls) };
        let err = connect(&host(endpoint)).await.unwrap_err();
        assert!(matches!(err, HostError::Config { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[tokio::test]
    async fn an_unparseable_tls_key_is_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let ca = write("ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let cert =
            write("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let key = write("key.pem", "this is not a key\n");
        let tls = TlsFiles { ca, cert, key: key.clone() };
        let endpoint = Endpoint::Tcp { host: "127.0.0.1".into(), port: 1, tls: Some(tls) };
        let err = connect(&host(endpoint)).await.unwrap_err();
        assert!(matches!(err, HostError::Config { .. }), "{err:?}");
        assert!(err.to_string().contains(&key), "{err}");
        assert!(is_pem_private_key(
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQ==\n-----END PRIVATE KEY-----\n"
        ));
        assert!(!is_pem_private_key(b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"));
    }

    #[tokio::test]
    async fn refused_tcp_is_unreachable() {
        // A port on loopback that nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let endpoint = Endpoint::Tcp { host: "127.0.0.1".into(), port, tls: None };
        let err = connect(&host(endpoint)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot reach tcp://127.0.0.1:{port}: connection refused")
        );
    }
}
