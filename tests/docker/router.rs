//! The router inside `gitfleet run --router-listen`, end to end: a local Git repository
//! (followed by file-system notifications), two real Docker daemons from the test bed, and
//! replicas (`gitfleet/whoami`, busybox httpd with a CGI) that answer with their hostname
//! (the container's short id) and log every POST body to a bind-mounted file.
//!
//! One scenario, to pay for the test bed once (its steps say what they prove):
//! 1. the routed service publishes nothing by hand, and requests spread over both hosts;
//! 2. a start-first rolling update under continuous GET and POST load (bounded in count and
//!    time) ends with zero failed requests and no POST delivered twice;
//! 3. a replica made unhealthy leaves rotation; with none healthy the answer is 503 with
//!    `Retry-After`; a host name without a rule is 404;
//! 4. a host cut off mid-load: no request hangs past its timeout, and the other host answers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{DockerHost, GitRepo, Testbed};

fn fleet_yaml(bed: &Testbed) -> String {
    let mut text = String::from("settings: {name: rt, observe_timeout: 3s}\nhosts:\n");
    for host in bed.hosts() {
        text.push_str(&format!("  {}:\n    endpoint: {}\n", host.name(), host.tcp_endpoint()));
    }
    text
}

fn shop(tag: u32, log_dir: &str) -> String {
    format!(
        "services:
  web:
    image: gitfleet/whoami:{tag}
    volumes: [\"{log_dir}:/log\"]
    deploy:
      replicas: 2
      placement: {{max_replicas_per_node: 1}}
      update_config: {{parallelism: 1, order: start-first, monitor: 1s}}
    x-routes:
      - {{host: shop.test, port: 80}}
"
    )
}

/// `gitfleet run` with its router; killed on drop (its log printed if the test failed).
struct Gitfleet {
    child: Child,
    router: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Drop for Gitfleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- gitfleet run log ----\n{}", self.log.lock().unwrap());
        }
    }
}

impl Gitfleet {
    fn start(repo: &GitRepo, cache: &std::path::Path) -> Gitfleet {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
        command
            .args(["run", "--repo", repo.path().to_str().unwrap(), "--branch", &repo.branch()])
            .args(["--listen", "127.0.0.1:0", "--router-listen", "127.0.0.1:0", "--no-status"])
            .args(["--cache-dir", cache.to_str().unwrap(), "--resync-interval", "2s"])
            .env("GITFLEET_LOG", "gitfleet=debug,gitfleet::router::access=warn");
        let (child, log, rx) =
            crate::support::spawn_announcing(command, &["gitfleet: router listening on "]);
        let (_, router) = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            panic!("gitfleet run's router did not listen:\n{}", log.lock().unwrap())
        });
        Gitfleet { child, router, log }
    }
}

/// One HTTP/1.1 request through the router (`Connection: close`), bounded by `timeout`:
/// `Ok((status, headers, body))` or `Err(why)`.
fn request(
    router: SocketAddr,
    method: &str,
    host: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, String, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&router, timeout).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let head = format!(
        "{method} / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("read: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or(format!("no head: {response:?}"))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, head.to_string(), body.trim_end().to_string()))
}

/// A chunked body's content.
fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or(format!("bad chunk: {rest:?}"))?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|e| format!("{e}: {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after.get(..size).ok_or(format!("short chunk: {after:?}"))?;
        body.push_str(chunk);
        rest = after[size..].strip_prefix("\r\n").ok_or("no CRLF after a chunk")?;
    }
}

/// The answering replica's hostname and version (`"3f2a.. v1"`) of a 200.
fn who(body: &str) -> String {
    body.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

/// Short id → host name of the running `web` replicas.
fn replicas(bed: &Testbed) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for host in bed.hosts() {
        let ids = host.docker(&[
            "ps",
            "--filter",
            "label=io.gitfleet.service=web",
            "--format",
            "{{.ID}}",
        ]);
        for id in ids.lines() {
            all.insert(id.trim()[..12].to_string(), host.name().to_string());
        }
    }
    all
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        match check() {
            Ok(()) => {
                eprintln!("{what}: after {:.1}s", started.elapsed().as_secs_f64());
                return;
            }
            Err(last) if started.elapsed() > timeout => {
                panic!("{what}: not within {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// What the load generator saw.
#[derive(Default)]
struct Load {
    sent: AtomicU64,
    failures: Mutex<Vec<String>>,
    answered_by: Mutex<BTreeMap<String, u64>>,
    posted: Mutex<Vec<String>>,
    slowest: Mutex<Duration>,
}

/// Runs GET and POST requests alternately from `threads` threads until `stop` is set, at
/// most `max` requests in all (each bounded by `timeout`).
fn load(
    router: SocketAddr,
    threads: usize,
    max: u64,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) -> (Arc<Load>, Vec<std::thread::JoinHandle<()>>) {
    let seen = Arc::new(Load::default());
    let handles = (0..threads)
        .map(|t| {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) && seen.sent.fetch_add(1, Ordering::SeqCst) < max
                {
                    i += 1;
                    let post = i % 2 == 0;
                    let id = format!("t{t}-{i}");
                    let started = Instant::now();
                    let result = if post {
                        request(router, "POST", "shop.test", &id, timeout)
                    } else {
                        request(router, "GET", "shop.test", "", timeout)
                    };
                    let took = started.elapsed();
                    {
                        let mut slowest = seen.slowest.lock().unwrap();
                        *slowest = (*slowest).max(took);
                    }
                    match result {
                        Ok((200, _, body)) => {
                            *seen.answered_by.lock().unwrap().entry(who(&body)).or_default() += 1;
                            if post {
                                seen.posted.lock().unwrap().push(id);
                            }
                        }
                        Ok((status, _, body)) => seen
                            .failures
                            .lock()
                            .unwrap()
                            .push(format!("{id}: {status} {body} after {took:?}")),
                        Err(e) => {
                            seen.failures.lock().unwrap().push(format!("{id}: {e} after {took:?}"))
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    (seen, handles)
}

#[test]
fn routed_service_through_rollout_health_and_a_host_cut_off() {
    let bed = Testbed::builder().hosts(2).images().start();
    let logs = tempfile::TempDir::new().unwrap();
    let log_dir = logs.path().display().to_string();
    let cache = tempfile::TempDir::new().unwrap();
    let repo = GitRepo::new(&[
        ("fleet.yaml", &fleet_yaml(&bed)),
        ("apps/shop/compose.yaml", &shop(1, &log_dir)),
    ]);
    let gitfleet = Gitfleet::start(&repo, cache.path());
    let router = gitfleet.router;

    // 1. Deployed with nothing published by hand; requests spread over both hosts.
    let mut seen = BTreeSet::new();
    wait_until("both replicas answer through the router", Duration::from_secs(90), || {
        let body = match request(router, "GET", "shop.test", "", Duration::from_secs(5)) {
            Ok((200, _, body)) => body,
            other => return Err(format!("{other:?}")),
        };
        seen.insert(who(&body));
        if seen.len() == 2 { Ok(()) } else { Err(format!("seen {seen:?}")) }
    });
    let before = replicas(&bed);
    let hosts: BTreeSet<&String> = before.values().collect();
    assert_eq!(hosts.len(), 2, "one replica on each host: {before:?}");
    for (id, host) in &before {
        let ports = bed.host(host).docker(&["port", id, "80/tcp"]);
        assert!(
            ports.contains("0.0.0.0:"),
            "the route port is published on a port Docker chose: {ports}"
        );
    }

    // 2. A start-first rolling update under load: nothing fails, no POST arrives twice.
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, threads) = load(router, 3, 3000, Duration::from_secs(10), stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    repo.commit(&[("apps/shop/compose.yaml", &shop(2, &log_dir))], &[]);
    wait_until("every replica runs v2", Duration::from_secs(120), || {
        let answers = seen.answered_by.lock().unwrap().clone();
        let running = replicas(&bed);
        let old_running = running.keys().any(|id| before.contains_key(id));
        let v2 = answers.keys().filter(|k| k.ends_with(" v2")).count();
        if !old_running && v2 >= 2 { Ok(()) } else { Err(format!("{running:?} {answers:?}")) }
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let failures = seen.failures.lock().unwrap().clone();
    let sent = seen.sent.load(Ordering::SeqCst).min(3000);
    eprintln!(
        "rollout under load: {sent} requests, answered by {:?}, slowest {:?}",
        seen.answered_by.lock().unwrap(),
        seen.slowest.lock().unwrap()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests during the rollout: {failures:#?}",
        failures.len()
    );
    let delivered = std::fs::read_to_string(logs.path().join("posts")).unwrap_or_default();
    let mut count: BTreeMap<&str, u32> = BTreeMap::new();
    for line in delivered.lines() {
        *count.entry(line.split(' ').next().unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "POSTs delivered twice: {twice:?}");
    for id in seen.posted.lock().unwrap().iter() {
        assert_eq!(count.get(id.as_str()), Some(&1), "POST {id} answered 200 but not delivered");
    }

    // 3. A replica made unhealthy leaves rotation; none healthy is 503; no rule is 404.
    let now = replicas(&bed);
    let (sick, sick_host) = now.iter().next().map(|(i, h)| (i.clone(), h.clone())).unwrap();
    bed.host(&sick_host).docker(&["exec", &sick, "touch", "/tmp/unhealthy"]);
    std::thread::sleep(Duration::from_secs(5));
    wait_until("the unhealthy replica is out of rotation", Duration::from_secs(20), || {
        for _ in 0..10 {
            match request(router, "GET", "shop.test", "", Duration::from_secs(5)) {
                Ok((200, _, body)) if !body.starts_with(&sick) => {}
                other => return Err(format!("{other:?}")),
            }
        }
        Ok(())
    });
    let (healthy, healthy_host) =
        now.iter().find(|(i, _)| **i != sick).map(|(i, h)| (i.clone(), h.clone())).unwrap();
    bed.host(&healthy_host).docker(&["exec", &healthy, "touch", "/tmp/unhealthy"]);
    wait_until(
        "no healthy replica: 503 with Retry-After",
        Duration::from_secs(20),
        || match request(router, "GET", "shop.test", "", Duration::from_secs(5)) {
            Ok((503, head, body))
                if head.to_ascii_lowercase().contains("retry-after:")
                    && body.contains("no healthy replica") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        },
    );
    let (status, _, _) =
        request(router, "GET", "nothing.test", "", Duration::from_secs(5)).unwrap();
    assert_eq!(status, 404);
    for (id, host) in &now {
        bed.host(host).docker(&["exec", id, "rm", "-f", "/tmp/unhealthy"]);
    }
    wait_until("both back in rotation", Duration::from_secs(20), || {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            if let Ok((200, _, body)) =
                request(router, "GET", "shop.test", "", Duration::from_secs(5))
            {
                seen.insert(who(&body));
            }
        }
        if seen.len() == 2 { Ok(()) } else { Err(format!("{seen:?}")) }
    });

    // 4. A host cut off mid-load: no request hangs past its timeout; the other host answers.
    let cut: &DockerHost = bed.host(&healthy_host);
    let (survivor, _) = now.iter().find(|(_, h)| **h != healthy_host).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let timeout = Duration::from_secs(40);
    let (seen, threads) = load(router, 3, 2000, timeout, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    cut.cut_network();
    std::thread::sleep(Duration::from_secs(4));
    let after_cut = seen.answered_by.lock().unwrap().clone();
    wait_until("the other host answers alone", Duration::from_secs(60), || {
        let mut by = BTreeSet::new();
        for _ in 0..10 {
            match request(router, "GET", "shop.test", "", Duration::from_secs(5)) {
                Ok((200, _, body)) => {
                    by.insert(who(&body));
                }
                other => return Err(format!("{other:?}")),
            }
        }
        if by.len() == 1 && by.iter().all(|w| w.starts_with(survivor.as_str())) {
            Ok(())
        } else {
            Err(format!("{by:?}"))
        }
    });
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    cut.restore_network();
    let failures = seen.failures.lock().unwrap().clone();
    let slowest = *seen.slowest.lock().unwrap();
    eprintln!(
        "host cut off: {} requests, answered by {:?} ({after_cut:?} 4 s after the cut), {} failed, slowest {slowest:?}",
        seen.sent.load(Ordering::SeqCst),
        seen.answered_by.lock().unwrap(),
        failures.len()
    );
    assert!(slowest < timeout, "a request hung past its timeout: {slowest:?}");
    assert!(
        failures.len() <= 3,
        "a host cut off costs at most the requests in flight to it (3 clients): {failures:#?}"
    );
    drop(gitfleet);
}
