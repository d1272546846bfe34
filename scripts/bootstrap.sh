#!/usr/bin/env bash
# Make .venv (Python 3.11) with the project installed from pyproject.toml; quick when already done.
#   bash scripts/bootstrap.sh        the runtime only (scripts/run.sh)
#   bash scripts/bootstrap.sh test   the runtime and the test tools (scripts/test.sh)
# A stamp per extra holds the hash of pyproject.toml it was installed from, so a changed
# pyproject.toml reinstalls, and a venv installed for the tests serves run.sh as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
stamp_of() { echo ".venv/.installed-${1:-runtime}.sha256"; }
installed() { [ "$(cat "$(stamp_of "$1")" 2>/dev/null)" = "$want" ]; }
if installed "$extra" || { [ -z "$extra" ] && installed test; }; then
  exit 0
fi
echo "installing the project${extra:+ with its $extra tools} into .venv (torch is large: a few minutes the first time)"
.venv/bin/python -m pip install -q -e ".${extra:+[$extra]}"
echo "$want" > "$(stamp_of "$extra")"
