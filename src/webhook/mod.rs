//! Forge webhooks: the HTTP receivers that turn a signed delivery from GitHub, GitLab, Gitea,
//! Forgejo or a script into a [`Hook`] for the controller's queue.
//!
//! * [`signature`]: checking a delivery's HMAC signature or token, in constant time. Pure.
//! * [`payload`]: reading a delivery's JSON into a [`Hook`] or the reason it is ignored, and
//!   keeping what concerns the watched branch ([`triage`]). Pure.
//! * [`deliveries`]: the bounded memory of recent delivery ids that drops replays. Pure.
//! * [`server`]: the axum [`router`] that ties them together and answers at once; the only
//!   part that does I/O.
//!
//! This module never syncs, plans or applies anything itself: it hands accepted hooks to a sink
//! that enqueues a trigger, and the controller coalesces and runs them.

pub mod deliveries;
pub mod payload;
pub mod server;
pub mod signature;

pub use payload::{
    Forge, Hook, Outcome, PayloadError, PullRequestAction, PullRequestHook, parse, triage,
};
pub use server::{DEFAULT_MAX_BODY_BYTES, HookSink, ReceiverSettings, repository_path, router};
pub use signature::{SignatureError, sign, signature_header, verify};
