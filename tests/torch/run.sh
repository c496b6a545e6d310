#!/usr/bin/env bash
# The C model against a float64 PyTorch re-implementation of it
# (tests/torch/ref_model.py): for several configs, tests/tools/ref_dump
# writes the C model's initial weights, a batch, its logits, loss and
# gradients, its weights after AdamW steps and its KV-cache generator's
# logits; ref_model.py recomputes them all.  One TAP line per config and
# check group (forward, gradients, adamw, generator), then a check that
# deliberate bugs in the reference are caught, then (when Hugging Face
# transformers can be had) transformers' LlamaForCausalLM on an all-global
# dump.
#
#   BUILD=build tests/torch/run.sh      (from anywhere; BUILD relative to the repo root)
#
# DSK_TORCH_PY picks the Python (default: the first of python3,
# /usr/bin/python3 that imports torch and numpy).  DSK_OFFLINE=1: no pip,
# so the transformers check runs only if $BUILD/hf-venv already has it.
set -u
BUILD=${BUILD:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
    n=$((n + 1)); echo "not ok $n - $1"; shift
    for line in "$@"; do printf '#   %s\n' "$line"; done
}
finish() { echo "1..$n"; exit 0; }

py=
for cand in ${DSK_TORCH_PY:-} python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import torch, numpy' 2>/dev/null; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    ok "torch reference # SKIP python3-torch not installed"
    finish
fi

ref_dump=$BUILD/tests/tools/ref_dump train=$BUILD/bin/dsk-train
if [ ! -x "$ref_dump" ] || [ ! -x "$train" ]; then
    not_ok "torch reference: $ref_dump and $train are built" "run: make $ref_dump $train"
    finish
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# dump NAME B T SEED STEPS KEY=VALUE...: a nano config with the overrides,
# dumped by ref_dump into $tmp/NAME.
dump() {
    local name=$1 B=$2 T=$3 seed=$4 steps=$5; shift 5
    local d=$tmp/$name sets=()
    for s in "$@"; do sets+=(--set "$s"); done
    mkdir -p "$d"
    if "$train" --show-config nano "${sets[@]}" >"$d/cfg.json" 2>"$d/err" &&
        "$ref_dump" "$d/cfg.json" "$d" "$B" "$T" "$seed" "$steps" >>"$d/err" 2>&1; then
        return 0
    fi
    not_ok "$name: ref_dump ($*, B=$B T=$T seed=$seed steps=$steps)" "$(head -c 400 "$d/err")"
    return 1
}

# reference PYTHON LABEL DIR ARGS...: ref_model.py's unnumbered TAP lines, numbered.
reference() {
    local python=$1 label=$2 dir=$3; shift 3
    local out rc line
    out=$("$python" tests/torch/ref_model.py "$dir" --label "$label" "$@" 2>"$tmp/py.err"); rc=$?
    while IFS= read -r line; do
        case $line in
        "ok - "*) ok "${line#ok - }" ;;
        "not ok - "*) n=$((n + 1)); echo "not ok $n - ${line#not ok - }" ;;
        "") ;;
        *) echo "$line" ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ]; then
        not_ok "$label: ref_model.py $* exited with status $rc" "$(tail -n 15 "$tmp/py.err")"
    fi
}

# name B T seed steps overrides
configs=(
    "a-LHG-tied 2 16 1 3 vocab=50 pattern=LHG n_layers=3 window=5"
    "b-G-untied-gqa 2 16 1 3 vocab=50 pattern=G tie=false n_heads=4 n_kv_heads=2"
    "c-HL-w3 3 20 7 3 vocab=50 pattern=HL window=3"
    # Weights 5x the default init: attention far from uniform, so RoPE,
    # masks and alpha matter more (a bug there moves the logits ~10%, not
    # ~0.1%); MQA (one kv head), untied, every layer kind.
    "d-GLH-mqa-std0.1 2 24 3 3 vocab=64 pattern=GLH n_layers=3 window=4 n_kv_heads=1 tie=false init_std=0.1"
)
for c in "${configs[@]}"; do
    read -r name B T seed steps sets <<<"$c"
    # shellcheck disable=SC2086
    dump "$name" "$B" "$T" "$seed" "$steps" $sets && reference "$py" "$name" "$tmp/$name" --steps "$steps"
done

# The checks bite: each deliberate bug in the reference fails the check it
# should (model bugs the forward check, optimizer bugs the adamw check).
if [ -f "$tmp/d-GLH-mqa-std0.1/after.safetensors" ]; then
    missed=()
    for m in rope-adjacent:forward no-doc-mask:forward window-off-by-one:forward alpha-swapped:forward \
        decay-all:adamw no-bias-correction:adamw; do
        "$py" tests/torch/ref_model.py "$tmp/d-GLH-mqa-std0.1" --label mut --mutate "${m%%:*}" \
            >"$tmp/mut.${m%%:*}" 2>&1 &
    done
    wait
    for m in rope-adjacent:forward no-doc-mask:forward window-off-by-one:forward alpha-swapped:forward \
        decay-all:adamw no-bias-correction:adamw; do
        grep -q "^not ok - mut: ${m#*:}" "$tmp/mut.${m%%:*}" || missed+=("${m%%:*} passed the ${m#*:} check")
    done
    if [ ${#missed[@]} -eq 0 ]; then
        ok "reference bites: 6 deliberate bugs in ref_model.py (--mutate) each fail their check"
    else
        not_ok "reference bites: deliberate bugs in ref_model.py are caught" "${missed[@]}"
    fi
fi

# Hugging Face transformers' LlamaForCausalLM on the all-global dump.
hf_name="transformers LlamaForCausalLM vs C logits (b-G-untied-gqa, row 0)"
venv=$BUILD/hf-venv
have_hf() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import torch, numpy, transformers, safetensors' 2>/dev/null; }
if ! have_hf && [ -z "${DSK_OFFLINE:-}" ]; then
    # The system Python's torch, transformers from PyPI (never pip's torch).
    syspy=$(command -v "$py")
    rm -rf "$venv"
    "$syspy" -m venv --system-site-packages "$venv" >"$tmp/venv.log" 2>&1 &&
        "$venv/bin/pip" install -q --disable-pip-version-check --timeout 30 --retries 1 \
            'transformers<4.40' safetensors >>"$tmp/venv.log" 2>&1
fi
if [ ! -f "$tmp/b-G-untied-gqa/out.safetensors" ]; then
    :   # its dump already failed above
elif have_hf; then
    reference "$venv/bin/python" "b-G-untied-gqa" "$tmp/b-G-untied-gqa" --hf
elif [ -n "${DSK_OFFLINE:-}" ]; then
    ok "$hf_name # SKIP DSK_OFFLINE set and no transformers in $venv"
else
    ok "$hf_name # SKIP could not install transformers into $venv: $(tail -n 1 "$tmp/venv.log" 2>/dev/null)"
fi
finish
