#!/bin/sh
# The GPU checks of the cuda backend (cuda/): every op against the cpu
# backend, then 20 training steps of the nano and nano-moe presets on
# both (tests/gpu/test_cuda_ops.c says how); then gemm in bf16 and fp16
# against the cpu backend's rounded products (test_cuda_gemm_dtype.c),
# and the cuBLASLt products and gemm_grouped (test_cuda_gemm_lt.c; its
# DSK_CUDA_VERBOSE=1 notes, where cuBLAS stands in, are printed).
# Sized for one H100/H200 in well under 10 minutes, the build included.
#
#   tests/gpu/run.sh            (or: make gpu-test)
#
# Without a CUDA device (or in a build without nvcc) it still builds and
# runs the CPU half: "cuda" must fail with exit code 69 and "no CUDA
# device: ...", and the comparison harness runs cpu against cpu.  It then
# prints "GPU half skipped: no CUDA device" and exits 0.  With a device
# it runs the op checks under compute-sanitizer's memcheck first (when
# the toolkit has it), then the full comparison with DSK_CUDA_SYNC=1 (so
# an asynchronous fault names its op), whose table is printed; then
# tests/gpu/train_check.sh (dsk-train on cuda: checkpoints resumed across
# backends, --recompute, --dtype), tests/gpu/test_nccl.sh (2 GPU ranks
# through NCCL against 1 GPU; it needs 2 devices and mpirun, and says
# when it skips), and last tests/gpu/throughput.sh's table (tokens/s and
# MFU of the 125m, 1.3b and MoE presets at sequence 2048).
# Exit status: non-zero on any failure.
#
# For a lent machine with little time (tests/gpu/kit_run.sh sets these):
#   DSK_GPU_PREBUILT=1    take the programs in BUILD as they are, no make
#                         (a machine without the build's -dev packages)
#   DSK_GPU_DEADLINE=S    finish within S seconds: each step's timeout is
#                         cut to what is left, and a step with under 30 s
#                         left is skipped, saying so (and counted failed,
#                         but memcheck, which like its timeout is not)
#   DSK_GPU_MEMCHECK=last memcheck after everything else, not first; off:
#                         not at all.  Under a deadline memcheck runs the
#                         op checks' --quick cases (every kernel, on the
#                         smaller shapes: the tool slows them many times);
#                         memcheck never runs cuDNN's attention (--no-cudnn)
#   DSK_GPU_LOGDIR=DIR    keep every step's full log in DIR
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BIN=$BUILD/tests/gpu/test_cuda_ops
BIN_DTYPE=$BUILD/tests/gpu/test_cuda_gemm_dtype
BIN_LT=$BUILD/tests/gpu/test_cuda_gemm_lt
BIN_PROF=$BUILD/tests/gpu/test_cuda_profile
LOG=${TMPDIR:-/tmp}/dsk-gpu-test.$$.log
LOGDIR=${DSK_GPU_LOGDIR:-}
keep_logs() {
    if [ -n "$LOGDIR" ]; then
        mkdir -p "$LOGDIR"
        [ -f "$LOG" ] && cp "$LOG" "$LOGDIR/ops.log"
        for step in memcheck dtype lt prof train; do
            [ -f "$LOG.$step" ] && cp "$LOG.$step" "$LOGDIR/$step.log"
        done
    fi
    rm -f "$LOG" "$LOG.memcheck" "$LOG.dtype" "$LOG.lt" "$LOG.prof" "$LOG.train"
}
trap keep_logs EXIT
# The programs the checks run (train_check.sh also runs dsk-eval and dsk-quant).
PROGRAMS="$BIN $BIN_DTYPE $BIN_LT $BIN_PROF $BUILD/tests/tools/train_bench $BUILD/tests/tools/attn_bench \
    $BUILD/tests/tools/decode_bench $BUILD/bin/dsk-bpe $BUILD/bin/dsk-pack $BUILD/bin/dsk-train $BUILD/bin/dsk-eval \
    $BUILD/bin/dsk-quant"

# The time budget: `cap N` prints N cut to what is left of DSK_GPU_DEADLINE
# (less 10 s to report), or 0 when under 30 s are left.
t0=$(date +%s)
cap() {
    if [ -z "${DSK_GPU_DEADLINE:-}" ]; then echo "$1"; return; fi
    left=$(( DSK_GPU_DEADLINE - ($(date +%s) - t0) - 10 ))
    if [ "$left" -lt 30 ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# within N CMD...: CMD under `timeout`, cut by cap; exit 124 (as if timed
# out) without running it when no time is left.  (timeout 0 would mean
# no limit at all.)
within() {
    t=$(cap "$1")
    shift
    if [ "$t" -eq 0 ]; then
        echo "gpu test: skipped, out of time (DSK_GPU_DEADLINE): $*"
        return 124
    fi
    timeout "$t" "$@"
}

start=$(date +%s)
if [ -n "${DSK_GPU_PREBUILT:-}" ]; then
    for p in $PROGRAMS; do
        [ -x "$p" ] || { echo "gpu test: DSK_GPU_PREBUILT is set but $p is missing" >&2; exit 1; }
    done
    echo "# build: prebuilt programs in $BUILD"
else
    # shellcheck disable=SC2086
    if ! make -j"$JOBS" --no-print-directory $PROGRAMS >"$LOG" 2>&1; then
        tail -n 40 "$LOG"
        echo "gpu test: build failed" >&2
        exit 1
    fi
    echo "# build: $(( $(date +%s) - start )) s"
fi

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/# gpu: /' || true
fi

# Whether there is a device is the program's call (it prints "GPU half
# skipped" when there is none); memcheck only runs where nvidia-smi
# lists one, or where there is no nvidia-smi to ask.
status=0
SANITIZER=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer 2>/dev/null || true)}
if [ -z "$SANITIZER" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    SANITIZER=/usr/local/cuda/bin/compute-sanitizer
fi
has_device() {
    # nvidia-smi -L lists the devices; without it, trust the program.
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L 2>/dev/null | grep -q '^GPU '
    else
        return 0
    fi
}
memcheck() {
    [ -n "$SANITIZER" ] && has_device || return 0
    t=$(cap 300)
    if [ "$t" -eq 0 ]; then
        echo "# memcheck (ops): skipped, out of time (DSK_GPU_DEADLINE; not counted, as a timeout is not)"
        return 0
    fi
    start=$(date +%s)
    # shellcheck disable=SC2086
    if timeout "$t" "$SANITIZER" --tool memcheck --error-exitcode 3 "$BIN" --ops --no-cudnn ${DSK_GPU_DEADLINE:+--quick} \
        >"$LOG.memcheck" 2>&1; then
        if grep -q 'GPU half skipped' "$LOG.memcheck"; then
            echo "# memcheck: skipped (no CUDA device)"
        else
            echo "# memcheck (ops): clean, $(( $(date +%s) - start )) s"
        fi
    else
        rc_m=$?
        if [ $rc_m -eq 124 ]; then
            echo "# memcheck (ops): timed out after $t s (not counted)"
        elif grep -Eq 'Device not supported|injection library|LibraryNotLoaded' "$LOG.memcheck"; then
            # The tool cannot run here (seen on gVisor machines), which says nothing of the code.
            echo "# memcheck (ops): unavailable on this machine (not counted): $(grep -Em 1 \
                'Device not supported|injection library|LibraryNotLoaded' "$LOG.memcheck")"
        else
            grep -E 'ERROR SUMMARY|Invalid|FAIL|at 0x|by thread' "$LOG.memcheck" | head -n 30
            echo "# memcheck (ops): FAILED (exit $rc_m)"
            status=1
        fi
    fi
}
MEMCHECK=${DSK_GPU_MEMCHECK:-first}
case $MEMCHECK in first|last|off) ;; *) echo "gpu test: DSK_GPU_MEMCHECK is first, last or off" >&2; exit 64 ;; esac
[ "$MEMCHECK" = first ] && memcheck

start=$(date +%s)
rc=0
within 420 env DSK_CUDA_SYNC=1 "$BIN" >"$LOG" 2>&1 || rc=$?
# The per-check lines for failures, then the program's own table.
grep -E '^  FAIL' "$LOG" || true
sed -n '/^cpu against/,$p' "$LOG" | grep -v '^GPU half skipped' || true
if [ $rc -eq 124 ]; then
    echo "gpu test: timed out"
    tail -n 20 "$LOG"
fi
# run_prog NAME WHAT SECONDS SUMMARY CMD...: a test program under
# `within`, its log in $LOG.NAME; prints its FAIL lines, then the lines
# the sed -E script SUMMARY picks as "# WHAT: ..."; a failure says so and
# sets status.
run_prog() {
    prog_log=$LOG.$1 prog_what=$2 prog_secs=$3 prog_summary=$4
    shift 4
    prog_rc=0
    within "$prog_secs" "$@" >"$prog_log" 2>&1 || prog_rc=$?
    grep -E '^  FAIL' "$prog_log" || true
    sed -nE "$prog_summary" "$prog_log" | grep -v '^GPU half skipped' | sed "s/^ *//; s|^|# $prog_what: |"
    if [ $prog_rc -ne 0 ]; then
        tail -n 5 "$prog_log"
        echo "gpu test: $prog_what FAILED (exit $prog_rc)"
        status=1
    fi
}
# gemm in bf16 / fp16: its failures and its summary after the table.
run_prog dtype "gemm dtype" 120 '/^dtype /,$p' env DSK_CUDA_SYNC=1 "$BIN_DTYPE"
# cuBLASLt and gemm_grouped: failures, fallback notes, the summary.
run_prog lt "gemm lt" 300 '/^cuda: |products run twice|checks, .* failed/p' \
    env DSK_CUDA_SYNC=1 DSK_CUDA_VERBOSE=1 "$BIN_LT"
# DSK_CUDA_PROFILE's table: failures and the count.
run_prog prof profile 120 '/checks, .* failed/p' "$BIN_PROF"
if grep -q 'GPU half skipped' "$LOG"; then
    grep '^# cuda backend' "$LOG" || true
    # The train check's own logic, with the cpu backend on both sides.
    if ! DEV=cpu timeout 300 sh tests/gpu/train_check.sh "$BUILD" >"$LOG.train" 2>&1; then
        cat "$LOG.train"
        echo "gpu test: tests/gpu/train_check.sh FAILED with DEV=cpu"
        status=1
    fi
    echo "# cpu half: $(( $(date +%s) - start )) s"
    if [ $rc -ne 0 ] || [ $status -ne 0 ]; then
        echo "gpu test: the CPU half FAILED"
        exit 1
    fi
    echo "GPU half skipped: no CUDA device"
    echo "NCCL check skipped: no CUDA device"
    echo "train check: ran with DEV=cpu only; throughput table skipped: no CUDA device"
    exit 0
fi
echo "# comparison: $(( $(date +%s) - start )) s"
# Last, NCCL between 2 GPU ranks (tests/gpu/test_nccl.sh): it prints
# "NCCL check skipped: ..." itself with fewer than 2 devices or no mpirun.
start=$(date +%s)
train=0
within 300 sh tests/gpu/train_check.sh "$BUILD" || train=$?
echo "# train check: $(( $(date +%s) - start )) s"
nccl=0
BUILD="$BUILD" JOBS="$JOBS" bash tests/gpu/test_nccl.sh || nccl=$?
# The throughput table, last.
tput=0
within 300 sh tests/gpu/throughput.sh "$BUILD" || tput=$?
[ "$MEMCHECK" = last ] && memcheck
[ $rc -eq 0 ] && [ $status -eq 0 ] && [ $train -eq 0 ] && [ $nccl -eq 0 ] && [ $tput -eq 0 ]
