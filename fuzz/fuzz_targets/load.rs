//! `model::load` on arbitrary bytes, as `fleet.yaml` (beside a valid app) or as an app's
//! `compose.yaml` (beside a valid fleet), chosen by the first byte. Loading must not panic,
//! and every diagnostic must be usable: a file that is an input, a position from 1:1, a code
//! and a message.
//!
//! From the repository root (new inputs go to the ignored `fuzz/corpus/load`; `fuzz/seeds`
//! holds the example repository's files, first byte 0 for an app, 1 for the fleet):
//!
//! ```sh
//! mkdir -p fuzz/corpus/load
//! cargo +nightly fuzz run load fuzz/corpus/load fuzz/seeds -- \
//!     -dict=fuzz/compose.dict -max_total_time=300
//! ```
#![no_main]

use gitfleet::model::{SourceTree, load};
use libfuzzer_sys::fuzz_target;

const FLEET: &[u8] = b"\
hosts:
  a:
    endpoint: unix:///var/run/docker.sock
    labels: { zone: a }
  b:
    endpoint: tcp://10.0.0.2:2375
    labels: { zone: b }
variables:
  WEB_TAG: \"1\"
";
const APP: &[u8] = b"\
services:
  web:
    image: nginx:${WEB_TAG}
    ports: [\"8080:80\"]
    configs: [cfg]
configs:
  cfg:
    file: ./config.json
";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else { return };
    let mut tree = SourceTree::new();
    if selector & 1 == 1 {
        tree.insert_file("fleet.yaml", text.to_vec());
        tree.insert_file("apps/x/compose.yaml", APP.to_vec());
    } else {
        tree.insert_file("fleet.yaml", FLEET.to_vec());
        tree.insert_file("apps/x/compose.yaml", text.to_vec());
    }
    tree.insert_file("apps/x/config.json", b"{}\n".to_vec());
    if let Err(diagnostics) = load(&tree) {
        assert!(!diagnostics.is_empty(), "rejected without a diagnostic");
        for d in &diagnostics {
            assert!(d.line >= 1 && d.column >= 1, "position before 1:1: {d}");
            assert!(
                !d.code.is_empty() && !d.message.trim().is_empty(),
                "empty code or message: {d:?}"
            );
            let known = tree.get(&d.file).is_some() || d.file == "apps/x";
            assert!(known, "diagnostic names a file that is not an input: {d:?}");
        }
    }
});
