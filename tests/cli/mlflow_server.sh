#!/usr/bin/env bash
# Starts a throwaway MLflow tracking server for the live test of the MLflow
# client (lib/eval/mlflow.c), prints its URI on stdout and leaves it
# running; PIDFILE gets the pid to kill, which stops the server and removes
# its data.  Run the test against it with:
#
#   uri=$(tests/cli/mlflow_server.sh /tmp/pid) && DSK_MLFLOW_URI=$uri build/tests/test_mlflow
#   kill $(cat /tmp/pid)
#
# The server is MLflow from PyPI in a private venv, $BUILD/mlflow-venv
# (made once, reused after): mlflow-skinny plus what `mlflow server` needs
# with a SQLite store, not the full `mlflow` package, whose pandas, pyarrow,
# scipy, scikit-learn and matplotlib make an install of about 850 MB.
# Without python3-venv or PyPI (or with DSK_OFFLINE set) it prints
# "skip: mlflow unavailable (why)" and exits 77; a server that is installed
# but does not come up is a failure (exit 1, its log on stderr).
#
#   mlflow_server.sh PIDFILE
#   environment: BUILD (default build), DSK_MLFLOW_START_TIMEOUT (seconds, default 180)
set -u
pidfile=${1:?usage: mlflow_server.sh PIDFILE}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
venv=$build/mlflow-venv
timeout=${DSK_MLFLOW_START_TIMEOUT:-180}

# Pinned, so every run gets the server this was tested with.  The server
# imports pandas and aiohttp at start even with a SQLite store.
pkgs="mlflow-skinny==3.17.2 Flask==3.1.3 flask-cors==6.0.5 alembic==1.20.1 SQLAlchemy==2.1.9 aiohttp==3.14.5 pandas==3.1.1"

skip() { echo "skip: mlflow unavailable ($1)"; exit 77; }

[ -n "${DSK_OFFLINE:-}" ] && skip "DSK_OFFLINE is set"

# ---- the venv: reused while its stamp matches the pins ----
if [ "$(cat "$venv/.dsk-pkgs" 2>/dev/null)" != "$pkgs" ] || [ ! -x "$venv/bin/mlflow" ]; then
    log=$(mktemp)
    rm -rf "$venv"
    python3 -m venv "$venv" >"$log" 2>&1 || { rm -rf "$venv"; skip "python3 -m venv failed: $(tail -n 1 "$log")"; }
    start=$SECONDS
    # shellcheck disable=SC2086  # $pkgs is a list
    if ! "$venv/bin/pip" install --disable-pip-version-check -q $pkgs >"$log" 2>&1; then
        why=$(grep -m1 -E 'ERROR|Error' "$log" || tail -n 1 "$log")
        rm -rf "$venv" "$log"
        skip "pip install failed: $why"
    fi
    echo "mlflow_server.sh: installed MLflow into $venv in $((SECONDS - start)) s" >&2
    echo "$pkgs" >"$venv/.dsk-pkgs"
    rm -f "$log"
fi
py=$venv/bin/python

# ---- a free port, and a data directory that goes with the server ----
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
    { echo "mlflow_server.sh: no free port" >&2; exit 1; }
data=$(mktemp -d "${TMPDIR:-/tmp}/dsk-mlflow.XXXXXX")
uri=http://127.0.0.1:$port

# The pid in PIDFILE is a small supervisor: mlflow server runs uvicorn as a
# child, which outlives a plain kill of mlflow, so the supervisor starts it
# in its own session and on TERM/INT/HUP stops that whole group, then
# removes the data.  One worker is plenty for a test and starts fastest;
# job execution (it needs huey) and telemetry (network) are off.
(
    # shellcheck disable=SC2317  # reached through the trap
    stop() {
        [ -n "${pgid:-}" ] && kill -TERM -- "-$pgid" 2>/dev/null
        wait "$spid" 2>/dev/null
        rm -rf "$data"
        exit 0
    }
    trap stop TERM INT HUP
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
        setsid "$venv/bin/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
        --backend-store-uri "sqlite:///$data/mlflow.db" --default-artifact-root "$data/artifacts" \
        >"$data/server.log" 2>&1 &
    spid=$!
    sleep 0.2
    pgid=$(ps -o pgid= -p "$spid" | tr -d ' ')
    wait "$spid"
    rm -rf "$data"
) </dev/null >/dev/null 2>&1 &
sup=$!
echo "$sup" >"$pidfile"

# ---- wait for /health (the venv's Python: curl may not be installed) ----
start=$SECONDS
if ! "$py" - "$uri/health" "$sup" "$timeout" <<'EOF'; then
import os, sys, time, urllib.request
url, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the server exited")
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.25)
sys.exit(f"no answer from {url} in {limit:.0f} s")
EOF
    echo "mlflow_server.sh: the MLflow server did not start; its log:" >&2
    tail -n 30 "$data/server.log" >&2 2>/dev/null
    kill "$sup" 2>/dev/null
    exit 1
fi
echo "mlflow_server.sh: $uri up in $((SECONDS - start)) s (pid $sup in $pidfile)" >&2
echo "$uri"
