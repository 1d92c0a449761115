//! A container's life after create: start, stop, rename, remove, and what the apply engine
//! watches (its status and health, the end of its log).
//!
//! # Guarantees
//!
//! * Idempotent where an operator would expect it: starting a running container, stopping a
//!   stopped or missing one, and removing a missing one all succeed.
//! * [`remove_container`] never removes volumes, not even the container's anonymous ones.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::{
    InspectContainerOptions, LogsOptions, RemoveContainerOptions, RenameContainerOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;

use super::error::HostError;
use crate::diff::observed::PublishedPort;

/// Starts the container `id` (or name). Starting a running container succeeds.
///
/// # Errors
///
/// [`HostError::Refused`] with Docker's message: no such container (404), a published port
/// already taken on the host, a command that cannot be executed; [`HostError::Interrupted`].
pub async fn start_container(docker: &Docker, id: &str) -> Result<(), HostError> {
    docker
        .start_container(id, None)
        .await
        .map_err(|e| HostError::about("starting container", id, e))
}

/// Stops the container `id`: its stop signal, then `SIGKILL` after `grace` (whole seconds,
/// rounded up). Waits until it has stopped. A stopped or missing container is success.
///
/// The client's own request timeout is stretched to cover `grace`, so a long grace period is
/// waited out rather than reported as a timeout.
///
/// # Errors
///
/// [`HostError::Refused`] / [`HostError::Interrupted`].
pub async fn stop_container(docker: &Docker, id: &str, grace: Duration) -> Result<(), HostError> {
    let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    let options =
        StopContainerOptions { t: Some(i32::try_from(seconds).unwrap_or(i32::MAX)), signal: None };
    let needed = Duration::from_secs(seconds + 30);
    let stretched;
    let client = if docker.timeout() < needed {
        stretched = docker.clone().with_timeout(needed);
        &stretched
    } else {
        docker
    };
    match client.stop_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(err) => {
            let err = HostError::about("stopping container", id, err);
            if err.is_not_found() { Ok(()) } else { Err(err) }
        }
    }
}

/// Removes the container `id`, running or not (force), and never its volumes (named or
/// anonymous: `v=false`). A container that does not exist, or whose removal is already under
/// way, is success: the call is idempotent.
///
/// # Errors
///
/// [`HostError::Refused`] / [`HostError::Interrupted`].
pub async fn remove_container(docker: &Docker, id: &str) -> Result<(), HostError> {
    let options = RemoveContainerOptions { v: false, force: true, link: false };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(err) => {
            let err = HostError::about("removing container", id, err);
            let in_progress = matches!(
                &err,
                HostError::Refused { status: Some(409), message, .. }
                    if message.contains("already in progress")
            );
            if err.is_not_found() || in_progress { Ok(()) } else { Err(err) }
        }
    }
}

/// Renames the container `id` to `new_name` (for updates: the old replica steps aside under
/// another name while the new one takes the replica's name). Idempotent: a container that
/// already has `new_name` (an apply killed after renaming it) is left as it is.
///
/// # Errors
///
/// [`HostError::Refused`]: no such container (404), the name is taken by another container
/// (409); [`HostError::Interrupted`].
pub async fn rename_container(docker: &Docker, id: &str, new_name: &str) -> Result<(), HostError> {
    let options = RenameContainerOptions { name: new_name.to_string() };
    match docker.rename_container(id, options).await {
        Ok(()) => Ok(()),
        // Docker refuses a rename to the current name; for us that is already done.
        Err(e) if e.to_string().contains("same name as its current name") => Ok(()),
        Err(e) => Err(HostError::about("renaming container", format!("{id} to {new_name}"), e)),
    }
}

/// A container's health as its Docker health check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Within its start period, or not yet checked.
    Starting,
    Healthy,
    /// It failed its check `retries` times in a row.
    Unhealthy,
}

/// What [`container_status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub running: bool,
    /// Docker's state: `created`, `running`, `restarting`, `paused`, `exited`, `dead`, ...
    pub state: String,
    /// The exit code of its last run, once it has ended one (`exited`, `dead`, `restarting`).
    pub exit_code: Option<i64>,
    /// `None` when the container has no health check (or it is disabled).
    pub health: Option<Health>,
    /// The output of the last health check, when there has been one.
    pub health_output: Option<String>,
    /// How many times the engine restarted it under its restart policy.
    pub restart_count: i64,
    /// Whether the kernel's OOM killer ended its last run.
    pub oom_killed: bool,
    /// Docker's error when it could not run it at all (`exec: "x": executable file not
    /// found`, say).
    pub error: Option<String>,
}

/// The state, exit code, health and restart count of the container `id`, from one inspect.
///
/// # Errors
///
/// [`HostError::Refused`] (404 for no such container) / [`HostError::Interrupted`].
pub async fn container_status(docker: &Docker, id: &str) -> Result<ContainerStatus, HostError> {
    let inspect = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| HostError::about("inspecting container", id, e))?;
    let state = inspect.state.unwrap_or_default();
    let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
    let ended = matches!(
        status,
        ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::RESTARTING
    );
    let health = state.health.as_ref().and_then(|h| match h.status? {
        HealthStatusEnum::STARTING => Some(Health::Starting),
        HealthStatusEnum::HEALTHY => Some(Health::Healthy),
        HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
    });
    let health_output = state
        .health
        .and_then(|h| h.log)
        .and_then(|log| log.into_iter().last())
        .and_then(|last| last.output)
        .map(|out| out.trim_end().to_string());
    Ok(ContainerStatus {
        running: state.running.unwrap_or(false),
        state: status.to_string(),
        exit_code: if ended { state.exit_code } else { None },
        health,
        health_output: health.and(health_output),
        restart_count: inspect.restart_count.unwrap_or(0),
        oom_killed: state.oom_killed.unwrap_or(false),
        error: state.error.filter(|e| !e.is_empty()),
    })
}

/// The ports container `id` publishes, from one inspect (what the router needs of a replica
/// that was just started, before the next observation lists it).
///
/// # Errors
///
/// [`HostError::Refused`] (404 for no such container) / [`HostError::Interrupted`].
pub async fn published_ports(docker: &Docker, id: &str) -> Result<Vec<PublishedPort>, HostError> {
    let inspect = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| HostError::about("inspecting container", id, e))?;
    let ports = inspect.network_settings.and_then(|n| n.ports).unwrap_or_default();
    let mut published = Vec::new();
    for (key, bindings) in ports {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u16>() else { continue };
        for binding in bindings.unwrap_or_default() {
            let host_port = binding.host_port.as_deref().and_then(|p| p.parse::<u16>().ok());
            let Some(host_port) = host_port.filter(|p| *p != 0) else { continue };
            published.push(PublishedPort {
                container_port,
                host_port,
                protocol: protocol.to_string(),
                host_ip: binding.host_ip.unwrap_or_default(),
            });
        }
    }
    published.sort_by(|a, b| {
        (a.container_port, a.host_port, &a.host_ip).cmp(&(
            b.container_port,
            b.host_port,
            &b.host_ip,
        ))
    });
    Ok(published)
}

/// The last `lines` lines of the container's output, standard output and error interleaved
/// as Docker stored them, decoded as UTF-8 (invalid bytes replaced).
///
/// # Errors
///
/// [`HostError::Refused`] (404 for no such container) / [`HostError::Interrupted`].
pub async fn logs_tail(docker: &Docker, id: &str, lines: usize) -> Result<String, HostError> {
    let options =
        LogsOptions { stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
    let mut stream = docker.logs(id, Some(options));
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| HostError::about("reading the log of container", id, e))?;
        out.extend_from_slice(chunk.as_ref());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
