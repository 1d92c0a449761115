# Two real Docker hosts for the demo and the walkthrough, sourced by both (as root, Debian):
# dockerd in network namespaces $ns_prefix-a and $ns_prefix-b at 10.250.<s>.2, <s> from
# $subnets, each with its own data under $work. Everything is stopped by pid and by these
# names only, never by pattern. The demo and the walkthrough use different names and
# subnets, so both can run at once.
#
# Needs: $work (a directory of the script's own); optional $ns_prefix (default gfdemo) and
# $subnets (default "1 2": the addresses example-repo/fleet.yaml names).

demo_hosts=(a b)
ns_prefix=${ns_prefix:-gfdemo}
read -r -a demo_subnets <<<"${subnets:-1 2}"

stop_hosts() {
    for k in 0 1; do
        local name=${demo_hosts[$k]}
        local i=${demo_subnets[$k]}
        local dir="$work/$name"
        if [[ -f $dir/docker.pid ]]; then
            local pid
            pid=$(cat "$dir/docker.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        ip netns del "$ns_prefix-$name" 2>/dev/null || true
        ip link del "$ns_prefix-$name-o" 2>/dev/null || true
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
    ip netns add "$ns_prefix-$name"
    ip link add "$ns_prefix-$name-o" type veth peer name "$ns_prefix-$name-i"
    ip link set "$ns_prefix-$name-i" netns "$ns_prefix-$name"
    ip addr add "10.250.$i.1/24" dev "$ns_prefix-$name-o"
    ip link set "$ns_prefix-$name-o" up
    ip -n "$ns_prefix-$name" addr add "10.250.$i.2/24" dev "$ns_prefix-$name-i"
    ip -n "$ns_prefix-$name" link set "$ns_prefix-$name-i" up
    ip -n "$ns_prefix-$name" link set lo up
    # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then fails.
    nsenter --net="/var/run/netns/$ns_prefix-$name" dockerd --config-file="$dir/daemon.json" \
        --host="unix://$dir/docker.sock" --host="tcp://10.250.$i.2:2375" --tls=false \
        --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/docker.pid" \
        --shutdown-timeout=1 >"$dir/dockerd.log" 2>&1 &
}

# Starts hosts a and b and builds the example images in them.
start_hosts() {
    echo "== starting Docker hosts a (10.250.${demo_subnets[0]}.2) and b (10.250.${demo_subnets[1]}.2)"
    start_host "${demo_subnets[0]}" a
    start_host "${demo_subnets[1]}" b
    for name in a b; do
        local up=0
        for _ in $(seq 150); do
            if docker -H "unix://$work/$name/docker.sock" version >/dev/null 2>&1; then up=1; break; fi
            sleep 0.2
        done
        if [[ $up != 1 ]]; then
            echo "host $name did not start; its log:" >&2
            tail -20 "$work/$name/dockerd.log" >&2
            return 1
        fi
        bash scripts/build-images.sh "unix://$work/$name/docker.sock" >/dev/null
    done
}
