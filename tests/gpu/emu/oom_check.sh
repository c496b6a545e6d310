#!/bin/sh
# The cuda backend on a device too small for its 16-bit copies (on the
# CPU emulation, whose device memory DSK_EMU_MEMORY_KB sets): when an
# allocation fails, the copies (gemm_operands.cu's slots, weights_copy.cu's
# copy of the weights) give their memory back and the run goes on, to the
# same weights bit for bit.  The device is sized halfway between the most
# a run allocates at once with the copies and without them
# (DSK_CUDA_HALF_CACHE=0), both measured first (DSK_EMU_PEAK_FILE).
#
#   tests/gpu/emu/oom_check.sh     (tests/gpu/emu/run.sh runs it)
set -eu
cd "$(dirname "$0")/../../.."
B=${DSK_BIN:-${BUILD:-build}/emu/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PATH="$B:${BUILD:-build}/bin:$PATH" sh tests/cli/nano_dataset.sh "$tmp" >/dev/null
fail=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fail=1; }
train() {  # name VAR=VALUE...
    name=$1
    shift
    env "$@" "$B/dsk-train" --data "$tmp/ds" --config nano -b 2 --steps 3 --eval-every 0 --sample-every 0 -q \
        --backend cuda --dtype bf16 --out "$tmp/$name" 2>"$tmp/$name.err" || { tail -n 3 "$tmp/$name.err"; return 1; }
}

train full DSK_EMU_PEAK_FILE="$tmp/peak-full" && train plain DSK_EMU_PEAK_FILE="$tmp/peak-plain" \
    DSK_CUDA_HALF_CACHE=0 || { bad "nano bf16 on the emulated device"; exit 1; }
full=$(cat "$tmp/peak-full") plain=$(cat "$tmp/peak-plain")
kib=$(((full + plain) / 2 / 1024))
echo "# the most allocated at once: $plain bytes without the copies, $full with; the small device: $kib KiB"
if [ "$full" -le "$plain" ]; then
    bad "the copies take no device memory ($full <= $plain bytes)"
    exit 1
fi
if train small DSK_EMU_MEMORY_KB="$kib" DSK_CUDA_VERBOSE=1; then
    if grep -q 'did not fit: the .*16-bit copies gave their memory back (then they did)' "$tmp/small.err"; then
        ok "a $kib KiB device: allocations that did not fit took the copies' memory ($(grep -c 'did not fit' \
            "$tmp/small.err") times)"
    else
        bad "a $kib KiB device: no allocation needed the copies' memory (the test no longer tests)"
    fi
    if cmp -s "$tmp/full/latest/model.safetensors" "$tmp/small/latest/model.safetensors"; then
        ok "a $kib KiB device: the same weights bit for bit"
    else
        bad "a $kib KiB device: the weights changed"
    fi
else
    bad "nano bf16 on a $kib KiB device, which holds it without the copies"
fi
exit $fail
