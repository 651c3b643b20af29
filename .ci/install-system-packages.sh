#!/usr/bin/env bash
# Install the Debian 12 system packages the test suite needs. Run as root; safe to re-run.
#
# PostgreSQL + PostGIS back the throw-away stac-fastapi-pgstac server that tests/stac_api.py
# starts on 127.0.0.1 with its own cluster in a temporary directory; the Debian
# "postgresql" service and its 15/main cluster are never used.
set -euo pipefail

# ---------------------------------------------------------------------------
# System packages. Add more here (e.g. chromium chromium-driver for browser tests).
PACKAGES=(
    postgresql-15
    postgresql-15-postgis-3
    chromium  # headless browser for tests/test_web_map.py
    python3-qgis  # QGIS 3.22 headless for tests/test_wms_qgis.py (with qgis-providers: the WMS provider)
    qgis-providers
    gdal-bin  # gdal_translate -expand rgba in tests/test_published_colours.py
)
# ---------------------------------------------------------------------------

if [[ ${EUID} -ne 0 ]]; then
    echo "install-system-packages: must run as root" >&2
    exit 1
fi

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if is_installed "${pkg}"; then
        echo "install-system-packages: ${pkg} already installed"
    else
        missing+=("${pkg}")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system-packages: nothing to do"
    exit 0
fi

# Tests start their own cluster, so stop the postgresql-common postinst from creating
# (and, where an init system runs, starting) the default 15/main cluster on first install.
# The drop-in is read through the include_dir at the end of createcluster.conf.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = off" > /etc/postgresql-common/createcluster.d/nrt-alerts-tests.conf
echo "install-system-packages: disabled creation of the default PostgreSQL cluster"

# A fresh machine often runs unattended upgrades: wait for another apt/dpkg to let go of its locks (up to
# APT_LOCK_WAIT seconds) instead of failing at once. DPkg::Lock::Timeout covers dpkg's lock; the retry loop covers
# the package lists' lock of `apt-get update`, which that option does not.
APT_LOCK_WAIT="${APT_LOCK_WAIT:-600}"
apt_with_wait() {
    local deadline=$((SECONDS + APT_LOCK_WAIT)) log
    log=$(mktemp)
    until DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="${APT_LOCK_WAIT}" "$@" 2>"${log}"; do
        if grep -q -e "Could not get lock" -e "Unable to acquire" -e "is held by process" "${log}" \
            && ((SECONDS < deadline)); then
            echo "install-system-packages: another apt holds its lock; waiting ($((deadline - SECONDS)) s left)"
            sleep 5
            continue
        fi
        cat "${log}" >&2
        rm -f "${log}"
        return 1
    done
    cat "${log}" >&2
    rm -f "${log}"
}

echo "install-system-packages: apt-get update"
apt_with_wait update -qq
echo "install-system-packages: installing ${missing[*]}"
apt_with_wait install -y -qq --no-install-recommends "${missing[@]}"
echo "install-system-packages: done"
