#!/usr/bin/env bash
# CLI tests for data-parallel dsk-train (MPI ranks, ZeRO stages 0-3):
# 2 ranks x batch B follow 1 rank x batch 2B (losses, evaluations,
# weights and Adam's moments) at every stage, a checkpoint resumes at
# another world size, a signal to one rank stops every rank after the
# same step with a checkpoint, a killed or frozen rank ends the job in
# bounded time, and every bad input is a clear error with its status.
#
# The mpirun cases need Open MPI (openmpi-bin).  Under the sanitizer
# build (DSK_SAN) they run with LeakSanitizer off, because Open MPI's
# own start-up allocations are never freed (hundreds of reports from its
# plugins); AddressSanitizer and UBSan still check every access, and the
# single-process ZeRO cases keep leak detection on.
. "$(dirname "$0")/lib.sh"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # CI runs as root
san_env=()
[ -n "${DSK_SAN:-}" ] && san_env=(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
# Two ranks on however few cores; no cross-memory attach (containers forbid it).
mpirun2=(env "${san_env[@]}" mpirun -np 2 --oversubscribe --mca btl_vader_single_copy_mechanism none)
mpi() { "${mpirun2[@]}" "$@"; }
have_mpi=$(command -v mpirun || true)

# ---- usage errors and the memory table (no ranks needed) --------------------------------------------
expect_exit 64 "--zero out of range" dsk-train --zero 4 --data "$T/none" --steps 1 --out "$T/e"
expect_err_contains "--zero: 4 is out of range [0, 3]" "the message names --zero and its range"
expect_exit 64 "--zero not a number" dsk-train --zero all --data "$T/none" --steps 1 --out "$T/e"
expect_exit 64 "--dist-timeout negative" dsk-train --dist-timeout -5 --data "$T/none" --steps 1 --out "$T/e"
expect_err_contains "--dist-timeout" "the message names --dist-timeout"
expect_exit 64 "srun's tasks without an MPI plugin are refused" env SLURM_STEP_NUM_TASKS=4 dsk-train --data "$T/none" \
    --steps 1 --out "$T/e"
expect_err_contains "run srun --mpi=pmix" "the message says how to start them"
expect_exit 64 "--memory-table of an unknown preset" dsk-train --memory-table 9b
expect_err_contains "no such preset" "the unknown preset is named"
expect_exit 64 "--memory-table with a sequence longer than the model's" dsk-train --memory-table nano --seq-len 65
# Counted, not allocated: 34 GB of positions (8192 x 1M) under a 1 GB
# limit (it allocated the losses' host buffer, and a RoPE table of 512 MB;
# ASan's shadow memory needs more address space than that).
expect_exit 0 "--memory-table allocates nothing it counts" \
    sh -c '[ -n "${DSK_SAN:-}" ] || ulimit -v 1000000
           dsk-train --memory-table nano --set seq_len=1048576 --seq-len 1048576 -b 8192'
expect_exit 0 "--memory-table 7b" dsk-train --memory-table 7b
cp "$T/out" "$T/table"
check "the 7b table: 1-64 ranks x ZeRO 0-3, sharding divides what it shards" python3 - "$T/table" <<'PY'
import sys
units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 14 and f[0].isdigit():
        v = [float(f[i]) * units[f[i + 1]] for i in range(2, 14, 2)]
        rows[int(f[0]), int(f[1])] = dict(zip(("params", "grads", "optim", "acts", "total", "recompute"), v))
assert sorted(rows) == [(w, z) for w in (1, 2, 4, 8, 16, 32, 64) for z in range(4)], sorted(rows)
one = rows[1, 0]
assert abs(one["params"] / 2**30 - 25.1) < 0.1 and abs(one["optim"] - 2 * one["params"]) < 2**30 * 0.1, one
for z in range(4):   # one rank: sharding changes nothing but the gathered buffers
    assert abs(rows[1, z]["optim"] - one["optim"]) < 0.01 * one["optim"]
for w in (2, 8, 64):
    assert abs(rows[w, 1]["optim"] * w / one["optim"] - 1) < 0.01, (w, rows[w, 1])
    assert rows[w, 1]["grads"] == one["grads"] and rows[w, 1]["params"] == one["params"]
    assert rows[w, 2]["grads"] < one["grads"] / w * 1.5 + 2 * 2**30, (w, rows[w, 2])
    assert rows[w, 3]["params"] < one["params"] / w + 2 * 2**30, (w, rows[w, 3])
    assert rows[w, 0]["total"] > rows[w, 1]["total"] > rows[w, 2]["total"] > rows[w, 3]["total"]
assert len({r["acts"] for r in rows.values()}) == 1
# --recompute: each layer keeps its input only, far less than all its activations.
for r in rows.values():
    assert r["recompute"] < r["total"] - 0.5 * r["acts"], r
PY

root=$(cd "$(dirname "$0")/../.." && pwd)
for f in train.sbatch mpirun.sh; do
    check "pipelines/distributed/$f parses" bash -n "$root/pipelines/distributed/$f"
done

# ---- data ---------------------------------------------------------------------------------------------
sh "$(dirname "$0")/nano_dataset.sh" "$T"
python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(6)
words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly dwarfs".split()
with open(f"{t}/pref.jsonl", "w") as f:
    for i in range(60):
        q = " ".join(random.choice(words) for _ in range(random.randint(2, 6)))
        f.write(json.dumps({"prompt": f"repeat {q}", "chosen": q, "rejected": " ".join(reversed(q.split())) + " no",
                            "split": "val" if i % 6 == 0 else "train"}) + "\n")
PY

# compare_runs.py REF RUN [FROM_STEP]: the runs' logged train and val losses
# agree (relative 1e-4) from FROM_STEP on, and so do their final weights
# and Adam's moments (1e-4, absolute and relative to the largest value).
compare=$(cd "$(dirname "$0")" && pwd)/compare_runs.py

common=(--data "$T/ds" --config nano --lr 3e-3 --warmup 4 --eval-every 4 --eval-batches 2 -j 1 --log-every 1 -q)
# The reference: one process, global batch 4 x 2 micro-batches.
expect_exit 0 "1 rank, batch 4, 2 micro-batches, 8 steps" dsk-train "${common[@]}" -b 4 --grad-accum 2 --steps 8 \
    --save-every 4 --keep 0 --log "$T/ref.jsonl" --out "$T/ref"

# One process, sharded stages (the machinery without MPI; leak-checked under ASan).
for z in 2 3; do
    expect_exit 0 "1 rank at --zero $z" dsk-train "${common[@]}" -b 4 --grad-accum 2 --steps 8 --zero $z \
        --log "$T/one$z.jsonl" --out "$T/one$z"
    check "1 rank at --zero $z follows --zero 0" python3 "$compare" "$T/ref" "$T/one$z"
done

if [ -z "$have_mpi" ]; then
    ok "# SKIP the mpirun cases: Open MPI's mpirun is not installed (apt-get install openmpi-bin)"
    echo "1..$tap_n"
    exit 0
fi

# ---- 2 ranks x batch 2 = 1 rank x batch 4, at every stage ---------------------------------------------------
expect_exit 64 "2 ranks: a batch the ranks cannot share" mpi dsk-train "${common[@]}" -b 3 --steps 2 --out "$T/e"
expect_err_contains "--batch 3 cannot be shared evenly by 2 ranks" "the message says why"
check "the message is printed once, not once per rank" test "$(grep -c 'cannot be shared' "$T/err")" -eq 1
expect_exit 64 "2 ranks: an unknown option" mpi dsk-train "${common[@]}" --bogus --steps 2 --out "$T/e"
check "... said once, by rank 0 (each rank said it)" test "$(grep -c "unknown option '--bogus'" "$T/err")" -eq 1
# GPU ranks (NCCL between them; tests/gpu/test_nccl.sh trains with them on
# a machine with GPUs): without a CUDA device every rank fails to open its
# device, and the ranks agree to stop before NCCL starts: at once, status
# 69, one message.  A build without CUDA (the sanitizer build) says so.
if nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    ok "# SKIP 2 ranks on the cuda backend without a device: this machine has one (tests/gpu/test_nccl.sh)"
else
    t0=$SECONDS
    expect_exit 69 "2 ranks on the cuda backend without a CUDA device: status 69" \
        timeout 120 "${mpirun2[@]}" dsk-train "${common[@]}" --backend cuda --steps 2 --out "$T/e"
    check "... in bounded time ($((SECONDS - t0))s < 60s)" test $((SECONDS - t0)) -lt 60
    check "... saying why" grep -qE "no CUDA device: |built without CUDA" "$T/err"
    check "... once, not once per rank" test "$(grep -cE 'no CUDA device: |built without CUDA' "$T/err")" -eq 1
fi
expect_exit 64 "2 ranks on an unknown backend: status 64" mpi dsk-train "${common[@]}" --backend tpu --steps 2 \
    --out "$T/e"
expect_err_contains "unknown backend 'tpu'" "the message names it"
# Ranks started apart (mpirun's app contexts A : B): they trained apart
# silently, or crashed in a collective whose sizes differed.
mpmd=(env "${san_env[@]}" mpirun --oversubscribe --mca btl_vader_single_copy_mechanism none)
expect_exit 64 "2 ranks, one with another --seed (it trained apart, exit 0)" timeout 120 "${mpmd[@]}" \
    -np 1 dsk-train "${common[@]}" --steps 2 --out "$T/e" : -np 1 dsk-train "${common[@]}" --steps 2 --out "$T/e" --seed 7
expect_err_contains "differ from rank 0's" "... the message says so"
expect_exit 64 "2 programs (A : B), the second with an unknown option" timeout 120 "${mpmd[@]}" \
    -np 1 dsk-train "${common[@]}" --steps 2 --out "$T/e" : -np 1 dsk-train "${common[@]}" --steps 2 --out "$T/e" --bogus
expect_err_contains "dsk-train[rank 1]: unknown option '--bogus'" "... the rank that has it says it (rank 0 cannot)"
expect_exit 64 "2 ranks, one with another model (it crashed: double free)" timeout 120 "${mpmd[@]}" \
    -np 1 dsk-train "${common[@]}" --steps 2 --out "$T/e" : -np 1 dsk-train "${common[@]}" --steps 2 --out "$T/e" \
    --set d_model=64
# The same path on two nodes, another copy of the data on one (here: the
# working directories of the two ranks)
mkdir -p "$T/nodeA" "$T/nodeB" && cp -r "$T/ds" "$T/nodeA/data" && cp -r "$T/ds" "$T/nodeB/data"
python3 -c '
import json, sys; p = sys.argv[1]; m = json.load(open(p)); m["command"] += " (an older copy)"
open(p, "w").write(json.dumps(m, indent=2) + "\n")' "$T/nodeB/data/MANIFEST"
rel=("${common[@]}"); rel[1]=data
expect_exit 65 "2 ranks, each its own copy of the dataset, the copies differ (it trained, exit 0)" timeout 120 \
    "${mpmd[@]}" -np 1 -wdir "$T/nodeA" dsk-train "${rel[@]}" --steps 2 --out "$T/e" : \
    -np 1 -wdir "$T/nodeB" dsk-train "${rel[@]}" --steps 2 --out "$T/e"
expect_err_contains "is not rank 0's dataset" "... the message says so"
check "no out directory is left by a refused start" test ! -e "$T/e"
for z in 0 1 2 3; do
    extra=()
    [ $z = 3 ] && extra=(--save-every 4 --keep 0 --sample-every 8 --sample-tokens 4)
    run_cmd mpi dsk-train "${common[@]}" -b 4 --grad-accum 2 --steps 8 --zero $z "${extra[@]}" \
        --log "$T/two$z.jsonl" --out "$T/two$z"
    check "2 ranks at --zero $z train (status $rc)" test "$rc" -eq 0
    check "2 ranks at --zero $z: the same losses, weights and moments as 1 rank" \
        python3 "$compare" "$T/ref" "$T/two$z"
done
# fp16 from a loss scale too large: the first steps overflow, and every
# rank must skip the same ones and halve the same scale (the decision
# rests on the global gradient norm), as one rank does.
fp16=(--dtype fp16 --loss-scale 68719476736 -b 4 --grad-accum 2 --steps 24 --save-every 0)
expect_exit 0 "1 rank, fp16 from loss scale 2^36" dsk-train "${common[@]}" "${fp16[@]}" --log "$T/h1.jsonl" \
    --out "$T/h1"
for z in 0 2; do
    run_cmd mpi dsk-train "${common[@]}" "${fp16[@]}" --zero $z --log "$T/h2z$z.jsonl" --out "$T/h2z$z"
    check "2 ranks at --zero $z, fp16 with overflows, train (status $rc)" test "$rc" -eq 0
    check "... skipping the same steps at the same scales as 1 rank" python3 - "$T/h1.jsonl" "$T/h2z$z.jsonl" <<'PY'
import json, sys
a, b = ([(r["step"], r["skipped"], r["loss_scale"]) for r in map(json.loads, open(p)) if "loss" in r]
        for p in sys.argv[1:])
assert a == b and a[-1][1] >= 5 and a[-1][1] < 24, (a, b)
PY
    check "... and the same losses, weights and moments" python3 "$compare" "$T/h1" "$T/h2z$z"
done
run_cmd mpi dsk-train --data "$T/ds" --config nano -b 4 --steps 1 --eval-every 0 -j 1 --zero 3 --out "$T/mem"
check "per-rank memory is printed (ZeRO-3: shards, gathered units)" grep -q \
    "2 ranks (mpi), ZeRO-3; memory per rank: parameters .* (shard) + .* gathered at most, gradients .* (shard)" \
    "$T/err"
check "the checkpoint is consolidated and records its world size and global data position" python3 - "$T/two3" <<'PY'
import json, os, sys
d = sys.argv[1] + "/latest"
assert sorted(os.listdir(d)) == ["config.json", "model.safetensors", "optimizer.safetensors", "state.json",
                                 "tokenizer.json"], os.listdir(d)
s = json.load(open(d + "/state.json"))
assert s["world_size"] == 2 and s["options"]["zero"] == 3 and s["data_cursor"]["pos"] == 8 * 4 * 2, s
PY
check "rank 0 samples at ZeRO-3" grep -q "\"sample\"" "$T/two3.jsonl"

# ---- resuming at another world size ------------------------------------------------------------------------
mkdir "$T/r21" && cp -r "$T/two3/step-00000004" "$T/r21/" && ln -s step-00000004 "$T/r21/latest"
expect_exit 0 "a 2-rank ZeRO-3 checkpoint resumes on 1 rank at ZeRO-0" dsk-train --resume --out "$T/r21" --zero 0 \
    --log "$T/r21.jsonl" --log-every 1 -q
check "... and finishes as the 1-rank run did" python3 "$compare" "$T/ref" "$T/r21" 5
mkdir "$T/r12" && cp -r "$T/ref/step-00000004" "$T/r12/" && ln -s step-00000004 "$T/r12/latest"
run_cmd mpi dsk-train --resume --out "$T/r12" --zero 3 --log "$T/r12.jsonl" --log-every 1 -q
check "a 1-rank checkpoint resumes on 2 ranks at ZeRO-3 (status $rc)" test "$rc" -eq 0
check "... and finishes as the 1-rank run did" python3 "$compare" "$T/ref" "$T/r12" 5
expect_exit 0 "1 rank, batch 3, 1 step" dsk-train "${common[@]}" -b 3 --steps 1 --out "$T/odd"
run_cmd mpi dsk-train --resume --out "$T/odd" -b 4 --steps 2 -q
check "resuming a data position 2 ranks cannot share is refused (status $rc)" test "$rc" -eq 64
expect_err_contains "which 2 ranks cannot share evenly" "the message says why"

# ---- DPO and a mixture of experts on 2 ranks -------------------------------------------------------------------
dsk-bpe encode -t "$T/tok.json" -o "$T/pref.dskt" "$T/pref.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/dpo" --seq-len 64 "$T/pref.dskt"
dpo=(--stage dpo --init "$T/ref" --data "$T/dpo" -b 2 --steps 3 --lr 1e-3 --eval-every 3 --eval-batches 2 -j 1
     --log-every 1 -q)
expect_exit 0 "dpo on 1 rank, 2 pairs a step" dsk-train "${dpo[@]}" --log "$T/dpo1.jsonl" --out "$T/dpo1"
run_cmd mpi dsk-train "${dpo[@]}" --zero 2 --log "$T/dpo2.jsonl" --out "$T/dpo2"
check "dpo on 2 ranks at ZeRO-2 (status $rc)" test "$rc" -eq 0
check "... the same losses, weights and moments as 1 rank" python3 "$compare" "$T/dpo1" "$T/dpo2"
moe=(--data "$T/ds" --config nano-moe --set experts=4 --set balance=bias --set router_noise=gaussian -b 4 --lr 1e-2
     --warmup 4 --steps 4 --eval-every 2 --eval-batches 1 -j 1 --log-every 2 -q)
for z in 0 3; do
    run_cmd mpi dsk-train "${moe[@]}" --zero $z --log "$T/moe$z.jsonl" --out "$T/moe$z"
    check "MoE with bias balancing and router noise on 2 ranks at --zero $z (status $rc)" test "$rc" -eq 0
done
check "MoE: ZeRO-3 (biases gathered, changed, written back) follows ZeRO-0" \
    python3 "$compare" "$T/moe0" "$T/moe3"
check "MoE: the logged expert load is over both ranks' tokens" python3 - "$T/moe3.jsonl" <<'PY'
import json, sys
m = [json.loads(l)["moe"][0] for l in open(sys.argv[1]) if '"moe"' in l][-1]
assert abs(sum(m["load"]) - 1) < 1e-3 and m["entropy"] > 0, m
PY

# ---- signals and faults -------------------------------------------------------------------------------------------
long=(--data "$T/ds" --config nano -b 4 --lr 3e-3 --warmup 4 --eval-every 0 --save-every 0 --steps 1000000 -j 1
      --log-every 1)
# start_long NAME ARGS...: a long 2-rank run in the background, once it has
# logged a step; a guard kills it after 120 s whatever happens.
start_long() {
    local name=$1; shift
    "${mpirun2[@]}" dsk-train "${long[@]}" "$@" --log "$T/$name.jsonl" --out "$T/$name" >/dev/null 2>"$T/$name.err" &
    mpirun_pid=$!   # env execs mpirun: the same process
    (sleep 120; kill -KILL "$mpirun_pid") >/dev/null 2>&1 &
    guard_pid=$!
    for _ in $(seq 1 600); do [ -s "$T/$name.jsonl" ] && break; sleep 0.1; done
}
# rank_pid N: the pid of rank N of the background job (0 if there is none).
rank_pid() {
    local p
    for p in $(pgrep -P "$mpirun_pid"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
            echo "$p"
            return
        fi
    done
    echo 0
}
# signal_rank SIG N: sends SIG to rank N (or ends the job when it has no such rank).
signal_rank() {
    victim=$(rank_pid "$2")
    if [ "$victim" = 0 ]; then kill -KILL "$mpirun_pid"; else kill "-$1" "$victim"; fi
}
# finish: waits for the job; sets rc and secs (from now).
finish() {
    local t0=$SECONDS
    wait "$mpirun_pid"
    rc=$?
    secs=$((SECONDS - t0))
    kill $(pgrep -P "$guard_pid") "$guard_pid" 2>/dev/null   # the guard and its sleep
    wait "$guard_pid" 2>/dev/null
}

start_long sigterm --zero 3
signal_rank TERM 1
finish
check "SIGTERM to one rank: the job exits 143" test "$rc" -eq 143
check "... rank 0 says where it stopped" grep -q "interrupted at step" "$T/sigterm.err"
stopped=$(json_get "$T/sigterm/latest/state.json" '["step"]' 2>/dev/null || echo none)
check "... every rank stopped after the same step, which the checkpoint holds" \
    test "$(tail -n 1 "$T/sigterm.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')" = "$stopped"
expect_exit 0 "... and it resumes on 1 rank" dsk-train --resume --out "$T/sigterm" --steps $((stopped + 2)) -q

start_long sigusr1 --zero 1
kill -USR1 "$mpirun_pid"   # mpirun forwards SIGUSR1 to every rank
finish
check "SIGUSR1 to mpirun: the job exits 138 with a checkpoint" test "$rc" -eq 138 -a -s "$T/sigusr1/latest/state.json"

start_long sigkill --zero 2
signal_rank KILL 1
finish
check "a rank killed mid-run: the job exits non-zero (status $rc) in bounded time (${secs}s < 60s)" \
    test "$rc" -ne 0 -a "$secs" -lt 60

start_long frozen --zero 0 --dist-timeout 3
signal_rank STOP 1
finish
[ "$victim" != 0 ] && kill -KILL "$victim" 2>/dev/null
check "a frozen rank: the others give up after --dist-timeout (status $rc, ${secs}s < 60s)" \
    test "$rc" -eq 69 -a "$secs" -lt 60
check "... saying what happened" grep -q "waited 3 s for the other ranks (--dist-timeout): a rank has died or hangs" \
    "$T/frozen.err"

echo "1..$tap_n"
