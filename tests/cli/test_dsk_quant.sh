#!/usr/bin/env bash
# CLI tests for dsk-quant: the GPTQ checkpoint layout read back by an
# independent numpy decoder, RTN within half a step, GPTQ and AWQ below
# RTN's output error, the quantized checkpoint evaluated by dsk-eval,
# MoE experts, GGUF export, and refusals with no partial output.
. "$(dirname "$0")/lib.sh"
# numpy decodes the layout; Debian's python3-numpy is for /usr/bin/python3.
NPY=python3
python3 -c 'import numpy' 2>/dev/null || NPY=/usr/bin/python3

expect_exit 0 "--help" dsk-quant --help
expect_exit 0 "--version" dsk-quant --version
expect_exit 64 "no checkpoint" dsk-quant -m rtn -o "$T/q"
expect_exit 64 "no --method" dsk-quant "$T/none" -o "$T/q"
expect_exit 64 "an unknown method" dsk-quant -m nf4 "$T/none" -o "$T/q"
expect_exit 64 "3 bits" dsk-quant -m rtn --bits 3 "$T/none" -o "$T/q"
expect_exit 64 "gptq without --calib" dsk-quant -m gptq "$T/none" -o "$T/q"
for o in "--calib-rows 5" "--calib-split val" "--calib-batch 4" "--eval-rows 5" "--eval-split val"; do
    # shellcheck disable=SC2086
    expect_exit 64 "$o without its dataset" dsk-quant -m rtn $o "$T/none" -o "$T/q"
done
expect_err_contains "without --eval DIR" "... named"
expect_exit 66 "a missing checkpoint" dsk-quant -m rtn "$T/none" -o "$T/q"

python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(5)
words = "red green blue one two three cat dog bird sun moon star".split()
with open(f"{t}/docs.jsonl", "w") as f:
    for i in range(400):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(random.randint(5, 40))),
                            "split": "val" if i % 10 == 0 else "train"}) + "\n")
PY
dsk-bpe train --vocab-size 300 -o "$T/tok.json" "$T/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tok.json" -o "$T/docs.dskt" "$T/docs.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/ds" --seq-len 64 "$T/docs.dskt"
dsk-train -q -j 2 --config nano --data "$T/ds" --out "$T/ck" -b 8 --steps 60 --lr 3e-3 --warmup 5 --eval-every 0

expect_exit 64 "a group size that does not divide the layers" dsk-quant -m rtn -g 64 "$T/ck" -o "$T/q"
check "the refusal left no output" test ! -e "$T/q"

expect_exit 0 "rtn" dsk-quant -m rtn -g 32 -q "$T/ck" -o "$T/rtn" --eval "$T/ds" --json
cp "$T/out" "$T/rtn.json"
check "the GPTQ layout decodes (numpy, independently) to weights within half a step of the originals, or clipped at a group's end" \
    $NPY - "$T" <<'PY'
import json, struct, sys
import numpy as np
t = sys.argv[1]
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n]); data = raw[8 + n:]
    dt = {"F32": np.float32, "F16": np.float16, "I32": np.int32}
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dt[v["dtype"]]).reshape(v["shape"])
            for k, v in head.items() if k != "__metadata__"}
orig, q = load(f"{t}/ck/latest/model.safetensors"), load(f"{t}/rtn/model.safetensors")
cfg = json.load(open(f"{t}/rtn/config.json"))["quantization_config"]
assert cfg["quant_method"] == "gptq" and cfg["bits"] == 4 and cfg["group_size"] == 32 and cfg["checkpoint_format"] == "gptq"
linear = [k for k in orig if k.endswith("_proj.weight")]
assert linear and all(k not in q for k in linear)
for k in linear:
    p = k[:-len(".weight")]
    qw, qz, sc, gi = (q[p + s] for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    W = orig[k]; rows, cols = W.shape
    assert qw.shape == (cols // 8, rows) and qz.shape == (cols // 32, rows // 8) and sc.shape == (cols // 32, rows)
    shifts = np.arange(8, dtype=np.uint32) * 4
    codes = (qw.view(np.uint32)[:, None, :] >> shifts[None, :, None]) & 15          # [cols/8, 8, rows]
    codes = codes.reshape(cols, rows).T.astype(np.float32)                           # [rows, cols]
    zeros = ((qz.view(np.uint32)[:, :, None] >> shifts[None, None, :]) & 15) + 1     # v1: stored zero - 1
    zeros = zeros.reshape(cols // 32, rows).astype(np.float32)
    scale = sc.astype(np.float32)
    deq = scale[gi].T * (codes - zeros[gi].T)
    step = scale[gi].T
    # the clipping search shrinks a group's range: a weight past it takes
    # the end code (0 or 15), every other one the nearest
    inside = (codes > 0) & (codes < 15)
    assert np.all(np.abs(deq - W)[inside] <= step[inside] / 2 + 1e-6), (k, float(np.max(np.abs(deq - W) / step)))
    past = ~inside & (np.abs(deq - W) > step / 2 + 1e-6)
    assert np.all(np.where(codes == 0, W < deq, W > deq)[past]), k
# Everything else is kept in F32.
for k in orig:
    if k not in linear:
        assert q[k].dtype == np.float32 and np.array_equal(q[k], orig[k]), k
PY
expect_exit 0 "rtn --no-clip (each group's whole range)" dsk-quant -m rtn -g 32 --no-clip -q "$T/ck" -o "$T/rtn-nc" --json
check "the clipping search lowers rtn's weight error; without it no code is clipped" $NPY - "$T" <<'PY'
import json, struct, sys
import numpy as np
t = sys.argv[1]
clip, whole = json.load(open(f"{t}/rtn.json")), json.load(open(f"{t}/out"))
assert clip["mean_error"] < 0.97 * whole["mean_error"], (clip["mean_error"], whole["mean_error"])
raw = open(f"{t}/rtn-nc/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n]); data = raw[8 + n:]
def arr(k, dt):
    a, b = head[k]["data_offsets"]; return np.frombuffer(data[a:b], dt).reshape(head[k]["shape"])
raw0 = open(f"{t}/ck/latest/model.safetensors", "rb").read()
n0 = struct.unpack("<Q", raw0[:8])[0]
head0 = json.loads(raw0[8:8 + n0]); data0 = raw0[8 + n0:]
for k in (k for k in head0 if k.endswith("_proj.weight")):
    a, b = head0[k]["data_offsets"]; W = np.frombuffer(data0[a:b], np.float32).reshape(head0[k]["shape"])
    p = k[:-len(".weight")]
    qw, qz, sc, gi = arr(p + ".qweight", np.int32), arr(p + ".qzeros", np.int32), arr(p + ".scales", np.float16), arr(p + ".g_idx", np.int32)
    rows, cols = W.shape
    shifts = np.arange(8, dtype=np.uint32) * 4
    codes = ((qw.view(np.uint32)[:, None, :] >> shifts[None, :, None]) & 15).reshape(cols, rows).T.astype(np.float32)
    zeros = (((qz.view(np.uint32)[:, :, None] >> shifts[None, None, :]) & 15) + 1).reshape(cols // 32, rows)
    step = sc.astype(np.float32)[gi].T
    deq = step * (codes - zeros.astype(np.float32)[gi].T)
    assert np.all(np.abs(deq - W) <= step / 2 + 1e-6), k
PY
expect_exit 0 "dsk-eval reads the quantized checkpoint" dsk-eval ppl "$T/rtn" --data "$T/ds" --json
check "its perplexity is what dsk-quant measured after quantizing" python3 -c "
import json; q, e = json.load(open('$T/rtn.json')), json.load(open('$T/out'))
assert abs(q['ppl_after'] - e['ppl']) < 1e-3 * e['ppl'], (q, e)
assert abs(q['ppl_after'] / q['ppl_before'] - 1) < 0.05, q"

for m in gptq awq; do
    expect_exit 0 "$m with calibration" dsk-quant -m $m -g 32 -q "$T/ck" -o "$T/$m" --calib "$T/ds" --calib-rows 32 \
        --eval "$T/ds" --json
    cp "$T/out" "$T/$m.json"
    check "$m: lower output error than RTN on the calibration inputs, perplexity within 5%" python3 -c "
import json; r = json.load(open('$T/$m.json'))
assert r['mean_error'] < 0.8 * r['mean_rtn_error'], r
assert abs(r['ppl_after'] / r['ppl_before'] - 1) < 0.05, r"
done
check "the per-layer report lists every linear layer with both errors" python3 -c "
import json; r = json.load(open('$T/gptq/quant.json'))
assert r['method'] == 'gptq' and r['calibration_tokens'] > 0 and len(r['layers']) == 2 * 7, r
assert all(0 <= l['error'] < l['rtn_error'] for l in r['layers']), r['layers']"
expect_exit 0 "gptq with act-order" dsk-quant -m gptq -g 32 -q --act-order "$T/ck" -o "$T/gptq-ao" --calib "$T/ds" \
    --calib-rows 32 --json
check "act-order writes a column-to-group map that is not i / G" $NPY - "$T" <<'PY'
import json, struct, sys
import numpy as np
t = sys.argv[1]
raw = open(f"{t}/gptq-ao/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n]); data = raw[8 + n:]
k = "model.layers.0.mlp.down_proj.g_idx"; o = head[k]["data_offsets"]
g = np.frombuffer(data[o[0]:o[1]], np.int32)
assert sorted(np.bincount(g)) == [32, 32, 32] and not np.array_equal(g, np.arange(96) // 32), g
assert json.load(open(f"{t}/gptq-ao/config.json"))["quantization_config"]["desc_act"] is True
PY
expect_exit 0 "a chat-free generation runs on int4 kernels and on fp32 alike" bash -c "
    printf '{\"prompt\": \"red\", \"regex\": \".*\"}\n{\"prompt\": \"blue cat\", \"regex\": \".*\"}\n' > '$T/g.jsonl' &&
    dsk-eval gen '$T/gptq' '$T/g.jsonl' --max-tokens 8 --items '$T/i4.jsonl' >/dev/null &&
    DSK_NO_INT4=1 dsk-eval gen '$T/gptq' '$T/g.jsonl' --max-tokens 8 --items '$T/f32.jsonl' >/dev/null &&
    cmp '$T/i4.jsonl' '$T/f32.jsonl'"

expect_exit 65 "quantizing a quantized checkpoint" dsk-quant -m rtn -g 32 "$T/rtn" -o "$T/twice"
check "no output directory is left" test ! -e "$T/twice"
expect_exit 65 "training from a quantized checkpoint" dsk-train -q --stage continue --init "$T/rtn" --data "$T/ds" \
    --out "$T/tr" --steps 1
expect_err_contains "4-bit weights made by dsk-quant" "the message says why"
expect_exit 73 "an existing output without --force" dsk-quant -m rtn -g 32 -q "$T/ck" -o "$T/rtn"
expect_err_contains "already exists (--force replaces an earlier dsk-quant output)" "... and says how to replace it"
cp -r "$T/rtn" "$T/kept" && mkdir "$T/kept/notes" && echo x > "$T/kept/notes/a" && echo x > "$T/kept/README"
mkdir "$T/notq" && echo '{"some":"report"}' > "$T/notq/quant.json" && echo keep > "$T/notq/data.csv"
expect_exit 73 "--force: a directory whose quant.json is not dsk-quant's is refused" \
    dsk-quant -m rtn -g 32 -q "$T/ck" -o "$T/notq" --force
check "... and left whole" test -s "$T/notq/data.csv"
expect_exit 73 "--force: an output holding a directory is refused" dsk-quant -m rtn -g 32 -q "$T/ck" -o "$T/kept" --force
check "... and left whole (it used to lose its files, then fail)" test -s "$T/kept/model.safetensors" -a -s "$T/kept/README"
ln -s "$T/kept" "$T/link"
expect_exit 73 "--force: a symbolic link is refused" dsk-quant -m rtn -g 32 -q "$T/ck" -o "$T/link" --force
check "... and what it points at is left whole" test -s "$T/kept/quant.json"
ln -s "$T/nowhere" "$T/dangling"
expect_exit 73 "a dangling symbolic link as OUT" dsk-quant -m rtn -g 32 -q "$T/ck" -o "$T/dangling"
expect_exit 73 "OUT in a missing directory" dsk-quant -m rtn -g 32 -q "$T/ck" -o "$T/none/out"
expect_exit 64 "OUT an empty path" dsk-quant -m rtn -g 32 -q "$T/ck" -o ""
expect_exit 0 "--force replaces it" dsk-quant -m rtn -g 32 -q --sym "$T/ck" -o "$T/rtn" --force
check "no old or temporary directory left" test -z "$(ls "$T" | grep -e '\.old\.' -e '\.tmp\.')"
check "--sym stores zero point 8 everywhere" $NPY - "$T" <<'PY'
import json, struct, sys
import numpy as np
t = sys.argv[1]
raw = open(f"{t}/rtn/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n]); data = raw[8 + n:]
for k, v in head.items():
    if k.endswith(".qzeros"):
        z = np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], np.uint32)
        assert np.all(z == 0x77777777), k      # 8 - 1 in every nibble
PY
expect_exit 65 "gptq: calibration data from another tokenizer" bash -c "
    dsk-bpe train --vocab-size 280 -o '$T/tok2.json' '$T/docs.jsonl' 2>/dev/null &&
    dsk-bpe encode -t '$T/tok2.json' -o '$T/d2.dskt' '$T/docs.jsonl' &&
    dsk-pack -q -t '$T/tok2.json' -o '$T/ds2' --seq-len 64 '$T/d2.dskt' &&
    dsk-quant -m gptq -g 32 '$T/ck' -o '$T/bad' --calib '$T/ds2'"
check "no output directory is left" test ! -e "$T/bad"
mkdir -p "$T/nan" && cp "$T/ck/latest/"* "$T/nan/"
python3 - "$T/nan/model.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "r+b"); n = struct.unpack("<Q", f.read(8))[0]; head = json.loads(f.read(n))
a, b = head["model.layers.1.mlp.down_proj.weight"]["data_offsets"]
f.seek(8 + n + b - 4); f.write(struct.pack("<f", float("nan")))
PY
expect_exit 65 "a NaN weight is refused" dsk-quant -m rtn -g 32 -q "$T/nan" -o "$T/nan-q"
expect_err_contains "non-finite" "the NaN is named as such"
expect_exit 65 "dsk-eval refuses the NaN checkpoint too" dsk-eval ppl "$T/nan" --data "$T/ds" --rows 2
expect_err_contains "model.layers.1.mlp.down_proj.weight holds a non-finite value" "the tensor is named"
check "no output directory after a NaN" test ! -e "$T/nan-q"
cp -rL "$T/ck/latest" "$T/bigtok" && dsk-bpe train --vocab-size 400 -o "$T/bigtok/tokenizer.json" "$T/docs.jsonl" 2>/dev/null
expect_exit 65 "a tokenizer with more ids than the model's vocabulary is refused" \
    dsk-quant -m rtn -g 32 -q "$T/bigtok" -o "$T/bigtok-q"
expect_err_contains "tokens, more than the model's vocab_size 300" "the message gives both sizes"
expect_exit 65 "... by dsk-eval too (it failed mid-generation)" dsk-eval ppl "$T/bigtok" --data "$T/ds" --rows 2

# ---- MoE: every expert is quantized ----------------------------------------------------------------
dsk-train -q -j 2 --config nano-moe --data "$T/ds" --out "$T/moe" -b 8 --steps 30 --lr 3e-3 --warmup 5 --eval-every 0
expect_exit 0 "gptq of a MoE model" dsk-quant -m gptq -g 8 -q "$T/moe" -o "$T/moe-q" --calib "$T/ds" --calib-rows 16 \
    --eval "$T/ds" --json
check "MoE: experts and shared experts quantized, the router kept in F32; perplexity within 5%" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
r = json.load(open(f"{t}/out"))
names = [l["name"] for l in json.load(open(f"{t}/moe-q/quant.json"))["layers"]]
assert any(".mlp.experts.3.down_proj" in n for n in names) and any("shared_experts.up_proj" in n for n in names), names
assert not any(n.endswith("mlp.gate.weight") for n in names)
assert abs(r["ppl_after"] / r["ppl_before"] - 1) < 0.05 and r["mean_error"] < r["mean_rtn_error"], r
PY
expect_exit 0 "awq of a MoE model (scales folded into the norm and undone in the router)" dsk-quant -m awq -g 8 -q \
    "$T/moe" -o "$T/moe-awq" --calib "$T/ds" --calib-rows 16 --eval "$T/ds" --json
check "MoE AWQ: perplexity within 5%" python3 -c "
import json; r = json.load(open('$T/out')); assert abs(r['ppl_after'] / r['ppl_before'] - 1) < 0.05, r"

# ---- GGUF --------------------------------------------------------------------------------------------
expect_exit 65 "GGUF of a model with local attention layers is refused" dsk-quant --gguf "$T/x.gguf" "$T/ck"
check "no GGUF file is left" test ! -e "$T/x.gguf"
dsk-train -q -j 2 --config nano --set dsk_attention_pattern=G --data "$T/ds" --out "$T/glob" -b 8 --steps 20 \
    --eval-every 0
# A mixture of experts: llama.cpp's deepseek architecture (it was refused);
# the LHG-pattern MoE above is refused for its local layers.
expect_exit 65 "GGUF of the MoE model with local attention layers is refused" dsk-quant --gguf "$T/x.gguf" "$T/moe"
dsk-train -q -j 2 --config nano-moe --set dsk_attention_pattern=G --data "$T/ds" --out "$T/moeg" -b 8 --steps 10 \
    --eval-every 0
expect_exit 0 "GGUF export of a mixture of experts (deepseek)" dsk-quant --gguf "$T/moe.gguf" --gguf-type q8_0 "$T/moeg"
check "... as llama.cpp's deepseek: experts stacked, router f32, output written" python3 - "$T/moe.gguf" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:4] == b"GGUF" and b"deepseek.expert_count" in d and b"deepseek.leading_dense_block_count" in d
assert b"blk.1.ffn_gate_exps.weight" in d and b"blk.1.ffn_down_shexp.weight" in d and b"output.weight" in d
assert b"blk.0.ffn_gate_exps.weight" not in d and b"blk.0.ffn_gate.weight" in d   # the first layer is dense
PY
dsk-train -q -j 2 --config nano-moe --set dsk_attention_pattern=G --set dsk_balance=bias --data "$T/ds" \
    --out "$T/moeb" -b 8 --steps 2 --eval-every 0
expect_exit 65 "GGUF of a MoE balanced by a selection bias is refused" dsk-quant --gguf "$T/x.gguf" "$T/moeb"
expect_err_contains "balancing bias" "... saying why"
check "no GGUF file is left" test ! -e "$T/x.gguf"
for ty in f32 f16 q8_0; do
    expect_exit 0 "GGUF export $ty" dsk-quant --gguf "$T/m-$ty.gguf" --gguf-type $ty "$T/glob"
done
check "the GGUF files start with the v3 header and shrink with the type" python3 - "$T" <<'PY'
import os, struct, sys
t = sys.argv[1]
sizes = {}
for ty in ("f32", "f16", "q8_0"):
    raw = open(f"{t}/m-{ty}.gguf", "rb").read(24)
    magic, version, n_tensors, n_kv = struct.unpack("<4sIQQ", raw)
    assert magic == b"GGUF" and version == 3 and n_tensors == 1 + 2 * 9 + 1 and n_kv > 10, (ty, n_tensors, n_kv)
    sizes[ty] = os.path.getsize(f"{t}/m-{ty}.gguf")
assert sizes["f32"] > sizes["f16"] > sizes["q8_0"], sizes
PY
# an existing file is replaced only with --force, and never one of the checkpoint's own files
echo precious > "$T/precious.txt"
cp -rL "$T/glob/latest" "$T/noeos" && python3 - "$T/noeos/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["eos_token_id"] = None; c.pop("bos_token_id", None)
json.dump(c, open(sys.argv[1], "w"))
PY
expect_exit 0 "GGUF export of a configuration without eos_token_id" dsk-quant --gguf "$T/noeos.gguf" --gguf-type f32 \
    "$T/noeos"
check "... names the tokenizer's <|endoftext|> as end and beginning (llama.cpp took a default id)" \
    python3 - "$T/noeos.gguf" "$T/noeos/tokenizer.json" <<'PY'
import json, struct, sys
d = open(sys.argv[1], "rb").read()
_, _, _, n_kv = struct.unpack_from("<4sIQQ", d, 0)
at, kv = 24, {}
def value(t):
    global at
    if t == 8:
        (n,) = struct.unpack_from("<Q", d, at); at += 8 + n; return d[at - n:at].decode()
    if t == 9:
        (et, n) = struct.unpack_from("<IQ", d, at); at += 12; return [value(et) for _ in range(n)]
    fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}[t]
    (v,) = struct.unpack_from("<" + fmt, d, at); at += struct.calcsize(fmt); return v
for _ in range(n_kv):
    (n,) = struct.unpack_from("<Q", d, at); at += 8; key = d[at:at + n].decode(); at += n
    (t,) = struct.unpack_from("<I", d, at); at += 4
    kv[key] = value(t)
eot = [a["id"] for a in json.load(open(sys.argv[2]))["added_tokens"] if a["content"] == "<|endoftext|>"][0]
assert kv["tokenizer.ggml.eos_token_id"] == eot and kv["tokenizer.ggml.bos_token_id"] == eot, (eot, kv.get("tokenizer.ggml.eos_token_id"))
PY
expect_exit 73 "--gguf onto an existing file without --force" dsk-quant --gguf "$T/precious.txt" "$T/glob"
expect_err_contains "already exists (--force replaces it)" "... says --force replaces it"
check "... which is left as it was" grep -qx precious "$T/precious.txt"
expect_exit 0 "--gguf --force replaces it" dsk-quant --gguf "$T/precious.txt" --force --gguf-type q8_0 "$T/glob"
check "... with the GGUF" cmp -s "$T/precious.txt" "$T/m-q8_0.gguf"
cp "$T/glob/latest/model.safetensors" "$T/glob-weights"
expect_exit 73 "--gguf onto the checkpoint's own weights, even with --force" \
    dsk-quant --gguf "$T/glob/latest/model.safetensors" --force "$T/glob"
expect_err_contains "is a file of the checkpoint being exported" "... says why"
check "... which are left as they were" cmp -s "$T/glob-weights" "$T/glob/latest/model.safetensors"
mkdir -p "$T/elsewhere" && ln -sf ../glob/latest/model.safetensors "$T/elsewhere/w.gguf"
expect_exit 73 "--gguf onto a link elsewhere to the checkpoint's weights, with --force" \
    dsk-quant --gguf "$T/elsewhere/w.gguf" --force "$T/glob"
check "... which are left as they were (the link was followed and the weights replaced)" \
    cmp -s "$T/glob-weights" "$T/glob/latest/model.safetensors"
expect_exit 64 "--gguf ''" dsk-quant --gguf "" "$T/glob"
expect_exit 73 "--gguf onto a directory" dsk-quant --gguf "$T/glob" --force "$T/glob"
cp -rL "$T/glob/latest" "$T/big"
# set_first_weight FILE VALUE [TENSOR]: the first weight of TENSOR, by default layer 1's up_proj
set_first_weight() {
    python3 - "$1" "$2" "${3:-model.layers.1.mlp.up_proj.weight}" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "r+b"); n = struct.unpack("<Q", f.read(8))[0]; head = json.loads(f.read(n))
a, b = head[sys.argv[3]]["data_offsets"]
f.seek(8 + n + a); f.write(struct.pack("<f", float(sys.argv[2])))
PY
}
set_first_weight "$T/big/model.safetensors" 1e5
expect_exit 65 "GGUF f16 of a weight past 65504 is refused (it became inf)" \
    dsk-quant --gguf "$T/big.gguf" --gguf-type f16 "$T/big"
expect_err_contains "model.layers.1.mlp.up_proj.weight: a weight of magnitude 100000 is beyond what f16 holds" \
    "the message names the tensor and the type"
check "no GGUF file is left" test ! -e "$T/big.gguf"
expect_exit 0 "... and exports as f32" dsk-quant --gguf "$T/big.gguf" --gguf-type f32 "$T/big"
set_first_weight "$T/big/model.safetensors" 1e6
expect_exit 65 "GGUF q4_0 of a weight its scale cannot reach is refused (it was clipped)" \
    dsk-quant --gguf "$T/big4.gguf" --gguf-type q4_0 "$T/big"
expect_exit 65 "int4 of a weight whose scale does not fit fp16" dsk-quant -m rtn -g 32 -q "$T/big" -o "$T/big-q"
expect_err_contains "model.layers.1.mlp.up_proj.weight: int4 pack: scale" "the message names the tensor"
cp -rL "$T/big" "$T/huge" && set_first_weight "$T/huge/model.safetensors" 1e30
expect_exit 65 "... by AWQ too, every trial's error NaN" dsk-quant -m awq -g 32 -q -j 1 "$T/huge" -o "$T/big-q" \
    --calib "$T/ds" --calib-rows 4
expect_err_contains "model.layers.1.mlp.up_proj.weight: int4 pack: scale" \
    "... names that tensor (it read memory never written, and named another)"
cp -rL "$T/glob/latest" "$T/big-down"
set_first_weight "$T/big-down/model.safetensors" 1e6 model.layers.0.mlp.down_proj.weight
expect_exit 0 "AWQ where only plain rounding overflows fp16" dsk-quant -m awq -g 32 -q -j 1 --json "$T/big-down" \
    -o "$T/big-down-q" --calib "$T/ds" --calib-rows 4
check "... its report is JSON (it wrote -nan), the RTN figure null" python3 -c "
import json, sys
r = json.load(open(sys.argv[1])); q = json.load(open(sys.argv[2]))
assert r['mean_rtn_error'] is None, r
assert any(l['rtn_error'] is None for l in q['layers']), q" "$T/out" "$T/big-down-q/quant.json"
expect_exit 64 "an option the method does not use: --act-order with rtn" dsk-quant -m rtn --act-order "$T/ck" -o "$T/q"
expect_err_contains "--act-order does not apply to --method rtn" "the message names the option and the method"
expect_exit 64 "--grid with gptq" dsk-quant -m gptq --grid 3 --calib "$T/ds" "$T/ck" -o "$T/q"
expect_exit 64 "--json with --gguf" dsk-quant --gguf "$T/y.gguf" --json "$T/glob"
expect_exit 64 "--gguf-type without --gguf" dsk-quant -m rtn --gguf-type q4_0 "$T/ck" -o "$T/q"
check "no output from the refusals" test ! -e "$T/q" -a ! -e "$T/y.gguf"
expect_exit 0 "--json: paths with quotes and tabs" dsk-quant -m rtn -g 32 -q --json "$T/ck" -o "$T/q\"	x"
check "--json is JSON whatever the path" python3 -c "
import json, sys; j = json.loads(open('$T/out').read()); assert j['output'].endswith('q\"\tx'), j"
expect_exit 64 "an unknown GGUF type" dsk-quant --gguf "$T/y.gguf" --gguf-type q3_k "$T/glob"
echo "1..$tap_n"
