//! The leader's side of [`apply::Guard`](crate::apply::Guard): a [`Term`] is the guard of the
//! applies it runs. `check` is the fence ([`Term::check`]: not cancelled, own-clock deadline
//! not passed, the election key's create revision still the epoch); the router's hooks
//! (`before_stop`, `after_ready`) are not the leader's business and do nothing here.

use super::Term;
use crate::apply::Guard;
use crate::diff::ReplicaKey;

impl Guard for Term {
    async fn check(&self) -> Result<(), String> {
        Term::check(self).await
    }

    async fn before_stop(&self, _host: &str, _container_id: &str, _replica: &ReplicaKey) {}

    async fn after_ready(&self, _host: &str, _container_id: &str, _replica: &ReplicaKey) {}

    /// A health wait under way ends when the term does (lease lost, resigned, shutting down).
    async fn stopped(&self) -> String {
        self.token.cancelled().await;
        "the apply was stopped (this instance's leadership term ended)".into()
    }
}
