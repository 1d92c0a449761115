#!/usr/bin/env bash
# The hostile inputs of issue 9, generated, each validated with `gitfleet validate DIR`;
# prints one table row per bomb: file size, exit code, peak RSS, wall time, first code.
#
#   bash scripts/bombs.sh                       # target/release/gitfleet (cargo build --release)
#   GITFLEET=/path/to/other/gitfleet bash scripts/bombs.sh
#
# Each run is capped (ulimit -v, default 4 GiB of address space; timeout, default 120 s) so
# an unbounded build cannot take the machine down: "killed"/"timeout" in the table mean the
# cap was hit. Needs GNU time (/usr/bin/time -v).
set -euo pipefail

GITFLEET=${GITFLEET:-target/release/gitfleet}
MEMORY_KB=${MEMORY_KB:-4194304}
TIMEOUT=${TIMEOUT:-120}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fleet='hosts:
  a:
    endpoint: unix:///var/run/docker.sock
'

# make NAME APP_TEXT_FILE [FLEET_TEXT_FILE]
make() {
    mkdir -p "$work/$1/apps/x"
    if [[ -n "${3:-}" ]]; then cp "$3" "$work/$1/fleet.yaml"; else printf '%s' "$fleet" >"$work/$1/fleet.yaml"; fi
    cp "$2" "$work/$1/apps/x/compose.yaml"
}

gen() { python3 - "$@"; }

# 1, 2: one anchored list of N items, then a list of N aliases to it.
for n in 2400 10000; do
    gen "$n" >"$work/app" <<'EOF'
import sys
n = int(sys.argv[1])
print("x-a: &a [" + ",".join(["x"] * n) + "]")
print("x-b: [" + ",".join(["*a"] * n) + "]")
print("services:\n  web:\n    image: nginx")
EOF
    make "alias-$n" "$work/app"
done

# 3: merge keys: one mapping of 1,000 keys merged into 6,800 mappings (~180 KB).
gen >"$work/app" <<'EOF'
print("x-base: &b {" + ", ".join(f"k{i}: {i}" for i in range(1000)) + "}")
print("x-many:")
for i in range(6800):
    print(f"  m{i}: {{<<: *b, own: {i}}}")
print("services:\n  web:\n    image: nginx")
EOF
make merge "$work/app"

# 4: a 1 MB variable used 10,000 times in a 40 KB file.
gen >"$work/fleet" <<'EOF'
print("hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock")
print("variables:\n  BIG: " + "v" * 1_000_000)
EOF
gen >"$work/app" <<'EOF'
print("services:\n  web:\n    image: nginx\n    environment:\n      X: \"" + "$BIG" * 10_000 + "\"")
EOF
make interpolate "$work/app" "$work/fleet"

# 5: 100,000 nested `[`.
gen >"$work/app" <<'EOF'
print("services: " + "[" * 100_000)
EOF
make nesting "$work/app"

# 6: 1,000,000 bad ports (10 MB), and 400,000 within one MiB (a flow list).
gen >"$work/app" <<'EOF'
print("services:\n  web:\n    image: nginx\n    ports:")
for i in range(1_000_000):
    print("      - bad")
EOF
make ports-1M "$work/app"
gen >"$work/app" <<'EOF'
print("services:\n  web:\n    image: nginx\n    ports: [" + ",".join(["b"] * 400_000) + "]")
EOF
make ports-400k "$work/app"

# 7: replicas: 4294967295 (validates before the fix; plan then aborts in the scheduler).
printf 'services:\n  web:\n    image: nginx\n    deploy: {replicas: 4294967295}\n' >"$work/app"
make replicas "$work/app"

printf '%-12s %10s %5s %12s %9s  %s\n' bomb bytes exit peak_rss_kb seconds first_code
for dir in alias-2400 alias-10000 merge interpolate nesting ports-1M ports-400k replicas; do
    bytes=$(stat -c %s "$work/$dir/apps/x/compose.yaml")
    set +e
    (
        ulimit -v "$MEMORY_KB"
        exec /usr/bin/time -v -o "$work/time" timeout "$TIMEOUT" \
            "$GITFLEET" validate "$work/$dir" --format json >"$work/out" 2>"$work/err"
    )
    code=$?
    set -e
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
    seconds=$(awk -v t="$wall" 'BEGIN { n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }')
    first=$(python3 -c 'import json, os, sys
try:
    d = json.load(open(sys.argv[1]))["diagnostics"]
    size = os.path.getsize(sys.argv[1])
    print("%s (%d diagnostics, %d bytes of output)" % (d[0]["code"], len(d), size) if d else "ok")
except Exception:
    print("-")' "$work/out")
    case $code in
        124) first="timeout ($TIMEOUT s)" ;;
        134 | 137 | 139) first="killed/aborted ($code)" ;;
    esac
    printf '%-12s %10s %5s %12s %9s  %s\n' "$dir" "$bytes" "$code" "$rss" "$seconds" "$first"
done
