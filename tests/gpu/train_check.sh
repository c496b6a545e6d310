#!/bin/sh
# dsk-train end to end on the GPU (run.sh calls it when there is a
# device): one checkpoint format on both backends, and the precision and
# memory switches.
#
#   tests/gpu/train_check.sh [BUILD_DIR]
#
#  - 20 steps of nano on cuda, saved at 10; the step-10 checkpoint
#    resumed on cpu to 20, and a cpu run's step-10 checkpoint resumed on
#    cuda: every final loss within 2% of the others (the backends sum in
#    different orders, so bit equality is not expected across them);
#  - --recompute on cuda: the same losses as without (bit for bit, the
#    backend is deterministic);
#  - --dtype bf16 and fp16 on cuda: train, and end within 5% of fp32;
#  - --dtype bf16 with the fp32 attention kernels (DSK_CUDA_ATTN=fp32):
#    within 1% of the bf16 run with the tensor-core ones; with WMMA's
#    kernels instead of mma.sync's (DSK_CUDA_ATTN=wmma), and mma.sync's
#    in blocks of 8 warps (DSK_CUDA_ATTN=mma8) and dQ from a kept dS
#    (DSK_CUDA_ATTN=stored): within 1% too;
#    an unknown DSK_CUDA_ATTN exits 64; cuDNN's (DSK_CUDA_ATTN=cudnn),
#    where libcudnn loads, within 1% too, on documents and with
#    --no-doc-mask (where cuDNN must have made its plans);
#  - --dtype bf16 with DSK_CUDA_HALF_CACHE=0: the same weights bit for
#    bit as with the 16-bit operand copies reused (with either attention
#    kernels, and for nano-moe); =1 exits 64;
#  - --dtype bf16 with DSK_CUDA_ATTN=mma (mma.sync without the default's
#    cp.async pipelining) and with DSK_CUDA_ATTN=wide (32 query rows a
#    warp): the same weights bit for bit as the default's;
#  - nano-moe --dtype bf16 with DSK_CUDA_GROUPED_STREAMS=4 (the experts'
#    products on side streams): the same weights bit for bit;
#  - --dtype bf16 with DSK_CUDA_PROFILE=1: the same weights bit for bit,
#    and the op table on stderr;
#  - dsk-eval ppl of the cuda run's checkpoint on cuda and on cpu: the
#    same loss within 1e-5 (forward only, the evaluation's batching);
#  - dsk-eval gen on a 4-bit copy of it (dsk-quant rtn): the same
#    sampled text (one seed) on cuda and cpu, each decoding through its
#    int4 kernels.
# Exit status non-zero on any failure; prints one line per check.
# DEV=cpu runs the same script with the cpu backend on both sides (how
# the script itself is checked on a machine without a GPU); DSK_BIN=DIR
# takes dsk-train and dsk-eval from DIR (tests/gpu/emu/run.sh: the CPU
# emulation's), and STEPS=N (even, default 20) and BATCH=N (default 8)
# shrink the runs (checkpoints at STEPS/2).
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-${BUILD:-build}}
B=${DSK_BIN:-$BUILD/bin}
DEV=${DEV:-cuda}
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fail=1; }

# The dsk-train tests' small dataset.
PATH="$B:$BUILD/bin:$PATH" sh tests/cli/nano_dataset.sh "$tmp"

STEPS=${STEPS:-20} BATCH=${BATCH:-8}
half=$((STEPS / 2))
ckpt=$(printf 'step-%08d' "$half")
common="--data $tmp/ds --config nano -b $BATCH --lr 3e-3 --warmup 3 --eval-every 0 --sample-every 0 --log-every 1 -q"
train() {  # name backend extra...
    name=$1 backend=$2
    shift 2
    # shellcheck disable=SC2086
    "$B/dsk-train" $common --steps "$STEPS" --save-every "$half" --keep 0 --backend "$backend" --log "$tmp/$name.jsonl" \
        --out "$tmp/$name" "$@" 2>"$tmp/$name.err" || { tail -n 5 "$tmp/$name.err"; return 1; }
}
resume() {  # from new_name backend
    mkdir "$tmp/$2"
    cp -r "$tmp/$1/$ckpt" "$tmp/$2/"
    ln -s "$ckpt" "$tmp/$2/latest"
    "$B/dsk-train" --resume --out "$tmp/$2" --backend "$3" --log "$tmp/$2.jsonl" --log-every 1 -q 2>"$tmp/$2.err" ||
        { tail -n 5 "$tmp/$2.err"; return 1; }
}
last_loss() { python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "\"loss\"" in l]
print(rows[-1]["loss"])' "$1"; }
close() {  # a b rel
    python3 -c 'import sys; a, b, r = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= r * abs(a) else 1)' "$1" "$2" "$3"
}

train gpu "$DEV" && train cpu cpu || bad "nano $STEPS steps on cuda and on cpu"
resume gpu gpu-then-cpu cpu || bad "cuda checkpoint resumed on cpu"
resume cpu cpu-then-gpu "$DEV" || bad "cpu checkpoint resumed on cuda"
g=$(last_loss "$tmp/gpu.jsonl") c=$(last_loss "$tmp/cpu.jsonl")
gc=$(last_loss "$tmp/gpu-then-cpu.jsonl") cg=$(last_loss "$tmp/cpu-then-gpu.jsonl")
echo "# final loss: cuda $g, cpu $c, cuda then cpu $gc, cpu then cuda $cg"
if close "$g" "$c" 0.02 && close "$g" "$gc" 0.02 && close "$c" "$cg" 0.02; then
    ok "one checkpoint format: cuda and cpu resume each other's runs"
else
    bad "cross-backend losses differ by more than 2%"
fi

train gpu-rc "$DEV" --recompute || bad "--recompute on cuda"
if cmp -s "$tmp/gpu/latest/model.safetensors" "$tmp/gpu-rc/latest/model.safetensors"; then
    ok "--recompute on cuda: the same weights bit for bit"
else
    bad "--recompute on cuda changed the weights"
fi

for dt in bf16 fp16; do
    train "gpu-$dt" "$DEV" --dtype "$dt" || { bad "--dtype $dt on cuda"; continue; }
    l=$(last_loss "$tmp/gpu-$dt.jsonl")
    first=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["loss"])' "$tmp/gpu-$dt.jsonl")
    echo "# --dtype $dt: loss $first -> $l (fp32: $g)"
    # 20 steps take the loss down by more than 0.5; fewer, at least down.
    drop=$([ "$STEPS" -ge 20 ] && echo 0.5 || echo 0)
    if ! python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) - float(sys.argv[3]) else 1)' \
        "$l" "$first" "$drop"; then
        bad "--dtype $dt: the loss did not fall"
    elif close "$g" "$l" 0.05; then
        ok "--dtype $dt on cuda trains within 5% of fp32"
    else
        bad "--dtype $dt on cuda ends more than 5% from fp32"
    fi
done
# The bf16 run again with other attention kernels, within 1% of the
# default's (the tensor cores, mma.sync's in nano's global layer, WMMA's
# in its hybrid one): the fp32 kernels (DSK_CUDA_ATTN=fp32; only the
# attention's rounding differs), WMMA's in both layers
# (DSK_CUDA_ATTN=wmma), mma.sync's in blocks of 8 warps
# (DSK_CUDA_ATTN=mma8), and dQ from the dS the dK/dV kernel kept
# (DSK_CUDA_ATTN=stored).
for attn in fp32 wmma mma8 stored; do
    name=$([ "$attn" = fp32 ] && echo gpu-bf16-fa32 || echo "gpu-bf16-$attn")
    if (export DSK_CUDA_ATTN=$attn && train "$name" "$DEV" --dtype bf16); then
        a=$(last_loss "$tmp/gpu-bf16.jsonl") o=$(last_loss "$tmp/$name.jsonl")
        echo "# --dtype bf16: loss $a with the default attention, $o with DSK_CUDA_ATTN=$attn"
        if close "$o" "$a" 0.01; then
            ok "--dtype bf16: DSK_CUDA_ATTN=$attn trains within 1% of the default attention"
        else
            bad "--dtype bf16: DSK_CUDA_ATTN=$attn and the default attention end more than 1% apart"
        fi
    else
        bad "--dtype bf16 with DSK_CUDA_ATTN=$attn on cuda"
    fi
done
# cuDNN's fused attention (DSK_CUDA_ATTN=cudnn: nano's global layer; its
# hybrid one stays on the default's kernels) within 1% of the default
# attention, on the dataset's documents (an extra mask cuDNN may refuse:
# then the default's kernels run them) and with --no-doc-mask (rows of
# one document: cuDNN must have made plans, DSK_CUDA_VERBOSE says so);
# skipped where libcudnn does not load.
cudnn_run() {  # name extra...: 0 trained, 1 failed, 2 no libcudnn here
    n=$1
    shift
    (export DSK_CUDA_ATTN=cudnn DSK_CUDA_VERBOSE=1 && train "$n" "$DEV" --dtype bf16 "$@") && return 0
    grep -q 'DSK_CUDA_ATTN=cudnn: cannot load' "$tmp/$n.err" && return 2
    return 1
}
train gpu-bf16-whole "$DEV" --dtype bf16 --no-doc-mask || bad "--dtype bf16 --no-doc-mask on cuda"
for docs in docs whole; do
    if [ $docs = docs ]; then ref=gpu-bf16 flag=; else ref=gpu-bf16-whole flag=--no-doc-mask; fi
    name=$ref-cudnn rc=0
    cudnn_run "$name" $flag || rc=$?
    if [ $rc = 2 ]; then
        echo "# skip DSK_CUDA_ATTN=cudnn: $(grep 'DSK_CUDA_ATTN=cudnn' "$tmp/$name.err" | tail -n 1)"
        break
    elif [ $rc != 0 ]; then
        bad "--dtype bf16 with DSK_CUDA_ATTN=cudnn on cuda ($docs)"
        continue
    fi
    grep -h 'cudnn\|cuDNN' "$tmp/$name.err" | sed 's/^/# /' | head -n 6
    a=$(last_loss "$tmp/$ref.jsonl") o=$(last_loss "$tmp/$name.jsonl")
    echo "# --dtype bf16 ($docs): loss $a with the default attention, $o with DSK_CUDA_ATTN=cudnn"
    if ! close "$o" "$a" 0.01; then
        bad "--dtype bf16 ($docs): DSK_CUDA_ATTN=cudnn and the default attention end more than 1% apart"
    elif [ $docs = whole ] && [ "$DEV" != cpu ] && ! grep -q 'cuDNN forward plan' "$tmp/$name.err"; then
        bad "--dtype bf16 --no-doc-mask: DSK_CUDA_ATTN=cudnn made no plan (its layers ran on the default kernels)"
    else
        ok "--dtype bf16 ($docs): DSK_CUDA_ATTN=cudnn trains within 1% of the default attention"
    fi
done
# same_weights REF NEW WHAT VAR=VALUE...: the bf16 run again as NEW with
# the variables set; its weights must be REF's bit for bit.
same_weights() {
    ref=$1 new=$2 what=$3
    shift 3
    if ! (export "$@" && train "$new" "$DEV" --dtype bf16); then
        bad "--dtype bf16 with $what on cuda"
        return 1
    fi
    if cmp -s "$tmp/$ref/latest/model.safetensors" "$tmp/$new/latest/model.safetensors"; then
        ok "--dtype bf16 with $what: the same weights bit for bit"
    else
        bad "--dtype bf16: $what changed the weights"
        return 1
    fi
}
if [ "$DEV" != cpu ]; then
    # Converting every product's operands afresh, and writing no copies
    # (DSK_CUDA_HALF_CACHE=0): the 16-bit copies change no bit, with
    # either attention kernels (the fp32 ones write their own copies).
    same_weights gpu-bf16 gpu-bf16-nocache "DSK_CUDA_HALF_CACHE=0" DSK_CUDA_HALF_CACHE=0 || true
    same_weights gpu-bf16-fa32 gpu-bf16-fa32-nocache "DSK_CUDA_ATTN=fp32, DSK_CUDA_HALF_CACHE=0" \
        DSK_CUDA_HALF_CACHE=0 DSK_CUDA_ATTN=fp32 || true
    # The default's pipelined attention (nano's global layer, heads of 8)
    # runs the products of mma.sync's kernels without it in their order:
    # the same bits.
    same_weights gpu-bf16 gpu-bf16-mma "DSK_CUDA_ATTN=mma" DSK_CUDA_ATTN=mma || true
    # ... and so do DSK_CUDA_ATTN=wide's (32 rows a warp, full tiles
    # unmasked).
    same_weights gpu-bf16 gpu-bf16-wide "DSK_CUDA_ATTN=wide" DSK_CUDA_ATTN=wide || true
    # The MoE layer's experts (gemm_grouped's loop over products, each on
    # a part of the weights' registered buffer and its 16-bit copy): the
    # copies change no bit there either.
    if train gpu-moe-bf16 "$DEV" --dtype bf16 --config nano-moe &&
        (export DSK_CUDA_HALF_CACHE=0 && train gpu-moe-bf16-nocache "$DEV" --dtype bf16 --config nano-moe); then
        if cmp -s "$tmp/gpu-moe-bf16/latest/model.safetensors" "$tmp/gpu-moe-bf16-nocache/latest/model.safetensors"; then
            ok "nano-moe --dtype bf16 with DSK_CUDA_HALF_CACHE=0: the same weights bit for bit"
        else
            bad "nano-moe --dtype bf16: DSK_CUDA_HALF_CACHE=0 changed the weights"
        fi
    else
        bad "nano-moe --dtype bf16 on cuda"
    fi
    # The experts' products spread over 4 side streams
    # (DSK_CUDA_GROUPED_STREAMS=4): each the same product, the same bits.
    if (export DSK_CUDA_GROUPED_STREAMS=4 && train gpu-moe-bf16-streams "$DEV" --dtype bf16 --config nano-moe); then
        if cmp -s "$tmp/gpu-moe-bf16/latest/model.safetensors" "$tmp/gpu-moe-bf16-streams/latest/model.safetensors"; then
            ok "nano-moe --dtype bf16 with DSK_CUDA_GROUPED_STREAMS=4: the same weights bit for bit"
        else
            bad "nano-moe --dtype bf16: DSK_CUDA_GROUPED_STREAMS=4 changed the weights"
        fi
    else
        bad "nano-moe --dtype bf16 with DSK_CUDA_GROUPED_STREAMS=4 on cuda"
    fi
    # Timing every op (DSK_CUDA_PROFILE=1) changes no bit, and the table
    # printed at the end names the training's ops and parts.
    if same_weights gpu-bf16 gpu-bf16-prof "DSK_CUDA_PROFILE=1" DSK_CUDA_PROFILE=1; then
        err=$tmp/gpu-bf16-prof.err
        if grep -q '^cuda profile' "$err" && grep -q ' attention_bwd$' "$err" && grep -q ' operands to bf16$' "$err" &&
            grep -q ' adamw$' "$err"; then
            ok "--dtype bf16 with DSK_CUDA_PROFILE=1: the op table on stderr"
        else
            tail -n 5 "$err"
            bad "--dtype bf16 with DSK_CUDA_PROFILE=1: no op table on stderr"
        fi
    fi
fi

if [ "$DEV" != cpu ]; then
    rc=0
    # shellcheck disable=SC2086
    DSK_CUDA_HALF_CACHE=1 "$B/dsk-train" $common --steps 1 --backend "$DEV" --out "$tmp/half-bad" \
        2>"$tmp/half-bad.err" || rc=$?
    if [ "$rc" = 64 ] && grep -q 'DSK_CUDA_HALF_CACHE=1' "$tmp/half-bad.err" && [ ! -e "$tmp/half-bad" ]; then
        ok "DSK_CUDA_HALF_CACHE=1: exit 64, says why, writes nothing"
    else
        bad "DSK_CUDA_HALF_CACHE=1: exit $rc, not 64 with a message and no output"
    fi
    rc=0
    # shellcheck disable=SC2086
    DSK_CUDA_ATTN=tensor "$B/dsk-train" $common --steps 1 --backend "$DEV" --out "$tmp/attn-bad" \
        2>"$tmp/attn-bad.err" || rc=$?
    if [ "$rc" = 64 ] && grep -q 'DSK_CUDA_ATTN=tensor' "$tmp/attn-bad.err" && [ ! -e "$tmp/attn-bad" ]; then
        ok "DSK_CUDA_ATTN=tensor: exit 64, says why, writes nothing"
    else
        bad "DSK_CUDA_ATTN=tensor: exit $rc, not 64 with a message and no output"
    fi
fi

# dsk-eval on both backends: DSK_BIN's (the emulation's, in emu/run.sh)
# where it has one.
E=$B/dsk-eval
[ -x "$E" ] || E=$BUILD/bin/dsk-eval
ppl() {  # backend
    "$E" ppl "$tmp/gpu" --data "$tmp/ds" --rows 8 --batch 4 --json --backend "$1" 2>"$tmp/eval-$1.err" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["loss"])' || { tail -n 5 "$tmp/eval-$1.err"; return 1; }
}
if pc=$(ppl "$DEV") && pp=$(ppl cpu); then
    echo "# dsk-eval ppl loss: cuda $pc, cpu $pp"
    if close "$pp" "$pc" 1e-5; then
        ok "dsk-eval ppl: the same loss on cuda and cpu"
    else
        bad "dsk-eval ppl: cuda and cpu differ by more than 1e-5"
    fi
else
    bad "dsk-eval ppl on cuda or cpu"
fi

# A 4-bit copy of the cuda run (dsk-quant rtn, on the cpu), and sampled
# generation from it on both backends with one seed (a short run's
# greedy answer is often the end of the turn at once): decoding's
# products (one row at a time) read the int4 codes each backend
# registered (register_int4).  Its logits differ in the last bits only,
# so the same draws pick the same tokens.
printf '%s\n' '{"prompt": "red green", "answer": "blue"}' '{"prompt": "one two", "answer": "three"}' \
    >"$tmp/task.jsonl"
gen() {  # name backend
    "$E" gen "$tmp/q4" "$tmp/task.jsonl" --max-tokens 6 --temperature 1 --seed 7 --items "$tmp/items-$1.jsonl" \
        --backend "$2" >/dev/null 2>"$tmp/gen-$1.err" || { tail -n 5 "$tmp/gen-$1.err"; return 1; }
}
if ! "$BUILD/bin/dsk-quant" -q -m rtn -g 32 "$tmp/gpu" -o "$tmp/q4" >/dev/null 2>"$tmp/q4.err"; then
    tail -n 5 "$tmp/q4.err"
    bad "dsk-quant rtn of the cuda run"
elif gen dev "$DEV" && gen cpu cpu; then
    if python3 -c '
import json, sys
a, b = ([json.loads(l)["output"] for l in open(f)] for f in sys.argv[1:])
print("# int4 sampled outputs:", a)
sys.exit(0 if a == b and len(a) == 2 and any(a) else 1)' "$tmp/items-dev.jsonl" "$tmp/items-cpu.jsonl"; then
        ok "dsk-eval gen on a 4-bit checkpoint: the same sampled text on cuda and cpu (int4 kernels)"
    else
        bad "dsk-eval gen on a 4-bit checkpoint: cuda and cpu generate different text"
    fi
else
    bad "dsk-eval gen on a 4-bit checkpoint on cuda or cpu"
fi
exit $fail
