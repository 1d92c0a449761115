//! The property of `model::limits`: no input of at most `N` bytes makes loading use more than
//! a documented multiple of `N` in memory or time.
//!
//! * Memory: the peak of live heap bytes allocated by the loading thread, counted by this
//!   test binary's global allocator ([`crate::counting`]), at most
//!   [`MEMORY_PER_BYTE`]` × N + `[`MEMORY_BASE`].
//! * Time: the loading thread's CPU time (not wall clock, so a busy machine does not fail
//!   it), at most [`CPU_PER_BYTE`]` × N + `[`CPU_BASE`], generous for a debug build: what it
//!   catches is growth faster than linear (the 34 s of 100,000 nested `[` before the limits).
//!
//! Inputs, up to [`MAX_INPUT`] bytes across `fleet.yaml` and one compose file: the bombs of
//! issue 9 with random sizes (alias lists, merge keys, nested brackets, a big variable used
//! many times, many bad ports, deep block nesting) and random bytes. 48 cases, a few seconds
//! in a debug build.

use std::time::Duration;

use gitfleet::model::{SourceTree, load};
use proptest::prelude::*;

use crate::counting;

/// The largest input tried, bytes.
const MAX_INPUT: usize = 48 * 1024;
/// Peak live heap per input byte, at most.
const MEMORY_PER_BYTE: usize = 400;
/// Plus this much, whatever the input (schemas, compiled once per process, are not counted:
/// they are built before the measurement).
const MEMORY_BASE: usize = 8 << 20;
/// CPU time per input byte, at most.
const CPU_PER_BYTE: Duration = Duration::from_micros(40);
const CPU_BASE: Duration = Duration::from_secs(1);

const FLEET: &str = "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n";

/// One hostile repository: `fleet.yaml` and `apps/x/compose.yaml`.
#[derive(Debug, Clone)]
struct Input {
    fleet: String,
    app: Vec<u8>,
}

impl Input {
    fn len(&self) -> usize {
        self.fleet.len() + self.app.len()
    }

    fn app(text: String) -> Input {
        Input { fleet: FLEET.to_string(), app: text.into_bytes() }
    }
}

fn alias_list(n: usize) -> Input {
    let items = vec!["x"; n].join(",");
    let aliases = vec!["*a"; n].join(",");
    Input::app(format!(
        "x-a: &a [{items}]\nx-b: [{aliases}]\nservices:\n  web:\n    image: nginx\n"
    ))
}

fn merge_keys(keys: usize, mappings: usize) -> Input {
    let base: Vec<String> = (0..keys).map(|i| format!("k{i}: {i}")).collect();
    let mut text = format!("x-base: &b {{{}}}\nx-many:\n", base.join(", "));
    for i in 0..mappings {
        text.push_str(&format!("  m{i}: {{<<: *b, own: {i}}}\n"));
    }
    text.push_str("services:\n  web:\n    image: nginx\n");
    Input::app(text)
}

fn brackets(depth: usize) -> Input {
    Input::app(format!("services: {}{}\n", "[".repeat(depth), "]".repeat(depth)))
}

fn big_variable(value: usize, uses: usize) -> Input {
    let fleet = format!("{FLEET}variables:\n  BIG: {}\n", "v".repeat(value));
    let env: Vec<String> = (0..uses).map(|i| format!("      V{i}: ${{BIG}}")).collect();
    let app =
        format!("services:\n  web:\n    image: nginx\n    environment:\n{}\n", env.join("\n"));
    Input { fleet, app: app.into_bytes() }
}

fn bad_ports(n: usize) -> Input {
    let ports: Vec<String> = (0..n).map(|i| format!("      - \"{}:x\"", 70_000 + i)).collect();
    Input::app(format!("services:\n  web:\n    image: nginx\n    ports:\n{}\n", ports.join("\n")))
}

fn block_nesting(depth: usize) -> Input {
    let mut text = String::from("services:\n  web:\n    image: nginx\nx-deep:\n");
    for level in 0..depth {
        text.push_str(&format!("{}k{level}:\n", " ".repeat(2 + level)));
    }
    Input::app(text)
}

/// An input family with a random size, cut to [`MAX_INPUT`] (a cut bomb is still hostile:
/// it is whatever the parser makes of it).
fn input() -> impl Strategy<Value = Input> {
    let family = prop_oneof![
        (1usize..12_000).prop_map(alias_list),
        (1usize..400, 1usize..1_200).prop_map(|(k, m)| merge_keys(k, m)),
        (1usize..24_000).prop_map(brackets),
        (1usize..40_000, 1usize..1_500).prop_map(|(v, u)| big_variable(v, u)),
        (1usize..4_000).prop_map(bad_ports),
        (1usize..300).prop_map(block_nesting),
        proptest::collection::vec(any::<u8>(), 0..MAX_INPUT)
            .prop_map(|bytes| Input { fleet: FLEET.to_string(), app: bytes }),
    ];
    family.prop_map(|mut input| {
        input.fleet.truncate(MAX_INPUT / 2);
        let room = MAX_INPUT - input.fleet.len();
        input.app.truncate(room);
        input
    })
}

fn tree(input: &Input) -> SourceTree {
    let mut tree = SourceTree::new();
    tree.insert_file("fleet.yaml", input.fleet.clone().into_bytes());
    tree.insert_file("apps/x/compose.yaml", input.app.clone());
    tree
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Loads `input`, returning the peak of live heap bytes this thread allocated meanwhile and
/// the CPU time it took.
fn measure(input: &Input) -> (usize, Duration) {
    let tree = tree(input);
    let cpu = thread_cpu();
    let mark = counting::start();
    let result = load(&tree);
    let peak = counting::peak_since(mark);
    let took = thread_cpu() - cpu;
    drop(result);
    (peak, took)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn loading_uses_memory_and_time_linear_in_the_input(input in input()) {
        // Build what is built once per process (schemas, templates) outside the measurement.
        let _ = load(&tree(&Input::app("services: {}\n".into())));
        let n = input.len();
        let (peak, cpu) = measure(&input);
        let memory_bound = MEMORY_PER_BYTE * n + MEMORY_BASE;
        let cpu_bound = CPU_PER_BYTE * n as u32 + CPU_BASE;
        prop_assert!(peak <= memory_bound, "{n} bytes: peak {peak} bytes > {memory_bound}");
        prop_assert!(cpu <= cpu_bound, "{n} bytes: {cpu:?} of CPU > {cpu_bound:?}");
    }
}

/// The largest of each family, measured and printed (`--nocapture`): the figures behind the
/// multiples above.
#[test]
fn the_bombs_at_full_size_stay_within_the_bounds() {
    let _ = load(&tree(&Input::app("services: {}\n".into())));
    let cases = [
        ("alias list", alias_list(12_000)),
        ("merge keys", merge_keys(400, 1_000)),
        ("nested [", brackets(24_000)),
        ("big variable", big_variable(20_000, 1_200)),
        ("bad ports", bad_ports(2_000)),
        ("block nesting", block_nesting(300)),
    ];
    for (name, mut input) in cases {
        input.app.truncate(MAX_INPUT - input.fleet.len());
        let n = input.len();
        let (peak, cpu) = measure(&input);
        eprintln!(
            "{name:>13}: {n:>6} bytes -> peak {:>9} bytes ({:>5.1} x), {:>7.1} ms CPU",
            peak,
            peak as f64 / n as f64,
            cpu.as_secs_f64() * 1000.0
        );
        assert!(peak <= MEMORY_PER_BYTE * n + MEMORY_BASE, "{name}: {peak}");
        assert!(cpu <= CPU_PER_BYTE * n as u32 + CPU_BASE, "{name}: {cpu:?}");
    }
}
