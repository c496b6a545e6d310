#!/usr/bin/env python3
"""The one table of make bench: every benchmark next to the peer a user
would pick instead, from the JSON the sections wrote.

    summary.py OUT_DIR      (reads OUT/results.json and OUT/bpe-results.json,
                             prints the table, adds "summary" to results.json)

Each row: dsk's figure, the peer's, the ratio oriented so that > 1 means
dsk is better, the target the issues set, and whether it is met.  Sections
that did not run print "not run"; GPU benchmarks print "skipped: no GPU"
when there is none.  The sections already took medians of their runs.
"""
import json
import os
import shutil
import subprocess
import sys

out = sys.argv[1]


def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else {}


res, bpe = load("results.json"), load("bpe-results.json")
rows = []


def row(name, dsk, peer_name, peer, ratio, target, met):
    rows.append({"benchmark": name, "dsk": dsk, "peer": peer_name, "peer_value": peer, "ratio": ratio,
                 "target": target, "met": met})


def missing(name, why="not run"):
    rows.append({"benchmark": name, "dsk": why, "peer": "", "peer_value": "", "ratio": None, "target": "",
                 "met": None})


# dsk-clean vs datatrove (same filters, MB/s; datatrove on a slice)
dt = res.get("datatrove")
if dt and res.get("dsk"):
    dt_rate = dt["bytes"] / dt["seconds"] / 1e6
    d = res["dsk"][0]
    row("clean: filters + exact dedup, 1 core (MB/s)", f"{d['mb_per_s']:.2f}", "datatrove", f"{dt_rate:.3f}",
        d["mb_per_s"] / dt_rate, "", None)
else:
    missing("clean: vs datatrove")
# dsk-bpe vs tiktoken and HF tokenizers
for enc in ("cl100k_base", "o200k_base"):
    e = bpe.get(f"encode_{enc}")
    if e:
        mb = e["text_bytes"] / 1e6
        best = min(v for k, v in e.items() if k.startswith("dsk_j") and k.endswith("_s"))
        row(f"bpe: encode {enc}, identical ids={e.get('identical')} (MB/s)", f"{mb / best:.2f}", "tiktoken",
            f"{mb / e['tiktoken_s']:.2f}", e["tiktoken_s"] / best, ">= 1x", e["tiktoken_s"] / best >= 1)
    else:
        missing(f"bpe: encode {enc}")
t = bpe.get("train_gcide_32k")
if t:
    row("bpe: train 32K vocab on dict-gcide (s)", f"{t['dsk_s']:.1f}", "HF tokenizers", f"{t['hf_s']:.1f}",
        t["hf_s"] / t["dsk_s"], "", None)
else:
    missing("bpe: train vs HF tokenizers")
# dsk-pack vs numpy packing and a flat memmap loader
p = res.get("pack", {})
if p.get("pack"):
    pk = p["pack"]
    row("pack: tokens packed (Mtok/s)", f"{pk['dsk_j1_mtok_per_s']:.1f}", "numpy", f"{pk['numpy_mtok_per_s']:.1f}",
        pk["dsk_j1_mtok_per_s"] / pk["numpy_mtok_per_s"], ">= 50 Mtok/s", pk["dsk_j1_mtok_per_s"] >= 50)
    if "dsk_j1_stored_mtok_per_s" in pk:
        row("pack: tokens packed, --zstd-level 0 (Mtok/s)", f"{pk['dsk_j1_stored_mtok_per_s']:.1f}", "numpy",
            f"{pk['numpy_mtok_per_s']:.1f}", pk["dsk_j1_stored_mtok_per_s"] / pk["numpy_mtok_per_s"],
            ">= 50 Mtok/s", pk["dsk_j1_stored_mtok_per_s"] >= 50)
    rd = p["read"]
    row("pack: random row read (ns/row)", f"{rd['read_ns_per_row']:.0f}", "flat memmap",
        f"{rd['flat_ns_per_row']:.0f}", rd["flat_ns_per_row"] / rd["read_ns_per_row"], "<= 1.5x flat",
        rd["read_ns_per_row"] <= 1.5 * rd["flat_ns_per_row"])
    st = rd.get("stored")
    if st:
        row("pack: random row read, --zstd-level 0 (ns/row)", f"{st['read_ns_per_row']:.0f}", "flat memmap",
            f"{st['flat_ns_per_row']:.0f}", st["flat_ns_per_row"] / st["read_ns_per_row"], "<= 1.5x flat",
            st["read_ns_per_row"] <= 1.5 * st["flat_ns_per_row"])
    row("pack: bytes per token on disk", f"{rd['dataset_bytes_per_token']:.3f}", "flat uint16",
        f"{rd['flat_bytes_per_token']:.3f}", rd["flat_bytes_per_token"] / rd["dataset_bytes_per_token"], "", None)
else:
    missing("pack: vs numpy / memmap")
# dsk-train vs PyTorch
tr = res.get("train")
if tr:
    for r in tr:
        if "torch_tokens_per_s" in r:
            ok = r.get("ratio")
            row(f"train: {r['model']} B{r['B']} T{r['T']} (tokens/s)", f"{r['dsk_tokens_per_s']:.0f}", "PyTorch",
                f"{r['torch_tokens_per_s']:.0f}" if r["torch_tokens_per_s"] else "-", ok,
                ">= 1.5x" if "gpt2" in r["model"] else "", (ok >= 1.5) if ok and "gpt2" in r["model"] else None)
        elif "moe_time_ratio" in r:
            row("train: MoE time per token vs dense of the same active size", f"{r['moe_time_ratio']:.2f}x",
                "dense", "1x", 1 / r["moe_time_ratio"], "<= 1.5x", r["moe_time_ratio"] <= 1.5)
        elif "activation_bytes_recompute" in r:
            less = 1 - r["activation_bytes_recompute"] / r["activation_bytes"]
            more = r["tokens_per_s"] / r["tokens_per_s_recompute"] - 1
            row("train: --recompute, activation memory saved (tiny)", f"{100 * less:.0f}%", "seed's claim", "60%",
                None, "", None)
            row("train: --recompute, extra time per token (tiny)", f"{100 * more:.0f}%", "seed's claim", "15-20%",
                None, "", None)
else:
    missing("train: vs PyTorch")
# dsk-quant vs llama.cpp
q = res.get("quant")
if q:
    inc = q["increase"]
    ref = q["llamacpp_q4_k_m_increase"]
    for m in ("rtn", "gptq", "awq"):
        target = "" if m == "rtn" else "<= RTN, <= Q4_K_M"
        met = None if m == "rtn" or ref is None else inc[m] <= inc["rtn"] and inc[m] <= ref
        row(f"quant: perplexity change, {m.upper()} int4 g128", f"{100 * inc[m]:+.3f}%", "llama.cpp Q4_K_M",
            f"{100 * ref:+.3f}%" if ref is not None else "failed", None, target, met)
    # The KL divergence from the float model: the same question as the
    # perplexity change, without its noise (on the bench's small model a
    # 4-bit model's perplexity can come out below the float one's).
    kl, lkl = q.get("kl"), q.get("llamacpp_kl") or {}
    for m in ("rtn", "gptq", "awq") if kl else ():
        for g, peer in (("q4_k_m", "llama.cpp Q4_K_M"), ("q4_k_m_e", "Q4_K_M, f32 embedding")):
            ref = lkl.get(g)
            target = "" if m == "rtn" else "<= RTN, <= Q4_K_M"
            met = None if m == "rtn" or ref is None else kl[m] <= kl["rtn"] and kl[m] <= ref
            row(f"quant: KL from fp32, {m.upper()} int4 g128 (nats/token)", f"{kl[m]:.2e}", peer,
                f"{ref:.2e}" if ref is not None else "failed", ref / kl[m] if ref else None, target, met)
    for k, label in (("f32", "f32"), ("q8_0", "q8_0"), ("moe_f32", "MoE f32")):
        d = q["gguf_rel_diff"][k]
        if d is None:   # llama.cpp crashed on it (quant-results.json says how)
            missing(f"quant: GGUF {label} export, llama.cpp perplexity vs dsk", "llama.cpp failed")
            continue
        row(f"quant: GGUF {label} export, llama.cpp perplexity vs dsk", f"{100 * d:+.4f}%", "", "", None,
            "within 1%", abs(d) <= 0.01)
    line = [l for l in q.get("int4_bench", "").splitlines() if l.startswith("speedup")]
    if line:
        cold = float(line[0].split("cold")[1].split("x")[0])
        row("quant: int4 matvec 4096x4096 vs fp32 sgemv (cold)", f"{cold:.2f}x", "OpenBLAS sgemv", "1x", cold,
            ">= 3x", cold >= 3)
else:
    missing("quant: vs llama.cpp")
# dsk-serve vs llama.cpp
s = res.get("serve")
if s:
    if s.get("llamacpp_batch1_tokens_per_s"):
        r = s["batch1_tokens_per_s"] / s["llamacpp_batch1_tokens_per_s"]
        row("serve: batch-1 decode, int4 (tokens/s)", f"{s['batch1_tokens_per_s']:.0f}", "llama.cpp Q4_K_M",
            f"{s['llamacpp_batch1_tokens_per_s']:.0f}", r, ">= 1x", r >= 1)
    if s.get("llamacpp_json_batch1_tokens_per_s") and s.get("json_batch1_tokens_per_s"):
        r = s["json_batch1_tokens_per_s"] / s["llamacpp_json_batch1_tokens_per_s"]
        row("serve: batch-1 decode under a JSON schema (tokens/s)", f"{s['json_batch1_tokens_per_s']:.0f}",
            "llama.cpp grammar", f"{s['llamacpp_json_batch1_tokens_per_s']:.0f}", r, "", None)
    if s.get("record_ms") and s.get("llamacpp_record_ms"):
        r = s["llamacpp_record_ms"] / s["record_ms"]
        row("serve: a JSON record of five choices, batch-1 (ms/answer)", f"{s['record_ms']:.1f}", "llama.cpp grammar",
            f"{s['llamacpp_record_ms']:.1f}", r, "", None)
    for kind, what in (("greedy", "free text"), ("quote", "quotes")):
        on, peer = s.get(f"spec_{kind}_tokens_per_s"), s.get(f"llamacpp_spec_{kind}_tokens_per_s")
        if on and peer:
            row(f"serve: --speculate 7, batch-1 greedy {what} (tokens/s)", f"{on:.0f}", "llama.cpp lookup",
                f"{peer:.0f}", on / peer, "", None)
    row("serve: 32 streams aggregate vs batch-1", f"{s['streams32_ratio']:.2f}x", "", "", None, ">= 3x",
        s["streams32_ratio"] >= 3)
    row("serve: time to first token P99, 32 clients (ms)", f"{s['ttft_p99_ms']:.0f}", "", "", None, "< 500 ms",
        s["ttft_p99_ms"] < 500)
    row("serve: short requests (QPS)", f"{s['short_qps']:.0f}", "", "", None, "500 (the seed's)",
        s["short_qps"] >= 500)
else:
    missing("serve: vs llama.cpp")
# lm-evaluation-harness through dsk-serve: the same log-likelihoods as dsk-eval
le = res.get("lm_eval")
if le and "max_abs_loglik_diff" in le:
    same = le["lm_eval_acc"] == le["dsk_eval_acc"] and le["lm_eval_acc_norm"] == le["dsk_eval_acc_norm"]
    row(f"serve: lm-eval {le['lm_eval_version']} loglik vs dsk-eval mc (max |diff|)", f"{le['max_abs_loglik_diff']:.1e}",
        "dsk-eval mc", "0", None, "< 1e-3, same acc", le["max_abs_loglik_diff"] < 1e-3 and same and le["same"])
else:
    missing("serve: lm-eval vs dsk-eval mc", le.get("skipped", "not run") if le else "not run")
# GPU benchmarks (issue 8): MFU of the CUDA backend
gpu = shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
# The first row of each: throughput.sh runs the defaults first, then the
# same shapes with other attention kernels or settings to compare.
measured = {}
for r in res.get("gpu", {}).get("rows", []):
    measured.setdefault((r["model"], r["dtype"], r["recompute"]), r)
for name, key, target in (("train: 1.3b dense bf16 seq 2048, MFU (GPU)", ("1.3b", "bf16", False), 50),
                          ("train: MoE preset bf16, MFU (GPU)", ("moe-1.3b", "bf16", False), 35)):
    r = measured.get(key)
    if r and r.get("mfu_percent") is not None:
        row(name, f"{r['mfu_percent']:.1f}%", "", "", None, f">= {target}%", r["mfu_percent"] >= target)
    elif r:
        row(name, f"{r['tflops']:.1f} TFLOPS", "", "", None, f">= {target}% (peak unknown)", None)
    else:
        missing(name, "skipped: no GPU" if not gpu else "not measured (see tests/gpu/throughput.sh's output)")

cpu = res.get("machine", "?")
print(f"dsk bench summary: {cpu}, {res.get('cores', '?')} cores")
w = max(len(r["benchmark"]) for r in rows)
print(f"{'benchmark':<{w}}  {'dsk':>12}  {'peer':<18} {'peer value':>10}  {'dsk vs peer':>11}  {'target':<17} met")
for r in rows:
    ratio = f"{r['ratio']:.2f}x" if isinstance(r["ratio"], (int, float)) else ""
    met = {True: "yes", False: "NO", None: ""}[r["met"]]
    print(f"{r['benchmark']:<{w}}  {r['dsk']:>12}  {r['peer']:<18} {r['peer_value']:>10}  {ratio:>11}  "
          f"{r['target']:<17} {met}")
print("(dsk vs peer > 1x: dsk is better; speeds are medians of the sections' runs)")
res["summary"] = rows
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
