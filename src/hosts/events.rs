//! The Docker events stream of one host, reduced to what the controller reacts to: a
//! container of this fleet died, was destroyed, ran out of memory, or changed health.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::EventsOptions;
use futures_util::{Stream, StreamExt};

use super::error::HostError;
use crate::diff::labels;

/// The container actions that may leave a replica missing or unhealthy.
pub const WATCHED_ACTIONS: [&str; 4] = ["die", "destroy", "oom", "health_status"];

/// One event of a fleet container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `die`, `destroy`, `oom`, or `health_status: unhealthy` (Docker's action text).
    pub action: String,
    /// The container's name, as its labels and attributes give it.
    pub container: String,
    /// The container's id.
    pub id: String,
}

/// Streams the watched events of this fleet's containers on `docker`, from now on. The
/// stream ends, or yields an error, when the connection breaks.
pub fn container_events(
    docker: &Docker,
    fleet: &str,
) -> impl Stream<Item = Result<ContainerEvent, HostError>> + use<> {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("label".to_string(), vec![format!("{}={fleet}", labels::FLEET)]),
        ("event".to_string(), WATCHED_ACTIONS.iter().map(|a| a.to_string()).collect()),
    ]);
    let options = EventsOptions { filters: Some(filters), ..Default::default() };
    docker.events(Some(options)).map(|item| {
        let message = item.map_err(|e| HostError::from_request("streaming events", e))?;
        let actor = message.actor.unwrap_or_default();
        let id = actor.id.unwrap_or_default();
        let container = actor
            .attributes
            .and_then(|mut attributes| attributes.remove("name"))
            .unwrap_or_else(|| id.clone());
        Ok(ContainerEvent { action: message.action.unwrap_or_default(), container, id })
    })
}
