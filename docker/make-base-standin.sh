#!/usr/bin/env bash
# Make a local stand-in for the Dockerfile's base image (python:3.11-slim-bookworm) where base images cannot be
# pulled: Debian bookworm with Debian's Python 3.11 and pip, built by mmdebstrap from this host's apt sources and
# imported under the official image's name. Like the official image: `python`/`pip` on the PATH, pip may install
# into the system Python, no libgomp1 (so a build that needs it must install it, as ours does).
set -euo pipefail
NAME="${1:-docker.io/library/python:3.11-slim-bookworm}"
if podman image exists "${NAME}"; then
    echo "make-base-standin: ${NAME} exists"
    exit 0
fi
# The host's own apt sources (a deb822 file or sources.list), so no mirror is named here.
SOURCES="${APT_SOURCES:-}"
if [[ -z "${SOURCES}" ]]; then
    for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [[ -s "${candidate}" ]]; then SOURCES="${candidate}"; break; fi
    done
fi
[[ -n "${SOURCES}" ]] || { echo "make-base-standin: no apt sources found (set APT_SOURCES)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
mmdebstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    --customize-hook='ln -sf /usr/bin/python3 "$1"/usr/local/bin/python' \
    --customize-hook='ln -sf /usr/bin/pip3 "$1"/usr/local/bin/pip' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "${work}/base.tar" "${SOURCES}"
podman import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "${work}/base.tar" "${NAME}"
echo "make-base-standin: imported ${NAME}"
