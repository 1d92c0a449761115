//! The status-branch writer: its own task, subscribed to the status snapshot. After a change
//! it waits for the status to settle (debounce), renders `status.yaml` / `STATUS.md`, and
//! commits them, between syncs only, (off the runtime, with its own handle on the repository) when they differ from
//! what it wrote last. The reconcile loop never waits for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::source::Source;
use super::state::StatusReader;
use super::status_files;
use crate::diff::render::short_commit;

/// How long the status must stay unchanged before it is written.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Writes the status to `branch` whenever it changed, forever.
pub async fn run(source: Source, branch: String, mut status: StatusReader) {
    let source = Arc::new(std::sync::Mutex::new(source));
    let mut written: Option<BTreeMap<String, Vec<u8>>> = None;
    loop {
        if status.changed().await.is_err() {
            return;
        }
        // Debounce: a burst of updates (one sync publishes several) is written once.
        loop {
            match tokio::time::timeout(SETTLE, status.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return,
                Err(_) => break,
            }
        }
        let snapshot = status.get_and_mark_seen();
        if snapshot.syncing.is_some() {
            // Mid-sync: the end of the sync publishes again.
            continue;
        }
        let files = status_files::render(&snapshot);
        if written.as_ref() == Some(&files) {
            continue;
        }
        let message = snapshot
            .deployed
            .as_ref()
            .map(|d| format!("gitfleet status: {} deployed", short_commit(&d.revision.commit)))
            .unwrap_or_else(|| "gitfleet status".to_string());
        let job = {
            let source = source.clone();
            let branch = branch.clone();
            let files = files.clone();
            tokio::task::spawn_blocking(move || {
                let source = source.lock().unwrap_or_else(|e| e.into_inner());
                source.write_status(&branch, &files, &message)
            })
        };
        match job.await {
            Ok(Ok(commit)) => {
                if let Some(commit) = commit {
                    tracing::info!(%commit, %branch, "status written");
                }
                written = Some(files);
            }
            Ok(Err(error)) => tracing::warn!(%error, %branch, "cannot write status"),
            Err(error) => tracing::warn!(%error, %branch, "the status write failed"),
        }
    }
}
