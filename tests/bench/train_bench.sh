#!/usr/bin/env bash
# make bench, dsk-train: CPU training tokens/s against PyTorch training the
# same architecture (tests/bench/torch_train.py) on this machine, same
# thread count, in one run; GFLOP/s next to the measured sgemm peak.
#   train_bench.sh BIN BUILD_DIR OUT_DIR
set -euo pipefail
BIN=$1 BUILD=$2 out=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-3} STEPS=${STEPS:-5} THREADS=${THREADS:-$(nproc)}
py=""
for p in "${DSK_TORCH_PY:-}" python3 /usr/bin/python3; do
    [ -n "$p" ] && "$p" -c 'import torch' 2>/dev/null && { py=$p; break; }
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# A quotient for JSON: bc prints ".76" for 0.76, which JSON refuses.
num() { printf '%.6f' "$(echo "$1" | bc -l)"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# GPT-2 124M's shape: d 768, 12 layers, 12 heads, vocab 50257, tied head;
# SwiGLU of 2048 has GPT-2's MLP FLOPs (3 x 768 x 2048 = 2 x 768 x 3072).
"$BIN/dsk-train" --show-config 125m --set vocab=50257 --set n_heads=12 --set n_kv_heads=12 --set d_ff=2048 \
    --set pattern=G > "$out/gpt2-shape.json"
# The demo's tiny preset, all-global so both sides compute the same attention.
"$BIN/dsk-train" --show-config tiny --set vocab=8192 --set pattern=G > "$out/tiny.json"

echo "dsk-train vs PyTorch (CPU, $THREADS threads, median of $RUNS runs of $STEPS steps after one warm-up step)"
printf '%-44s %12s %12s %10s %9s %s\n' "model, batch" "dsk tok/s" "torch tok/s" "ratio" "GFLOP/s" "sgemm peak GFLOP/s"
json="["
sep=""
for spec in "gpt2-shape 4 64" "tiny 8 256"; do  # tiny: d 256, 6 layers, GQA 8/4
    set -- $spec
    name=$1 B=$2 T=$3
    d_rates="" t_rates="" gf="" peak=""
    for _ in $(seq "$RUNS"); do
        line=$("$BUILD/tests/tools/train_bench" "$out/$name.json" "$B" "$T" "$STEPS" "$THREADS" 2>/dev/null)
        d_rates+="$(field "$line" tokens_per_s)"$'\n'
        gf+="$(field "$line" gflops)"$'\n'
        peak+="$(field "$line" sgemm_gflops)"$'\n'
        kernels=$(field "$line" blas_kernels)
        if [ -n "$py" ]; then
            # PyTorch (Debian's, over the same OpenBLAS) runs the kernels
            # dsk-train chose: a CPU OpenBLAS does not know would leave it
            # on the SSE3 ones, and the ratio would flatter dsk.
            line=$(OPENBLAS_CORETYPE=$kernels "$py" "$root/tests/bench/torch_train.py" "$out/$name.json" "$B" "$T" "$STEPS" "$THREADS")
            t_rates+="$(field "$line" tokens_per_s)"$'\n'
        fi
    done
    d=$(printf '%s' "$d_rates" | median) g=$(printf '%s' "$gf" | median) p=$(printf '%s' "$peak" | median)
    if [ -n "$py" ]; then
        t=$(printf '%s' "$t_rates" | median)
        ratio=$(num "$d / $t")
    else
        t=null ratio=null
    fi
    printf '%-44s %12.1f %12s %9sx %9.1f %9.1f\n' "$name (B=$B, T=$T)" "$d" "$t" \
        "$( [ "$ratio" = null ] && echo '-' || printf '%.2f' "$ratio")" "$g" "$p"
    json+="$sep{\"model\":\"$name\",\"B\":$B,\"T\":$T,\"threads\":$THREADS,\"dsk_tokens_per_s\":$d,\"torch_tokens_per_s\":$t,\"ratio\":$ratio,\"dsk_gflops\":$g,\"sgemm_peak_gflops\":$p}"
    sep=","
done
# Mixture of experts: tiny-moe (5 MoE layers of 8 experts of 176, top 2, one
# shared: 528 active) against the dense tiny with d_ff 528, the same active
# parameters; the target is MoE within 1.5x of dense per token.
"$BIN/dsk-train" --show-config tiny-moe --set vocab=8192 > "$out/tiny-moe.json"
"$BIN/dsk-train" --show-config tiny --set vocab=8192 --set d_ff=528 > "$out/tiny-528.json"
dense="" moe=""
for _ in $(seq "$RUNS"); do
    dense+="$(field "$("$BUILD/tests/tools/train_bench" "$out/tiny-528.json" 8 256 "$STEPS" "$THREADS" 2>/dev/null)" tokens_per_s)"$'\n'
    moe+="$(field "$("$BUILD/tests/tools/train_bench" "$out/tiny-moe.json" 8 256 "$STEPS" "$THREADS" 2>/dev/null)" tokens_per_s)"$'\n'
done
d=$(printf '%s' "$dense" | median) m=$(printf '%s' "$moe" | median)
printf 'MoE: tiny-moe %.1f tok/s, dense tiny (d_ff 528, same active parameters) %.1f tok/s: MoE takes %.2fx the time per token (target <= 1.5x)\n' \
    "$m" "$d" "$(echo "$d / $m" | bc -l)"
json+=",{\"model\":\"tiny-moe vs dense d_ff 528\",\"moe_tokens_per_s\":$m,\"dense_tokens_per_s\":$d,\"moe_time_ratio\":$(num "$d / $m")}"
# Activation recomputation (--recompute) on the tiny preset: memory (what
# the batch allocates) and time per token, with and without; the seed's
# claim is about 60% less memory for 15-20% more compute.
"$BIN/dsk-train" --show-config tiny --set vocab=8192 > "$out/tiny-lhg.json"
plain="" rc="" mem="" mem_rc=""
for _ in $(seq "$RUNS"); do
    line=$("$BUILD/tests/tools/train_bench" "$out/tiny-lhg.json" 8 256 "$STEPS" "$THREADS" cpu fp32 0 2>/dev/null)
    plain+="$(field "$line" tokens_per_s)"$'\n'
    mem=$(field "$line" activation_bytes)
    line=$("$BUILD/tests/tools/train_bench" "$out/tiny-lhg.json" 8 256 "$STEPS" "$THREADS" cpu fp32 1 2>/dev/null)
    rc+="$(field "$line" tokens_per_s)"$'\n'
    mem_rc=$(field "$line" activation_bytes)
done
p=$(printf '%s' "$plain" | median) r=$(printf '%s' "$rc" | median)
printf -- '--recompute, tiny B=8 T=256: activations %.0f -> %.0f MB (%.0f%% less), %.1f -> %.1f tok/s (%.0f%% more time per token)\n' \
    "$(echo "$mem / 1000000" | bc -l)" "$(echo "$mem_rc / 1000000" | bc -l)" "$(echo "100 * (1 - $mem_rc / $mem)" | bc -l)" \
    "$p" "$r" "$(echo "100 * ($p / $r - 1)" | bc -l)"
json+=",{\"model\":\"tiny recompute\",\"activation_bytes\":$mem,\"activation_bytes_recompute\":$mem_rc,\"tokens_per_s\":$p,\"tokens_per_s_recompute\":$r}"
echo "$json]" > "$out/train-results.json"
echo "(OpenBLAS kernels: $kernels$([ -n "$py" ] && echo ', for both'))"
[ -n "$py" ] && echo "(PyTorch $("$py" -c 'import torch; print(torch.__version__)'), the Debian python3-torch build;" \
    "target: dsk >= 1.5x on the GPT-2 shape)" || echo "(python3-torch is not installed: no PyTorch column)"
