//! The connection to etcd: one client per endpoint, so that a request that stalls on one
//! member is retried on the next rather than on whatever a balancer picks, and every request
//! bounded in time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};

use super::LeaderError;
use super::settings::LeaderSettings;

/// Clients for every endpoint, and which one is in use.
#[derive(Clone)]
pub struct Etcd {
    clients: Arc<Vec<(String, Client)>>,
    current: Arc<AtomicUsize>,
    timeout: Duration,
}

impl Etcd {
    /// Builds a client per endpoint. Connections are made on first use; with credentials, the
    /// first reachable endpoint authenticates now.
    pub async fn connect(settings: &LeaderSettings) -> Result<Etcd, LeaderError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(settings.request_timeout)
            .with_keep_alive(Duration::from_secs(1), settings.request_timeout)
            .with_keep_alive_while_idle(true);
        if let Some(tls) = &settings.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        if let Some((user, password)) = &settings.credentials {
            options = options.with_user(user.clone(), password.clone());
        }
        let mut clients = Vec::new();
        let mut last_error = None;
        for endpoint in &settings.endpoints {
            let connect = Client::connect([endpoint.as_str()], Some(options.clone()));
            match tokio::time::timeout(settings.request_timeout, connect).await {
                Ok(Ok(client)) => clients.push((endpoint.clone(), client)),
                Ok(Err(error)) => {
                    let error = format!("{endpoint}: {}", chain(&error));
                    if let Some(refused) = refusal(settings, &error) {
                        return Err(refused);
                    }
                    last_error = Some(error);
                }
                Err(_) => last_error = Some(format!("{endpoint}: no answer in time")),
            }
        }
        if clients.is_empty() {
            return Err(LeaderError::Etcd(format!(
                "cannot reach any etcd endpoint ({})",
                last_error.unwrap_or_default()
            )));
        }
        let etcd = Etcd {
            clients: Arc::new(clients),
            current: Arc::new(AtomicUsize::new(0)),
            timeout: settings.request_timeout,
        };
        // One read now, so that TLS or credentials etcd refuses are an error at start (they
        // are not worth retrying); an etcd that does not answer yet is retried by the election.
        let key = settings.leader_key();
        let probe = etcd
            .call(settings.request_timeout * etcd.len() as u32, |mut client| {
                let key = key.clone();
                async move { client.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await;
        if let Err(error) = probe {
            if let Some(refused) = refusal(settings, &error) {
                return Err(refused);
            }
            tracing::warn!(%error, "etcd does not answer yet; campaigning as soon as it does");
        }
        Ok(etcd)
    }

    /// The client in use and its index (for [`Etcd::rotate`]).
    pub fn client(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::Relaxed) % self.clients.len();
        (i, self.clients[i].1.clone())
    }

    /// The endpoint of client `i`, for messages.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.clients[i % self.clients.len()].0
    }

    /// Moves on from client `i` (unless another caller already did).
    pub fn rotate(&self, i: usize) {
        let next = (i + 1) % self.clients.len();
        let _ = self.current.compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Runs `call` on the current client, bounded by the request timeout and by `within`;
    /// on an error or a timeout tries the next endpoint, while time is left, each endpoint
    /// at most once.
    pub async fn call<T, F, Fut>(&self, within: Duration, call: F) -> Result<T, String>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let until = tokio::time::Instant::now() + within;
        let mut errors = Vec::new();
        for _ in 0..self.clients.len() {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let (i, client) = self.client();
            match tokio::time::timeout(left.min(self.timeout), call(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => errors.push(format!("{}: {}", self.endpoint(i), chain(&error))),
                Err(_) => errors.push(format!("{}: no answer in time", self.endpoint(i))),
            }
            self.rotate(i);
        }
        if errors.is_empty() {
            errors.push("no time left".into());
        }
        Err(errors.join("; "))
    }
}

/// An error with its causes (`transport error: ...: invalid peer certificate: UnknownIssuer`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

/// Whether `error` (an etcd request's) says etcd refuses this instance's TLS setup or
/// credentials: then the settings are wrong, and the error names the flags to fix.
fn refusal(settings: &LeaderSettings, error: &str) -> Option<LeaderError> {
    let lower = error.to_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if says(&["authentication failed", "invalid user id or password", "user name not found"]) {
        let user = settings.credentials.as_ref().map_or("", |(user, _)| user.as_str());
        return Some(LeaderError::Settings {
            what: "--etcd-user / --etcd-password".into(),
            reason: format!(
                "etcd refused the credentials of user `{user}` ({error}); check the user and the password (file)"
            ),
        });
    }
    if says(&["user name is empty", "invalid auth token"]) && settings.credentials.is_none() {
        return Some(LeaderError::Settings {
            what: "--etcd-user / --etcd-password".into(),
            reason: format!(
                "etcd requires authentication ({error}); give --etcd-user and --etcd-password-file"
            ),
        });
    }
    if says(&["certificate", "unknownissuer", "handshake", "tls"]) {
        return Some(LeaderError::Settings {
            what: "--etcd-ca / --etcd-cert / --etcd-key".into(),
            reason: format!(
                "the TLS connection to etcd failed ({error}); check that --etcd-ca is the CA that signed etcd's certificate, and the client certificate and key etcd expects"
            ),
        });
    }
    None
}

fn tls_options(tls: &super::settings::EtcdTls) -> Result<TlsOptions, LeaderError> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| LeaderError::Settings {
            what: what.to_string(),
            reason: format!("cannot read {}: {e}", path.display()),
        })
    };
    let mut options = TlsOptions::new();
    if let Some(ca) = &tls.ca {
        options = options.ca_certificate(Certificate::from_pem(read(ca, "--etcd-ca")?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options
            .identity(Identity::from_pem(read(cert, "--etcd-cert")?, read(key, "--etcd-key")?));
    }
    Ok(options)
}
