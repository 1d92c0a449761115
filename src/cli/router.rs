//! `gitfleet router-static` (hidden): the router alone, serving a hand-written route table
//! from a file (re-read within about 10 ms of a change). For benchmarks and for trying the
//! router without a fleet; `gitfleet run --router-listen` is the real thing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::router::{self, Router, static_routes};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the router listens.
    #[arg(long)]
    listen: SocketAddr,
    /// The route table (YAML): `routes: [{host, path_prefix, backends: [ADDR:PORT]}]`.
    #[arg(long)]
    routes: PathBuf,
    /// Worker threads of the runtime (default: one per CPU). With 1, the router runs on a
    /// single-threaded runtime (no work stealing to pay for), as one nginx worker does.
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let mut builder = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads.max(1));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(serve(args))
}

fn read(path: &PathBuf) -> anyhow::Result<(router::Policy, Vec<router::RouteSpec>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the route table {}", path.display()))?;
    static_routes::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn serve(args: Args) -> anyhow::Result<i32> {
    let (policy, specs) = read(&args.routes)?;
    let router = Router::new(router::Config { policy, ..router::Config::default() });
    router.set_routes(specs);
    let shutdown = CancellationToken::new();
    let (bound, server) = router
        .spawn_listener(args.listen, shutdown.clone())
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let prober = tokio::spawn({
        let router = router.clone();
        let shutdown = shutdown.clone();
        async move { router.run_prober(shutdown).await }
    });
    eprintln!("gitfleet: router listening on {bound}");
    let mut seen = modified(&args.routes);
    loop {
        tokio::select! {
            () = super::run::shutdown_signal() => break,
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        let now = modified(&args.routes);
        if now != seen {
            seen = now;
            match read(&args.routes) {
                Ok((_, specs)) => router.set_routes(specs),
                Err(error) => eprintln!("gitfleet: keeping the previous routes: {error:#}"),
            }
        }
    }
    shutdown.cancel();
    let _ = server.await;
    let _ = prober.await;
    Ok(0)
}
