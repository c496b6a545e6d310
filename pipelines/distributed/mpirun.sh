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
# GPUs: add --backend cuda, with RANKS_PER_NODE the GPUs of a machine: each
# rank trains on its local rank's device, and NCCL (libnccl.so.2 on every
# machine) carries the gradients and weights between them.  Every NCCL_*
# variable set here reaches every rank, for example
#
#   NCCL_DEBUG=WARN NCCL_SOCKET_IFNAME=ib0 pipelines/distributed/mpirun.sh hosts 8 --backend cuda ...
#
# (NCCL_DEBUG=WARN says why NCCL failed, INFO also what it chose;
# NCCL_SOCKET_IFNAME names the network interface when machines have several.)
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
# mpirun passes the variables it is told to (-x), not the whole environment.
nccl_env=()
for v in $(compgen -e | grep '^NCCL_' || true); do
    nccl_env+=(-x "$v")
done
echo "mpirun.sh: $nodes machines x $per_node ranks = $ranks ranks, $threads threads each" >&2
exec mpirun -np "$ranks" --hostfile "$hostfile" \
    --map-by "ppr:$per_node:node:PE=$threads" --bind-to core \
    -x PATH ${LD_LIBRARY_PATH+-x LD_LIBRARY_PATH} ${nccl_env[@]+"${nccl_env[@]}"} \
    dsk-train -j "$threads" "$@"
