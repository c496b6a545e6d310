#!/bin/sh
# The cuda backend's GPU tests on the CPU emulation of cuda/ (emu.h says
# what it is; `make emu` builds it), after the emulation's own tests
# (test_emu.cu: what it must give kernels and what it must stop;
# test_cublas_emu.cc: the cuBLAS and cuBLASLt stand-in's products and
# refusals; test_cudnn_emu.cc: the cuDNN stand-in's graphs and refusals):
# every op against the CPU backend (attention in fp32 and on
# the bf16 tensor-core kernels: WMMA's, mma.sync's in blocks of 4 and 8
# warps), nano and nano-moe training runs, gemm
# in bf16 / fp16, the cuBLASLt products and gemm_grouped (--quick:
# without their largest cases, and 6 training steps), attn_bench and
# decode_bench on small shapes, and train_check.sh's dsk-train and dsk-eval runs (shrunk
# to 4 steps of batch 2: checkpoints across backends, --recompute,
# --dtype and DSK_CUDA_ATTN, dsk-eval
# ppl on both), and oom_check.sh (a device too small for the 16-bit
# copies), all under ASan and UBSan.  It checks the kernels'
# indexing, barriers, shared memory and launch limits and the backend's
# glue (the row-major to column-major swaps, leading dimensions,
# alignments); not the hardware's arithmetic, speed or memory model,
# which only tests/gpu/run.sh on a GPU can.
#
#   tests/gpu/emu/run.sh         (BUILD=build; make check runs it)
#
# DSK_EMU_SEED=N runs the blocks and threads in another shuffled order.
# Prints TAP.  Exit status: non-zero on any failure.
set -u
cd "$(dirname "$0")/../../.."
E=${BUILD:-build}/emu/tests/gpu
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
n=0 status=0
run() {   # name, command...
    name=$1
    shift
    n=$((n + 1))
    start=$(date +%s)
    if out=$("$@" 2>&1); then
        echo "ok $n - $name ($(( $(date +%s) - start )) s)"
        echo "$out" | grep -E 'FAIL|^ok - |^# (ops|training|cpu|final)|checks|^1\.\.|^\{"backend"' | sed 's/^/# /'
    else
        rc=$?
        echo "not ok $n - $name (exit $rc)"
        echo "$out" | grep -vE '^  ok ' | tail -n 40 | sed 's/^/# /'
        status=1
    fi
}
run "test_emu: the emulation itself" "${BUILD:-build}/emu/tests/gpu/emu/test_emu"
run "test_cublas_emu: the cuBLAS stand-in" "${BUILD:-build}/emu/tests/gpu/emu/test_cublas_emu"
# (the cuDNN stand-in, and the emulated backend's cuDNN attention, need
# the toolkit's cuDNN headers: without them, skipped)
cudnn=${BUILD:-build}/emu/tests/gpu/emu/test_cudnn_emu
if [ -x "$cudnn" ]; then
    run "test_cudnn_emu: the cuDNN stand-in" "$cudnn"
else
    echo "# skip test_cudnn_emu: no cuDNN headers (cudnn_version.h) in the toolkit"
fi
run "test_cuda_ops --ops --quick (emulated)" "$E/test_cuda_ops" --ops --quick
run "test_cuda_ops --train --quick (emulated)" "$E/test_cuda_ops" --train --quick
run "test_cuda_gemm_dtype (emulated)" "$E/test_cuda_gemm_dtype"
run "test_cuda_gemm_lt --quick (emulated)" "$E/test_cuda_gemm_lt" --quick
run "test_cuda_profile (emulated)" "$E/test_cuda_profile"
run "attn_bench (emulated, B1 T64: fp32 and tensor-core attention timed)" \
    "${BUILD:-build}/emu/tests/tools/attn_bench" cuda 1 64 2 1 32 1
# A cuDNN with no engine for the graphs (the stand-in's DSK_CUDNN_EMU_ENGINES=0):
# DSK_CUDA_ATTN=cudnn says so once a plan, with the reason, and the default
# kernels run the attention.
cudnn_refused() {
    err=$(mktemp)
    rows=$(DSK_CUDNN_EMU_ENGINES=0 "${BUILD:-build}/emu/tests/tools/attn_bench" cuda 1 64 2 1 32 2 2>"$err") || {
        cat "$err"; rm -f "$err"; return 1; }
    fwd=$(grep -c 'has no forward plan' "$err") bwd=$(grep -c 'has no backward plan' "$err")
    cat "$err"
    rm -f "$err"
    echo "$rows" | grep -q '"kernels":"cudnn refused: auto"' && [ "$fwd" = 1 ] && [ "$bwd" = 1 ]
}
[ -x "$cudnn" ] &&
    run "DSK_CUDA_ATTN=cudnn with no cuDNN engine (emulated): said once, the default kernels run" cudnn_refused
run "decode_bench (emulated, 64x128: int4 and fp32 products timed)" \
    "${BUILD:-build}/emu/tests/tools/decode_bench" cuda 64 128 32 4
run "train_check.sh (emulated dsk-train and dsk-eval, 4 steps of batch 2)" \
    env STEPS=4 BATCH=2 DSK_BIN="${BUILD:-build}/emu/bin" sh tests/gpu/train_check.sh
run "oom_check.sh (a device too small for the 16-bit copies: they give their memory back)" \
    sh tests/gpu/emu/oom_check.sh
echo "1..$n"
exit $status
