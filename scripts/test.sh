#!/usr/bin/env bash
# Set-up and tests in one command: system packages (PostgreSQL + PostGIS for the real STAC API), the
# Python package with its test extras, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash .ci/install-system-packages.sh
else
  echo "not root: skipping system packages (PostgreSQL + PostGIS must already be installed)"
fi
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
ruff check .
exec python3 -m pytest "$@"
