//! The edges of the Git side, against real remotes on loopback: a remote that stalls (never
//! answers, or answers then stalls mid-pack, or sends only keep-alives) is given up after the
//! timeout; the cached head survives the remote going away; stale lock files are cleaned up;
//! preview references are pruned and the mirror compacted; the command line reads `--repo`
//! through the same mirror and never shows a password.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::support::{BareRepo, GitHttpServer, GitRepo};
use gitfleet::git::{Credentials, GitError, Mirror};
use tempfile::TempDir;

const FLEET: &str = "hosts:\n  a:\n    endpoint: tcp://10.250.20.2:2375\n";
const APP: &str = "services:\n  web:\n    image: nginx:1\n";

/// Runs the gitfleet binary; returns (exit code, stdout, stderr, how long it took).
fn gitfleet(args: &[&str]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(args)
        .env_remove("GITFLEET_GIT_TOKEN")
        .output()
        .expect("run gitfleet");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        started.elapsed(),
    )
}

/// What the stalling server does after the pack starts.
#[derive(Clone, Copy)]
enum Stall {
    /// Nothing more, ever: the connection stays open and silent.
    Silent,
    /// An empty progress packet (a keep-alive) every 200 ms, forever.
    KeepAlive,
}

/// A smart-HTTP server that advertises a real repository's references (from `git
/// upload-pack --advertise-refs`), then answers the fetch with a NAK and the first bytes of a
/// pack, and stalls.
struct StallingServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl StallingServer {
    fn start(repository: &Path, stall: Stall) -> Self {
        let output = Command::new("git")
            .args(["upload-pack", "--stateless-rpc", "--advertise-refs"])
            .arg(repository)
            .output()
            .expect("git upload-pack (git is installed by scripts/install-deps.sh)");
        assert!(output.status.success(), "git upload-pack --advertise-refs failed");
        let mut advertisement = b"001e# service=git-upload-pack\n0000".to_vec();
        advertisement.extend_from_slice(&output.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (advertisement, stopping) = (advertisement.clone(), stopping.clone());
                std::thread::spawn(move || answer(stream, &advertisement, stall, &stopping));
            }
        });
        StallingServer { addr, stop }
    }

    fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}{}/x.git", self.addr)
    }
}

impl Drop for StallingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn answer(stream: TcpStream, advertisement: &[u8], stall: Stall, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let mut stream = stream;
    if request_line.starts_with("GET ") {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            advertisement.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(advertisement);
        return;
    }
    // The fetch: NAK, then a pack header announcing five objects on band 1, then the stall.
    // Chunked, as git's own server answers (libgit2 reads a body without a length as empty).
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-result\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let chunk = |stream: &mut TcpStream, data: &[u8]| {
        let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(b"\r\n");
        stream.write_all(&bytes).and_then(|()| stream.flush())
    };
    let _ = stream.write_all(head.as_bytes());
    let _ = chunk(&mut stream, b"0008NAK\n0011\x01PACK\x00\x00\x00\x02\x00\x00\x00\x05");
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        if let Stall::KeepAlive = stall {
            if chunk(&mut stream, b"0005\x02").is_err() {
                return;
            }
        }
    }
}

/// A bare origin with one commit on `main` (and `HEAD` pointing at it), and its working copy.
fn origin() -> (BareRepo, GitRepo) {
    let origin = BareRepo::new("x.git");
    let work = GitRepo::new(&[("fleet.yaml", FLEET), ("apps/web/compose.yaml", APP)]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    origin.open().set_head("refs/heads/main").unwrap();
    (origin, work)
}

#[test]
fn a_fetch_that_stalls_mid_pack_or_on_keep_alives_is_given_up_after_the_timeout() {
    let (origin, _work) = origin();
    for (stall, what) in [(Stall::Silent, "silent"), (Stall::KeepAlive, "keep-alives")] {
        let server = StallingServer::start(&origin.path(), stall);
        let cache = TempDir::new().unwrap();
        let url = server.url("bob:s3cr3t@");
        let args = ["validate", "--repo", &url, "--rev", "main", "--git-timeout", "2s"];
        let cache_dir = cache.path().display().to_string();
        let args: Vec<&str> = args.into_iter().chain(["--cache-dir", &cache_dir]).collect();
        let (code, stdout, stderr, elapsed) = gitfleet(&args);
        assert_eq!(code, 1, "{what}: {stdout}{stderr}");
        assert!(
            stderr.contains("fetch of main from http://bob:***@127.0.0.1:")
                && stderr.contains("timed out after 2 s (no progress)"),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("s3cr3t") && !stdout.contains("s3cr3t"), "{what}: {stderr}");
        // Bounded: the timeout, plus slack for starting a process on a loaded machine.
        assert!(elapsed >= Duration::from_secs(2), "{what}: gave up early: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "{what}: took {elapsed:?}");
    }
}

#[test]
fn a_remote_that_never_answers_is_given_up_after_the_timeout() {
    // Accepted by the kernel (listen backlog), never answered.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://bob:s3cr3t@{}/x.git", listener.local_addr().unwrap());
    let cache = TempDir::new().unwrap();
    let cache_dir = cache.path().display().to_string();
    let (code, _, stderr, elapsed) =
        gitfleet(&["validate", "--repo", &url, "--git-timeout", "2s", "--cache-dir", &cache_dir]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("timed out after 2 s"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn validate_repo_never_prints_the_password() {
    let cache = TempDir::new().unwrap();
    let cache_dir = cache.path().display().to_string();
    let (code, stdout, stderr, _) = gitfleet(&[
        "validate",
        "--repo",
        "https://bob:s3cr3t@127.0.0.1:9/x.git",
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("https://bob:***@127.0.0.1:9/x.git"), "{stderr}");
    assert!(!stderr.contains("s3cr3t") && !stdout.contains("s3cr3t"), "{stderr}");
    assert_no_file_contains(cache.path(), "s3cr3t");
}

#[test]
fn validate_repo_reads_head_a_branch_and_a_commit_through_the_mirror() {
    let (origin, work) = origin();
    let first = work.head();
    let second = work.commit(&[("apps/api/compose.yaml", APP)], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    let server = GitHttpServer::start(origin.root(), Some(("bob", "t0ken-123")));
    let url = server.url("x.git");
    let cache = TempDir::new().unwrap();
    let cache_dir = cache.path().display().to_string();
    let secrets = TempDir::new().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "t0ken-123\n").unwrap();
    let token_file = token_file.display().to_string();
    for (rev, apps) in [("HEAD", 2), ("main", 2), (first.as_str(), 1), (second.as_str(), 2)] {
        let (code, stdout, stderr, _) = gitfleet(&[
            "validate",
            "--repo",
            &url,
            "--rev",
            rev,
            "--git-username",
            "bob",
            "--git-token-file",
            &token_file,
            "--cache-dir",
            &cache_dir,
            "--format",
            "json",
        ]);
        assert_eq!(code, 0, "{rev}: {stdout}{stderr}");
        assert!(stdout.contains(&format!("{apps} apps")), "{rev}: {stdout}");
    }
    // Without the token the server says no, and the message says what failed.
    let (code, _, stderr, _) =
        gitfleet(&["validate", "--repo", &url, "--rev", "main", "--cache-dir", &cache_dir]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot fetch main from") && stderr.contains("credentials"),
        "{stderr}"
    );
    assert_no_file_contains(cache.path(), "t0ken-123");
}

#[test]
fn the_cached_head_is_usable_after_a_restart_while_the_remote_is_down() {
    let (origin, work) = origin();
    let cache = TempDir::new().unwrap();
    let server = GitHttpServer::start(origin.root(), None);
    let url = server.url("x.git");
    {
        let mirror = Mirror::open(&url, cache.path(), Credentials::None).unwrap();
        assert_eq!(mirror.cached_head("main").unwrap(), None, "nothing fetched yet");
        assert_eq!(mirror.fetch_branch("main").unwrap().commit, work.head());
    }
    drop(server);
    // "Restarted": a new mirror on the same cache, and the remote is gone.
    let mirror = Mirror::open(&url, cache.path(), Credentials::None).unwrap();
    assert!(matches!(mirror.fetch_branch("main"), Err(GitError::Fetch { .. })));
    let cached = mirror.cached_head("main").unwrap().expect("the cached head");
    assert_eq!(cached.commit, work.head());
    let tree = gitfleet::git::read_commit(mirror.repository(), &cached.commit).unwrap();
    assert!(tree.get("apps/web/compose.yaml").is_some());
    assert_eq!(mirror.cached_head("other").unwrap(), None);
}

/// Makes an empty file at `path`, last modified an hour ago.
fn plant_lock(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
}

#[test]
fn stale_locks_in_the_mirror_are_removed_on_open_and_only_reported_in_a_local_repository() {
    let (origin, work) = origin();
    let cache = TempDir::new().unwrap();
    let server = GitHttpServer::start(origin.root(), None);
    let url = server.url("x.git");
    let dir: PathBuf = {
        let mirror = Mirror::open(&url, cache.path(), Credentials::None).unwrap();
        mirror.fetch_branch("main").unwrap();
        mirror.repository().path().to_path_buf()
    };
    // A process killed mid-write left these.
    let locks = ["refs/heads/main.lock", "packed-refs.lock", "config.lock"].map(|l| dir.join(l));
    for lock in &locks {
        plant_lock(lock);
    }
    let next = work.commit(&[("apps/api/compose.yaml", APP)], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    // With main.lock in place the fetch could never move main; on open it is cleaned up.
    let mirror = Mirror::open(&url, cache.path(), Credentials::None).unwrap();
    for lock in &locks {
        assert!(!lock.exists(), "{} was not removed", lock.display());
    }
    assert_eq!(mirror.fetch_branch("main").unwrap().commit, next);

    // A local repository's lock may be held by a live git: it stays.
    let index_lock = work.path().join(".git/index.lock");
    let ref_lock = work.path().join(".git/refs/heads/main.lock");
    plant_lock(&index_lock);
    plant_lock(&ref_lock);
    let local = work.path().display().to_string();
    let mirror = Mirror::open(&local, Path::new("/nonexistent"), Credentials::None).unwrap();
    assert!(index_lock.exists() && ref_lock.exists());
    assert_eq!(mirror.fetch_branch(&work.branch()).unwrap().commit, next);
}

/// The `*.pack` files and loose objects of a bare repository.
fn packs_and_loose(dir: &Path) -> (usize, usize) {
    let objects = dir.join("objects");
    let packs = std::fs::read_dir(objects.join("pack"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count();
    let loose = std::fs::read_dir(&objects)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 2)
        .map(|e| std::fs::read_dir(e.path()).unwrap().count())
        .sum();
    (packs, loose)
}

#[test]
fn closed_previews_are_pruned_and_25_fetches_compact_into_one_pack() {
    let (origin, work) = origin();
    // Two pull requests, each with a commit of its own.
    let mut pr_commits = Vec::new();
    for pr in [1, 2] {
        let fork = GitRepo::new(&[("fleet.yaml", FLEET), ("apps/pr/compose.yaml", APP)]);
        fork.commit(&[("apps/pr/note.txt", &format!("pull request {pr}\n"))], &[]);
        fork.push(&origin.path(), &format!("+HEAD:refs/pull/{pr}/head"));
        pr_commits.push(fork.head());
    }
    let server = GitHttpServer::start(origin.root(), None);
    let cache = TempDir::new().unwrap();
    let mirror = Mirror::open(&server.url("x.git"), cache.path(), Credentials::None).unwrap();
    mirror.fetch_ref("refs/pull/1/head").unwrap();
    mirror.fetch_ref("refs/pull/2/head").unwrap();
    for i in 0..25 {
        work.commit(&[("apps/web/n.txt", &format!("{i}\n"))], &[]);
        work.push(&origin.path(), "HEAD:refs/heads/main");
        assert_eq!(mirror.fetch_branch("main").unwrap().commit, work.head());
    }
    let dir = mirror.repository().path().to_path_buf();
    let (packs, _) = packs_and_loose(&dir);
    assert!(packs >= 25, "each fetch brought a pack: {packs}");

    let open = BTreeSet::from(["refs/pull/2/head".to_string()]);
    assert_eq!(mirror.prune_previews(&open).unwrap(), ["refs/pull/1/head"]);
    assert!(mirror.repository().find_reference("refs/gitfleet/preview/pull/2/head").is_ok());
    mirror.compact().unwrap();
    assert_eq!(packs_and_loose(&dir), (1, 0), "one pack, no loose objects");

    let reopened = git2::Repository::open_bare(&dir).unwrap();
    let gone = git2::Oid::from_str(&pr_commits[0]).unwrap();
    let kept = git2::Oid::from_str(&pr_commits[1]).unwrap();
    assert!(reopened.find_commit(gone).is_err(), "the closed PR's commit is dropped");
    assert!(reopened.find_commit(kept).is_ok());
    // Still a working mirror.
    let next = work.commit(&[("apps/web/n.txt", "after\n")], &[]);
    work.push(&origin.path(), "HEAD:refs/heads/main");
    assert_eq!(mirror.fetch_branch("main").unwrap().commit, next);
}

fn assert_no_file_contains(dir: &Path, secret: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_no_file_contains(&path, secret);
        } else if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "{} contains the secret", path.display());
        }
    }
}

#[test]
fn git_token_files_are_read_by_every_command_and_named_when_missing() {
    for command in ["validate", "run"] {
        let (code, _, stderr, _) = gitfleet(&[
            command,
            "--repo",
            "https://127.0.0.1:9/x.git",
            "--git-token-file",
            "/nonexistent/token",
        ]);
        assert_eq!(code, 1, "{command}: {stderr}");
        // Named with the file and the flag (run also names its environment variable).
        assert!(
            stderr.contains("the secret file /nonexistent/token (--git-token-file"),
            "{command}: {stderr}"
        );
    }
}
