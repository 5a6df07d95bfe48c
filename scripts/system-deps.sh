#!/usr/bin/env bash
# Installs what the tests need from Debian's packages: a PostgreSQL server (package `postgresql`)
# and Chromium (package `chromium`; never a downloaded browser).
# Idempotent and quiet: does nothing when both are already there. Runs apt-get as root, or
# through sudo for a normal user.
set -euo pipefail

need=()
[[ -x /usr/bin/chromium ]] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)

((${#need[@]})) || exit 0

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "system-deps: need ${need[*]} from apt, but not root and no sudo; install them and rerun" >&2
    exit 1
  }
  SUDO=(sudo)
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "system-deps: no apt-get here; install ${need[*]} (PostgreSQL server, Chromium) yourself" >&2
  exit 1
}

if [[ " ${need[*]} " == *" postgresql "* && ! -e /etc/postgresql-common/createcluster.d/monday-notify.conf ]]; then
  # The tests run their own throw-away server (scripts/pg-local.sh); the package's default
  # cluster on port 5432 is not needed, so the package is told not to create one.
  "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/monday-notify.conf >/dev/null
fi

echo "system-deps: installing from Debian: ${need[*]}" >&2
# Another apt run (unattended-upgrades, a parallel job) may hold the lock: wait for it.
apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=600)
"${apt[@]}" update >/dev/null || { sleep 5 && "${apt[@]}" update >/dev/null; }
"${apt[@]}" install -y --no-install-recommends "${need[@]}" >/dev/null

[[ -x /usr/bin/chromium ]] || { echo "system-deps: chromium did not install" >&2; exit 1; }
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || {
  echo "system-deps: the PostgreSQL server did not install" >&2
  exit 1
}
