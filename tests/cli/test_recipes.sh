#!/usr/bin/env bash
# The GPU recipes (pipelines/recipes) run for real at the nano size on the
# CPU: the same recipe.mk every preset uses, with RAW/DOMAIN shards made
# here, one process (LAUNCH empty) and the cpu backend.  Every stage's file
# appears, a second make does nothing, and `plan` prints the numbers for
# each real preset.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
recipes=$root/pipelines/recipes

python3 - "$T" <<'PY'
import json, os, random, subprocess, sys
t = sys.argv[1]
random.seed(5)
words = "the cat dog sun moon tree river stone bird fish red green blue old new small big".split()
def doc(n): return " ".join(random.choice(words) for _ in range(n)).capitalize() + "."
for d, shards in (("raw", 3), ("domain", 1)):
    os.makedirs(f"{t}/{d}")
    for s in range(shards):
        lines = "".join(json.dumps({"text": doc(random.randint(20, 60)) + " " + doc(20)}) + "\n" for _ in range(150))
        subprocess.run(["zstd", "-q", "-o", f"{t}/{d}/part-{s:03d}.jsonl.zst"], input=lines.encode(), check=True)
with open(f"{t}/sft.jsonl", "w") as f, open(f"{t}/pref.jsonl", "w") as g:
    for i in range(200):
        w = random.choice(words)
        f.write(json.dumps({"messages": [{"role": "user", "content": f"say {w}"},
                                         {"role": "assistant", "content": w}]}) + "\n")
        g.write(json.dumps({"prompt": f"say {w}", "chosen": w, "rejected": random.choice(words)}) + "\n")
with open(f"{t}/task.jsonl", "w") as f:
    for i in range(20):
        f.write(json.dumps({"context": "The cat", "choices": [" dog", " sun"], "gold": i % 2}) + "\n")
PY
vars=(NAME=test PRESET=nano VOCAB=300 SEQ=64 GPUS=1 MICRO_BATCH=8 ACCUM=1 ZERO=0 TOKENS=20K LR=3e-3
      MIN_LR=3e-4 WARMUP=5 ADAPT_TOKENS=5K ADAPT_LR=1e-3 SFT_BATCH=8 SFT_EPOCHS=1 SFT_LR=1e-3 DPO_LR=1e-4
      LAUNCH= BACKEND=cpu THREADS=2 QUANT_GROUP=32 TOKENIZER_SHARDS=2 REPLAY_SHARDS=1 "CLEAN_OPTS=--filters none --dedup exact --split 90:5:5 -q"
      BIN="$DSK_BIN/" RAW="$T/raw" DOMAIN="$T/domain" SFT_DATA="$T/sft.jsonl" PREF_DATA="$T/pref.jsonl"
      EVAL_TASKS="$T/task.jsonl" WORK="$T/work")
if command -v zstd >/dev/null; then
    run_cmd make -f "$recipes/recipe.mk" "${vars[@]}" -j2 all
    if [ "$rc" -eq 0 ]; then ok "recipe.mk runs every stage at the nano size"
    else not_ok "recipe.mk runs every stage at the nano size" "status $rc" "$(tail -20 "$T/err")"; fi
    check "each stage left its output" test -s "$T/work/tokenizer.json" -a -s "$T/work/data/MANIFEST" \
        -a -e "$T/work/pretrain/DONE" -a -e "$T/work/adapt/DONE" -a -e "$T/work/sft/DONE" -a -e "$T/work/dpo/DONE" \
        -a -s "$T/work/dpo-gptq/config.json" -a -s "$T/work/k8s/dsk-serve.yaml"
    check "lineage: pretrain -> continue -> sft -> dpo -> quantize" python3 -c '
import json, sys
s = json.load(open(sys.argv[1] + "/dpo-gptq/state.json"))
stages = [e["stage"] for e in s["lineage"]]
assert stages == ["pretrain", "continue", "sft", "dpo", "quantize"], stages' "$T/work"
    check "eval.jsonl has perplexity on both corpora, the task and an A/B test for each model" python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/eval.jsonl")]
cmds = [r["command"] for r in rows]
assert cmds.count("ppl") == 10 and cmds.count("mc") == 5 and cmds.count("ab") == 1, cmds' "$T/work"
    run_cmd make -f "$recipes/recipe.mk" "${vars[@]}" -q all
    check "a second make has nothing to do" test "$rc" -eq 0
else
    echo "ok $((tap_n += 1)) # SKIP zstd is not installed"
fi
for m in 125m 1.3b 7b; do
    run_cmd make -s -f "$recipes/$m.mk" BIN="$DSK_BIN/" WORK="$T/plan-$m" plan
    if [ "$rc" -eq 0 ] && grep -q "GPU-hours" "$T/out" && grep -q "ZeRO" "$T/out"; then ok "$m.mk plan prints steps, GPU-hours and memory per GPU"
    else not_ok "$m.mk plan" "status $rc" "$(head -c 600 "$T/err")" "$(head -c 600 "$T/out")"; fi
done
for f in "$recipes"/slurm/*.sbatch; do
    check "$(basename "$f") parses" bash -n "$f"
done
echo "1..$tap_n"
