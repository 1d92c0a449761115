//! `gitfleet run --etcd` against an etcd that wants client TLS (certificates made here with
//! the openssl CLI: a CA, a server certificate for 127.0.0.1, a client certificate) and
//! against one with etcd's own user/password authentication: with the matching flags the
//! instance leads; with a CA that did not sign etcd's certificate, or a wrong password, it
//! stops at start with an error naming the flags to fix (no retrying forever). Without
//! `--fleet`, the election group is fleet.yaml's `settings.name` (`secure` here).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::{EtcdCluster, GitRepo, tls_material};

const FLEET: &str = "\
settings: {name: secure, observe_timeout: 1s}
hosts:
  a:
    endpoint: unix:///nonexistent/gitfleet-secure-test/docker.sock
";

fn command(repo: &GitRepo, cache: &Path, etcd: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    command
        .args(["run", "--repo", repo.path().to_str().unwrap(), "--branch", &repo.branch()])
        .args(["--listen", "127.0.0.1:0", "--no-status", "--lease-ttl", "2s"])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args(etcd)
        .env("GITFLEET_LOG", "gitfleet=info");
    command
}

/// Starts the instance and waits (bounded) until its `/api/status` says it leads.
fn leads(repo: &GitRepo, etcd: &[&str]) {
    let cache = tempfile::TempDir::new().unwrap();
    let (mut child, log, rx) = crate::support::spawn_announcing(
        command(repo, cache.path(), etcd),
        &["gitfleet: listening on "],
    );
    let guard = Killed(&mut child);
    let (_, addr) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("gitfleet run did not start:\n{}", log.lock().unwrap()));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let role = role(addr);
        if role.as_deref() == Some("leader") {
            break;
        }
        assert!(
            Instant::now() < until,
            "not leading within 20 s (role {role:?}):\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
}

struct Killed<'a>(&'a mut Child);

impl Drop for Killed<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn role(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET /api/status HTTP/1.0\r\nHost: gitfleet\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body: serde_json::Value = serde_json::from_str(response.split("\r\n\r\n").nth(1)?).ok()?;
    body["leadership"]["role"].as_str().map(str::to_string)
}

/// Runs the instance expecting it to stop at start (bounded, 30 s); its standard error.
fn refused(repo: &GitRepo, etcd: &[&str]) -> String {
    let cache = tempfile::TempDir::new().unwrap();
    let mut child = command(repo, cache.path(), etcd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("gitfleet run kept running with settings etcd refuses");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn etcd_with_client_tls_leads_with_its_ca_and_refuses_another() {
    let dir = tempfile::TempDir::new().unwrap();
    let tls = tls_material(&dir.path().join("etcd"), Ipv4Addr::LOCALHOST).expect("openssl");
    let cluster = EtcdCluster::start_tls(&tls);
    let repo = GitRepo::new(&[("fleet.yaml", FLEET)]);
    let url = cluster.endpoints_arg();
    assert!(url.starts_with("https://"), "{url}");
    let (ca, cert, key) = (
        tls.ca.to_str().unwrap(),
        tls.client_cert.to_str().unwrap(),
        tls.client_key.to_str().unwrap(),
    );
    leads(&repo, &["--etcd", &url, "--etcd-ca", ca, "--etcd-cert", cert, "--etcd-key", key]);

    let other = tls_material(&dir.path().join("other"), Ipv4Addr::LOCALHOST).expect("openssl");
    let other_ca = other.ca.to_str().unwrap();
    let error = refused(
        &repo,
        &["--etcd", &url, "--etcd-ca", other_ca, "--etcd-cert", cert, "--etcd-key", key],
    );
    assert!(error.contains("--etcd-ca"), "{error}");
    assert!(error.contains("TLS"), "{error}");
    eprintln!("wrong CA: {}", error.trim());
}

#[test]
fn etcd_with_authentication_leads_with_the_password_file_and_refuses_a_wrong_one() {
    let cluster = EtcdCluster::start(1);
    cluster.enable_auth("s3cret-pw");
    let repo = GitRepo::new(&[("fleet.yaml", FLEET)]);
    let dir = tempfile::TempDir::new().unwrap();
    let (right, wrong) = (dir.path().join("right"), dir.path().join("wrong"));
    std::fs::write(&right, "s3cret-pw\n").unwrap();
    std::fs::write(&wrong, "not-it\n").unwrap();
    let url = cluster.endpoints_arg();
    let with = |file: &Path| {
        vec![
            "--etcd".to_string(),
            url.clone(),
            "--etcd-user".into(),
            "root".into(),
            "--etcd-password-file".into(),
            file.to_str().unwrap().to_string(),
        ]
    };
    let args = with(&right);
    leads(&repo, &args.iter().map(String::as_str).collect::<Vec<_>>());

    let args = with(&wrong);
    let error = refused(&repo, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(error.contains("--etcd-user / --etcd-password"), "{error}");
    assert!(error.contains("`root`"), "{error}");
    assert!(!error.contains("not-it"), "the password is never shown: {error}");
    eprintln!("wrong password: {}", error.trim());

    // Without credentials, etcd's answer says authentication is required.
    let error = refused(&repo, &["--etcd", &url]);
    assert!(error.contains("--etcd-user"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fleet_the_election_group_is_fleet_yamls_name() {
    let cluster = EtcdCluster::start(1);
    let repo = GitRepo::new(&[("fleet.yaml", FLEET)]);
    let url = cluster.endpoints_arg();
    let leading = {
        let (repo, url) = (&repo, url.clone());
        move || leads(repo, &["--etcd", &url])
    };
    // The instance holds the key while it leads; read it from etcd itself meanwhile.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            leading();
            let _ = done_tx.send(());
        });
        let mut client = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(etcd_client::Client::connect([url.as_str()], None))
        })
        .expect("an etcd client");
        let until = Instant::now() + Duration::from_secs(30);
        let found = loop {
            let keys = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(client.get(
                    "/gitfleet/",
                    Some(etcd_client::GetOptions::new().with_prefix().with_keys_only()),
                ))
            })
            .expect("a read");
            let keys: Vec<String> =
                keys.kvs().iter().filter_map(|kv| kv.key_str().ok().map(str::to_string)).collect();
            if keys.iter().any(|k| k == "/gitfleet/secure/leader") {
                break keys;
            }
            assert!(Instant::now() < until, "no /gitfleet/secure/leader: {keys:?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(found.iter().all(|k| k.starts_with("/gitfleet/secure/")), "{found:?}");
        done_rx.recv_timeout(Duration::from_secs(60)).expect("the instance led");
    });
}
