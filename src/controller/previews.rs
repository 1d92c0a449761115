//! Pull-request plan previews: for a pull request into the watched branch, fetch its head,
//! validate it, plan it against the hosts' live state, and keep one comment on the pull
//! request up to date with the result (see `forge::preview`). Previews only read: they
//! observe the hosts, never change them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tracing::Instrument;

use super::source::{Source, SourceError};
use crate::forge::{ForgeClient, Preview, PreviewOutcome, PullRequestRef, render_comment};
use crate::webhook::{Forge, PullRequestAction, PullRequestHook};

/// Pending previews, one per pull request (a newer push replaces an older one).
#[derive(Default)]
pub struct PreviewQueue {
    pending: Mutex<BTreeMap<(String, u64), PullRequestHook>>,
    wake: Notify,
}

impl PreviewQueue {
    pub fn push(&self, hook: PullRequestHook) {
        if !matches!(hook.action, PullRequestAction::Opened | PullRequestAction::Updated) {
            return;
        }
        let key = (hook.repository.clone(), hook.number);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(key, hook);
        self.wake.notify_one();
    }

    async fn next(&self) -> PullRequestHook {
        loop {
            let next = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let key = pending.keys().next().cloned();
                key.and_then(|k| pending.remove(&k))
            };
            if let Some(hook) = next {
                return hook;
            }
            self.wake.notified().await;
        }
    }
}

/// The remote reference a forge keeps a pull request's head under.
pub fn head_ref(forge: Forge, number: u64) -> String {
    match forge {
        Forge::GitLab => format!("refs/merge-requests/{number}/head"),
        Forge::GitHub | Forge::Gitea | Forge::Forgejo | Forge::Generic => {
            format!("refs/pull/{number}/head")
        }
    }
}

/// Works through the queue forever: one preview at a time.
pub async fn run(
    queue: Arc<PreviewQueue>,
    source: Arc<tokio::sync::Mutex<Source>>,
    client: ForgeClient,
) {
    loop {
        let hook = queue.next().await;
        let span = tracing::info_span!("preview", pr = hook.number, commit = %hook.head_commit);
        async {
            let body = comment_for(&hook, &source).await;
            let pr = PullRequestRef {
                repository: hook.repository.clone(),
                project_id: hook.project_id,
                number: hook.number,
            };
            match client.upsert_comment(&pr, &body).await {
                Ok(action) => tracing::info!(?action, "plan preview posted"),
                Err(error) => tracing::warn!(%error, "cannot post the plan preview"),
            }
        }
        .instrument(span)
        .await;
    }
}

/// The comment for `hook`'s head commit.
pub async fn comment_for(hook: &PullRequestHook, source: &tokio::sync::Mutex<Source>) -> String {
    let loaded = {
        let source = source.lock().await;
        tokio::task::block_in_place(|| {
            let fetched = source.fetch_ref(&head_ref(hook.forge, hook.number));
            match fetched {
                Ok(revision) if revision.commit != hook.head_commit => Err(format!(
                    "the pull request's head is {} but the hook named {}; a newer push will update this comment",
                    revision.commit, hook.head_commit
                )),
                Ok(_) => Ok(source.load_uncached(&hook.head_commit)),
                Err(error) => Err(error.to_string()),
            }
        })
    };
    let commit = hook.head_commit.as_str();
    match loaded {
        Err(failure) => {
            render_comment(&Preview { commit, outcome: PreviewOutcome::Failed(&failure) })
        }
        Ok(Err(SourceError::Unreadable(failure))) => {
            render_comment(&Preview { commit, outcome: PreviewOutcome::Failed(&failure) })
        }
        Ok(Err(SourceError::Invalid(diagnostics))) => {
            render_comment(&Preview { commit, outcome: PreviewOutcome::Invalid(&diagnostics) })
        }
        Ok(Ok(model)) => {
            let (plan, _) = super::observe_and_plan(&model, Some(commit.to_string())).await;
            render_comment(&Preview { commit, outcome: PreviewOutcome::Planned(&plan) })
        }
    }
}
