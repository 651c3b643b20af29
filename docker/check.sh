#!/usr/bin/env bash
# Build the image with buildah and run it as an operator would, where Docker itself is not available:
#   demo --no-serve, serve, /healthz 200, a tile, SIGTERM -> exit 0, as the image's user and as an arbitrary UID
#   in group 0 (OpenShift), outputs on a volume; and no numba kernel compiled again at run time.
# Needs buildah (and podman + mmdebstrap when the base image has to be stood in for: docker/make-base-standin.sh).
# Usage: bash docker/check.sh [--keep]   (IMAGE=..., BASE_IMAGE=..., PORT=... to override; REUSE_IMAGE=1 skips
# the build when the image exists)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-localhost/nrt-alerts:check}"
BASE_IMAGE="${BASE_IMAGE:-docker.io/library/python:3.11-slim-bookworm}"
PORT="${PORT:-18765}"
CA=/etc/ssl/certs/ca-certificates.crt
say() { echo "docker-check: $*"; }
fail() { echo "docker-check: FAILED: $*" >&2; exit 1; }

if ! buildah inspect --type image "${BASE_IMAGE}" >/dev/null 2>&1; then
    say "no ${BASE_IMAGE} here: making a stand-in"
    bash docker/make-base-standin.sh "${BASE_IMAGE}"
fi

ca_args=()
if [[ -s "${CA}" ]]; then  # the host's CA bundle, read-only and for the build only (pip behind a TLS proxy)
    ca_args=(-v "${CA}:${CA}:ro" --build-arg "PIP_CERT=${CA}")
fi
if [[ -n "${REUSE_IMAGE:-}" ]] && buildah inspect --type image "${IMAGE}" >/dev/null 2>&1; then
    say "reusing ${IMAGE} (REUSE_IMAGE set)"
else
    say "building ${IMAGE} on ${BASE_IMAGE}"
    start=${SECONDS}
    # --format docker: the OCI format has no HEALTHCHECK, and buildah would drop it.
    buildah bud --isolation chroot --network host --pull-never --format docker --layers=false \
        --build-arg "BASE_IMAGE=${BASE_IMAGE}" "${ca_args[@]}" -t "${IMAGE}" . >/tmp/nrt-alerts-docker-build.log 2>&1 \
        || { tail -40 /tmp/nrt-alerts-docker-build.log; fail "build (log: /tmp/nrt-alerts-docker-build.log)"; }
    say "built in $((SECONDS - start)) s"
fi

buildah inspect --type image "${IMAGE}" | python3 -c '
import json, sys
config = json.load(sys.stdin)["Docker"]["config"]
assert config.get("Healthcheck", {}).get("Test"), "no HEALTHCHECK in the image"
assert config.get("User") == "1000:0", config.get("User")
assert config.get("WorkingDir") == "/data", config.get("WorkingDir")
print("docker-check: image config ok: HEALTHCHECK, user 1000:0, workdir /data")
' || fail "image config"

volume=$(mktemp -d)
ctr=$(buildah from --pull-never "${IMAGE}")
cleanup() {
    buildah rm "${ctr}" >/dev/null 2>&1 || true
    rm -rf "${volume}"
}
[[ "${1:-}" == "--keep" ]] || trap cleanup EXIT
# A host folder as an operator prepares it for a group-0 container: owned by group 0, group-writable. It is mounted
# at /srv/nrt: `buildah run` mounts the image's own VOLUME /data over a `-v` at the same path (Docker does not).
MNT=/srv/nrt
chgrp 0 "${volume}"
chmod 2775 "${volume}"

kernels() {
    buildah run --isolation chroot "${ctr}" -- sh -c 'find "$NUMBA_CACHE_DIR" -name "*.nb[ic]" | wc -l'
}
compiled=$(kernels)
say "numba cache: ${compiled} cache files (index + code)"

run_as() {
    local user=$1 dir=$2
    say "as ${user}: demo --no-serve into ${MNT}/${dir} (a host folder)"
    buildah run --isolation chroot --network host --user "${user}" -v "${volume}:${MNT}" "${ctr}" -- \
        nrt-alerts demo --no-serve --size 64 --dir "${MNT}/${dir}" || fail "demo as ${user}"
    [[ -s "${volume}/${dir}/output/stac/catalog.json" ]] \
        || { find "${volume}" -maxdepth 3 | head -30; fail "no catalog on the volume (as ${user})"; }
    say "as ${user}: serve on 127.0.0.1:${PORT}"
    buildah run --isolation chroot --network host --user "${user}" -v "${volume}:${MNT}" "${ctr}" -- \
        nrt-alerts serve -c "${MNT}/${dir}/nrt-alerts.toml" --host 127.0.0.1 --port "${PORT}" --no-scheduler \
        >"${volume}/serve-${dir}.log" 2>&1 &
    local pid=$! ok=""
    for _ in $(seq 1 120); do
        if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:${PORT}/healthz', timeout=2)" \
            2>/dev/null; then ok=1; break; fi
        sleep 1
    done
    [[ -n "${ok}" ]] || { cat "${volume}/serve-${dir}.log"; kill "${pid}" 2>/dev/null; fail "/healthz as ${user}"; }
    python3 - "${PORT}" <<'PY' || { kill "${pid}"; fail "tile as ${user}"; }
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
tilejson = json.load(urllib.request.urlopen(f"{base}/layers/alerts/WebMercatorQuad/tilejson.json"))
west, south, east, north = tilejson["bounds"]
import math
z = tilejson["maxzoom"]
lon, lat = (west + east) / 2, (south + north) / 2
n = 2**z
x = int((lon + 180) / 360 * n)
y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
with urllib.request.urlopen(f"{base}/layers/alerts/tiles/WebMercatorQuad/{z}/{x}/{y}.png") as response:
    assert response.status == 200 and response.headers["content-type"] == "image/png", response.headers
    assert response.read(8) == b"\x89PNG\r\n\x1a\n"
print(f"docker-check: tile {z}/{x}/{y} 200 image/png")
PY
    # What `docker stop` does: SIGTERM to the server process itself (`buildah run` does not forward signals, it
    # kills its child; with chroot isolation the process is visible here).
    local inner
    inner=$(pgrep -f "python3 [^ ]*/nrt-alerts serve -c ${MNT}/${dir}/" | head -1)
    [[ -n "${inner}" ]] || { kill "${pid}"; fail "no nrt-alerts serve process found as ${user}"; }
    kill -TERM "${inner}"
    local code=0
    wait "${pid}" || code=$?
    [[ ${code} -eq 0 ]] || { cat "${volume}/serve-${dir}.log"; fail "serve exited ${code} on SIGTERM as ${user}"; }
    grep -q '"GET /healthz HTTP/1.1" 200' "${volume}/serve-${dir}.log" || fail "no access log line as ${user}"
    say "as ${user}: healthz, tile, access log, SIGTERM -> 0: ok"
}

run_as 1000:0 demo-nrt
run_as 1234:0 demo-uid1234
# The demo's default folder is relative to the working directory, the image's volume /data: writable there.
buildah run --isolation chroot --network host --user 1234:0 "${ctr}" -- \
    sh -c 'nrt-alerts demo --no-serve --size 64 && test -s /data/demo-data/output/stac/catalog.json' \
    || fail "demo without --dir (as 1234:0) did not publish into /data/demo-data"
say "demo without --dir: /data/demo-data ok"

after=$(kernels)
[[ "${after}" -eq "${compiled}" ]] || fail "numba compiled $((after - compiled)) kernel(s) again at run time"
say "numba: no kernel compiled at run time (${after} cached)"
say "all checks passed"
