#!/usr/bin/env bash
# CLI tests for dsk-eval: perplexity agrees with dsk-train's own validation
# loss on the same rows, generation tasks are scored by exact match and
# regex, and bad input is refused.
. "$(dirname "$0")/lib.sh"

expect_exit 0 "--help" dsk-eval --help
expect_exit 0 "--version" dsk-eval --version
expect_exit 64 "no command" dsk-eval
expect_exit 64 "ppl without --data" dsk-eval ppl "$T/none"
expect_exit 66 "missing checkpoint" dsk-eval ppl "$T/none" --data "$T/none"

python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(3)
words = "red green blue one two three cat dog bird".split()
with open(f"{t}/docs.jsonl", "w") as f:
    for i in range(300):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(random.randint(3, 30))),
                            "split": "val" if i % 10 == 0 else "train"}) + "\n")
with open(f"{t}/chat.jsonl", "w") as f:
    for i in range(200):
        w = random.choice(words)
        f.write(json.dumps({"messages": [{"role": "user", "content": f"say {w}"},
                                         {"role": "assistant", "content": w}]}) + "\n")
with open(f"{t}/task.jsonl", "w") as f:
    for w in words:
        f.write(json.dumps({"prompt": f"say {w}", "answer": w}) + "\n")
    f.write(json.dumps({"messages": [{"role": "user", "content": "say cat"}], "regex": "c.t"}) + "\n")
PY
dsk-bpe train --vocab-size 300 -o "$T/tok.json" "$T/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tok.json" -o "$T/docs.dskt" "$T/docs.jsonl"
dsk-bpe encode -t "$T/tok.json" -o "$T/chat.dskt" "$T/chat.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/ds" --seq-len 32 "$T/docs.dskt"
dsk-pack -q -t "$T/tok.json" -o "$T/sft" --seq-len 32 "$T/chat.dskt"
dsk-train -q -j 2 --config nano --data "$T/ds" --out "$T/ck" -b 4 --steps 30 --lr 3e-3 --warmup 5 \
    --eval-every 0 --eval-batches 2 --log "$T/train.jsonl"

expect_exit 0 "ppl on the val split" dsk-eval ppl "$T/ck" --data "$T/ds" --rows 8 --batch 4 --json
check "ppl equals dsk-train's validation loss on the same rows" python3 - "$T" <<'PY'
import json, math, sys
t = sys.argv[1]
e = json.load(open(f"{t}/out"))
val = [json.loads(l) for l in open(f"{t}/train.jsonl") if "val_loss" in l][-1]
assert abs(e["loss"] - val["val_loss"]) < 1e-4 and abs(e["bpb"] - val["val_bpb"]) < 1e-4, (e, val)
assert abs(e["ppl"] - math.exp(e["loss"])) < 1e-3 * e["ppl"] and e["rows"] == 8 and e["tokens"] == val["val_tokens"]
PY
cp "$T/out" "$T/ppl-b4"
expect_exit 0 "ppl with another batch size (a partial last batch)" dsk-eval ppl "$T/ck/latest" --data "$T/ds" \
    --rows 8 --batch 3 --json
check "batching does not change the result" python3 -c "
import json; a, b = json.load(open('$T/out')), json.load(open('$T/ppl-b4'))
assert a['rows'] == b['rows'] == 8 and a['tokens'] == b['tokens'] and abs(a['loss'] - b['loss']) < 1e-5, (a, b)"
expect_exit 65 "ppl on data from another tokenizer" bash -c "
    dsk-bpe train --vocab-size 280 -o '$T/tok2.json' '$T/docs.jsonl' 2>/dev/null &&
    dsk-bpe encode -t '$T/tok2.json' -o '$T/d2.dskt' '$T/docs.jsonl' &&
    dsk-pack -q -t '$T/tok2.json' -o '$T/ds2' --seq-len 32 '$T/d2.dskt' &&
    dsk-eval ppl '$T/ck' --data '$T/ds2'"

dsk-train -q -j 2 --stage sft --init "$T/ck" --data "$T/sft" --out "$T/s" -b 8 --epochs 2 --lr 3e-3 --eval-every 0
expect_exit 0 "gen after SFT" dsk-eval gen "$T/s" "$T/task.jsonl" --items "$T/items.jsonl" --json
check "gen scores every item: exact match of the trimmed output, or the whole-output regex" python3 - "$T" <<'PY'
import json, re, sys
t = sys.argv[1]
r = json.load(open(f"{t}/out"))
task = [json.loads(l) for l in open(f"{t}/task.jsonl")]
items = [json.loads(l) for l in open(f"{t}/items.jsonl")]
assert r["items"] == len(task) == len(items) and r["correct"] == sum(i["correct"] for i in items), (r, items)
for want, got in zip(task, items):
    ok = got["output"] == want["answer"] if "answer" in want else re.fullmatch(want["regex"], got["output"]) is not None
    assert ok == got["correct"], (want, got)
assert abs(r["exact_match"] - r["correct"] / r["items"]) < 1e-9
PY
expect_exit 0 "ppl of the pretrained model on conversations (assistant tokens only)" dsk-eval ppl "$T/ck" \
    --data "$T/sft" --split train --rows 32 --json
cp "$T/out" "$T/ppl-before"
expect_exit 0 "ppl of the SFT model on the same conversations" dsk-eval ppl "$T/s" --data "$T/sft" --split train \
    --rows 32 --json
check "SFT lowers the loss on answers, counted on the two masked tokens a row" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
before, after = json.load(open(f"{t}/ppl-before")), json.load(open(f"{t}/out"))
assert before["tokens"] == after["tokens"] == 64, (before, after)   # the word and <|end|>
assert after["loss"] < before["loss"] - 1, (before, after)
PY
printf '{"prompt": "say cat"}\n' > "$T/bad.jsonl"
expect_exit 65 "an item without answer or regex" dsk-eval gen "$T/s" "$T/bad.jsonl"
expect_err_contains "bad.jsonl:1" "the message names the file and line"
printf '{"prompt": "say cat", "answer": "cat", "extra": [}\n' > "$T/bad.jsonl"
expect_exit 65 "a broken JSON line" dsk-eval gen "$T/s" "$T/bad.jsonl"
expect_exit 66 "a missing task file" dsk-eval gen "$T/s" "$T/nope.jsonl"
check "no items file is left by a failed run" test ! -e "$T/items2.jsonl"
echo "1..$tap_n"
