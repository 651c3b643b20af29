# nrt-alerts server image: `nrt-alerts serve` on port 8000, config and outputs under /data.
# Build (Docker): docker build -t nrt-alerts .
# Build (buildah, keeps the HEALTHCHECK): buildah bud --format docker -t nrt-alerts .   (see docker/check.sh)
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# A CA bundle for pip behind a TLS-inspecting proxy, mounted read-only at build time only (never copied in):
# --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt -v /etc/ssl/certs/ca-certificates.crt:...:ro
ARG PIP_CERT=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NRT_ALERTS_CONFIG=/data/nrt-alerts.toml \
    HOME=/home/nrt \
    MPLCONFIGDIR=/home/nrt/.config/matplotlib \
    # numba's kernels (nrt's and ours) compiled at build time below. Tiles run side by side on threads, each
    # calling numba's parallel loops: only the OpenMP (libgomp1) or TBB layers allow that; the fallback
    # "workqueue" layer aborts the process. omp is installed below and required here.
    NUMBA_THREADING_LAYER=omp \
    NUMBA_CACHE_DIR=/home/nrt/.cache/numba \
    # Compiled for any x86-64 CPU, so the cache built here is used on the host that runs the image (numba keys
    # its cache by CPU model; native code for the build machine's CPU would be compiled again at the first run).
    NUMBA_CPU_NAME=generic

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY catalog catalog
COPY scheduler scheduler
COPY server server
# The user's home and /data belong to group 0 and are group-writable: the image also runs under an arbitrary
# UID in group 0 (OpenShift's `--user 1234:0`), not only as `nrt`.
RUN pip install ${PIP_CERT:+--cert "$PIP_CERT"} . \
    && useradd --create-home --uid 1000 --gid 0 nrt \
    && mkdir -p /data "$NUMBA_CACHE_DIR" "$MPLCONFIGDIR" \
    && chown -R 1000:0 /data /home/nrt \
    && chmod -R g=u /data /home/nrt

USER 1000:0
# Compile numba's kernels once into the image: a fresh container would otherwise spend 10-30 s compiling them in
# its first fit or update. Fits read a tile in row blocks (non-contiguous arrays) or whole (contiguous): a demo
# of 128 px tiles and one of 32 px tiles, fitted and fast-forwarded, compile every kernel of the default monitor
# for both layouts (docker/check.sh checks that a run compiles nothing).
RUN nrt-alerts demo --no-serve --size 256 --dir /tmp/warm-up \
    && nrt-alerts demo --no-serve --size 64 --dir /tmp/warm-up-small \
    && rm -rf /tmp/warm-up /tmp/warm-up-small \
    && chmod -R g=u "$NUMBA_CACHE_DIR"

WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["nrt-alerts", "serve", "--host", "0.0.0.0", "--port", "8000"]
