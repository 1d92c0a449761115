#!/usr/bin/env bash
# The main job, end to end on one machine (as root, Debian): two real Docker hosts in network
# namespaces at the addresses example-repo/fleet.yaml names (10.250.1.2 and 10.250.2.2), the
# example images built in them, then `gitfleet validate`, `plan` and `apply` on example-repo/.
# A container you started by hand (unlabelled) is shown to be left alone; a stale labelled one
# is planned for removal and removed; a second apply has nothing to do. Everything it started is stopped on exit, by pid and by name.
#
#   bash scripts/demo.sh            # keep the hosts running with KEEP_HOSTS=1
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh
cargo build --release --quiet
gitfleet="$root/target/release/gitfleet"
export DOCKER_API_VERSION=1.41
work=/tmp/gitfleet-demo
hosts=(a b)

stop_hosts() {
    for i in 1 2; do
        local name=${hosts[$((i - 1))]}
        local dir="$work/$name"
        if [[ -f $dir/docker.pid ]]; then
            local pid
            pid=$(cat "$dir/docker.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        ip netns del "gfdemo-$name" 2>/dev/null || true
        ip link del "gfdemo-$name-o" 2>/dev/null || true
        ip route del unreachable "10.250.$i.0/24" metric 4000 2>/dev/null || true
        umount "$dir/exec" "$dir/data" 2>/dev/null || true
    done
    # The hosts' data goes with them: the demo starts from empty hosts every time.
    [[ -d $work ]] && find "$work" -mindepth 1 -maxdepth 1 -name '[ab]' -exec rm -rf {} + 2>/dev/null || true
}

start_host() {
    local i=$1 name=$2
    local dir="$work/$2"
    mkdir -p "$dir"
    echo '{}' >"$dir/daemon.json"
    # A fallback route first, so traffic for the namespace's subnet never leaves the machine.
    ip route add unreachable "10.250.$i.0/24" metric 4000
    ip netns add "gfdemo-$name"
    ip link add "gfdemo-$name-o" type veth peer name "gfdemo-$name-i"
    ip link set "gfdemo-$name-i" netns "gfdemo-$name"
    ip addr add "10.250.$i.1/24" dev "gfdemo-$name-o"
    ip link set "gfdemo-$name-o" up
    ip -n "gfdemo-$name" addr add "10.250.$i.2/24" dev "gfdemo-$name-i"
    ip -n "gfdemo-$name" link set "gfdemo-$name-i" up
    ip -n "gfdemo-$name" link set lo up
    # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then fails.
    nsenter --net="/var/run/netns/gfdemo-$name" dockerd --config-file="$dir/daemon.json" \
        --host="unix://$dir/docker.sock" --host="tcp://10.250.$i.2:2375" --tls=false \
        --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/docker.pid" \
        --shutdown-timeout=1 >"$dir/dockerd.log" 2>&1 &
}

stop_hosts
if [[ ${KEEP_HOSTS:-0} != 1 ]]; then trap stop_hosts EXIT; fi
echo "== starting Docker hosts a (10.250.1.2) and b (10.250.2.2)"
start_host 1 a
start_host 2 b
for name in a b; do
    for _ in $(seq 100); do
        docker -H "unix://$work/$name/docker.sock" version >/dev/null 2>&1 && break
        sleep 0.2
    done
    bash scripts/build-images.sh "unix://$work/$name/docker.sock" >/dev/null
done

echo "== gitfleet validate example-repo"
"$gitfleet" validate example-repo

echo "== a container of yours on host a (no gitfleet label), and a stale gitfleet one"
docker -H "unix://$work/a/docker.sock" run -d --name my-own-web gitfleet/web:1 >/dev/null
docker -H "unix://$work/a/docker.sock" run -d --name shop-old-1 \
    --label io.gitfleet.fleet=example --label io.gitfleet.app=shop \
    --label io.gitfleet.service=old --label io.gitfleet.replica=1 gitfleet/web:1 >/dev/null

echo "== gitfleet plan example-repo"
"$gitfleet" plan example-repo || true
echo "== the same plan as a pull-request comment would show it"
"$gitfleet" plan example-repo --format markdown || true

echo "== gitfleet apply example-repo --yes"
"$gitfleet" apply example-repo --yes
echo "== what runs now"
for name in a b; do
    docker -H "unix://$work/$name/docker.sock" ps -a --format "host $name: {{.Names}}\t{{.Status}}"
done
echo "== the web front end through host a's published port: $(wget -qO- -T 2 http://10.250.1.2:8080/ 2>/dev/null || busybox wget -qO- -T 2 http://10.250.1.2:8080/)"
echo "== gitfleet apply again: nothing to do"
"$gitfleet" apply example-repo --yes
