//! Pull-request plan previews: the one comment gitfleet keeps on a pull request, saying whether
//! its head commit validates and what merging it would do, per app.
//!
//! * [`preview`]: the comment's text, rendered from a [`Preview`] (pure, no I/O).
//! * [`client`]: the forge APIs (GitHub, GitLab, Gitea and Forgejo) that find the comment by
//!   its [`MARKER`], then create it, edit it, or leave it as it is ([`ForgeClient`]).
//!
//! # Guarantees
//!
//! * One comment per pull request: the client edits the comment that starts with [`MARKER`]
//!   (the oldest, should there be several) and creates one only when none exists.
//! * The token never appears in a [`ForgeError`], its `Debug` or its `Display`, nor in
//!   `ForgeClient`'s `Debug`; it is sent only to the configured API base (redirects are not
//!   followed, and a "next page" link to another origin is refused).
//! * No retries inside: each call makes its requests once, each with a 10 s timeout, and
//!   returns what went wrong; the caller decides whether to try again ([`ForgeError::status`]).

pub mod client;
mod gitea;
mod github;
mod gitlab;
pub mod preview;

pub use client::{CommentAction, ForgeClient, ForgeKind, PullRequestRef};
pub use preview::{MARKER, Preview, PreviewFailure, PreviewOutcome, render_comment};

/// What can go wrong talking to a forge.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The forge answered with an error status; `message` is what it said (redacted).
    #[error("{method} {url}: the forge answered HTTP {status}: {message}")]
    Status { method: String, url: String, status: u16, message: String },
    /// No answer: connection, TLS, timeout.
    #[error("{method} {url}: {source}")]
    Transport {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer gitfleet cannot use: not JSON, a missing field, endless pages.
    #[error("{method} {url}: unexpected answer: {reason}")]
    Answer { method: String, url: String, reason: String },
    /// A setting or a pull-request reference that cannot work (bad API base, repository name).
    #[error("invalid forge setting: {0}")]
    Invalid(String),
}

impl ForgeError {
    /// The HTTP status the forge answered with, if it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
