#!/usr/bin/env bash
# Converge benchmark (issue 3, "Speed"): on ONE real Docker engine, converge the same N services
# (one replica each, the local image gitfleet/web:1, no published ports, all in one app /
# project / stack) from empty with
#
#   gitfleet   `gitfleet apply DIR --yes` (release build), DIR a generated gitfleet repository
#   compose    `docker-compose up -d` (Debian's docker-compose v1, installed here if missing)
#   swarm      `docker stack deploy` on a single-node swarm on the same engine, timed until
#              every task's container is running (stack deploy returns before that)
#
# then run each again with nothing changed (the no-op). A cold time runs from the command's
# start until `docker ps` shows all N containers running (one poll for the tools that wait
# themselves, a 0.1 s poll loop for swarm, whose command returns before its tasks run); a no-op
# time is the command alone (then, untimed, all N must still run with the same container ids).
# Between runs everything is torn down: compose down; stack rm and wait until the containers
# and the network are gone; for gitfleet the containers and networks labelled
# io.gitfleet.fleet=bench are removed with the docker CLI. Runs are interleaved (gitfleet,
# compose, swarm, gitfleet, ...) so machine noise hits each tool alike.
#
# It also counts the Docker API calls of each tool's no-op run (the daemon logs every request
# as `Calling METHOD /path` in debug mode, switched on by SIGHUP around the counted run only),
# and profiles gitfleet at the largest N (validate alone, plan alone, a cold apply with
# per-step times and its API calls, cold applies with a higher --concurrency, and the engine's
# floor: N containers created and started with bare API requests from curl).
#
# The engine: a dedicated dockerd (Debian's docker.io) in its own network namespace `gfbench`
# at 10.250.3.2 (outer end 10.250.3.1), exactly as scripts/demo.sh starts its hosts, with its
# data and exec roots under /tmp/gitfleet-bench/engine, started with
# DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 so swarm uses the local image instead of trying a
# registry. Every network request goes to 10.250.3.2 or stays inside the namespace. Everything
# it started is stopped on exit, by pid and by name. Results stay in /tmp/gitfleet-bench/results
# (summary.md, times.tsv, the API call lists, apply logs).
#
#   bash scripts/bench-converge.sh             # as root, on Debian; about 6-10 minutes
#
# Environment: SIZES="10 50", RUNS_10=5, RUNS_50=3 (RUNS_<N> for any size), PROFILE=1 (0 skips
# the profile), ENDPOINT=tcp (or unix: every tool talks to the engine's unix socket),
# TOTAL_TIMEOUT=900 (seconds, hard bound on the whole script, build included), BUILD=1 (0 uses
# an existing target/release/gitfleet), KEEP_ENGINE=1 (leave the engine running for a look).
set -euo pipefail

TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-900}
if [[ -z ${GF_BENCH_BOUNDED:-} ]]; then
    # The hard bound: the whole script runs under `timeout`; on expiry the EXIT trap cleans up.
    export GF_BENCH_BOUNDED=1
    exec timeout -k 60 "$TOTAL_TIMEOUT" bash "$0" "$@"
fi

cd "$(dirname "$0")/.."
root=$(pwd)
work=/tmp/gitfleet-bench
eng=$work/engine
res=$work/results
ns=gfbench
subnet=10.250.3.0/24
addr=10.250.3.2
SIZES=${SIZES:-"10 50"}
PROFILE=${PROFILE:-1}
ENDPOINT=${ENDPOINT:-tcp}
export DOCKER_API_VERSION=1.41
export COMPOSE_HTTP_TIMEOUT=300
export DOCKER_BUILDKIT=0
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

if [[ $(id -u) -ne 0 ]]; then
    echo "$0: run as root (network namespaces, dockerd)" >&2
    exit 1
fi

log() { printf '== %s\n' "$*" >&2; }
die() {
    printf 'FAILED: %s\n' "$*" >&2
    exit 1
}

# --- prerequisites ----------------------------------------------------------------------------
bash scripts/install-deps.sh
if ! command -v docker-compose >/dev/null; then
    log "installing Debian's docker-compose (v1)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq
    timeout 300 apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
if [[ ${BUILD:-1} == 1 ]]; then
    log "cargo build --release"
    timeout 600 cargo build --release --quiet
fi
[[ -x $root/target/release/gitfleet ]] || die "no $root/target/release/gitfleet"
# A copy, so that a build running meanwhile cannot swap the binary between runs.
mkdir -p "$work"
cp "$root/target/release/gitfleet" "$work/gitfleet"
gitfleet=$work/gitfleet
built_from="$(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
[[ ${BUILD:-1} == 1 ]] || built_from="an existing build (BUILD=0; tree now at $built_from)"

# --- the engine -------------------------------------------------------------------------------
engine_pid() {
    [[ -f $eng/docker.pid ]] || return 1
    local pid
    pid=$(cat "$eng/docker.pid")
    # Only ever our own dockerd: the pid must still be a dockerd using our data root.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--data-root=$eng/data" || return 1
    echo "$pid"
}

stop_engine() {
    local pid
    if pid=$(engine_pid); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$ns-o" 2>/dev/null || true
    ip route del unreachable "$subnet" metric 4000 2>/dev/null || true
    umount "$eng/exec" "$eng/data" 2>/dev/null || true
    # The engine's data goes with it: every bench starts from an empty engine.
    [[ -d $eng ]] && rm -rf "$eng" 2>/dev/null || true
}

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    if [[ ${KEEP_ENGINE:-0} == 1 ]]; then
        log "engine kept: DOCKER_HOST=unix://$eng/docker.sock (stop: KEEP_ENGINE=0 and re-run, or kill $(cat "$eng/docker.pid" 2>/dev/null))"
    else
        stop_engine
    fi
    exit "$code"
}

start_engine() {
    mkdir -p "$eng"
    echo '{}' >"$eng/daemon.json"
    # A fallback route first, so traffic for the namespace's subnet never leaves the machine.
    ip route add unreachable "$subnet" metric 4000
    ip netns add "$ns"
    ip link add "$ns-o" type veth peer name "$ns-i"
    ip link set "$ns-i" netns "$ns"
    ip addr add 10.250.3.1/24 dev "$ns-o"
    ip link set "$ns-o" up
    ip -n "$ns" addr add "$addr/24" dev "$ns-i"
    ip -n "$ns" link set "$ns-i" up
    ip -n "$ns" link set lo up
    # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then fails.
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nsenter --net="/var/run/netns/$ns" dockerd \
        --config-file="$eng/daemon.json" \
        --host="unix://$eng/docker.sock" --host="tcp://$addr:2375" --tls=false \
        --data-root="$eng/data" --exec-root="$eng/exec" --pidfile="$eng/docker.pid" \
        --shutdown-timeout=1 >"$eng/dockerd.log" 2>&1 &
}

# Debug logging (every API request as `Calling METHOD /path`) on or off, without a restart.
set_debug() {
    local pid
    pid=$(engine_pid) || die "engine is gone"
    if [[ $1 == on ]]; then echo '{"debug": true}' >"$eng/daemon.json"; else echo '{}' >"$eng/daemon.json"; fi
    local before
    before=$(grep -c 'Reloaded configuration' "$eng/dockerd.log" || true)
    kill -HUP "$pid"
    for _ in $(seq 50); do
        [[ $(grep -c 'Reloaded configuration' "$eng/dockerd.log" || true) -gt $before ]] && break
        sleep 0.1
    done
    sleep 0.2
}

stop_engine
trap cleanup EXIT
trap 'log "stopped by a signal (the hard bound is TOTAL_TIMEOUT=$TOTAL_TIMEOUT s); cleaning up"; exit 143' INT TERM
rm -rf "$res"
mkdir -p "$res"
log "starting the bench engine in namespace $ns ($addr)"
start_engine
export DOCKER_HOST
if [[ $ENDPOINT == unix ]]; then DOCKER_HOST="unix://$eng/docker.sock"; else DOCKER_HOST="tcp://$addr:2375"; fi
for _ in $(seq 150); do
    timeout 5 docker version >/dev/null 2>&1 && break
    sleep 0.2
done
timeout 5 docker version >/dev/null 2>&1 || die "the bench engine did not start; see $eng/dockerd.log"
log "building the images into it"
timeout 120 bash scripts/build-images.sh >/dev/null
log "single-node swarm on the same engine"
timeout 60 docker swarm init --advertise-addr "$addr" >/dev/null

dk() { timeout 60 docker "$@"; }
now_ns() { date +%s%N; }
# api METHOD PATH [JSON]: one Engine API request with curl (for the engine's floor).
api() {
    local target=(--unix-socket "$eng/docker.sock" "http://engine/v1.41$2")
    [[ $ENDPOINT == unix ]] || target=("http://$addr:2375/v1.41$2")
    timeout 60 curl -sS --fail-with-body -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "${target[@]}"
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# Waits until exactly $2 containers with label $1 are running (at most $3 seconds).
wait_running() {
    local label=$1 want=$2 deadline=$(($(date +%s) + $3)) count
    while :; do
        count=$(dk ps -q --filter "label=$label" --filter status=running | wc -l)
        [[ $count -eq $want ]] && return 0
        [[ $(date +%s) -lt $deadline ]] || {
            echo "timed out: $count of $want containers with $label running" >&2
            return 1
        }
        sleep 0.1
    done
}

# Waits until no container (any state) carries label $1 and network $2 (if given) is gone.
wait_gone() {
    local label=$1 network=${2:-} deadline=$(($(date +%s) + 120))
    while :; do
        if [[ -z $(dk ps -aq --filter "label=$label") ]] &&
            { [[ -z $network ]] || [[ -z $(dk network ls -q --filter "name=^${network}\$") ]]; }; then
            return 0
        fi
        [[ $(date +%s) -lt $deadline ]] || die "teardown: objects with $label still there"
        sleep 0.2
    done
}

ids_of() { dk ps -q --filter "label=$1" --filter status=running | sort | tr '\n' ' '; }

# --- the three tools --------------------------------------------------------------------------
gen_files() { # gen_files N: the gitfleet repository and the compose / stack file
    local n=$1 dir=$work/n$1 i
    rm -rf "$dir"
    mkdir -p "$dir/repo/apps/bench" "$dir/compose"
    cat >"$dir/repo/fleet.yaml" <<EOF
hosts:
  bench:
    endpoint: $DOCKER_HOST
settings:
  name: bench
EOF
    {
        echo "services:"
        for i in $(seq -w 1 "$n"); do printf '  s%s:\n    image: gitfleet/web:1\n' "$i"; done
    } >"$dir/repo/apps/bench/compose.yaml"
    # The same services for docker-compose v1 and docker stack deploy (both want a version).
    { echo 'version: "3.8"'; cat "$dir/repo/apps/bench/compose.yaml"; } >"$dir/compose/compose.yaml"
    timeout 60 "$gitfleet" validate "$dir/repo" >/dev/null || die "gitfleet validate of the generated repo failed"
}

# label: the label that selects a tool's containers.
label_of() {
    case $1 in
        gitfleet) echo "io.gitfleet.fleet=bench" ;;
        compose) echo "com.docker.compose.project=benchc" ;;
        swarm) echo "com.docker.stack.namespace=benchs" ;;
    esac
}

# run_tool TOOL N OUT: the tool's converge command, its output to OUT.
run_tool() {
    local tool=$1 n=$2 out=$3 dir=$work/n$2
    case $tool in
        gitfleet) timeout 300 "$gitfleet" apply "$dir/repo" --yes >"$out" 2>&1 ;;
        compose) timeout 300 docker-compose -p benchc -f "$dir/compose/compose.yaml" up -d >"$out" 2>&1 ;;
        swarm) timeout 300 docker stack deploy --resolve-image never -c "$dir/compose/compose.yaml" benchs >"$out" 2>&1 ;;
    esac
}

teardown() {
    local tool=$1 n=$2 dir=$work/n$2 ids
    case $tool in
        gitfleet)
            ids=$(dk ps -aq --filter "label=io.gitfleet.fleet=bench")
            # shellcheck disable=SC2086
            [[ -z $ids ]] || dk rm -f $ids >/dev/null
            ids=$(dk network ls -q --filter "label=io.gitfleet.fleet=bench")
            # shellcheck disable=SC2086
            [[ -z $ids ]] || dk network rm $ids >/dev/null
            wait_gone "io.gitfleet.fleet=bench"
            ;;
        compose)
            timeout 120 docker-compose -p benchc -f "$dir/compose/compose.yaml" down -t 5 >/dev/null 2>&1
            wait_gone "com.docker.compose.project=benchc" benchc_default
            ;;
        swarm)
            timeout 60 docker stack rm benchs >/dev/null 2>&1
            wait_gone "com.docker.stack.namespace=benchs" benchs_default
            ;;
    esac
}

# One cold converge and one no-op of TOOL at size N, run number R: appends to times.tsv.
# cold: from the command's start until all N containers run (for swarm, after the command
# returned, a 0.1 s poll; for the others one poll that finds them running). cold-cmd: the
# command alone. noop: the command alone (then, untimed, all N must still run, same ids).
measure() {
    local tool=$1 n=$2 r=$3 label t0 tc t1 before after
    label=$(label_of "$tool")
    local logs=$res/logs/$tool-n$n-r$r
    mkdir -p "$res/logs"
    t0=$(now_ns)
    run_tool "$tool" "$n" "$logs-cold.out" || die "$tool cold (N=$n run $r) failed; see $logs-cold.out"
    tc=$(now_ns)
    wait_running "$label" "$n" 240 || die "$tool cold (N=$n run $r): not all running"
    t1=$(now_ns)
    printf '%s\t%s\tcold\t%s\t%s\n' "$n" "$tool" "$r" "$(secs "$t0" "$t1")" >>"$res/times.tsv"
    printf '%s\t%s\tcold-cmd\t%s\t%s\n' "$n" "$tool" "$r" "$(secs "$t0" "$tc")" >>"$res/times.tsv"
    # Let the swarm settle (tasks report `running` to the manager) before the no-op.
    if [[ $tool == swarm ]]; then sleep 1; fi
    before=$(ids_of "$label")
    t0=$(now_ns)
    run_tool "$tool" "$n" "$logs-noop.out" || die "$tool no-op (N=$n run $r) failed; see $logs-noop.out"
    t1=$(now_ns)
    printf '%s\t%s\tnoop\t%s\t%s\n' "$n" "$tool" "$r" "$(secs "$t0" "$t1")" >>"$res/times.tsv"
    wait_running "$label" "$n" 60 || die "$tool no-op (N=$n run $r): not all running"
    after=$(ids_of "$label")
    [[ $before == "$after" ]] || die "$tool no-op (N=$n run $r) replaced containers"
    if [[ $tool == gitfleet ]]; then
        grep -q 'Nothing to do' "$logs-noop.out" || die "gitfleet no-op planned something; see $logs-noop.out"
    fi
    printf '   N=%-3s run %s %-8s cold %6ss (command %6ss)  no-op %6ss\n' "$n" "$r" "$tool" \
        "$(grep -P "^$n\t$tool\tcold\t$r\t" "$res/times.tsv" | cut -f5)" \
        "$(grep -P "^$n\t$tool\tcold-cmd\t$r\t" "$res/times.tsv" | cut -f5)" \
        "$(grep -P "^$n\t$tool\tnoop\t$r\t" "$res/times.tsv" | cut -f5)" >&2
    teardown "$tool" "$n"
}

median() { # median N TOOL PHASE
    awk -F'\t' -v n="$1" -v t="$2" -v p="$3" '$1 == n && $2 == t && $3 == p { print $5 }' \
        "$res/times.tsv" | sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
verdict() { awk -v v="$1" -v max="$2" 'BEGIN { print (v <= max) ? "met" : "MISSED" }'; }

# API calls the daemon logs while COMMAND runs (debug on around it only): count and list.
count_calls() { # count_calls NAME COMMAND...
    local name=$1 start
    shift
    set_debug on
    start=$(($(stat -c %s "$eng/dockerd.log") + 1))
    "$@" >"$res/calls-$name.out" 2>&1 || die "$name failed; see $res/calls-$name.out"
    sleep 0.3
    tail -c +"$start" "$eng/dockerd.log" | grep -o 'msg="Calling [A-Z]* [^"]*"' |
        sed -e 's/^msg="Calling //' -e 's/"$//' >"$res/calls-$name.txt" || true
    set_debug off
    wc -l <"$res/calls-$name.txt"
}
# A call list shortened for reading: API version prefix dropped, query strings cut, ids as <id>.
shape_calls() {
    perl -pe 's#/v1\.\d+/#/#; s#\?.*##; s#/[0-9a-f]{64}#/<id>#g;
        s#^(\S+ /(?:containers|networks|services|tasks)/)(?!(?:json|create|prune)\b)[^/\s]+#$1<name>#' "$1" |
        sort | uniq -c | sort -rn | awk '{ c = $1; $1 = ""; printf "%5d %s\n", c, substr($0, 2) }'
}

# --- the runs ---------------------------------------------------------------------------------
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $SIZES; do
    gen_files "$n"
    runs_var=RUNS_$n
    runs=${!runs_var:-$([[ $n -le 10 ]] && echo 5 || echo 3)}
    log "N=$n: $runs interleaved runs of gitfleet, compose, swarm (cold, then no-op)"
    for r in $(seq "$runs"); do
        for tool in gitfleet compose swarm; do measure "$tool" "$n" "$r"; done
    done
done

# --- API calls of a no-op run, per tool (at the largest N) --------------------------------------
nmax=$(tr ' ' '\n' <<<"$SIZES" | sort -n | tail -1)
log "API calls of a no-op run, N=$nmax"
for tool in gitfleet compose swarm; do
    run_tool "$tool" "$nmax" "$res/logs/calls-$tool-cold.out" || die "$tool cold for the call count failed"
    wait_running "$(label_of "$tool")" "$nmax" 240 || die "$tool cold for the call count: not all running"
    if [[ $tool == swarm ]]; then sleep 1; fi
    count_calls "noop-$tool" run_tool "$tool" "$nmax" "$res/logs/calls-$tool-noop.out" >"$res/calls-noop-$tool.count"
    teardown "$tool" "$nmax"
done

# --- gitfleet profile at the largest N -------------------------------------------------------
if [[ $PROFILE == 1 ]]; then
    log "profile: gitfleet at N=$nmax"
    dir=$work/n$nmax
    prof=$res/profile.txt
    : >"$prof"
    t0=$(now_ns)
    timeout 60 "$gitfleet" validate "$dir/repo" >/dev/null
    t1=$(now_ns)
    printf '%-46s %s s\n' "validate (load + checks, no Docker)" "$(secs "$t0" "$t1")" >>"$prof"
    t0=$(now_ns)
    timeout 60 "$gitfleet" plan "$dir/repo" >/dev/null || true
    t1=$(now_ns)
    printf '%-46s %s s\n' "plan on the empty engine" "$(secs "$t0" "$t1")" >>"$prof"
    # A cold apply with each output line stamped (ms since the start), and its API calls.
    set_debug on
    start=$(($(stat -c %s "$eng/dockerd.log") + 1))
    t0=$(now_ns)
    timeout 300 "$gitfleet" apply "$dir/repo" --yes 2>&1 | while IFS= read -r line; do
        printf '%6d ms  %s\n' $((($(date +%s%N) - t0) / 1000000)) "$line"
    done >"$res/profile-cold-apply.txt"
    t1=$(now_ns)
    sleep 0.3
    tail -c +"$start" "$eng/dockerd.log" | grep -o 'msg="Calling [A-Z]* [^"]*"' |
        sed -e 's/^msg="Calling //' -e 's/"$//' >"$res/calls-cold-gitfleet.txt" || true
    set_debug off
    wait_running "io.gitfleet.fleet=bench" "$nmax" 60
    printf '%-46s %s s, %s API calls\n' "cold apply (debug log on, output stamped)" "$(secs "$t0" "$t1")" "$(wc -l <"$res/calls-cold-gitfleet.txt")" >>"$prof"
    t0=$(now_ns)
    timeout 60 "$gitfleet" plan "$dir/repo" >/dev/null
    t1=$(now_ns)
    printf '%-46s %s s\n' "plan on the converged engine" "$(secs "$t0" "$t1")" >>"$prof"
    t0=$(now_ns)
    timeout 60 "$gitfleet" apply "$dir/repo" --yes >/dev/null
    t1=$(now_ns)
    printf '%-46s %s s\n' "no-op apply" "$(secs "$t0" "$t1")" >>"$prof"
    GITFLEET_LOG=debug timeout 60 "$gitfleet" apply "$dir/repo" --yes >/dev/null 2>"$res/profile-noop-debug.txt"
    teardown gitfleet "$nmax"
    # The same cold apply with a larger per-host concurrency bound (a flag, default 8).
    for c in 16 32; do
        t0=$(now_ns)
        timeout 300 "$gitfleet" apply "$dir/repo" --yes --concurrency "$c" >"$res/logs/profile-c$c.out" 2>&1
        wait_running "io.gitfleet.fleet=bench" "$nmax" 60
        t1=$(now_ns)
        printf '%-46s %s s\n' "cold apply --concurrency $c" "$(secs "$t0" "$t1")" >>"$prof"
        teardown gitfleet "$nmax"
    done
    # The engine's floor: create + start straight through the API (curl, two requests a
    # container, no client logic), 8 at a time like gitfleet's default bound, then all at once.
    cat >"$work/raw.sh" <<'EOF'
#!/usr/bin/env bash
# raw.sh NAME: create and start one container with two Engine API requests.
set -euo pipefail
body='{"Image":"gitfleet/web:1","Labels":{"io.gitfleet.fleet":"bench"},"HostConfig":{"NetworkMode":"benchraw"}}'
id=$(api POST "/containers/create?name=raw-$1" "$body" | sed -E 's/.*"Id":"([0-9a-f]+)".*/\1/')
api POST "/containers/$id/start" >/dev/null
EOF
    export -f api
    export ENDPOINT eng addr
    for p in 8 "$nmax"; do
        t0=$(now_ns)
        api POST /networks/create '{"Name":"benchraw","Labels":{"io.gitfleet.fleet":"bench"}}' >/dev/null
        seq -w 1 "$nmax" | xargs -P "$p" -n 1 bash "$work/raw.sh"
        wait_running "io.gitfleet.fleet=bench" "$nmax" 60
        t1=$(now_ns)
        printf '%-46s %s s\n' "raw API create+start x$nmax, $p at a time" "$(secs "$t0" "$t1")" >>"$prof"
        teardown gitfleet "$nmax"
    done
fi

# --- the report -------------------------------------------------------------------------------
{
    echo "Converge benchmark: one engine (dockerd $(dockerd --version | sed -E 's/.*version ([^,]+),.*/\1/'), $ENDPOINT endpoint), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), docker CLI $(docker version --format '{{.Client.Version}}' 2>/dev/null), gitfleet built from $built_from"
    echo
    echo "Median wall time in seconds (runs per N: $(for n in $SIZES; do v=RUNS_$n; printf '%s=%s ' "$n" "${!v:-$([[ $n -le 10 ]] && echo 5 || echo 3)}"; done)), until all N containers run:"
    echo
    echo "| N | phase | gitfleet | compose | swarm | gitfleet/compose | gitfleet/swarm | target | verdict |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for n in $SIZES; do
        for phase in cold noop; do
            g=$(median "$n" gitfleet "$phase")
            c=$(median "$n" compose "$phase")
            s=$(median "$n" swarm "$phase")
            rc=$(ratio "$g" "$c")
            rs=$(ratio "$g" "$s")
            if [[ $phase == cold ]]; then
                target="≤ 0.5 × compose, ≤ swarm"
                v1=$(verdict "$rc" 0.5)
                v2=$(verdict "$rs" 1)
                v=$([[ $v1 == met && $v2 == met ]] && echo met || echo "MISSED (compose: $v1, swarm: $v2)")
            else
                target="≤ 0.1 × compose"
                v=$(verdict "$rc" 0.1)
            fi
            echo "| $n | $phase | $g | $c | $s | $rc | $rs | $target | $v |"
        done
    done
    echo
    echo "The cold converge's command alone (median s; swarm's returns before its tasks run):"
    for n in $SIZES; do
        printf '  N=%-3s gitfleet %s  compose %s  swarm %s\n' "$n" "$(median "$n" gitfleet cold-cmd)" \
            "$(median "$n" compose cold-cmd)" "$(median "$n" swarm cold-cmd)"
    done
    echo
    echo "All runs (seconds):"
    for n in $SIZES; do
        for tool in gitfleet compose swarm; do
            for phase in cold cold-cmd noop; do
                printf '  N=%-3s %-8s %-5s %s\n' "$n" "$tool" "$phase" \
                    "$(awk -F'\t' -v n="$n" -v t="$tool" -v p="$phase" '$1 == n && $2 == t && $3 == p { printf "%s ", $5 }' "$res/times.tsv")"
            done
        done
    done
    echo
    echo "Docker API calls of one no-op run at N=$nmax (target for gitfleet: one list call per host):"
    for tool in gitfleet compose swarm; do
        echo "  $tool: $(cat "$res/calls-noop-$tool.count") calls"
    done
    echo
    echo "gitfleet's no-op calls, as the daemon logged them:"
    sed 's/^/  /' "$res/calls-noop-gitfleet.txt"
    echo
    echo "compose's and swarm's no-op calls, by kind:"
    for tool in compose swarm; do
        echo "  $tool:"
        shape_calls "$res/calls-noop-$tool.txt" | sed 's/^/  /'
    done
    if [[ $PROFILE == 1 ]]; then
        echo
        echo "gitfleet profile at N=$nmax:"
        sed 's/^/  /' "$res/profile.txt"
        echo "  cold apply API calls by kind:"
        shape_calls "$res/calls-cold-gitfleet.txt" | sed 's/^/  /'
        echo "  cold apply output, stamped: $res/profile-cold-apply.txt"
    fi
    echo
    echo "Total bench time: $(($(date +%s) - started)) s; load average at the start $load_start, at the end $(cut -d' ' -f1-3 /proc/loadavg). Raw data: $res"
} | tee "$res/summary.md"
