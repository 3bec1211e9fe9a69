#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# Servers: redis-server and Chromium come from Debian's packages; PostgreSQL 15 binaries are
# expected on the image (/usr/lib/postgresql/15/bin) and the tests start them as `postgres`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# PMLB datasets: the tests read the few they need from tests/data/pmlb (tests/conftest.py sets
# TUNEOPS_PMLB_DIR there when it is unset), so nothing outside the clone is needed.

python -m pip install -q -e ".[test]"
python -m pytest -n 2 "$@"
