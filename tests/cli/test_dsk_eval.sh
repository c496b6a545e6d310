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
check "the result names the step directory read, not the run's latest link" \
    python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["checkpoint"].endswith("/ck/step-00000030")' "$T/out"
cp "$T/out" "$T/ppl-b4"
expect_exit 0 "ppl with another batch size (a partial last batch)" dsk-eval ppl "$T/ck/latest" --data "$T/ds" \
    --rows 8 --batch 3 --json
check "batching does not change the result" python3 -c "
import json; a, b = json.load(open('$T/out')), json.load(open('$T/ppl-b4'))
assert a['rows'] == b['rows'] == 8 and a['tokens'] == b['tokens'] and abs(a['loss'] - b['loss']) < 1e-5, (a, b)"
# A checkpoint's files as FIFOs: an error, not a wait for a writer.
mkdir "$T/fifo-ck" && cp "$T/ck/latest/"* "$T/fifo-ck/"
rm "$T/fifo-ck/model.safetensors" && mkfifo "$T/fifo-ck/model.safetensors"
expect_exit 66 "a FIFO for model.safetensors (no hang)" timeout 20 dsk-eval ppl "$T/fifo-ck" --data "$T/ds" --rows 1
rm "$T/fifo-ck/config.json" && mkfifo "$T/fifo-ck/config.json"
expect_exit 65 "a FIFO for config.json (no hang)" timeout 20 dsk-eval ppl "$T/fifo-ck" --data "$T/ds" --rows 1
rm -rf "$T/fifo-ck" && mkdir "$T/fifo-ck" && cp "$T/ck/latest/"* "$T/fifo-ck/"
rm "$T/fifo-ck/tokenizer.json" && mkfifo "$T/fifo-ck/tokenizer.json"
expect_exit 65 "a FIFO for tokenizer.json (no hang)" timeout 20 dsk-eval ppl "$T/fifo-ck" --data "$T/ds" --rows 1
expect_err_contains "a FIFO, not a regular file" "... named as such"
rm -rf "$T/fifo-ds" && cp -r "$T/ds" "$T/fifo-ds" && rm "$T/fifo-ds/tokenizer.json" && mkfifo "$T/fifo-ds/tokenizer.json"
expect_exit 65 "dsk-train on a dataset whose tokenizer.json is a FIFO (it waited for a writer)" \
    timeout 60 dsk-train -q -j 2 -c nano -d "$T/fifo-ds" -o "$T/fifo-run" --steps 1
# Rows longer than the model (nano: 64 positions): scored in windows, every
# target counted, whatever the batch size (windows of one row in two batches).
dsk-pack -q -t "$T/tok.json" -o "$T/dsw" --pack concat --seq-len 150 "$T/docs.dskt"
expect_exit 0 "ppl on rows of 150 tokens with a model of 64 positions" dsk-eval ppl "$T/ck" --data "$T/dsw" \
    --rows 3 --batch 4 --json
cp "$T/out" "$T/ppl-w4"
check "each row in 3 windows (the last partial), every target scored" python3 -c "
import json; e = json.load(open('$T/out'))
assert e['rows'] == 3 and e['windows'] == 3 and e['tokens'] == 3 * 150, e"
expect_exit 0 "ppl in windows with another batch size" dsk-eval ppl "$T/ck" --data "$T/dsw" --rows 3 --batch 7 --json
check "windows across batches do not change the result" python3 -c "
import json; a, b = json.load(open('$T/out')), json.load(open('$T/ppl-w4'))
assert a['tokens'] == b['tokens'] and abs(a['loss'] - b['loss']) < 1e-5, (a, b)"
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
expect_exit 0 "ppl of the SFT model on the whole split, one conversation a row" dsk-eval ppl "$T/s" --data "$T/sft" \
    --split train --json
cp "$T/out" "$T/ppl-one"
dsk-pack -q -t "$T/tok.json" -o "$T/sftbf" --seq-len 32 --pack bestfit "$T/chat.dskt"
expect_exit 0 "... and packed several a row (--pack bestfit)" dsk-eval ppl "$T/s" --data "$T/sftbf" --split train --json
check "... the same loss: each conversation is positioned and attended to alone in its row" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
one, packed = json.load(open(f"{t}/ppl-one")), json.load(open(f"{t}/out"))
assert one["tokens"] == packed["tokens"] and packed["rows"] < one["rows"] / 2, (one, packed)
assert abs(one["loss"] - packed["loss"]) < 1e-5 * one["loss"], (one, packed)
PY
printf '{"prompt": "say cat"}\n' > "$T/bad.jsonl"
expect_exit 65 "an item without answer or regex" dsk-eval gen "$T/s" "$T/bad.jsonl"
expect_err_contains "bad.jsonl:1" "the message names the file and line"
printf '{"prompt": "say cat", "answer": "cat", "extra": [}\n' > "$T/bad.jsonl"
expect_exit 65 "a broken JSON line" dsk-eval gen "$T/s" "$T/bad.jsonl"
printf '%s\n' '{"prompt": "say cat", "answer": "cat"}' '{"prompt": "say dog", "answer": "dog"}' \
    '{"prompt": "say sun", "regex": "(("}' > "$T/late.jsonl"
expect_exit 65 "a bad regex on the last line" dsk-eval gen "$T/s" "$T/late.jsonl" --items -
expect_err_contains 'late.jsonl:3: bad "regex" at offset 2: missing closing parenthesis' \
    "the message gives the line and PCRE2's reason"
check "... found before any answer was generated (the first two were, to stdout)" test ! -s "$T/out"
expect_exit 0 "gen: a task file from a pipe (the items are read once)" bash -c "dsk-eval gen '$T/s' <(head -2 '$T/late.jsonl')"
# A \u0000 in an answer or regex is part of it (it cut them short: ".*"
# then matched any output).
printf '%s\n' '{"prompt": "say cat", "regex": ".*\u0000never"}' '{"prompt": "say cat", "answer": "\u0000never"}' \
    > "$T/nul.jsonl"
expect_exit 0 "gen: answers and regexes holding \\u0000" dsk-eval gen "$T/s" "$T/nul.jsonl" --json
check "gen: neither matches" python3 -c "
import json; r = json.load(open('$T/out')); assert r['items'] == 2 and r['correct'] == 0, r"
# Bytes that are not UTF-8 in a task file: an error naming the line (the
# tokenizer's pattern is matched without UTF-8 checks; this was a crash).
printf '{"prompt": "say \373 cat", "answer": "cat"}\n' > "$T/bad.jsonl"
expect_exit 65 "gen: a prompt that is not UTF-8" dsk-eval gen "$T/s" "$T/bad.jsonl"
expect_err_contains "bad.jsonl:1: invalid UTF-8" "the message names the line and the bad UTF-8"
printf '{"context": "jjjjjjjjjjjjjjjjjjzjjjjjjjjjjjjjjjjjjjjjjq\373", "choices": [" a", " b"], "gold": 0}\n' > "$T/bad.jsonl"
expect_exit 65 "mc: a context that is not UTF-8" dsk-eval mc "$T/s" "$T/bad.jsonl"
printf '{"prompt": "say cat", "answer": "cat"}\r\n\r\n \t\n{"prompt": "say cat", "answer": "cat"}\r\n' > "$T/crlf.jsonl"
expect_exit 0 "gen: blank lines (CRLF, spaces) are skipped" dsk-eval gen "$T/s" "$T/crlf.jsonl" --json
check "gen: the two items of the CRLF file" python3 -c "import json; assert json.load(open('$T/out'))['items'] == 2"
printf 'null\n' > "$T/bad.jsonl"
expect_exit 65 "mc: a null line" dsk-eval mc "$T/s" "$T/bad.jsonl"
expect_err_contains "bad.jsonl:1: null, not a JSON object" "the message says what the line is"
expect_exit 64 "--top-p 0 keeps no token: refused" dsk-eval gen "$T/s" "$T/crlf.jsonl" --temperature 1 --top-p 0
expect_exit 64 "--min-p above 1: refused" dsk-eval gen "$T/s" "$T/crlf.jsonl" --temperature 1 --min-p 1.5
expect_exit 64 "--min-p does not apply to mc" dsk-eval mc "$T/s" "$T/crlf.jsonl" --min-p 0.1
dsk-eval gen "$T/s" <(head -2 "$T/late.jsonl") --items "$T/greedy.jsonl" >/dev/null
dsk-eval gen "$T/s" <(head -2 "$T/late.jsonl") --items "$T/minp.jsonl" --temperature 2 --seed 9 --min-p 1 >/dev/null
check "gen --min-p 1: only the likeliest token is left, the greedy answers at any temperature" \
    cmp -s "$T/greedy.jsonl" "$T/minp.jsonl"
expect_exit 66 "a missing task file" dsk-eval gen "$T/s" "$T/nope.jsonl"
printf '{"prompt": "a", "answer": "b"}\n' > "$T/gen-item.jsonl"
expect_exit 65 "mc of a gen task file" dsk-eval mc "$T/s" "$T/gen-item.jsonl"
expect_err_contains "one with \"prompt\" is a gen item" "... the message says what the file looks like"
printf '{"prompt": "a", "answer": "b"}\nnot json\n' > "$T/notjson.jsonl"
expect_exit 65 "a task line that is not JSON" dsk-eval gen "$T/s" "$T/notjson.jsonl"
expect_err_contains "notjson.jsonl:2: not JSON: " "... said as such, with its line"
expect_exit 65 "ppl of an empty split" dsk-eval ppl "$T/ck" --data "$T/ds" --split test
expect_err_contains "the test split has no rows" "... said as such"
mkdir "$T/dangling" && ln -s step-00000099 "$T/dangling/latest"
expect_exit 66 "a run whose latest points at a step directory that is gone" dsk-eval ppl "$T/dangling" --data "$T/ds"
expect_err_contains "latest points at step-00000099, which does not exist" "... says so"
check "no items file is left by a failed run" test ! -e "$T/items2.jsonl"
# ---- mc: log-likelihood scoring ------------------------------------------------------------------
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
with open(f"{t}/mc.jsonl", "w") as f:
    # In-vocabulary words against strings the model never saw.
    for w in "red green blue one two three".split():
        f.write(json.dumps({"context": f"{w} cat", "choices": [" qzx vvq kkj", f" dog {w} bird", " zzq"], "gold": 1}) + "\n")
    # The trailing space of the context moves to the continuation: the same request two ways.
    f.write(json.dumps({"context": "cat dog ", "choices": ["red", "blue bird"], "gold": 0}) + "\n")
    f.write(json.dumps({"context": "cat dog", "choices": [" red", " blue bird"], "gold": 0}) + "\n")
    f.write(json.dumps({"context": "", "choices": ["red", "qq"], "gold": 0}) + "\n")
    # A choice longer than the model's positions: scored on its last ones.
    f.write(json.dumps({"context": "cat", "choices": [" dog", " red" * 100], "gold": 0}) + "\n")
PY
# Memory for the requests there are, not for --batch's (65536 x 64 positions
# was tens of GB for a few requests).
printf '%s\n' '{"context": "red green\u00a0", "choices": ["blue", "cat dog"], "gold": 0}' \
    '{"context": "red green", "choices": ["\u00a0blue", "\u00a0cat dog"], "gold": 0}' > "$T/nbsp.jsonl"
expect_exit 0 "mc: a context ending in a no-break space" dsk-eval mc "$T/ck" "$T/nbsp.jsonl" --items "$T/nbsp-items.jsonl"
check "... scores as the space moved to the choices (Python's rstrip takes it, as the harness strips)" python3 -c "
import json, sys
a, b = [json.loads(l)['loglikelihoods'] for l in open(sys.argv[1])]
assert a == b, (a, b)" "$T/nbsp-items.jsonl"
expect_exit 0 "mc with a --batch far above its requests" dsk-eval mc "$T/ck" "$T/mc.jsonl" --batch 65536
expect_exit 0 "ppl with a --batch far above its rows" dsk-eval ppl "$T/ck" --data "$T/ds" --rows 2 --batch 65536
expect_exit 0 "mc" dsk-eval mc "$T/ck" "$T/mc.jsonl" --items "$T/mc-items.jsonl" --batch 3 --json
check "mc: acc is the argmax of the summed log-likelihood, acc_norm of it per character" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
r = json.load(open(f"{t}/out"))
task = [json.loads(l) for l in open(f"{t}/mc.jsonl")]
items = [json.loads(l) for l in open(f"{t}/mc-items.jsonl")]
assert r["items"] == len(task) == len(items) == 10, r
acc = acc_norm = 0
for want, got in zip(task, items):
    ll = got["loglikelihoods"]
    assert len(ll) == len(want["choices"]) and all(x < 0 for x in ll), got
    pred = max(range(len(ll)), key=lambda i: (ll[i], -i))
    # acc_norm divides by the characters scored: the whole choice, but
    # for one cut to the model's positions, only what was scored of it.
    chars = [len(c) for c in want["choices"]]
    if len(want["choices"][1]) == 400:   # its last T tokens, each " red"
        T = json.load(open(f"{t}/ck/latest/config.json"))["max_position_embeddings"]
        assert T < 100 and got["chars"] == [4, 4 * T], (got, T)
        chars[1] = 4 * T
    assert got["chars"] == chars, (got, chars)
    norm = [ll[i] / chars[i] for i in range(len(ll))]
    pred_norm = max(range(len(ll)), key=lambda i: (norm[i], -i))
    assert got["pred"] == pred and got["pred_norm"] == pred_norm and got["gold"] == want["gold"], (got, pred, pred_norm)
    acc += pred == want["gold"]; acc_norm += pred_norm == want["gold"]
assert abs(r["acc"] - acc / 10) < 1e-9 and abs(r["acc_norm"] - acc_norm / 10) < 1e-9, r
assert all(items[i]["pred"] == 1 for i in range(6)), items[:6]          # words beat noise
a, b = items[6]["loglikelihoods"], items[7]["loglikelihoods"]
assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (a, b)          # the harness's whitespace rule
PY
cp "$T/out" "$T/mc-b3"
expect_exit 0 "mc with another batch size" dsk-eval mc "$T/ck" "$T/mc.jsonl" --batch 8 --json
check "mc does not depend on the batch" python3 -c "
import json; a, b = json.load(open('$T/out')), json.load(open('$T/mc-b3'))
assert a['acc'] == b['acc'] and a['acc_norm'] == b['acc_norm'], (a, b)"
printf '{"context": "x", "choices": ["a", "b"], "gold": 2}\n' > "$T/bad.jsonl"
expect_exit 65 "mc: gold out of range" dsk-eval mc "$T/ck" "$T/bad.jsonl"
expect_err_contains "bad.jsonl:1" "the message names the file and line"
printf '{"context": "x", "choices": ["a", "b"], "gold": 9223372036854775808}\n' > "$T/bad.jsonl"
expect_exit 65 "mc: gold past int64" dsk-eval mc "$T/ck" "$T/bad.jsonl"
expect_err_contains '"gold" 9223372036854775808 is not' "... named as written (it said 9223372036854775807)"
printf '{"context": "x", "choices": "ab", "gold": 0}\n' > "$T/bad.jsonl"
expect_exit 65 "mc: choices not an array" dsk-eval mc "$T/ck" "$T/bad.jsonl"
expect_exit 66 "mc: a missing task file" dsk-eval mc "$T/ck" "$T/nope.jsonl"
expect_exit 66 "mc: a directory as the task file" dsk-eval mc "$T/ck" "$T"
expect_err_contains "is a directory" "a directory task is named as such"

# ---- ab: paired comparison ---------------------------------------------------------------------------
expect_exit 0 "ab of a checkpoint with itself" dsk-eval ab "$T/ck" "$T/ck" "$T/mc.jsonl" "$T/ds" --json
check "identical checkpoints: no difference, p = 1, on every task and metric" python3 - "$T" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/out"))
rows = r["results"]
assert [(x["metric"]) for x in rows] == ["acc", "acc_norm", "loss"], rows
for x in rows:
    assert x["diff"] == 0 and x["lo"] == 0 and x["hi"] == 0 and x["p"] == 1, x
    assert x["verdict"].startswith("no significant difference"), x
assert rows[2]["higher_is_better"] is False and rows[2]["n"] > 0
PY
expect_exit 0 "ppl of A alone" dsk-eval ppl "$T/ck" --data "$T/ds" --json
cp "$T/out" "$T/ppl-alone.json"
expect_exit 0 "ab of A and the SFT model on the dataset" dsk-eval ab "$T/ck" "$T/s" "$T/ds" --json --resamples 200
check "... A's figure is ppl's loss to the last digit (ab froze the weights for decoding first)" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
ppl, ab = json.load(open(f"{t}/ppl-alone.json")), json.load(open(f"{t}/out"))["results"][0]
assert ab["a"] == ppl["loss"], (ab["a"], ppl["loss"])
PY
expect_exit 0 "ab on a single item (row)" dsk-eval ab "$T/ck" "$T/s" "$T/ds" --rows 1 --json
check "... is no significant difference, p = 1 (the bootstrap said p < 0.001)" python3 - "$T" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/out"))["results"][0]
assert r["diff"] != 0 and r["p"] == 1 and r["verdict"].startswith("no significant difference at 1 item ("), r
PY
expect_exit 0 "ab --rows: the dataset task reads the first N rows" dsk-eval ab "$T/ck" "$T/ck" "$T/ds" --rows 3 --json
check "... n is 3 (--rows was ignored)" python3 -c "
import json; r = json.load(open('$T/out')); assert r['results'][0]['n'] == 3, r"
expect_exit 0 "ab: pretrained against SFT on the chat task, logged" dsk-eval ab "$T/ck" "$T/s" "$T/task.jsonl" \
    --log "$T/eval-log.jsonl" --resamples 2000
check "ab prints the table and a verdict" grep -q "exact_match: " "$T/out"
expect_exit 0 "ab --json" dsk-eval ab "$T/ck" "$T/s" "$T/task.jsonl" --json --resamples 2000 --log "$T/eval-log.jsonl"
check "ab JSON: the paired means are the two checkpoints' exact match; the interval holds the difference" \
    python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
r = json.load(open(f"{t}/out"))["results"][0]
assert r["metric"] == "exact_match" and r["mean_b"] > r["mean_a"] and r["lo"] <= r["diff"] <= r["hi"], r
assert abs(r["diff"] - (r["mean_b"] - r["mean_a"])) < 1e-9 and r["a"] == r["mean_a"], r
log = [json.loads(l) for l in open(f"{t}/eval-log.jsonl")]
assert len(log) == 2 and all(x["command"] == "ab" and "time" in x for x in log), log
PY
expect_exit 66 "ab: a missing task" dsk-eval ab "$T/ck" "$T/s" "$T/nope"
expect_exit 74 "--log on a full device" dsk-eval ppl "$T/ck" --data "$T/ds" --rows 2 --log /dev/full
expect_err_contains "No space left on device" "... says why"
# B's problems are found before A is scored: a copy of ck with another tokenizer (of fewer tokens)
dsk-bpe train --vocab-size 280 -o "$T/tok280.json" "$T/docs.jsonl" 2>/dev/null
cp -rL "$T/ck/latest" "$T/ck-tok280" && cp "$T/tok280.json" "$T/ck-tok280/tokenizer.json"
expect_exit 65 "ab: B cannot read the dataset (another tokenizer)" \
    dsk-eval ab "$T/ck" "$T/ck-tok280" "$T/mc.jsonl" "$T/ds" --log "$T/ab-early.jsonl"
expect_err_contains "checkpoint B ($T/ck-tok280)" "... the message says it is B's"
check "... and nothing was scored or logged" test ! -e "$T/ab-early.jsonl"
{ head -n 2 "$T/mc.jsonl"; printf '{"context": "x", "choices": ["a"], "gold": 0}\n'; } > "$T/late-bad.jsonl"
expect_exit 65 "ab: a bad item on the last line of the second task" \
    dsk-eval ab "$T/ck" "$T/s" "$T/mc.jsonl" "$T/late-bad.jsonl" --log "$T/ab-late.jsonl"
expect_err_contains "late-bad.jsonl:3: needs \"choices\"" "... named by file and line"
check "... and nothing is printed or logged" test ! -e "$T/ab-late.jsonl" -a ! -s "$T/out"
printf '{"command":"mc","items":3}' > "$T/cut-log.jsonl"   # a last line without its newline
expect_exit 0 "--log onto a file whose last line has no newline" dsk-eval ppl "$T/ck" --data "$T/ds" --rows 2 \
    --log "$T/cut-log.jsonl"
check "... ends that line first: two JSON lines (the result was glued to it)" python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2 and rows[1]['command'] == 'ppl', rows" "$T/cut-log.jsonl"
cp "$T/mc.jsonl" "$T/"$'t\xff.jsonl'
expect_exit 0 "a task path that is not UTF-8" dsk-eval mc "$T/ck" "$T/"$'t\xff.jsonl' --json
check "... is JSON all the same (its byte as U+FFFD)" python3 -c "
import json, sys
r = json.loads(open(sys.argv[1], 'rb').read().decode('utf-8'))
assert r['task'].endswith('t\ufffd.jsonl'), r" "$T/out"
expect_exit 64 "ab needs a task" dsk-eval ab "$T/ck" "$T/s"

# ---- plot ----------------------------------------------------------------------------------------------------------
expect_exit 0 "plot training curves" dsk-eval plot "$T/train.jsonl" "$T/train.jsonl" --label "a<&>" --label b \
    -o "$T/curves.svg" --log-x
check "the curves are an SVG document that parses as XML" python3 -c "
import xml.etree.ElementTree as E; r = E.parse('$T/curves.svg').getroot()
assert r.tag.endswith('svg') and len(r.findall('.//{http://www.w3.org/2000/svg}polyline')) >= 2"
expect_exit 0 "plot an A/B result from the log" dsk-eval plot --ab "$T/eval-log.jsonl" -o "$T/ab.svg"
check "the A/B plot parses as XML" python3 -c "import xml.etree.ElementTree as E; E.parse('$T/ab.svg')"
printf '{"step":1,"loss":2}\n5\ntrue\nnull\n{"step":2,"loss":1.5}\n' > "$T/scalars.jsonl"
expect_exit 0 "plot skips lines that are bare JSON values" dsk-eval plot "$T/scalars.jsonl" -o "$T/sc.svg"
expect_exit 66 "plot a missing log" dsk-eval plot "$T/nope.jsonl" -o "$T/x.svg"
check "no SVG is left by a failed plot" test ! -e "$T/x.svg"
expect_exit 64 "plot without -o" dsk-eval plot "$T/train.jsonl"
expect_exit 64 "--label count must match the logs" dsk-eval plot "$T/train.jsonl" --label a --label b -o "$T/x.svg"

# ---- options a command does not use: refused, not ignored --------------------------------------------------------
expect_exit 64 "ppl --items (ppl writes no items)" dsk-eval ppl "$T/ck" --data "$T/ds" --items "$T/x.jsonl"
expect_err_contains "--items does not apply to ppl" "... and the message names the option and the command"
check "... and no items file is left" test ! -e "$T/x.jsonl"
expect_exit 64 "mc --max-tokens (mc generates nothing)" dsk-eval mc "$T/ck" "$T/mc.jsonl" --max-tokens 8
expect_exit 64 "mc --speculate (mc generates nothing)" dsk-eval mc "$T/ck" "$T/mc.jsonl" --speculate 4
# gen decodes --batch answers together (the serve engine), with drafts by
# prompt lookup under --speculate: the same draws for every batch and
# draft, greedy, and sampled (item i's generator is seeded from --seed and
# i).  These prompts are short (steps of at most 8 rows, where the row
# kernels give each row its bits alone on x86 with AVX2): the same
# answers.  A --batch of 1 with a queue of 2 runs the feeding loop's
# waits on every item.
for run in "1 0 0" "4 0 0" "3 6 0" "1 0 1" "5 0 1" "2 4 1"; do
    read -r b k sampled <<< "$run"
    extra=(); [ "$sampled" = 1 ] && extra=(--temperature 1.3 --seed 5)
    dsk-eval gen "$T/s" "$T/task.jsonl" --batch "$b" --speculate "$k" "${extra[@]}" --items "$T/gen-$b-$k-$sampled.jsonl" \
        > /dev/null 2>&1 || echo "failed" >> "$T/gen-$b-$k-$sampled.jsonl"
done
if grep -q avx2 /proc/cpuinfo; then same=1; else same=0; fi
check "gen: the same answers for every --batch and --speculate, greedy and sampled" python3 - "$T" "$same" <<'PY'
import sys
t = sys.argv[1]
for sampled in (0, 1):
    runs = {f: open(f"{t}/gen-{f}-{sampled}.jsonl").read() for f in ("1-0", "4-0", "3-6", "5-0", "2-4") if
            __import__("os").path.exists(f"{t}/gen-{f}-{sampled}.jsonl")}
    assert len(runs) == 3 and all(r.count("\n") == runs["1-0"].count("\n") >= 4 for r in runs.values()), runs
    if sys.argv[2] == "1":   # the same bits: the same answers
        assert len(set(runs.values())) == 1, runs
greedy, sampled = (open(f"{t}/gen-1-0-{s}.jsonl").read() for s in (0, 1))
assert greedy != sampled, "a temperature of 1.3 changed nothing"
PY
expect_exit 64 "plot --json" dsk-eval plot "$T/train.jsonl" -o "$T/x.svg" --json
check "... and no SVG is written" test ! -e "$T/x.svg"
expect_exit 64 "plot --ab with --metric" dsk-eval plot --ab "$T/eval-log.jsonl" -o "$T/x.svg" --metric loss
expect_exit 64 "ppl --ab" dsk-eval ppl "$T/ck" --data "$T/ds" --ab "$T/eval-log.jsonl"
expect_exit 64 "ab --items" dsk-eval ab "$T/ck" "$T/s" "$T/mc.jsonl" --items "$T/x.jsonl"
expect_exit 64 "--run-name without --mlflow" dsk-eval mc "$T/ck" "$T/mc.jsonl" --run-name x
# An output that is one of the inputs: refused, the input left as it was.
cp "$T/mc.jsonl" "$T/mc-copy.jsonl" && ln -sf mc-copy.jsonl "$T/mc-link.jsonl"
expect_exit 64 "mc --items naming the task file (by a link)" dsk-eval mc "$T/ck" "$T/mc-copy.jsonl" --items "$T/mc-link.jsonl"
check "... and the task file is whole" cmp "$T/mc.jsonl" "$T/mc-copy.jsonl"
cp "$T/train.jsonl" "$T/train-copy.jsonl"
expect_exit 64 "plot -o naming a log plotted" dsk-eval plot "$T/train.jsonl" "$T/train-copy.jsonl" -o "$T/train-copy.jsonl"
check "... and the log is whole" cmp "$T/train.jsonl" "$T/train-copy.jsonl"
echo "1..$tap_n"
