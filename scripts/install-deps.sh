#!/usr/bin/env bash
# Installs what gitfleet's tests and demo need on a fresh Debian machine (as root):
# Debian's Docker engine (the tests start their own daemons; no system daemon is needed),
# busybox-static (the local images are built from it), iproute2 and util-linux (network
# namespaces, nsenter), openssl (TLS test certificates), docker-registry (a real registry
# for pull tests), git (the Git tests serve repositories with `git http-backend`; the mirror's
# compaction runs `git gc`), libssl-dev and pkg-config (git2's https and ssh transports are
# built against OpenSSL), prometheus (promtool checks /metrics; a real Prometheus scrapes
# gitfleet run in a test), chromium, chromium-driver and fonts-dejavu-core (the status page's
# real-browser test), etcd-server (the high-availability tests run a real 3-member etcd
# cluster), protobuf-compiler and libprotobuf-dev (the etcd-client crate generates its gRPC
# code with protoc at build time and needs the well-known .proto files too). Idempotent and
# quiet when all is there.
set -euo pipefail

# curl: the router tests (HTTP/2 with prior knowledge); nginx, haproxy, wrk: scripts/bench-router.sh.
packages=(docker.io busybox-static docker-registry iproute2 util-linux openssl git libssl-dev pkg-config
    prometheus chromium chromium-driver fonts-dejavu-core curl nginx haproxy wrk
    etcd-server protobuf-compiler libprotobuf-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "$0: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
