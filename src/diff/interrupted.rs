//! Containers left by a start-first replacement cut short (a crash, `kill -9`, a lost lease),
//! recognised among a replica's containers before the planner picks the one to keep. Pure.
//!
//! A start-first replacement creates `<name>.next-<hash>`, starts it, waits for its health
//! gate, stops the old container, parks it as `<name>.old-<id>` and renames the new one to
//! `<name>`. Cut short, it leaves a `.next-` container beside the old one (it carries the
//! replica's labels from its creation). Kept as the replica's container, the next start-first
//! replacement to the same spec would create the same `.next-` name and Docker would refuse it
//! (409 Conflict). So:
//!
//! * while another copy of the replica (not a `.next-` one) is running, every `.next-`
//!   container is a leftover: it is removed before any container step, and the replacement is
//!   done again from the running copy, health gate included (the leftover may never have
//!   passed it);
//! * otherwise the old copy was already stopped, which a replacement does only after the new
//!   container passed its health gate: a running `.next-` container is adopted (kept like any
//!   copy; only its name is temporary, and its next replacement renames it), and the `.next-`
//!   containers that do not run are leftovers.

use super::observed::ObservedContainer;

/// Whether `name` is the temporary name a start-first replacement of `wanted` gives the new
/// container (`<wanted>.next-<hash>`).
pub fn is_next_of(name: &str, wanted: &str) -> bool {
    name.strip_prefix(wanted).is_some_and(|rest| rest.starts_with(".next-"))
}

/// Splits a replica's containers (`wanted`: the replica's Docker name) into the copies the
/// planner chooses from and the leftovers of an interrupted replacement, to be removed.
pub fn split_leftovers<'a>(
    found: Vec<&'a ObservedContainer>,
    wanted: &str,
) -> (Vec<&'a ObservedContainer>, Vec<&'a ObservedContainer>) {
    let other_runs = found.iter().any(|c| c.is_running() && !is_next_of(&c.name, wanted));
    found.into_iter().partition(|c| {
        let next = is_next_of(&c.name, wanted);
        !next || (!other_runs && c.is_running())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, state: &str) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{name}"),
            name: name.into(),
            state: state.into(),
            labels: Default::default(),
            created: 0,
            health: None,
            ports: Vec::new(),
        }
    }

    fn names(list: &[&ObservedContainer]) -> Vec<String> {
        list.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn next_names_are_recognised_only_for_their_replica() {
        assert!(is_next_of("shop-web-1.next-0123abcd", "shop-web-1"));
        assert!(!is_next_of("shop-web-1", "shop-web-1"));
        assert!(!is_next_of("shop-web-1.old-0123abcd", "shop-web-1"));
        assert!(!is_next_of("shop-web-11.next-0123abcd", "shop-web-1"));
    }

    #[test]
    fn beside_a_running_copy_every_next_container_is_a_leftover() {
        // Cut short after the create (not started) or during the health wait (running).
        for state in ["created", "running", "exited"] {
            let old = container("shop-web-1", "running");
            let next = container("shop-web-1.next-0123abcd", state);
            let (keep, leftovers) = split_leftovers(vec![&old, &next], "shop-web-1");
            assert_eq!(names(&keep), ["shop-web-1"], "{state}");
            assert_eq!(names(&leftovers), ["shop-web-1.next-0123abcd"], "{state}");
        }
    }

    #[test]
    fn once_the_old_copy_was_stopped_a_running_next_container_is_adopted() {
        // Cut short after the old one was stopped (and perhaps parked).
        for old_name in ["shop-web-1", "shop-web-1.old-4567ef012345"] {
            let old = container(old_name, "exited");
            let next = container("shop-web-1.next-0123abcd", "running");
            let (keep, leftovers) = split_leftovers(vec![&old, &next], "shop-web-1");
            assert_eq!(names(&keep), [old_name, "shop-web-1.next-0123abcd"]);
            assert!(leftovers.is_empty());
        }
    }

    #[test]
    fn a_next_container_that_does_not_run_is_never_kept() {
        let next = container("shop-web-1.next-0123abcd", "created");
        let (keep, leftovers) = split_leftovers(vec![&next], "shop-web-1");
        assert!(keep.is_empty(), "the replica is created afresh");
        assert_eq!(leftovers.len(), 1);
    }
}
