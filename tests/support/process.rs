//! A `gitfleet run` (or any process) started for a test: its standard error is collected into
//! a shared log, and the addresses it announces on lines with given prefixes
//! (`gitfleet: listening on 127.0.0.1:PORT`) are handed back as they come. Also a one-off
//! command of the binary ([`run_gitfleet`]) and the files of a checkout it reads
//! ([`write_files`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// Everything the process wrote to standard error so far.
pub type Log = Arc<Mutex<String>>;

/// Starts `command` with its standard error piped into a [`Log`]. Each line starting with
/// `prefixes[i]` sends `(i, the address after it)` on the returned channel.
pub fn spawn_announcing(
    mut command: Command,
    prefixes: &'static [&'static str],
) -> (Child, Log, Receiver<(usize, SocketAddr)>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gitfleet run");
    let stderr = child.stderr.take().unwrap();
    let log = Log::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let written = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for (i, prefix) in prefixes.iter().enumerate() {
                if let Some(addr) = line.strip_prefix(prefix) {
                    let _ = tx.send((i, addr.parse::<SocketAddr>().unwrap()));
                }
            }
            let mut log = written.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (child, log, rx)
}

/// Runs the gitfleet binary once with `args` (no standard input): its exit code and its
/// standard output followed by its standard error.
pub fn run_gitfleet(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gitfleet");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Writes `files` (`(path, text)`) under `dir`, making their folders.
pub fn write_files(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}
