#!/usr/bin/env bash
# The C model against a float64 PyTorch re-implementation of it
# (tests/torch/ref_model.py): for several configs, tests/tools/ref_dump
# writes the C model's initial weights, a batch, its logits, loss and
# gradients, its weights after AdamW steps and its KV-cache generator's
# logits; ref_model.py recomputes them all.  Mixture-of-experts configs run
# in inference mode (no capacity, no balancing losses) or, with
# DSK_REF_TRAIN=1, in training mode (capacity dropping, the balancing
# losses in aux_loss and in the gradients), both without router noise.  One TAP line per config and
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

# dump NAME PRESET B T SEED STEPS KEY=VALUE...: the preset with the
# overrides, dumped by ref_dump into $tmp/NAME.  Environment assignments
# for ref_dump (DSK_REF_TRAIN=1 ...) come in the array dump_env.
dump_env=()
dump() {
    local name=$1 preset=$2 B=$3 T=$4 seed=$5 steps=$6; shift 6
    local d=$tmp/$name sets=()
    for s in "$@"; do sets+=(--set "$s"); done
    mkdir -p "$d"
    if "$train" --show-config "$preset" "${sets[@]}" >"$d/cfg.json" 2>"$d/err" &&
        env "${dump_env[@]}" "$ref_dump" "$d/cfg.json" "$d" "$B" "$T" "$seed" "$steps" >>"$d/err" 2>&1; then
        return 0
    fi
    not_ok "$name: ref_dump ($preset $* ${dump_env[*]}, B=$B T=$T seed=$seed steps=$steps)" "$(head -c 400 "$d/err")"
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

# name preset B T seed steps mode overrides.  mode: infer (ref_dump's
# default) or train (DSK_REF_TRAIN=1).  Besides the --set overrides:
# ref_bias_std=S starts e_score_correction_bias at S * N(0, 1)
# (DSK_REF_BIAS_STD), expect_drops makes ref_model.py require capacity to
# drop some (token, expert) pair.
configs=(
    "a-LHG-tied nano 2 16 1 3 infer vocab=50 pattern=LHG n_layers=3 window=5"
    "b-G-untied-gqa nano 2 16 1 3 infer vocab=50 pattern=G tie=false n_heads=4 n_kv_heads=2"
    "c-HL-w3 nano 3 20 7 3 infer vocab=50 pattern=HL window=3"
    # Weights 5x the default init: attention far from uniform, so RoPE,
    # masks and alpha matter more (a bug there moves the logits ~10%, not
    # ~0.1%); MQA (one kv head), untied, every layer kind.
    "d-GLH-mqa-std0.1 nano 2 24 3 3 infer vocab=64 pattern=GLH n_layers=3 window=4 n_kv_heads=1 tie=false init_std=0.1"
    # MoE, training mode: softmax router (4 experts, top 2, 1 shared, a
    # dense first layer), all three balancing losses, no capacity limit.
    "e-moe-softmax-train nano-moe 2 16 1 3 train vocab=50 n_layers=3 aux_coef=0.01 seq_aux_coef=0.01 z_loss=0.001
        capacity_factor=0"
    # MoE, training mode: sigmoid router with a random selection bias
    # (balance bias), 8 experts, top 3, 2 shared, every layer MoE;
    # capacity 1.0 drops pairs; the sequence-wise loss on the normalised
    # sigmoid scores and the z-loss.
    "f-moe-sigmoid-bias-drop nano-moe 3 16 5 3 train vocab=50 n_layers=3 first_dense_layers=0 experts=8 top_k=3
        shared_experts=2 router=sigmoid balance=bias capacity_factor=1.0 seq_aux_coef=0.01 z_loss=0.001
        init_std=0.05 ref_bias_std=0.05 expect_drops"
    # MoE, inference mode (capacity and losses configured, neither applies):
    # 6 experts, top 2, no shared expert; and the generator.
    "g-moe-infer nano-moe 2 16 2 3 infer vocab=50 n_layers=3 experts=6 top_k=2 shared_experts=0 capacity_factor=1.0
        aux_coef=0.01 seq_aux_coef=0.01 init_std=0.05"
    # The same with a router z-loss: inference mode has no balancing
    # losses, so the gradients must not have the z-loss's either.
    "h-moe-infer-zloss nano-moe 2 16 2 3 infer vocab=50 n_layers=3 experts=6 top_k=2 shared_experts=0
        capacity_factor=1.0 aux_coef=0.01 seq_aux_coef=0.01 z_loss=0.001 init_std=0.05"
)
for c in "${configs[@]}"; do
    # shellcheck disable=SC2086
    set -- $c
    name=$1 preset=$2 B=$3 T=$4 seed=$5 steps=$6 mode=$7; shift 7
    sets=() dump_env=() ref_args=(--steps "$steps")
    [ "$mode" = train ] && dump_env+=(DSK_REF_TRAIN=1)
    for s in "$@"; do
        case $s in
        ref_bias_std=*) dump_env+=("DSK_REF_BIAS_STD=${s#*=}") ;;
        expect_drops) ref_args+=(--expect-drops) ;;
        *) sets+=("$s") ;;
        esac
    done
    dump "$name" "$preset" "$B" "$T" "$seed" "$steps" "${sets[@]}" &&
        reference "$py" "$name" "$tmp/$name" "${ref_args[@]}"
done

# The checks bite: each deliberate bug in the reference fails the check it
# should on its dump (model bugs the forward check, optimizer bugs the adamw
# check).  MUTATION:CHECK:DUMP
mutations=(
    rope-adjacent:forward:d-GLH-mqa-std0.1 no-doc-mask:forward:d-GLH-mqa-std0.1
    window-off-by-one:forward:d-GLH-mqa-std0.1 alpha-swapped:forward:d-GLH-mqa-std0.1
    decay-all:adamw:d-GLH-mqa-std0.1 no-bias-correction:adamw:d-GLH-mqa-std0.1
    softmax-renorm:forward:e-moe-softmax-train no-capacity:forward:f-moe-sigmoid-bias-drop
    bias-in-gate:forward:f-moe-sigmoid-bias-drop
)
missed=() tried=0
for m in "${mutations[@]}"; do
    IFS=: read -r mut check dir <<<"$m"
    [ -f "$tmp/$dir/after.safetensors" ] || continue   # its dump failed above
    tried=$((tried + 1))
    "$py" tests/torch/ref_model.py "$tmp/$dir" --label mut --mutate "$mut" >"$tmp/mut.$mut" 2>&1 &
done
wait
for m in "${mutations[@]}"; do
    IFS=: read -r mut check dir <<<"$m"
    [ -f "$tmp/$dir/after.safetensors" ] || continue
    grep -q "^not ok - mut: $check" "$tmp/mut.$mut" || missed+=("$mut passed the $check check on $dir")
done
if [ "$tried" -eq 0 ]; then
    :   # every dump failed above
elif [ ${#missed[@]} -eq 0 ]; then
    ok "reference bites: $tried deliberate bugs in ref_model.py (--mutate) each fail their check"
else
    not_ok "reference bites: deliberate bugs in ref_model.py are caught" "${missed[@]}"
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
