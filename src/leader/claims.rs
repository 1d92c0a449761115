//! Pull-request previews claimed through etcd: of several instances that receive a delivery
//! for the same pull request head (a forge with one webhook per instance, a redelivery that
//! lands elsewhere), one previews it and writes the comment.
//!
//! The claim is the key `/gitfleet/<fleet>/previews/<number>/<head commit>`, created in a
//! transaction only if absent (create revision 0), on a lease of the claim's own:
//!
//! * **While the preview runs** the lease (TTL: the election's lease TTL) is renewed every
//!   TTL/3. An instance that dies mid-preview renews nothing: its claim is gone within the TTL
//!   and the next delivery for that head is previewed by whichever instance gets it.
//! * **Once the comment is written** the key moves onto a lease of [`DONE_TTL`]: deliveries of
//!   the same head within that time are skipped, then the key expires (keys never pile up).
//! * **A preview that could not write its comment** releases the claim (its lease revoked):
//!   the next delivery tries again.
//!
//! # Caveats
//!
//! * etcd unreachable, or a claim that cannot be made: the preview runs anyway
//!   ([`Claimed::Unavailable`]). Previews only read, and the comment is kept as one edited
//!   comment, so the cost is the duplicate work this exists to avoid.
//! * A claim whose renewals fail for longer than its TTL (the instance cut off from etcd
//!   mid-preview) can be taken by another instance while the first still runs: two previews
//!   of one head, each an idempotent edit once the comment exists.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::etcd::Etcd;
use super::settings::LeaderSettings;

/// How long a head whose comment was written stays claimed (its redeliveries skipped).
pub const DONE_TTL: Duration = Duration::from_secs(3600);

/// Makes claims for one instance (its member name goes into the claims' values).
#[derive(Clone)]
pub struct PreviewClaims {
    etcd: Etcd,
    settings: Arc<LeaderSettings>,
}

impl std::fmt::Debug for PreviewClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewClaims")
            .field("prefix", &self.settings.previews_prefix())
            .field("member", &self.settings.member)
            .finish()
    }
}

/// What claiming a head came to.
#[derive(Debug)]
pub enum Claimed {
    /// This instance previews the head; [`Claim::done`] or [`Claim::release`] when finished.
    Won(Claim),
    /// Another claim holds it (`by`: the member that claimed it, and whether it is done).
    Taken { by: String },
    /// No claim could be made (etcd unreachable, a head that is not a commit id): why.
    Unavailable(String),
}

/// A claim won: its lease is kept alive until it is done, released or dropped (then it
/// expires within the TTL).
pub struct Claim {
    etcd: Etcd,
    settings: Arc<LeaderSettings>,
    key: String,
    lease: i64,
    renewing: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("key", &self.key).field("lease", &self.lease).finish()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

impl PreviewClaims {
    pub fn new(etcd: Etcd, settings: Arc<LeaderSettings>) -> Self {
        PreviewClaims { etcd, settings }
    }

    /// The key of pull request `number`'s head `commit`, if `commit` is a commit id (hex).
    pub fn key(&self, number: u64, commit: &str) -> Option<String> {
        let hex = (4..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| {
            format!("{}{number}/{}", self.settings.previews_prefix(), commit.to_lowercase())
        })
    }

    /// Claims pull request `number`'s head `commit` for this instance (bounded by the request
    /// timeout per call).
    pub async fn claim(&self, number: u64, commit: &str) -> Claimed {
        let Some(key) = self.key(number, commit) else {
            return Claimed::Unavailable(format!("`{commit}` is not a commit id"));
        };
        let within = self.settings.request_timeout;
        let ttl = self.settings.lease_ttl.as_secs().max(2) as i64;
        let lease = match self
            .etcd
            .call(within, |mut c| async move { c.lease_grant(ttl, None).await })
            .await
        {
            Ok(granted) => granted.id(),
            Err(error) => return Claimed::Unavailable(format!("granting a lease: {error}")),
        };
        let value = format!("claimed by {}", self.settings.member);
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), value, Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let answer = self
            .etcd
            .call(within, |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                self.revoke(lease).await;
                return Claimed::Unavailable(format!("claiming {key}: {error}"));
            }
        };
        if !answer.succeeded() {
            self.revoke(lease).await;
            let by = answer
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().cloned(),
                    _ => None,
                })
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                .unwrap_or_else(|| "a claim that just expired".into());
            return Claimed::Taken { by };
        }
        let renewing = tokio::spawn(renew(self.etcd.clone(), lease, self.settings.clone()));
        Claimed::Won(Claim {
            etcd: self.etcd.clone(),
            settings: self.settings.clone(),
            key,
            lease,
            renewing,
        })
    }

    async fn revoke(&self, lease: i64) {
        revoke(&self.etcd, &self.settings, lease).await
    }
}

impl Claim {
    /// The key this claim holds.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comment is written: the head stays claimed for [`DONE_TTL`], then expires.
    pub async fn done(self) {
        let within = self.settings.request_timeout;
        let ttl = DONE_TTL.as_secs() as i64;
        let done = self.etcd.call(within, |mut c| async move { c.lease_grant(ttl, None).await });
        let moved = match done.await {
            Ok(granted) => {
                let value = format!("previewed by {}", self.settings.member);
                let options = PutOptions::new().with_lease(granted.id());
                let (key, etcd) = (self.key.clone(), &self.etcd);
                etcd.call(within, |mut c| {
                    let (key, value, options) = (key.clone(), value.clone(), options.clone());
                    async move { c.put(key, value, Some(options)).await }
                })
                .await
                .map(|_| ())
            }
            Err(error) => Err(error),
        };
        if let Err(error) = moved {
            // The claim then expires with its own lease: a redelivery is previewed again.
            tracing::warn!(key = %self.key, %error, "cannot mark the preview done in etcd");
        }
        self.renewing.abort();
        revoke(&self.etcd, &self.settings, self.lease).await;
    }

    /// The preview could not be finished: the next delivery of the head may try again.
    pub async fn release(self) {
        self.renewing.abort();
        revoke(&self.etcd, &self.settings, self.lease).await;
    }
}

/// Revokes `lease` (best effort: otherwise it expires within its TTL).
async fn revoke(etcd: &Etcd, settings: &LeaderSettings, lease: i64) {
    let revoked =
        etcd.call(settings.request_timeout, |mut c| async move { c.lease_revoke(lease).await });
    if let Err(error) = revoked.await {
        tracing::debug!(lease, %error, "cannot revoke a preview claim's lease; it expires");
    }
}

/// Renews `lease` every TTL/3 until aborted; each renewal on a fresh keep-alive stream,
/// bounded, on the next member when one fails.
async fn renew(etcd: Etcd, lease: i64, settings: Arc<LeaderSettings>) {
    let every = settings.lease_ttl / 3;
    loop {
        tokio::time::sleep(every).await;
        let renewed = etcd
            .call(settings.request_timeout, |mut c| async move {
                let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                stream.message().await
            })
            .await;
        match renewed {
            Ok(Some(answer)) if answer.ttl() > 0 => {}
            Ok(_) => {
                tracing::warn!(lease, "a preview claim's lease is gone");
                return;
            }
            Err(error) => tracing::debug!(lease, %error, "cannot renew a preview claim"),
        }
    }
}
