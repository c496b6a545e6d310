#!/usr/bin/env bash
# dsk-serve: batch-1 decode against llama.cpp on the same model, 32
# concurrent streams, time to first token, short-request QPS.  Uses the
# model quant_bench.sh trained (all-global tiny) in its GPTQ int4 form, and
# llama.cpp's Q4_K_M of it.
#   serve_bench.sh BIN OUT   -> OUT/serve-results.json
set -euo pipefail
BIN=$1 out=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
q=$out/quant
venv=$out/llama-venv
port=18399
"$BIN/dsk-serve" "$q/gptq" --port $port --max-batch 32 --max-queue 256 --max-rows 64 2> "$out/serve-bench.log" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
# A second server, with speculative decoding (prompt lookup), for its rows,
# and compact JSON for the structured record (jump-forward decoding takes
# the bytes between its choices whole).
"$BIN/dsk-serve" "$q/gptq" --port $((port + 1)) --speculate 7 --speculate-ngram 3 --json-compact \
    2> "$out/serve-bench-spec.log" &
spec_pid=$!
trap 'kill $pid $spec_pid 2>/dev/null' EXIT
for p in $port $((port + 1)); do
    for _ in $(seq 100); do curl -sf http://127.0.0.1:$p/health >/dev/null && break; sleep 0.2; done
done
"$venv/bin/python" "$root/tests/bench/serve_bench.py" http://127.0.0.1:$port --gguf "$q/q4_k_m.gguf" \
    --threads "$(nproc)" --json "$out/serve-results.json" \
    --spec-url http://127.0.0.1:$((port + 1)) --quotes "$q/heldout.txt" --spec-tokens 7 --spec-ngram 3
# JSON mode's mask on a real vocabulary (GPT-2's, made by pack_bench.sh),
# against feeding every token to the automaton alone.
mask_bench=$(dirname "$BIN")/tests/tools/json_mask_bench
if [ -x "$mask_bench" ] && [ -s "$out/gpt2.json" ]; then
    echo "JSON-mode mask, GPT-2 vocabulary (tests/tools/json_mask_bench):"
    "$mask_bench" "$out/gpt2.json" | sed 's/^/  /'
fi
