#!/usr/bin/env bash
# dsk-quant against llama.cpp (llama-cpp-python from PyPI, in a private venv):
#   - perplexity increase over fp32 on held-out fortunes: dsk's RTN, GPTQ
#     and AWQ against llama.cpp's Q4_K_M made by llama.cpp's own quantizer
#     from dsk's f32 GGUF export, every model scored on the same tokens in
#     the same windows;
#   - the mean KL divergence of each 4-bit model's next-token distribution
#     from its float model's, on the same tokens (llama-perplexity's
#     --kl-divergence measure): on a small model the perplexity change is
#     within noise, the divergence is not.  Q4_K_M twice: as llama.cpp makes
#     it (its embedding, also the output layer when tied, in Q6_K) and with
#     that tensor kept f32, as dsk-quant keeps it;
#   - GGUF fidelity: llama.cpp's perplexity on dsk's f32 and q8_0 exports
#     against dsk-eval's on the checkpoint, and on the f32 export of a
#     mixture of experts (tiny-moe, all-global: llama.cpp's deepseek);
#   - batch-1 int4 matrix-vector against fp32 sgemv.
# The model: the tiny preset with all-global attention (GGUF's llama
# architecture has no sliding window) and d_ff 768 (q4_K and group 128
# divide it), trained QUANT_STEPS steps on the demo's data.
#   quant_bench.sh BIN BUILD OUT   -> OUT/quant-results.json
set -euo pipefail
BIN=$1 BUILD=$2 out=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
q=$out/quant
mkdir -p "$q"
STEPS=${QUANT_STEPS:-300}
CTX=256
venv=$out/llama-venv
# llama.cpp built for AVX2 (GGML_NATIVE=OFF), as dsk's int4 kernels are, not
# for this CPU: a native build also takes AVX-512 and AMX where the CPU
# lists them, and its q8_0 kernels died of SIGILL on a VM whose CPU lists
# AMX (the hypervisor did not grant it).  A native build left by an older
# bench is replaced.
if [ ! -x "$venv/bin/python" ] || [ ! -e "$venv/.avx2-build" ] || ! "$venv/bin/python" -c 'import llama_cpp, numpy' 2>/dev/null; then
    echo "bench: installing llama-cpp-python (builds llama.cpp for AVX2: several minutes) into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$venv/bin/pip" install -q --no-cache-dir llama-cpp-python numpy >&2
    touch "$venv/.avx2-build"
fi
demo=$root/build/demo
make -s -C "$root/pipelines/demo" BIN="$BIN" OUT="$demo" "$demo/data/MANIFEST" >&2
if [ ! -e "$q/ckpt/latest/model.safetensors" ]; then
    echo "bench: training the bench model ($STEPS steps)" >&2
    rm -rf "$q/ckpt"
    "$BIN/dsk-train" -q --config tiny --set dsk_attention_pattern=G --set d_ff=768 --data "$demo/data" \
        --out "$q/ckpt" --steps "$STEPS" --batch 8 --lr 2e-3 --min-lr 2e-4 --warmup 20 --eval-every 0 --keep 1
fi
# Held-out text: the test split's documents.
python3 -c '
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
text = "\n\n".join(d["text"] for d in docs if d.get("split") == "test")
open(sys.argv[2], "w").write(text[:60000])' "$demo/docs.jsonl" "$q/heldout.txt"

# nll CKPT OUT [--kl REF]
nll() { "$BUILD/tests/tools/nll_dump" "$1" "$q/heldout.txt" "$CTX" "${@:3}" > "$2"; }
ppl_of() { python3 -c 'import json, math, sys; r = json.load(open(sys.argv[1])); print(math.exp(sum(r["nll"]) / len(r["nll"])))' "$1"; }
nll "$q/ckpt" "$q/fp32.json"
for m in rtn gptq awq; do
    calib=""
    [ $m = rtn ] || calib="--calib $demo/data --calib-rows 128"
    /usr/bin/time -f '%e' -o "$q/$m.time" "$BIN/dsk-quant" -q -m $m -g 128 $calib "$q/ckpt" -o "$q/$m" --force --json \
        > "$q/$m-quant.json"
    nll "$q/$m" "$q/$m.json" --kl "$q/ckpt"
done
"$BIN/dsk-quant" -q --force --gguf "$q/f32.gguf" --gguf-type f32 "$q/ckpt"
"$BIN/dsk-quant" -q --force --gguf "$q/q8_0.gguf" --gguf-type q8_0 "$q/ckpt"
"$venv/bin/python" "$root/tests/bench/llama_quantize.py" "$q/f32.gguf" "$q/q4_k_m.gguf" 15
"$venv/bin/python" "$root/tests/bench/llama_quantize.py" "$q/f32.gguf" "$q/q4_k_m_e.gguf" 15 --f32-embedding
for g in f32 q8_0 q4_k_m q4_k_m_e; do
    kl=()
    case $g in q4_k_m*) kl=(--kl-ref "$q/f32.gguf");; esac
    # A peer that crashes is a row that says so, not the end of make bench.
    "$venv/bin/python" "$root/tests/bench/gguf_llamacpp.py" "$q/$g.gguf" "$q/heldout.txt" --reference "$q/fp32.json" \
        --threads "$(nproc)" "${kl[@]}" > "$q/llama-$g.json" || {
        rc=$?
        echo "bench: llama.cpp failed on $g.gguf (exit $rc)" >&2
        echo "{\"error\": \"llama.cpp exited with status $rc\"}" > "$q/llama-$g.json"
    }
done
# The mixture of experts: tiny-moe all-global (8 experts of 176, top 2, one shared, the first layer dense).
if [ ! -e "$q/ckpt-moe/latest/model.safetensors" ]; then
    moe_steps=$((STEPS > 2 ? STEPS / 3 : 1))
    echo "bench: training the MoE bench model ($moe_steps steps)" >&2
    rm -rf "$q/ckpt-moe"
    "$BIN/dsk-train" -q --config tiny-moe --set dsk_attention_pattern=G --data "$demo/data" --out "$q/ckpt-moe" \
        --steps "$moe_steps" --batch 8 --lr 2e-3 --min-lr 2e-4 --warmup 20 --eval-every 0 --keep 1
fi
nll "$q/ckpt-moe" "$q/moe-fp32.json"
"$BIN/dsk-quant" -q --force --gguf "$q/moe-f32.gguf" --gguf-type f32 "$q/ckpt-moe"
"$venv/bin/python" "$root/tests/bench/gguf_llamacpp.py" "$q/moe-f32.gguf" "$q/heldout.txt" \
    --reference "$q/moe-fp32.json" --threads "$(nproc)" > "$q/llama-moe_f32.json" ||
    echo "{\"error\": \"llama.cpp exited with status $?\"}" > "$q/llama-moe_f32.json"
"$BUILD/tests/tools/int4_bench" 4096 4096 > "$q/int4.txt" 2>&1 || true

python3 - "$q" <<'PY'
import json, math, os, re, sys
q = sys.argv[1]
def ppl(name):
    r = json.load(open(f"{q}/{name}.json")); return math.exp(sum(r["nll"]) / len(r["nll"]))
base = ppl("fp32")
llama = {g: json.load(open(f"{q}/llama-{g}.json")) for g in ("f32", "q8_0", "q4_k_m", "q4_k_m_e", "moe_f32")}
failed = {g: r["error"] for g, r in llama.items() if "error" in r}   # a peer that crashed: said, not fatal
get = lambda g, k: llama[g].get(k) if g not in failed else None
fmt = lambda v, f: format(v, f) if v is not None else "failed"
toks = get("f32", "predicted")
print(f"dsk-quant vs llama.cpp: tiny (all-global, d_ff 768), {toks} held-out tokens in windows of 256")
print(f"{'model':44s} {'perplexity':>11s} {'vs fp32':>9s}")
rows = {}
print(f"{'dsk fp32 (dsk-eval)':44s} {base:11.3f} {'':>9s}")
for m in ("rtn", "gptq", "awq"):
    p = ppl(m); rows[m] = p
    secs = float(open(f"{q}/{m}.time").read())
    print(f"{'dsk int4 ' + m.upper() + ' g128':44s} {p:11.3f} {100 * (p / base - 1):+8.2f}%   ({secs:.0f} s to quantize)")
lf = get("f32", "llamacpp_ppl")
for g, label in (("f32", "llama.cpp on dsk's f32 GGUF"), ("q8_0", "llama.cpp on dsk's q8_0 GGUF"),
                 ("q4_k_m", "llama.cpp Q4_K_M (its quantizer, from f32)")):
    p = get(g, "llamacpp_ppl")
    print(f"{label:44s} {fmt(p, '11.3f')} {fmt(100 * (p / lf - 1) if p and lf else None, '+8.2f')}%"
          + (f"   ({failed[g]})" if g in failed else ""))
print(f"GGUF fidelity: llama.cpp/dsk perplexity f32 {fmt(get('f32', 'ppl_rel_diff'), '+.2e')}, "
      f"q8_0 {fmt(get('q8_0', 'ppl_rel_diff'), '+.2e')}, MoE (deepseek) f32 {fmt(get('moe_f32', 'ppl_rel_diff'), '+.2e')} "
      f"(target within 1%); MoE top-1 agreement {fmt(100 * get('moe_f32', 'top1_agreement') if get('moe_f32', 'top1_agreement') is not None else None, '.2f')}%")
inc = {m: rows[m] / base - 1 for m in rows}
k = get("q4_k_m", "llamacpp_ppl") / lf - 1 if get("q4_k_m", "llamacpp_ppl") and lf else None
print(f"perplexity increase: GPTQ {100 * inc['gptq']:+.2f}%, AWQ {100 * inc['awq']:+.2f}%, RTN {100 * inc['rtn']:+.2f}%, "
      f"llama.cpp Q4_K_M {fmt(100 * k if k is not None else None, '+.2f')}%")
# KL(fp32 || 4-bit) per token, and how often the two pick the same next token
def kl_of(name):
    r = json.load(open(f"{q}/{name}.json"))
    return sum(r["kl"]) / len(r["kl"]), sum(a == b for a, b in zip(r["argmax"], r["ref_argmax"])) / len(r["kl"])
kl = {m: kl_of(m) for m in rows}
lkl = {g: (get(g, "kl_mean"), get(g, "kl_top1_agreement")) for g in ("q4_k_m", "q4_k_m_e")}
print(f"{'KL divergence from fp32 (nats/token), same top token':56s}")
for m in rows:
    print(f"  {'dsk int4 ' + m.upper() + ' g128 (embedding f32)':54s} {kl[m][0]:.3e}  {100 * kl[m][1]:6.2f}%")
for g, label in (("q4_k_m", "llama.cpp Q4_K_M (embedding Q6_K)"), ("q4_k_m_e", "llama.cpp Q4_K_M, embedding f32")):
    v, a = lkl[g]
    print(f"  {label:54s} {fmt(v, '.3e')}  {fmt(100 * a if a is not None else None, '6.2f')}%"
          + (f"   ({failed[g]})" if g in failed else ""))
text = open(f"{q}/int4.txt").read()
m = re.findall(r"speedup int4 vs fp32 sgemv: cold ([0-9.]+)x", text)
print("int4 batch-1 matvec vs fp32 sgemv (4096x4096): " + (m[0] + "x" if m else "see " + q + "/int4.txt"))
json.dump({"fp32_ppl": base, "dsk": rows, "llamacpp": {g: get(g, "llamacpp_ppl") for g in llama},
           "llamacpp_failed": failed, "gguf_rel_diff": {g: get(g, "ppl_rel_diff") for g in llama}, "increase": inc,
           "llamacpp_q4_k_m_increase": k, "kl": {m: v[0] for m, v in kl.items()},
           "top1_agreement": {m: v[1] for m, v in kl.items()}, "llamacpp_kl": {g: v[0] for g, v in lkl.items()},
           "llamacpp_top1_agreement": {g: v[1] for g, v in lkl.items()}, "int4_bench": text}, open(f"{q}/../quant-results.json", "w"))
PY
