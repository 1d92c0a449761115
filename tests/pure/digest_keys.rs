//! Keyed secret digests, through load and plan: with a digest key, no plan, spec label or
//! spec hash carries a plain SHA-256 of a secret; and rotating the key is never a silent
//! replacement of every container: a key file changed alone is refused (nothing planned),
//! and the commit that names the new key plans the replacement of exactly the containers
//! that mount a config or secret.

use gitfleet::diff::simulate::apply_plan;
use gitfleet::diff::{Desired, HostObservation, HostState, Observed, Plan, Step, plan};
use gitfleet::model::digest::{DigestKey, sha256_hex};
use gitfleet::model::{LoadOptions, Model, SourceTree, load_with};

const PASSWORD: &str = "hunter2";

fn tree(digest_key: Option<&str>) -> SourceTree {
    let settings = digest_key.map(|id| format!("settings:\n  digest_key: \"{id}\"\n"));
    let fleet = format!(
        "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n{}",
        settings.unwrap_or_default()
    );
    let mut tree = SourceTree::new();
    tree.insert_file("fleet.yaml", fleet.into_bytes());
    tree.insert_file(
        "apps/db/compose.yaml",
        b"services:\n  db:\n    image: postgres:16\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw\n"
            .to_vec(),
    );
    tree.insert_file("apps/db/pw", PASSWORD.as_bytes().to_vec());
    tree.insert_file(
        "apps/web/compose.yaml",
        b"services:\n  web:\n    image: nginx:1.27\n".to_vec(),
    );
    tree
}

fn load(tree: &SourceTree, key: Option<&DigestKey>) -> Result<Model, String> {
    let options = LoadOptions { digest_key: key.cloned(), ..LoadOptions::default() };
    load_with(tree, &options).map_err(|d| format!("{d:?}"))
}

fn empty() -> Observed {
    let mut observed = Observed::default();
    observed.hosts.insert("a".into(), HostObservation::Reachable(HostState::default()));
    observed
}

fn plan_for(model: &Model, observed: &Observed) -> Plan {
    plan(&Desired::new(model, observed, Some("c".repeat(40))), observed)
}

/// Every label and step of `plan`, as text.
fn everything(plan: &Plan) -> String {
    serde_json::to_string(plan).unwrap()
}

fn replaced(plan: &Plan) -> Vec<String> {
    plan.hosts
        .iter()
        .flat_map(|h| &h.steps)
        .filter_map(|step| match step {
            Step::ReplaceContainer { .. } => Some(step.target().1.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_keyed_fleet_shows_no_plain_digest_and_a_rotation_is_a_reviewed_commit() {
    let key = DigestKey::new(b"first key: 0123456789abcdef").unwrap();
    let rotated = DigestKey::new(b"second key: fedcba9876543210").unwrap();
    let plain = sha256_hex(PASSWORD.as_bytes());

    // Without a key, the plain digest is what plans and labels carry (the old behaviour).
    let unkeyed = load(&tree(None), None).unwrap();
    assert!(everything(&plan_for(&unkeyed, &empty())).contains(&plain));

    // With the key the fleet names: no trace of the plain digest anywhere.
    let model = load(&tree(Some(key.id())), Some(&key)).unwrap();
    let first = plan_for(&model, &empty());
    let shown = everything(&first);
    assert!(!shown.contains(&plain), "plain digest in the plan");
    assert!(shown.contains(&key.digest(PASSWORD.as_bytes())));
    let deployed = apply_plan(&empty(), &first);
    assert_eq!(plan_for(&model, &deployed).summary.replace, 0);

    // The key file changed but fleet.yaml did not: refused, nothing planned.
    let refused = load(&tree(Some(key.id())), Some(&rotated)).unwrap_err();
    assert!(refused.contains("digest-key") && refused.contains(rotated.id()), "{refused}");
    // The key given but not named (turning keys on by the key file alone): refused too.
    let refused = load(&tree(None), Some(&key)).unwrap_err();
    assert!(refused.contains(&format!("digest_key: {}", key.id())), "{refused}");

    // The commit that names the new key: its plan replaces the containers that mount a
    // secret, and only those.
    let rotated_model = load(&tree(Some(rotated.id())), Some(&rotated)).unwrap();
    let rotation = plan_for(&rotated_model, &deployed);
    assert_eq!(replaced(&rotation), ["db-db-1"], "{rotation:?}");
    assert_eq!(rotation.summary.replace, 1);
    assert_eq!(rotation.summary.create + rotation.summary.remove, 0);
}
