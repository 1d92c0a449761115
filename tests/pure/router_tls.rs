//! The router's TLS listener against real TLS clients on loopback: certificates made here
//! with the `openssl` CLI (one CA; a default certificate, an exact name, a wildcard),
//! rustls clients (hyper over tokio-rustls, HTTP/1.1 and HTTP/2 by ALPN), Debian's curl with
//! `--resolve`, and `openssl s_client` for a name no certificate covers. Certificates by SNI,
//! exact before wildcard, the default for the rest; a reload when the files change; errors
//! that name the file.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gitfleet::router::table::static_backend;
use gitfleet::router::tls::{CertFiles, KeySource, Tls};
use gitfleet::router::{Config, RouteSpec, Router};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_util::sync::CancellationToken;

use crate::support::tool;

fn openssl(args: &[&str]) {
    let out = Command::new(tool("openssl")).args(args).output().expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA in `dir` (`ca.pem`, `ca-key.pem`), valid two days.
fn ca(dir: &Path) {
    let (key, cert) = (dir.join("ca-key.pem"), dir.join("ca.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "2",
        "-subj",
        "/CN=router test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
}

/// A leaf signed by the CA in `dir`, for `san` (`DNS:a.test,IP:127.0.0.1`), with common
/// name `cn`: (`<name>-cert.pem`, `<name>-key.pem`).
fn leaf(dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let p = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let (key, csr, cert, ext) = (p("-key.pem"), p(".csr"), p("-cert.pem"), p(".ext"));
    std::fs::write(
        &ext,
        format!("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName={san}\n"),
    )
    .unwrap();
    let s = |path: &PathBuf| path.to_str().unwrap().to_string();
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
        "-subj",
        &format!("/CN={cn}"),
    ]);
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-out",
        &s(&cert),
        "-days",
        "2",
        "-extfile",
        &s(&ext),
    ]);
    (cert, key)
}

/// A backend answering `proto=<X-Forwarded-Proto> host=<Host>`.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let header = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string()
                    };
                    let text =
                        format!("proto={} host={}", header("x-forwarded-proto"), header("host"));
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The router with one rule per host in `hosts`, all to `upstream`, serving TLS.
async fn router(
    tls: Arc<Tls>,
    upstream: SocketAddr,
    hosts: &[&str],
) -> (SocketAddr, CancellationToken) {
    let router =
        Router::new(Config { probe_interval: Duration::from_millis(100), ..Config::default() });
    router.set_routes(
        hosts
            .iter()
            .map(|host| RouteSpec {
                host: host.to_string(),
                path_prefix: "/".into(),
                service: format!("test/{host}"),
                port: 0,
                backends: vec![static_backend("local", "b", &upstream.to_string())],
                sticky: false,
            })
            .collect(),
    );
    let shutdown = CancellationToken::new();
    // The files are checked every 100 ms here (2 s in `gitfleet run`).
    let (watched, stop) = (tls.clone(), shutdown.clone());
    tokio::spawn(async move { watched.watch(Duration::from_millis(100), stop).await });
    let (addr, _) = router
        .spawn_tls_listener("127.0.0.1:0".parse().unwrap(), tls, shutdown.clone())
        .await
        .unwrap();
    let (prober, stop) = (router.clone(), shutdown.clone());
    tokio::spawn(async move { prober.run_prober(stop).await });
    let started = Instant::now();
    while !router.view().iter().all(|r| r.endpoints.iter().all(|e| e.state == "in_rotation")) {
        assert!(started.elapsed() < Duration::from_secs(5), "backend not in rotation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (addr, shutdown)
}

fn client_config(ca: &Path, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One GET over TLS to `addr` for `name` (SNI and Host), verified against the CA: (the
/// certificate the router presented, the ALPN protocol, the response body).
async fn get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<(CertificateDer<'static>, Option<Vec<u8>>, String), String> {
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (_, session) = tls.get_ref();
        let cert = session.peer_certificates().ok_or("no certificate")?[0].clone();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        let empty = || Empty::<Bytes>::new();
        let response = if alpn.as_deref() == Some(b"h2") {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let req = Request::get(format!("https://{name}/")).body(empty()).unwrap();
            send.send_request(req).await.map_err(|e| e.to_string())?
        } else {
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let req = Request::get("/").header("host", name).body(empty()).unwrap();
            send.send_request(req).await.map_err(|e| e.to_string())?
        };
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let body = String::from_utf8_lossy(&body).to_string();
        if status != 200 {
            return Err(format!("{status}: {body}"));
        }
        Ok((cert.into_owned(), alpn, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

fn der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_by_sni_over_http1_and_http2_and_reloaded_on_change() {
    let dir = tempfile::TempDir::new().unwrap();
    let d = dir.path();
    ca(d);
    let default = leaf(d, "default", "default.test", "DNS:default.test,IP:127.0.0.1");
    let wildcard = leaf(d, "wildcard", "wildcard", "DNS:*.shop.test");
    let exact = leaf(d, "exact", "api.shop.test", "DNS:api.shop.test");
    let files = [&default, &wildcard, &exact]
        .iter()
        .map(|(cert, key)| CertFiles { cert: cert.clone(), key: KeySource::File(key.clone()) })
        .collect();
    let tls = Tls::new(files).unwrap();
    let upstream = backend().await;
    let hosts = ["default.test", "www.shop.test", "api.shop.test", "127.0.0.1"];
    let (addr, _shutdown) = router(tls, upstream, &hosts).await;
    let ca = d.join("ca.pem");

    // By SNI: exact beats wildcard; ALPN picks h2 when offered, else HTTP/1.1.
    let h2 = client_config(&ca, &[b"h2", b"http/1.1"]);
    let h1 = client_config(&ca, &[b"http/1.1"]);
    for (name, expected) in
        [("api.shop.test", &exact), ("www.shop.test", &wildcard), ("default.test", &default)]
    {
        let (cert, alpn, body) = get(addr, h2.clone(), name).await.unwrap();
        assert_eq!(cert, der(&expected.0), "{name} got the wrong certificate");
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(body, format!("proto=https host={name}"));
        let (cert, alpn, body) = get(addr, h1.clone(), name).await.unwrap();
        assert_eq!(cert, der(&expected.0));
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(body, format!("proto=https host={name}"));
    }
    // No SNI (an address): the default certificate, whose IP name the client checks.
    let (cert, _, _) = get(addr, h1.clone(), "127.0.0.1").await.unwrap();
    assert_eq!(cert, der(&default.0));

    // A name no certificate covers: the default one (seen by openssl s_client).
    let out = Command::new(tool("openssl"))
        .args(["s_client", "-connect", &addr.to_string(), "-servername", "other.test"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CN = default.test") || text.contains("CN=default.test"), "{text}");

    // Debian's curl, HTTP/2 and HTTP/1.1, names resolved to loopback by --resolve.
    for version in ["--http2", "--http1.1"] {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", version, "--cacert", ca.to_str().unwrap()])
            .args(["--resolve", &format!("www.shop.test:{}:127.0.0.1", addr.port())])
            .args(["-w", " %{http_version}", &format!("https://www.shop.test:{}/", addr.port())])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let want = if version == "--http2" { "2" } else { "1.1" };
        assert_eq!(
            text,
            format!("proto=https host=www.shop.test:{} {want}", addr.port()),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The exact certificate's files replaced: the next handshakes get the new one.
    let renewed = leaf(d, "renewed", "api.shop.test (renewed)", "DNS:api.shop.test");
    std::fs::copy(&renewed.1, &exact.1).unwrap();
    std::fs::copy(&renewed.0, &exact.0).unwrap();
    let started = Instant::now();
    loop {
        // A fresh client each time: a resumed session would show the first certificate.
        let fresh = client_config(&ca, &[b"http/1.1"]);
        let (cert, _, _) = get(addr, fresh, "api.shop.test").await.unwrap();
        if cert == der(&renewed.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the renewed certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("renewed certificate served after {:?}", started.elapsed());
}

#[test]
fn bad_certificates_and_keys_are_named_at_start() {
    let dir = tempfile::TempDir::new().unwrap();
    let d = dir.path();
    ca(d);
    let (a_cert, a_key) = leaf(d, "a", "a.test", "DNS:a.test");
    let (_, b_key) = leaf(d, "b", "b.test", "DNS:b.test");
    let junk = d.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let error = |cert: &Path, key: &Path| {
        Tls::new(vec![CertFiles { cert: cert.into(), key: KeySource::File(key.into()) }])
            .err()
            .expect("refused")
    };
    let e = error(&a_cert, &b_key);
    assert!(
        e.contains(&format!(
            "the key {} does not belong to the certificate {}",
            b_key.display(),
            a_cert.display()
        )),
        "{e}"
    );
    let e = error(&a_cert, &junk);
    assert!(e.contains(&format!("{} holds no private key", junk.display())), "{e}");
    let e = error(&junk, &a_key);
    assert!(e.contains(&format!("{} holds no certificate", junk.display())), "{e}");
    let e = error(&d.join("missing.pem"), &a_key);
    assert!(e.contains("cannot read the certificate") && e.contains("missing.pem"), "{e}");
    let pem = std::fs::read_to_string(&a_key).unwrap();
    assert!(
        Tls::new(vec![CertFiles {
            cert: a_cert.clone(),
            key: KeySource::Pem { text: pem, from: "env".into() }
        }])
        .is_ok()
    );

    // `gitfleet run` stops at once with that message, before touching the repository.
    let out = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(["run", "--repo", d.join("no-repo").to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--router-tls-listen", "127.0.0.1:0", "--router-tls-cert", a_cert.to_str().unwrap()])
        .args(["--router-tls-key-file", b_key.to_str().unwrap()])
        .args(["--cache-dir", d.join("cache").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not belong to the certificate"), "{stderr}");
}
