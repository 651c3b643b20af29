#!/usr/bin/env bash
# Set-up and demo in one command: install nrt-alerts, generate the embedded demo, fit, fast-forward, serve.
# Extra arguments go to `nrt-alerts demo` (e.g. --port 8080, --size 512, --no-serve).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
exec nrt-alerts demo "$@"
