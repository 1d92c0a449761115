//! Bounds on every fetch and push: libgit2's socket timeouts (process-wide) and a progress
//! deadline per transfer (a callback that aborts when nothing moved for the timeout); for a
//! fetch that asks for one, a [`SizeLimit`] on the bytes received.
//!
//! # Guarantees
//!
//! * Connecting over the network (`http://`, `https://`, `git://`, `ssh://`) gives up after
//!   the timeout, and so does waiting for any byte from the server: libgit2's server connect
//!   and read timeouts are set before the first transfer ([`ensure_socket_timeouts`]).
//! * A server that keeps the connection busy without making progress (keep-alive packets,
//!   the same progress line again and again) is cut off by [`Deadline`] once nothing has
//!   moved for the timeout: the transfer's callbacks return `false` and libgit2 aborts.
//! * A fetch with a [`SizeLimit`] is aborted by its progress callback once the bytes received
//!   pass the limit: libgit2 drops the partial pack (nothing of it is kept, no reference
//!   moves).
//! * Local repositories (a path, `file://`) never go through a socket and need no bound.
//!
//! # Caveats
//!
//! * The socket timeouts are libgit2 globals, shared by the whole process: they are set to
//!   the smallest timeout any mirror asked for, and never raised again. A mirror with a
//!   larger timeout may so be cut off earlier by a silent socket, never later.
//! * Progress inside libgit2 is only reported every 100 KB of pack data (and once per object
//!   indexed): a server trickling empty data packets is caught by the read timeout only when
//!   it falls silent, and a size limit is passed by up to about 100 KB (plus one object)
//!   before the transfer stops.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The default bound: no progress for 30 seconds.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket timeouts set so far (milliseconds; 0 = none yet).
static SOCKET_TIMEOUT_MS: Mutex<i32> = Mutex::new(0);

/// Makes libgit2's server connect and read timeouts at most `timeout` (process-wide; see the
/// module caveats). Idempotent; cheap after the first call.
pub(super) fn ensure_socket_timeouts(timeout: Duration) {
    let wanted = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX).max(1);
    let mut current = SOCKET_TIMEOUT_MS.lock().unwrap_or_else(|e| e.into_inner());
    if *current != 0 && *current <= wanted {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: both calls store one aligned `int` in a libgit2 global that libgit2 reads when
    // it opens a socket; the mutex above serialises writers. A concurrent transfer opening a
    // socket reads either the old or the new value, both valid timeouts.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(wanted);
        let _ = git2::opts::set_server_timeout_in_milliseconds(wanted);
    }
    *current = wanted;
}

/// The progress deadline of one transfer. Callbacks report a measure of progress (bytes and
/// objects so far, or a progress message); [`Deadline::alive`] says whether to go on.
pub(super) struct Deadline {
    timeout: Duration,
    last_progress: Cell<Instant>,
    mark: Cell<u64>,
    tripped: Cell<bool>,
}

impl Deadline {
    pub(super) fn new(timeout: Duration) -> Self {
        Self::starting_at(timeout, Instant::now())
    }

    fn starting_at(timeout: Duration, now: Instant) -> Self {
        Deadline {
            timeout,
            last_progress: Cell::new(now),
            mark: Cell::new(0),
            tripped: Cell::new(false),
        }
    }

    /// The transfer reports `mark` (a number that grows with progress): `false` to abort.
    pub(super) fn alive(&self, mark: u64) -> bool {
        self.alive_at(mark, Instant::now())
    }

    fn alive_at(&self, mark: u64, now: Instant) -> bool {
        if mark != self.mark.get() {
            self.mark.set(mark);
            self.last_progress.set(now);
            return true;
        }
        if now.duration_since(self.last_progress.get()) >= self.timeout {
            self.tripped.set(true);
            return false;
        }
        true
    }

    /// A progress message from the server: any text counts as progress, an empty keep-alive
    /// packet does not.
    pub(super) fn message(&self, text: &[u8]) -> bool {
        let mark = if text.is_empty() { self.mark.get() } else { self.mark.get().wrapping_add(1) };
        self.alive(mark)
    }

    /// Whether this deadline aborted the transfer.
    pub(super) fn tripped(&self) -> bool {
        self.tripped.get()
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A cap on the bytes one transfer may receive. The transfer reports the bytes received so
/// far; [`SizeLimit::allows`] says whether to go on.
pub(super) struct SizeLimit {
    max: u64,
    received: Cell<u64>,
    tripped: Cell<bool>,
}

impl SizeLimit {
    pub(super) fn new(max: u64) -> Self {
        SizeLimit { max, received: Cell::new(0), tripped: Cell::new(false) }
    }

    /// `received` bytes so far: `false` (abort) once they are over the limit.
    pub(super) fn allows(&self, received: u64) -> bool {
        self.received.set(self.received.get().max(received));
        if received > self.max {
            self.tripped.set(true);
            return false;
        }
        true
    }

    /// Whether this limit aborted the transfer.
    pub(super) fn tripped(&self) -> bool {
        self.tripped.get()
    }

    /// The most bytes the transfer reported.
    pub(super) fn received(&self) -> u64 {
        self.received.get()
    }

    pub(super) fn max(&self) -> u64 {
        self.max
    }
}

/// Whether `error` says the transfer timed out (our deadline, or libgit2's socket timeouts).
pub(super) fn is_timeout(error: &git2::Error, deadline: &Deadline) -> bool {
    deadline.tripped()
        || error.code() == git2::ErrorCode::Timeout
        || (error.class() == git2::ErrorClass::Net && error.message().contains("timed out"))
        || (error.class() == git2::ErrorClass::Ssh && error.message().contains("timed out"))
}

/// `30 s`, `1.5 s`: how a timeout is shown in messages.
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_resets_the_deadline_and_silence_trips_it() {
        let start = Instant::now();
        let deadline = Deadline::starting_at(Duration::from_secs(30), start);
        let at = |s| start + Duration::from_secs(s);
        assert!(deadline.alive_at(0, at(29)));
        assert!(deadline.alive_at(100, at(29)));
        // 100 bytes at 29 s: alive until 59 s.
        assert!(deadline.alive_at(100, at(58)));
        assert!(!deadline.tripped());
        assert!(!deadline.alive_at(100, at(59)));
        assert!(deadline.tripped());
    }

    #[test]
    fn keep_alives_are_not_progress_but_messages_are() {
        let deadline = Deadline::new(Duration::ZERO);
        assert!(deadline.message(b"Counting objects: 1"));
        assert!(!deadline.message(b""));
        assert!(deadline.tripped());
    }

    #[test]
    fn a_size_limit_trips_past_its_bytes_and_remembers_how_many() {
        let limit = SizeLimit::new(1_000);
        assert!(limit.allows(0));
        assert!(limit.allows(1_000));
        assert!(!limit.tripped());
        assert!(!limit.allows(1_001));
        assert!(limit.tripped());
        assert_eq!((limit.received(), limit.max()), (1_001, 1_000));
        // A later, smaller report (another callback's count) does not lower what was seen.
        assert!(limit.allows(10));
        assert_eq!(limit.received(), 1_001);
    }

    #[test]
    fn timeouts_read_as_seconds() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
