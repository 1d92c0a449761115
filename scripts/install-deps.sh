#!/usr/bin/env bash
# Installs what gitfleet's tests and demo need on a fresh Debian machine (as root):
# Debian's Docker engine (the tests start their own daemons; no system daemon is needed),
# busybox-static (the local images are built from it), iproute2 and util-linux (network
# namespaces, nsenter), openssl (TLS test certificates), docker-registry (a real registry
# for pull tests), git (the sync tests serve repositories with `git http-backend`), libssl-dev
# and pkg-config (git2's https and ssh transports are built against OpenSSL), etcd-server (the
# high-availability tests run a real 3-member etcd cluster), protobuf-compiler and
# libprotobuf-dev (the etcd-client crate generates its gRPC code with protoc at build time and
# needs the well-known .proto files too). Idempotent and quiet when all is there.
set -euo pipefail

packages=(docker.io busybox-static docker-registry iproute2 util-linux openssl git libssl-dev pkg-config etcd-server protobuf-compiler libprotobuf-dev)
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
