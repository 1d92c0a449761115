//! `gitfleet run`'s HTTP side end to end, without Docker (the fleet's one host is a socket
//! that does not exist, so it is reported unreachable): the page, the webhooks on their own
//! listener (`--hooks-listen`), `gitfleet status` against it, a real Prometheus scraping it,
//! and SIGTERM with a live stream and a stalled client open.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::GitRepo;

const FLEET: &str = "\
settings: {name: webtest, observe_timeout: 1s}
hosts:
  a:
    endpoint: unix:///nonexistent/gitfleet-web-test/docker.sock
";

const SHOP: &str = "services:\n  web:\n    image: gitfleet/web:1\n";

/// A running `gitfleet run`; killed on drop.
pub(crate) struct Run {
    child: Child,
    pub(crate) listen: SocketAddr,
    pub(crate) hooks: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- gitfleet run log ----\n{}", self.log.lock().unwrap());
        }
    }
}

pub(crate) fn start(repo: &GitRepo, cache: &Path, extra: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    command
        .args(["run", "--repo", repo.path().to_str().unwrap(), "--branch", &repo.branch()])
        .args(["--listen", "127.0.0.1:0", "--no-status"])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args(extra)
        .env("GITFLEET_LOG", "gitfleet=info");
    let (child, log, rx) = crate::support::spawn_announcing(
        command,
        &["gitfleet: listening on ", "gitfleet: webhooks listening on "],
    );
    let wanted = if extra.contains(&"--hooks-listen") { 2 } else { 1 };
    let (mut listen, mut hooks) = (None, None);
    for _ in 0..wanted {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((0, addr)) => listen = Some(addr),
            Ok((_, addr)) => hooks = Some(addr),
            Err(_) => panic!("gitfleet run did not start listening:\n{}", log.lock().unwrap()),
        }
    }
    Run { child, listen: listen.expect("the page's address"), hooks, log }
}

/// One HTTP/1.0 request: the status code and the body.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

pub(crate) fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("{what}: after {:.1}s", started.elapsed().as_secs_f64());
}

pub(crate) fn fleet_repo() -> GitRepo {
    GitRepo::new(&[("fleet.yaml", FLEET), ("apps/shop/compose.yaml", SHOP)])
}

#[test]
fn hooks_listen_status_and_sigterm() {
    let repo = fleet_repo();
    let cache = tempfile::TempDir::new().unwrap();
    let run = start(
        &repo,
        cache.path(),
        &["--hooks-listen", "127.0.0.1:0", "--webhook-github-secret", "s3cret"],
    );
    let hooks = run.hooks.expect("a hooks listener");
    wait_until("first sync", Duration::from_secs(30), || {
        http(run.listen, "GET", "/readyz", &[], "").0 == 200
    });

    // The page and the API on --listen; no webhooks there.
    let (code, html) = http(run.listen, "GET", "/", &[], "");
    assert_eq!(code, 200);
    assert!(html.contains("data-host=\"a\"") && html.contains("Unreachable"), "{html}");
    assert_eq!(http(run.listen, "POST", "/hooks/github", &[], "{}").0, 404);
    assert_eq!(http(run.listen, "POST", "/", &[], "").0, 405);
    // The webhooks on --hooks-listen, and nothing else there.
    let headers = [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", "sha256=00")];
    assert_eq!(http(hooks, "POST", "/hooks/github", &headers, "{}").0, 401);
    assert_eq!(http(hooks, "GET", "/", &[], "").0, 404);
    assert_eq!(http(hooks, "GET", "/api/status", &[], "").0, 404);
    let (_, metrics) = http(run.listen, "GET", "/metrics", &[], "");
    assert!(
        metrics.contains(
            "gitfleet_webhook_deliveries_total{forge=\"github\",result=\"unauthorized\"} 1"
        ),
        "{metrics}"
    );
    super::web_routes::promtool_check(&metrics);

    // gitfleet status, as text and as JSON.
    let server = format!("http://{}", run.listen);
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(["status", "--server", &server])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        text.contains("shop/web")
            && text.lines().any(|l| l.starts_with("a ") && l.contains("✕ away")),
        "{text}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(["status", "--server", &server, "--format", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["hosts"]["a"]["state"], "away");
    // Nothing listens on port 9 of loopback: a clear error, exit code 1.
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(["status", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the controller"));

    // SIGTERM with a live stream and a half-sent request open: gitfleet exits promptly.
    let mut live = TcpStream::connect(run.listen).unwrap();
    live.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut half = TcpStream::connect(run.listen).unwrap();
    half.write_all(b"GET /api/st").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut run = run;
    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    let started = Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            eprintln!("gitfleet run exited {status} {:?} after SIGTERM", started.elapsed());
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "gitfleet run still running 8 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The live stream was ended, not left hanging.
    live.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    assert!(live.read_to_end(&mut rest).is_ok(), "the event stream was not closed");
}

/// A real Prometheus (Debian's) scrapes `gitfleet run` every second; its query API then has
/// `gitfleet_host_up`.
#[test]
fn prometheus_scrapes_gitfleet() {
    let prometheus = which("prometheus").unwrap_or_else(|| {
        panic!("this test needs Debian's prometheus: apt-get install prometheus (scripts/install-deps.sh)")
    });
    let repo = fleet_repo();
    let cache = tempfile::TempDir::new().unwrap();
    let run = start(&repo, cache.path(), &[]);
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: gitfleet\n    static_configs:\n      - targets: ['{}']\n",
            run.listen
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let web = format!("127.0.0.1:{port}");
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start prometheus");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = server.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let _server = Kill(server);
    let addr: SocketAddr = web.parse().unwrap();
    let started = Instant::now();
    let result = loop {
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            drop(stream.write_all(b""));
            let (code, body) = http(addr, "GET", "/api/v1/query?query=gitfleet_host_up", &[], "");
            if code == 200 {
                let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
                let result = answer["data"]["result"].as_array().cloned().unwrap_or_default();
                if !result.is_empty() {
                    break result;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prometheus did not scrape gitfleet_host_up within 60 s; its log:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("prometheus had gitfleet_host_up after {:?}: {result:?}", started.elapsed());
    assert_eq!(result[0]["metric"]["host"], "a");
    assert_eq!(result[0]["metric"]["job"], "gitfleet");
    assert_eq!(result[0]["value"][1], "0");
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var("PATH").ok()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}
