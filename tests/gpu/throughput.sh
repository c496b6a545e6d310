#!/bin/sh
# Training throughput on the GPU: tokens/s and MFU of the 125m and 1.3b
# dense presets and a 1.3b-sized MoE at sequence 2048, one table.
#
#   tests/gpu/throughput.sh [BUILD_DIR [JSON_OUT]]   (run.sh calls it last;
#                                                    make bench with JSON_OUT)
#
# MFU = model FLOPs per second over the device's dense bf16 peak; model
# FLOPs are 3 x the forward's (dsk_config_flops_per_token: every matrix
# product a token goes through, the LM head included, plus causal
# attention over the keys each query sees; recomputation not counted).
# The peak comes from the device's name (H100/H200 SXM 989 TFLOPS, A100
# 312) or DSK_PEAK_TFLOPS; with neither, MFU prints as "?".  Targets
# (issue 8): 1.3b dense bf16 >= 50%, MoE >= 35%.  attn: the attention
# kernels, async (bf16 tensor cores through mma.sync, tiles
# double-buffered by cp.async: what bf16 / fp16 run by default), mma (the
# same without the pipelining; DSK_CUDA_ATTN=mma), wide (the pipelined ones
# with 32 query rows a warp and no mask arithmetic on full tiles, the same
# bits; not yet the default: a GPU has to say it is faster), stored (wide's
# with dQ = dS K from the dS the dK/dV kernel kept, instead of computing S
# and dP again), mma8 (those in blocks
# of 8 warps), wmma (through WMMA; DSK_CUDA_ATTN=wmma) or
# fp32 (CUDA cores; DSK_CUDA_ATTN=fp32), cudnn (cuDNN's fused attention,
# DSK_CUDA_ATTN=cudnn, not yet measured on a GPU; a shape whose plan
# cuDNN refuses runs on the default's kernels, its reason printed as a
# "# " line): 1.3b bf16
# runs with each, to show the gains, and once with
# DSK_CUDA_HALF_CACHE=0 (every product converting its
# operands afresh: the gain of reusing them); the MoE once more with its
# experts' products spread over 4 side streams (DSK_CUDA_GROUPED_STREAMS=4,
# not yet the default: a GPU has to say it is faster).  After the 1.3b and MoE
# rows: where their bf16 steps' time goes, op by op and part by part
# (DSK_CUDA_PROFILE=1, cuda/op_profile.cu), from runs of their own.  The
# table is a measurement, not a test: the exit status is non-zero only
# when a run fails.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-${BUILD:-build}}
JSON_OUT=${2:-}
BENCH=$BUILD/tests/tools/train_bench
TRAIN=$BUILD/bin/dsk-train
STEPS=${STEPS:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
peak=${DSK_PEAK_TFLOPS:-}
if [ -z "$peak" ]; then
    case "$name" in
        *H100*|*H200*|*GH200*) peak=989 ;;
        *A100*) peak=312 ;;
        *) peak= ;;
    esac
fi

# The presets with a GPT-2-sized vocabulary; the MoE is 1.3b's shape with
# 16 fine-grained experts (a quarter of the dense FFN each), 2 routed and
# 1 shared active per token, the first layer dense (DeepSeekMoE's layout).
"$TRAIN" --show-config 125m --set vocab=50304 >"$tmp/125m.json"
"$TRAIN" --show-config 1.3b --set vocab=50304 >"$tmp/1.3b.json"
"$TRAIN" --show-config 1.3b --set vocab=50304 --set experts=16 --set shared_experts=1 --set top_k=2 \
    --set d_ff_expert=1376 --set first_dense_layers=1 >"$tmp/moe-1.3b.json"

printf '%-10s %-9s %-5s %-5s %-9s %10s %9s %8s %7s %8s  %s\n' model batch dtype attn recompute "tok/s" "step ms" \
    TFLOPS MFU "act GiB" target
status=0
row() {  # model B T dtype recompute target [DSK_CUDA_ATTN [DSK_CUDA_HALF_CACHE [DSK_CUDA_GROUPED_STREAMS]]]
    attn=${7:-auto}
    out=$(env DSK_CUDA_ATTN="$attn" ${8:+DSK_CUDA_HALF_CACHE=$8} ${9:+DSK_CUDA_GROUPED_STREAMS=$9} \
        "$BENCH" "$tmp/$1.json" "$2" "$3" "$STEPS" 0 cuda \
        "$4" "$5" 2>"$tmp/err") || {
        if grep -q 'DSK_CUDA_ATTN=cudnn: cannot load' "$tmp/err"; then   # a machine without cuDNN
            printf '%-10s %-9s %-5s %-5s %-9s skipped: %s\n' "$1" "$2x$3" "$4" "$attn" "$5" "$(tail -n 1 "$tmp/err")"
            return
        fi
        printf '%-10s %-9s %-5s %-5s %-9s FAILED: %s\n' "$1" "$2x$3" "$4" "$attn" "$5" "$(tail -n 1 "$tmp/err")"
        status=1
        return
    }
    # a cuDNN plan refused (the default kernels ran that shape): its reason
    grep -h 'DSK_CUDA_ATTN=cudnn' "$tmp/err" | sed 's/^/# /' || true
    python3 - "$out" "$1" "$2x$3" "$4" "$5" "${peak:-0}" "$6" "$tmp/rows.jsonl" "$attn" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
model, batch, dtype, rc, peak, target, rows, attn = sys.argv[2:10]
# the attention kernels: fp32 CUDA cores, or (with bf16 / fp16) tensor cores
attn = "fp32" if dtype == "fp32" or attn == "fp32" else "async" if attn == "auto" else attn
tflops = r["gflops"] / 1e3
mfu = 100 * tflops / float(peak) if float(peak) > 0 else None
print(f"{model:<10} {batch:<9} {dtype:<5} {attn:<5} {'yes' if rc == '1' else 'no':<9} {r['tokens_per_s']:10.0f} "
      f"{r['step_ms']:9.1f} {tflops:8.1f} {f'{mfu:.1f}%' if mfu is not None else '?':>7} "
      f"{r['activation_bytes'] / 2**30:8.2f}  {target}")
with open(rows, "a") as f:
    f.write(json.dumps(dict(r, model=model, batch=batch, attention=attn, recompute=rc == "1", tflops=tflops, mfu_percent=mfu,
                            peak_tflops=float(peak) or None)) + "\n")
PY
}
# profile MODEL: its bf16 steps again with DSK_CUDA_PROFILE=1 (events around
# every op: a little slower, so not a row of the table), the backend's table
# printed at once ("# " lines), so that a run cut short by its time limit
# keeps it.
profile() {  # MODEL [DSK_CUDA_ATTN]
    if [ "${2:-}" = cudnn ] && grep -q 'DSK_CUDA_ATTN=cudnn: cannot load' "$tmp/err"; then
        return   # the row before it said so: no cuDNN here
    fi
    if DSK_CUDA_ATTN=${2:-auto} DSK_CUDA_PROFILE=1 "$BENCH" "$tmp/$1.json" 8 2048 "$STEPS" 0 cuda bf16 0 >/dev/null \
        2>"$tmp/err"; then
        echo "# $1, batch 8x2048, bf16${2:+, DSK_CUDA_ATTN=$2}: $STEPS steps, DSK_CUDA_PROFILE=1 (the stream's time per op; share of the steps)"
        sed -n '/^cuda profile/,$p' "$tmp/err" | sed 's/^/# /'
    else
        echo "# profile of $1: FAILED: $(tail -n 1 "$tmp/err")"
        status=1
    fi
}
row 125m 8 2048 fp32 0 ""
row 125m 8 2048 bf16 0 ""
# The targets and their profiles first: a run cut short by its time limit
# loses only the comparisons after them.
row 1.3b 8 2048 bf16 0 ">=50% MFU"
profile 1.3b
row moe-1.3b 8 2048 bf16 0 ">=35% MFU"
profile moe-1.3b
# cuDNN's fused attention (DSK_CUDA_ATTN=cudnn): not yet measured on a GPU
row 1.3b 8 2048 bf16 0 "attention: cuDNN's fused kernels" cudnn
row moe-1.3b 8 2048 bf16 0 "attention: cuDNN's fused kernels" cudnn
profile 1.3b cudnn
row moe-1.3b 8 2048 bf16 0 "experts' products on 4 side streams" auto "" 4
row 1.3b 8 2048 bf16 0 "attention: 32 rows a warp, unmasked full tiles" wide
row 1.3b 8 2048 bf16 0 "attention: wide, dQ from a kept dS" stored
row moe-1.3b 8 2048 bf16 0 "wide attention, 4 side streams" wide "" 4
row 1.3b 8 2048 bf16 0 "" mma
row 1.3b 8 2048 bf16 0 "" mma8
row 1.3b 8 2048 bf16 0 "" wmma
row 1.3b 8 2048 bf16 0 "" fp32
row 1.3b 8 2048 bf16 0 "16-bit operand copies off" auto 0
row 1.3b 8 2048 bf16 1 ""
echo "# ${name:-unknown device}, bf16 peak ${peak:-unknown} TFLOPS; $STEPS steps after one warm-up, AdamW included"


# The attention alone, causal, at the 1.3b preset's shape (16 heads of
# 128) and the 125m's (12 heads of 64), 4 x 2048: the fp32 kernels against
# the bf16 tensor-core ones (WMMA's, then mma.sync's, DSK_CUDA_ATTN=mma,
# those in blocks of 8 warps, DSK_CUDA_ATTN=mma8, and the default's, the
# same pipelined by cp.async, DSK_CUDA_ATTN=wide's and stored's, and
# cuDNN's, DSK_CUDA_ATTN=cudnn, when libcudnn loads).
for shape in "16 16 128" "12 12 64"; do
    # shellcheck disable=SC2086
    if att=$("$BUILD/tests/tools/attn_bench" cuda 4 2048 $shape 2>"$tmp/err"); then
        echo "$att" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    kind = {"fp32": "CUDA cores (fp32)", "wmma": "tensor cores, WMMA (bf16)", "mma": "tensor cores, mma.sync (bf16)",
            "mma8": "tensor cores, mma.sync, 8 warps (bf16)",
            "auto": "tensor cores, mma.sync, cp.async double-buffered (bf16)",
            "wide": "tensor cores, mma.sync, cp.async, 32 rows a warp (bf16)",
            "stored": "tensor cores, mma.sync, wide, dQ from a kept dS (bf16)",
            "cudnn": "cuDNN fused attention (bf16)"}.get(r["kernels"], r["kernels"])
    print("# attention B%d T%d H%d hd%d causal, %s: forward %.2f ms (%.1f TFLOPS), backward %.2f ms (%.1f TFLOPS)"
          % (r["B"], r["T"], r["H"], r["hd"], kind, r["fwd_ms"], r["fwd_tflops"], r["bwd_ms"], r["bwd_tflops"]))'
    else
        echo "# attention alone, heads $shape: FAILED: $(tail -n 1 "$tmp/err")"
        status=1
    fi
done

# Decoding's products, one token: int4 codes (the 4-bit checkpoints of
# dsk-quant) against fp32 weights through cuBLAS, at 1.3b's attention and
# FFN shapes.
for shape in "2048 2048" "5504 2048" "2048 5504"; do
    # shellcheck disable=SC2086
    if dec=$("$BUILD/tests/tools/decode_bench" cuda $shape 128 2>"$tmp/err"); then
        echo "$dec" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("# decode %dx%d, 1 row: int4 %.1f us (%.0f GB/s), fp32 %.1f us (%.0f GB/s): %.2fx"
      % (r["rows"], r["cols"], r["int4_us"], r["int4_gbps"], r["fp32_us"], r["fp32_gbps"], r["speedup"]))'
    else
        echo "# decode $shape: FAILED: $(tail -n 1 "$tmp/err")"
        status=1
    fi
done
if [ -n "$JSON_OUT" ]; then
    python3 -c 'import json, sys; print(json.dumps({"device": sys.argv[2], "rows": [json.loads(l) for l in open(sys.argv[1])]}))' \
        "$tmp/rows.jsonl" "${name:-unknown}" >"$JSON_OUT" 2>/dev/null || echo '{"rows": []}' >"$JSON_OUT"
fi
exit $status
