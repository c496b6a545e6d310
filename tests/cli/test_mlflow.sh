#!/usr/bin/env bash
# dsk-eval --mlflow against a real MLflow tracking server from PyPI
# (tests/cli/mlflow_server.sh installs and starts it): the client's live
# unit test, then what dsk-eval logs, read back over MLflow's REST API.
# Skipped, with the reason, when MLflow cannot be installed (no PyPI);
# run in the release build only (the server takes half a minute to start).
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(dirname "$DSK_BIN")
if [ -n "${DSK_SAN:-}" ]; then
    echo "ok 1 # SKIP the live MLflow test runs with the release build"; echo "1..1"; exit 0
fi
uri=$(BUILD="$build" "$root/tests/cli/mlflow_server.sh" "$T/pid" 2>"$T/server.err"); rc=$?
if [ "$rc" -eq 77 ]; then
    echo "ok 1 # SKIP $(tail -1 "$T/server.err")"; echo "1..1"; exit 0
fi
trap 'kill "$(cat "$T/pid" 2>/dev/null)" 2>/dev/null; sleep 1; rm -rf "$T"' EXIT
check "an MLflow server starts" test "$rc" -eq 0
[ "$rc" -eq 0 ] || { cat "$T/server.err"; echo "1..$tap_n"; exit 1; }
check "the client's live test passes" env DSK_MLFLOW_URI="$uri" "$build/tests/test_mlflow"

python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(1)
w = "a b c d e f".split()
with open(f"{t}/docs.jsonl", "w") as f:
    for i in range(100):
        f.write(json.dumps({"text": " ".join(random.choice(w) for _ in range(20)), "split": "val" if i % 5 == 0 else "train"}) + "\n")
PY
dsk-bpe train --vocab-size 270 -o "$T/tok.json" "$T/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tok.json" -o "$T/docs.dskt" "$T/docs.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/ds" --seq-len 32 "$T/docs.dskt"
dsk-train -q -j 2 --config nano --data "$T/ds" --out "$T/ck" -b 4 --steps 5 --eval-every 0

expect_exit 0 "ppl logged to MLflow" dsk-eval ppl "$T/ck" --data "$T/ds" --mlflow "$uri" --experiment dsk-cli-test \
    --run-name ppl-run --json
cp "$T/out" "$T/ppl.json"
ln -s ds "$T/dsé"   # a task name with a character MLflow keys refuse
expect_exit 0 "ab logged to MLflow" dsk-eval ab "$T/ck" "$T/ck" "$T/dsé" --mlflow "$uri" --experiment dsk-cli-test \
    --run-name ab-run --resamples 200
python3 "$(dirname "$0")/mlflow_runs.py" "$uri" dsk-cli-test > "$T/runs.json"
check "the server holds both runs, finished, with the parameters and metrics dsk-eval reported" \
    python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
runs = json.load(open(f"{t}/runs.json"))
assert set(runs) == {"ppl-run", "ab-run"}, runs.keys()
ppl = json.load(open(f"{t}/ppl.json"))
r = runs["ppl-run"]
assert r["info"]["status"] == "FINISHED", r["info"]
metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
params = {p["key"]: p["value"] for p in r["data"]["params"]}
assert abs(metrics["loss"] - ppl["loss"]) < 1e-9 and abs(metrics["ppl"] - ppl["ppl"]) < 1e-6 * ppl["ppl"], metrics
assert params["command"] == "ppl" and params["split"] == "val" and params["checkpoint"] == ppl["checkpoint"], params
ab = {m["key"]: m["value"] for m in runs["ab-run"]["data"]["metrics"]}
key = [k for k in ab if k.endswith("/loss/p")]
assert key == ["ds_/loss/p"], key  # one '_' for the two bytes of the e-acute
assert key and ab[key[0]] == 1.0 and ab[key[0][:-1] + "diff"] == 0, ab
PY
mkdir -p "$T/x" "$T/y" && ln -s ../ds "$T/x/ds" && ln -s ../ds "$T/y/ds"
expect_exit 0 "ab of two tasks of one file name logged" dsk-eval ab "$T/ck" "$T/ck" "$T/x/ds" "$T/y/ds" \
    --mlflow "$uri" --experiment dsk-cli-test --run-name ab-two --resamples 200
python3 "$(dirname "$0")/mlflow_runs.py" "$uri" dsk-cli-test > "$T/runs.json"
check "... under their paths, not one name for both" python3 - "$T" <<'PY'
import json, sys
runs = json.load(open(f"{sys.argv[1]}/runs.json"))
keys = sorted(m["key"] for m in runs["ab-two"]["data"]["metrics"] if m["key"].endswith("/loss/p"))
assert len(keys) == 2 and keys[0].endswith("/x/ds/loss/p") and keys[1].endswith("/y/ds/loss/p"), keys
assert not keys[0].startswith("/"), keys
PY
expect_exit 69 "an unreachable server" dsk-eval ppl "$T/ck" --data "$T/ds" --mlflow http://127.0.0.1:9 \
    --log "$T/log.jsonl"
expect_err_contains "http://127.0.0.1:9" "the message names the server"
check "the --log line is written before the server is tried" grep -q '"command":"ppl"' "$T/log.jsonl"
expect_exit 64 "a URI that is not http(s)" dsk-eval ppl "$T/ck" --data "$T/ds" --mlflow ftp://x --log "$T/bad.jsonl"
check "... is refused before the evaluation: no result, no log line" test ! -s "$T/out" -a ! -e "$T/bad.jsonl"
echo "1..$tap_n"
