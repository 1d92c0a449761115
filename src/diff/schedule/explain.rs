//! Explanations: why a replica fits nowhere, in words for the operator (hosts, constraints,
//! free CPU and memory, ports taken and by whom).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::demand::{Demand, Exclusion, Load, Published};
use crate::model::{Capacity, Constraint, Host};

impl<'m> Demand<'m> {
    /// Why no host can take one more replica: the constraints if no host is a candidate,
    /// otherwise what excludes each candidate.
    pub(super) fn reason(
        &self,
        names: &[&str],
        hosts: &[&Host],
        loads: &[Load<'m>],
        counts: &[u32],
        capacities: &[Capacity],
    ) -> String {
        if self.candidates.is_empty() {
            return match &self.platform {
                Some(why) => why.to_string(),
                None => unsatisfiable(self.constraints, names, hosts),
            };
        }
        let mut max_per_node = Vec::new();
        let mut cpu = Vec::new();
        let mut memory = Vec::new();
        // Grouped by port, in order of first appearance.
        let mut ports: Vec<(&Published, Vec<Taken>)> = Vec::new();
        for &h in self.candidates.iter() {
            let name = names[h];
            match self.exclusion(&loads[h], counts[h], &capacities[h]) {
                None => {}
                Some(Exclusion::MaxPerNode) => max_per_node.push(name.to_string()),
                Some(Exclusion::Cpu { free }) => cpu.push((name, free)),
                Some(Exclusion::Memory { free }) => memory.push((name, free)),
                Some(Exclusion::Port { published, app, service }) => {
                    let taken = Taken { host: name, app, service };
                    match ports.iter_mut().find(|(p, _)| std::ptr::eq(*p, published)) {
                        Some((_, hosts)) => hosts.push(taken),
                        None => ports.push((published, vec![taken])),
                    }
                }
            }
        }
        let max = self.max_per_node.unwrap_or(0);
        let cpus_needed = cpus(self.millicpus);
        let memory_needed = bytes(self.memory_bytes);
        let kinds =
            [!max_per_node.is_empty(), !cpu.is_empty(), !memory.is_empty(), !ports.is_empty()];
        match kinds {
            [true, false, false, false] => {
                return format!(
                    "every candidate host ({}) already runs max_replicas_per_node = {max}",
                    list(max_per_node)
                );
            }
            [false, true, false, false] => {
                let (host, free) = most_free(&cpu);
                return format!(
                    "needs {cpus_needed} reserved; most free on a candidate host is {} ({host})",
                    cpus(free)
                );
            }
            [false, false, true, false] => {
                let (host, free) = most_free(&memory);
                return format!(
                    "needs {memory_needed} of memory reserved; most free on a candidate host is {} \
                     ({host})",
                    bytes(free)
                );
            }
            [false, false, false, true] => {
                if let [(published, hosts)] = ports.as_slice() {
                    return format!(
                        "host port {published} is already published on every candidate host ({})",
                        list(hosts.iter().map(Taken::to_string))
                    );
                }
                let each = ports.iter().flat_map(|(published, hosts)| {
                    hosts.iter().map(move |Taken { host, app, service }| {
                        format!("{host}: {published} by {app}/{service}")
                    })
                });
                return format!(
                    "its host ports are already published on every candidate host ({})",
                    list(each)
                );
            }
            // Only reached if a candidate had room after all, which `choose` rules out.
            [false, false, false, false] => return "no candidate host has room".to_string(),
            _ => {}
        }
        let mut parts = Vec::new();
        if !max_per_node.is_empty() {
            let verb = if max_per_node.len() == 1 { "runs" } else { "run" };
            parts.push(format!(
                "{} already {verb} max_replicas_per_node = {max}",
                list(max_per_node)
            ));
        }
        if !cpu.is_empty() {
            let each = cpu.iter().map(|(host, free)| format!("{host} ({})", cpus(*free)));
            parts
                .push(format!("needs {cpus_needed} reserved, more than is free on {}", list(each)));
        }
        if !memory.is_empty() {
            let each = memory.iter().map(|(host, free)| format!("{host} ({})", bytes(*free)));
            parts.push(format!(
                "needs {memory_needed} of memory reserved, more than is free on {}",
                list(each)
            ));
        }
        for (published, hosts) in &ports {
            let each = hosts.iter().map(Taken::to_string);
            parts.push(format!("host port {published} is already published on {}", list(each)));
        }
        format!("no candidate host has room: {}", parts.join("; "))
    }
}

/// A host where a port is already published, and by which service.
struct Taken<'a> {
    host: &'a str,
    app: &'a str,
    service: &'a str,
}

impl std::fmt::Display for Taken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} by {}/{}", self.host, self.app, self.service)
    }
}

/// The first host (by name) with the most free.
fn most_free<'a>(hosts: &[(&'a str, u64)]) -> (&'a str, u64) {
    // `max_by_key` keeps the last of equals: reversed, that is the first.
    hosts.iter().rev().copied().max_by_key(|&(_, free)| free).unwrap_or(("", 0))
}

/// Why no registered host satisfies `constraints`: each host with the first constraint it
/// fails, grouped by constraint.
fn unsatisfiable(constraints: &[Constraint], names: &[&str], hosts: &[&Host]) -> String {
    if hosts.is_empty() {
        return "the fleet has no hosts".to_string();
    }
    let mut failing: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut fitting = Vec::new();
    for (name, host) in names.iter().zip(hosts) {
        match constraints.iter().position(|c| !c.satisfied_by(host)) {
            Some(first) => failing.entry(first).or_default().push(name.to_string()),
            None => fitting.push(name.to_string()),
        }
    }
    // Every host fits the constraints, yet none is a candidate: they are down (or refused).
    if failing.is_empty() {
        return format!("no host can take it: {} down or refused", list(fitting));
    }
    if failing.len() == 1 {
        let (first, names) = failing.into_iter().next().unwrap_or_default();
        return format!("no host satisfies {} (hosts: {})", constraints[first], list(names));
    }
    let parts: Vec<String> = failing
        .into_iter()
        .map(|(first, names)| {
            let verb = if names.len() == 1 { "fails" } else { "fail" };
            format!("{} {verb} {}", list(names), constraints[first])
        })
        .collect();
    format!("no host satisfies all placement constraints: {}", parts.join("; "))
}

/// `a, b, c`, or `a, b, …, j and 5 more` past ten items.
fn list(items: impl IntoIterator<Item = String>) -> String {
    const SHOWN: usize = 10;
    let mut out = String::new();
    let mut more = 0;
    for (i, item) in items.into_iter().enumerate() {
        if i >= SHOWN {
            more += 1;
        } else {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&item);
        }
    }
    if more > 0 {
        let _ = write!(out, " and {more} more");
    }
    out
}

/// Milli-CPUs as an operator writes them: `1 CPU`, `2 CPUs`, `1.5 CPUs`, `0.25 CPUs`.
fn cpus(millicpus: u64) -> String {
    if millicpus == 1000 {
        return "1 CPU".to_string();
    }
    format!("{} CPUs", decimal(millicpus / 1000, millicpus % 1000, 3))
}

/// Bytes in binary units, rounded down to two decimals: `512 MiB`, `1.5 GiB`, `900 B`.
fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >> (10 * (unit + 2)) > 0 {
        unit += 1;
    }
    let size = 1_u128 << (10 * (unit + 1));
    let hundredths = u128::from(bytes) * 100 / size;
    let hundredths = u64::try_from(hundredths).unwrap_or(u64::MAX);
    format!("{} {}", decimal(hundredths / 100, hundredths % 100, 2), UNITS[unit])
}

/// `whole.fraction` with `digits` fraction digits, trailing zeros (and dot) trimmed.
fn decimal(whole: u64, fraction: u64, digits: usize) -> String {
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn formats_amounts_for_people() {
        let cpu = [
            (0, "0 CPUs"),
            (1, "0.001 CPUs"),
            (250, "0.25 CPUs"),
            (1000, "1 CPU"),
            (1500, "1.5 CPUs"),
            (2000, "2 CPUs"),
            (64_000, "64 CPUs"),
        ];
        for (millicpus, text) in cpu {
            assert_eq!(cpus(millicpus), text);
        }
        let memory = [
            (0, "0 B"),
            (900, "900 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (512 * MIB, "512 MiB"),
            (GIB + GIB / 2, "1.5 GiB"),
            (GIB - 1, "1023.99 MiB"),
            (3 << 40, "3 TiB"),
            (u64::MAX, "15.99 EiB"),
        ];
        for (amount, text) in memory {
            assert_eq!(bytes(amount), text);
        }
        assert_eq!(list(["a".to_string()]), "a");
        assert_eq!(list((0..12).map(|i| i.to_string())), "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more");
    }
}
