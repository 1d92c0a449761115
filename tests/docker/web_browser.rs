//! The status page in a real browser: Debian's chromium, driven through chromedriver with
//! fantoccini (W3C WebDriver over plain HTTP on loopback), against `gitfleet run` deploying a
//! local repository onto two real Docker hosts. The page shows the hosts, the services and
//! the deployed revision; a commit shows up without a reload (a marker set in the page
//! survives); a broken commit shows its `file:line:col` error. Screenshots at desktop, phone
//! (390 px) and dark sizes go to `target/test-artifacts/`.
//!
//! Fails (never skips) when chromium or chromedriver is missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::{GitRepo, Testbed};

fn fleet_yaml(bed: &Testbed) -> String {
    let mut text = String::from("settings: {name: webui, observe_timeout: 3s}\nhosts:\n");
    for host in bed.hosts() {
        text.push_str(&format!(
            "  {}:\n    endpoint: {}\n    capacity: {{cpus: 4, memory: 4g}}\n    labels: {{zone: {}}}\n",
            host.name(),
            host.tcp_endpoint(),
            host.name()
        ));
    }
    text
}

fn shop(replicas: u32, extra: &str) -> String {
    format!(
        "services:\n  web:\n    image: gitfleet/web:1\n{extra}    deploy:\n      replicas: {replicas}\n      update_config: {{monitor: 1s}}\n      resources: {{reservations: {{cpus: '0.5', memory: 256m}}}}\n  api:\n    image: gitfleet/api:1\n"
    )
}

/// A child process killed on drop, with its standard error kept for failures.
struct Process {
    name: &'static str,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Process {
    /// Starts `command` with standard error captured; `ready` is sent each line.
    fn spawn(
        name: &'static str,
        mut command: Command,
        mut on_line: impl FnMut(&str) + Send + 'static,
    ) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                on_line(&line);
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Process { name, child, log }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log.lock().unwrap());
        }
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    // Read until the peer closes or goes quiet (chromedriver may keep the connection open).
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let response = String::from_utf8_lossy(&bytes);
    let code = response.split(' ').nth(1)?.parse().ok()?;
    Some((code, response.split_once("\r\n\r\n")?.1.to_string()))
}

fn deployed(addr: SocketAddr) -> String {
    let Some((200, body)) = http_get(addr, "/api/status") else { return String::new() };
    let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    status["deployed"]["commit"].as_str().unwrap_or_default().to_string()
}

fn program(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "the browser test needs `{name}`: apt-get install chromium chromium-driver fonts-dejavu-core \
         (bash scripts/install-deps.sh). It fails rather than skips."
    )
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn browser(driver: &str, profile: &Path, dark: bool) -> Client {
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    if dark {
        args.push("--force-dark-mode".into());
        args.push("--blink-settings=preferredColorScheme=0".into());
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": program("chromium").display().to_string(), "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(driver)
        .await
        .unwrap_or_else(|e| panic!("cannot open a chromium session through chromedriver: {e}"))
}

/// Runs `script` (which returns a value) until it returns `true`, or fails with `what`.
async fn wait_js(client: &Client, what: &str, timeout: Duration, script: &str) {
    let started = Instant::now();
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        if value == json!(true) {
            eprintln!("{what}: after {:.1}s", started.elapsed().as_secs_f64());
            return;
        }
        if started.elapsed() > timeout {
            let html = client.source().await.unwrap_or_default();
            panic!("{what}: not within {timeout:?} (last: {value}); the page:\n{html}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn screenshot(client: &Client, dir: &Path, name: &str, width: u32, height: u32) {
    client.set_window_size(width, height).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = client.screenshot().await.unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

#[test]
fn the_status_page_in_a_real_browser() {
    let chromedriver = program("chromedriver");
    program("chromium");
    let bed = Testbed::builder().hosts(2).images().start();
    let repo = GitRepo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/shop/compose.yaml", &shop(2, "")),
    ]);
    let cache = tempfile::TempDir::new().unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    command
        .args(["run", "--repo", repo.path().to_str().unwrap(), "--branch", &repo.branch()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-status",
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ])
        .env("GITFLEET_LOG", "gitfleet=info");
    let _gitfleet = Process::spawn("gitfleet run", command, move |line| {
        if let Some(addr) = line.strip_prefix("gitfleet: listening on ") {
            let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("gitfleet run listens");
    let first = repo.head();
    let started = Instant::now();
    while deployed(addr) != first {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the first revision was not deployed in 90 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let port = free_port();
    let mut command = Command::new(chromedriver);
    command.arg(format!("--port={port}"));
    let _driver = Process::spawn("chromedriver", command, |_| {});
    let driver_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while http_get(driver_addr, "/status").is_none_or(|(code, _)| code != 200) {
        assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not answer in 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let driver = format!("http://{driver_addr}");
    let page = format!("http://{addr}/");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profiles = tempfile::TempDir::new().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver, &profiles.path().join("light"), false).await;
        client.set_window_size(1280, 900).await.unwrap();
        client.goto(&page).await.unwrap();

        // The hosts, the services and the deployed revision.
        for css in ["[data-host=\"a\"]", "[data-host=\"b\"]", "[data-service=\"shop/web\"]", "[data-service=\"shop/api\"]"] {
            client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        }
        let revision = client
            .find(Locator::Css("#deployed [data-revision]"))
            .await
            .unwrap()
            .attr("data-revision")
            .await
            .unwrap();
        assert_eq!(revision.as_deref(), Some(first.as_str()));
        wait_js(&client, "the live line says Live", Duration::from_secs(10), "return document.getElementById('live').dataset.live === 'live'").await;
        let web_state = client
            .find(Locator::Css("[data-service=\"shop/web\"]"))
            .await
            .unwrap()
            .attr("data-state")
            .await
            .unwrap();
        assert_eq!(web_state.as_deref(), Some("ok"));
        screenshot(&client, &artifacts, "status-desktop.png", 1280, 900).await;

        // Each replica in its row, with its image, revision and uptime; a host's reservations
        // as a meter with the same in words; the commit's age.
        let row = client.find(Locator::Css("[data-replica=\"shop/web#1\"]")).await.unwrap();
        let text = row.text().await.unwrap();
        assert!(text.contains("gitfleet/web:1"), "{text}");
        assert!(text.contains(&first[..12]), "the replica's revision: {text}");
        assert_eq!(row.attr("data-phase").await.unwrap().as_deref(), Some("running"));
        let uptime = row.find(Locator::Css("td[data-uptime] time")).await.unwrap().text().await.unwrap();
        assert!([" ms", " s", " min"].iter().any(|u| uptime.ends_with(u)), "uptime: {uptime}");
        let meters = client.find_all(Locator::Css("[data-meter=\"CPU\"] meter")).await.unwrap();
        assert_eq!(meters.len(), 2, "a CPU meter per host");
        let mut reserved = 0.0;
        for meter in &meters {
            assert_eq!(meter.attr("max").await.unwrap().as_deref(), Some("4000"));
            reserved += meter.attr("value").await.unwrap().unwrap().parse::<f64>().unwrap();
        }
        assert_eq!(reserved, 1000.0, "two web replicas reserve 0.5 CPU each");
        let cpu = client.find(Locator::Css("[data-host=\"a\"] [data-meter=\"CPU\"]")).await.unwrap().text().await.unwrap();
        assert!(cpu.contains("of 4 CPUs reserved"), "{cpu}");
        let deployed = client.find(Locator::Css("#deployed")).await.unwrap().text().await.unwrap();
        assert!(deployed.contains("committed"), "{deployed}");

        // A commit shows up without a reload: the marker set now survives.
        client.execute("window.gitfleetMarker = 'still here'; return true", vec![]).await.unwrap();
        repo.commit(&[("apps/shop/compose.yaml", &shop(3, ""))], &[]);
        let second = repo.head();
        let check = format!(
            "var r = document.querySelector('#deployed [data-revision]'); return !!r && r.dataset.revision === '{second}'"
        );
        wait_js(&client, "the new revision on the page", Duration::from_secs(90), &check).await;
        let marker = client.execute("return window.gitfleetMarker", vec![]).await.unwrap();
        assert_eq!(marker, json!("still here"), "the page was reloaded");
        wait_js(
            &client,
            "three replicas of web",
            Duration::from_secs(60),
            "var r = document.querySelector('[data-service=\"shop/web\"] td.num'); return !!r && r.textContent.trim() === '3'",
        )
        .await;

        // A broken app: its error with file:line:col, its good revision still running.
        repo.commit(&[("apps/shop/compose.yaml", &shop(3, "    build: .\n"))], &[]);
        wait_js(
            &client,
            "the broken commit's error",
            Duration::from_secs(60),
            "var s = document.getElementById('s-attention'); return !!s && !s.hidden && /apps\\/shop\\/compose\\.yaml:\\d+:\\d+/.test(s.textContent)",
        )
        .await;
        let attention = client.find(Locator::Css("#s-attention")).await.unwrap().text().await.unwrap();
        assert!(attention.contains("build"), "{attention}");
        // Per-app isolation: the broken app keeps running the good revision, and says so.
        assert!(attention.contains(&format!("keeps running revision {}", &second[..12])), "{attention}");
        assert_eq!(client.execute("return window.gitfleetMarker", vec![]).await.unwrap(), json!("still here"));
        screenshot(&client, &artifacts, "status-desktop-attention.png", 1280, 900).await;
        client.execute("document.getElementById('s-apps').scrollIntoView(); return true", vec![]).await.unwrap();
        screenshot(&client, &artifacts, "status-desktop-apps-hosts.png", 1280, 900).await;
        client.execute("window.scrollTo(0, 0); return true", vec![]).await.unwrap();
        screenshot(&client, &artifacts, "status-phone.png", 390, 844).await;
        for (section, name) in [("s-apps", "status-phone-apps.png"), ("s-hosts", "status-phone-hosts.png")] {
            client.execute(&format!("document.getElementById('{section}').scrollIntoView(); return true"), vec![]).await.unwrap();
            screenshot(&client, &artifacts, name, 390, 844).await;
        }
        client.execute("window.scrollTo(0, 0); return true", vec![]).await.unwrap();
        // The phone layout does not scroll sideways (tables scroll inside their own box).
        let overflow = client
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1", vec![])
            .await
            .unwrap();
        assert_eq!(overflow, json!(true), "the page is wider than a 390 px phone");
        client.close().await.unwrap();

        let dark = browser(&driver, &profiles.path().join("dark"), true).await;
        dark.set_window_size(1280, 900).await.unwrap();
        dark.goto(&page).await.unwrap();
        let is_dark = dark.execute("return matchMedia('(prefers-color-scheme: dark)').matches", vec![]).await.unwrap();
        assert_eq!(is_dark, json!(true), "chromium did not report dark mode");
        screenshot(&dark, &artifacts, "status-dark.png", 1280, 900).await;
        dark.execute("document.getElementById('s-apps').scrollIntoView(); return true", vec![]).await.unwrap();
        screenshot(&dark, &artifacts, "status-dark-apps-hosts.png", 1280, 900).await;
        dark.execute("window.scrollTo(0, 0); return true", vec![]).await.unwrap();
        screenshot(&dark, &artifacts, "status-dark-phone.png", 390, 844).await;
        dark.execute("document.getElementById('s-apps').scrollIntoView(); return true", vec![]).await.unwrap();
        screenshot(&dark, &artifacts, "status-dark-phone-apps.png", 390, 844).await;
        dark.close().await.unwrap();
    });
}
