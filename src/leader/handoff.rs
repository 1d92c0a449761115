//! Webhooks received by a standby, handed to the leader through etcd: the standby writes the
//! hook's gist under `/gitfleet/<fleet>/hooks/<member>`; the leader watches that prefix
//! while it leads and turns each write into a trigger. Only "something changed, sync" is
//! handed on (pushes and sync requests), with a sync request's retry and the app it names
//! (`gitfleet retry [--app NAME]`); the rest of the payload stays with the standby.

use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio_util::sync::CancellationToken;

use super::etcd::Etcd;
use super::settings::LeaderSettings;

/// A hook handed on: which forge sent it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Handed {
    pub forge: String,
    /// Who received it.
    pub member: String,
    /// A counter that makes each write a change (nanoseconds since the epoch).
    pub at: u128,
    /// A sync request that also retries the rollouts that failed. Absent in what an older
    /// standby writes, which the leader reads as a plain sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// Which failed rollouts a handed-on sync request retries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retry {
    /// One app's (as `gitfleet retry --app NAME` asks), or every failed app's.
    pub app: Option<String>,
}

/// Writes a received hook for the leader (bounded by the request timeout).
pub async fn forward(
    etcd: &Etcd,
    settings: &LeaderSettings,
    forge: &str,
    retry: Option<Retry>,
) -> Result<(), String> {
    let key = format!("{}{}", settings.hooks_prefix(), settings.member);
    let handed = Handed {
        forge: forge.to_string(),
        member: settings.member.clone(),
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
        retry,
    };
    let value = serde_json::to_string(&handed).map_err(|e| e.to_string())?;
    etcd.call(settings.request_timeout, |mut c| {
        let (key, value) = (key.clone(), value.clone());
        async move { c.put(key, value, None).await }
    })
    .await
    .map(|_| ())
}

/// While `token` lives: calls `on_hook` for every hook a standby writes from now on.
/// Re-opens the watch (on the next member) when it fails.
pub async fn receive(
    etcd: Etcd,
    settings: &LeaderSettings,
    token: CancellationToken,
    on_hook: impl Fn(Handed),
) {
    let prefix = settings.hooks_prefix();
    let mut from = None;
    while !token.is_cancelled() {
        if from.is_none() {
            let now = etcd
                .call(settings.request_timeout, |mut c| {
                    let prefix = prefix.clone();
                    async move {
                        c.get(prefix, Some(GetOptions::new().with_prefix().with_count_only())).await
                    }
                })
                .await;
            match now {
                Ok(response) => from = response.header().map(|h| h.revision() + 1),
                Err(_) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = token.cancelled() => return,
                    }
                }
            }
        }
        let (i, mut client) = etcd.client();
        let start = from.unwrap_or_default();
        let watching = async {
            let options = WatchOptions::new().with_prefix().with_start_revision(start);
            let mut stream = client.watch(prefix.as_str(), Some(options)).await?;
            while let Some(response) = stream.message().await? {
                for event in response.events() {
                    if event.event_type() != EventType::Put {
                        continue;
                    }
                    if let Some(kv) = event.kv() {
                        from = Some(kv.mod_revision() + 1);
                        if let Ok(handed) = serde_json::from_slice::<Handed>(kv.value()) {
                            on_hook(handed);
                        }
                    }
                }
            }
            Ok::<_, etcd_client::Error>(())
        };
        tokio::select! {
            result = watching => {
                if let Err(error) = result {
                    tracing::debug!(endpoint = etcd.endpoint(i), %error, "hook watch failed");
                }
                etcd.rotate(i);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = token.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_travels_with_its_app_and_an_older_standbys_write_is_a_plain_sync() {
        let handed = Handed {
            forge: "generic".into(),
            member: "b".into(),
            at: 7,
            retry: Some(Retry { app: Some("shop".into()) }),
        };
        let written = serde_json::to_string(&handed).unwrap();
        assert_eq!(serde_json::from_str::<Handed>(&written).unwrap(), handed);
        let plain = Handed { retry: None, ..handed };
        let written = serde_json::to_string(&plain).unwrap();
        assert!(!written.contains("retry"), "a plain sync writes what it wrote before: {written}");
        let older = r#"{"forge":"github","member":"a","at":1}"#;
        let read: Handed = serde_json::from_str(older).unwrap();
        assert_eq!(read.retry, None);
    }
}
