#!/usr/bin/env bash
# The README's test command: install what is missing, then run the whole test suite.
# FACES_DIR (default ../shared/faces) holds the labelled test faces; tests that need it skip
# without it, and with FACE_REQUIRE_DATA=1 (set by .ci/run) such a skip fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
export FACES_DIR=${FACES_DIR:-$(cd .. && pwd)/shared/faces}
exec .venv/bin/python -m pytest "$@"
