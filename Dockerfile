# nrt-alerts server image: `nrt-alerts serve` on port 8000, config and outputs under /data.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NRT_ALERTS_CONFIG=/data/nrt-alerts.toml \
    # numba caches compiled kernels (nrt's and ours) here, filled at build time below
    NUMBA_CACHE_DIR=/home/nrt/.cache/numba

WORKDIR /app
COPY pyproject.toml README.md ./
COPY catalog catalog
COPY scheduler scheduler
COPY server server
RUN pip install . \
    && useradd --create-home --uid 1000 nrt \
    && mkdir -p /data \
    && chown nrt:nrt /data

USER nrt
# Compile numba's kernels once into the image: a fresh container would otherwise spend 10-30 s compiling them in
# its first fit or update (a tiny demo fit and fast-forward runs every kernel the default monitor uses).
RUN nrt-alerts demo --no-serve --size 64 --dir /tmp/warm-up && rm -rf /tmp/warm-up
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["nrt-alerts", "serve", "--host", "0.0.0.0", "--port", "8000"]
