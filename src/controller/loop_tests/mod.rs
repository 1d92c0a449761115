//! In-process tests of the reconcile loop: the real [`Reconciler`] on in-memory edges
//! ([`fakes`]: hosts that keep containers in memory and record the calls they receive, a
//! repository a test commits to), driven by [`drive`] as `controller::reconcile_loop`
//! drives it (a wake-up at the reconciler's deadline, a sync on each repository publication
//! and each batch of triggers), all under `tokio::time::pause`: grace periods, backoffs and
//! health waits of minutes take milliseconds.
//!
//! Each scenario ([`scenarios`]) asserts on the status snapshot and on the calls the fake
//! hosts received. The real-daemon tests (`tests/docker/controller.rs`) stay: these test
//! the loop's decisions, those the whole thing.
//!
//! `drive` leaves out what `reconcile_loop` does around the reconciler and that needs real
//! hosts or etcd: the Docker events watchers (the fake hosts push the triggers those would,
//! see [`fakes::FakeHosts::set_gone`]), leadership, and the heartbeat tick.

mod fakes;
mod scenarios;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::Heartbeat;
use super::reconcile::Reconciler;
use super::settings::Settings;
use super::state::{EventKind, Snapshot, StatusReader, StatusWriter};
use super::trigger::{Trigger, Triggers};
use fakes::{FakeHosts, FakeRepository};

/// A loop on fake edges, running on the (paused) test runtime.
struct Harness {
    hosts: FakeHosts,
    repository: FakeRepository,
    triggers: Arc<Triggers>,
    status: StatusReader,
    cancel: CancellationToken,
    running: JoinHandle<()>,
}

impl Harness {
    /// Starts the loop on fake hosts `hosts` with the default settings, changed by `tune`.
    fn start(hosts: &[&str], tune: impl FnOnce(&mut Settings)) -> Harness {
        let mut settings =
            Settings::new("https://git.example.test/fleet.git", "/nonexistent".into());
        settings.apply = fakes::apply_options();
        tune(&mut settings);
        let settings = Arc::new(settings);
        let triggers = Arc::new(Triggers::new());
        let fake = FakeHosts::new(hosts, triggers.clone());
        let (repository, view) = FakeRepository::new();
        let status = StatusWriter::new(Snapshot::new(&settings.repository, &settings.branch));
        let reader = status.reader();
        let cancel = CancellationToken::new();
        let heartbeat = Arc::new(Heartbeat::new(Duration::from_secs(600)));
        let reconciler =
            Reconciler::with_edges(settings, status, fake.clone(), view, cancel.clone(), heartbeat);
        let running = tokio::spawn(drive(reconciler, triggers.clone(), cancel.clone()));
        Harness { hosts: fake, repository, triggers, status: reader, cancel, running }
    }

    /// Waits (in paused time, so as long as it takes the loop) until a snapshot taken between
    /// syncs satisfies `done`; fails naming `what` after `within`.
    async fn until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&Snapshot) -> bool,
    ) -> Arc<Snapshot> {
        let mut receiver = self.status.receiver();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let snapshot = receiver.borrow_and_update().clone();
            if snapshot.syncing.is_none() && done(&snapshot) {
                return snapshot;
            }
            match tokio::time::timeout_at(deadline, receiver.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!("{what}: not within {within:?}\n{}", describe(&snapshot)),
            }
        }
    }

    /// Waits until a sync numbered above `after` has finished.
    async fn sync_after(&self, after: u64) -> Arc<Snapshot> {
        self.until(&format!("a sync after #{after}"), Duration::from_secs(60), |s| {
            last_sync(s) > after
        })
        .await
    }

    /// The number of the last finished sync.
    fn syncs(&self) -> u64 {
        last_sync(&self.status.get())
    }

    /// Pushes `trigger` and waits for the sync it causes.
    async fn sync(&self, trigger: Trigger) -> Arc<Snapshot> {
        let before = self.syncs();
        self.triggers.push(trigger);
        self.sync_after(before).await
    }
}

fn last_sync(snapshot: &Snapshot) -> u64 {
    snapshot.syncs.first().map_or(0, |s| s.number)
}

/// The commit deployed, if any.
fn deployed(snapshot: &Snapshot) -> Option<&str> {
    snapshot.deployed.as_ref().map(|d| d.revision.commit.as_str())
}

/// The events of `kind`, oldest first.
fn events(snapshot: &Snapshot, kind: EventKind) -> Vec<String> {
    let mut list: Vec<String> =
        snapshot.events.iter().filter(|e| e.kind == kind).map(|e| e.message.clone()).collect();
    list.reverse();
    list
}

/// A snapshot in words, for failure messages.
fn describe(snapshot: &Snapshot) -> String {
    let syncs: Vec<String> = snapshot
        .syncs
        .iter()
        .map(|s| format!("#{} {} ({})", s.number, s.detail, s.reasons))
        .collect();
    let events: Vec<String> = snapshot.events.iter().map(|e| e.message.clone()).collect();
    let problems: Vec<String> = snapshot.problems.iter().map(|p| p.message.clone()).collect();
    format!(
        "head: {:?}\ndeployed: {:?}\nsyncs (newest first): {syncs:#?}\nevents (newest first): {events:#?}\nproblems: {problems:#?}",
        snapshot.head.as_ref().map(|h| (&h.revision.commit, h.state)),
        deployed(snapshot),
    )
}

/// The reconcile loop as `controller::reconcile_loop` runs it without high availability:
/// wakes at the reconciler's deadline, syncs when the repository publishes something new
/// and on every batch of triggers that is not only a wish to fetch; stops taking triggers
/// once `cancel` fires (a sync under way finishes, its apply stopping at a step boundary).
async fn drive<H, R>(
    mut reconciler: Reconciler<H, R>,
    triggers: Arc<Triggers>,
    cancel: CancellationToken,
) where
    H: super::edges::Hosts,
    R: super::edges::Repository,
{
    loop {
        let wake = reconciler.wake_at();
        let deadline = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = deadline => {
                reconciler.woken();
                triggers.push(Trigger::Deadline);
            }
            _ = reconciler.repository_changed() => triggers.push(Trigger::Repository),
            batch = triggers.next() => {
                if batch.only_fetch() {
                    continue;
                }
                reconciler.sync(&batch).await;
            }
        }
    }
    reconciler.status().event(EventKind::Controller, "stopped: shutting down");
}
