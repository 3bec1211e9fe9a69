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
# Lint and types first: seconds, and a failure here is cheaper to read than a test run.
python -m ruff check src/
python -m mypy
# The newest supported Optuna, then the lowest: tuneops reaches into Optuna only through
# src/tuneops/_optuna.py, and both ends of the pin must pass the whole suite.
python -m pip install -q --upgrade "optuna>=5,<6"
echo "== tests on Optuna $(python -c 'import optuna; print(optuna.__version__)')"
python -m pytest -n 2 "$@"

if [ -z "${TUNEOPS_SKIP_LOWEST:-}" ]; then
  lowest="$(mktemp -d)"
  trap 'rm -rf "$lowest"' EXIT
  python -m venv --system-site-packages "$lowest/venv"
  "$lowest/venv/bin/python" -m pip install -q "optuna==5.0.0"
  echo "== tests on Optuna $("$lowest/venv/bin/python" -c 'import optuna; print(optuna.__version__)')"
  "$lowest/venv/bin/python" -m pytest -n 2 -q "$@"
fi
