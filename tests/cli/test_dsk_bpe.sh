#!/usr/bin/env bash
# CLI tests for dsk-bpe: import of the published tokenizers, exact
# conformance with tiktoken and Hugging Face tokenizers, round trips, errors.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
S=${DSK_SHARED_TOKENIZERS:-$root/../shared/data/tokenizers}
here=$(dirname "$0")

expect_exit 0 "--help" dsk-bpe --help
expect_exit 0 "--version" dsk-bpe --version
expect_exit 64 "no command" dsk-bpe
expect_exit 64 "unknown command" dsk-bpe frobnicate
expect_err_contains "unknown command 'frobnicate'" "unknown command is named"

# ---- import -----------------------------------------------------------------------
for name in gpt2 cl100k_base o200k_base; do
    pat=${name%_base}
    # shellcheck disable=SC2046
    expect_exit 0 "import $name.tiktoken" dsk-bpe import --tiktoken "$S/$name.tiktoken" --pattern "$pat" \
        $(python3 "$here/conformance.py" specials "$S/$name.json") -o "$T/$name.json"
done
expect_exit 0 "import GPT-2 encoder.json + vocab.bpe" dsk-bpe import --gpt2 "$S/gpt2-encoder.json" "$S/gpt2-vocab.bpe" -o "$T/gpt2-hf.json"
# settings of a tokenizer.json that change the ids are refused, not ignored
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
base = json.load(open(f"{t}/gpt2-hf.json"))
for name, key, value in (("dropout", "dropout", 0.5), ("suffix", "end_of_word_suffix", "</w>"),
                         ("prefix", "continuing_subword_prefix", "##"), ("lstrip", None, None)):
    u = json.loads(json.dumps(base))
    if key: u["model"][key] = value
    else: u["added_tokens"][0]["lstrip"] = True
    json.dump(u, open(f"{t}/hf-{name}.json", "w"))
PY
for name in dropout suffix prefix lstrip; do
    expect_exit 65 "a tokenizer.json with $name is refused" dsk-bpe info -t "$T/hf-$name.json"
    expect_err_contains "which dsk-bpe does not apply (its ids would differ)" "... saying why"
done
fp1=$(dsk-bpe info -t "$T/gpt2.json" | grep fingerprint); fp2=$(dsk-bpe info -t "$T/gpt2-hf.json" | grep fingerprint)
check "GPT-2 from tiktoken and from encoder.json: same fingerprint" test -n "$fp1" -a "$fp1" = "$fp2"
dsk-bpe info -t "$T/cl100k_base.json" > "$T/info"
check "info: vocab size" grep -qx "vocab_size: 100277" "$T/info"
check "info: specials" grep -qx "special: 100257 <|endoftext|>" "$T/info"
check "info: fingerprint is stable" test "$(dsk-bpe info -t "$T/cl100k_base.json" | grep fingerprint)" = "$(grep fingerprint "$T/info")"
expect_exit 66 "missing tiktoken file" dsk-bpe import --tiktoken "$T/nope" --pattern gpt2 -o "$T/x.json"
printf 'IQ== 0\nnot base64 1\n' > "$T/bad.tiktoken"
expect_exit 65 "bad tiktoken line" dsk-bpe import --tiktoken "$T/bad.tiktoken" --pattern gpt2 -o "$T/x.json"
expect_err_contains "bad.tiktoken:2:" "bad line is named"
check "no output after a failed import" test ! -e "$T/x.json"
printf 'IQ== 0\n' > "$T/small.tiktoken"
expect_exit 65 "incomplete byte vocabulary" dsk-bpe import --tiktoken "$T/small.tiktoken" --pattern gpt2 -o "$T/x.json"
expect_exit 64 "import without --pattern" dsk-bpe import --tiktoken "$S/gpt2.tiktoken" -o "$T/x.json"
expect_exit 64 "bad --pattern regex" dsk-bpe import --tiktoken "$S/gpt2.tiktoken" --pattern '(' -o "$T/x.json"
expect_exit 64 "bad --special" dsk-bpe import --tiktoken "$S/gpt2.tiktoken" --pattern gpt2 --special '<x>' -o "$T/x.json"
expect_exit 64 "--special that is not UTF-8" dsk-bpe import --tiktoken "$S/gpt2.tiktoken" --pattern gpt2 \
    --special $'\xff\xfe=50257' -o "$T/x.json"
expect_exit 65 "one special token text with two ids" dsk-bpe import --tiktoken "$S/gpt2.tiktoken" --pattern gpt2 \
    --special 'X=50257' --special 'X=50258' -o "$T/x.json"
expect_err_contains "special token 'X' has two ids, 50257 and 50258" "... is named"
# Ids past 32 bits were cut to 32 (rank 2^32 + 256 became id 256).
{ cat "$S/gpt2.tiktoken"; echo "YWI= 4294967552"; } > "$T/wide.tiktoken"
expect_exit 65 "a tiktoken rank past the id limit" dsk-bpe import --tiktoken "$T/wide.tiktoken" --pattern gpt2 -o "$T/x.json"
expect_err_contains "rank 4294967552 is over the limit" "the rank is named as written"
python3 - "$T/gpt2.json" "$T/wide.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); t["added_tokens"][0]["id"] = 4295067296; json.dump(t, open(sys.argv[2], "w"))
PY
expect_exit 65 "an added token's id past the limit" dsk-bpe info -t "$T/wide.json"
# (*NO_JIT) leaves the pattern for pcre2_match: it encodes (was 65 on every record).
python3 - "$T/gpt2.json" "$T/nojit.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "Regex":
                o[k] = "(*NO_JIT)" + v
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(t["pre_tokenizer"]); json.dump(t, open(sys.argv[2], "w"))
PY
echo '{"text":"hello world, again"}' > "$T/one.jsonl"
check "a (*NO_JIT) pattern encodes as the JIT one does" \
    test "$(dsk-bpe encode -t "$T/nojit.json" --ids "$T/one.jsonl")" = "$(dsk-bpe encode -t "$T/gpt2.json" --ids "$T/one.jsonl")"
expect_exit 66 "missing tokenizer.json" dsk-bpe info -t "$T/missing.json"
if [ -w /dev/full ]; then
    dsk-bpe info -t "$T/gpt2.json" > /dev/full 2>"$T/err"; rc=$?
    check "info to a full disk: exit 74 ($rc)" test "$rc" -eq 74
    expect_exit 74 "import -o /dev/full" dsk-bpe import --tiktoken "$S/gpt2.tiktoken" --pattern gpt2 -o /dev/full
    expect_err_contains "/dev/full: write error: No space left on device" "... the file and the reason are named"
fi
echo '{"model":{"type":"WordPiece","vocab":{}}}' > "$T/wp.json"
expect_exit 65 "not a BPE tokenizer.json" dsk-bpe info -t "$T/wp.json"

# ---- encode and decode ---------------------------------------------------------------
python3 "$here/conformance.py" corpus "$T/corpus.jsonl" "$root"
for name in gpt2 cl100k_base o200k_base; do
    expect_exit 0 "encode with $name" dsk-bpe encode -t "$T/$name.json" --ids -o "$T/$name.ids" "$T/corpus.jsonl"
    check "$name: one line per document" test "$(wc -l < "$T/$name.ids")" -eq "$(wc -l < "$T/corpus.jsonl")"
    dsk-bpe decode -t "$T/$name.json" --ids "$T/$name.ids" > "$T/$name.back"
    check "$name: decode(encode(x)) == x" python3 -c '
import json, sys
a = [json.loads(l)["text"] for l in open(sys.argv[1])]
b = [json.loads(l)["text"] for l in open(sys.argv[2])]
sys.exit(a != b)' "$T/corpus.jsonl" "$T/$name.back"
done
printf '15339\t1917\r\n' > "$T/tabs.ids"
expect_exit 0 "decode --ids takes tabs and a CRLF line end" dsk-bpe decode -t "$T/cl100k_base.json" --ids "$T/tabs.ids"
check "... as spaces" grep -qx '{"text":"hello world"}' "$T/out"
echo '12 abc' > "$T/bad.ids"
expect_exit 65 "decode --ids: a word that is not an id" dsk-bpe decode -t "$T/cl100k_base.json" --ids "$T/bad.ids"
expect_err_contains "column 4: 'abc' is not a token id" "... is named, with its column (it said: expected ids below N)"
echo '12 99999999999' > "$T/big.ids"
expect_exit 65 "decode --ids: an id past the vocab" dsk-bpe decode -t "$T/cl100k_base.json" --ids "$T/big.ids"
expect_err_contains "token id 99999999999 is not below the vocab size" "... is named as such, however long"
dsk-bpe encode -j1 -t "$T/cl100k_base.json" -o "$T/j1.dskt" "$T/corpus.jsonl"
dsk-bpe encode -j3 -t "$T/cl100k_base.json" -o "$T/j3.dskt" "$T/corpus.jsonl"
check "same .dskt bytes with 1 and 3 threads" cmp -s "$T/j1.dskt" "$T/j3.dskt"
printf 'Hello<|endoftext|>world\n' > "$T/special.txt"
dsk-bpe encode -t "$T/cl100k_base.json" --ids --records lines --allow-special "$T/special.txt" > "$T/out"
check "--allow-special makes the special id" grep -qw 100257 "$T/out"
dsk-bpe encode -t "$T/cl100k_base.json" --ids --records lines "$T/special.txt" > "$T/out"
check "without it, special text is ordinary text" sh -c "! grep -qw 100257 '$T/out'"
echo "1 2 99999999" > "$T/badids"
expect_exit 65 "decode: id out of range" dsk-bpe decode -t "$T/gpt2.json" --ids "$T/badids"
expect_err_contains "badids:1:" "decode error names the line"
printf '{"text": nope}\n' > "$T/bad.jsonl"
expect_exit 65 "encode: malformed JSONL" dsk-bpe encode -t "$T/gpt2.json" --ids "$T/bad.jsonl"

# ---- training ------------------------------------------------------------------------
python3 - "$T/train.txt" <<'PY'
import random, sys
rng = random.Random(5)
words = ["the", "cat", "sat", "on", "mat", "then", "there", "these", "cats", "matter", "at", "hat", "that"]
with open(sys.argv[1], "w") as f:
    for _ in range(600):
        f.write(" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "\n")
PY
expect_exit 0 "train" dsk-bpe train --records lines --pattern '[a-z]+| ' --vocab-size 300 -o "$T/trained.json" "$T/train.txt"
printf '{"text":"a b","split":"validation"}\n' > "$T/badsplit.jsonl"
expect_exit 65 "encode: a split other than train, val or test (held-out text is not trained on)" \
    dsk-bpe encode -t "$T/trained.json" --ids "$T/badsplit.jsonl"
expect_err_contains '"split": "validation" is not' "... named"
printf '{"text":"a b","split":null}\n' > "$T/nullsplit.jsonl"
expect_exit 0 "encode: a split that is null is train, as if not given" \
    dsk-bpe encode -t "$T/trained.json" --ids "$T/nullsplit.jsonl"
expect_exit 64 "encode --pattern (the tokenizer's pattern is the one used)" \
    dsk-bpe encode -t "$T/trained.json" --pattern gpt2 --ids "$T/badsplit.jsonl"
expect_err_contains "--pattern does not apply to dsk-bpe encode" "... named"
expect_exit 64 "info -o" dsk-bpe info -t "$T/trained.json" -o "$T/x.json"
expect_exit 64 "decode --records" dsk-bpe decode -t "$T/trained.json" --records lines /dev/null
expect_exit 65 "encode: a record over --max-record-bytes" dsk-bpe encode -t "$T/trained.json" --ids --max-record-bytes 10 \
    "$T/badsplit.jsonl"
expect_err_contains "record longer than the 10-byte limit" "... named"
# records without the text field are refused, as encode refuses them (a mistyped --field trained on nothing)
printf '{"text":"a b"}\n{"txet":"c d"}\n' > "$T/nofield.jsonl"
expect_exit 65 "train on a record without its text field" dsk-bpe train --vocab-size 300 -o "$T/nf.json" "$T/nofield.jsonl"
expect_err_contains "nofield.jsonl:2: no string \"text\" field" "... named with its line"
check "... and no tokenizer is written" test ! -e "$T/nf.json"
expect_exit 65 "train --field that no record has" dsk-bpe train --vocab-size 300 --field body -o "$T/nf.json" "$T/nofield.jsonl"
expect_exit 65 "train on no text at all" dsk-bpe train --vocab-size 300 -o "$T/nf.json" /dev/null
check "... and no tokenizer is written" test ! -e "$T/nf.json"
# every record encode would refuse, train refuses with encode's words
printf '{"text":"a b"}\n{"prompt":"a","chosen":"b"}\n' > "$T/partial.jsonl"
expect_exit 65 "train on a preference record without its rejected answer" dsk-bpe train --vocab-size 300 -o "$T/nf.json" "$T/partial.jsonl"
expect_err_contains "partial.jsonl:2: no string \"text\" field, no \"messages\", no prompt/chosen/rejected" "... as encode says it"
printf '{"messages":[]}\n' > "$T/nomsg.jsonl"
expect_exit 65 "train on empty messages" dsk-bpe train --vocab-size 300 -o "$T/nf.json" "$T/nomsg.jsonl"
expect_err_contains "nomsg.jsonl:1: \"messages\" must be a non-empty array" "... as encode says it"
printf '{"messages":[{"role":"bot","content":"x"}]}\n' > "$T/role.jsonl"
expect_exit 65 "train on a message of an unknown role" dsk-bpe train --vocab-size 300 -o "$T/nf.json" "$T/role.jsonl"
printf '{"prompt":"p","chosen":["a","b"],"rejected":"c"}\n' > "$T/answers.jsonl"
expect_exit 65 "train on an answer of several messages" dsk-bpe train --vocab-size 300 -o "$T/nf.json" "$T/answers.jsonl"
check "... and no tokenizer is written" test ! -e "$T/nf.json"
# a preference prompt given as messages is counted too (the texts train sees are encode's)
printf '{"prompt":[{"role":"user","content":"zqzqzq zqzqzq"}],"chosen":"y","rejected":[{"role":"assistant","content":"n"}]}\n' > "$T/pref.jsonl"
dsk-bpe train --vocab-size 270 -o "$T/pref.json" "$T/pref.jsonl" 2>/dev/null
check "train counts a preference prompt's messages" python3 -c '
import json, sys
vocab = json.load(open(sys.argv[1]))["model"]["vocab"]
assert any("zqzq" in t for t in vocab), sorted(vocab)[-20:]' "$T/pref.json"
python3 "$here/bpe_reference.py" '[a-z]+| ' 300 5 < "$T/train.txt" > "$T/ref.merges"
python3 - "$T/trained.json" > "$T/dsk.merges" <<'PY'
import json, sys
bs = list(range(33, 127)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
back = {chr(c): b for b, c in zip(bs, cs)}
d = json.load(open(sys.argv[1]))
special = {a["id"] for a in d["added_tokens"]}   # in the vocab too, for Hugging Face
for k, i in sorted(d["model"]["vocab"].items(), key=lambda kv: kv[1]):
    if i >= 256 and i not in special:
        print(bytes(back[ch] for ch in k).hex())
PY
check "training matches the naive reference merge for merge ($(wc -l < "$T/ref.merges") merges)" cmp -s "$T/ref.merges" "$T/dsk.merges"
shuf --random-source=<(yes) "$T/train.txt" > "$T/shuffled.txt"
dsk-bpe train --records lines --pattern '[a-z]+| ' --vocab-size 300 -o "$T/trained2.json" "$T/shuffled.txt"
check "training does not depend on input order" cmp -s "$T/trained.json" "$T/trained2.json"
head -300 "$T/train.txt" > "$T/shard1"; tail -n +301 "$T/train.txt" > "$T/shard2"
dsk-bpe count --records lines --pattern '[a-z]+| ' -o "$T/c1.bin" "$T/shard1"
dsk-bpe count --records lines --pattern '[a-z]+| ' -o "$T/c2.bin" "$T/shard2"
expect_exit 0 "train --counts (map-reduce)" dsk-bpe train --counts "$T/c1.bin" --counts "$T/c2.bin" --vocab-size 300 -o "$T/trained3.json"
check "count shards + train = one train" cmp -s "$T/trained.json" "$T/trained3.json"
head -c 100 "$T/c1.bin" > "$T/cut.bin"
expect_exit 65 "truncated counts file" dsk-bpe train --counts "$T/cut.bin" --vocab-size 300 -o "$T/x.json"
expect_err_contains "truncated at offset" "truncation is reported with the offset"
expect_exit 64 "train without --vocab-size" dsk-bpe train -o "$T/x.json" "$T/train.txt"
expect_exit 64 "vocab size too small for the specials" dsk-bpe train --vocab-size 258 -o "$T/x.json" "$T/train.txt"
expect_exit 65 "train: a special token whose text is a learned token's" dsk-bpe train --records lines \
    --pattern '[a-z]+| ' --vocab-size 300 --special the -o "$T/clash.json" "$T/train.txt"
expect_err_contains "are both 'the' in tokenizer.json's vocab" "... says which (it wrote a file it could not load, exit 0)"
check "... and writes nothing" test ! -e "$T/clash.json"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
d = json.load(open(f"{t}/trained.json")); del d["model"]["merges"][3]; json.dump(d, open(f"{t}/nomerge.json", "w"))
d = json.load(open(f"{t}/trained.json")); m = d["model"]["merges"]
i = [k for k, (l, r) in enumerate(m) if len(l) >= 2][0]; s = "".join(m[i]); m[i] = [s[0], s[1:]]
json.dump(d, open(f"{t}/resplit.json", "w"))
PY
expect_exit 65 "a tokenizer.json missing a merge" dsk-bpe info -t "$T/nomerge.json"
expect_err_contains "every such token needs its merge" "... is refused (Hugging Face gives other ids for it)"
expect_exit 65 "a tokenizer.json whose merge splits a token otherwise" dsk-bpe info -t "$T/resplit.json"
expect_err_contains "of other halves than merging by id order" "... is refused"
# A pattern that does not match all text: what it skips is a piece too, counted and merged, as Hugging
# Face's Split (Isolated), which dsk's tokenizer.json names, makes it (it was encoded byte by byte).
for _ in $(seq 300); do echo '{"text":"self value = value self"}'; done > "$T/gaps.jsonl"
dsk-bpe train --vocab-size 300 --pattern '\p{L}+(?= )' -o "$T/gaps.json" "$T/gaps.jsonl" 2>/dev/null
echo '{"text":"self value = value self"}' | dsk-bpe encode -t "$T/gaps.json" --ids > "$T/gaps.ids"
check "text a pattern skips is merged as a piece (6 ids, as HF gives; byte by byte, 12)" test "$(wc -w < "$T/gaps.ids")" -eq 6
# A pre-token of 16 MiB or more is counted in parts (it was left out: "the inputs hold no text").
python3 -c "print('a' * 17000000)" > "$T/run.txt"
expect_exit 0 "train on one pre-token of 17 MB" dsk-bpe train --records lines --vocab-size 262 -o "$T/run.json" \
    "$T/run.txt"
# 1025 distinct words, 10 times each (a document each), past --max-words 1024: pruned, and said so.  All
# counts tie: the table used to drop every word (all <= the median), keeping the last one read.
python3 -c "
import itertools, json
for w in [''.join(p) for p in itertools.product('abcdefghijklmno', repeat=3)][:1025]:
    for _ in range(10): print(json.dumps({'text': w}))" > "$T/many.jsonl"
expect_exit 0 "count past --max-words" dsk-bpe count --max-words 1024 -o "$T/many.bin" "$T/many.jsonl"
expect_err_contains "memory bound: pruned" "... says what it dropped"
check "... half the table at a time, not every word when the counts tie" test "$(stat -c %s "$T/many.bin")" -gt 4096
expect_exit 0 "... and trains from it" dsk-bpe train --counts "$T/many.bin" --vocab-size 300 -o "$T/pruned.json"
dsk-bpe info -t "$T/trained.json" > "$T/info"
check "trained tokenizer has the chat specials" grep -q "special: .* <|assistant|>" "$T/info"

# ---- the .dskt stream --------------------------------------------------------------------
cat > "$T/mixed.jsonl" <<'JS'
{"text":"the cat sat on the mat","split":"val"}
{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"where is the cat"},{"role":"assistant","content":"on the mat"}]}
{"prompt":"where is the cat","chosen":"on the mat","rejected":"that hat"}
JS
expect_exit 0 "encode to .dskt" dsk-bpe encode -t "$T/trained.json" -o "$T/mixed.dskt" "$T/mixed.jsonl"
check ".dskt starts with its magic" test "$(head -c 4 "$T/mixed.dskt")" = DSKT
dsk-bpe decode -t "$T/trained.json" "$T/mixed.dskt" > "$T/decoded"
check "plain record round trip with its split" grep -qx '{"text":"the cat sat on the mat","split":"val"}' "$T/decoded"
check "chat record: the template" grep -q '"text":"<|system|>be brief<|end|><|user|>where is the cat<|end|><|assistant|>on the mat<|end|><|endoftext|>"' "$T/decoded"
n_mask=$(dsk-bpe encode -t "$T/trained.json" --ids <(sed -n 2p "$T/mixed.jsonl") | wc -w)
check "chat record: only the assistant turn is trained" python3 -c '
import json, sys
rec = [json.loads(l) for l in open(sys.argv[1])][1]
answer = sys.argv[2]
sys.exit(not (0 < rec["trained_tokens"] < int(sys.argv[3])))' "$T/decoded" "on the mat" "$n_mask"
# tool use (OpenAI's fine-tuning records): the tools' system turn, a call in the assistant turn (trained),
# its result in a user turn
cat > "$T/tools.jsonl" <<'JS'
{"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":"rain?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{\"city\": \"Oslo\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"rain"},{"role":"assistant","content":"yes"}]}
JS
expect_exit 0 "encode a record with tools, a call and its result" dsk-bpe encode -t "$T/trained.json" -o "$T/tools.dskt" "$T/tools.jsonl"
dsk-bpe decode -t "$T/trained.json" "$T/tools.dskt" > "$T/tools.decoded"
check "tool use: the template" python3 - "$T/tools.decoded" <<'PY2'
import json, sys
rec = json.loads(open(sys.argv[1]).read())
want = ('<|system|>You can call these tools. To call one, answer <tool_call>{"name":NAME,"arguments":{...}}</tool_call>, '
        'a line a call.\n{"name":"weather","parameters":{"type":"object"}}<|end|><|user|>rain?<|end|>'
        '<|assistant|><tool_call>{"name":"weather","arguments":{"city":"Oslo"}}</tool_call><|end|>'
        '<|user|><tool_response>\nrain\n</tool_response><|end|><|assistant|>yes<|end|><|endoftext|>')
assert rec["text"] == want, rec["text"]
PY2
n_call=$(printf '%s\n' '{"text":"<tool_call>{\"name\":\"weather\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>"}' \
    '{"text":"yes"}' | dsk-bpe encode -t "$T/trained.json" --ids - | wc -w)
check "tool use: the call and the answer are trained, nothing else" python3 -c '
import json, sys
rec = json.loads(open(sys.argv[1]).read())
sys.exit(not (rec["trained_tokens"] == int(sys.argv[2]) + 2))' "$T/tools.decoded" "$n_call"
printf '%s\n' '{"messages":[{"role":"user","content":"x","tool_calls":[]}]}' \
    '{"messages":[{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"w","arguments":"[1]"}}]}]}' \
    '{"tools":[{"type":"function"}],"messages":[{"role":"user","content":"x"}]}' > "$T/badtools.jsonl"
i=0
for why in "message 0: only an assistant message has \"tool_calls\"" \
    "message 0: tool_calls[0].function.arguments must be a JSON object" "tools[0] must be {\"type\": \"function\""; do
    i=$((i + 1))
    sed -n "${i}p" "$T/badtools.jsonl" > "$T/bt.jsonl"
    expect_exit 65 "a bad tool record ($i) is refused" dsk-bpe encode -t "$T/trained.json" -o "$T/bt.dskt" "$T/bt.jsonl"
    expect_err_contains "$why" "... saying why: $why"
done
check "preference record: prompt, chosen, rejected" grep -q '"prompt":"<|user|>where is the cat<|end|><|assistant|>","chosen":"on the mat<|end|>","rejected":"that hat<|end|>"' "$T/decoded"
# a preference answer may be a call (tools for its prompt): the call is the answer's text
cat > "$T/prefcall.jsonl" <<'JS'
{"tools":[{"type":"function","function":{"name":"weather"}}],"prompt":"rain?","chosen":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{\"city\": \"Oslo\"}"}}]}],"rejected":[{"role":"assistant","content":"no idea"}]}
JS
expect_exit 0 "encode a preference record whose chosen answer calls a tool" \
    dsk-bpe encode -t "$T/trained.json" -o "$T/prefcall.dskt" "$T/prefcall.jsonl"
check "... the call is the chosen answer, the tools in the prompt" grep -q \
    '"prompt":"<|system|>You can call these tools.*{\\"name\\":\\"weather\\"}<|end|><|user|>rain?<|end|><|assistant|>","chosen":"<tool_call>{\\"name\\":\\"weather\\",\\"arguments\\":{\\"city\\":\\"Oslo\\"}}</tool_call><|end|>","rejected":"no idea<|end|>"' \
    <(dsk-bpe decode -t "$T/trained.json" "$T/prefcall.dskt")
echo '{"prompt":"Q","chosen":[{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"w","arguments":"[1]"}}]}],"rejected":"B"}' > "$T/prefbad.jsonl"
expect_exit 65 "a preference answer with a bad call is refused" \
    dsk-bpe encode -t "$T/trained.json" -o "$T/prefbad.dskt" "$T/prefbad.jsonl"
expect_err_contains '"chosen" message 0: tool_calls[0].function.arguments must be a JSON object' "... saying which answer and why"
echo '{"prompt":"Q","chosen":[{"role":"assistant","content":"A"},{"role":"user","content":"more"}],"rejected":"B"}' > "$T/multi.jsonl"
echo '{"prompt":"Q","chosen":"A","rejected":[{"content":"B"}]}' > "$T/norole.jsonl"
expect_exit 65 "a preference answer without the assistant role is refused" \
    dsk-bpe encode -t "$T/trained.json" -o "$T/norole.dskt" "$T/norole.jsonl"
expect_exit 65 "a preference answer of several messages is refused (the last one was taken: here a user's)" \
    dsk-bpe encode -t "$T/trained.json" -o "$T/multi.dskt" "$T/multi.jsonl"
check "... and no .dskt is left" test ! -e "$T/multi.dskt"
head -c 60 "$T/mixed.dskt" > "$T/cut.dskt"
expect_exit 65 "truncated .dskt" dsk-bpe decode -t "$T/trained.json" "$T/cut.dskt"
expect_err_contains "truncated at offset" ".dskt truncation names the offset"
cp "$T/mixed.dskt" "$T/flip.dskt"; printf '\x07' | dd of="$T/flip.dskt" bs=1 seek=45 conv=notrunc 2>/dev/null
expect_exit 65 "corrupt .dskt" dsk-bpe decode -t "$T/trained.json" "$T/flip.dskt"
expect_exit 65 ".dskt with another tokenizer" dsk-bpe decode -t "$T/gpt2.json" "$T/mixed.dskt"
expect_err_contains "made with tokenizer" "fingerprint mismatch is explained"
expect_exit 65 "chat needs the chat specials" dsk-bpe encode -t "$T/gpt2.json" -o "$T/x.dskt" "$T/mixed.jsonl"
check "no .dskt left after a failed encode" test ! -e "$T/x.dskt"

# ---- tokenizer.json as Hugging Face writes it -------------------------------------------
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
d = json.load(open(f"{t}/gpt2.json"))
def save(name, **changes):
    e = json.loads(json.dumps(d)); e.update(changes); json.dump(e, open(f"{t}/{name}.json", "w"))
# the Hub's gpt2: a ByteLevel pre-tokenizer with its own regex
save("hf-bytelevel", pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                    "use_regex": True})
save("hf-lowercase", normalizer={"type": "Lowercase"})
save("hf-prefix", pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True, "use_regex": True})
split = json.loads(json.dumps(d["pre_tokenizer"])); split["pretokenizers"][0]["behavior"] = "Removed"
save("hf-removed", pre_tokenizer=split)
save("hf-whitespace", pre_tokenizer={"type": "Whitespace"})
seq = json.loads(json.dumps(d["pre_tokenizer"])); seq["pretokenizers"].reverse()
save("hf-after", pre_tokenizer=seq)   # the regex on the byte-mapped text
PY
expect_exit 0 "a ByteLevel pre-tokenizer with use_regex (Hugging Face's gpt2) loads" dsk-bpe info -t "$T/hf-bytelevel.json"
check "... as the same tokenizer" test "$(grep fingerprint "$T/out")" = "$(dsk-bpe info -t "$T/gpt2.json" | grep fingerprint)"
check "our tokenizer.json lists each special token in the vocab too, with its id" python3 -c '
import json, sys; d = json.load(open(sys.argv[1]))
assert d["added_tokens"] and all(d["model"]["vocab"][a["content"]] == a["id"] for a in d["added_tokens"])' "$T/gpt2.json"
for bad in lowercase:"Lowercase normalizer" prefix:"add_prefix_space" removed:"behavior Removed" \
           whitespace:"Whitespace pre-tokenizer" after:"Split pre-tokenizer after the ByteLevel"; do
    expect_exit 65 "tokenizer.json with a ${bad#*:} is refused (its ids would differ)" dsk-bpe info -t "$T/hf-${bad%%:*}.json"
    expect_err_contains "${bad#*:}" "... and the message names it"
done

# ---- conformance with the reference implementations ------------------------------------
if [ -n "${DSK_PY:-}" ] && "$DSK_PY" -c 'import tiktoken, tokenizers' 2>/dev/null; then
    for name in gpt2 cl100k_base o200k_base; do
        "$DSK_PY" "$here/conformance.py" tiktoken "$name" "$S" "$T/corpus.jsonl" "$T/$name.tiktoken.ids"
        check "$name: ids identical to tiktoken on $(wc -l < "$T/corpus.jsonl") documents" cmp -s "$T/$name.ids" "$T/$name.tiktoken.ids"
        "$DSK_PY" "$here/conformance.py" hf "$T/$name.json" "$T/corpus.jsonl" "$T/$name.hf.ids"
        check "$name: our tokenizer.json loads in HF tokenizers, same ids" cmp -s "$T/$name.ids" "$T/$name.hf.ids"
        check "$name: HF tokenizers gives each special token the id dsk-bpe does (cl100k's ids have gaps)" \
            "$DSK_PY" "$here/conformance.py" hf-specials "$T/$name.json"
    done
elif [ -n "${DSK_OFFLINE:-}" ]; then
    tap_n=$((tap_n + 1)); echo "ok $tap_n - conformance with tiktoken # SKIP DSK_OFFLINE is set"
else
    not_ok "conformance with tiktoken" "DSK_PY must name a python with tiktoken and tokenizers (tests/run-all makes one); set DSK_OFFLINE=1 to skip"
fi
echo "1..$tap_n"
