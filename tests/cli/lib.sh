# Helpers for CLI tests: each check prints a TAP line.
# DSK_BIN points at the tools under test; T is a scratch directory.
set -u
: "${DSK_BIN:?DSK_BIN must point at the built tools}"
export PATH="$DSK_BIN:$PATH"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
tap_n=0

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $1"; }
not_ok() {
    tap_n=$((tap_n + 1)); echo "not ok $tap_n - $1"; shift
    for line in "$@"; do printf '#   %s\n' "$line"; done
}

# check NAME COMMAND...: passes when the command succeeds
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name" "failed: $*"; fi
}

# run_cmd COMMAND...: runs, keeping stdout in $T/out, stderr in $T/err, status in $rc
run_cmd() { "$@" >"$T/out" 2>"$T/err"; rc=$?; }

# expect_exit CODE NAME COMMAND...
expect_exit() {
    local want=$1 name=$2; shift 2
    run_cmd "$@"
    if [ "$rc" -eq "$want" ]; then ok "$name"
    else not_ok "$name" "exit status $rc, want $want" "stderr: $(head -c 400 "$T/err")"; fi
}

# expect_err_contains TEXT NAME: the last command's stderr contains TEXT
expect_err_contains() {
    if grep -qF -- "$1" "$T/err"; then ok "$2"
    else not_ok "$2" "stderr lacks '$1'" "stderr: $(head -c 400 "$T/err")"; fi
}

# jq-free JSON field check through python3 (always present where tests run)
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }
