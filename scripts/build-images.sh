#!/usr/bin/env bash
# Builds gitfleet's small test / example images into one Docker daemon, with no registry:
# every image is FROM scratch with Debian's statically linked busybox (package busybox-static)
# copied in as /bin/busybox, plus a few applet symlinks.
#
#   scripts/build-images.sh [DOCKER_HOST]     e.g. unix:///tmp/x/docker.sock, tcp://10.250.1.2:2375
#
# The daemon is the argument, else $DOCKER_HOST, else the docker CLI's default.
#
# Images (the tag is the version the page shows):
#   gitfleet/busybox:1  the shared base: /bin/busybox, applet links, /www, /data, /tmp
#   gitfleet/web:1      busybox httpd on :80 serving /www, page says "gitfleet web v1"
#   gitfleet/web:2      the same, page says "gitfleet web v2"
#   gitfleet/api:1      httpd on :80 ("gitfleet api v1") with a HEALTHCHECK that passes while
#                       /www/healthy exists (busybox wget http://127.0.0.1/healthy); make it fail
#                       with `docker exec <c> rm /www/healthy`, heal with `touch /www/healthy`
#   gitfleet/whoami:1   httpd on :80 whose `/` is a CGI answering `<hostname> v1 <METHOD> <body>`
#   gitfleet/whoami:2   the same, answering `... v2 ...` (the router tests' replicas).
#                       `?sleep=N` answers after N seconds; with /tmp/unhealthy present it
#                       answers 503; each POST body is appended to /log/posts when /log exists
#   gitfleet/db:1       appends `date` to /data/log every 5 s, forever
#   gitfleet/exits:1    exits with code 3 after one second
#
# Long-running images run under `sh` with a TERM trap, so `docker stop` ends them at once
# (PID 1 in a container ignores signals it has no handler for, and would otherwise wait out the
# whole stop grace period).
#
# Idempotent: the classic builder's cache makes a second run a no-op that re-tags the same
# image ids. It uses the classic builder (DOCKER_BUILDKIT=0): the Debian CLI has no buildx, and
# nothing here needs BuildKit. DOCKER_API_VERSION defaults to 1.41 (the docker.io engine), since
# the v28 CLI would otherwise speak a newer API than the daemon.
set -euo pipefail

if [[ $# -gt 1 ]]; then
    echo "usage: $0 [DOCKER_HOST]" >&2
    exit 2
fi
if [[ $# -eq 1 ]]; then
    export DOCKER_HOST="$1"
fi
export DOCKER_BUILDKIT=0
export DOCKER_API_VERSION="${DOCKER_API_VERSION:-1.41}"

BUSYBOX="${BUSYBOX:-/bin/busybox}"
if ! command -v docker >/dev/null; then
    echo "$0: the docker CLI is missing (apt-get install docker.io)" >&2
    exit 1
fi
if ! [[ -x "$BUSYBOX" ]] || ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked'; then
    # `file` may be missing; fall back to ldd's verdict.
    if ! ldd "$BUSYBOX" 2>&1 | grep -q 'not a dynamic executable'; then
        echo "$0: $BUSYBOX is not a static busybox (apt-get install busybox-static)" >&2
        exit 1
    fi
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/gitfleet-images.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

# Fixed mtimes: COPY's cache key is content and mode, but keep the context reproducible anyway.
stamp() { find "$1" -exec touch -h -d '2000-01-01 00:00:00 UTC' {} +; }

build() { # build <tag> <context dir>; the Dockerfile is <context dir>/Dockerfile
    local tag="$1" dir="$2" out
    if ! out="$(docker build -q -t "$tag" "$dir" 2>&1)"; then
        echo "$0: building $tag failed:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$tag ${out##*$'\n'}"
}

# --- base: busybox and its applets ---------------------------------------------------------
mkdir -p "$ctx/base/rootfs/bin" "$ctx/base/rootfs/www" "$ctx/base/rootfs/data" \
    "$ctx/base/rootfs/tmp" "$ctx/base/rootfs/etc"
cp "$BUSYBOX" "$ctx/base/rootfs/bin/busybox"
for applet in sh ash cat date echo env false hostname httpd id kill ls mkdir nc ping ps rm \
    sleep test touch true wget; do
    ln -s busybox "$ctx/base/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' >"$ctx/base/rootfs/etc/passwd"
echo 'root:x:0:' >"$ctx/base/rootfs/etc/group"
chmod 1777 "$ctx/base/rootfs/tmp"
cat >"$ctx/base/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
CMD ["sh"]
EOF
stamp "$ctx/base"
build gitfleet/busybox:1 "$ctx/base"

# --- web:1, web:2 ----------------------------------------------------------------------------
for version in 1 2; do
    d="$ctx/web$version"
    mkdir -p "$d/www"
    echo "gitfleet web v$version" >"$d/www/index.html"
    cat >"$d/Dockerfile" <<'EOF'
FROM gitfleet/busybox:1
COPY www/ /www/
EXPOSE 80
CMD ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 80 -h /www & wait"]
EOF
    stamp "$d"
    build "gitfleet/web:$version" "$d"
done

# --- api:1, with a healthcheck that can be made to fail -------------------------------------
d="$ctx/api1"
mkdir -p "$d/www"
echo "gitfleet api v1" >"$d/www/index.html"
echo "ok" >"$d/www/healthy"
cat >"$d/Dockerfile" <<'EOF'
FROM gitfleet/busybox:1
COPY www/ /www/
EXPOSE 80
HEALTHCHECK --interval=1s --timeout=2s --retries=2 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/healthy"]
CMD ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 80 -h /www & wait"]
EOF
stamp "$d"
build gitfleet/api:1 "$d"

# --- whoami:1, whoami:2: replicas that say who they are (busybox httpd runs
# /cgi-bin/index.cgi for `/` when there is no index.html) -----------------------------------
for version in 1 2; do
    d="$ctx/whoami$version"
    mkdir -p "$d/www/cgi-bin"
    cat >"$d/www/cgi-bin/index.cgi" <<EOF
#!/bin/sh
case "\$QUERY_STRING" in sleep=*) sleep "\${QUERY_STRING#sleep=}" ;; esac
if [ -e /tmp/unhealthy ]; then printf 'Status: 503 Unhealthy\\r\\n\\r\\n'; exit 0; fi
body=""
if [ "\$REQUEST_METHOD" = POST ] && [ -n "\$CONTENT_LENGTH" ]; then
    read -r -n "\$CONTENT_LENGTH" body
    if [ -d /log ]; then echo "\$body \$(hostname)" >>/log/posts; fi
fi
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "\$(hostname) v$version \$REQUEST_METHOD \$body"
EOF
    chmod 755 "$d/www/cgi-bin/index.cgi"
    cat >"$d/Dockerfile" <<'EOF'
FROM gitfleet/busybox:1
COPY www/ /www/
EXPOSE 80
CMD ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 80 -h /www & wait"]
EOF
    stamp "$d"
    build "gitfleet/whoami:$version" "$d"
done

# --- db:1 ------------------------------------------------------------------------------------
d="$ctx/db1"
mkdir -p "$d"
cat >"$d/Dockerfile" <<'EOF'
FROM gitfleet/busybox:1
CMD ["sh", "-c", "trap 'exit 0' TERM INT; while true; do date >> /data/log; sleep 5 & wait $!; done"]
EOF
stamp "$d"
build gitfleet/db:1 "$d"

# --- exits:1 ---------------------------------------------------------------------------------
d="$ctx/exits1"
mkdir -p "$d"
cat >"$d/Dockerfile" <<'EOF'
FROM gitfleet/busybox:1
CMD ["sh", "-c", "sleep 1; exit 3"]
EOF
stamp "$d"
build gitfleet/exits:1 "$d"
