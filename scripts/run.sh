#!/usr/bin/env bash
# The README's run command: install what is missing, start the API and the site on localhost,
# print both URLs, and stop both on Ctrl-C.
#   FACE_HOST/FACE_PORT (API, default 127.0.0.1:8000), WEB_HOST/WEB_PORT (site, 127.0.0.1:5000);
#   every other FACE_* / WEB_* setting is passed through (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

export FACE_HOST=${FACE_HOST:-127.0.0.1} FACE_PORT=${FACE_PORT:-8000}
export WEB_HOST=${WEB_HOST:-127.0.0.1} WEB_PORT=${WEB_PORT:-5000}
export FACE_API_URL=${FACE_API_URL:-http://$FACE_HOST:$FACE_PORT}
api_url=$FACE_API_URL
web_url=http://$WEB_HOST:$WEB_PORT
PY=.venv/bin/python

api_pid= web_pid=
stop() {
  trap - INT TERM EXIT
  echo "stopping the API and the site"
  # Background jobs of a script ignore SIGINT, so TERM it is; both servers exit cleanly on TERM.
  for pid in $web_pid $api_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  wait $web_pid $api_pid 2>/dev/null || true
  exit "${1:-0}"
}
trap 'stop 130' INT
trap 'stop 143' TERM
trap 'stop $?' EXIT

"$PY" -m inference_service & api_pid=$!
"$PY" -m web_frontend & web_pid=$!

# Wait until both answer (the API loads its models first: seconds, longer on a first download).
wait_for() {  # URL PID NAME
  local tries=0
  until "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; do
    if ! kill -0 "$2" 2>/dev/null; then echo "the $3 exited before it answered at $1" >&2; stop 1; fi
    tries=$((tries + 1))
    if [ "$tries" -gt 600 ]; then echo "the $3 did not answer at $1 within 5 minutes" >&2; stop 1; fi
    sleep 0.5
  done
}
wait_for "$api_url/health" "$api_pid" "API"
wait_for "$web_url/health" "$web_pid" "site"

echo
echo "  Site: $web_url"
echo "  API:  $api_url  (docs at $api_url/docs)"
echo "  Press Ctrl-C to stop both."
echo

# Either one exiting on its own stops the other.
set +e
wait -n "$api_pid" "$web_pid"
status=$?
echo "a server exited (status $status)" >&2
stop "$status"
