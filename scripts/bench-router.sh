#!/usr/bin/env bash
# Router benchmark: gitfleet's router beside nginx and HAProxy, all on loopback, the same
# backend, the same load tool. It measures:
#
#   1. throughput: Debian's wrk (one thread, C connections, D seconds) direct to the backend,
#      through gitfleet's router (`gitfleet router-static`, the router alone with a static
#      route table; the same code `gitfleet run --router-listen` serves), through nginx
#      (upstream keepalive 64, proxy_http_version 1.1, Connection "") and through HAProxy
#      (http-reuse always): ROUNDS interleaved rounds after a warm-up round. req/s per
#      round, the median, and the proxy's CPU per request (utime + stime from
#      /proc/<pid>/stat over the round, divided by the requests), and its user-space share.
#   2. latency below saturation: wrk --latency with LAT_CONN connections (closed loop, far
#      below saturation), p50 and p99 per proxy, best of the rounds' medians.
#   3. upstream reuse: the backend's stub_status (accepted connections vs requests) over a
#      proxied round: reuse = 1 - accepts / requests.
#   4. route change: the route file is rewritten to point at a second backend; the clock runs
#      until a request through the router answers from it (polled with curl).
#   5. memory: every proxy's VmRSS after the throughput rounds, and the router's before and
#      with 1,000 idle keep-alive client connections (each made one request, then stays open).
#
# The machine's load average is recorded at the start, before every round and at the end
# (load.tsv): on a shared machine the figures are only comparable within one run.
#
# Every server runs one worker (nginx worker_processes 1, HAProxy nbthread 1, gitfleet
# --threads 1), access logs off everywhere, the backend nginx serves a 13-byte static body
# over HTTP/1.1. All traffic is on 127.0.0.1 (ports 18081-18089). Everything started is
# stopped by pid on exit; results go to $OUT (default /tmp/gitfleet-routerbench).
#
#   bash scripts/bench-router.sh     # as root or not; about 3 minutes plus the release build
#
# Environment: ROUNDS=3, DURATION=10 (seconds a wrk run, at most 20), CONN=32, LAT_CONN=2,
# BUILD=1 (0 uses an existing binary), GITFLEET=target/release/gitfleet (the binary to
# measure), OUT=/tmp/gitfleet-routerbench.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
(( DURATION <= 20 )) || { echo "$0: DURATION is at most 20 (seconds a wrk run)" >&2; exit 2; }
CONN=${CONN:-32}
LAT_CONN=${LAT_CONN:-2}
BUILD=${BUILD:-1}
OUT=${OUT:-/tmp/gitfleet-routerbench}
here="$(cd "$(dirname "$0")/.." && pwd)"

for tool in wrk nginx haproxy curl python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing (bash scripts/install-deps.sh)" >&2; exit 1; }
done
if [[ $BUILD == 1 ]]; then
    (cd "$here" && cargo build --release --bin gitfleet)
fi
GITFLEET=${GITFLEET:-$here/target/release/gitfleet}
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

rm -rf "$OUT"
mkdir -p "$OUT"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# --- servers ---------------------------------------------------------------------------------
backend_conf() { # backend_conf <dir> <port> <body>
    mkdir -p "$1"
    printf '%s\n' "$3" >"$1/index.html"
    cat >"$1/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$2;
        location = /nginx_status { stub_status; }
        location / { root $1; index index.html; }
    }
}
EOF
}
backend_conf "$OUT/backend" 18081 "hello, world"
backend_conf "$OUT/backend2" 18085 "second backend"
nginx -p "$OUT/backend" -c "$OUT/backend/nginx.conf" & pids+=($!)
nginx -p "$OUT/backend2" -c "$OUT/backend2/nginx.conf" & pids+=($!)

mkdir -p "$OUT/nginx-proxy"
cat >"$OUT/nginx-proxy/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $OUT/nginx-proxy/nginx.pid;
error_log $OUT/nginx-proxy/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:18081; keepalive 64; }
    server {
        listen 127.0.0.1:18083;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
nginx -p "$OUT/nginx-proxy" -c "$OUT/nginx-proxy/nginx.conf" & pids+=($!)
nginx_proxy_pid=$!

cat >"$OUT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 3000
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    option forwardfor
    http-reuse always
frontend fe
    bind 127.0.0.1:18084
    default_backend be
backend be
    server s1 127.0.0.1:18081
EOF
haproxy -f "$OUT/haproxy.cfg" -db & pids+=($!)
haproxy_pid=$!

cat >"$OUT/routes.yaml" <<EOF
routes:
  - host: bench.test
    backends: ["127.0.0.1:18081"]
EOF
GITFLEET_LOG=warn "$GITFLEET" router-static --listen 127.0.0.1:18082 --routes "$OUT/routes.yaml" \
    --threads 1 2>"$OUT/router.log" & pids+=($!)
router_pid=$!

wait_up() { # wait_up <url>
    for _ in $(seq 100); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.test' "$1") == 200 ]]; then return; fi
        sleep 0.1
    done
    echo "$0: $1 did not come up" >&2
    cat "$OUT/router.log" >&2
    exit 1
}
for port in 18081 18085 18082 18083 18084; do wait_up "http://127.0.0.1:$port/"; done

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
printf 'when\tload_1m_5m_15m\n' >"$OUT/load.tsv"
printf 'start\t%s\n' "$(load_avg)" >>"$OUT/load.tsv"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

declare -A url pid_of
url[direct]=http://127.0.0.1:18081/
url[gitfleet]=http://127.0.0.1:18082/
url[nginx]=http://127.0.0.1:18083/
url[haproxy]=http://127.0.0.1:18084/
pid_of[gitfleet]=$router_pid
pid_of[nginx]=$(cat "$OUT/nginx-proxy/nginx.pid" 2>/dev/null || echo "$nginx_proxy_pid")
# The nginx master forks a worker: measure the worker.
nginx_worker=$(pgrep -P "${pid_of[nginx]}" | head -1 || true)
[[ -n $nginx_worker ]] && pid_of[nginx]=$nginx_worker
pid_of[haproxy]=$haproxy_pid
targets=(direct gitfleet nginx haproxy)

run_wrk() { # run_wrk <target> <connections> <seconds> <file>
    wrk -t1 -c"$2" -d"$3"s --latency -H 'Host: bench.test' "${url[$1]}" >"$4" 2>&1
}
requests_of() { awk '/requests in/ {print $1}' "$1"; }
rps_of() { awk '/Requests\/sec/ {print $2}' "$1"; }
to_us() { # wrk latency (e.g. 85.00us, 1.20ms) -> microseconds
    awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v+0 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v*1000 } else if (v ~ /s$/) { sub(/s$/, "", v); print v*1000000 } }'
}

echo "warm-up"
for t in "${targets[@]}"; do run_wrk "$t" "$CONN" 2 /dev/null; done

printf 'round\ttarget\treq_s\tcpu_us_per_req\tuser_us_per_req\n' >"$OUT/throughput.tsv"
for round in $(seq "$ROUNDS"); do
    printf 'throughput round %s\t%s\n' "$round" "$(load_avg)" >>"$OUT/load.tsv"
    for t in "${targets[@]}"; do
        before=0 user_before=0
        [[ $t != direct ]] && before=$(cpu_ticks "${pid_of[$t]}") && user_before=$(user_ticks "${pid_of[$t]}")
        run_wrk "$t" "$CONN" "$DURATION" "$OUT/wrk-$t-$round.txt"
        reqs=$(requests_of "$OUT/wrk-$t-$round.txt")
        cpu="-" user="-"
        if [[ $t != direct ]]; then
            after=$(cpu_ticks "${pid_of[$t]}")
            user_after=$(user_ticks "${pid_of[$t]}")
            cpu=$(awk -v a="$after" -v b="$before" -v n="$reqs" -v hz="$hz" 'BEGIN { printf "%.1f", (a-b)/hz*1e6/n }')
            user=$(awk -v a="$user_after" -v b="$user_before" -v n="$reqs" -v hz="$hz" 'BEGIN { printf "%.1f", (a-b)/hz*1e6/n }')
        fi
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$(rps_of "$OUT/wrk-$t-$round.txt")" "$cpu" "$user" >>"$OUT/throughput.tsv"
    done
done

vm_rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
printf 'target\trss_kib\n' >"$OUT/rss.tsv"
for t in gitfleet nginx haproxy; do
    printf '%s\t%s\n' "$t" "$(vm_rss "${pid_of[$t]}")" >>"$OUT/rss.tsv"
done

printf 'round\ttarget\tp50_us\tp99_us\n' >"$OUT/latency.tsv"
for round in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do
        run_wrk "$t" "$LAT_CONN" 3 "$OUT/lat-$t-$round.txt"
        p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$OUT/lat-$t-$round.txt")")
        p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$OUT/lat-$t-$round.txt")")
        printf '%s\t%s\t%s\t%s\n' "$round" "$t" "$p50" "$p99" >>"$OUT/latency.tsv"
    done
done

# --- upstream reuse -------------------------------------------------------------------------
status() { curl -s http://127.0.0.1:18081/nginx_status | awk 'NR == 3 {print $1, $3}'; }
printf 'target\taccepts\trequests\treuse\n' >"$OUT/reuse.tsv"
for t in gitfleet nginx haproxy; do
    read -r a0 r0 < <(status)
    run_wrk "$t" "$CONN" 3 /dev/null
    read -r a1 r1 < <(status)
    # The two status requests themselves are one accept and two requests.
    accepts=$((a1 - a0 - 1)); requests=$((r1 - r0 - 2))
    reuse=$(awk -v a="$accepts" -v r="$requests" 'BEGIN { printf "%.5f", 1 - a/r }')
    printf '%s\t%s\t%s\t%s\n' "$t" "$accepts" "$requests" "$reuse" >>"$OUT/reuse.tsv"
done

# --- route change ---------------------------------------------------------------------------
printf 'attempt\tmillis\n' >"$OUT/route-change.tsv"
for attempt in 1 2 3 4 5; do
    if (( attempt % 2 )); then target=18085; want="second backend"; else target=18081; want="hello, world"; fi
    start=$(date +%s%N)
    printf 'routes:\n  - host: bench.test\n    backends: ["127.0.0.1:%s"]\n' "$target" >"$OUT/routes.yaml.new"
    mv "$OUT/routes.yaml.new" "$OUT/routes.yaml"
    for _ in $(seq 2000); do
        body=$(curl -s -H 'Host: bench.test' http://127.0.0.1:18082/)
        [[ $body == "$want" ]] && break
    done
    end=$(date +%s%N)
    printf '%s\t%s\n' "$attempt" "$(( (end - start) / 1000000 ))" >>"$OUT/route-change.tsv"
    sleep 0.3
done

# --- memory with 1,000 idle client connections ----------------------------------------------
rss() { awk '/VmRSS/ {print $2}' "/proc/$router_pid/status"; }
rss_before=$(rss)
python3 - "$OUT/rss-idle.txt" "$router_pid" <<'EOF'
import socket, sys, time
out, pid = sys.argv[1], sys.argv[2]
conns = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", 18082), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    conns.append(s)
time.sleep(1)
rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
open(out, "w").write(rss + "\n")
for s in conns:
    s.close()
EOF
rss_idle=$(cat "$OUT/rss-idle.txt")

printf 'end\t%s\n' "$(load_avg)" >>"$OUT/load.tsv"

# --- summary --------------------------------------------------------------------------------
python3 - "$OUT" "$rss_before" "$rss_idle" <<'EOF' | tee "$OUT/summary.md"
import csv, statistics, sys
out, rss_before, rss_idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rows(name):
    return list(csv.DictReader(open(f"{out}/{name}"), delimiter="\t"))
tp, lat = rows("throughput.tsv"), rows("latency.tsv")
med = lambda xs: statistics.median(xs)
def col(rows, t, k):
    return [float(r[k]) for r in rows if r["target"] == t and r[k] not in ("-", "")]
print("| target | req/s (median) | CPU µs/req (median) | p50 µs | p99 µs |")
print("| --- | --- | --- | --- | --- |")
res = {}
for t in ["direct", "gitfleet", "nginx", "haproxy"]:
    rps = med(col(tp, t, "req_s"))
    cpu = col(tp, t, "cpu_us_per_req")
    cpu = med(cpu) if cpu else None
    p50, p99 = med(col(lat, t, "p50_us")), med(col(lat, t, "p99_us"))
    res[t] = (rps, cpu, p50, p99)
    print(f"| {t} | {rps:.0f} | {cpu if cpu is None else f'{cpu:.1f}'} | {p50:.0f} | {p99:.0f} |")
g, n = res["gitfleet"], res["nginx"]
print()
print(f"* throughput gitfleet / nginx: {g[0]/n[0]:.2f} (target >= 0.95); / haproxy: {g[0]/res['haproxy'][0]:.2f}")
print(f"* CPU per request gitfleet / nginx: {g[1]/n[1]:.2f} (target <= 1.2)")
user = {t: med(col(tp, t, "user_us_per_req")) for t in ["gitfleet", "nginx", "haproxy"]}
print("* of which user space (µs/req, the rest is the kernel's): " + ", ".join(
    f"{t} {u:.1f} of {res[t][1]:.1f}" for t, u in user.items()))
print(f"* p50 added over direct: gitfleet {g[2]-res['direct'][2]:.0f} µs, nginx {n[2]-res['direct'][2]:.0f} µs (target: gitfleet <= nginx + 50)")
print(f"* p99 gitfleet / nginx: {g[3]/n[3]:.2f} (target <= 1.5)")
print(f"* direct / gitfleet req/s: {res['direct'][0]/g[0]:.2f} (>= 2 means the backend is not what is measured)")
for r in rows("reuse.tsv"):
    print(f"* upstream reuse {r['target']}: {float(r['reuse'])*100:.3f} % ({r['accepts']} connections for {r['requests']} requests)")
ms = [int(r["millis"]) for r in rows("route-change.tsv")]
print(f"* route change in effect (file rewrite -> first answer from the new backend, polled with curl): {ms} ms, max {max(ms)} (target < 100)")
print(f"* router VmRSS: {rss_before/1024:.1f} MiB at rest, {rss_idle/1024:.1f} MiB with 1,000 idle client connections (target < 30)")
rss = {r["target"]: int(r["rss_kib"]) for r in rows("rss.tsv")}
print("* VmRSS after the throughput rounds: " + ", ".join(f"{t} {kib/1024:.1f} MiB" for t, kib in rss.items())
      + " (nginx: its one worker; HAProxy: its one process)")
print("* load average (1, 5, 15 min): " + "; ".join(f"{r['when']}: {r['load_1m_5m_15m']}" for r in rows("load.tsv")))
EOF
