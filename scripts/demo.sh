#!/usr/bin/env bash
# The GitOps loop on one machine (as root, Debian): two real Docker hosts in network
# namespaces at the addresses example-repo/fleet.yaml names (10.250.1.2 and 10.250.2.2), the
# example images built in them, a local Git repository made from example-repo/, and
# `gitfleet run` following it, with the status page on http://127.0.0.1:8080.
#
#   bash scripts/demo.sh          # Ctrl-C stops gitfleet and the hosts
#   GITFLEET_DEMO_DEBUG=1 bash scripts/demo.sh   # a debug build: quicker to build
#   GITFLEET_DEMO_LISTEN=127.0.0.1:18080 bash scripts/demo.sh   # the page elsewhere
#
# Ctrl-C (or SIGTERM) stops gitfleet and everything this script started (the two dockerd
# and their namespaces, by pid and by name), and nothing else. The repository stays in
# /tmp/gitfleet-demo/fleet for you to look at. `scripts/walkthrough.sh` shows validate, plan
# and apply one command at a time instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh
if [[ ${GITFLEET_DEMO_DEBUG:-0} == 1 ]]; then
    cargo build --quiet
    gitfleet="$root/target/debug/gitfleet"
else
    cargo build --release --quiet
    gitfleet="$root/target/release/gitfleet"
fi
export DOCKER_API_VERSION=1.41
work=/tmp/gitfleet-demo
listen=${GITFLEET_DEMO_LISTEN:-127.0.0.1:8080}
# Namespaces gfdemo-a/b at example-repo's addresses (the walkthrough uses gfwalk-*).
ns_prefix=gfdemo
subnets="1 2"

source scripts/demo-hosts.sh

gitfleet_pid=
cleanup() {
    trap - EXIT INT TERM
    if [[ -n $gitfleet_pid ]] && kill -0 "$gitfleet_pid" 2>/dev/null; then
        kill -TERM "$gitfleet_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$gitfleet_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$gitfleet_pid" 2>/dev/null || true
    fi
    echo
    echo "== stopping the hosts"
    stop_hosts
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_hosts
start_hosts

echo "== a Git repository made from example-repo/: $work/fleet"
rm -rf "$work/fleet" "$work/cache"
mkdir -p "$work"
cp -r example-repo "$work/fleet"
git -C "$work/fleet" init -q -b main
git -C "$work/fleet" add -A
git -C "$work/fleet" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "The example fleet"

echo "== gitfleet run on it, the status page on http://$listen"
"$gitfleet" run --repo "$work/fleet" --branch main --listen "$listen" \
    --cache-dir "$work/cache" --resync-interval 30s >"$work/gitfleet.log" 2>&1 &
gitfleet_pid=$!
for _ in $(seq 300); do
    if ! kill -0 "$gitfleet_pid" 2>/dev/null; then
        echo "gitfleet run stopped; its log:" >&2
        cat "$work/gitfleet.log" >&2
        exit 1
    fi
    "$gitfleet" status --server "http://$listen" 2>/dev/null | grep -q '^deployed   [0-9a-f]' && break
    sleep 0.5
done
"$gitfleet" status --server "http://$listen" || true

cat <<EOT

gitfleet is running: open http://$listen (its log: $work/gitfleet.log).
Things to try, in another terminal (the page follows live):

  cd $work/fleet
  # scale the web front end: edit replicas, commit, watch the page
  sed -i 's/replicas: 2/replicas: 1/' apps/shop/compose.yaml && git commit -qam "Scale web to 1"
  # remove a replica by hand: gitfleet puts it back within a second
  docker -H unix://$work/b/docker.sock rm -f shop-web-1
  # break a file: the error shows with its file:line:col, nothing changes on the hosts
  sed -i 's|^    image: gitfleet/api:1|&\n    build: .|' apps/shop/compose.yaml && git commit -qam "Broken on purpose"
  git revert --no-edit HEAD     # and back
  $gitfleet status              # the same picture in the terminal

Ctrl-C stops gitfleet and the two hosts.
EOT
wait "$gitfleet_pid"
