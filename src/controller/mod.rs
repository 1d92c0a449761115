//! The controller: `gitfleet run`'s reconcile loop, which keeps the hosts at the repository's
//! latest good revision.
//!
//! * [`trigger`]: the reasons to sync and the queue that coalesces them.
//! * [`liveness`]: each host's last observation and whether it is up, away or down.
//! * [`crashloop`]: the brake on replicas that keep stopping.
//! * [`state`]: what the controller knows, in one place the web layer and the status writer
//!   read without reaching into the loop.
//! * [`status_files`]: `status.yaml` and `STATUS.md`, rendered from that state.
//! * [`reconcile`]: one sync: fetch, load, observe, plan, apply, record.
//! * [`events`]: Docker events streams, turned into triggers.

pub mod crashloop;
pub mod state;
pub mod status_files;
pub mod liveness;
pub mod trigger;
