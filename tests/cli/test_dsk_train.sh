#!/usr/bin/env bash
# CLI tests for dsk-train: a nano model trains and its loss falls,
# checkpoints are whole and resume bit for bit (also after SIGTERM), and
# every refusal (usage, missing data, mismatched tokenizer or shapes,
# divergence) is a clear error with the documented exit status.
. "$(dirname "$0")/lib.sh"

expect_exit 0 "--help" dsk-train --help
expect_exit 0 "--version" dsk-train --version
expect_exit 64 "no --out is a usage error" dsk-train --data "$T/none" --steps 1
expect_exit 64 "unknown preset" dsk-train --show-config huge
expect_err_contains "no such preset" "unknown preset names the problem"
expect_exit 64 "unknown --set key" dsk-train --show-config nano --set colour=blue
expect_exit 64 "bad pattern letter" dsk-train --show-config nano --set pattern=GXG
expect_exit 64 "--top-p 0 keeps no token: refused" dsk-train --data "$T/none" --out "$T/none" --top-p 0
expect_exit 64 "--beta2 just past its range" dsk-train --data "$T/none" --out "$T/none" --beta2 0.9999999
expect_err_contains "--beta2: 0.9999999 is out of range" "the value is shown as given, not rounded to 1"
expect_exit 64 "a --prompt that is not UTF-8" dsk-train --data "$T/none" --out "$T/none" --prompt $'ab\xfbc'
expect_err_contains "--prompt: invalid UTF-8 at byte 2" "the message says where"
expect_exit 0 "--show-config with --set" dsk-train --show-config nano --set d_model=64 --set pattern=LLG
check "config.json has HF keys and the overrides" bash -c \
    "grep -q '\"hidden_size\": 64' '$T/out' && grep -q '\"dsk_attention_pattern\": \"LLG\"' '$T/out' &&
     grep -q '\"architectures\": \[\"LlamaForCausalLM\"\]' '$T/out'"
expect_exit 64 "--show-config beside training options (it prints and exits; they did nothing)" \
    dsk-train --show-config nano --data "$T/none" --out "$T/none" --steps 2
expect_err_contains "does nothing with --show-config" "... named"
expect_exit 64 "--show-config with --memory-table" dsk-train --show-config nano --memory-table tiny
expect_exit 64 "--show-config with --batch (the table's)" dsk-train --show-config nano -b 4

# A small corpus, tokenizer and dataset (rows of 64 tokens, documents whole).
sh "$(dirname "$0")/nano_dataset.sh" "$T"

common=(--data "$T/ds" --config nano -b 4 --lr 3e-3 --warmup 5 --eval-every 20 --eval-batches 2 -j 2)
expect_exit 0 "train nano 40 steps" dsk-train "${common[@]}" --steps 40 --save-every 20 --keep 0 \
    --log "$T/a.jsonl" --sample-every 40 --sample-tokens 8 --out "$T/a"
expect_err_contains "sample at step 40" "a sample is printed"
# OpenBLAS falls back to its SSE3 "Prescott" kernels on a CPU it does not
# know (Debian 12's on Emerald Rapids): dsk-train starts itself again with
# OPENBLAS_CORETYPE set, and says which kernels run.
expect_err_contains "cpu backend (OpenBLAS " "the start line names OpenBLAS's kernels"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    check "a CPU with AVX2 never runs the Prescott kernels" bash -c "! grep -q 'OpenBLAS Prescott kernels' '$T/err'"
    expect_exit 0 "OPENBLAS_CORETYPE set: the user's choice stands" env OPENBLAS_CORETYPE=Haswell \
        dsk-train "${common[@]}" --steps 1 --out "$T/coretype"
    expect_err_contains "(OpenBLAS Haswell kernels)" "the kernels the user chose run"
    # Thread binding survives exec: no new start, the kernels OpenBLAS
    # chose (those DSK_BLAS_KEEP=1 keeps).
    expect_exit 0 "DSK_BLAS_KEEP=1: OpenBLAS's own choice" env DSK_BLAS_KEEP=1 \
        dsk-train "${common[@]}" --steps 1 --out "$T/keep"
    own=$(grep -o '(OpenBLAS [A-Za-z0-9]* kernels)' "$T/err")
    expect_exit 0 "OMP_PROC_BIND set: the run goes on" env OMP_PROC_BIND=close \
        dsk-train "${common[@]}" --steps 1 --out "$T/bind"
    expect_err_contains "${own:-no kernels line}" "OMP_PROC_BIND set: no new start, OpenBLAS's own kernels"
    # Started through the dynamic loader: its arguments are dsk-train's.
    ldso=$(ldd "$DSK_BIN/dsk-train" | awk '/ld-linux/ {print $1}')
    if [ -x "$ldso" ]; then
        expect_exit 0 "started through the dynamic loader: --version is dsk-train's" "$ldso" "$DSK_BIN/dsk-train" --version
        check "the version line is dsk-train's" grep -q "dsk-train (dsk)" "$T/out"
    fi
fi
check "step directories, latest and every checkpoint file" bash -c \
    "cd '$T/a' && test -d step-00000020 -a -d step-00000040 && test \"\$(readlink latest)\" = step-00000040 &&
     for f in config.json model.safetensors optimizer.safetensors state.json tokenizer.json; do test -s latest/\$f || exit 1; done"
check "no temporaries left" test "$(ls "$T/a" | grep -c tmp)" -eq 0
check "train loss falls" python3 - "$T/a.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r["loss"] for r in rows if "loss" in r]
val = [r["val_loss"] for r in rows if "val_loss" in r]
assert len(train) >= 3 and train[-1] < train[0] - 0.5, train
assert len(val) == 2 and val[-1] < val[0], val
assert all(k in rows[0] for k in ("step", "lr", "grad_norm", "tokens", "tokens_per_s", "gflops", "skipped"))
PY
check "state.json records step, tokens and cursor" bash -c \
    "grep -q '\"step\":40' '$T/a/latest/state.json' && grep -q '\"tokens\":10240' '$T/a/latest/state.json' &&
     grep -q '\"data_cursor\"' '$T/a/latest/state.json'"

# Resume from the step-20 checkpoint: the same weights and moments as the uninterrupted run.
mkdir "$T/b" && cp -r "$T/a/step-00000020" "$T/b/" && ln -s step-00000020 "$T/b/latest"
expect_exit 0 "--resume from step 20" dsk-train --resume --out "$T/b" -q
check "resumed weights are bit-identical" cmp "$T/a/latest/model.safetensors" "$T/b/latest/model.safetensors"
check "resumed optimizer state is bit-identical" cmp "$T/a/latest/optimizer.safetensors" \
    "$T/b/latest/optimizer.safetensors"
expect_exit 64 "--resume of a finished run asks for more steps" dsk-train --resume --out "$T/b" -q
expect_err_contains "raise --steps" "the message says what to do"
# A length given now in another unit replaces the saved --steps (256 tokens a step: 45 steps).
expect_exit 0 "--resume with a new length in tokens" dsk-train --resume --out "$T/b" --tokens $((256 * 45)) -q
check "--tokens on --resume: the run went on to its step" grep -q '"step":45' "$T/b/latest/state.json"
# state.json's options are checked as the command line's.
mkdir "$T/bad-state" && cp -r "$T/a/step-00000020" "$T/bad-state/" && ln -s step-00000020 "$T/bad-state/latest"
python3 - "$T/bad-state/step-00000020/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); s["options"]["grad_accum"] = 0; json.dump(s, open(sys.argv[1], "w"))
PY
expect_exit 65 "--resume: an option out of range in state.json" dsk-train --resume --out "$T/bad-state" -q
expect_err_contains '"grad_accum" is 0' "the option is named"
# Optimizer state that is not finite: a damaged checkpoint (its resume saved
# an all-NaN model, exit 0).
mkdir "$T/nan-opt" && cp -r "$T/a/step-00000020" "$T/nan-opt/" && ln -s step-00000020 "$T/nan-opt/latest"
python3 - "$T/nan-opt/step-00000020/optimizer.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "r+b"); n = struct.unpack("<Q", f.read(8))[0]; head = json.loads(f.read(n))
name = next(k for k in head if k.endswith(".exp_avg_sq"))
a, b = head[name]["data_offsets"]
f.seek(8 + n + a); f.write(struct.pack("<f", float("inf")))
PY
expect_exit 65 "--resume: optimizer state that is not finite" dsk-train --resume --out "$T/nan-opt" --steps 22 -q
expect_err_contains "holds a non-finite value" "the damage is named"
python3 - "$T/nan-opt/step-00000020/optimizer.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "r+b"); n = struct.unpack("<Q", f.read(8))[0]; head = json.loads(f.read(n))
name = next(k for k in head if k.endswith(".exp_avg_sq"))
a, b = head[name]["data_offsets"]
f.seek(8 + n + a); f.write(struct.pack("<f", -1.0))
PY
expect_exit 65 "--resume: a negative second moment" dsk-train --resume --out "$T/nan-opt" --steps 22 -q
expect_err_contains "holds a negative value" "the damage is named"
# An optimizer step no run reaches: its Adam corrections overflowed (an
# all-NaN model saved, exit 0).
rm -rf "$T/nan-opt" && mkdir "$T/nan-opt" && cp -r "$T/a/step-00000020" "$T/nan-opt/" && ln -s step-00000020 "$T/nan-opt/latest"
python3 - "$T/nan-opt/step-00000020/optimizer.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; head = json.loads(raw[8:8 + n])
head["__metadata__"]["step"] = "9223372036854775806"
h = json.dumps(head).encode(); h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PY
expect_exit 65 "--resume: an optimizer step past any run's length" dsk-train --resume --out "$T/nan-opt" --steps 22 -q
expect_err_contains "optimizer step 9223372036854775806 is over the limit" "the damage is named"
rm -rf "$T/nan-opt" && mkdir "$T/nan-opt" && cp -r "$T/a/step-00000020" "$T/nan-opt/" && ln -s step-00000020 "$T/nan-opt/latest"
python3 - "$T/nan-opt/step-00000020/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); s["loss_scale"] = 1e-45; json.dump(s, open(sys.argv[1], "w"))
PY
expect_exit 65 "--resume: a loss scale out of range in state.json" dsk-train --resume --out "$T/nan-opt" --steps 22 -q
expect_err_contains '"loss_scale"' "the field is named"

# SIGTERM: the step finishes, a checkpoint is written, the status is 143; resuming completes the run.
dsk-train "${common[@]}" --steps 3000 --eval-every 0 --save-every 0 --log "$T/c.jsonl" --log-every 1 \
    --out "$T/c" -q 2>"$T/c.err" &
pid=$!
for _ in $(seq 1 300); do [ -s "$T/c.jsonl" ] && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM exits 143" test "$rc" -eq 143
check "SIGTERM leaves a whole checkpoint" test -s "$T/c/latest/model.safetensors" -a -s "$T/c/latest/state.json"
stopped=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$T/c/latest/state.json")
expect_exit 0 "resume after SIGTERM with a shorter run" dsk-train --resume --out "$T/c" --steps $((stopped + 5)) -q
check "the resumed run reached its step" grep -q "\"step\":$((stopped + 5))" "$T/c/latest/state.json"
# The steps since the last log line get a line of their own when a signal
# stops the run (their losses were lost: --log-every 10, stopped at 257, the
# log ended at 250 and the resumed run's line averaged 258-260 only).
dsk-train "${common[@]}" --steps 3000 --eval-every 0 --save-every 0 --log "$T/win.jsonl" --log-every 100000 \
    --out "$T/win" -q 2>"$T/win.err" &
pid=$!
sleep 2
kill -TERM "$pid"
wait "$pid"
check "SIGTERM between log lines: the log has a line for the step it stopped at" python3 - "$T/win.jsonl" \
    "$T/win/latest/state.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
step = json.load(open(sys.argv[2]))["step"]
train = [l for l in lines if "loss" in l]
assert step > 0 and train and train[-1]["step"] == step, (step, train[-1:])
PY
expect_exit 74 "--log on a full disk: status 74 (it trained on, exit 0, the log cut short)" dsk-train "${common[@]}" \
    --steps 30 --eval-every 0 --log /dev/full --out "$T/full" -q
expect_err_contains "/dev/full: cannot write the log" "... naming the file"
check "... and the checkpoint of the step it stopped at is saved" test -s "$T/full/latest/state.json"
# A second signal does not wait for a step: one of --grad-accum 100000 would
# take hours (a second SIGTERM was ignored as the first).
dsk-train "${common[@]}" --grad-accum 100000 --steps 2 --eval-every 0 --out "$T/long" 2>"$T/long.err" &
pid=$!
for _ in $(seq 1 100); do grep -q "a new model" "$T/long.err" && break; sleep 0.1; done
sleep 1   # into the step, past the handlers' setup
kill -TERM "$pid"; sleep 0.5; kill -TERM "$pid"
timeout 20 tail --pid="$pid" -f /dev/null; rc=$?
check "a second SIGTERM stops a long step at once" test "$rc" -eq 0
wait "$pid"; rc=$?
check "by the signal: status 143 ($rc)" test "$rc" -eq 143
check "no temporary checkpoint is left" sh -c "! ls -a '$T/long' 2>/dev/null | grep -q tmp"

# continue: weights from a checkpoint, a fresh optimizer and step count.
expect_exit 0 "--stage continue" dsk-train "${common[@]}" --stage continue --init "$T/a" --steps 5 --out "$T/d" -q
check "continue starts at step 0 with stage continue" bash -c \
    "grep -q '\"stage\":\"continue\"' '$T/d/latest/state.json' && grep -q '\"step\":5' '$T/d/latest/state.json'"
expect_exit 64 "--stage continue without --init" dsk-train "${common[@]}" --stage continue --steps 5 --out "$T/e"
expect_exit 64 "--stage sft without --init" dsk-train "${common[@]}" --stage sft --steps 5 --out "$T/e"

# Refusals.
expect_exit 73 "a new run into another run's directory" dsk-train "${common[@]}" --steps 2 --out "$T/a"
expect_err_contains "holds a run already" "the message says to resume or choose another --out"
expect_exit 64 "--min-lr above --lr" dsk-train "${common[@]}" --steps 2 --lr 1e-4 --min-lr 1e-3 --out "$T/e"
expect_err_contains "above --lr" "the message says the floor is above the peak"
expect_exit 0 "a low --lr with the default floor" dsk-train "${common[@]}" --steps 6 --warmup 2 --lr 1e-5 \
    --log-every 1 --log "$T/lowlr.jsonl" --eval-every 0 --out "$T/lowlr" -q
check "the rate never rises above --lr after the warmup (the default floor 3e-5 was above it)" python3 -c "
import json; lr = [json.loads(l)['lr'] for l in open('$T/lowlr.jsonl') if '\"lr\"' in l]
assert max(lr) <= 1e-5 and lr[-1] < lr[2], lr"
echo "earlier line" > "$T/stdout-log"
( dsk-train "${common[@]}" --steps 2 --log-every 1 --log /dev/stdout --eval-every 0 --out "$T/stdlog" -q >> "$T/stdout-log" )
check "--log /dev/stdout appends where the shell opened stdout for appending (it emptied the file)" \
    sh -c "head -1 '$T/stdout-log' | grep -qx 'earlier line' && grep -q '\"step\":2' '$T/stdout-log'"
expect_exit 64 "--tokens that make more steps than the limit" dsk-train "${common[@]}" --tokens 9999T -b 1 --seq-len 1 \
    --out "$T/e"
expect_exit 64 "--resume with another --stage" dsk-train --resume --out "$T/a" --steps 50 --stage sft -q
expect_err_contains "a new stage is a new run" "the message says how to start a new stage"
expect_exit 64 "--resume with --init" dsk-train --resume --out "$T/a" --steps 50 --init "$T/a" -q
check "no --out directory left by the refusals" test ! -e "$T/e"
mkdir -p "$T/stray" && cp -r "$T/a/step-00000020" "$T/stray/"
expect_exit 73 "a new run into a directory of step directories without latest" \
    dsk-train "${common[@]}" --steps 2 --keep 1 --out "$T/stray"
check "the step directory there is left alone" test -s "$T/stray/step-00000020/model.safetensors"
echo x > "$T/afile"
expect_exit 73 "--out a file: refused before training" dsk-train "${common[@]}" --steps 100000 --out "$T/afile"
expect_err_contains "not a directory" "the message says --out is not a directory"
expect_exit 66 "a run that fails at the start" dsk-train "${common[@]}" --data "$T/nope" --steps 2 --out "$T/never"
check "leaves no --out directory behind" test ! -e "$T/never"
# --resume from an earlier step (latest moved back): the later steps would mix with the new ones
# (--keep 1 used to delete the checkpoint just saved, and the one resumed from).
cp -r "$T/a" "$T/back" && ln -sfn step-00000020 "$T/back/latest"
expect_exit 0 "samples at a high temperature" dsk-train "${common[@]}" --steps 6 --sample-every 1 --sample-tokens 40 \
    --temperature 1.5 --top-k 0 --eval-every 0 --log "$T/samples.jsonl" --out "$T/samples" -q
check "the log is JSON text (UTF-8) even where a sample ends mid-character" python3 -c "
import json; n = [json.loads(l.decode('utf-8')) for l in open('$T/samples.jsonl', 'rb')]
assert sum('sample' in x for x in n) == 6, n"
expect_exit 73 "--resume with later step directories there" dsk-train --resume --out "$T/back" --steps 30 --keep 1 -q
expect_err_contains "step-00000040 is past the step resumed from (20)" "the message names the later step"
expect_err_contains "ln -sfn step-00000040 $T/back/latest" "... and how to go on from it, if a run stopped saving it"
check "nothing was removed" test -d "$T/back/step-00000020" -a -d "$T/back/step-00000040"
rm -rf "$T/back/step-00000040" && ln -sfn step-00000020 "$T/back/latest"
expect_exit 0 "--resume from there once they are moved away" \
    dsk-train --resume --out "$T/back" --steps 22 --save-every 1 --keep 1 -q
check "--keep 1 keeps the last step, which latest points at" \
    test "$(ls "$T/back" | grep -c '^step-')" -eq 1 -a -s "$T/back/latest/model.safetensors"
# A run stopped between committing its first step directory and making latest: --resume goes on from that
# step (it said "not a checkpoint", and a new run "holds a run already").
mkdir "$T/nolatest" && cp -r "$T/a/step-00000020" "$T/nolatest/"
expect_exit 0 "--resume of a run with a step directory and no latest" dsk-train --resume --out "$T/nolatest" --steps 22
expect_err_contains "going on from step-00000020" "... says where it went on from"
check "... and its save made latest" test "$(readlink "$T/nolatest/latest")" = step-00000022
# A temporary of our own PID, left by a killed process (a container's PIDs start again from 1), is stale.
expect_exit 0 "a stale temporary of this process's PID is replaced" bash -c \
    "mkdir '$T/nolatest/step-00000024.tmp.'\$\$ && exec dsk-train --resume --out '$T/nolatest' --steps 24 -q"
check "... and nothing is left of it" test "$(ls "$T/nolatest" | grep -c tmp)" -eq 0
# --out a checkpoint: a run would nest inside it.
expect_exit 73 "--resume --out a run's latest" dsk-train --resume --out "$T/a/latest" --steps 50 -q
expect_err_contains "is a checkpoint (a step directory, or latest)" "... --out names the run's directory"
expect_exit 73 "a new run into a step directory" dsk-train "${common[@]}" --steps 2 --out "$T/a/step-00000020" -q
check "... nothing written there" test "$(ls "$T/a/step-00000020" | wc -l)" -eq 5
# A copied run whose latest is a directory: found before training, not at the first save.
cp -rL "$T/a" "$T/copied"
expect_exit 73 "--resume of a copy whose latest is a directory" dsk-train --resume --out "$T/copied" --steps 50 -q
expect_err_contains "latest is a directory, not a link" "... says what to do"
# A --config file is checked after --set, as the man page says (--show-config's output of a --set
# that breaks it was refused even with the --set that mends it), and a dense model's MoE keys are
# not checked.
dsk-train --show-config nano --set n_heads=3 > "$T/h3.json"
expect_exit 0 "a --config file mended by --set" dsk-train --show-config "$T/h3.json" --set n_heads=4
expect_exit 0 "... and trained" dsk-train "${common[@]}" --config "$T/h3.json" --set n_heads=4 --steps 1 \
    --eval-every 0 --out "$T/mended" -q
python3 -c "
import json, sys
c = json.load(open(sys.argv[1])); c['num_attention_heads'] = 4; c['eos_token_id'] = [7, 8, 9]
json.dump(c, open(sys.argv[2], 'w'))" "$T/h3.json" "$T/eos-list.json"
expect_exit 0 "a config whose eos_token_id is a list (Llama 3.x Instruct's)" dsk-train --show-config "$T/eos-list.json"
check "... takes the first" grep -q '"eos_token_id": 7,' "$T/out"
expect_exit 0 "a dense model's shared_experts is not checked" dsk-train "${common[@]}" --set shared_experts=65 \
    --steps 1 --eval-every 0 --out "$T/dense65" -q
# --epochs: X x rows / (batch x accum) steps, rounded up: exactly (0.07 x 100 rows was 8 steps, 7.000000000000001
# rounded up).
epochs=$(python3 - "$T/ds/MANIFEST" <<'PY'
import json, math, sys
from fractions import Fraction
rows = json.load(open(sys.argv[1]))["rows"]["train"]
tries = ["0.07", "0.55", "1.1", "2.2", "0.15", "0.3", "0.7", "1.3", "3.3"]
print(next((e for e in tries if math.ceil(float(e) * rows) != math.ceil(Fraction(e) * rows)), "1.1"),
      math.ceil(Fraction(next((e for e in tries if math.ceil(float(e) * rows) != math.ceil(Fraction(e) * rows)), "1.1")) * rows))
PY
)
expect_exit 0 "--epochs ${epochs% *} at one row a step" dsk-train "${common[@]}" -b 1 --epochs "${epochs% *}" \
    --eval-every 0 --save-every 0 --out "$T/epochs" -q
check "... runs ${epochs#* } steps, the rows times X rounded up exactly" \
    grep -q "\"step\":${epochs#* }," "$T/epochs/latest/state.json"
# Two runs never write into one directory at once.
dsk-train "${common[@]}" --steps 100000 --save-every 1 --keep 0 --eval-every 0 --out "$T/busy" -q 2>/dev/null &
busy=$!
for _ in $(seq 200); do [ -e "$T/busy/latest" ] && break; sleep 0.1; done
expect_exit 73 "--resume of a run that is still running" dsk-train --resume --out "$T/busy" --steps 200000 -q
expect_err_contains "another dsk-train is writing to it" "the message says why"
kill -KILL $busy; wait $busy 2>/dev/null
dsk-train --show-config nano --set d_ff=64 > "$T/nano.json"
expect_exit 0 "a config file saved by --show-config trains (vocab from the dataset)" \
    dsk-train "${common[@]}" --config "$T/nano.json" --steps 1 --out "$T/cfgfile" -q
check "the saved config's override is in the checkpoint" grep -q '"intermediate_size": 64' "$T/cfgfile/latest/config.json"
expect_exit 66 "missing dataset" dsk-train --data "$T/nope" --steps 1 --out "$T/e"
expect_exit 64 "--seq-len beyond the dataset's rows" dsk-train "${common[@]}" --seq-len 65 --steps 1 --out "$T/e"
expect_exit 64 "--seq-len beyond the model" dsk-train "${common[@]}" --config tiny --seq-len 64 --set seq_len=32 \
    --steps 1 --out "$T/e"
expect_exit 64 "no run length" dsk-train "${common[@]}" --out "$T/e"
check "refused runs leave no checkpoint" test ! -e "$T/e"

dsk-bpe train --vocab-size 280 -o "$T/tok2.json" "$T/docs.jsonl" 2>/dev/null
dsk-bpe encode -t "$T/tok2.json" -o "$T/docs2.dskt" "$T/docs.jsonl"
dsk-pack -q -t "$T/tok2.json" -o "$T/ds2" --seq-len 64 "$T/docs2.dskt"
expect_exit 65 "continue on data from another tokenizer" dsk-train "${common[@]}" --data "$T/ds2" --stage continue \
    --init "$T/a" --steps 2 --out "$T/f"
expect_err_contains "trained with tokenizer" "the tokenizer mismatch is named"

# A checkpoint whose tensors do not fit the model.
expect_exit 0 "train a model with another d_ff" dsk-train "${common[@]}" --set d_ff=64 --steps 1 --out "$T/g" -q
mkdir "$T/h" && cp -r "$T/a/step-00000040" "$T/h/" && ln -s step-00000040 "$T/h/latest"
cp "$T/g/latest/model.safetensors" "$T/h/step-00000040/model.safetensors"
expect_exit 65 "a checkpoint with the wrong shapes" dsk-train --resume --out "$T/h" --steps 50 -q
expect_err_contains "mlp.gate_proj.weight" "the mismatched tensor is named"
printf 'not safetensors' > "$T/h/step-00000040/model.safetensors"
expect_exit 65 "a damaged model.safetensors" dsk-train --resume --out "$T/h" --steps 50 -q

# Divergence: weights of 1e20 overflow the norms, the loss is non-finite; training stops with status 70.
expect_exit 70 "non-finite steps stop training" dsk-train "${common[@]}" --set init_std=1e20 \
    --max-bad-steps 2 --steps 50 --save-every 0 --log "$T/i.jsonl" --out "$T/i"
expect_err_contains "in a row had a non-finite" "divergence is explained"
check "skipped steps are logged as valid JSON (null, not NaN)" python3 - "$T/i.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2 and rows[-1]["skipped"] == 2 and rows[-1]["grad_norm"] is None, rows
PY
expect_exit 70 "a run of non-finite steps, saved at step 3" dsk-train "${common[@]}" --set init_std=1e20 \
    --steps 10 --save-every 3 --out "$T/bad3" -q
expect_err_contains "step 5: non-finite" "... stops at step 5 (the default --max-bad-steps)"
rm -f "$T/bad3/latest" && ln -s step-00000003 "$T/bad3/latest" && rm -rf "$T/bad3/step-00000005"
expect_exit 70 "... resumed from step 3" dsk-train --resume --out "$T/bad3" -q
expect_err_contains "step 5: non-finite" "... reaches step 5"
check "... and stops there: the count went on from the checkpoint's (it began again, and stopped at 8)" \
    bash -c "! grep -q 'step 6:' '$T/err'"
# fp16 at an init of 1e3: the steps are skipped (a halved loss scale), and the
# evaluation's loss is not finite either: null in the log, as a step's is
expect_exit 0 "a diverged fp16 run with an evaluation" dsk-train "${common[@]}" --set init_std=1e3 --dtype fp16 \
    --steps 2 --eval-every 2 --eval-batches 1 --save-every 0 --log "$T/nv.jsonl" --out "$T/nv" -q
check "a non-finite validation loss is logged as null (JSON has no NaN)" python3 - "$T/nv.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [r for r in rows if "val_loss" in r]
assert val and val[-1]["val_loss"] is None and val[-1]["val_bpb"] is None, rows
PY

# ---- mixed precision and recomputation --------------------------------------------------------------
# bf16 and fp16 products (operands rounded, fp32 sums) train the same
# 40 steps as run a, and end close to its loss.
for d in bf16 fp16; do
    expect_exit 0 "--dtype $d trains nano" dsk-train "${common[@]}" --dtype $d --steps 40 --save-every 20 --keep 0 \
        --log "$T/$d.jsonl" --out "$T/$d" -q
done
check "bf16 and fp16: the loss falls and ends within 1% of fp32's" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
def losses(name):
    return [r["loss"] for r in map(json.loads, open(f"{t}/{name}.jsonl")) if "loss" in r]
fp32 = losses("a")
for d in ("bf16", "fp16"):
    got = losses(d)
    assert len(got) == len(fp32) and got[-1] < got[0] - 0.5, (d, got)
    assert abs(got[-1] - fp32[-1]) < 0.01 * fp32[-1], (d, got[-1], fp32[-1])
    assert got != fp32, d   # the products were rounded
PY
check "the fp16 log carries the loss scale, 2^16 by default; bf16's does not" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
fp16 = [r for r in map(json.loads, open(f"{t}/fp16.jsonl")) if "loss" in r]
bf16 = [r for r in map(json.loads, open(f"{t}/bf16.jsonl")) if "loss" in r]
assert all(r["loss_scale"] == 65536 for r in fp16), fp16
assert all("loss_scale" not in r for r in bf16), bf16
PY
check "state.json: dtype in the options, the loss scale at the top" python3 - "$T/fp16/latest/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["options"]["dtype"] == "fp16" and s["options"]["recompute"] == 0, s["options"]
assert s["loss_scale"] == 65536 and s["loss_scale_good_steps"] == 40, s
PY
# --resume keeps --dtype and the dynamic scale: a short window makes the
# scale grow (and overflow) during the run, and the resumed half must
# match the uninterrupted run bit for bit.
expect_exit 0 "fp16 with --loss-scale-window 6" dsk-train "${common[@]}" --dtype fp16 --loss-scale-window 6 \
    --steps 40 --save-every 20 --keep 0 --log "$T/w.jsonl" --out "$T/w" -q
check "the scale grew during the run" python3 - "$T/w.jsonl" <<'PY'
import json, sys
scales = [r["loss_scale"] for r in map(json.loads, open(sys.argv[1])) if "loss" in r]
assert max(scales) > 65536, scales
PY
mkdir "$T/w2" && cp -r "$T/w/step-00000020" "$T/w2/" && ln -s step-00000020 "$T/w2/latest"
expect_exit 0 "--resume an fp16 run from step 20" dsk-train --resume --out "$T/w2" -q
check "resumed fp16 weights are bit-identical" cmp "$T/w/latest/model.safetensors" "$T/w2/latest/model.safetensors"
check "resumed fp16 state (dtype, scale and its count) matches" python3 - "$T/w" "$T/w2" <<'PY'
import json, sys
a, b = (json.load(open(f"{d}/latest/state.json")) for d in sys.argv[1:])
assert b["options"]["dtype"] == "fp16" and b["options"]["loss_scale_window"] == 6, b["options"]
for k in ("loss_scale", "loss_scale_good_steps", "skipped_steps", "step"):
    assert a[k] == b[k], (k, a[k], b[k])
PY
# A huge first scale: every step overflows until halving brings the scale
# into fp16's range; those steps are skipped but not bad ones (no exit 70
# with the default --max-bad-steps 5), then the run trains.
expect_exit 0 "fp16 from --loss-scale 1e30 halves until the gradients fit" dsk-train "${common[@]}" --dtype fp16 \
    --loss-scale 1e30 --steps 120 --eval-every 0 --save-every 0 --log "$T/ov.jsonl" --out "$T/ov"
expect_err_contains "step 1: gradient overflow at loss scale 1e+30; step skipped, loss scale now 5e+29" \
    "an overflow is logged with the old and the new scale"
check "skipped steps halve the scale, then the loss falls" python3 - "$T/ov.jsonl" <<'PY'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "loss" in r]
skips = [r for r in rows if r["grad_norm"] is None]
assert len(skips) >= 70 and skips[0]["loss_scale"] == 1e30, skips[:2]
first = [r["loss_scale"] for r in skips[:70]]
assert all(abs(b / a - 0.5) < 1e-6 for a, b in zip(first, first[1:])), first
good = [r for r in rows if r["grad_norm"] is not None]
assert good and good[-1]["loss_scale"] < 65504 * 64 and good[-1]["loss"] < good[0]["loss"] - 0.5, good
PY
expect_exit 64 "--dtype fp8 is a usage error" dsk-train "${common[@]}" --dtype fp8 --steps 1 --out "$T/fp8"
expect_err_contains "--dtype 'fp8': expected fp32, bf16 or fp16" "the message names the choices"
check "a refused dtype leaves no checkpoint" test ! -e "$T/fp8"
# --recompute: the same run as a, bit for bit.
expect_exit 0 "--recompute is accepted" dsk-train "${common[@]}" --recompute --steps 40 --save-every 20 --keep 0 \
    --log "$T/rc.jsonl" --out "$T/rc" -q
check "--recompute prints the same losses as without" python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
def losses(name):
    return [(r["step"], r.get("loss"), r.get("val_loss")) for r in map(json.loads, open(f"{t}/{name}.jsonl"))
            if "loss" in r or "val_loss" in r]
assert losses("rc") == losses("a"), (losses("rc"), losses("a"))
PY
check "--recompute gives bit-identical weights" cmp "$T/a/latest/model.safetensors" "$T/rc/latest/model.safetensors"
check "--recompute is saved in the options" grep -q '"recompute":1' "$T/rc/latest/state.json"

# ---- post-training: SFT and DPO ------------------------------------------------------------------
python3 - "$T" <<'PY'
import json, random, sys
t = sys.argv[1]
random.seed(9)
words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly dwarfs".split()
with open(f"{t}/chat.jsonl", "w") as f:
    for i in range(120):
        q = " ".join(random.choice(words) for _ in range(random.randint(2, 8)))
        f.write(json.dumps({"messages": [{"role": "user", "content": f"repeat {q}"},
                                         {"role": "assistant", "content": q}],
                            "split": "val" if i % 6 == 0 else "train"}) + "\n")
with open(f"{t}/pref.jsonl", "w") as f:
    for i in range(120):
        q = " ".join(random.choice(words) for _ in range(random.randint(2, 6)))
        f.write(json.dumps({"prompt": f"repeat {q}", "chosen": q, "rejected": " ".join(reversed(q.split())) + " no",
                            "split": "val" if i % 6 == 0 else "train"}) + "\n")
PY
dsk-bpe encode -t "$T/tok.json" -o "$T/chat.dskt" "$T/chat.jsonl"
dsk-bpe encode -t "$T/tok.json" -o "$T/pref.dskt" "$T/pref.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/sft" --seq-len 64 "$T/chat.dskt"
dsk-pack -q -t "$T/tok.json" -o "$T/dpo" --seq-len 64 "$T/pref.dskt"
post=(--config nano -b 4 --eval-batches 2 -j 2 -q)
expect_exit 65 "--stage sft on pretraining data" dsk-train "${post[@]}" --stage sft --init "$T/a" --data "$T/ds" \
    --steps 2 --out "$T/x"
expect_err_contains "needs conversation (SFT) rows" "the message names the dataset kind the stage needs"
expect_exit 0 "--stage sft from the pretrained checkpoint (one epoch by default)" dsk-train "${post[@]}" --stage sft \
    --init "$T/a" --data "$T/sft" --eval-every 10 --lr 1e-3 --log "$T/sft.jsonl" --out "$T/s"
check "sft: loss only on assistant tokens (the evaluated targets are the masked ones)" python3 - "$T" <<'PY'
import json, subprocess, sys
t = sys.argv[1]
rows = [json.loads(l) for l in subprocess.run(["dsk-pack", "cat", f"{t}/sft", "--split", "val", "--count", "8",
                                               "--json"], capture_output=True, text=True, check=True).stdout.splitlines()]
want = sum(sum(r["mask"][1:]) for r in rows)
prompt = sum(len(r["mask"]) - 1 - sum(r["mask"][1:]) for r in rows)
got = [json.loads(l)["val_tokens"] for l in open(f"{t}/sft.jsonl") if "val_tokens" in l]
assert got and all(g == want for g in got), (got, want)
assert prompt > want, (prompt, want)   # most positions are prompt or padding, and carry no loss
PY
check "sft: an epoch of 100 conversations in batches of 4 is 25 steps, and stage sft is recorded" bash -c \
    "grep -q '\"step\":25,' '$T/s/latest/state.json' && grep -q '\"stage\":\"sft\"' '$T/s/latest/state.json'"
expect_exit 0 "sft with a --seq-len that cuts off every answer" dsk-train "${post[@]}" --stage sft --init "$T/a" \
    --data "$T/sft" --seq-len 4 --steps 3 --log-every 1 --log "$T/empty.jsonl" --out "$T/empty"
expect_err_contains "no target tokens" "a warning says the batches have no target tokens"
check "steps without targets log loss null (not 0) and change no weight, not even by decay" python3 - "$T" <<'PY'
import json, struct, sys
t = sys.argv[1]
steps = [json.loads(l) for l in open(f"{t}/empty.jsonl") if '"loss"' in l]
assert len(steps) == 3 and all(s["loss"] is None for s in steps), steps
def data(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; return b[8 + n:]
assert data(f"{t}/a/latest/model.safetensors") == data(f"{t}/empty/latest/model.safetensors")
PY
md5_before=$(cat "$T/s/latest/"* | md5sum)
expect_exit 0 "--stage dpo from the SFT checkpoint" dsk-train "${post[@]}" --stage dpo --init "$T/s" \
    --data "$T/dpo" --steps 10 --lr 1e-3 --eval-every 5 --save-every 5 --keep 0 --log "$T/dpo.jsonl" --out "$T/p"
check "dpo: the reference checkpoint is untouched" test "$(cat "$T/s/latest/"* | md5sum)" = "$md5_before"
check "dpo: rewards, margins and preference accuracy are logged, train and val" python3 - "$T/dpo.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in rows if "margin" in r]
val = [r for r in rows if "val_margin" in r]
assert train and all(k in train[-1] for k in ("chosen_reward", "rejected_reward", "accuracy")), rows
assert len(val) == 2 and all(0 <= v["val_accuracy"] <= 1 and v["val_pairs"] == 8 for v in val), val
assert val[-1]["val_margin"] > val[0]["val_margin"], val    # preferences move the right way
PY
expect_exit 64 "--rpo-alpha without --stage dpo" dsk-train "${post[@]}" --stage sft --init "$T/a" --data "$T/sft" \
    --rpo-alpha 1 --steps 1 --out "$T/x"
expect_exit 0 "dpo with --rpo-alpha (the chosen answers' NLL added)" dsk-train "${post[@]}" --stage dpo --init "$T/s" \
    --data "$T/dpo" --steps 3 --lr 1e-3 --rpo-alpha 1 --log-every 1 --eval-batches 0 --log "$T/rpo.jsonl" --out "$T/rpo"
check "... its loss is DPO's and the NLL's (ln 2 and an answer's NLL per token at the start), saved for --resume" \
    python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
rpo = [json.loads(l) for l in open(f"{t}/rpo.jsonl") if '"loss"' in l]
assert rpo and rpo[0]["loss"] > 0.6931 + 0.5, rpo[0]   # the NLL of an answer of a tiny model is well above 0.5
assert json.load(open(f"{t}/rpo/latest/state.json"))["options"]["rpo_alpha"] == 1, "saved for --resume"
PY
expect_exit 0 "dpo with a --seq-len that cuts off every answer" dsk-train "${post[@]}" --stage dpo --init "$T/s" \
    --data "$T/dpo" --seq-len 4 --steps 2 --log-every 1 --eval-batches 0 --log "$T/pempty.jsonl" --out "$T/pempty"
expect_err_contains "no target tokens" "a warning says the batches have no target tokens"
check "dpo steps without targets log loss null and change no weight, not even by decay" python3 - "$T" <<'PY'
import json, struct, sys
t = sys.argv[1]
steps = [json.loads(l) for l in open(f"{t}/pempty.jsonl") if '"loss"' in l]
assert len(steps) == 2 and all(s["loss"] is None and "margin" not in s for s in steps), steps
def data(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; return b[8 + n:]
assert data(f"{t}/s/latest/model.safetensors") == data(f"{t}/pempty/latest/model.safetensors")
PY
# Pairs whose answers --seq-len 12 cuts off (long prompts) beside pairs it does not: a window's rewards
# cover the steps its loss averages, and an empty step's line has none (they carried the steps before it).
python3 - "$T" <<'PY'
import json, sys
with open(f"{sys.argv[1]}/mixed.jsonl", "w") as f:
    for i in range(8):
        p = "repeat fox" if i % 2 else "repeat " + " ".join(["the quick brown fox jumps"] * 4)
        f.write(json.dumps({"prompt": p, "chosen": "fox", "rejected": "dog no"}) + "\n")
PY
dsk-bpe encode -t "$T/tok.json" -o "$T/mixed.dskt" "$T/mixed.jsonl"
dsk-pack -q -t "$T/tok.json" -o "$T/mixed" --seq-len 64 "$T/mixed.dskt"
expect_exit 0 "dpo over pairs some of whose answers --seq-len cuts off" dsk-train --config nano -j 2 -q --stage dpo \
    --init "$T/s" --data "$T/mixed" -b 1 --seq-len 12 --steps 16 --log-every 3 --eval-every 0 --lr 0 \
    --log "$T/mixed-log.jsonl" --out "$T/mixed-run"
check "... a line's rewards go with its loss: none beside a null loss, some beside a number" python3 - "$T" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/mixed-log.jsonl") if '"loss"' in l]
assert any(r["loss"] is None for r in rows) and any(r["loss"] is not None for r in rows), rows
for r in rows:
    assert ("margin" in r) == (r["loss"] is not None), r
PY
check "dpo: the lineage traces pretrain -> sft -> dpo" python3 - "$T/p/latest/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
stages = [e["stage"] for e in s["lineage"]]
assert stages == ["pretrain", "sft", "dpo"], stages
assert s["lineage"][2]["ref"].endswith("step-00000025") and s["lineage"][1]["init"].endswith("step-00000040"), s
PY
mkdir "$T/p2" && cp -r "$T/p/step-00000005" "$T/p2/" && ln -s step-00000005 "$T/p2/latest"
expect_exit 0 "resume DPO mid-stage" dsk-train --resume --out "$T/p2" -q
check "resumed DPO weights are bit-identical" cmp "$T/p/latest/model.safetensors" "$T/p2/latest/model.safetensors"
check "dpo: the saved init and ref are step directories (a run directory's latest moves on)" python3 - \
    "$T/p/latest/state.json" <<'PY'
import json, re, sys
o = json.load(open(sys.argv[1]))["options"]
assert re.search(r"/step-\d{8}$", o["init"]), o
PY
# the reference gone (moved, or rotated away): the message says so, and --ref names a copy, checked by its weights
mkdir "$T/p3" && cp -r "$T/p/step-00000005" "$T/p3/" && ln -s step-00000005 "$T/p3/latest"
cp -rL "$T/s/latest" "$T/s-copy"
mv "$T/s" "$T/s-away"
expect_exit 66 "resume DPO with its reference gone" dsk-train --resume --out "$T/p3" -q
expect_err_contains "the run's reference model: $T/s/step-00000025: no such checkpoint" "... the message names the reference and why"
expect_exit 65 "resume DPO with another model as --ref" dsk-train --resume --out "$T/p3" --ref "$T/a" -q
expect_err_contains "is not the reference model this dpo run started with" "... refused by its weights"
expect_exit 64 "--resume with --init" dsk-train --resume --out "$T/p3" --init "$T/s-copy" -q
expect_exit 0 "resume DPO with a copy of its reference as --ref" dsk-train --resume --out "$T/p3" --ref "$T/s-copy" -q
check "... bit-identical to the run that had it" cmp "$T/p/latest/model.safetensors" "$T/p3/latest/model.safetensors"
check "... and the copy is the reference a later --resume loads" grep -q "s-copy" "$T/p3/latest/state.json"
mv "$T/s-away" "$T/s"
expect_exit 65 "--stage dpo on conversation data" dsk-train "${post[@]}" --stage dpo --init "$T/s" --data "$T/sft" \
    --steps 2 --out "$T/x"

# ---- mixture of experts ----------------------------------------------------------------------
moe=(--data "$T/ds" --config nano-moe --set experts=8 -b 8 --lr 1e-2 --warmup 10 --eval-every 0 -j 2 -q)
expect_exit 0 "train nano-moe with noise, dropping and bias balancing" dsk-train "${moe[@]}" --set balance=bias \
    --set router_noise=gaussian --set capacity_factor=1.0 --steps 20 --save-every 10 --keep 0 --log "$T/m.jsonl" \
    --out "$T/m"
expect_exit 65 "--ref of another architecture (a MoE reference for a dense model)" dsk-train "${post[@]}" --stage dpo \
    --init "$T/s" --ref "$T/m" --data "$T/dpo" --steps 1 --out "$T/x"
expect_err_contains "is not the trained model's (\"architectures\": [\"DskMoeForCausalLM\"], where the trained model has" \
    "... said as such, with the first line that differs"
check "MoE tensors carry DeepSeek-V3 names" python3 - "$T/m/latest/model.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb")
n = struct.unpack("<Q", f.read(8))[0]
names = json.loads(f.read(n))
for t in ("model.layers.1.mlp.gate.weight", "model.layers.1.mlp.gate.e_score_correction_bias",
          "model.layers.1.mlp.experts.7.down_proj.weight", "model.layers.1.mlp.shared_experts.up_proj.weight",
          "model.layers.0.mlp.gate_proj.weight"):
    assert t in names, t
assert "model.layers.1.mlp.gate_proj.weight" not in names
PY
check "the log has per-layer expert load, cv, dropped fraction, losses and entropy" python3 - "$T/m.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"moe"' in l]
m = rows[-1]["moe"][0]
assert m["layer"] == 1 and len(m["load"]) == 8 and abs(sum(m["load"]) - 1) < 1e-3, m
assert m["dropped"] > 0 and m["entropy"] > 0 and "cv" in m and "aux_loss" in m and "z_loss" in m, m
PY
mkdir "$T/m2" && cp -r "$T/m/step-00000010" "$T/m2/" && ln -s step-00000010 "$T/m2/latest"
expect_exit 0 "resume a MoE run (noise, bias) from step 10" dsk-train --resume --out "$T/m2" -q
check "resumed MoE weights (and router biases) are bit-identical" cmp "$T/m/latest/model.safetensors" \
    "$T/m2/latest/model.safetensors"

# Balancing works: without it the load collapses onto few experts; the
# auxiliary loss and the bias rule each keep the coefficient of variation of
# the load lower.  (Measured on this corpus at 60 steps: none ~0.8-1.3,
# aux ~0.1-0.4, bias ~0.1-0.5; the check asks for a clear margin only.)
if [ -z "${DSK_SAN:-}" ]; then
    for b in none aux bias; do
        dsk-train "${moe[@]}" --set balance=$b --set aux_coef=0.05 --set bias_rate=0.01 --steps 60 --log-every 20 \
            --save-every 0 --log "$T/bal-$b.jsonl" --out "$T/bal-$b" 2>/dev/null
    done
    check "balance none collapses; aux and bias keep the load more even" python3 - "$T" <<'PY'
import json, sys
def cv(b):
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/bal-{b}.jsonl") if '"moe"' in l]
    return sum(r["moe"][0]["cv"] for r in rows[-2:]) / 2   # the last 40 steps
none, aux, bias = cv("none"), cv("aux"), cv("bias")
print(f"# load cv over the last 40 steps: none {none:.3f}, aux {aux:.3f}, bias {bias:.3f}")
assert none > 0.5 and aux < 0.7 * none and bias < 0.7 * none, (none, aux, bias)
PY
fi

# Backends: an unknown name is a usage error; cuda on a machine without a
# device (or in a build without CUDA) is "unavailable" (69), said plainly.
expect_exit 64 "an unknown backend" dsk-train "${common[@]}" --out "$T/ck-be" --steps 1 --backend tpu
expect_err_contains "unknown backend 'tpu'" "the unknown backend is named"
expect_exit 64 "--device is --backend's other name" dsk-train "${common[@]}" --out "$T/ck-be" --steps 1 --device tpu
if ! nvidia-smi -L >/dev/null 2>&1; then
    expect_exit 69 "--device cuda without a GPU" dsk-train "${common[@]}" --out "$T/ck-be" --steps 1 --device cuda
    check "no checkpoint is left behind" test ! -e "$T/ck-be/latest"
    # With no GPU the default device is the cpu.
    expect_exit 0 "no --device: the cpu" dsk-train "${common[@]}" --out "$T/ck-be" --steps 1
    expect_err_contains "cpu backend" "the run says it is on the cpu"
else
    echo "ok $((tap_n += 1)) # SKIP a GPU is present (tests/gpu/run.sh covers the cuda backend)"
    echo "ok $((tap_n += 1)) # SKIP a GPU is present"
    echo "ok $((tap_n += 1)) # SKIP a GPU is present"
    echo "ok $((tap_n += 1)) # SKIP a GPU is present"
fi

echo "1..$tap_n"
