//! The labels gitfleet puts on every Docker object it creates, and reading them back.
//! Observed state is rebuilt from these alone: the hosts are the database.

/// Which fleet an object belongs to. Objects without it, or with another fleet's name, are
/// never touched.
pub const FLEET: &str = "io.gitfleet.fleet";
pub const APP: &str = "io.gitfleet.app";
pub const SERVICE: &str = "io.gitfleet.service";
pub const REPLICA: &str = "io.gitfleet.replica";
/// Short hash of the canonical container spec; a different hash means replace.
pub const SPEC_HASH: &str = "io.gitfleet.spec-hash";
/// The canonical spec itself (JSON), so a plan can say which fields changed.
pub const SPEC: &str = "io.gitfleet.spec";
/// The revision (commit id) that created the object.
pub const REVISION: &str = "io.gitfleet.revision";
/// On networks and volumes: the app's key for the object.
pub const OBJECT: &str = "io.gitfleet.object";
