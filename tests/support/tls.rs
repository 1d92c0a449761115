//! TLS material for a test host, made with the `openssl` CLI: a CA of its own, a server
//! certificate valid for the host's inner address (IP SAN), and a client certificate, all
//! P-256 keys, valid for two days. What `dockerd --tlsverify` and bollard's rustls client need.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of one host's TLS setup.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn generate(dir: &Path, server_ip: Ipv4Addr) -> Result<TlsMaterial, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = |name: &str| dir.join(name);
    let s = |path: &PathBuf| path.display().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

    // The CA.
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    let (ca_key, ca) = (s(&p("ca-key.pem")), s(&p("ca.pem")));
    args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        "/CN=gitfleet test bed CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&args)?;

    let leaf = |name: &str, subject: &str, ext: &str| -> Result<(PathBuf, PathBuf), String> {
        let (key, csr, cert, extfile) = (
            p(&format!("{name}-key.pem")),
            p(&format!("{name}.csr")),
            p(&format!("{name}-cert.pem")),
            p(&format!("{name}.ext")),
        );
        std::fs::write(&extfile, ext)
            .map_err(|e| format!("cannot write {}: {e}", extfile.display()))?;
        let mut args = vec!["req"];
        args.extend(ec);
        let (key_s, csr_s, cert_s, ext_s) = (s(&key), s(&csr), s(&cert), s(&extfile));
        args.extend(["-keyout", &key_s, "-out", &csr_s, "-subj", subject]);
        openssl(&args)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr_s,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert_s,
            "-days",
            "2",
            "-extfile",
            &ext_s,
        ])?;
        Ok((cert, key))
    };
    let (server_cert, server_key) = leaf(
        "server",
        &format!("/CN={server_ip}"),
        &format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:{server_ip}\n"
        ),
    )?;
    let (client_cert, client_key) = leaf(
        "client",
        "/CN=gitfleet test client",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )?;
    Ok(TlsMaterial { ca: p("ca.pem"), server_cert, server_key, client_cert, client_key })
}

fn openssl(args: &[&str]) -> Result<(), String> {
    let out = Command::new(super::tool("openssl"))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`openssl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
