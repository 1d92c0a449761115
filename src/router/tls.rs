//! TLS on the router's listener: certificates and keys from PEM files, one chosen per
//! connection by the name the client asks for (SNI), the first given as the default; ALPN
//! offers `h2` and `http/1.1`; the files are read again when they change. rustls with the
//! ring provider (no aws-lc).
//!
//! # Choosing a certificate
//!
//! Each certificate serves the names it is valid for (its subject alternative names, checked
//! as a client would). For a client's SNI: a certificate naming it exactly wins over one
//! covering it by a wildcard, an earlier one over a later one; when none covers it (or the
//! client sent no SNI, e.g. it connected to an address) the first certificate answers.
//!
//! # Wildcards: certificates cover less than routes
//!
//! A route `*.example.com` matches `a.example.com` and `a.b.example.com`
//! ([`matching`](super::matching)); a certificate `*.example.com` covers `a.example.com`
//! only, one label, as RFC 6125 (6.4.3) says and every TLS client checks. The router does not
//! stretch certificate matching to the routes' depth: a client would refuse the certificate
//! anyway. A name two labels under a route wildcard needs a certificate naming it or
//! `*.b.example.com`; without one the first certificate answers and the client refuses it.
//!
//! # Errors
//!
//! Loading says which file is wrong and how: unreadable, no PEM certificate or key in it, a
//! certificate that does not parse, a key of an unsupported kind, or a key that does not
//! belong to its certificate. At start these stop `gitfleet run`; on a reload they are logged
//! and the certificates in force stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

/// How often the files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Where a private key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM file (watched for changes like the certificate).
    File(PathBuf),
    /// PEM text given as a value (`GITFLEET_ROUTER_TLS_KEY`); `from` names where, for errors.
    Pem { text: String, from: String },
}

impl KeySource {
    fn describe(&self) -> String {
        match self {
            KeySource::File(path) => path.display().to_string(),
            KeySource::Pem { from, .. } => from.clone(),
        }
    }
}

/// One certificate chain (PEM file, end-entity first) and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: KeySource,
}

/// A loaded certificate with its key.
#[derive(Debug)]
struct Entry {
    key: Arc<CertifiedKey>,
}

/// The certificates in force, the first the default. Never empty.
#[derive(Debug)]
pub struct Certificates {
    entries: Vec<Entry>,
}

impl Certificates {
    /// The certificate for `sni` (see the module's rules).
    fn for_name(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let covers = |i: usize, name: &ServerName<'_>| {
            let der = self.entries[i].key.end_entity_cert().ok()?;
            let cert = webpki::EndEntityCert::try_from(der).ok()?;
            Some(cert.verify_is_valid_for_subject_name(name).is_ok())
        };
        let index = choose(sni, self.entries.len(), |i, name| covers(i, name).unwrap_or(false));
        &self.entries[index].key
    }
}

/// Which of `count` certificates serves `sni`: `covers(i, name)` says whether certificate
/// `i` is valid for `name`. Exact before wildcard, earlier before later, else the first.
pub fn choose(
    sni: Option<&str>,
    count: usize,
    covers: impl Fn(usize, &ServerName<'_>) -> bool,
) -> usize {
    let Some(name) = sni.and_then(|s| DnsName::try_from(s.to_ascii_lowercase()).ok()) else {
        return 0;
    };
    let name = ServerName::DnsName(name);
    // A name the certificate covers through a wildcard: the same parent, a label no real
    // certificate names.
    let sibling = match &name {
        ServerName::DnsName(dns) => dns
            .as_ref()
            .split_once('.')
            .and_then(|(_, parent)| {
                DnsName::try_from(format!("gitfleet-wildcard-probe.{parent}")).ok()
            })
            .map(ServerName::DnsName),
        _ => None,
    };
    let mut wildcard = None;
    for i in 0..count {
        if !covers(i, &name) {
            continue;
        }
        let by_wildcard = sibling.as_ref().is_some_and(|s| covers(i, s));
        if !by_wildcard {
            return i;
        }
        wildcard.get_or_insert(i);
    }
    wildcard.unwrap_or(0)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks every certificate and key; the error names the file and what is wrong.
pub fn load(files: &[CertFiles]) -> Result<Certificates, String> {
    if files.is_empty() {
        return Err("router TLS: no certificate given".into());
    }
    let provider = provider();
    let entries =
        files.iter().map(|f| load_one(f, &provider)).collect::<Result<Vec<Entry>, String>>()?;
    Ok(Certificates { entries })
}

fn load_one(files: &CertFiles, provider: &CryptoProvider) -> Result<Entry, String> {
    let cert_path = files.cert.display();
    let bytes = std::fs::read(&files.cert)
        .map_err(|e| format!("router TLS: cannot read the certificate {cert_path}: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| format!("router TLS: the certificate {cert_path} is not valid PEM: {e}"))?;
    let Some(first) = chain.first() else {
        return Err(format!(
            "router TLS: {cert_path} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----`)"
        ));
    };
    webpki::EndEntityCert::try_from(first).map_err(|e| {
        format!("router TLS: the certificate in {cert_path} is not a valid X.509 certificate: {e}")
    })?;
    let key_name = files.key.describe();
    let key_bytes = match &files.key {
        KeySource::File(path) => std::fs::read(path)
            .map_err(|e| format!("router TLS: cannot read the key {key_name}: {e}"))?,
        KeySource::Pem { text, .. } => text.as_bytes().to_vec(),
    };
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "router TLS: {key_name} holds no private key (expected PEM PKCS#8, PKCS#1 or SEC1: `-----BEGIN PRIVATE KEY-----`)"
        ),
        e => format!("router TLS: the key {key_name} is not valid PEM: {e}"),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("router TLS: the key {key_name} does not belong to the certificate {cert_path}")
        }
        e => format!("router TLS: cannot use the key {key_name} (for {cert_path}): {e}"),
    })?;
    Ok(Entry { key: Arc::new(certified) })
}

/// Answers each handshake from the certificates in force.
#[derive(Debug)]
struct Resolver(Arc<ArcSwap<Certificates>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().for_name(hello.server_name()).clone())
    }
}

/// The router's TLS side: the acceptor for its listener and the certificates behind it,
/// swapped when the files change.
pub struct Tls {
    files: Vec<CertFiles>,
    current: Arc<ArcSwap<Certificates>>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the certificates (an error names the file) and makes the acceptor.
    pub fn new(files: Vec<CertFiles>) -> Result<Arc<Tls>, String> {
        let current = Arc::new(ArcSwap::from_pointee(load(&files)?));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("router TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(current.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Ok(Arc::new(Tls { files, current, acceptor }))
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again; on success the new certificates serve the next handshakes.
    pub fn reload(&self) -> Result<(), String> {
        self.current.store(Arc::new(load(&self.files)?));
        Ok(())
    }

    /// The modification stamps of every file read, to notice changes.
    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        let stamp = |path: &Path| {
            std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        let mut stamps = Vec::new();
        for files in &self.files {
            stamps.push(stamp(&files.cert));
            if let KeySource::File(path) = &files.key {
                stamps.push(stamp(path));
            }
        }
        stamps
    }

    /// Checks the files every `interval` until `shutdown`; reloads when one changed. A reload
    /// that fails is logged, and the certificates in force stay.
    pub async fn watch(&self, interval: Duration, shutdown: CancellationToken) {
        let mut seen = self.stamps();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
            let now = self.stamps();
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(()) => tracing::info!("router TLS: certificates reloaded"),
                Err(error) => {
                    tracing::error!(%error, "router TLS: keeping the certificates in force")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Certificate `i` covers the names in `names[i]` (`*.x` covers one label under `x`).
    fn covers<'a>(names: &'a [&'a [&'a str]]) -> impl Fn(usize, &ServerName<'_>) -> bool + 'a {
        move |i, name| {
            let ServerName::DnsName(name) = name else { return false };
            let name = name.as_ref();
            names[i].iter().any(|n| match n.strip_prefix("*.") {
                Some(parent) => name.split_once('.').is_some_and(|(_, p)| p == parent),
                None => *n == name,
            })
        }
    }

    #[test]
    fn exact_names_beat_wildcards_and_the_first_is_the_default() {
        let names: &[&[&str]] = &[&["default.test"], &["*.shop.test"], &["api.shop.test"]];
        let pick = |sni| choose(sni, names.len(), covers(names));
        assert_eq!(pick(Some("api.shop.test")), 2, "exact beats an earlier wildcard");
        assert_eq!(pick(Some("API.Shop.Test")), 2, "names compare without case");
        assert_eq!(pick(Some("www.shop.test")), 1);
        assert_eq!(pick(Some("a.b.shop.test")), 0, "a wildcard covers one label");
        assert_eq!(pick(Some("other.test")), 0);
        assert_eq!(pick(None), 0);
        assert_eq!(pick(Some("not a name")), 0);
        let twice: &[&[&str]] = &[&["*.shop.test"], &["*.shop.test"]];
        assert_eq!(choose(Some("x.shop.test"), 2, covers(twice)), 0, "earlier wins");
    }

    #[test]
    fn loading_names_the_file_that_is_wrong() {
        let dir = tempfile::TempDir::new().unwrap();
        let missing = dir.path().join("missing.pem");
        let files = |cert: &Path, key: &Path| {
            vec![CertFiles { cert: cert.into(), key: KeySource::File(key.into()) }]
        };
        let error = load(&files(&missing, &missing)).unwrap_err();
        assert!(error.contains("cannot read the certificate") && error.contains("missing.pem"));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let error = load(&files(&junk, &missing)).unwrap_err();
        assert!(error.contains("junk.pem holds no certificate"), "{error}");
        assert!(load(&[]).unwrap_err().contains("no certificate"));
        let key = KeySource::Pem { text: "nothing".into(), from: "GITFLEET_ROUTER_TLS_KEY".into() };
        assert_eq!(key.describe(), "GITFLEET_ROUTER_TLS_KEY");
    }
}
