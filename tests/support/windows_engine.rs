//! A stand-in for a remote Windows Docker Engine (Windows Server 2022, build 20348, process
//! isolation), which cannot run on this machine: an HTTPS server on loopback that demands a
//! client certificate from its own CA (as `dockerd --tlsverify` on 2376 does) and answers the
//! Engine API calls gitfleet makes with the recorded-shape answers in `windows_engine/`
//! (reconstructed from the API reference, not captured: see its README). It keeps just enough
//! state to be applied to (networks, volumes, containers, images pulled) and records every
//! request, so a test checks the exact bodies gitfleet sends.
//!
//! ```ignore
//! let engine = WindowsEngine::start();
//! let host = engine.model_host("w");             // tcp://127.0.0.1:PORT with TLS files
//! ... plan / apply ...
//! let creates = engine.requests_to("POST", "/containers/create");
//! ```
//!
//! Anything it does not know is answered `404` with `stand-in: no such route` and recorded,
//! so a test can assert that nothing unexpected was asked.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value as Json, json};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::PrivateKeyDer};

use super::tls::{TlsMaterial, generate};

pub const VERSION: &str = include_str!("windows_engine/version.json");
pub const INFO: &str = include_str!("windows_engine/info.json");
pub const IMAGE_IIS: &str = include_str!("windows_engine/image-iis.json");
pub const DISTRIBUTION_NANOSERVER: &str =
    include_str!("windows_engine/distribution-nanoserver.json");
pub const DISTRIBUTION_ASPNET: &str = include_str!("windows_engine/distribution-aspnet.json");

/// The image on the stand-in host from the start (`image-iis.json`).
pub const IIS: &str = "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022";
/// Known to the registry only: Windows 20348.
pub const NANOSERVER: &str = "mcr.microsoft.com/windows/nanoserver:ltsc2022";
/// Known to the registry only: Linux and Windows.
pub const ASPNET: &str = "mcr.microsoft.com/dotnet/samples:aspnetapp";

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Without the `/v1.43` prefix: `/containers/create`.
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{} {}: body is not JSON ({e}): {:?}", self.method, self.path, self.body)
        })
    }
}

#[derive(Default)]
struct Engine {
    requests: Vec<Recorded>,
    containers: Vec<Container>,
    networks: Vec<Network>,
    volumes: Vec<(String, Json)>,
    /// Image reference → inspect answer.
    images: BTreeMap<String, Json>,
    next_id: u64,
}

struct Container {
    id: String,
    name: String,
    image: String,
    labels: Json,
    running: bool,
    healthcheck: bool,
    created: i64,
}

struct Network {
    id: String,
    name: String,
    driver: String,
    labels: Json,
}

pub struct WindowsEngine {
    addr: SocketAddr,
    tls: TlsMaterial,
    _dir: tempfile::TempDir,
    state: Arc<Mutex<Engine>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WindowsEngine {
    /// Starts the stand-in on `127.0.0.1:<free port>` with TLS material of its own.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = generate(dir.path(), Ipv4Addr::LOCALHOST).expect("TLS material (openssl)");
        let config = server_config(&tls);
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let mut engine = Engine::default();
        engine.images.insert(IIS.to_string(), serde_json::from_str(IMAGE_IIS).expect("fixture"));
        let state = Arc::new(Mutex::new(engine));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let state = state.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let tcp = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let listener = TlsListener { tcp, acceptor: TlsAcceptor::from(config) };
                    let app = axum::Router::new().fallback(handle).with_state(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
        };
        WindowsEngine { addr, tls, _dir: dir, state, stop: Some(stop), thread: Some(thread) }
    }

    pub fn endpoint(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    pub fn tls(&self) -> &TlsMaterial {
        &self.tls
    }

    /// `fleet.yaml` lines for a host `name` reached at the stand-in, declaring `platform` if
    /// given (indented for the `hosts:` map).
    pub fn fleet_entry(&self, name: &str, platform: Option<&str>) -> String {
        let mut out = format!(
            "  {name}:\n    endpoint: {}\n    address: 127.0.0.1\n    tls:\n      ca: {}\n      \
             cert: {}\n      key: {}\n",
            self.endpoint(),
            self.tls.ca.display(),
            self.tls.client_cert.display(),
            self.tls.client_key.display(),
        );
        if let Some(os) = platform {
            out.push_str(&format!("    platform: {{os: {os}}}\n"));
        }
        out
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests with this method and path (without the version prefix).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path == path).collect()
    }

    /// Requests that are not `GET`s (what changed the host), as `METHOD path`.
    pub fn changes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// The names of its containers that run.
    pub fn running(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.containers.iter().filter(|c| c.running).map(|c| c.name.clone()).collect()
    }
}

impl Drop for WindowsEngine {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn server_config(tls: &TlsMaterial) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&tls.ca).expect("CA")).expect("CA into roots");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.server_cert)
        .expect("server certificate")
        .collect::<Result<_, _>>()
        .expect("server certificate");
    let key = PrivateKeyDer::from_pem_file(&tls.server_key).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    Arc::new(config)
}

/// TCP + TLS handshake (bounded), for `axum::serve`.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            let handshake = self.acceptor.accept(stream);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn reply(status: StatusCode, body: Json) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Api-Version", "1.43")
        .header("OSType", "windows")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn empty(status: StatusCode) -> Response {
    Response::builder().status(status).body(Body::empty()).expect("response")
}

fn not_found(message: String) -> Response {
    reply(StatusCode::NOT_FOUND, json!({ "message": message }))
}

/// Whether `labels` carry every `key=value` of the request's `filters` (`{"label": [...]}`).
fn matches_filters(labels: &Json, query: &BTreeMap<String, String>) -> bool {
    let Some(filters) = query.get("filters") else { return true };
    let filters: Json = serde_json::from_str(filters).unwrap_or(Json::Null);
    filters["label"].as_array().into_iter().flatten().filter_map(Json::as_str).all(|wanted| {
        let (key, value) = wanted.split_once('=').unwrap_or((wanted, ""));
        labels[key].as_str() == Some(value)
    })
}

async fn handle(
    State(state): State<Arc<Mutex<Engine>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let raw = uri.path();
    // `/v1.43/info` → `/info`; `/_ping` and `/version` come unversioned too.
    let path = match raw.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
        None => raw.to_string(),
    };
    let query: BTreeMap<String, String> =
        Query::try_from_uri(&uri).map(|Query(q)| q).unwrap_or_default();
    let mut engine = state.lock().unwrap();
    engine.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.to_vec(),
    });
    answer(&mut engine, &method, &path, &query, &body)
}

fn answer(
    engine: &mut Engine,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let fixture = |text: &str| serde_json::from_str::<Json>(text).expect("fixture");
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => {
            let mut response = reply(StatusCode::OK, Json::Null);
            *response.body_mut() = Body::from("OK");
            response
        }
        ("GET", ["version"]) => reply(StatusCode::OK, fixture(VERSION)),
        ("GET", ["info"]) => reply(StatusCode::OK, fixture(INFO)),
        ("GET", ["containers", "json"]) => {
            let list: Vec<Json> = engine
                .containers
                .iter()
                .filter(|c| matches_filters(&c.labels, query))
                .map(|c| {
                    json!({
                        "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image,
                        "ImageID": "sha256:4c2d", "Command": "C:\\ServiceMonitor.exe w3svc",
                        "Created": c.created,
                        "State": if c.running { "running" } else { "created" },
                        "Status": match (c.running, c.healthcheck) {
                            (true, true) => "Up 2 seconds (healthy)",
                            (true, false) => "Up 2 seconds",
                            _ => "Created",
                        },
                        "Labels": c.labels, "Ports": [], "Mounts": [],
                        "HostConfig": { "NetworkMode": "nat" },
                    })
                })
                .collect();
            reply(StatusCode::OK, Json::Array(list))
        }
        ("GET", ["networks"]) => {
            let list: Vec<Json> = engine
                .networks
                .iter()
                .filter(|n| matches_filters(&n.labels, query))
                .map(network_json)
                .collect();
            reply(StatusCode::OK, Json::Array(list))
        }
        ("GET", ["volumes"]) => {
            let list: Vec<Json> = engine
                .volumes
                .iter()
                .filter(|(_, v)| matches_filters(&v["Labels"], query))
                .map(|(_, v)| v.clone())
                .collect();
            reply(StatusCode::OK, json!({ "Volumes": list, "Warnings": null }))
        }
        ("GET", ["networks", name]) => {
            match engine.networks.iter().find(|n| n.name == *name || n.id == *name) {
                Some(network) => reply(StatusCode::OK, network_json(network)),
                None => not_found(format!("network {name} not found")),
            }
        }
        ("POST", ["networks", "create"]) => {
            let request: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
            let name = request["Name"].as_str().unwrap_or_default().to_string();
            if engine.networks.iter().any(|n| n.name == name) {
                return reply(
                    StatusCode::CONFLICT,
                    json!({ "message": format!("network with name {name} already exists") }),
                );
            }
            engine.next_id += 1;
            let id = format!("{:064x}", engine.next_id);
            engine.networks.push(Network {
                id: id.clone(),
                name,
                driver: request["Driver"].as_str().unwrap_or("nat").to_string(),
                labels: request["Labels"].clone(),
            });
            reply(StatusCode::CREATED, json!({ "Id": id, "Warning": "" }))
        }
        ("POST", ["networks", _, "connect"]) => empty(StatusCode::OK),
        ("GET", ["volumes", name]) => match engine.volumes.iter().find(|(n, _)| n == name) {
            Some((_, volume)) => reply(StatusCode::OK, volume.clone()),
            None => not_found(format!("get {name}: no such volume")),
        },
        ("POST", ["volumes", "create"]) => {
            let request: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
            let name = request["Name"].as_str().unwrap_or_default().to_string();
            let volume = json!({
                "Name": name, "Driver": request["Driver"].as_str().unwrap_or("local"),
                "Mountpoint": format!("C:\\ProgramData\\docker\\volumes\\{name}\\_data"),
                "Labels": if request["Labels"].is_object() { request["Labels"].clone() } else { json!({}) },
                "Scope": "local", "Options": {}, "CreatedAt": "2026-12-03T10:00:00Z",
            });
            if !engine.volumes.iter().any(|(n, _)| *n == name) {
                engine.volumes.push((name, volume.clone()));
            }
            reply(StatusCode::CREATED, volume)
        }
        ("GET", ["images", ..]) if path.ends_with("/json") => {
            let name = &path["/images/".len()..path.len() - "/json".len()];
            match engine.images.get(name) {
                Some(inspect) => reply(StatusCode::OK, inspect.clone()),
                None => not_found(format!("No such image: {name}")),
            }
        }
        ("GET", ["distribution", ..]) if path.ends_with("/json") => {
            let name = &path["/distribution/".len()..path.len() - "/json".len()];
            match name {
                NANOSERVER => reply(StatusCode::OK, fixture(DISTRIBUTION_NANOSERVER)),
                ASPNET => reply(StatusCode::OK, fixture(DISTRIBUTION_ASPNET)),
                _ => reply(
                    StatusCode::UNAUTHORIZED,
                    json!({ "message": "errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required\n" }),
                ),
            }
        }
        ("POST", ["images", "create"]) => {
            let image = format!(
                "{}:{}",
                query.get("fromImage").cloned().unwrap_or_default(),
                query.get("tag").cloned().unwrap_or_else(|| "latest".into())
            );
            let known = [NANOSERVER, ASPNET].contains(&image.as_str());
            let lines = if known {
                let inspect = json!({
                    "Id": "sha256:7f1e", "RepoTags": [image], "Os": "windows",
                    "Architecture": "amd64", "OsVersion": "10.0.20348.2113",
                });
                engine.images.insert(image.clone(), inspect);
                format!(
                    "{}\n{}\n",
                    json!({ "status": format!("Pulling from {}", query.get("fromImage").cloned().unwrap_or_default()), "id": "ltsc2022" }),
                    json!({ "status": format!("Status: Downloaded newer image for {image}") })
                )
            } else {
                format!(
                    "{}\n",
                    json!({ "errorDetail": { "message": "manifest unknown" }, "error": "manifest unknown" })
                )
            };
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(lines))
                .expect("response")
        }
        ("POST", ["containers", "create"]) => {
            let request: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
            let name = query.get("name").cloned().unwrap_or_default();
            if engine.containers.iter().any(|c| c.name == name) {
                return reply(
                    StatusCode::CONFLICT,
                    json!({ "message": format!("Conflict. The container name \"/{name}\" is already in use") }),
                );
            }
            let image = request["Image"].as_str().unwrap_or_default().to_string();
            if !engine.images.contains_key(&image) {
                return not_found(format!("No such image: {image}"));
            }
            engine.next_id += 1;
            let id = format!("{:064x}", engine.next_id + 1_000);
            let created = 1_790_000_000 + engine.next_id as i64;
            engine.containers.push(Container {
                id: id.clone(),
                name,
                image,
                labels: request["Labels"].clone(),
                running: false,
                healthcheck: request["Healthcheck"]["Test"].is_array(),
                created,
            });
            reply(StatusCode::CREATED, json!({ "Id": id, "Warnings": [] }))
        }
        (_, ["containers", id, rest @ ..]) => {
            let Some(index) = engine.containers.iter().position(|c| c.id == *id || c.name == *id)
            else {
                return not_found(format!("No such container: {id}"));
            };
            match (method.as_str(), rest) {
                ("PUT", ["archive"]) => empty(StatusCode::OK),
                ("POST", ["start"]) => {
                    engine.containers[index].running = true;
                    empty(StatusCode::NO_CONTENT)
                }
                ("POST", ["stop"]) => {
                    engine.containers[index].running = false;
                    empty(StatusCode::NO_CONTENT)
                }
                ("POST", ["rename"]) => {
                    engine.containers[index].name = query.get("name").cloned().unwrap_or_default();
                    empty(StatusCode::NO_CONTENT)
                }
                ("DELETE", []) => {
                    engine.containers.remove(index);
                    empty(StatusCode::NO_CONTENT)
                }
                ("GET", ["json"]) => {
                    let c = &engine.containers[index];
                    let mut state = json!({
                        "Status": if c.running { "running" } else { "created" },
                        "Running": c.running, "Paused": false, "Restarting": false,
                        "OOMKilled": false, "Dead": false, "Pid": 4242, "ExitCode": 0, "Error": "",
                        "StartedAt": "2026-12-03T10:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z",
                    });
                    if c.healthcheck && c.running {
                        state["Health"] =
                            json!({ "Status": "healthy", "FailingStreak": 0, "Log": [] });
                    }
                    reply(
                        StatusCode::OK,
                        json!({
                            "Id": c.id, "Name": format!("/{}", c.name), "Created": "2026-12-03T10:00:00Z",
                            "State": state, "RestartCount": 0, "Image": "sha256:4c2d",
                            "Config": { "Image": c.image, "Labels": c.labels },
                        }),
                    )
                }
                ("GET", ["logs"]) => empty(StatusCode::OK),
                _ => not_found("stand-in: no such route".to_string()),
            }
        }
        _ => not_found("stand-in: no such route".to_string()),
    }
}

fn network_json(network: &Network) -> Json {
    json!({
        "Name": network.name, "Id": network.id, "Created": "2026-12-03T10:00:00Z",
        "Scope": "local", "Driver": network.driver, "EnableIPv6": false,
        "IPAM": { "Driver": "windows", "Options": null, "Config": [{ "Subnet": "172.28.16.0/20", "Gateway": "172.28.16.1" }] },
        "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": { "Network": "" },
        "ConfigOnly": false, "Containers": {}, "Options": {}, "Labels": network.labels,
    })
}
