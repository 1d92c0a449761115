//! The connection to etcd: one client per endpoint, so that a request that stalls on one
//! member is retried on the next rather than on whatever a balancer picks, and every request
//! bounded in time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

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
                Ok(Err(error)) => last_error = Some(format!("{endpoint}: {error}")),
                Err(_) => last_error = Some(format!("{endpoint}: no answer in time")),
            }
        }
        if clients.is_empty() {
            return Err(LeaderError::Etcd(format!(
                "cannot reach any etcd endpoint ({})",
                last_error.unwrap_or_default()
            )));
        }
        Ok(Etcd {
            clients: Arc::new(clients),
            current: Arc::new(AtomicUsize::new(0)),
            timeout: settings.request_timeout,
        })
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
                Ok(Err(error)) => errors.push(format!("{}: {error}", self.endpoint(i))),
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
