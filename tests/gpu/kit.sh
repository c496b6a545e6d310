#!/bin/sh
# Packs the GPU checks for a machine that has a GPU and the CUDA toolkit
# but none of the build's -dev packages (the lent device machine: a CUDA
# image that can fetch nothing).  Builds here, with this machine's nvcc,
# every program tests/gpu/run.sh runs, into build/kit, with the shared
# libraries they load that such an image lacks (json-c, LMDB, zstd,
# OpenBLAS, libcurl, ...) in build/kit/lib, then writes
# build/gpukit.tar.xz.  On the device machine, tests/gpu/kit_run.sh
# unpacks it and runs run.sh on it.
#
#   tests/gpu/kit.sh            (about 10 minutes on 2 cores, from clean)
#
# Left out of the kit, the machine's own: the C library and the loader,
# glibc's other libraries, libstdc++ and libgcc_s (build/kit/KIT.txt
# says the newest symbol versions the kit needs: GLIBC_2.34 from Debian
# 12, so Ubuntu 22.04 or newer), and the driver (libcuda); cuBLAS and
# NCCL are dlopen()ed from the machine's toolkit.  dsk-train is built without MPI:
# the kit is for one GPU.
set -eu
cd "$(dirname "$0")/../.."
KB=build/kitbuild   # the build directory (objects), kept for the next run
KIT=build/kit
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || { echo "kit: no nvcc" >&2; exit 69; }
if ! command -v patchelf >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq patchelf >/dev/null
    else
        echo "kit: needs patchelf (apt-get install patchelf)" >&2
        exit 69
    fi
fi

progs="tests/gpu/test_cuda_ops tests/gpu/test_cuda_gemm_dtype tests/gpu/test_cuda_gemm_lt tests/gpu/test_cuda_profile tests/tools/train_bench
    tests/tools/attn_bench tests/tools/decode_bench bin/dsk-bpe bin/dsk-pack bin/dsk-train bin/dsk-eval bin/dsk-quant"
targets=
for p in $progs; do targets="$targets $KB/$p"; done
# shellcheck disable=SC2086
make -j"$JOBS" --no-print-directory BUILD=$KB MPI_LIBS= MPI_CFLAGS=-DDSK_NO_MPI $targets >/dev/null

rm -rf "$KIT" build/gpukit.tar.xz
mkdir -p "$KIT/lib"
# Each program finds the kit's libraries through its own run path (DT_RPATH,
# which also serves the libraries' own dependencies), not through
# LD_LIBRARY_PATH, which would hand them to the machine's programs too
# (python3, compute-sanitizer).  The toolkit's directory stays after it,
# for cuBLAS.
cuda_lib=$(patchelf --print-rpath "$KB/bin/dsk-train" | tr ':' '\n' | grep cuda | head -n 1 || true)
for p in $progs; do
    mkdir -p "$KIT/$(dirname "$p")"
    cp "$KB/$p" "$KIT/$p"
    strip --strip-debug "$KIT/$p"
    up=$(dirname "$p" | sed 's|[^/]*|..|g')
    patchelf --force-rpath --set-rpath "\$ORIGIN/$up/lib${cuda_lib:+:$cuda_lib}" "$KIT/$p"
done

# The shared libraries, all but the machine's own (above).
# (glibc's own libraries, libresolv and the like, use its GLIBC_PRIVATE
# symbols: they only work with the C library they came with.)
base='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libresolv|libutil|libanl|libnsl|libnss_[a-z]*|libstdc\+\+|libgcc_s|libcuda)\.so'
for p in $progs; do
    ldd "$KIT/$p" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
    if ! echo "$name" | grep -Eq "$base"; then
        cp -L "$path" "$KIT/lib/$name"
    fi
done
strip --strip-unneeded "$KIT"/lib/*.so* 2>/dev/null || true

# Every library a program loads resolves into the kit or is the machine's own.
for p in $progs; do
    ldd "$KIT/$p" | awk '$2 == "=>" {print $1, $3}' | while read -r name path; do
        case $(readlink -f "$path") in
            "$(readlink -f "$KIT/lib")"/*) ;;
            *) echo "$name" | grep -Eq "$base" || { echo "kit: $p loads $name from $path, not the kit" >&2; exit 1; } ;;
        esac
    done
done

# What the kit asks of the machine: the newest GLIBC_ and GLIBCXX_ symbol
# versions any program or library in it uses.
newest() {
    for f in "$KIT"/lib/* $(for p in $progs; do echo "$KIT/$p"; done); do
        objdump -T "$f" 2>/dev/null | grep -o "$1"'_[0-9][0-9.]*'
    done | sort -Vu | tail -n 1
}
glibc=$(newest GLIBC)
glibcxx=$(newest GLIBCXX)
{
    echo "dsk GPU kit: $(git describe --always --dirty 2>/dev/null || echo unknown), made $(date -u +%FT%TZ) on $(uname -n)"
    echo "needs: x86-64 Linux with ${glibc:-any glibc}, ${glibcxx:+libstdc++ with $glibcxx, }the NVIDIA driver, cuBLAS 13"
    echo "programs: $progs" | tr -s ' \n' ' '
    echo
    echo "libraries: $(ls "$KIT/lib" | tr '\n' ' ')"
} > "$KIT/KIT.txt"
tar -C build -cf - kit | xz -T0 -9 > build/gpukit.tar.xz
size=$(stat -c %s build/gpukit.tar.xz)
cat "$KIT/KIT.txt"
echo "kit: build/gpukit.tar.xz, $((size / 1048576)) MiB ($(du -sm "$KIT" | cut -f1) MiB unpacked)"
# The device tool carries at most 64 MiB with the working tree.
[ "$size" -le $((48 * 1048576)) ] || { echo "kit: over 48 MiB, too big to carry" >&2; exit 1; }
