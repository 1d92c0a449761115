//! The election: a session (a lease granted and kept alive), the campaign on the election key,
//! the [`Term`] handed to the reconcile loop while this instance leads, and resigning.
//!
//! One task runs it all. A session starts with a lease (TTL from the settings) and the
//! member's key on it; then, until the lease is lost:
//!
//! * the keep-alive side renews every TTL/4 on one stream, re-opens the stream on the next
//!   member after ~500 ms of silence, and moves the term's deadline (see
//!   [`super::lease_clock`]); when the deadline passes or etcd says the lease is gone, the
//!   session ends;
//! * the campaign side creates the election key if it does not exist (a transaction:
//!   create revision 0 → put with the lease). Winning starts a term: a child of the loop's
//!   cancellation token, the epoch (the key's create revision) and the deadline. Losing, it
//!   watches the key and tries again when it goes (or every TTL/4, should the watch stall).
//!
//! A session's end cancels the term's token (the loop stops at its next step boundary and
//! waits as a standby), revokes the lease (best effort: the key goes at once if etcd still
//! had it) and opens a new session. [`Elector::resign`] does the same on shutdown, so that a
//! standby takes over in well under a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::clock::boot_now;
use super::etcd::Etcd;
use super::lease_clock::{LeaseClock, Next, margin_for};
use super::settings::LeaderSettings;
use super::{LeaderError, Role, View};

/// How long a keep-alive stream may stay silent after a send before it is re-opened.
pub const REOPEN_AFTER: Duration = Duration::from_millis(500);

/// A running election: its view for the status page, its terms for the loop.
pub struct Elector {
    view: watch::Receiver<View>,
    terms: watch::Receiver<Option<Term>>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    etcd: Etcd,
    settings: Arc<LeaderSettings>,
}

/// What the reconcile loop watches: the current term (`None` while standby) and the view for
/// the status snapshot.
#[derive(Clone)]
pub struct Leadership {
    pub terms: watch::Receiver<Option<Term>>,
    pub view: watch::Receiver<View>,
}

/// One term of leadership: while its token is not cancelled, this instance leads with
/// `epoch`. Cloned into the loop; [`Term::check`] is the fence run before each mutating batch.
#[derive(Clone)]
pub struct Term {
    pub epoch: i64,
    pub lease: i64,
    /// A child of the loop's cancellation scope, cancelled when the term ends.
    pub token: CancellationToken,
    key: Arc<str>,
    etcd: Etcd,
    /// The deadline on the boot clock, in nanoseconds (moved by every acknowledged keep-alive).
    deadline: Arc<AtomicU64>,
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term").field("epoch", &self.epoch).field("lease", &self.lease).finish()
    }
}

impl Term {
    /// Until when, on the boot clock, this term may act.
    pub fn deadline(&self) -> Duration {
        Duration::from_nanos(self.deadline.load(Ordering::Acquire))
    }

    /// A local check for right before each Docker call (no etcd round trip): the term is not
    /// cancelled and its own-clock deadline has not passed.
    pub fn gate(&self) -> Arc<dyn Fn() -> Result<(), String> + Send + Sync> {
        let (token, deadline, epoch) = (self.token.clone(), self.deadline.clone(), self.epoch);
        Arc::new(move || {
            if token.is_cancelled() {
                return Err(format!("the leadership term of epoch {epoch} is over"));
            }
            if boot_now() >= Duration::from_nanos(deadline.load(Ordering::Acquire)) {
                token.cancel();
                return Err(format!("epoch {epoch}: the lease's own-clock deadline passed"));
            }
            Ok(())
        })
    }

    /// Whether the term is over (cancelled, or its deadline passed).
    pub fn is_over(&self) -> bool {
        self.token.is_cancelled() || boot_now() >= self.deadline()
    }

    /// The fence, before each mutating batch: the term is not cancelled, its deadline has not
    /// passed, and etcd confirms in a transaction that the election key's create revision is
    /// still this term's epoch. The transaction is bounded by the time left. `Err` says why
    /// not; a definite loss also cancels the term.
    pub async fn check(&self) -> Result<(), String> {
        if self.token.is_cancelled() {
            return Err(format!("the leadership term of epoch {} is over", self.epoch));
        }
        let left = self.deadline().saturating_sub(boot_now());
        if left.is_zero() {
            self.token.cancel();
            return Err(format!(
                "epoch {}: no keep-alive acknowledged in time, the lease may be lost",
                self.epoch
            ));
        }
        // The read in `and_then` is what makes etcd serve this linearizably: a transaction
        // without operations counts as serializable and is answered from the member's local
        // state, even by a member cut off from the quorum.
        let txn = Txn::new()
            .when([Compare::create_revision(self.key.as_bytes(), CompareOp::Equal, self.epoch)])
            .and_then([TxnOp::get(self.key.as_bytes(), Some(GetOptions::new().with_count_only()))]);
        let answer = self
            .etcd
            .call(left, |mut client| {
                let txn = txn.clone();
                async move { client.txn(txn).await }
            })
            .await;
        match answer {
            Ok(response) if response.succeeded() => {
                if boot_now() >= self.deadline() {
                    self.token.cancel();
                    return Err(format!(
                        "epoch {}: the deadline passed during the check",
                        self.epoch
                    ));
                }
                Ok(())
            }
            Ok(_) => {
                self.token.cancel();
                Err(format!(
                    "epoch {}: the election key is no longer this instance's (another leads)",
                    self.epoch
                ))
            }
            Err(error) => Err(format!("epoch {}: cannot confirm leadership: {error}", self.epoch)),
        }
    }
}

impl Elector {
    /// Connects and starts campaigning. Terms are children of `scope`, the loop's
    /// cancellation token.
    pub async fn start(
        settings: LeaderSettings,
        scope: CancellationToken,
    ) -> Result<Elector, LeaderError> {
        settings.validate()?;
        let etcd = Etcd::connect(&settings).await?;
        let settings = Arc::new(settings);
        let mut first = View::single();
        first.role = Role::Standby;
        first.member = Some(settings.member.clone());
        let (view_tx, view) = watch::channel(first);
        let (terms_tx, terms) = watch::channel(None);
        let stop = CancellationToken::new();
        let ctx = Ctx {
            settings: settings.clone(),
            etcd: etcd.clone(),
            scope,
            view: view_tx,
            terms: terms_tx,
        };
        let task = tokio::spawn(run(ctx, stop.clone()));
        Ok(Elector { view, terms, stop, task: Mutex::new(Some(task)), etcd, settings })
    }

    /// The current view (role, leader, epoch, members), updated as they change.
    pub fn view(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// The current term (`None` while standby).
    pub fn terms(&self) -> watch::Receiver<Option<Term>> {
        self.terms.clone()
    }

    /// What the reconcile loop needs: the terms and the view.
    pub fn leadership(&self) -> Leadership {
        Leadership { terms: self.terms(), view: self.view() }
    }

    /// The etcd connection, for the hand-off of webhooks.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    pub fn settings(&self) -> &LeaderSettings {
        &self.settings
    }

    /// Ends the election: the term (if any) is cancelled and the lease revoked, which deletes
    /// the election key at once, so a standby takes over without waiting for the TTL. Bounded
    /// by the request timeout.
    pub async fn resign(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let bound = self.settings.request_timeout * 2;
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::warn!("resigning took longer than {bound:?}; the lease expires by itself");
            }
        }
    }
}

impl Drop for Elector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the election task holds.
struct Ctx {
    settings: Arc<LeaderSettings>,
    etcd: Etcd,
    scope: CancellationToken,
    view: watch::Sender<View>,
    terms: watch::Sender<Option<Term>>,
}

/// A lease granted and its keep-alive bookkeeping.
struct Session {
    lease: i64,
    clock: LeaseClock,
    deadline: Arc<AtomicU64>,
}

async fn run(ctx: Ctx, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    while !stop.is_cancelled() && !ctx.scope.is_cancelled() {
        let session = tokio::select! {
            session = open_session(&ctx) => session,
            _ = stop.cancelled() => break,
        };
        match session {
            Ok(session) => {
                backoff = Duration::from_millis(200);
                let lease = session.lease;
                let why = run_session(&ctx, session, &stop).await;
                end_term(&ctx, &why);
                revoke(&ctx, lease).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot open an etcd session");
                ctx.view.send_modify(|v| {
                    v.role = Role::Standby;
                    v.error = Some(error);
                });
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(ctx.settings.lease_ttl / 2);
            }
        }
    }
    end_term(&ctx, "shutting down");
}

/// Grants a lease and registers the member on it.
async fn open_session(ctx: &Ctx) -> Result<Session, String> {
    let ttl = ctx.settings.lease_ttl;
    let timeout = ctx.settings.request_timeout;
    let sent = boot_now();
    let granted = ctx
        .etcd
        .call(timeout, |mut c| async move { c.lease_grant(ttl.as_secs() as i64, None).await })
        .await
        .map_err(|e| format!("granting a lease: {e}"))?;
    let lease = granted.id();
    let granted_ttl = Duration::from_secs(granted.ttl().max(0) as u64);
    let member_key = format!("{}{}", ctx.settings.members_prefix(), ctx.settings.member);
    let value = ctx.settings.member.clone();
    ctx.etcd
        .call(timeout, |mut c| {
            let (key, value) = (member_key.clone(), value.clone());
            async move { c.put(key, value, Some(PutOptions::new().with_lease(lease))).await }
        })
        .await
        .map_err(|e| format!("registering the member: {e}"))?;
    let clock = LeaseClock::new(granted_ttl, margin_for(granted_ttl), REOPEN_AFTER, sent);
    let deadline = Arc::new(AtomicU64::new(clock.deadline().as_nanos() as u64));
    tracing::info!(lease = format!("{lease:x}"), ttl = ?granted_ttl, "etcd session opened");
    Ok(Session { lease, clock, deadline })
}

/// Runs a session until its lease is lost or `stop`; returns why it ended.
async fn run_session(ctx: &Ctx, session: Session, stop: &CancellationToken) -> String {
    let Session { lease, clock, deadline } = session;
    tokio::select! {
        why = keep_alive(ctx, lease, clock, deadline.clone()) => why,
        never = campaign(ctx, lease, deadline) => match never {},
        _ = stop.cancelled() => "resigning".to_string(),
        _ = ctx.scope.cancelled() => "shutting down".to_string(),
    }
}

/// Keeps `lease` alive; returns when it must be taken as lost.
async fn keep_alive(
    ctx: &Ctx,
    lease: i64,
    mut clock: LeaseClock,
    deadline: Arc<AtomicU64>,
) -> String {
    let publish = |clock: &LeaseClock| {
        deadline.store(clock.deadline().as_nanos() as u64, Ordering::Release);
    };
    loop {
        // (Re-)open a stream on the current member; its first keep-alive is sent by opening.
        let (i, mut client) = ctx.etcd.client();
        clock.sent(boot_now());
        let opened = tokio::select! {
            opened = client.lease_keep_alive(lease) => Some(opened),
            _ = sleep_until_boot(clock.deadline().min(boot_now() + REOPEN_AFTER)) => None,
        };
        let (mut keeper, mut stream) = match opened {
            Some(Ok(pair)) => {
                let ttl = ctx.settings.lease_ttl.as_secs() as i64;
                clock.acked(ttl);
                publish(&clock);
                pair
            }
            Some(Err(error)) if error.to_string().contains("lease not found") => {
                return format!("etcd says the lease {lease:x} is gone");
            }
            Some(Err(error)) => {
                tracing::debug!(endpoint = ctx.etcd.endpoint(i), %error, "keep-alive stream failed");
                clock.reopened();
                ctx.etcd.rotate(i);
                if clock.next(boot_now()) == Next::Expired {
                    return "no keep-alive acknowledged before the deadline".into();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            None => {
                tracing::debug!(endpoint = ctx.etcd.endpoint(i), "keep-alive stream silent");
                clock.reopened();
                ctx.etcd.rotate(i);
                if clock.next(boot_now()) == Next::Expired {
                    return "no keep-alive acknowledged before the deadline".into();
                }
                continue;
            }
        };
        loop {
            match clock.next(boot_now()) {
                Next::Expired => return "no keep-alive acknowledged before the deadline".into(),
                Next::Reopen => {
                    tracing::info!(
                        endpoint = ctx.etcd.endpoint(i),
                        "keep-alive stream silent for {REOPEN_AFTER:?}: re-opening on the next member"
                    );
                    clock.reopened();
                    ctx.etcd.rotate(i);
                    break;
                }
                Next::Send => {
                    clock.sent(boot_now());
                    if keeper.keep_alive().await.is_err() {
                        clock.reopened();
                        ctx.etcd.rotate(i);
                        break;
                    }
                }
                Next::WaitUntil(at) => {
                    tokio::select! {
                        _ = sleep_until_boot(at) => {}
                        message = stream.message() => match message {
                            Ok(Some(answer)) => {
                                if !clock.acked(answer.ttl()) {
                                    return format!("etcd says the lease {lease:x} expired");
                                }
                                publish(&clock);
                            }
                            Ok(None) | Err(_) => {
                                clock.reopened();
                                ctx.etcd.rotate(i);
                                break;
                            }
                        },
                    }
                }
            }
        }
    }
}

/// Sleeps until boot-clock time `at` (tokio's timer runs on the monotonic clock; the caller
/// re-reads the boot clock on waking).
async fn sleep_until_boot(at: Duration) {
    tokio::time::sleep(at.saturating_sub(boot_now())).await;
}

/// The leader key's value: who leads and since when.
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaderValue {
    member: String,
    since: String,
}

/// What a campaign transaction found.
enum Found {
    /// The key is ours (just created, or still there from this session).
    Ours { epoch: i64, since: String },
    /// Another member leads.
    Other { leader: LeaderValue, epoch: i64, revision: i64 },
    /// The key vanished between the compare and the read: try again.
    Gone,
}

/// Campaigns for as long as the session lives (never returns; dropped when the session ends).
async fn campaign(ctx: &Ctx, lease: i64, deadline: Arc<AtomicU64>) -> std::convert::Infallible {
    let poll = ctx.settings.lease_ttl / 4;
    loop {
        refresh_members(ctx).await;
        match try_win(ctx, lease).await {
            Ok(Found::Ours { epoch, since }) => {
                let term = Term {
                    epoch,
                    lease,
                    token: ctx.scope.child_token(),
                    key: ctx.settings.leader_key().into(),
                    etcd: ctx.etcd.clone(),
                    deadline: deadline.clone(),
                };
                tracing::info!(epoch, "leading");
                ctx.view.send_modify(|v| {
                    v.role = Role::Leader;
                    v.leader = Some(ctx.settings.member.clone());
                    v.epoch = Some(epoch);
                    v.since = Some(since);
                    v.error = None;
                });
                ctx.terms.send_replace(Some(term.clone()));
                hold(ctx, &term, poll).await;
                end_term(ctx, "the election key is gone");
            }
            Ok(Found::Other { leader, epoch, revision }) => {
                ctx.view.send_modify(|v| {
                    v.role = Role::Standby;
                    v.leader = Some(leader.member);
                    v.epoch = Some(epoch);
                    v.since = Some(leader.since);
                    v.error = None;
                });
                wait_for_change(ctx, revision, poll).await;
            }
            Ok(Found::Gone) => {}
            Err(error) => {
                ctx.view.send_modify(|v| {
                    v.role = Role::Standby;
                    v.error = Some(error);
                });
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// One campaign transaction: create the key on our lease if nobody holds it, else read it.
async fn try_win(ctx: &Ctx, lease: i64) -> Result<Found, String> {
    let key = ctx.settings.leader_key();
    let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let value = serde_json::to_string(&LeaderValue {
        member: ctx.settings.member.clone(),
        since: since.clone(),
    })
    .unwrap_or_default();
    let txn = Txn::new()
        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.as_str(), value, Some(PutOptions::new().with_lease(lease)))])
        .or_else([TxnOp::get(key.as_str(), None)]);
    let response = ctx
        .etcd
        .call(ctx.settings.request_timeout, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
        .map_err(|e| format!("campaigning: {e}"))?;
    let revision = response.header().map(|h| h.revision()).unwrap_or_default();
    if response.succeeded() {
        // The put's revision is the key's create revision: the epoch.
        return Ok(Found::Ours { epoch: revision, since });
    }
    let kv = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().cloned(),
        _ => None,
    });
    let Some(kv) = kv else { return Ok(Found::Gone) };
    let leader: LeaderValue = serde_json::from_slice(kv.value()).unwrap_or(LeaderValue {
        member: String::from_utf8_lossy(kv.value()).into_owned(),
        since: String::new(),
    });
    if kv.lease() == lease {
        return Ok(Found::Ours { epoch: kv.create_revision(), since: leader.since });
    }
    Ok(Found::Other { leader, epoch: kv.create_revision(), revision })
}

/// While leading: watches the election key; returns when it is deleted or recreated by
/// someone else (the term is then over). Refreshes the member list every `poll`.
async fn hold(ctx: &Ctx, term: &Term, poll: Duration) {
    let mut revision = term.epoch;
    loop {
        match watch_once(ctx, revision, poll).await {
            Watched::Deleted => return,
            Watched::Put { create_revision, revision: r } => {
                if create_revision != term.epoch {
                    return;
                }
                revision = r;
            }
            Watched::Quiet => {}
        }
        if term.token.is_cancelled() {
            return;
        }
        refresh_members(ctx).await;
    }
}

/// While standby: waits until the election key changes (or `poll` passes).
async fn wait_for_change(ctx: &Ctx, revision: i64, poll: Duration) {
    let _ = watch_once(ctx, revision, poll).await;
}

enum Watched {
    Deleted,
    Put { create_revision: i64, revision: i64 },
    Quiet,
}

/// Watches the election key from after `revision` for at most `within`.
async fn watch_once(ctx: &Ctx, revision: i64, within: Duration) -> Watched {
    let key = ctx.settings.leader_key();
    let (i, mut client) = ctx.etcd.client();
    let watching = async {
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = client.watch(key.as_str(), Some(options)).await?;
        while let Some(response) = stream.message().await? {
            for event in response.events() {
                match event.event_type() {
                    EventType::Delete => return Ok::<_, etcd_client::Error>(Watched::Deleted),
                    EventType::Put => {
                        if let Some(kv) = event.kv() {
                            return Ok(Watched::Put {
                                create_revision: kv.create_revision(),
                                revision: kv.mod_revision(),
                            });
                        }
                    }
                }
            }
        }
        Ok(Watched::Quiet)
    };
    match tokio::time::timeout(within, watching).await {
        Ok(Ok(watched)) => watched,
        Ok(Err(error)) => {
            tracing::debug!(endpoint = ctx.etcd.endpoint(i), %error, "watch failed");
            ctx.etcd.rotate(i);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Watched::Quiet
        }
        Err(_) => Watched::Quiet,
    }
}

/// Reads the members' keys into the view (best effort).
async fn refresh_members(ctx: &Ctx) {
    let prefix = ctx.settings.members_prefix();
    let listed =
        ctx.etcd
            .call(ctx.settings.request_timeout, |mut c| {
                let prefix = prefix.clone();
                async move {
                    c.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only())).await
                }
            })
            .await;
    if let Ok(response) = listed {
        let members: Vec<String> = response
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok())
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .map(str::to_string)
            .collect();
        ctx.view.send_if_modified(|v| {
            let changed = v.members != members;
            v.members = members;
            changed
        });
    }
}

/// Ends the current term, if any: its token is cancelled and the view says standby.
fn end_term(ctx: &Ctx, why: &str) {
    if let Some(term) = ctx.terms.send_replace(None) {
        term.token.cancel();
        tracing::warn!(epoch = term.epoch, reason = why, "leadership ended");
        ctx.view.send_modify(|v| {
            v.role = Role::Standby;
            if v.epoch == Some(term.epoch) {
                v.leader = None;
                v.epoch = None;
                v.since = None;
            }
        });
    }
}

/// Revokes `lease` (deleting the election key and the member key with it), bounded.
async fn revoke(ctx: &Ctx, lease: i64) {
    let revoked = ctx
        .etcd
        .call(ctx.settings.request_timeout, |mut c| async move { c.lease_revoke(lease).await })
        .await;
    match revoked {
        Ok(_) => tracing::info!(lease = format!("{lease:x}"), "lease revoked"),
        Err(error) => tracing::debug!(%error, "cannot revoke the lease; it expires by itself"),
    }
}
