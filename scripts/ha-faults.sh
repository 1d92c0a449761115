#!/usr/bin/env bash
# High-availability fault trials: runs tests/docker/ha.rs with N trials of each scenario
# (kill9, sigstop, sigterm, quorum, cut, stall, raftstall; default 20 of each; CI runs 1 of
# each, about 110 s) against a real 3-member etcd cluster and two real Docker daemons,
# then prints a table per scenario (p50 / p99 / max of each figure), and the cost of the
# leadership check per batch (tests/pure/leader_etcd.rs, the fence timed in a loop).
#
#   bash scripts/ha-faults.sh [N]
#   GITFLEET_HA_SCENARIOS=raftstall bash scripts/ha-faults.sh 20   # only the scenarios named
#
# Figures come from the daemons' own event streams (docker events: the epoch label on each
# creation), not from gitfleet's logs. Run as root (the test bed makes network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
bash scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
GITFLEET_HA_TRIALS=$trials cargo test --locked --test docker ha:: -- --nocapture --test-threads=1 2>&1 | tee "$log"
GITFLEET_FENCE_ROUNDS=2000 cargo test --locked --test pure leader_etcd::the_fence_costs -- --nocapture --test-threads=1 2>&1 | tee -a "$log"
echo
echo "## HA fault trials ($trials of each; TTL 5 s)"
echo
echo "| scenario | figure | n | p50 ms | p99 ms | max ms |"
echo "| --- | --- | --- | --- | --- | --- |"
grep '^HA-RESULT ' "$log" | awk '
{
    scenario = ""; for (i = 2; i <= NF; i++) {
        split($i, kv, "=");
        if (kv[1] == "scenario") scenario = kv[2];
        else if (kv[1] != "trial" && kv[2] != "") { key = scenario " | " kv[1]; n[key]++; v[key, n[key]] = kv[2] + 0 }
    }
}
END {
    for (key in n) {
        m = n[key]; for (i = 1; i <= m; i++) a[i] = v[key, i];
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        p50 = a[int((m - 1) * 0.50) + 1]; p99 = a[int((m - 1) * 0.99) + 1];
        printf "| %s | %d | %.0f | %.0f | %.0f |\n", key, m, p50, p99, a[m]
    }
}' | sort
grep '^FENCE ' "$log" || true
violations=$(grep -c 'panicked' "$log" || true)
echo
echo "trials failed (invariant violations or timeouts): $violations"
