//! Leadership through an etcd lease: of several `gitfleet run` instances, only the leader's
//! reconcile loop writes to Docker.
//!
//! * [`settings`]: endpoints, TTL, the group's name, TLS and credentials.
//! * [`clock`]: `CLOCK_BOOTTIME`, the clock that keeps counting during suspend.
//! * [`lease_clock`]: until when a leader may act, from its acknowledged keep-alives (pure).
//! * [`etcd`]: one client per endpoint, every request bounded, retried on the next member.
//! * [`election`]: the session (lease + keep-alive), the campaign, the [`Term`] handed to
//!   the loop, resigning.
//! * [`guard`]: a [`Term`] as the `apply::Guard` of the applies it runs.
//! * [`handoff`]: webhooks a standby received, handed to the leader through etcd.
//! * [`claims`]: pull-request previews claimed per head, so that one instance previews each.
//!
//! # Keys (under `/gitfleet/<fleet>/`)
//!
//! * `leader`: created (create revision 0 → put) with the member's lease; its create
//!   revision is the **epoch**, unique and increasing over all terms.
//! * `members/<member>`: each instance's presence, on its lease.
//! * `hooks/<member>`: the last webhook a standby received, for the leader to act on.
//! * `previews/<number>/<head commit>`: which instance previews that pull request head, on a
//!   lease of the claim's own (renewed while the preview runs, then one hour once done).
//!
//! etcd holds only leadership, never the fleet's state.
//!
//! # Guarantees (fencing, given engines that check no token)
//!
//! * A leader acts only until the send time of its last acknowledged keep-alive + TTL −
//!   margin, on the boot clock; past it the term's token is cancelled and [`Term::check`]
//!   refuses.
//! * [`Term::check`], run before each mutating batch, confirms in a transaction that the
//!   election key's create revision is still this term's epoch.
//! * Every Docker call of the leader's engine is raced against [`Term::ended`] and abandoned
//!   when the term ends or its deadline passes: an engine that hangs cannot keep a leader
//!   waiting on it past its deadline, which lies the margin before the lease can expire.
//! * What a leader creates carries `io.gitfleet.epoch`, outside the spec hash: a failover
//!   replaces nothing.
//!
//! # Caveats
//!
//! A Docker call already sent when the lease is lost may still land (the engine cannot check
//! a token, and abandoning a request does not unsend it): the leader stops waiting at its
//! deadline, but an engine that received the request carries it out. The next leader, which
//! observes every host before planning, repairs what it finds: a duplicate replica is
//! removed, a stopped one restarted or replaced, the `.next-` container of a replacement cut
//! short removed (`diff::interrupted`).

pub mod claims;
pub mod clock;
pub mod election;
pub mod etcd;
pub mod guard;
pub mod handoff;
pub mod lease_clock;
pub mod settings;

pub use election::{Elector, Leadership, Term};
pub use settings::{EtcdTls, LeaderSettings};

/// What can go wrong before campaigning starts.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("{what}: {reason}")]
    Settings { what: String, reason: String },
    #[error("etcd: {0}")]
    Etcd(String),
}

/// This instance's part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the lease: its loop applies.
    Leader,
    /// Another instance leads (or none yet): serves status, hands webhooks on.
    Standby,
    /// No etcd configured: the only instance.
    Single,
}

/// What this instance knows of the election, for the status page and `/api/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct View {
    pub role: Role,
    /// This instance's member name (`None` without etcd).
    pub member: Option<String>,
    /// The leader's member name, when one is known.
    pub leader: Option<String>,
    /// The leader's epoch (its election key's create revision).
    pub epoch: Option<i64>,
    /// When the leader won (RFC 3339, as the leader wrote it).
    pub since: Option<String>,
    /// The members present (their keys live on their leases).
    pub members: Vec<String>,
    /// Why etcd cannot be used right now, if so.
    pub error: Option<String>,
}

impl View {
    /// The view of an instance without etcd.
    pub fn single() -> Self {
        View {
            role: Role::Single,
            member: None,
            leader: None,
            epoch: None,
            since: None,
            members: Vec::new(),
            error: None,
        }
    }
}
