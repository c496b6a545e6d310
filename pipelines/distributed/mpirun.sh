#!/usr/bin/env bash
# Data-parallel dsk-train over several machines with Open MPI's mpirun.
#
#   pipelines/distributed/mpirun.sh HOSTFILE RANKS_PER_NODE DSK-TRAIN-OPTION...
#
#   pipelines/distributed/mpirun.sh hosts 8 -c 125m -d /shared/data -o /shared/ckpt \
#       -b 256 --zero 2 --tokens 20G --save-every 1000 --log /shared/ckpt.jsonl
#
# HOSTFILE names the machines, one a line ("node1 slots=8"); dsk-train, the
# dataset and the checkpoint directory must be at the same paths on each
# (a shared file system), and the machines alike: each rank gets
# cores / RANKS_PER_NODE cores of its machine, bound to it.  On one machine
# plain `mpirun -np 4 dsk-train ...` is all it takes.
#
# Stop it with SIGUSR1 to mpirun (it forwards that signal to every rank,
# not SIGTERM): the ranks agree on a step, save a checkpoint and exit 138.
# Go on with --resume -o CKPT_DIR, on any number of ranks.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 HOSTFILE RANKS_PER_NODE DSK-TRAIN-OPTION..." >&2
    exit 64
fi
hostfile=$1 per_node=$2
shift 2
nodes=$(grep -cvE '^[[:space:]]*(#|$)' "$hostfile")
ranks=$((nodes * per_node))
cores=$(nproc)
threads=$((cores / per_node > 0 ? cores / per_node : 1))
echo "mpirun.sh: $nodes machines x $per_node ranks = $ranks ranks, $threads threads each" >&2
exec mpirun -np "$ranks" --hostfile "$hostfile" \
    --map-by "ppr:$per_node:node:PE=$threads" --bind-to core \
    -x PATH -x LD_LIBRARY_PATH \
    dsk-train -j "$threads" "$@"
