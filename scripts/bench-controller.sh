#!/usr/bin/env bash
# Controller benchmark: `gitfleet run` (release build) against two real Docker engines, with a
# local bare repository as the origin, served over git:// by `git daemon` on 127.0.0.1 (so
# only webhooks and resyncs wake the controller: a remote URL gets no file-system watch, and
# polling is off with --poll-interval 0s). It measures, each over several runs:
#
#   1. webhook -> running: one service (gitfleet/web:1 <-> gitfleet/web:2, one replica on each
#      host, update_config {parallelism: 2, monitor: 0s}); a commit is pushed to the origin,
#      then a signed GitHub push webhook is sent, and the clock runs until both replicas run
#      the new image (the engines' own `start` event times). gitfleet's share is the total
#      minus the engine's work on the host that finished last (its first container event to
#      its last `start`), with a breakdown from the controller's log.
#   2. no-op resync: 100 services (one replica each) converged, --resync-interval 1s; Docker
#      API calls per resync and host (daemon debug log, as bench-converge.sh counts them) and
#      the controller's CPU time per resync (utime + stime from /proc/<pid>/stat).
#   3. idle: the same fleet, default resync (60 s), a fresh controller: VmRSS and CPU time
#      over a window between two resyncs and over a 60 s window that holds one resync.
#
# The engines: two dockerd (Debian's docker.io) in network namespaces gfctl-a (10.250.5.2) and
# gfctl-b (10.250.6.2), each behind an `unreachable 10.250.k.0/24 metric 4000` fallback route,
# a veth pair and nsenter, with data and exec roots under /tmp/gitfleet-ctlbench. The
# controller reaches them over tcp://10.250.k.2:2375; the script's own docker calls use their
# unix sockets. All traffic goes to 127.0.0.1 or to those two namespaces. On exit (also on the
# timeout) the controller, git daemon and engines are stopped by pid, the namespaces, veths
# and routes removed by name. Results stay in /tmp/gitfleet-ctlbench/results (summary.md,
# times.tsv, controller logs, API call lists).
#
#   bash scripts/bench-controller.sh        # as root, on Debian; about 6 minutes plus the build
#
# Environment: RUNS=7 (webhook runs, after one warm-up), SERVICES=100 (no-op / idle fleet),
# RESYNC_WINDOW=30 (seconds of 1 s resyncs counted), IDLE=1 (0 skips part 3), BUILD=1 (0 uses
# an existing build), TOTAL_TIMEOUT=1200, KEEP_ENGINES=1 (leave the engines running).
set -euo pipefail

TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-1200}
if [[ -z ${GF_CTLBENCH_BOUNDED:-} ]]; then
    export GF_CTLBENCH_BOUNDED=1
    exec timeout -k 60 "$TOTAL_TIMEOUT" bash "$0" "$@"
fi

cd "$(dirname "$0")/.."
root=$(pwd)
work=/tmp/gitfleet-ctlbench
res=$work/results
RUNS=${RUNS:-7}
SERVICES=${SERVICES:-100}
RESYNC_WINDOW=${RESYNC_WINDOW:-30}
IDLE=${IDLE:-1}
SECRET=bench-webhook-secret
FLEET=ctlbench
hosts=(a b)
declare -A K=([a]=5 [b]=6) off
export DOCKER_API_VERSION=1.41
export DOCKER_BUILDKIT=0
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

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
if ! command -v curl >/dev/null; then
    log "installing curl"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq
    timeout 300 apt-get install -y -qq --no-install-recommends curl >/dev/null
fi
target=${CARGO_TARGET_DIR:-$root/target}
if [[ ${BUILD:-1} == 1 ]]; then
    log "cargo build --release"
    timeout 900 cargo build --release --quiet
fi
[[ -x $target/release/gitfleet ]] || die "no $target/release/gitfleet"
mkdir -p "$work"
cp "$target/release/gitfleet" "$work/gitfleet"
gitfleet=$work/gitfleet
built_from="$(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
[[ ${BUILD:-1} == 1 ]] || built_from="an existing build (BUILD=0; tree now at $built_from)"

# --- processes this script starts, stopped by pid ---------------------------------------------
ctl_pid=""
gitd_pid=""

engine_pid() { # engine_pid HOST: the pid of our dockerd for HOST, if it runs
    local dir=$work/$1 pid
    [[ -f $dir/docker.pid ]] || return 1
    pid=$(cat "$dir/docker.pid")
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--data-root=$dir/data" || return 1
    echo "$pid"
}

stop_controller() {
    if [[ -n $ctl_pid ]] && kill -0 "$ctl_pid" 2>/dev/null; then
        kill "$ctl_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$ctl_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$ctl_pid" 2>/dev/null || true
        wait "$ctl_pid" 2>/dev/null || true
    fi
    ctl_pid=""
}

stop_all() {
    stop_controller
    if [[ -n $gitd_pid ]]; then
        kill "$gitd_pid" 2>/dev/null || true
        wait "$gitd_pid" 2>/dev/null || true
        gitd_pid=""
    fi
    local h pid
    for h in "${hosts[@]}"; do
        if pid=$(engine_pid "$h"); then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        ip netns del "gfctl-$h" 2>/dev/null || true
        ip link del "gfctl-$h-o" 2>/dev/null || true
        ip route del unreachable "10.250.${K[$h]}.0/24" metric 4000 2>/dev/null || true
        umount "$work/$h/exec" "$work/$h/data" 2>/dev/null || true
        [[ -d $work/$h ]] && rm -rf "${work:?}/$h" 2>/dev/null || true
    done
}

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    if [[ ${KEEP_ENGINES:-0} == 1 ]]; then
        stop_controller
        [[ -z $gitd_pid ]] || kill "$gitd_pid" 2>/dev/null || true
        log "engines kept: unix://$work/a/docker.sock, unix://$work/b/docker.sock"
    else
        stop_all
    fi
    exit "$code"
}

start_engine() { # start_engine HOST
    local h=$1 k=${K[$1]} dir=$work/$1 ns=gfctl-$1
    mkdir -p "$dir"
    echo '{}' >"$dir/daemon.json"
    # A fallback route first, so traffic for the namespace's subnet never leaves the machine.
    ip route add unreachable "10.250.$k.0/24" metric 4000
    ip netns add "$ns"
    ip link add "$ns-o" type veth peer name "$ns-i"
    ip link set "$ns-i" netns "$ns"
    ip addr add "10.250.$k.1/24" dev "$ns-o"
    ip link set "$ns-o" up
    ip -n "$ns" addr add "10.250.$k.2/24" dev "$ns-i"
    ip -n "$ns" link set "$ns-i" up
    ip -n "$ns" link set lo up
    # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then fails.
    nsenter --net="/var/run/netns/$ns" dockerd --config-file="$dir/daemon.json" \
        --host="unix://$dir/docker.sock" --host="tcp://10.250.$k.2:2375" --tls=false \
        --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/docker.pid" \
        --shutdown-timeout=1 >"$dir/dockerd.log" 2>&1 &
}

dk() { local h=$1; shift; timeout 60 docker -H "unix://$work/$h/docker.sock" "$@"; }

# Debug logging (every API request as `Calling METHOD /path`) on or off, without a restart.
set_debug() { # set_debug HOST on|off
    local h=$1 dir=$work/$1 pid before
    pid=$(engine_pid "$h") || die "engine $h is gone"
    if [[ $2 == on ]]; then echo '{"debug": true}' >"$dir/daemon.json"; else echo '{}' >"$dir/daemon.json"; fi
    before=$(grep -c 'Reloaded configuration' "$dir/dockerd.log" || true)
    kill -HUP "$pid"
    for _ in $(seq 50); do
        [[ $(grep -c 'Reloaded configuration' "$dir/dockerd.log" || true) -gt $before ]] && break
        sleep 0.1
    done
}

now_ns() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
# The log's RFC 3339 timestamp of a line, in ns since the epoch.
line_ns() { date -d "$(sed 's/\x1b\[[0-9;]*m//g' <<<"$1" | awk '{ print $1 }')" +%s%N; }
# first_line_ns LOG FROMLINE REGEX: ns of the first line after FROMLINE matching REGEX ("" if none)
first_line_ns() {
    local line
    line=$(tail -n +"$(($2 + 1))" "$1" | sed 's/\x1b\[[0-9;]*m//g' | grep -m1 -E "$3" || true)
    [[ -z $line ]] || line_ns "$line"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
tick=$(getconf CLK_TCK)
sleep_until() { local d=$(($1 - $(date +%s))); [[ $d -le 0 ]] || sleep "$d"; }

free_port() {
    local p
    for p in $(seq 39400 39499); do
        [[ -z $(ss -Hltn "sport = :$p") ]] && { echo "$p"; return; }
    done
    die "no free port in 39400-39499"
}

# --- the origin and the working clone ---------------------------------------------------------
wgit() { git -C "$work/clone" -c user.name=bench -c user.email=bench@localhost "$@"; }

fleet_yaml() {
    cat <<EOF
settings: {name: $FLEET, observe_timeout: 5s}
hosts:
  a:
    endpoint: tcp://10.250.5.2:2375
  b:
    endpoint: tcp://10.250.6.2:2375
EOF
}

shop_yaml() { # shop_yaml TAG
    cat <<EOF
services:
  web:
    image: gitfleet/web:$1
    deploy:
      replicas: 2
      placement: {max_replicas_per_node: 1}
      update_config: {parallelism: 2, monitor: 0s}
EOF
}

many_yaml() { # many_yaml N
    local i
    echo "services:"
    for i in $(seq -w 1 "$1"); do printf '  s%s:\n    image: gitfleet/web:1\n' "$i"; done
}

commit_push() { # commit_push MESSAGE: commits the clone's tree and pushes it to the origin
    wgit add -A
    wgit commit -q -m "$1"
    wgit push -q origin HEAD:refs/heads/main
    wgit rev-parse HEAD
}

# --- the controller ---------------------------------------------------------------------------
ctl_log=""
ctl_addr=""
ctl_start() { # ctl_start NAME LOGFILTER [extra args]: starts `gitfleet run`, sets ctl_pid/_addr/_log
    local name=$1 filter=$2
    shift 2
    ctl_log=$res/controller-$name.log
    rm -rf "$work/cache-$name"
    GITFLEET_LOG=$filter "$gitfleet" run --repo "git://127.0.0.1:$gport/fleet.git" \
        --listen 127.0.0.1:0 --cache-dir "$work/cache-$name" --poll-interval 0s \
        --webhook-github-secret "$SECRET" "$@" </dev/null >/dev/null 2>"$ctl_log" &
    ctl_pid=$!
    for _ in $(seq 200); do
        ctl_addr=$(sed -n 's/^gitfleet: listening on //p' "$ctl_log" | head -1)
        [[ -n $ctl_addr ]] && break
        kill -0 "$ctl_pid" 2>/dev/null || die "gitfleet run exited; see $ctl_log"
        sleep 0.1
    done
    [[ -n $ctl_addr ]] || die "gitfleet run did not listen; see $ctl_log"
    [[ $(cat "/proc/$ctl_pid/comm") == gitfleet ]] || die "pid $ctl_pid is not gitfleet"
}

# wait_log FROMLINE REGEX TIMEOUT: waits until a line after FROMLINE of the log matches.
wait_log() {
    local deadline=$(($(date +%s) + $3))
    until tail -n +"$(($1 + 1))" "$ctl_log" | sed 's/\x1b\[[0-9;]*m//g' | grep -q -E "$2"; do
        [[ $(date +%s) -lt $deadline ]] || die "not within $3 s: /$2/ in $ctl_log"
        kill -0 "$ctl_pid" 2>/dev/null || die "gitfleet run exited; see $ctl_log"
        sleep 0.05
    done
}
log_lines() { wc -l <"$ctl_log"; }
count_log() { tail -n +"$(($1 + 1))" "$ctl_log" | head -n "$(($2 - $1))" | sed 's/\x1b\[[0-9;]*m//g' | grep -c -E "$3" || true; }

send_hook() { # send_hook SHA: the HTTP status of a signed GitHub push delivery
    local body sig
    body="{\"ref\":\"refs/heads/main\",\"after\":\"$1\",\"repository\":{\"full_name\":\"acme/fleet\"}}"
    sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
        -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
        -H "X-GitHub-Delivery: bench-$1" -H "X-Hub-Signature-256: sha256=$sig" \
        --data-binary "$body" "http://$ctl_addr/hooks/github"
}

# running_image HOST NAME: the image of container NAME if it runs, else nothing.
running_image() {
    dk "$1" ps --filter "name=^$2\$" --filter status=running --format '{{.Image}}'
}

# --- setup ------------------------------------------------------------------------------------
stop_all
trap cleanup EXIT
trap 'log "stopped by a signal (TOTAL_TIMEOUT=$TOTAL_TIMEOUT s); cleaning up"; exit 143' INT TERM
rm -rf "$res" "$work/origin" "$work/clone" "$work"/cache-* "$work/fetchcmp.git"
mkdir -p "$res"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)

log "starting engines a (10.250.5.2, netns gfctl-a) and b (10.250.6.2, netns gfctl-b)"
for h in "${hosts[@]}"; do start_engine "$h"; done
for h in "${hosts[@]}"; do
    for _ in $(seq 150); do dk "$h" version >/dev/null 2>&1 && break; sleep 0.2; done
    dk "$h" version >/dev/null 2>&1 || die "engine $h did not start; see $work/$h/dockerd.log"
    timeout 120 bash scripts/build-images.sh "unix://$work/$h/docker.sock" >/dev/null
done

log "origin: a bare repository served by git daemon on 127.0.0.1"
mkdir -p "$work/origin"
git init -q --bare -b main "$work/origin/fleet.git"
gport=$(free_port)
git daemon --export-all --base-path="$work/origin" --reuseaddr --listen=127.0.0.1 \
    --port="$gport" --enable=receive-pack "$work/origin" >"$res/git-daemon.log" 2>&1 &
gitd_pid=$!
git init -q -b main "$work/clone"
wgit remote add origin "$work/origin/fleet.git"
mkdir -p "$work/clone/apps/shop"
fleet_yaml >"$work/clone/fleet.yaml"
shop_yaml 1 >"$work/clone/apps/shop/compose.yaml"
first=$(commit_push "shop at web:1")
timeout 30 "$gitfleet" validate "$work/clone" >/dev/null || die "the generated repository does not validate"
for _ in $(seq 50); do timeout 5 git ls-remote "git://127.0.0.1:$gport/fleet.git" >/dev/null 2>&1 && break; sleep 0.1; done
# A second mirror of the origin, fetched with git itself after each run: the same new commit
# over the same git:// daemon, to set gitfleet's fetch beside `git fetch`.
timeout 30 git clone -q --bare "git://127.0.0.1:$gport/fleet.git" "$work/fetchcmp.git"

printf 'part\tmetric\trun\tvalue\n' >"$res/times.tsv"
rec() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$res/times.tsv"; }

# --- 1. webhook -> running ---------------------------------------------------------------------
log "1. webhook -> running: $RUNS runs after one warm-up"
ctl_start webhook "gitfleet=debug" --resync-interval 60s
wait_log 0 "revision ${first:0:12} deployed" 120
sleep 2
tag=1
# Run 0 is a warm-up and run RUNS+1 a profile (daemon debug log on: the API calls, timed);
# neither counts.
prof=$((RUNS + 1))
for r in $(seq 0 "$prof"); do
    counted=$([[ $r -ge 1 && $r -le $RUNS ]] && echo 1 || echo 0)
    tag=$((3 - tag))
    shop_yaml "$tag" >"$work/clone/apps/shop/compose.yaml"
    sha=$(commit_push "shop at web:$tag (run $r)")
    sleep 0.5
    if [[ $r == "$prof" ]]; then
        for h in "${hosts[@]}"; do set_debug "$h" on; off[$h]=$(($(stat -c %s "$work/$h/dockerd.log") + 1)); done
    fi
    l0=$(log_lines)
    t0=$(now_ns)
    code=$(send_hook "$sha")
    t_sent=$(now_ns)
    [[ $code == 200 ]] || die "webhook answered $code"
    wait_log "$l0" "revision ${sha:0:12} deployed" 60
    t_seen=$(now_ns)
    # The HTTP client's own cost, for comparison: the same curl against /healthz.
    t_h=$(now_ns)
    curl -sS -o /dev/null --max-time 10 "http://$ctl_addr/healthz" || true
    rec webhook curl-healthz "$r" "$(ms "$t_h" "$(now_ns)")"
    for h in "${hosts[@]}"; do
        img=$(running_image "$h" shop-web-1)$(running_image "$h" shop-web-2)
        [[ $img == "gitfleet/web:$tag" ]] || die "run $r: host $h runs '$img', not gitfleet/web:$tag"
    done
    # The engines' own event times: first container event and last start, per host.
    since="$((t0 / 1000000000)).$(printf '%09d' $((t0 % 1000000000)))"
    until_s="$(($(now_ns) / 1000000000 + 1))"
    last=0 first_ev=0 eng=0
    for h in "${hosts[@]}"; do
        dk "$h" events --since "$since" --until "$until_s" --filter type=container \
            --filter "label=io.gitfleet.fleet=$FLEET" \
            --format '{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}' >"$res/events-r$r-$h.txt"
        # (bash arithmetic and sort, not awk: nanosecond times do not fit awk's doubles)
        f=$(awk '{ print $1 }' "$res/events-r$r-$h.txt" | sort -n | head -1)
        s=$(awk '$2 == "start" { print $1 }' "$res/events-r$r-$h.txt" | sort -n | tail -1)
        [[ -n $s ]] || die "run $r: no start event on host $h; see $res/events-r$r-$h.txt"
        if [[ $s -gt $last ]]; then last=$s first_ev=$f eng=$((s - f)); fi
        [[ $counted == 0 ]] || rec webhook "engine-$h" "$r" "$(ms "$f" "$s")"
    done
    # The controller's log: when it accepted the hook, fetched, began applying, said deployed.
    t_acc=$(first_line_ns "$ctl_log" "$l0" 'webhook accepted')
    t_fetch=$(first_line_ns "$ctl_log" "$l0" 'mirror: fetched')
    t_apply=$(first_line_ns "$ctl_log" "$l0" 'reconcile: applying')
    t_dep=$(first_line_ns "$ctl_log" "$l0" "revision ${sha:0:12} deployed")
    t_done=$(first_line_ns "$ctl_log" "$l0" 'sync done')
    printf '   run %s: total %s ms (engine %s ms, gitfleet %s ms); hook->fetched %s, fetched->applying %s, applying->1st docker event %s, last start->deployed %s\n' \
        "$r" "$(ms "$t0" "$last")" "$(ms 0 "$eng")" "$(ms "$t0" "$first_ev")" "$(ms "$t0" "$t_fetch")" \
        "$(ms "$t_fetch" "$t_apply")" "$(ms "$t_apply" "$first_ev")" "$(ms "$last" "$t_dep")" >&2
    if [[ $r == "$prof" ]]; then
        rec profile to-accepted "$r" "$(ms "$t0" "$t_acc")"
        rec profile last-start-deployed "$r" "$(ms "$last" "$t_dep")"
        sleep 1
        for h in "${hosts[@]}"; do
            # Each call with its time in ms after the hook was sent.
            tail -c +"${off[$h]}" "$work/$h/dockerd.log" | grep 'msg="Calling ' |
                sed -E 's/^time="([^"]+)".*msg="Calling ([^"]*)".*/\1 \2/' |
                while read -r t call; do
                    t=$(date -d "$t" +%s%N)
                    # Up to 'deployed' only: after it come the script's own docker calls.
                    [[ $t -le $t_dep ]] || break
                    printf '%8s ms  %s\n' "$(ms "$t0" "$t")" "$call"
                done >"$res/calls-webhook-$h.txt"
            set_debug "$h" off
        done
    fi
    if [[ $counted == 1 ]]; then
        rec webhook total "$r" "$(ms "$t0" "$last")"
        rec webhook engine "$r" "$(ms 0 "$eng")"
        rec webhook share "$r" "$(ms "$t0" "$first_ev")"
        rec webhook curl "$r" "$(ms "$t0" "$t_sent")"
        from_accepted=$(ms "$t_acc" "$first_ev")
        start_to_deployed=$(ms "$last" "$t_dep")
        rec webhook share-from-accepted "$r" "$from_accepted"
        # Issue 14's share, an upper bound: 'webhook accepted' -> first container event, plus
        # last start -> 'deployed' (the engine's own work in between is not gitfleet's).
        rec webhook own-share "$r" "$(awk -v a="$from_accepted" -v b="$start_to_deployed" 'BEGIN { printf "%.1f", a + b }')"
        rec webhook to-accepted "$r" "$(ms "$t0" "$t_acc")"
        rec webhook accepted-fetched "$r" "$(ms "$t_acc" "$t_fetch")"
        rec webhook fetched-applying "$r" "$(ms "$t_fetch" "$t_apply")"
        rec webhook applying-first-event "$r" "$(ms "$t_apply" "$first_ev")"
        rec webhook last-start-deployed "$r" "$start_to_deployed"
        rec webhook to-deployed "$r" "$(ms "$t0" "$t_dep")"
        rec webhook to-sync-done "$r" "$(ms "$t0" "$t_done")"
        rec webhook to-seen "$r" "$(ms "$t0" "$t_seen")"
    fi
    # `git fetch` of the same commit from the same origin (gitfleet fetched it already).
    t_g=$(now_ns)
    timeout 30 git -C "$work/fetchcmp.git" fetch -q origin +refs/heads/main:refs/heads/main
    [[ $counted == 0 ]] || rec webhook git-fetch "$r" "$(ms "$t_g" "$(now_ns)")"
    # Let the follow-up syncs (the old containers' die events, the status push) finish.
    sleep 3
done
rec webhook rss-kb 0 "$(rss_kb "$ctl_pid")"
grep -c 'cannot write status' <(sed 's/\x1b\[[0-9;]*m//g' "$ctl_log") >"$res/status-write-failures.txt" || true
stop_controller

# --- 2. no-op resync at SERVICES services --------------------------------------------------------
log "2. no-op resync: $SERVICES services, --resync-interval 1s"
rm -rf "$work/clone/apps/shop"
mkdir -p "$work/clone/apps/many"
many_yaml "$SERVICES" >"$work/clone/apps/many/compose.yaml"
many=$(commit_push "$SERVICES services")
ctl_start resync info --resync-interval 1s
t0=$(now_ns)
wait_log 0 "revision ${many:0:12} deployed" 300
rec resync cold-deploy 0 "$(ms "$t0" "$(now_ns)")"
for h in "${hosts[@]}"; do
    rec resync "containers-$h" 0 "$(dk "$h" ps -q --filter "label=io.gitfleet.fleet=$FLEET" --filter status=running | wc -l)"
done
# Settle: three no-op syncs in a row.
l=$(log_lines)
for _ in 1 2 3; do
    wait_log "$l" 'sync done.*outcome=in sync' 30
    l=$(log_lines)
done
for h in "${hosts[@]}"; do set_debug "$h" on; done
sleep 0.3
for h in "${hosts[@]}"; do off[$h]=$(($(stat -c %s "$work/$h/dockerd.log") + 1)); done
l0=$(log_lines)
c0=$(cpu_ticks "$ctl_pid")
t0=$(now_ns)
sleep "$RESYNC_WINDOW"
c1=$(cpu_ticks "$ctl_pid")
t1=$(now_ns)
l1=$(log_lines)
for h in "${hosts[@]}"; do
    tail -c +"${off[$h]}" "$work/$h/dockerd.log" | grep -o 'msg="Calling [A-Z]* [^"]*"' |
        sed -e 's/^msg="Calling //' -e 's/"$//' >"$res/calls-resync-$h.txt" || true
done
for h in "${hosts[@]}"; do set_debug "$h" off; done
syncs=$(count_log "$l0" "$l1" 'sync done')
nosync=$(count_log "$l0" "$l1" 'sync done.*outcome=in sync')
[[ $syncs -gt 0 ]] || die "no sync in the resync window"
rec resync syncs 0 "$syncs"
rec resync in-sync 0 "$nosync"
rec resync window-s 0 "$(ms "$t0" "$t1" | awk '{ printf "%.1f", $1 / 1000 }')"
rec resync cpu-ms-per-sync 0 "$(awk -v c=$((c1 - c0)) -v t="$tick" -v n="$syncs" 'BEGIN { printf "%.2f", c * 1000 / t / n }')"
for h in "${hosts[@]}"; do
    rec resync "calls-per-sync-$h" 0 "$(awk -v c="$(wc -l <"$res/calls-resync-$h.txt")" -v n="$syncs" 'BEGIN { printf "%.2f", c / n }')"
done
tail -n +"$((l0 + 1))" "$ctl_log" | head -n "$((l1 - l0))" | sed 's/\x1b\[[0-9;]*m//g' |
    grep 'sync done' | sed -E 's/.*elapsed_ms=([0-9]+).*/\1/' >"$res/resync-elapsed-ms.txt"
rec resync rss-kb 0 "$(rss_kb "$ctl_pid")"
stop_controller

# --- 3. idle ------------------------------------------------------------------------------------
if [[ $IDLE == 1 ]]; then
    log "3. idle: $SERVICES services converged, default resync (60 s); about 2 minutes"
    ctl_start idle info
    t_start=$(date +%s)
    wait_log 0 'sync done.*outcome=in sync' 60
    sleep_until $((t_start + 5))
    la=$(log_lines)
    ca=$(cpu_ticks "$ctl_pid")
    rec idle rss-kb-after-startup 0 "$(rss_kb "$ctl_pid")"
    sleep_until $((t_start + 55))
    lb=$(log_lines)
    cb=$(cpu_ticks "$ctl_pid")
    rec idle rss-kb-between 0 "$(rss_kb "$ctl_pid")"
    sleep_until $((t_start + 115))
    lc=$(log_lines)
    cc=$(cpu_ticks "$ctl_pid")
    rec idle rss-kb-after-resync 0 "$(rss_kb "$ctl_pid")"
    rec idle hwm-kb 0 "$(hwm_kb "$ctl_pid")"
    rec idle cpu-ms-50s-between-resyncs 0 "$(awk -v c=$((cb - ca)) -v t="$tick" 'BEGIN { printf "%.0f", c * 1000 / t }')"
    rec idle syncs-between 0 "$(count_log "$la" "$lb" 'sync done')"
    rec idle cpu-ms-60s-with-one-resync 0 "$(awk -v c=$((cc - cb)) -v t="$tick" 'BEGIN { printf "%.0f", c * 1000 / t }')"
    rec idle syncs-60s 0 "$(count_log "$lb" "$lc" 'sync done')"
    rec idle threads 0 "$(awk '/^Threads:/ { print $2 }' "/proc/$ctl_pid/status")"
    stop_controller
fi

# --- the report -------------------------------------------------------------------------------
get() { awk -F'\t' -v p="$1" -v m="$2" '$1 == p && $2 == m { print $4; exit }' "$res/times.tsv"; }
med() {
    awk -F'\t' -v p="$1" -v m="$2" '$1 == p && $2 == m && $3 != 0 { print $4 }' "$res/times.tsv" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
all() { awk -F'\t' -v p="$1" -v m="$2" '$1 == p && $2 == m && $3 != 0 { printf "%s ", $4 }' "$res/times.tsv"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
verdict() { awk -v v="$1" -v max="$2" 'BEGIN { print (v + 0 <= max + 0) ? "met" : "MISSED" }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
shape_calls() {
    perl -pe 's#/v1\.\d+/#/#; s#\?.*##; s#/[0-9a-f]{64}#/<id>#g' "$1" |
        sort | uniq -c | sort -rn | awk '{ c = $1; $1 = ""; printf "%5d %s\n", c, substr($0, 2) }'
}

{
    echo "Controller benchmark: gitfleet run (release, built from $built_from), 2 engines (dockerd $(dockerd --version | sed -E 's/.*version ([^,]+),.*/\1/'), tcp), origin over git:// (git daemon, 127.0.0.1), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    share=$(med webhook share)
    total=$(med webhook total)
    cpu=$(get resync cpu-ms-per-sync)
    echo "| measure | median | target | ratio | verdict |"
    echo "|---|---|---|---|---|"
    echo "| webhook -> both replicas run the new image (total, $RUNS runs) | $total ms | - | - | - |"
    echo "| ... the engines' create/stop/start work (last host: 1st event -> last start) | $(med webhook engine) ms | - | - | - |"
    echo "| ... gitfleet's share (total - engine) | $share ms | < 50 ms | $(ratio "$share" 50) | $(verdict "$share" 50) |"
    own=$(med webhook own-share)
    echo "| ... gitfleet's own share, upper bound: 'webhook accepted' -> 1st container event (the engine's stop -> kill included), + last start -> 'deployed' | $own ms | <= 25 ms | $(ratio "$own" 25) | $(verdict "$own" 25) |"
    fetch=$(med webhook accepted-fetched)
    gfetch=$(med webhook git-fetch)
    echo "| ... the fetch: 'webhook accepted' -> fetched, beside \`git fetch\` of the same commit ($gfetch ms) | $fetch ms | <= 1.0x git | $(ratio "$fetch" "$gfetch") | $(verdict "$fetch" "$gfetch") |"
    echo "| no-op resync, API calls per resync, host a / b ($SERVICES services) | $(get resync calls-per-sync-a) / $(get resync calls-per-sync-b) | 1 / 1 | $(ratio "$(get resync calls-per-sync-a)" 1) | $(verdict "$(get resync calls-per-sync-a)" 1) |"
    echo "| no-op resync, controller CPU per resync ($SERVICES services) | $cpu ms | < 20 ms | $(ratio "$cpu" 20) | $(verdict "$cpu" 20) |"
    if [[ $IDLE == 1 ]]; then
        rss=$(mb "$(get idle rss-kb-after-resync)")
        echo "| idle: VmRSS ($SERVICES services, after a resync) | $rss MB | < 30 MB | $(ratio "$rss" 30) | $(verdict "$rss" 30) |"
        echo "| idle: CPU over 50 s between resyncs | $(get idle cpu-ms-50s-between-resyncs) ms ($(get idle syncs-between) syncs) | 0 (< 1 tick) | - | $(verdict "$(get idle cpu-ms-50s-between-resyncs)" $((1000 / tick))) |"
        echo "| idle: CPU over 60 s holding one resync | $(get idle cpu-ms-60s-with-one-resync) ms ($(get idle syncs-60s) syncs) | - | - | - |"
    fi
    echo
    echo "Webhook -> running, per run (ms): total $(all webhook total)"
    echo "  engine (last host)     $(all webhook engine)"
    echo "  engine host a / b      $(all webhook engine-a) / $(all webhook engine-b)"
    echo "  gitfleet share         $(all webhook share)"
    echo "Breakdown, medians (ms) from the controller's log (debug level) and the engines' events:"
    echo "  hook sent -> curl returned           $(med webhook curl)   (a bare curl of /healthz: $(med webhook curl-healthz))"
    echo "  hook sent -> 'webhook accepted'      $(med webhook to-accepted)"
    echo "  accepted -> fetched (git://)         $(med webhook accepted-fetched)   (git fetch of the same commit: $(med webhook git-fetch))"
    echo "  fetched -> applying (load, observe, plan) $(med webhook fetched-applying)"
    echo "  applying -> first container event    $(med webhook applying-first-event)"
    echo "  'webhook accepted' -> first container event (gitfleet's share without the HTTP client) $(med webhook share-from-accepted)"
    echo "  last start -> 'deployed'             $(med webhook last-start-deployed)"
    echo "  hook sent -> 'deployed'              $(med webhook to-deployed)"
    echo "  hook sent -> 'sync done'             $(med webhook to-sync-done)"
    for h in "${hosts[@]}"; do
        first_call=$(awk '$3 != "GET" && $3 != "HEAD" { print $1; exit }' "$res/calls-webhook-$h.txt")
        echo "  profile run, host $h: hook sent -> first mutating call received $first_call ms, -> its start call received $(awk '$4 ~ /\/start$/ { print $1; exit }' "$res/calls-webhook-$h.txt") ms"
        # Issue 14's definition, exactly: 'webhook accepted' -> the first mutating call the
        # engine receives, plus last start -> 'deployed' (engine debug log: profile run only).
        own=$(awk -v c="$first_call" -v a="$(get profile to-accepted)" -v d="$(get profile last-start-deployed)" \
            'BEGIN { printf "%.1f ms, + last start -> deployed %.1f ms = %.1f ms", c - a, d, c - a + d }')
        echo "  profile run, host $h: 'webhook accepted' -> first mutating call $own: gitfleet's own share (target <= 25 ms)"
    done
    for h in "${hosts[@]}"; do
        echo "  API calls of the profile run (debug log on, not counted) on host $h, ms after the hook was sent:"
        sed -E 's#/v1\.[0-9]+/#/#; s#/[0-9a-f]{64}#/<id>#g; s#filters=[^ &]*#filters=<fleet label>#' "$res/calls-webhook-$h.txt" | sed 's/^/    /'
    done
    echo "  status write failures in the log: $(cat "$res/status-write-failures.txt"); controller VmRSS after part 1: $(mb "$(get webhook rss-kb)") MB"
    echo
    echo "No-op resync: $(get resync syncs) syncs in $(get resync window-s) s ($(get resync in-sync) in sync); cold deploy of $SERVICES services took $(get resync cold-deploy) ms; running: a $(get resync containers-a), b $(get resync containers-b)"
    echo "  sync wall time (elapsed_ms) median: $(sort -g "$res/resync-elapsed-ms.txt" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }') ms"
    for h in "${hosts[@]}"; do
        echo "  host $h: $(wc -l <"$res/calls-resync-$h.txt") calls, by kind:"
        shape_calls "$res/calls-resync-$h.txt" | sed 's/^/    /'
    done
    echo "  controller VmRSS after the resync window: $(mb "$(get resync rss-kb)") MB"
    if [[ $IDLE == 1 ]]; then
        echo
        echo "Idle: VmRSS after startup $(mb "$(get idle rss-kb-after-startup)") MB, between resyncs $(mb "$(get idle rss-kb-between)") MB, after one resync $(mb "$(get idle rss-kb-after-resync)") MB, peak (VmHWM) $(mb "$(get idle hwm-kb)") MB, $(get idle threads) threads"
    fi
    echo
    echo "CPU ticks are 1/$tick s. Total bench time: $(($(date +%s) - started)) s; load average at the start $load_start, at the end $(cut -d' ' -f1-3 /proc/loadavg). Raw data: $res"
} | tee "$res/summary.md"
