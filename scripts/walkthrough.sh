#!/usr/bin/env bash
# The main job, end to end on one machine (as root, Debian): two real Docker hosts in network
# namespaces gfwalk-a and gfwalk-b at 10.250.11.2 and 10.250.12.2 (a copy of example-repo/
# with its endpoints moved there, so the walkthrough and scripts/demo.sh, which uses
# example-repo's own 10.250.1.2 and 10.250.2.2, can run at once), the example images built
# in them, then `gitfleet validate`, `plan` and `apply` on that copy.
# A container you started by hand (unlabelled) is shown to be left alone; a stale labelled one
# is planned for removal and removed; a second apply has nothing to do. Everything it started is stopped on exit, by pid and by name.
#
#   bash scripts/walkthrough.sh     # keep the hosts running with KEEP_HOSTS=1
#
# (`scripts/demo.sh` runs the controller, `gitfleet run`, on the same hosts instead.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh
cargo build --release --quiet
gitfleet="$root/target/release/gitfleet"
export DOCKER_API_VERSION=1.41
work=/tmp/gitfleet-walkthrough
ns_prefix=gfwalk
subnets="11 12"

source scripts/demo-hosts.sh

stop_hosts
if [[ ${KEEP_HOSTS:-0} != 1 ]]; then trap stop_hosts EXIT; fi
start_hosts

repo="$work/example-repo"
rm -rf "$repo"
cp -r example-repo "$repo"
sed -i -e 's/10\.250\.1\.2/10.250.11.2/' -e 's/10\.250\.2\.2/10.250.12.2/' "$repo/fleet.yaml"
cd "$work"

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
echo "== the web front end through host a's published port: $(wget -qO- -T 2 http://10.250.11.2:8080/ 2>/dev/null || busybox wget -qO- -T 2 http://10.250.11.2:8080/)"
echo "== gitfleet apply again: nothing to do"
"$gitfleet" apply example-repo --yes
