#!/usr/bin/env bash
# Writes the large seed inputs of the loader's fuzz target (fuzz/fuzz_targets/load.rs) to
# fuzz/seeds-large/ (ignored by Git: several MB, generated), so the fuzzer mutates big files
# from the start instead of growing small ones to about 1.5 KB (issue 9). Three families:
#
#   corpus-*   every Compose file of the shared test corpus (../shared/corpus, or $CORPUS):
#              awesome-compose, compose-go's loader fixtures (valid and invalid),
#              conformance-tests; skipped with a note when the corpus is absent
#   bomb-*     the hostile inputs of scripts/bombs.sh, scaled to fit the target's max_len:
#              alias lists, nested aliases, merge keys, deep nesting (flow and block), bad
#              ports past and under the list limit, huge variables and interpolations,
#              many bad values under a `oneOf`, one huge scalar / key, many documents
#   big-*      generated valid files of 100 to 250 KB: apps of hundreds of services using
#              every common key, and a fleet of a thousand hosts
#
# Each file starts with the target's selector byte (0: app `compose.yaml`, 1: `fleet.yaml`)
# and is at most MAX_LEN bytes (default 262144, the `-max_len` of scripts/fuzz.sh); a
# generator that overshoots is an error, not a silent cut.
#
#   bash scripts/fuzz-seeds.sh                 # then: LARGE=1 bash scripts/fuzz.sh
#   OUT=/tmp/seeds CORPUS=/path/to/corpus bash scripts/fuzz-seeds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-fuzz/seeds-large}
CORPUS=${CORPUS:-../shared/corpus}
MAX_LEN=${MAX_LEN:-262144}
rm -rf "$OUT"
mkdir -p "$OUT"

python3 - "$OUT" "$CORPUS" "$MAX_LEN" <<'EOF'
import os
import sys

out, corpus, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
APP, FLEET = b"\x00", b"\x01"
written = []


def seed(name, selector, text):
    data = selector + (text.encode() if isinstance(text, str) else text)
    if len(data) > max_len:
        sys.exit(f"fuzz-seeds: {name} is {len(data)} bytes, more than max_len {max_len}")
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    written.append((name, len(data)))


def fill(unit, budget):
    """How many times `unit` fits in `budget` bytes."""
    return budget // len(unit)


# Room for the selector byte and a small header/footer around a generated body.
BODY = max_len - 1 - 256

# --- corpus-*: real Compose files -------------------------------------------------------
if os.path.isdir(corpus):
    for folder in ("awesome-compose", "compose-go", "conformance-tests"):
        for root, _, files in sorted(os.walk(os.path.join(corpus, folder))):
            for name in sorted(files):
                if not name.endswith((".yaml", ".yml")):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, corpus).replace("/", "_")
                with open(path, "rb") as f:
                    seed("corpus-" + rel, APP, f.read())
else:
    print(f"fuzz-seeds: no corpus at {corpus}, corpus-* seeds skipped", file=sys.stderr)

SERVICE = "services:\n  web:\n    image: nginx\n"

# --- bomb-*: scripts/bombs.sh, scaled to max_len ------------------------------------------
# Alias lists: N items, then N aliases to the list.
for n in (2400, 10000):
    seed(f"bomb-alias-{n}", APP,
         "x-a: &a [" + ",".join(["x"] * n) + "]\n"
         "x-b: [" + ",".join(["*a"] * n) + "]\n" + SERVICE)
# Nested aliases ("billion laughs"): each level lists the previous one ten times.
laughs = "x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
for level in range(1, 10):
    laughs += f"x-l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]\n"
seed("bomb-laughs", APP, laughs + SERVICE)
# Merge keys: one mapping of 1,000 keys merged into as many mappings as fit.
base = "x-base: &b {" + ", ".join(f"k{i}: {i}" for i in range(1000)) + "}\nx-many:\n"
merges = fill("  m00000: {<<: *b, own: 00000}\n", BODY - len(base))
seed("bomb-merge", APP,
     base + "".join(f"  m{i}: {{<<: *b, own: {i}}}\n" for i in range(merges)) + SERVICE)
# Merge keys into services: every service merges a big anchored mapping.
common = "x-common: &common\n  image: nginx\n  environment: {" + ", ".join(
    f"V{i}: v{i}" for i in range(300)) + "}\nservices:\n"
count = fill("  s0000: {<<: *common}\n", BODY - len(common))
seed("bomb-merge-services", APP,
     common + "".join(f"  s{i}: {{<<: *common}}\n" for i in range(count)))
# Interpolation: `${WEB_TAG}` (a fleet variable) as often as fits, in one value.
unit = "${WEB_TAG}"
seed("bomb-interpolate-app", APP,
     "services:\n  web:\n    image: nginx\n    environment:\n      X: \""
     + unit * fill(unit, BODY) + "\"\n")
# Interpolation of unset variables and defaults, nested.
unit = "${UNSET:-${WEB_TAG:-x}}"
seed("bomb-interpolate-nested", APP,
     "services:\n  web:\n    image: nginx\n    environment:\n      X: \""
     + unit * fill(unit, BODY) + "\"\n")
# A huge fleet variable, used by the target's fixed app in its image.
seed("bomb-interpolate-fleet", FLEET,
     "hosts:\n  a:\n    endpoint: unix:///var/run/docker.sock\n"
     "variables:\n  WEB_TAG: " + "v" * BODY + "\n")
# Deep nesting: flow lists, flow mappings, block lists.
seed("bomb-nesting-flow-list", APP, "services: " + "[" * BODY + "\n")
seed("bomb-nesting-flow-map", APP, "services: " + "{a: " * fill("{a: ", BODY) + "\n")
depth = 1
while sum(2 * d + 3 for d in range(depth + 1)) < BODY:
    depth += 1
seed("bomb-nesting-block", APP,
     "services:\n" + "".join("  " * d + "- \n" for d in range(depth - 1)) + "  " * depth + "x\n")
# Bad ports: a block list past the list limit, a flow list just under it, a flow list of
# one-letter items as long as fits.
head = "services:\n  web:\n    image: nginx\n    ports:\n"
seed("bomb-ports-block", APP, head + "      - bad\n" * fill("      - bad\n", BODY))
seed("bomb-ports-9999", APP,
     "services:\n  web:\n    image: nginx\n    ports: [" + ",".join(["bad"] * 9999) + "]\n")
seed("bomb-ports-flow", APP,
     "services:\n  web:\n    image: nginx\n    ports: [" + ",".join(["b"] * fill("b,", BODY)) + "]\n")
# Replicas at the top of u32.
seed("bomb-replicas", APP,
     "services:\n  web:\n    image: nginx\n    deploy: {replicas: 4294967295}\n")
# Many bad values under a `oneOf` (sizes, durations, mounts), one per service.
unit = ("  s00000:\n    image: nginx\n    stop_grace_period: 1x\n    volumes: [\"::\"]\n"
        "    deploy: {resources: {limits: {memory: 12q, cpus: many}}}\n")
count = fill(unit, BODY - 10)
seed("bomb-oneof-many", APP, "services:\n" + "".join(
    unit.replace("s00000", f"s{i}") for i in range(count)))
# One huge scalar, one huge key, many documents, many anchors.
seed("bomb-huge-scalar", APP,
     "services:\n  web:\n    image: \"" + "n" * BODY + "\"\n")
seed("bomb-huge-key", APP, "services:\n  " + "w" * BODY + ":\n    image: nginx\n")
seed("bomb-documents", APP, SERVICE + "---\n" * fill("---\n", BODY))
count = fill("x-a00000: &a00000 x\n", BODY)
seed("bomb-anchors", APP,
     SERVICE + "".join(f"x-a{i}: &a{i} x\n" for i in range(count)))

# --- big-*: generated valid files ----------------------------------------------------------


def service(i, n):
    zone = "ab"[i % 2]
    lines = [
        f"  svc-{i}:",
        f"    image: registry.example.test/team-{i % 7}/svc-{i}:${{WEB_TAG}}",
        "    command: [\"serve\", \"--port\", \"80\"]",
        "    restart: unless-stopped",
        "    stop_grace_period: 1m30s",
        "    environment:",
        f"      SERVICE_ID: \"{i}\"",
        "      LOG_LEVEL: info",
        f"      UPSTREAM: http://svc-{(i + 1) % n}:80",
        "    labels:",
        f"      team: team-{i % 7}",
        "      tier: backend",
        "    volumes:",
        f"      - data-{i % 20}:/var/lib/svc",
        "    configs:",
        "      - source: cfg",
        "        target: /etc/svc/config.json",
        "    healthcheck:",
        "      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1/healthy\"]",
        "      interval: 10s",
        "      timeout: 2s",
        "      retries: 3",
        "    deploy:",
        f"      replicas: {1 + i % 3}",  # 1 where i % 3 == 0, the services with a port
        "      placement:",
        f"        constraints: [node.labels.zone == {zone}]",
        "      resources:",
        "        limits: { cpus: \"0.25\", memory: 128m }",
        "        reservations: { cpus: \"0.05\", memory: 32m }",
    ]
    if i % 3 == 0:
        # Only single replicas publish a port: the zone constraint pins a service to one
        # host, where two replicas could not both bind it.
        lines += ["    ports:", f"      - \"{10000 + i}:80\""]
    if i > 0:
        lines += ["    depends_on:", f"      - svc-{i - 1}"]
    if i % 5 == 0:
        lines += ["    x-routes:", f"      - host: svc-{i}.example.test",
                  "        path_prefix: /", "        port: 80"]
    return "\n".join(lines) + "\n"


def app(n):
    return ("services:\n" + "".join(service(i, n) for i in range(n))
            + "volumes:\n" + "".join(f"  data-{i}: {{}}\n" for i in range(20))
            + "configs:\n  cfg:\n    file: ./config.json\n")


for target in (100_000, 180_000, 250_000):
    n = 1
    while len(app(n + 1)) < target and len(app(n + 1)) < BODY:
        n += 1
    seed(f"big-app-{n}-services", APP, app(n))


def fleet(n):
    hosts = "".join(
        f"  host-{i}:\n    endpoint: tcp://10.{i // 250}.{i % 250}.2:2375\n"
        f"    labels: {{ zone: z{i % 3}, rack: r{i % 17} }}\n"
        f"    capacity: {{ cpus: 4, memory: 8g }}\n" for i in range(n))
    variables = "".join(f"  VAR_{i}: value-{i}\n" for i in range(n))
    return "hosts:\n" + hosts + "settings:\n  name: big\n  observe_timeout: 5s\nvariables:\n" \
        + "  WEB_TAG: \"1\"\n" + variables


n = 1
while len(fleet(n + 1)) < 200_000:
    n += 1
seed(f"big-fleet-{n}-hosts", FLEET, fleet(n))

total = sum(size for _, size in written)
largest = max(written, key=lambda w: w[1])
print(f"fuzz-seeds: {len(written)} seeds, {total} bytes in {out}; "
      f"largest {largest[0]} ({largest[1]} bytes)")
EOF
