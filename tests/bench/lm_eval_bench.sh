#!/usr/bin/env bash
# dsk-serve under lm-evaluation-harness: its local-completions model
# (token-id prompts, several a request, echo with max_tokens 0 and logprobs)
# scores a multiple-choice task through dsk-serve; dsk-eval mc scores the
# same items in process.  The two log-likelihoods must agree choice by
# choice, and the accuracies exactly.  Uses the model quant_bench.sh
# trained, and multiple-choice items cut from its held-out text (the next
# word against three words drawn from the text).
#   lm_eval_bench.sh BIN OUT   -> OUT/lmeval-results.json
# lm-eval needs PyTorch to import: the venv sees Debian's python3-torch
# (/usr/bin/python3 --system-site-packages); without it the section is skipped.
set -euo pipefail
BIN=$1 out=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
q=$out/quant
res=$out/lmeval-results.json
venv=$out/lmeval-venv
skip() { echo "lm-eval: skipped, $1"; echo "{\"skipped\":\"$1\"}" > "$res"; exit 0; }
[ -e "$q/ckpt/latest/model.safetensors" ] || skip "no bench model (quant_bench.sh makes it)"
/usr/bin/python3 -c 'import torch' 2>/dev/null || skip "python3-torch is not installed (lm-eval imports torch)"
if [ ! -x "$venv/bin/lm_eval" ]; then
    echo "bench: installing lm-evaluation-harness into $venv" >&2
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q "lm-eval[api]" transformers >&2 || skip "pip could not install lm-eval"
fi
work=$out/lmeval
rm -rf "$work"
mkdir -p "$work/task"
python3 - "$q/heldout.txt" "$work/task/items.jsonl" <<'PY'
import json, random, sys
random.seed(1)
text = open(sys.argv[1], encoding="utf-8").read()
lines = [l.split() for l in text.splitlines() if len(l.split()) >= 8]
words = [w for l in lines for w in l if w.isalpha()]
with open(sys.argv[2], "w") as f:
    for l in lines[:300]:
        k = random.randint(3, len(l) - 2)
        true = " " + l[k]
        # three other words: a choice twice over would tie, and the two
        # sides' last bits would pick differently between the twins
        choices = [true]
        while len(choices) < 4:
            w = " " + random.choice(words)
            choices += [w] if w not in choices else []
        random.shuffle(choices)
        f.write(json.dumps({"context": " ".join(l[:k]), "choices": choices, "gold": choices.index(true)}) + "\n")
PY
items=$(wc -l < "$work/task/items.jsonl")
cat > "$work/task/dsk_mc.yaml" <<YAML
task: dsk_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: $work/task/items.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{context}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{gold}}"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
YAML
t0=$(date +%s.%N)
"$BIN/dsk-eval" mc "$q/ckpt" "$work/task/items.jsonl" --items "$work/dsk-items.jsonl" --json > "$work/dsk.json"
t1=$(date +%s.%N)
port=18397
"$BIN/dsk-serve" "$q/ckpt" --port $port --max-batch 16 2> "$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.2; done
t2=$(date +%s.%N)
HF_DATASETS_OFFLINE=1 "$venv/bin/lm_eval" --model local-completions \
    --model_args "model=dsk,base_url=http://127.0.0.1:$port/v1/completions,tokenizer_backend=huggingface,tokenizer=$q/ckpt/latest,num_concurrent=4,max_retries=1" \
    --batch_size 16 --include_path "$work/task" --tasks dsk_mc --output_path "$work/out" --log_samples \
    > "$work/lm_eval.log" 2>&1 || { tail -20 "$work/lm_eval.log" >&2; skip "lm_eval failed (see $work/lm_eval.log)"; }
t3=$(date +%s.%N)
python3 - "$work" "$items" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t3 - $t2" | bc -l)" "$res" \
    "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("lm_eval"))')" <<'PY'
import glob, json, sys
work, items, t_dsk, t_lm, res, version = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
dsk = json.load(open(f"{work}/dsk.json"))
mine = [json.loads(l)["loglikelihoods"] for l in open(f"{work}/dsk-items.jsonl")]
samples = sorted((json.loads(l) for l in open(glob.glob(f"{work}/out/*/samples_dsk_mc_*.jsonl")[0])),
                 key=lambda d: d["doc_id"])
theirs = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
diff = max(abs(a - b) for x, y in zip(mine, theirs) for a, b in zip(x, y))
acc = sum(s["acc"] for s in samples) / len(samples)
acc_norm = sum(s["acc_norm"] for s in samples) / len(samples)
out = {"items": items, "lm_eval_version": version, "max_abs_loglik_diff": diff, "dsk_eval_acc": dsk["acc"],
       "dsk_eval_acc_norm": dsk["acc_norm"], "lm_eval_acc": acc, "lm_eval_acc_norm": acc_norm,
       "dsk_eval_seconds": t_dsk, "lm_eval_seconds": t_lm, "same": len(samples) == items and len(mine) == items}
json.dump(out, open(res, "w"))
print(f"lm-evaluation-harness {version} (local-completions, 16 prompts a request, 4 at a time) through dsk-serve, "
      f"against dsk-eval mc, {items} items of 4 choices:")
print(f"  max |log-likelihood difference| {diff:.2e}; acc {acc:.4f} vs {dsk['acc']:.4f}, "
      f"acc_norm {acc_norm:.4f} vs {dsk['acc_norm']:.4f}; {t_lm:.1f} s over HTTP, {t_dsk:.1f} s in process")
PY
