#!/usr/bin/env bash
# NCCL between GPU ranks (cuda/comm_nccl.cu): 2 ranks on 2 GPUs, each with
# half the global batch, follow 1 GPU with the whole batch at ZeRO stages
# 0 to 3 (losses, evaluations, final weights and Adam's moments), as
# tests/cli/test_dsk_train_dist.sh checks MPI ranks on the CPU; then a
# frozen rank ends the job with status 69 after --dist-timeout, and a
# killed one ends it in bounded time.  The nano model's units have odd
# lengths, so the padded reduce-scatter and allgather run too.
#
#   tests/gpu/test_nccl.sh      (tests/gpu/run.sh runs it last)
#
# Needs 2 CUDA devices, Open MPI's mpirun and libnccl.so.2; without them
# it prints "NCCL check skipped: REASON" and exits 0.  A few minutes on
# two H100s, most of it the build and NCCL's start-ups.  Exit status:
# non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
root=$(pwd)
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BIN=$root/$BUILD/bin
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failed=0

skip() { echo "NCCL check skipped: $1"; exit 0; }
pass() { echo "  ok   $1"; }
fail() { echo "  FAIL $1"; shift; for l in "$@"; do echo "       $l"; done; failed=1; }

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
[ "${gpus:-0}" -ge 2 ] || skip "fewer than 2 CUDA devices (${gpus:-0})"
command -v mpirun >/dev/null 2>&1 || skip "no mpirun (apt-get install openmpi-bin)"
[ -z "${DSK_GPU_PREBUILT:-}" ] || skip "prebuilt programs (tests/gpu/kit.sh builds dsk-train without MPI)"
if ! make -j"$JOBS" --no-print-directory "$BUILD/bin/dsk-train" "$BUILD/bin/dsk-bpe" "$BUILD/bin/dsk-pack" \
        >"$T/build.log" 2>&1; then
    tail -n 30 "$T/build.log"
    echo "NCCL check: build FAILED"
    exit 1
fi
export PATH=$BIN:$PATH
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One GPU per rank: each takes its local rank's device (dsk-train(1)).
mpirun2=(mpirun -np 2 --oversubscribe --mca btl_vader_single_copy_mechanism none -x NCCL_DEBUG=${NCCL_DEBUG:-WARN})

# ---- data and the reference ----------------------------------------------------------------------------
sh tests/cli/nano_dataset.sh "$T" || {
    echo "NCCL check: could not make the dataset"
    exit 1
}

# tests/cli/compare_runs.py with --tol 1e-3: the order of the sums differs
# (NCCL's against one device's), so the CPU test's 1e-4 is loosened.

common=(--data "$T/ds" --config nano --backend cuda --lr 3e-3 --warmup 4 --eval-every 4 --eval-batches 2
        --log-every 1 --save-every 0)
start=$SECONDS
if dsk-train "${common[@]}" -q -b 4 --grad-accum 2 --steps 8 --log "$T/ref.jsonl" --out "$T/ref" 2>"$T/ref.err"; then
    pass "1 GPU, batch 4 x 2 micro-batches, 8 steps ($((SECONDS - start)) s)"
else
    if grep -q "built without CUDA" "$T/ref.err"; then skip "dsk-train was built without CUDA"; fi
    fail "1 GPU, the reference run" "$(tail -n 5 "$T/ref.err")"
    echo "NCCL check: FAILED"
    exit 1
fi

# ---- 2 GPUs x batch 2 = 1 GPU x batch 4, at every stage ----------------------------------------------------
for z in 0 1 2 3; do
    start=$SECONDS
    quiet=-q
    [ $z = 3 ] && quiet=   # rank 0 names the communicator
    if timeout 300 "${mpirun2[@]}" dsk-train "${common[@]}" $quiet -b 4 --grad-accum 2 --steps 8 --zero $z \
            --log "$T/two$z.jsonl" --out "$T/two$z" >/dev/null 2>"$T/two$z.err"; then
        pass "2 GPUs at --zero $z train ($((SECONDS - start)) s)"
        if out=$(python3 tests/cli/compare_runs.py "$T/ref" "$T/two$z" --tol 1e-3 2>&1); then
            pass "2 GPUs at --zero $z: the same losses, weights and moments as 1 GPU"
        else
            fail "2 GPUs at --zero $z follow 1 GPU" "$(echo "$out" | tail -n 3)"
        fi
    else
        fail "2 GPUs at --zero $z train (status $?)" "$(tail -n 8 "$T/two$z.err")"
    fi
done
if grep -q "2 ranks (nccl), ZeRO-3" "$T/two3.err"; then
    pass "rank 0 reports NCCL between the ranks"
else
    fail "rank 0 reports NCCL between the ranks" "$(grep ranks "$T/two3.err" | head -n 3)"
fi

# ---- faults --------------------------------------------------------------------------------------------------
# A long 2-GPU run in the background, once it has logged a step; then a
# signal to rank 1.  rc and secs: the job's status and how long it took to end.
fault() {
    local name=$1 sig=$2; shift 2
    "${mpirun2[@]}" dsk-train "${common[@]}" -b 4 --steps 1000000 --eval-every 0 "$@" --log "$T/$name.jsonl" \
        --out "$T/$name" >/dev/null 2>"$T/$name.err" &
    local job=$! victim="" p
    for _ in $(seq 1 1200); do [ -s "$T/$name.jsonl" ] && break; sleep 0.1; done
    for p in $(pgrep -P "$job"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$p; fi
    done
    local t0=$SECONDS
    if [ -n "$victim" ]; then kill "-$sig" "$victim"; else kill -KILL "$job"; fi
    (sleep 120; kill -KILL "$job") >/dev/null 2>&1 &
    local guard=$!
    wait "$job"
    rc=$?
    secs=$((SECONDS - t0))
    kill $(pgrep -P "$guard") "$guard" 2>/dev/null
    wait "$guard" 2>/dev/null
    [ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null
    return 0
}
fault frozen STOP --zero 0 --dist-timeout 5
if [ "$rc" -eq 69 ] && [ "$secs" -lt 60 ] && grep -q "waited [0-9]* s for the other ranks (--dist-timeout)" \
        "$T/frozen.err"; then
    pass "a frozen rank: the other gives up after --dist-timeout with status 69 (${secs} s)"
else
    fail "a frozen rank: status 69 after --dist-timeout (status $rc, ${secs} s)" "$(tail -n 5 "$T/frozen.err")"
fi
fault killed KILL --zero 2
if [ "$rc" -ne 0 ] && [ "$secs" -lt 60 ]; then
    pass "a killed rank: the job ends with status $rc (${secs} s)"
else
    fail "a killed rank ends the job in bounded time (status $rc, ${secs} s)" "$(tail -n 5 "$T/killed.err")"
fi

if [ $failed -ne 0 ]; then
    echo "NCCL check: FAILED"
    exit 1
fi
echo "NCCL check: all passed"
