#!/usr/bin/env python3
"""Two dsk-train runs agree: their logged train and val losses (relative
TOL) from FROM_STEP on, their final weights and Adam's moments (TOL,
absolute and relative to each tensor's largest value, at least 1), and
their random state (without router noise).

    compare_runs.py REF RUN [FROM_STEP] [--tol TOL]     (TOL default 1e-4)

REF and RUN are checkpoint directories with REF.jsonl and RUN.jsonl beside
them (dsk-train --log).  Exit status 0 when they agree; an assertion with
the worst difference otherwise.  The dsk-train distributed tests
(tests/cli/test_dsk_train_dist.sh, tests/gpu/test_nccl.sh) share it."""
import json
import struct
import sys


def tensors(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    head, data = json.loads(f.read(n)), f.read()
    return {k: struct.unpack("<%df" % ((v["data_offsets"][1] - v["data_offsets"][0]) // 4),
                             data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in head.items() if k != "__metadata__"}


def log(path, key):
    return {r["step"]: r[key] for r in map(json.loads, open(path)) if key in r}


args = sys.argv[1:]
tol = 1e-4
if "--tol" in args:
    i = args.index("--tol")
    tol = float(args[i + 1])
    del args[i:i + 2]
ref, run = args[0], args[1]
first = int(args[2]) if len(args) > 2 else 1
for key in ("loss", "val_loss"):
    a, b = log(ref + ".jsonl", key), log(run + ".jsonl", key)
    steps = [s for s in a if s >= first]
    assert steps and all(s in b for s in steps), (key, sorted(a), sorted(b))
    worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in steps)
    assert worst < tol, (key, worst, [(a[s], b[s]) for s in steps])
for f in ("model", "optimizer"):
    a, b = tensors(f"{ref}/latest/{f}.safetensors"), tensors(f"{run}/latest/{f}.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        scale = max(1.0, max(abs(x) for x in a[k]))
        worst = max(abs(x - y) for x, y in zip(a[k], b[k]))
        assert worst <= tol * scale, (f, k, worst)
# The run's random state is one process's too, when both drew the same
# samples from it, and no router noise gave each rank its own draws.
cfg = json.load(open(f"{ref}/latest/config.json"))
sa, sb = (json.load(open(f"{d}/latest/state.json")) for d in (ref, run))
if ((not cfg.get("n_routed_experts") or cfg.get("dsk_router_noise", "none") == "none") and
        sa["options"].get("sample_every") == sb["options"].get("sample_every")):
    assert sa["rng"] == sb["rng"], ("rng", sa["rng"], sb["rng"])
print(f"losses, weights, moments and random state agree within {tol:g}")
