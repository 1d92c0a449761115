//! `gitfleet run`'s router TLS settings: the TLS listener and its certificates and keys, from
//! the flags (and their variables) or the configuration file, checked for consistency. The
//! files themselves are read by [`crate::router::tls`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

use crate::router::tls::{CertFiles, KeySource};

/// One certificate in the configuration file's `router_tls:` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigCert {
    pub cert: PathBuf,
    pub key_file: Option<PathBuf>,
    /// The key as PEM text (prefer `key_file`).
    pub key: Option<String>,
}

/// What the flags and the configuration file say.
pub struct Given {
    pub listen: Option<SocketAddr>,
    /// `--router-tls-cert` (repeated, or comma-separated in the variable).
    pub certs: Vec<PathBuf>,
    /// `--router-tls-key-file`, one per certificate.
    pub key_files: Vec<PathBuf>,
    /// `--router-tls-key` / `GITFLEET_ROUTER_TLS_KEY`: the key of a single certificate.
    pub key: Option<String>,
    pub in_config: Vec<ConfigCert>,
}

/// The TLS listener and its certificates (the first the default), or `None` without TLS.
/// Flags win over the configuration file as a whole.
pub fn resolve(given: Given) -> anyhow::Result<Option<(SocketAddr, Vec<CertFiles>)>> {
    let Given { listen, certs, key_files, key, in_config } = given;
    let files = if !certs.is_empty() {
        match key {
            Some(text) => {
                if certs.len() != 1 || !key_files.is_empty() {
                    bail!(
                        "--router-tls-key holds one key, for one --router-tls-cert; with several certificates give --router-tls-key-file once per certificate"
                    );
                }
                vec![CertFiles {
                    cert: certs[0].clone(),
                    key: KeySource::Pem {
                        text,
                        from: "--router-tls-key / GITFLEET_ROUTER_TLS_KEY".into(),
                    },
                }]
            }
            None => {
                if key_files.len() != certs.len() {
                    bail!(
                        "{} --router-tls-cert but {} --router-tls-key-file: give one key file per certificate, in the same order",
                        certs.len(),
                        key_files.len()
                    );
                }
                certs
                    .into_iter()
                    .zip(key_files)
                    .map(|(cert, key)| CertFiles { cert, key: KeySource::File(key) })
                    .collect()
            }
        }
    } else if !key_files.is_empty() || key.is_some() {
        bail!("a router TLS key was given without --router-tls-cert");
    } else {
        in_config
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let key = match (c.key_file, c.key) {
                    (Some(path), None) => KeySource::File(path),
                    (None, Some(text)) => KeySource::Pem {
                        text,
                        from: format!("router_tls[{i}].key in the configuration file"),
                    },
                    _ => bail!(
                        "router_tls[{i}] ({}) in the configuration file needs one of key_file or key",
                        c.cert.display()
                    ),
                };
                Ok(CertFiles { cert: c.cert, key })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    match (listen, files.is_empty()) {
        (None, true) => Ok(None),
        (Some(addr), false) => Ok(Some((addr, files))),
        (Some(addr), true) => bail!(
            "--router-tls-listen {addr} needs a certificate: --router-tls-cert and --router-tls-key-file (or router_tls: in the configuration file)"
        ),
        (None, false) => bail!(
            "router TLS certificates were given but no --router-tls-listen (or router_tls_listen:) to serve them on"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given() -> Given {
        Given {
            listen: Some("127.0.0.1:8443".parse().unwrap()),
            certs: vec![],
            key_files: vec![],
            key: None,
            in_config: vec![],
        }
    }

    #[test]
    fn certificates_pair_with_their_keys() {
        let (addr, files) = resolve(Given {
            certs: vec!["a.pem".into(), "b.pem".into()],
            key_files: vec!["a.key".into(), "b.key".into()],
            ..given()
        })
        .unwrap()
        .unwrap();
        assert_eq!(addr.port(), 8443);
        assert_eq!(files[1].cert, PathBuf::from("b.pem"));
        assert_eq!(files[1].key, KeySource::File("b.key".into()));
        let one =
            resolve(Given { certs: vec!["a.pem".into()], key: Some("PEM".into()), ..given() })
                .unwrap()
                .unwrap();
        assert!(matches!(&one.1[0].key, KeySource::Pem { text, .. } if text == "PEM"));
        let config =
            vec![ConfigCert { cert: "c.pem".into(), key_file: Some("c.key".into()), key: None }];
        let from_file = resolve(Given { in_config: config, ..given() }).unwrap().unwrap();
        assert_eq!(from_file.1[0].key, KeySource::File("c.key".into()));
        assert!(resolve(Given { listen: None, ..given() }).unwrap().is_none());
    }

    #[test]
    fn inconsistent_settings_say_what_to_give() {
        let error = |g: Given| resolve(g).unwrap_err().to_string();
        let e = error(Given { certs: vec!["a.pem".into()], ..given() });
        assert!(e.contains("1 --router-tls-cert but 0 --router-tls-key-file"), "{e}");
        let e = error(Given {
            certs: vec!["a.pem".into(), "b.pem".into()],
            key: Some("PEM".into()),
            ..given()
        });
        assert!(e.contains("one key, for one --router-tls-cert"), "{e}");
        assert!(error(given()).contains("needs a certificate"));
        let e = error(Given {
            listen: None,
            certs: vec!["a.pem".into()],
            key_files: vec!["a.key".into()],
            ..given()
        });
        assert!(e.contains("no --router-tls-listen"), "{e}");
        let config = vec![ConfigCert { cert: "c.pem".into(), key_file: None, key: None }];
        let e = error(Given { in_config: config, ..given() });
        assert!(e.contains("router_tls[0] (c.pem)") && e.contains("key_file or key"), "{e}");
    }
}
