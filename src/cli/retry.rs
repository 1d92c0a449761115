//! `gitfleet retry`: asks a running controller to roll out again a revision whose rollout
//! failed its health gate and was rolled back, without a new commit. It sends the signed
//! generic hook (`POST /hooks/generic`, `X-Gitfleet-Signature: sha256=<HMAC of the body>`)
//! that any script could send; the controller fetches, and makes the rejected revision its
//! target again while it is still the branch head. With `--app NAME` the body is
//! `{"app": "NAME"}` and only that app's failed rollout is retried (the other failed apps
//! keep their last good version); an app the controller does not know is refused (422).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the controller receives webhooks (its --hooks-listen, else its --listen).
    #[arg(long, env = "GITFLEET_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The controller's --webhook-generic-secret (visible in `ps`: prefer the -file form).
    #[arg(long, env = "GITFLEET_WEBHOOK_GENERIC_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A file holding the secret (its trailing newline dropped).
    #[arg(long, env = "GITFLEET_WEBHOOK_GENERIC_SECRET_FILE", conflicts_with = "secret")]
    secret_file: Option<PathBuf>,
    /// Retry only this app's failed rollout (its folder name under apps/); without it, every
    /// app whose rollout failed is retried.
    #[arg(long)]
    app: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let url = format!("{}/hooks/generic", args.server.trim_end_matches('/'));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--server must be an http:// or https:// URL, not {:?}", args.server);
    }
    let secret = match (args.secret, args.secret_file) {
        (Some(secret), _) => secret,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the secret file {}", path.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        (None, None) => bail!(
            "the generic hook's secret is needed: --secret-file (or GITFLEET_WEBHOOK_GENERIC_SECRET_FILE) naming the file the controller's --webhook-generic-secret-file reads"
        ),
    };
    if let Some(app) = &args.app {
        if !crate::model::load::valid_app_name(app) {
            bail!(
                "--app {app:?} is not an app name: an app is named by its folder under apps/ (lower-case letters, digits, '-' and '_')"
            );
        }
    }
    let body = match &args.app {
        Some(app) => serde_json::to_vec(&serde_json::json!({ "app": app }))?,
        None => b"{}".to_vec(),
    };
    let signature = format!("sha256={}", crate::webhook::sign(secret.as_bytes(), &body));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (code, text) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()?;
        let response = client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-Gitfleet-Signature", signature)
            .body(body)
            .send()
            .await
            .with_context(|| {
                format!("cannot reach the controller at {url}: is `gitfleet run` running there?")
            })?;
        let code = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::Ok((code, text))
    })?;
    match code.as_u16() {
        200..=299 => {
            match &args.app {
                Some(app) => println!(
                    "retry of app {app} requested: the controller fetches, and rolls out again the version of {app} it rolled back if its revision is still the head"
                ),
                None => println!(
                    "retry requested: the controller fetches, and rolls out again a revision it rolled back if it is still the head"
                ),
            }
            Ok(0)
        }
        422 => {
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let reason = answer["error"].as_str().unwrap_or(text.trim());
            bail!("the controller refused the retry: {reason}")
        }
        401 => bail!(
            "{url} refused the request's signature: the secret is not the controller's --webhook-generic-secret"
        ),
        404 => bail!(
            "{url} answered 404: the controller has no generic receiver (start it with --webhook-generic-secret-file), or this is not its hooks address"
        ),
        _ => bail!("{url} answered {code}: {}", text.trim()),
    }
}
