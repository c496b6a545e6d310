#!/usr/bin/env python3
"""The numbers behind a recipe: parameters, tokens, steps, FLOPs, expected
GPU-hours and memory per GPU, from the model's config.json (what
`dsk-train --show-config` prints) and the run's shape.

    plan.py --config CONFIG.json --vocab V --tokens T --seq S --global-batch ROWS
            --gpus N [--tokens-per-s-per-gpu X | --mfu F --peak-tflops P]

Throughput: with --tokens-per-s-per-gpu (measured: tests/gpu/run.sh prints
it, or a short run's `tokens_per_s` in its --log) the hours follow from
it; otherwise from FLOPs at an assumed MFU (default 0.40 of 989 bf16
TFLOP/s, an H100 SXM).  The output says which.  FLOPs per token: 6 N for
the matrices (N without the embedding lookup; the LM head counts) plus
attention, 6 * layers * seq * d_model for the scores and their backward
(causal: half of 12 * L * T * d).  MoE: N counts the experts a token uses.
"""
import argparse
import json


def params(c, V):
    d, L, H = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    kv, ff = c["num_key_value_heads"], c["intermediate_size"]
    hd = d // H
    attn = d * (H * hd) * 2 + d * (kv * hd) * 2
    experts = c.get("n_routed_experts", 0)
    dense_ffn = 3 * d * ff
    total = active = V * d + d   # embedding, final norm
    head = 0 if c.get("tie_word_embeddings") else V * d
    total += head
    active += head
    first_dense = c.get("first_k_dense_replace", 0)
    for layer in range(L):
        total += attn + 2 * d
        active += attn + 2 * d
        if experts and layer >= first_dense:
            fe = c.get("moe_intermediate_size", ff)
            per = 3 * d * fe
            total += (experts + c.get("n_shared_experts", 0)) * per + d * experts
            active += (c.get("num_experts_per_tok", 2) + c.get("n_shared_experts", 0)) * per + d * experts
        else:
            total += dense_ffn
            active += dense_ffn
    # FLOP-bearing parameters: everything but the embedding lookup (the head is a product)
    flop_params = active - V * d + (V * d if c.get("tie_word_embeddings") else 0)
    return total, active, flop_params


def count(text):
    """2500M, 26G, 1.5e9: a number with an optional K/M/G/T suffix, powers of 1024 as
    dsk-train --tokens reads them (the steps it will run)."""
    text = text.strip()
    scale = {"K": 2.0 ** 10, "M": 2.0 ** 20, "G": 2.0 ** 30, "T": 2.0 ** 40}.get(text[-1:].upper(), 1)
    return float(text[:-1] if scale != 1 else text) * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--tokens", type=count, required=True, help="with K, M, G or T (powers of 1024, as dsk-train reads them)")
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--global-batch", type=int, required=True, help="rows per optimizer step, all ranks")
    ap.add_argument("--gpus", type=int, required=True)
    ap.add_argument("--tokens-per-s-per-gpu", type=float)
    ap.add_argument("--mfu", type=float, default=0.40)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    c = json.load(open(a.config))
    total, active, flop_n = params(c, a.vocab)
    L, d = c["num_hidden_layers"], c["hidden_size"]
    flops_per_token = 6 * flop_n + 6 * L * a.seq * d
    step_tokens = a.global_batch * a.seq
    steps = int(round(a.tokens / step_tokens))
    total_flops = flops_per_token * a.tokens
    if a.tokens_per_s_per_gpu:
        tps = a.tokens_per_s_per_gpu
        basis = f"measured {tps:,.0f} tokens/s per GPU"
    else:
        tps = a.mfu * a.peak_tflops * 1e12 / flops_per_token
        basis = f"assumed MFU {a.mfu:.0%} of {a.peak_tflops:.0f} TFLOP/s, not measured for this preset"
    gpu_hours = a.tokens / tps / 3600
    r = {"params": total, "active_params": active, "tokens": a.tokens, "tokens_per_param": a.tokens / active,
         "seq": a.seq, "global_batch_rows": a.global_batch, "tokens_per_step": step_tokens, "steps": steps,
         "flops_per_token": flops_per_token, "total_flops": total_flops, "tokens_per_s_per_gpu": tps,
         "gpus": a.gpus, "gpu_hours": gpu_hours, "wall_hours": gpu_hours / a.gpus, "basis": basis}
    if a.json:
        print(json.dumps(r))
        return
    print(f"parameters: {total / 1e6:,.0f}M ({active / 1e6:,.0f}M active per token)")
    print(f"tokens: {a.tokens / 1e9:,.1f}B ({r['tokens_per_param']:.0f} per active parameter)")
    print(f"steps: {steps:,} of {a.global_batch} rows x {a.seq} = {step_tokens:,} tokens")
    print(f"compute: {flops_per_token / 1e9:.2f} GFLOP/token, {total_flops:.2e} FLOP in all")
    print(f"throughput: {tps:,.0f} tokens/s per GPU ({basis})")
    print(f"time: {gpu_hours:,.0f} GPU-hours = {gpu_hours / a.gpus:,.1f} h on {a.gpus} GPUs")


if __name__ == "__main__":
    main()
