#!/usr/bin/env bash
# CLI tests for dsk-pack: packing modes, the dataset files, verify, info,
# cat, and every refusal (with no output left behind).
. "$(dirname "$0")/lib.sh"

expect_exit 0 "--help" dsk-pack --help
expect_exit 0 "--version" dsk-pack --version

# A small tokenizer and corpus: plain documents over three splits, chat and preference records.
python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(7)
words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly dwarfs".split()
with open(f"{t}/docs.jsonl", "w") as f:
    for i in range(400):
        text = " ".join(random.choice(words) for _ in range(random.randint(1, 120)))
        split = "val" if i % 10 == 3 else "test" if i % 10 == 7 else "train"
        f.write(json.dumps({"text": f"doc {i}: {text}.", "split": split}) + "\n")
with open(f"{t}/chat.jsonl", "w") as f:
    for i in range(40):
        f.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}?"},
                                         {"role": "assistant", "content": "answer " + " ".join(words[: i % 15])}]}) + "\n")
with open(f"{t}/pref.jsonl", "w") as f:
    for i in range(30):
        f.write(json.dumps({"prompt": f"say {i}", "chosen": f"{i} indeed", "rejected": "no " * (i % 9)}) + "\n")
PY
dsk-bpe train --vocab-size 400 -o "$T/tok.json" "$T/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tok.json" -o "$T/docs.dskt" "$T/docs.jsonl"
dsk-bpe encode -t "$T/tok.json" -o "$T/chat.dskt" "$T/chat.jsonl"
dsk-bpe encode -t "$T/tok.json" -o "$T/pref.dskt" "$T/pref.jsonl"

# ---- pack, verify, info -------------------------------------------------------------------
expect_exit 0 "pack concat" dsk-pack -t "$T/tok.json" -o "$T/ds" --seq-len 64 --shard-size 64K "$T/docs.dskt"
expect_err_contains "pretrain, concat packing, 65 tokens a row" "summary names kind, mode and row length"
check "MANIFEST, MD5SUMS, tokenizer.json and shards" test -s "$T/ds/MANIFEST" -a -s "$T/ds/MD5SUMS" \
    -a -s "$T/ds/tokenizer.json" -a -s "$T/ds/shard-00000.mdb"
check "md5sum -c accepts MD5SUMS" bash -c "cd '$T/ds' && md5sum --quiet -c MD5SUMS"
check "no lock files and no temporaries" test "$(ls "$T" | grep -c 'tmp\|lock')" -eq 0 -a \
    "$(ls "$T/ds" | grep -c 'lock')" -eq 0
dsk-pack info "$T/ds" > "$T/info.json"
check "info prints the MANIFEST" test "$(json_get "$T/info.json" '["format"]')" = dsk-dataset
check "info: seq_len and row_tokens" test "$(json_get "$T/info.json" '["seq_len"]') $(json_get "$T/info.json" '["row_tokens"]')" = "64 65"
check "info: val rows from the split field" test "$(json_get "$T/info.json" '["rows"]["val"]')" -gt 0
check "info: tokenizer fingerprint" test "$(json_get "$T/info.json" '["tokenizer_fingerprint"]')" = \
    "$(dsk-bpe info -t "$T/tok.json" | sed -n 's/^fingerprint: //p')"
check "info: the creation command" grep -q '"command": ".*dsk-pack -t' "$T/info.json"
expect_exit 0 "verify" dsk-pack verify "$T/ds"
check "verify says OK" grep -q "OK" "$T/out"
expect_exit 0 "pack again with 2 threads" dsk-pack -q -j2 -t "$T/tok.json" -o "$T/ds2" --seq-len 64 --shard-size 64K "$T/docs.dskt"
check "same shards for -j1 and -j2" bash -c "cmp <(cut -c1-32 '$T/ds/MD5SUMS' | head -n -1) <(cut -c1-32 '$T/ds2/MD5SUMS' | head -n -1)"
cat "$T/docs.dskt" | dsk-pack -q -t "$T/tok.json" -o "$T/ds3" --seq-len 64 --shard-size 64K
check "stdin gives the same dataset" bash -c "cmp <(head -n -2 '$T/ds/MD5SUMS') <(head -n -2 '$T/ds3/MD5SUMS')"
dsk-pack -q -t <(cat "$T/tok.json") -o "$T/ds4" --seq-len 64 --shard-size 64K "$T/docs.dskt"
check "a tokenizer from a pipe: the dataset keeps the tokenizer loaded (a copy would be empty)" test \
    "$(dsk-bpe info -t "$T/ds4/tokenizer.json" | sed -n 's/^fingerprint: //p')" = \
    "$(dsk-bpe info -t "$T/tok.json" | sed -n 's/^fingerprint: //p')"
check "a tokenizer from a pipe: the same shards" bash -c "cmp <(head -n -2 '$T/ds/MD5SUMS') <(head -n -2 '$T/ds4/MD5SUMS')"
expect_exit 0 "--zstd-level 0 stores rows" dsk-pack -q -t "$T/tok.json" -o "$T/ds0" --seq-len 64 --zstd-level 0 "$T/docs.dskt"
check "stored rows: level 0, no dictionary" test "$(json_get "$T/ds0/MANIFEST" '["zstd_level"]') $(json_get "$T/ds0/MANIFEST" '["zstd_dict_bytes"]')" = "0 0"
expect_exit 0 "verify stored rows" dsk-pack verify "$T/ds0"
for split in train val; do
    check "stored rows: the same $split rows as compressed ones" \
        bash -c "cmp <(dsk-pack cat '$T/ds' --split $split --json) <(dsk-pack cat '$T/ds0' --split $split --json)"
done

# ---- cat ------------------------------------------------------------------------------------
expect_exit 0 "cat ids" dsk-pack cat "$T/ds" --split val --count 3
check "cat: one line of 65 ids per row" test "$(wc -l < "$T/out")" -eq 3 -a "$(head -1 "$T/out" | wc -w)" -eq 65
dsk-pack cat "$T/ds" --decode > "$T/text.jsonl"
check "cat --decode: every train document's text is in the rows" python3 - "$T/docs.jsonl" "$T/text.jsonl" <<'PY'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
text = "".join(json.loads(l)["text"] for l in open(sys.argv[2]))
want = "".join("<|endoftext|>" + d["text"] for d in docs if d["split"] == "train")
sys.exit(not text.startswith(want) or set(text[len(want):].split("<|endoftext|>")) != {""})
PY
dsk-pack cat "$T/ds" --json --count 1 > "$T/row.json"
check "cat --json: tokens, mask, boundaries" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(not (len(r["tokens"]) == 65 and len(r["mask"]) == 65 and r["boundaries"][0] == 0))' "$T/row.json"
# A shard cut short or with a damaged meta page: LMDB would trust it (it
# died of SIGBUS or an assertion); the check before it maps the file.
for cut in 100 8192 $(( $(stat -c %s "$T/ds/shard-00000.mdb") - 4096 )); do
    rm -rf "$T/cut" && cp -r "$T/ds" "$T/cut" && truncate -s "$cut" "$T/cut/shard-00000.mdb"
    expect_exit 65 "cat: a shard cut to $cut bytes" dsk-pack cat "$T/cut"
done
expect_err_contains "the MANIFEST says" "the message says so"
rm -rf "$T/cut" && cp -r "$T/ds" "$T/cut"
printf '\x80' | dd of="$T/cut/shard-00000.mdb" bs=1 seek=4138 conv=notrunc 2>/dev/null   # meta page 1's page size
expect_exit 65 "cat: a shard with a damaged meta page" dsk-pack cat "$T/cut"
expect_err_contains "damaged or cut short" "the message says so"
rm "$T/cut/shard-00000.mdb" && mkfifo "$T/cut/shard-00000.mdb"
expect_exit 65 "cat: a FIFO for a shard (no hang)" timeout 20 dsk-pack cat "$T/cut"
rm -rf "$T/cut" && cp -r "$T/ds" "$T/cut" && mkfifo "$T/cut/fifo" && echo "d41d8cd98f00b204e9800998ecf8427e  fifo" >> "$T/cut/MD5SUMS"
expect_exit 65 "verify: a FIFO listed in MD5SUMS (no hang)" timeout 20 dsk-pack verify "$T/cut"
rm -rf "$T/cut" && cp -r "$T/ds" "$T/cut" && tail -1 "$T/cut/MD5SUMS" >> "$T/cut/MD5SUMS"
expect_exit 65 "verify: a file listed twice in MD5SUMS" dsk-pack verify "$T/cut"
expect_err_contains "is listed twice" "the duplicate is named"
rm "$T/cut/MANIFEST" && mkfifo "$T/cut/MANIFEST"
expect_exit 65 "info: a FIFO for MANIFEST (no hang)" timeout 20 dsk-pack info "$T/cut"
expect_exit 64 "the command after the directory" dsk-pack "$T/ds" verify
expect_err_contains "the command comes first (dsk-pack verify $T/ds)" "... says so (it said -o DIR is required)"
expect_exit 64 "cat: bad split" dsk-pack cat "$T/ds" --split dev
expect_exit 64 "cat: --decode with --json" dsk-pack cat "$T/ds" --decode --json
printf '{"text":"\xe8\xa6\x81 \xe8\xa6\x81"}\n' > "$T/cjk.jsonl" && dsk-bpe encode -t "$T/tok.json" -o "$T/cjk.dskt" "$T/cjk.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/cjk" --seq-len 2 "$T/cjk.dskt"
dsk-pack cat "$T/cjk" --decode > "$T/cjk.txt"
check "cat --decode of rows that cut a character is valid UTF-8 JSON (U+FFFD for the cut parts)" python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], "rb")]
assert rows and any("\ufffd" in r["text"] for r in rows), rows' "$T/cjk.txt"
expect_exit 64 "an option of cat's when packing" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 --decode "$T/docs.dskt"
expect_err_contains "--decode is for dsk-pack cat" "the misplaced option is named"
expect_exit 64 "an option of packing's with cat" dsk-pack cat "$T/ds" --seq-len 64
# verify and info take no option of cat's or packing's, and no tokenizer (verify checks the dataset's own):
# one given would look like a check that was not made
expect_exit 64 "--shard-size past 16T" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 8 --shard-size 64T "$T/docs.dskt"
expect_exit 64 "verify -t" dsk-pack verify "$T/ds" -t "$T/tok.json"
expect_err_contains "-t is for packing and dsk-pack cat --decode" "... named as not verify's"
expect_exit 64 "verify --count" dsk-pack verify "$T/ds" --count 2
expect_exit 64 "verify -j2" dsk-pack verify "$T/ds" -j2
expect_exit 64 "info --json" dsk-pack info "$T/ds" --json
expect_exit 64 "cat -t without --decode" dsk-pack cat "$T/ds" -t "$T/tok.json" --count 1
expect_exit 64 "--crop-long without --pack bestfit" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 --crop-long \
    "$T/docs.dskt"

# ---- bestfit, SFT, DPO -------------------------------------------------------------------------
expect_exit 0 "pack bestfit" dsk-pack -t "$T/tok.json" -o "$T/bf" --seq-len 64 --pack bestfit "$T/docs.dskt"
expect_err_contains "bestfit packing" "bestfit summary"
check "bestfit: padding reported" grep -q "padding [0-9.]*%, cropped 0.00%" "$T/err"
expect_exit 0 "verify bestfit" dsk-pack verify "$T/bf"
expect_exit 0 "pack bestfit --crop-long" dsk-pack -q -t "$T/tok.json" -o "$T/bfc" --seq-len 16 --pack bestfit --crop-long "$T/docs.dskt"
check "crop-long crops" test "$(json_get "$T/bfc/MANIFEST" '["stats"]["train"]["cropped"]')" -gt 0
expect_exit 0 "pack SFT" dsk-pack -t "$T/tok.json" -o "$T/sft" --seq-len 32 "$T/chat.dskt"
check "SFT: one row per conversation" test "$(json_get "$T/sft/MANIFEST" '["rows"]["train"]')" -eq 40 -a \
    "$(json_get "$T/sft/MANIFEST" '["pack"]')" = conversation
dsk-pack cat "$T/sft" --json --count 1 > "$T/sftrow.json"
check "SFT: the mask trains the answer only" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(not (0 < sum(r["mask"]) < 20 and r["mask"][0] == 0))' "$T/sftrow.json"
expect_exit 0 "pack SFT bestfit" dsk-pack -t "$T/tok.json" -o "$T/sftbf" --seq-len 128 --pack bestfit "$T/chat.dskt"
expect_err_contains "sft, bestfit packing" "... the summary names the mode"
expect_exit 0 "verify SFT bestfit" dsk-pack verify "$T/sftbf"
dsk-pack -q -t "$T/tok.json" -o "$T/sft128" --seq-len 128 "$T/chat.dskt"
dsk-pack cat "$T/sft128" --json > "$T/sft-rows.json"
dsk-pack cat "$T/sftbf" --json > "$T/sftbf-rows.json"
check "SFT bestfit: the same conversations and masks in fewer rows, each whole, a boundary at each" \
    python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
eot = json.load(open(f"{t}/sft/MANIFEST"))["eot_id"]
def conversations(path):
    """The rows' segments between boundaries; a segment of eot alone is
    the padding (a conversation starts with a role token), and last."""
    out = []
    for line in open(path):
        r = json.loads(line)
        cut = r["boundaries"] + [len(r["tokens"])]
        for i in range(len(cut) - 1):
            tok, mask = r["tokens"][cut[i]:cut[i + 1]], r["mask"][cut[i]:cut[i + 1]]
            if all(x == eot for x in tok):
                assert i == len(cut) - 2 and not any(mask), r
            else:
                out.append((tuple(tok), tuple(mask)))
    return out
one = conversations(f"{t}/sft-rows.json")
packed = conversations(f"{t}/sftbf-rows.json")
assert sorted(one) == sorted(packed) and len(one) == 40, (len(one), len(packed))
m = json.load(open(f"{t}/sftbf/MANIFEST"))
assert m["pack"] == "bestfit" and m["kind"] == "sft" and m["rows"]["train"] <= 12, m
assert m["stats"]["train"]["documents"] == 40 and m["stats"]["train"]["cut_documents"] == 0, m
PY
expect_exit 0 "pack DPO" dsk-pack -q -t "$T/tok.json" -o "$T/dpo" --seq-len 32 "$T/pref.dskt"
check "DPO: rows of two halves" test "$(json_get "$T/dpo/MANIFEST" '["row_tokens"]')" -eq 66
dsk-pack cat "$T/dpo" --decode --count 1 > "$T/pair.json"
check "DPO: chosen and rejected text" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(not ("0 indeed" in r["chosen"] and "say 0" in r["rejected"]))' "$T/pair.json"
expect_exit 0 "verify DPO" dsk-pack verify "$T/dpo"
for kind in sft:chat dpo:pref; do  # mask and pair rows stored raw read back the same
    expect_exit 0 "${kind%%:*} at --zstd-level 0" dsk-pack -q -t "$T/tok.json" -o "$T/${kind%%:*}0" --seq-len 32 \
        --zstd-level 0 "$T/${kind#*:}.dskt"
    check "${kind%%:*}: stored rows read back the same" \
        bash -c "cmp <(dsk-pack cat '$T/${kind%%:*}' --json) <(dsk-pack cat '$T/${kind%%:*}0' --json)"
done

# ---- refusals: a clear error, the right status, nothing left behind --------------------------------
no_output() { test ! -e "$1" && test -z "$(ls "$T" | grep "\.tmp\.")"; }
expect_exit 64 "no -o" dsk-pack -t "$T/tok.json" --seq-len 64 "$T/docs.dskt"
expect_exit 64 "no -t" dsk-pack -o "$T/x" --seq-len 64 "$T/docs.dskt"
expect_exit 64 "no --seq-len" dsk-pack -t "$T/tok.json" -o "$T/x" "$T/docs.dskt"
expect_exit 64 "bad --pack" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 --pack zigzag "$T/docs.dskt"
expect_exit 64 "bad --zstd-level" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 --zstd-level 20 "$T/docs.dskt"
expect_exit 64 "negative --zstd-level" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 --zstd-level -1 "$T/docs.dskt"
expect_exit 66 "missing input" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 "$T/nope.dskt"
check "missing input: no output" no_output "$T/x"
expect_exit 73 "existing directory" dsk-pack -t "$T/tok.json" -o "$T/ds" --seq-len 64 "$T/docs.dskt"
expect_err_contains "ds already exists (--force replaces a dataset)" "existing directory is named, with the way to replace it"
expect_exit 0 "--force replaces a dataset" dsk-pack -q --force -t "$T/tok.json" -o "$T/ds" --seq-len 32 "$T/docs.dskt"
expect_exit 64 "info -q (info prints nothing else)" dsk-pack info "$T/ds" -q
expect_exit 64 "cat -q" dsk-pack cat -q "$T/ds"
cp "$T/docs.dskt" "$T/ds/inside.dskt"
expect_exit 64 "--force with an input inside the dataset it replaces (the run deleted its own input)" \
    dsk-pack -q --force -t "$T/tok.json" -o "$T/ds" --seq-len 32 "$T/ds/inside.dskt"
check "... and the input is still there" test -s "$T/ds/inside.dskt"
rm "$T/ds/inside.dskt"
expect_exit 0 "-o with a trailing slash" dsk-pack -q -t "$T/tok.json" -o "$T/slash/" --seq-len 32 "$T/docs.dskt"
expect_exit 0 "--force and -o with a trailing slash" dsk-pack -q --force -t "$T/tok.json" -o "$T/slash/" --seq-len 32 \
    "$T/docs.dskt"
check "-o with a trailing slash: the dataset, no temporaries" sh -c "test -f '$T/slash/MANIFEST' && ! ls '$T' | grep -q 'slash.*tmp'"
check "replaced" test "$(json_get "$T/ds/MANIFEST" '["seq_len"]')" -eq 32
mkdir "$T/notds" && echo keep > "$T/notds/precious"
expect_exit 73 "--force never replaces another directory" dsk-pack -q --force -t "$T/tok.json" -o "$T/notds" --seq-len 32 "$T/docs.dskt"
check "the other directory is intact" test -s "$T/notds/precious"
mkdir "$T/sdist" && printf 'include README\n' > "$T/sdist/MANIFEST" && echo keep > "$T/sdist/setup.py"
expect_exit 73 "--force never replaces a directory whose MANIFEST is not a dataset's (a Python sdist's)" \
    dsk-pack -q --force -t "$T/tok.json" -o "$T/sdist" --seq-len 32 "$T/docs.dskt"
check "... and leaves it whole (it deleted setup.py)" test -s "$T/sdist/setup.py"
head -c 3000 "$T/docs.dskt" > "$T/cut.dskt"
expect_exit 65 "truncated stream" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 "$T/cut.dskt"
expect_err_contains "truncated" "truncation is named"
check "truncated: no output" no_output "$T/x"
python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 1
open(sys.argv[2], "wb").write(b)' "$T/docs.dskt" "$T/flip.dskt"
expect_exit 65 "corrupt stream" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 "$T/flip.dskt"
check "corrupt: no output" no_output "$T/x"
dsk-bpe train --vocab-size 350 -o "$T/tok2.json" "$T/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tok2.json" -o "$T/other.dskt" "$T/docs.jsonl"
expect_exit 65 "streams from another tokenizer" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 "$T/docs.dskt" "$T/other.dskt"
expect_err_contains "refusing to mix" "fingerprint mismatch is explained"
check "mixed tokenizers: no output" no_output "$T/x"
expect_exit 65 "preference pairs with --pack bestfit" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 --pack bestfit \
    "$T/pref.dskt"
expect_err_contains "preference pairs are packed a pair a row" "... says why"
check "... and leaves nothing" no_output "$T/x"
expect_exit 65 "plain and chat records together" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 "$T/docs.dskt" "$T/chat.dskt"
expect_err_contains "separate datasets" "kind mixing is explained"
check "mixed kinds: no output" no_output "$T/x"
python3 -c 'import sys; sys.stdout.buffer.write(open(sys.argv[1], "rb").read()[:32])' "$T/docs.dskt" > "$T/hdr.dskt"
expect_exit 65 "a stream with no records and no trailer" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 "$T/hdr.dskt"
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-2] ^= 1; sys.stdout.buffer.write(b)' \
    "$T/docs.dskt" > "$T/tail.dskt"
expect_exit 65 "a trailer whose last (zero) bytes are not" dsk-pack -t "$T/tok.json" -o "$T/x" --seq-len 64 "$T/tail.dskt"
echo '{"model":{"type":"BPE","vocab":{}}}' > "$T/bad-tok.json"
expect_exit 65 "bad tokenizer" dsk-pack -t "$T/bad-tok.json" -o "$T/x" --seq-len 64 "$T/docs.dskt"

# ---- verify refuses damaged and incomplete datasets -------------------------------------------------
cp -r "$T/bf" "$T/bad"
python3 -c '
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) - 5000] ^= 4
open(p, "wb").write(b)' "$T/bad/shard-00000.mdb"
expect_exit 65 "verify: a flipped bit" dsk-pack verify "$T/bad"
expect_err_contains "MD5 mismatch" "verify names the damaged file"
cp -r "$T/bf" "$T/inc" && rm "$T/inc/MD5SUMS"
expect_exit 65 "verify: no MD5SUMS" dsk-pack verify "$T/inc"
rm "$T/inc/MANIFEST"
expect_exit 66 "info: no MANIFEST" dsk-pack info "$T/inc"
expect_err_contains "incomplete" "a directory without MANIFEST is called incomplete"
expect_exit 66 "info: a file, not a dataset directory (was 74)" dsk-pack info "$T/tok.json"
expect_err_contains "not a directory" "the message says so"
if [ -w /dev/full ]; then
    dsk-pack info "$T/bf" > /dev/full 2>"$T/err"; rc=$?
    check "info to a full disk: exit 74 ($rc)" test "$rc" -eq 74
    expect_err_contains "standard output: write error" "the write error is said"
fi
cp -r "$T/bf" "$T/extra" && echo x > "$T/extra/stray"
expect_exit 65 "verify: a file MD5SUMS does not list" dsk-pack verify "$T/extra"
# MD5SUMS made anew after an edit: verify still checks what the files say
resum() { (cd "$1" && md5sum shard-*.mdb tokenizer.json MANIFEST > MD5SUMS); }
cp -r "$T/bf" "$T/swap" && dsk-bpe train --vocab-size 300 -o "$T/swap/tokenizer.json" "$T/docs.jsonl" 2>/dev/null
resum "$T/swap"
expect_exit 65 "verify: a tokenizer.json that is not the one the MANIFEST names (it said OK)" dsk-pack verify "$T/swap"
expect_err_contains "the MANIFEST says" "... names both fingerprints"
expect_exit 65 "dsk-train refuses that dataset (it trained a checkpoint with the wrong tokenizer)" \
    dsk-train -q -j 2 -c nano -d "$T/swap" -o "$T/swap-ck" --steps 1
cp -r "$T/bf" "$T/level0" && python3 -c '
import json, sys; p = sys.argv[1]; m = json.load(open(p)); m["zstd_level"] = 0
open(p, "w").write(json.dumps(m, indent=2) + "\n")' "$T/level0/MANIFEST" && resum "$T/level0"
expect_exit 65 "verify: compressed rows under a MANIFEST that says zstd_level 0 (it said OK)" dsk-pack verify "$T/level0"
cp -r "$T/bf" "$T/meta" && python3 -c '
import sys
f = open(sys.argv[1], "r+b")
for off in (143, 4096 + 143):   # the last page number in both LMDB meta pages
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x10]))' "$T/meta/shard-00000.mdb"
expect_exit 65 "cat: a shard whose LMDB meta pages are damaged is bad data (it was 74, an I/O error)" dsk-pack cat "$T/meta"
expect_err_contains "the shard is damaged" "... and says so"
# Damage inside the B-tree: LMDB trusts its pages, and a bad one sent reads
# out of the map (SIGSEGV, no word of which file).
cp -r "$T/bf" "$T/leaf" && python3 - "$T/leaf/shard-00000.mdb" <<'PY'
import struct, sys
p = sys.argv[1]; d = bytearray(open(p, "rb").read())
leaves = [pg for pg in range(2, len(d) // 4096) if struct.unpack_from("<H", d, pg * 4096 + 10)[0] == 2]
pg = leaves[-1] * 4096                                    # the meta database's leaf, written last
node = pg + struct.unpack_from("<H", d, pg + 16)[0]       # its first node
struct.pack_into("<H", d, node + 2, 0xFFFF)               # the value's size: past the end of the file
open(p, "wb").write(d)
PY
expect_exit 65 "cat: a leaf whose value runs past the file (it died of SIGSEGV)" dsk-pack cat "$T/leaf"
expect_err_contains "the shard is damaged (a value of" "... and says so"
# A branch page with one more child than it has: LMDB's cursor descends
# past its stack (MDB_CURSOR_FULL, once an internal error, status 74).
cp -r "$T/bf" "$T/branch" && python3 - "$T/branch/shard-00000.mdb" <<'PY'
import struct, sys
p = sys.argv[1]; d = bytearray(open(p, "rb").read())
branches = [pg for pg in range(2, len(d) // 4096) if struct.unpack_from("<H", d, pg * 4096 + 10)[0] == 1]
lower = branches[0] * 4096 + 12                           # mp_lower: the end of its node pointers
struct.pack_into("<H", d, lower, struct.unpack_from("<H", d, lower)[0] + 4)
open(p, "wb").write(d)
PY
rc=0; dsk-pack cat "$T/branch" > /dev/null 2> "$T/err" || rc=$?
check "cat: a branch page with a child too many is damage, 65 (it was 74, LMDB's internal error)" \
    sh -c "[ $rc = 65 ] || [ $rc = 0 ]"
check "... which the message says" sh -c "[ $rc = 0 ] || grep -q 'the shard is damaged' '$T/err'"
check "bytes flipped in the B-tree's pages: 0 or 65 from every read, never a signal" python3 - "$T/bf" "$T/flip" <<'PY'
import os, random, shutil, subprocess, sys
src, dst = sys.argv[1:]
random.seed(11)
# ASan's memcmp interceptor would report LMDB's compare that leaves the map
# before it runs; the read itself faults into the region that catches it.
env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":intercept_memcmp=0")
for trial in range(40):
    shutil.rmtree(dst, ignore_errors=True); shutil.copytree(src, dst)
    p = f"{dst}/shard-00000.mdb"; d = bytearray(open(p, "rb").read())
    for _ in range(random.choice([1, 4, 16])):
        pg = random.randrange(2, len(d) // 4096)
        d[pg * 4096 + random.choice([random.randrange(64), random.randrange(4096)])] = random.randrange(256)
    open(p, "wb").write(d)
    for split in ("train", "val"):
        r = subprocess.run(["dsk-pack", "cat", dst, "--split", split], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=env)
        if r.returncode not in (0, 65):
            sys.exit(f"trial {trial} {split}: exit {r.returncode}: {r.stderr.decode()[-200:]}")
PY
# A signal mid-run (here SIGUSR1, which Slurm's --signal sends) leaves no DIR.tmp.PID
mkfifo "$T/slow.dskt"
dsk-pack -q -t "$T/tok.json" -o "$T/usr1" --seq-len 8 "$T/slow.dskt" & pid=$!
exec 3>"$T/slow.dskt"; head -c 1000 "$T/docs.dskt" >&3
for _ in $(seq 50); do ls "$T" | grep -q '^usr1\.tmp\.' && break; sleep 0.1; done
kill -USR1 "$pid"; wait "$pid"; rc=$?; exec 3>&-
check "SIGUSR1 ends dsk-pack with 138 ($rc) and removes its temporary directory" \
    sh -c "test $rc -eq 138 && ! ls '$T' | grep -q '^usr1'"
# nohup: a SIGHUP the tool was started with ignored stays ignored
nohup dsk-pack -q -t "$T/tok.json" -o "$T/hup" --seq-len 8 "$T/slow.dskt" > /dev/null 2>&1 & pid=$!
for _ in $(seq 50); do ls "$T" | grep -q '^hup\.tmp\.' && break; sleep 0.1; done
kill -HUP "$pid"; sleep 0.5
check "under nohup, SIGHUP does not end dsk-pack" kill -0 "$pid"
kill -TERM "$pid"; wait "$pid"
check "... SIGTERM does, and removes its temporary directory" sh -c "! ls '$T' | grep -q '^hup'"
expect_exit 66 "verify: a file, not a dataset directory (was 74)" dsk-pack verify "$T/tok.json"
mkdir "$T/nomanifest"
expect_exit 66 "verify: a directory without a MANIFEST, as the man page says (was 65)" dsk-pack verify "$T/nomanifest"
expect_exit 73 "-o in a directory that does not exist" dsk-pack -q -t "$T/tok.json" -o "$T/nosuch/sub/ds" --seq-len 8 \
    "$T/docs.dskt"
expect_err_contains "nosuch/sub does not exist" "... is said to be missing (it said: not a directory)"
cp "$T/docs.dskt" "$T/$(printf 'caf\xe9').dskt"
dsk-pack -q -t "$T/tok.json" -o "$T/latin1" --seq-len 8 "$T/$(printf 'caf\xe9').dskt"
check "an input name that is not UTF-8: the MANIFEST is still JSON (U+FFFD in its command)" \
    python3 -c 'import json, sys; assert "\ufffd" in json.load(open(sys.argv[1], "rb"))["command"]' "$T/latin1/MANIFEST"
cp -r "$T/bf" "$T/nostats" && python3 -c '
import json, sys; p = sys.argv[1]; m = json.load(open(p)); del m["stats"]
open(p, "w").write(json.dumps(m, indent=2) + "\n")' "$T/nostats/MANIFEST" && resum "$T/nostats"
expect_exit 0 "info: a MANIFEST without its optional stats" dsk-pack info "$T/nostats"
check "... prints none (it made up zero counts that contradict the rows)" sh -c "! grep -q '\"stats\"' '$T/out'"
cp -r "$T/bf" "$T/upper" && sed -i 's/^\([0-9a-f]*\)/\U\1/; s/$/\r/' "$T/upper/MD5SUMS"
check "md5sum -c takes MD5SUMS with upper-case digits and CRLF lines" sh -c "cd '$T/upper' && md5sum --quiet -c MD5SUMS"
expect_exit 0 "... and so does verify (it called the files damaged)" dsk-pack verify "$T/upper"
(cd "$T/upper" && md5sum -b shard-*.mdb tokenizer.json MANIFEST > MD5SUMS)
expect_exit 0 "verify takes md5sum -b's 'HEX *NAME' lines" dsk-pack verify "$T/upper"
expect_exit 64 "verify takes one directory" dsk-pack verify
echo "1..$tap_n"
