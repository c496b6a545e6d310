#!/usr/bin/env bash
# dsk-pack bench, called by tests/bench/run (or alone):
#   pack_bench.sh [BIN [OUTDIR [PYTHON [SHARED_TOKENIZERS_DIR]]]]
# 1. Packing: dsk-pack -j1 and -j$(nproc), end to end, on >= PACK_TOKENS
#    tokens (one .dskt passed as often as needed), against what a user would
#    otherwise write: nanoGPT prepare.py style numpy, reading the same .dskt
#    files and writing a flat .bin of EOT-separated tokens.
# 2. Reading random rows (tests/bench/pack_read.c): the dataset against the
#    same rows in a flat memory-mapped token file, plus nanoGPT's get_batch
#    (np.memmap, data[i:i+row].astype(np.int64)) as a Python peer.
# Text: dict-gcide (the file bpe_bench.py makes), GPT-2 tokenizer from the
# shared tokenizers.  Prints table rows and writes OUTDIR/pack-results.json.
set -euo pipefail
shopt -s inherit_errexit  # a failing command inside $(...) fails the script too
root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-${BIN:-$root/build/bin}}
out=${2:-$root/build/bench}
py=${3:-$out/venv/bin/python}
shared=${4:-${DSK_SHARED_TOKENIZERS:-$root/../shared/data/tokenizers}}
RUNS=${RUNS:-3}
PACK_TOKENS=${PACK_TOKENS:-50000000}  # pack at least this many document tokens
READ_ROWS=${READ_ROWS:-50000}         # random rows per timed read pass (>= 20000)
lib=${LIBDSK:-$(dirname "$BIN")/libdsk.a}
mkdir -p "$out"
results=$out/pack-results.json
cores=$(nproc)

if [ ! -f "$shared/gpt2-encoder.json" ] || [ ! -f "$shared/gpt2-vocab.bpe" ]; then
    echo "dsk-pack: skipped, no GPT-2 tokenizer files in $shared"
    echo "{\"skipped\":\"no GPT-2 tokenizer files in $shared\"}" > "$results"
    exit 0
fi
if [ ! -f "$lib" ]; then
    echo "pack_bench: $lib is missing: run 'make all' first" >&2
    exit 1
fi
if [ ! -x "$py" ] || ! "$py" -c 'import numpy' 2>/dev/null; then
    if [ ! -x "$py" ]; then
        echo "pack_bench: creating a virtual environment in $out/venv for numpy" >&2
        python3 -m venv "$out/venv"
        py=$out/venv/bin/python
    fi
    echo "pack_bench: installing numpy into $(dirname "$py")" >&2
    "$(dirname "$py")/pip" install -q numpy >&2
fi

# ---- inputs: GPT-2 tokenizer, dict-gcide paragraphs, one .dskt --------------------------
tok=$out/gpt2.json
[ -s "$tok" ] || "$BIN/dsk-bpe" import --gpt2 "$shared/gpt2-encoder.json" "$shared/gpt2-vocab.bpe" -o "$tok"
text=$out/gcide.txt
[ -s "$text" ] || zcat /usr/share/dictd/gcide.dict.dz > "$text"
dskt=$out/pack-gcide.dskt
if [ ! -s "$dskt" ] || [ "$text" -nt "$dskt" ] || [ "$tok" -nt "$dskt" ]; then
    "$BIN/dsk-bpe" encode -t "$tok" --records paragraphs -o "$dskt" "$text"
fi
# The trailer (dsk-tokens(5)): records at 40 bytes from the end, tokens at 24.
dskt_bytes=$(stat -c %s "$dskt")
docs1=$(od -An -t u8 -j $((dskt_bytes - 32)) -N 8 "$dskt" | tr -d ' ')
tokens1=$(od -An -t u8 -j $((dskt_bytes - 24)) -N 8 "$dskt" | tr -d ' ')
copies=$(( (PACK_TOKENS + tokens1 - 1) / tokens1 ))
inputs=()
for _ in $(seq "$copies"); do inputs+=("$dskt"); done
tokens=$((tokens1 * copies))
docs=$((docs1 * copies))

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# timed OUT_NAME CMD...: median seconds and peak RSS (KB) of RUNS runs
timed() {
    local name=$1; shift
    local secs=() rss=0
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f '%e %M' -o "$out/time.txt" "$@" > "$out/$name.out"
        read -r s m < "$out/time.txt"; secs+=("$s"); [ "$m" -gt "$rss" ] && rss=$m
    done
    echo "$(printf '%s\n' "${secs[@]}" | median) $rss"
}

# ---- 1. packing ----------------------------------------------------------------------------
ds=$out/pack-ds
t=$(timed pack-j1 "$BIN/dsk-pack" -q --force -o "$ds" -t "$tok" --seq-len 1024 -j1 "${inputs[@]}")
read -r j1_secs j1_rss <<< "$t"
t=$(timed pack-jn "$BIN/dsk-pack" -q --force -o "$ds" -t "$tok" --seq-len 1024 -j"$cores" "${inputs[@]}")
read -r jn_secs jn_rss <<< "$t"
# --zstd-level 0 stores rows uncompressed: bigger on disk, faster both ways.
ds0=$out/pack-ds0
t=$(timed pack-j1-stored "$BIN/dsk-pack" -q --force -o "$ds0" -t "$tok" --seq-len 1024 -j1 --zstd-level 0 "${inputs[@]}")
read -r j1s_secs j1s_rss <<< "$t"
eot=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["eot_id"])' "$ds/MANIFEST")

cat > "$out/pack_peer.py" <<'EOF'
# nanoGPT prepare.py style: every document's tokens with an EOT, one flat
# .bin (uint16, or uint32 past 65536 tokens), from the same .dskt files.
# The EOT goes before each document, as dsk-pack puts it, so the two
# outputs can be compared token for token.
import struct, sys
import numpy as np
out, eot, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
with open(out, "wb") as f:
    for path in files:
        data = open(path, "rb").read()
        if data[:4] != b"DSKT":
            sys.exit(f"{path}: not a .dskt stream")
        width = data[6]
        dt = np.dtype("<u2" if width == 2 else "<u4")
        starts, lens, off = [], [], 32
        while data[off] != 255:  # the trailer's end marker
            kind, _, _, n = struct.unpack_from("<BBHI", data, off)
            if kind != 1:
                sys.exit(f"{path}: only plain records are handled here")
            starts.append((off + 8) // width)
            lens.append(n)
            off += 8 + n * width
        starts, lens = np.array(starts, np.int64), np.array(lens, np.int64)
        tok = np.frombuffer(data, dtype=dt)
        keep = np.zeros(len(tok) + 1, np.int32)  # +1 at each run's start, -1 after its end
        keep[starts] += 1
        keep[starts + lens] -= 1
        docs = tok[np.cumsum(keep[:-1]) > 0]
        at = np.cumsum(lens) - lens  # each document's first token in docs
        np.insert(docs, at, eot).astype(np.uint16 if width == 2 else np.uint32, copy=False).tofile(f)
EOF
t=$(timed pack-np "$py" "$out/pack_peer.py" "$out/pack-np.bin" "$eot" "${inputs[@]}")
read -r np_secs np_rss <<< "$t"
np_ver=$("$py" -c 'import numpy; print(numpy.__version__)')

# ---- 2. reading random rows ----------------------------------------------------------------
mkdir -p "$root/build/bench"
(cd "$root" && cc -O2 -std=c11 -D_GNU_SOURCE -Ilib tests/bench/pack_read.c "$lib" -ljson-c -lpcre2-8 -lutf8proc \
    -llmdb -lzstd -lxxhash -lcrypto -lm -pthread -o build/bench/pack_read)
"$root/build/bench/pack_read" "$ds" "$out/pack-ds.flat" --rows "$READ_ROWS" --runs "$RUNS" > "$out/pack-read.txt"
"$root/build/bench/pack_read" "$ds0" "$out/pack-ds0.flat" --rows "$READ_ROWS" --runs "$RUNS" > "$out/pack-read0.txt"
rm -f "$out/pack-ds0.flat"
val() { awk -v k="$1" '$1 == k {print $2; f = 1} END {if (!f) exit 1}' "${2:-$out/pack-read.txt}"; }
flat0_ns=$(val flat_ns_per_row "$out/pack-read0.txt"); read0_ns=$(val read_ns_per_row "$out/pack-read0.txt")
l10_ns=$(val loader1_ns_per_row "$out/pack-read0.txt"); ds0_bytes=$(val dataset_bytes "$out/pack-read0.txt")
ds0_bpt=$(val dataset_bytes_per_token "$out/pack-read0.txt")
L=$(val row_tokens); width=$(val token_bytes_flat); rows=$(val train_rows)
flat_ns=$(val flat_ns_per_row); raw_ns=$(val raw_ns_per_row); read_ns=$(val read_ns_per_row)
l1_ns=$(val loader1_ns_per_row); seq_ns=$(val sequential_read_ns_per_row)
ln_threads=$(val loaderN_threads || echo 0); ln_ns=$(val loaderN_ns_per_row || echo 0)
flat_bpt=$(val flat_bytes_per_token); ds_bpt=$(val dataset_bytes_per_token); smaller=$(val dataset_smaller_pct)
ds_bytes=$(val dataset_bytes); flat_bytes=$(val flat_bytes); level=$(val zstd_level); dict=$(val dict_bytes)
value_bpt=$(val train_value_bytes_per_token)

# The same tokens: the numpy .bin and the dataset's rows back to back agree
# on every token before the last, padded row.
same_bytes=$(( (rows - 1) * L * width ))
if cmp -s -n "$same_bytes" "$out/pack-np.bin" "$out/pack-ds.flat"; then same=true; else same=false; fi

cat > "$out/pack_read_peer.py" <<'EOF'
# nanoGPT train.py get_batch: a fresh np.memmap each batch (as nanoGPT does,
# to avoid a memory leak), random offsets, data[i:i+L].astype(np.int64),
# stacked into a batch of 12.  Random whole rows here, like the C side.
import sys, time
import numpy as np
path, width, L, n_rows, rows, runs = sys.argv[1], *map(int, sys.argv[2:])
dt = np.uint16 if width == 2 else np.uint32
rng = np.random.default_rng(1234)
times = []
for _ in range(runs):
    ix = rng.integers(0, n_rows, size=rows) * L
    t = time.perf_counter()
    for b in range(0, rows, 12):
        data = np.memmap(path, dtype=dt, mode="r")
        x = np.stack([data[i:i + L].astype(np.int64) for i in ix[b:b + 12]])
    times.append((time.perf_counter() - t) / rows * 1e9)
print(sorted(times)[len(times) // 2])
EOF
py_ns=$("$py" "$out/pack_read_peer.py" "$out/pack-ds.flat" "$width" "$L" "$rows" "$READ_ROWS" "$RUNS")

# ---- table and JSON ------------------------------------------------------------------------
mtok() { printf '%.3f' "$(echo "$tokens / $1 / 1000000" | bc -l)"; }
np_rate=$(mtok "$np_secs"); j1_rate=$(mtok "$j1_secs"); jn_rate=$(mtok "$jn_secs"); j1s_rate=$(mtok "$j1s_secs")
echo "dsk-pack: dict-gcide paragraphs, GPT-2 tokens: $docs1 documents, $tokens1 tokens in one .dskt, passed" \
    "$copies times ($tokens tokens); --seq-len 1024 (rows of $L), default options: zstd level $level," \
    "dictionary of $dict bytes"
printf '%-52s %9s %8s %9s %10s %s\n' "pack run" "seconds" "Mtok/s" "peak MB" "rows" "speed vs numpy"
printf '%-52s %9.2f %8.2f %9.0f %10s %s\n' "numpy $np_ver flat .bin, nanoGPT prepare style (1 core)" \
    "$np_secs" "$np_rate" "$(echo "$np_rss / 1024" | bc -l)" "-" "1x"
for r in "-j1 $j1_secs $j1_rss $j1_rate" "-j$cores $jn_secs $jn_rss $jn_rate" \
    "-j1_--zstd-level_0 $j1s_secs $j1s_rss $j1s_rate"; do
    set -- $r
    printf '%-52s %9.2f %8.2f %9.0f %10s %.2fx\n' "dsk-pack ${1//_/ } (whole run)" "$2" "$4" \
        "$(echo "$3 / 1024" | bc -l)" "$rows" "$(echo "$np_secs / $2" | bc -l)"
done
echo "(Mtok/s: document tokens of the .dskt inputs a second, end to end; dsk-pack checks each stream's checksum" \
    "and tokens, compresses, fsyncs and writes MD5SUMS; the numpy peer does none of that;" \
    "same tokens as dsk-pack's rows: $same)"
printf '%-52s %9s %8s %9s %10s %s\n' "read random rows of $L tokens" "ns/row" "Mtok/s" "B/token" "on disk MB" \
    "cost vs flat mmap"
readrow() {  # LABEL NS BYTES_PER_TOKEN DISK_BYTES [FLAT_NS: the same pass's flat figure]
    printf '%-52s %9.0f %8.1f %9s %10s %.2fx\n' "$1" "$2" "$(echo "$L * 1000 / $2" | bc -l)" "$3" "$4" \
        "$(echo "$2 / ${5:-$flat_ns}" | bc -l)"
}
readrow "flat uint$((8 * width)) mmap -> uint32 row (C)" "$flat_ns" "$flat_bpt" "$((flat_bytes / 1000000))"
readrow "nanoGPT get_batch: memmap per batch of 12, int64" "$py_ns" "$flat_bpt" "$((flat_bytes / 1000000))"
readrow "dsk_dataset_raw (LMDB lookup only, no decode)" "$raw_ns" "$ds_bpt" "$((ds_bytes / 1000000))"
readrow "dsk_dataset_read (calling thread)" "$read_ns" "$ds_bpt" "$((ds_bytes / 1000000))"
readrow "dsk_loader_next (shuffle, prefetch 64, 1 thread)" "$l1_ns" "$ds_bpt" "$((ds_bytes / 1000000))"
if [ "$ln_threads" -gt 0 ]; then
    readrow "dsk_loader_next (shuffle, prefetch 64, $ln_threads threads)" "$ln_ns" "$ds_bpt" "$((ds_bytes / 1000000))"
fi
readrow "dsk_dataset_read, --zstd-level 0 (stored rows)" "$read0_ns" "$ds0_bpt" "$((ds0_bytes / 1000000))" "$flat0_ns"
readrow "dsk_loader_next, --zstd-level 0, 1 thread" "$l10_ns" "$ds0_bpt" "$((ds0_bytes / 1000000))" "$flat0_ns"
echo "(median of $RUNS passes over $READ_ROWS random rows of $rows; both files in the page cache: the flat file is" \
    "touched once after it is written, the shard was read whole to write it; the dataset is $smaller% smaller" \
    "than the flat file (shard bytes; the row values alone are $value_bpt bytes a token, LMDB pages the rest);" \
    "sequential dsk_dataset_read: $(printf '%.0f' "$seq_ns") ns/row; the --zstd-level 0 rows are against their" \
    "own pass's flat figure, $(printf '%.0f' "$flat0_ns") ns/row)"
pct() { echo "$1" | awk '{printf "%.1f", $1}'; }
met() { [ "$(echo "$1" | bc -l)" = 1 ] && echo met || echo "not met"; }
echo "targets: pack >= 50 Mtok/s on one core: $(printf '%.1f' "$j1_rate") ($(met "$j1_rate >= 50")), at" \
    "--zstd-level 0 $(printf '%.1f' "$j1s_rate") ($(met "$j1s_rate >= 50"));" \
    "dsk_dataset_read <= 1.5x flat: $(printf '%.2f' "$(echo "$read_ns / $flat_ns" | bc -l)")x ($(met "$read_ns <= 1.5 * $flat_ns")), at" \
    "--zstd-level 0 $(printf '%.2f' "$(echo "$read0_ns / $flat0_ns" | bc -l)")x ($(met "$read0_ns <= 1.5 * $flat0_ns"));" \
    "dataset >= 40% smaller: $(pct "$smaller")% ($(met "$smaller >= 40"))"

loaderN=""
if [ "$ln_threads" -gt 0 ]; then loaderN=",\"loader_threads\":$ln_threads,\"loaderN_ns_per_row\":$ln_ns"; fi
cat > "$results" <<EOF
{"text":"dict-gcide paragraphs, GPT-2","documents":$docs,"tokens":$tokens,"dskt_copies":$copies,"row_tokens":$L,
"zstd_level":$level,"dict_bytes":$dict,
"pack":{"numpy_s":$np_secs,"numpy_peak_kb":$np_rss,"dsk_j1_s":$j1_secs,"dsk_j1_peak_kb":$j1_rss,"dsk_j${cores}_s":$jn_secs,"dsk_j${cores}_peak_kb":$jn_rss,
"numpy_mtok_per_s":$np_rate,"dsk_j1_mtok_per_s":$j1_rate,"dsk_j${cores}_mtok_per_s":$jn_rate,"same_tokens":$same,
"dsk_j1_stored_s":$j1s_secs,"dsk_j1_stored_peak_kb":$j1s_rss,"dsk_j1_stored_mtok_per_s":$j1s_rate},
"read":{"rows":$rows,"sampled_rows":$READ_ROWS,"runs":$RUNS,"flat_ns_per_row":$flat_ns,"nanogpt_ns_per_row":$py_ns,
"raw_ns_per_row":$raw_ns,"read_ns_per_row":$read_ns,"loader1_ns_per_row":$l1_ns$loaderN,"sequential_read_ns_per_row":$seq_ns,
"flat_bytes":$flat_bytes,"dataset_bytes":$ds_bytes,"flat_bytes_per_token":$flat_bpt,"dataset_bytes_per_token":$ds_bpt,"value_bytes_per_token":$value_bpt,
"dataset_smaller_pct":$smaller,
"stored":{"flat_ns_per_row":$flat0_ns,"read_ns_per_row":$read0_ns,"loader1_ns_per_row":$l10_ns,"dataset_bytes":$ds0_bytes,
"dataset_bytes_per_token":$ds0_bpt}}}
EOF
