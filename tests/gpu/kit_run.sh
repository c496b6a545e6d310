#!/bin/sh
# On the lent GPU machine: unpacks build/gpukit.tar.xz (made here by
# tests/gpu/kit.sh and carried) and runs tests/gpu/run.sh on its
# programs within a time budget, memcheck last, every log under $OUT.
#
#   sh tests/gpu/kit_run.sh [SECONDS]      (default 480)
#
# The device tool's call: command "sh tests/gpu/kit_run.sh 480", carry
# ["build/gpukit.tar.xz"], timeout_s 560.  $OUT gets run.log (what the
# terminal shows) and logs.tgz (each step's full log).  Before the
# checks it says what the machine has (C library, driver, cuBLAS) and
# stops if any program cannot load its libraries.
set -u
cd "$(dirname "$0")/../.."
budget=${1:-480}
out=${OUT:-${TMPDIR:-/tmp}/dsk-gpu-out}
mkdir -p "$out"
t0=$(date +%s)
if [ ! -f build/gpukit.tar.xz ]; then
    echo "kit_run: build/gpukit.tar.xz is missing: tests/gpu/kit.sh makes it, and the call must carry it"
    exit 66
fi
rm -rf build/kit
# tar -J needs xz; Python's lzma does without it.
if ! tar -C build -xJf build/gpukit.tar.xz 2>/dev/null; then
    rm -rf build/kit
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' \
        build/gpukit.tar.xz build || { echo "kit_run: cannot unpack build/gpukit.tar.xz"; exit 1; }
fi
KIT=$PWD/build/kit
head -n 2 "$KIT/KIT.txt"
echo "# machine: Linux $(uname -r), $(getconf GNU_LIBC_VERSION 2>/dev/null || echo 'glibc ?'), $(nproc) cores"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 |
        sed 's/^/# gpu: /'
else
    echo "# gpu: no nvidia-smi"
fi

# The programs find the kit's libraries by their run path, which also
# names the build's toolkit directory for cuBLAS 13 (they dlopen it).
# Elsewhere (the pip wheel's), it goes on the library path.
cublas=
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import os, nvidia.cublas as c; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null); do
    if [ -e "$d/libcublasLt.so.13" ]; then cublas=$d; break; fi
done
echo "# cuBLAS: ${cublas:-not found (the checks will say cuda cannot load it)}"
case $cublas in
    ""|/usr/local/cuda/lib64) ;;
    *) export LD_LIBRARY_PATH="$cublas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac

# cuDNN (DSK_CUDA_ATTN=cudnn's fused attention), dlopened the same way;
# without it those checks and rows say so and are skipped.
cudnn=
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
    $(python3 -c 'import os, nvidia.cudnn as c; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null); do
    if [ -e "$d/libcudnn.so.9" ]; then cudnn=$d; break; fi
done
echo "# cuDNN: ${cudnn:-not found (DSK_CUDA_ATTN=cudnn is skipped)}"
case $cudnn in
    ""|/usr/local/cuda/lib64|/usr/lib/x86_64-linux-gnu) ;;
    *) export LD_LIBRARY_PATH="$cudnn${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac

# Every program must find its libraries, in the kit or on the machine.
bad=0
command -v ldd >/dev/null 2>&1 || echo "# no ldd: the programs' libraries are not checked first"
command -v ldd >/dev/null 2>&1 && for p in "$KIT"/bin/* "$KIT"/tests/gpu/* "$KIT"/tests/tools/*; do
    missing=$(ldd "$p" 2>&1 | grep -E 'not found') || true
    if [ -n "$missing" ]; then
        echo "kit_run: $p cannot load:"
        echo "$missing" | sed 's/^/    /'
        bad=1
    fi
done
[ $bad -eq 0 ] || exit 1
echo "# kit ready: $(( $(date +%s) - t0 )) s"

left=$(( budget - ($(date +%s) - t0) ))
{
    DSK_GPU_PREBUILT=1 DSK_GPU_DEADLINE=$left DSK_GPU_MEMCHECK=last DSK_GPU_LOGDIR="$out/logs" BUILD=build/kit \
        sh tests/gpu/run.sh 2>&1
    echo $? > "$out/rc"
} | tee "$out/run.log"
rc=$(cat "$out/rc" 2>/dev/null || echo 1)
rm -f "$out/rc"
if [ -d "$out/logs" ]; then
    tar -C "$out" -czf "$out/logs.tgz" logs && rm -rf "$out/logs"
fi
echo "# kit_run: exit $rc after $(( $(date +%s) - t0 )) s"
exit "$rc"
