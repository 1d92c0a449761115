//! A Git smart-HTTP server on 127.0.0.1 for the tests: a tiny HTTP/1.1 front (one request per
//! connection) in front of the real `git http-backend` CGI program, serving every repository
//! under a root directory, optionally behind HTTP basic authentication.
//!
//! ```ignore
//! let server = GitHttpServer::start(root.path(), Some(("bot", "token")));
//! let url = server.url("origin.git"); // http://127.0.0.1:<port>/origin.git
//! ```
//!
//! Pushes are allowed (`http.receivepack`), so server-side hooks in the repositories run.
//! Every request is recorded (method, path and query, status) for the tests to look at.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Served {
    pub method: String,
    pub target: String,
    pub status: u16,
}

/// The server; stops on drop.
pub struct GitHttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<Served>>>,
    thread: Option<JoinHandle<()>>,
}

impl GitHttpServer {
    /// Serves the repositories under `root`; with `basic_auth`, every request must carry
    /// those credentials or gets a 401.
    pub fn start(root: &Path, basic_auth: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let expected = basic_auth.map(|(user, password)| {
            (user.to_string(), format!("Basic {}", base64(format!("{user}:{password}").as_bytes())))
        });
        let root = root.to_path_buf();
        let thread = {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Some(record) = serve(stream, &root, expected.as_ref()) {
                        served.lock().unwrap().push(record);
                    }
                }
            })
        };
        GitHttpServer { addr, stop, served, thread: Some(thread) }
    }

    /// `http://127.0.0.1:<port>/<repository>`
    pub fn url(&self, repository: &str) -> String {
        format!("http://{}/{repository}", self.addr)
    }

    /// Every request answered so far.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().unwrap().clone()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop up.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn serve(stream: TcpStream, root: &Path, auth: Option<&(String, String)>) -> Option<Served> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let request = read_request(&mut reader)?;
    let mut stream = stream;
    let user = match auth {
        Some((user, expected)) => {
            if request.header("authorization") != Some(expected.as_str()) {
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return Some(served(&request, 401));
            }
            Some(user.as_str())
        }
        None => None,
    };
    let (status, head, body) = run_backend(&request, root, user);
    let mut response = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in head {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.write_all(&body);
    let code = status.split(' ').next().and_then(|c| c.parse().ok()).unwrap_or(500);
    Some(served(&request, code))
}

fn served(request: &Request, status: u16) -> Served {
    Served { method: request.method.clone(), target: request.target.clone(), status }
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request = Request { method, target, headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = request.header("content-length") {
        let mut body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
        request.body = body;
    }
    Some(request)
}

/// Runs `git http-backend` for `request`: (status line, headers, body).
fn run_backend(
    request: &Request,
    root: &Path,
    user: Option<&str>,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = request.header(header) {
            command.env(variable, value);
        }
    }
    if let Some(user) = user {
        command.env("REMOTE_USER", user);
    }
    let Ok(mut child) = command.spawn() else {
        return ("500 Internal Server Error".into(), Vec::new(), b"cannot run git".to_vec());
    };
    let mut stdin = child.stdin.take().unwrap();
    let body = request.body.clone();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output().expect("git http-backend");
    let _ = writer.join();
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, gap)) = split else {
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        return ("500 Internal Server Error".into(), Vec::new(), text.into_bytes());
    };
    let mut status = "200 OK".to_string();
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("status") {
                status = value.trim().to_string();
            } else {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }
    (status, headers, out[end + gap..].to_vec())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A bare repository in its own temporary directory (an "origin"), removed on drop.
pub struct BareRepo {
    dir: tempfile::TempDir,
    name: String,
}

impl BareRepo {
    /// `<tmp>/<name>`, a new bare repository; serve `root()` to reach it as `<name>`.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::TempDir::new().expect("temp dir");
        git2::Repository::init_bare(dir.path().join(name)).expect("git init --bare");
        BareRepo { dir, name: name.to_string() }
    }

    /// The directory holding the repository (what a server serves).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The repository itself.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn open(&self) -> git2::Repository {
        git2::Repository::open_bare(self.path()).expect("open the bare repository")
    }

    /// The commit `refname` points at, if it exists.
    pub fn tip(&self, refname: &str) -> Option<String> {
        self.open().refname_to_id(refname).ok().map(|id| id.to_string())
    }

    /// Installs an executable server-side hook (`pre-receive`, say) with this shell script.
    pub fn hook(&self, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path().join("hooks").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
