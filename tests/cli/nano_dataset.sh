#!/bin/sh
# The small training set the dsk-train tests share: 600 documents over a
# 15-word vocabulary (1 in 10 in the val split), a 300-token BPE
# tokenizer, and a dataset of 64-token rows packed best-fit.
#
#   nano_dataset.sh DIR      (dsk-bpe and dsk-pack on PATH)
#
# Writes DIR/docs.jsonl, DIR/tok.json, DIR/docs.dskt and DIR/ds.
set -eu
dir=$1
python3 - "$dir" <<'PY'
import json, random, sys
random.seed(5)
words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly dwarfs".split()
with open(sys.argv[1] + "/docs.jsonl", "w") as f:
    for i in range(600):
        n = random.randint(3, 40)
        text = " ".join(words[(i + k) % len(words)] if k % 3 else random.choice(words) for k in range(n))
        f.write(json.dumps({"text": text + ".", "split": "val" if i % 10 == 3 else "train"}) + "\n")
PY
dsk-bpe train --vocab-size 300 -o "$dir/tok.json" "$dir/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$dir/tok.json" -o "$dir/docs.dskt" "$dir/docs.jsonl"
dsk-pack -q -t "$dir/tok.json" -o "$dir/ds" --seq-len 64 --pack bestfit "$dir/docs.dskt"
