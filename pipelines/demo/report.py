#!/usr/bin/env python3
"""Writes the demo's report card (Markdown) from the files each stage left
in the output directory.  Sections appear as their stages exist."""
import json
import os
import struct
import subprocess
import sys

out = sys.argv[1]


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


print("# dsk demo report\n")
stats = load("clean-stats.json")
if stats:
    print("## 1. Cleaning (dsk-clean)\n")
    pct = 100.0 * stats["docs_out"] / max(stats["docs_in"], 1)
    print(f"- documents: {stats['docs_in']} in, {stats['docs_out']} out ({pct:.1f}% kept)")
    print(f"- bytes: {stats['bytes_in']} in, {stats['bytes_out']} of text out")
    s = stats["splits"]
    print(f"- splits: {s['train']} train, {s['val']} val, {s['test']} test")
    m = stats["modified"]
    print(f"- modified: {m['escape_sequences_removed']} terminal escape sequences and "
          f"{m['control_chars_removed']} control characters removed, "
          f"{m['utf8_repaired_docs']} documents with invalid UTF-8 repaired")
    print(f"- dedup index: {stats['dedup_memory_bytes'] / 1048576:.1f} MiB in memory\n")
    print("| rule | documents dropped |")
    print("|---|---:|")
    for rule, n in sorted(stats["dropped"].items(), key=lambda kv: -kv[1]):
        print(f"| `{rule}` | {n} |")
    print()
    print("Every document is either kept or counted under the rule that dropped it; "
          "the dropped ones are in `clean-rejects.jsonl` with a `rejected_by` field.\n")

dskt = os.path.join(out, "docs.dskt")
if os.path.exists(dskt):
    print("## 2. Tokenizer (dsk-bpe)\n")
    info = subprocess.run([os.path.join(os.environ.get("BIN", ""), "dsk-bpe"), "info", "-t",
                           os.path.join(out, "tokenizer.json")], capture_output=True, text=True).stdout
    for line in info.splitlines()[:3]:
        print(f"- {line}")
    with open(dskt, "rb") as f:
        f.seek(-40, 2)
        trailer = f.read(40)
    records, tokens = struct.unpack("<QQ", trailer[8:24])
    text_bytes = sum(len(json.loads(l)["text"].encode()) for l in open(os.path.join(out, "docs.jsonl")))
    print(f"- encoded: {records} documents, {tokens} tokens, "
          f"{text_bytes / max(tokens, 1):.2f} bytes of text per token "
          f"(`docs.dskt`, {os.path.getsize(dskt)} bytes)\n")

manifest = load("data/MANIFEST")
if manifest:
    print("## 3. Dataset (dsk-pack)\n")
    shards = manifest["shards"]
    disk = sum(sh["bytes"] for sh in shards)
    rows = manifest["rows"]
    row_tokens = sum(manifest["stats"][s]["row_tokens"] for s in ("train", "val", "test"))
    flat = row_tokens * manifest["token_bytes"]
    print(f"- {manifest['kind']} rows of {manifest['row_tokens']} tokens, `{manifest['pack']}` packing, "
          f"{len(shards)} LMDB shard(s)")
    print(f"- rows: {rows['train']} train, {rows['val']} val, {rows['test']} test")
    print(f"- on disk: {disk} bytes, {disk / max(row_tokens, 1):.3f} bytes a token "
          f"(a flat uint{8 * manifest['token_bytes']} file of the same rows: {flat} bytes; "
          f"zstd level {manifest['zstd_level']}, dictionary {manifest['zstd_dict_bytes']} bytes)")
    print("\n| split | documents | tokens | rows | padding | cropped | documents cut |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in ("train", "val", "test"):
        st = manifest["stats"][s]
        pad = 100.0 * st["padding"] / max(st["row_tokens"], 1)
        crop = 100.0 * st["cropped"] / max(st["document_tokens"], 1)
        print(f"| {s} | {st['documents']} | {st['document_tokens']} | {st['rows']} | {pad:.2f}% | "
              f"{crop:.2f}% | {st['cut_documents']} |")
    verify = os.path.join(out, "verify.txt")
    if os.path.exists(verify):
        print(f"\n`dsk-pack verify`: {open(verify).read().strip()}\n")

log = os.path.join(out, "train.jsonl")
if os.path.exists(log):
    rows = [json.loads(l) for l in open(log)]
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    samples = [r for r in rows if "sample" in r]
    print("## 4. Training (dsk-train)\n")
    cfg = load("ckpt/latest/config.json") or {}
    state = load("ckpt/latest/state.json") or {}
    print(f"- model: {cfg.get('num_hidden_layers')} layers, d {cfg.get('hidden_size')}, "
          f"{cfg.get('num_attention_heads')} heads ({cfg.get('num_key_value_heads')} kv), "
          f"attention pattern `{cfg.get('dsk_attention_pattern')}` (window {cfg.get('dsk_sliding_window')}), "
          f"vocab {cfg.get('vocab_size')}")
    if train:
        last = train[-1]
        print(f"- {last['step']} steps, {last['tokens']} tokens in {last['elapsed_s']:.0f} s "
              f"({last['tokens_per_s']:.0f} tokens/s, {last['gflops']:.1f} GFLOP/s at the end); "
              f"{state.get('skipped_steps', 0)} steps skipped")
    print(f"- checkpoint: `ckpt/latest` -> `{os.readlink(os.path.join(out, 'ckpt', 'latest'))}`\n")
    print("| step | train loss | lr | grad norm |")
    print("|---:|---:|---:|---:|")
    for r in train[:: max(1, len(train) // 8)] + ([train[-1]] if len(train) % 8 else []):
        gn = r["grad_norm"] if r["grad_norm"] is not None else float("nan")
        print(f"| {r['step']} | {r['loss']:.3f} | {r['lr']:.2e} | {gn:.2f} |")
    if val:
        print("\n| step | val loss | val bits/byte |")
        print("|---:|---:|---:|")
        for r in val:
            print(f"| {r['step']} | {r['val_loss']:.3f} | {r['val_bpb']:.3f} |")
    for r in samples:
        text = r["sample"].replace("\n", " \u23ce ")
        print(f"\nSample at step {r['step']}: `{text}`")
    print()

log = os.path.join(out, "train-moe.jsonl")
if os.path.exists(log):
    rows = [json.loads(l) for l in open(log)]
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    cfg = load("ckpt-moe/latest/config.json") or {}
    print("## 5. Mixture of experts (dsk-train, tiny-moe)\n")
    print(f"- {cfg.get('n_routed_experts')} routed experts of {cfg.get('moe_intermediate_size')} "
          f"(top {cfg.get('num_experts_per_tok')}) + {cfg.get('n_shared_experts')} shared, from layer "
          f"{cfg.get('first_k_dense_replace')}; router `{cfg.get('scoring_func')}`, balancing "
          f"`{cfg.get('dsk_balance')}`, capacity factor {cfg.get('dsk_capacity_factor')}")
    if train:
        last = train[-1]
        print(f"- {last['step']} steps in {last['elapsed_s']:.0f} s ({last['tokens_per_s']:.0f} tokens/s); "
              f"train loss {train[0]['loss']:.3f} -> {last['loss']:.3f}" +
              (f"; val loss {val[0]['val_loss']:.3f} -> {val[-1]['val_loss']:.3f}" if val else ""))
        print("\nExpert load (fraction of routed choices) over the last logged steps, per MoE layer:\n")
        n = len(last["moe"][0]["load"])
        print("| layer | " + " | ".join(f"e{e}" for e in range(n)) + " | cv | dropped | entropy |")
        print("|---:|" + "---:|" * (n + 3))
        for m in last["moe"]:
            print(f"| {m['layer']} | " + " | ".join(f"{x:.3f}" for x in m["load"]) +
                  f" | {m['cv']:.3f} | {m['dropped']:.3f} | {m['entropy']:.3f} |")
    print()

evals = os.path.join(out, "eval.jsonl")
if os.path.exists(evals):
    print("## 6. Evaluation (dsk-eval ppl, test split)\n")
    print("| checkpoint | rows | tokens | loss | perplexity | bits/byte |")
    print("|---|---:|---:|---:|---:|---:|")
    for l in open(evals):
        e = json.loads(l)
        name = os.path.relpath(e["checkpoint"], out)
        print(f"| `{name}` | {e['rows']} | {e['tokens']} | {e['loss']:.3f} | {e['ppl']:.1f} | {e['bpb']:.3f} |")
    print()

adapt = os.path.join(out, "adapt", "results.jsonl")
if os.path.exists(adapt):
    print("## 7. Domain adaptation (dsk-train --stage continue, dict-gcide)\n")
    st = load("adapt/clean-stats.json") or {}
    if st:
        print(f"- corpus: {st['docs_in']} dictionary entries sampled A to Z (`gcide.py`), {st['docs_out']} kept "
              f"after exact deduplication and a 40-character minimum; splits "
              + ", ".join(f"{v} {k}" for k, v in st.get("splits", {}).items()))
    log = [json.loads(l) for l in open(os.path.join(out, "adapt", "train.jsonl"))]
    steps = [r for r in log if "loss" in r]
    if steps:
        last = steps[-1]
        print(f"- the tiny model continued on dictionary entries from `ckpt`: {last['step']} steps, "
              f"{last['tokens']} tokens in {last['elapsed_s']:.0f} s ({last['tokens_per_s']:.0f} tokens/s); "
              f"train loss {steps[0]['loss']:.3f} -> {last['loss']:.3f}")
    res = [json.loads(l) for l in open(adapt)]
    def bpb(ck, data):
        for r in res:
            if os.path.relpath(r["checkpoint"], out).startswith(ck) and os.path.relpath(r["data"], out) == data:
                return r["bpb"]
    print("\nBits per byte on the first 64 test rows of each corpus:\n")
    print("| model | dict-gcide test | fortunes test |")
    print("|---|---:|---:|")
    for ck, name in (("ckpt", "pretrained on fortunes"), ("adapt/ckpt", "after domain adaptation")):
        print(f"| {name} | {bpb(ck, 'adapt/data'):.3f} | {bpb(ck, 'data'):.3f} |")
    print("\nThe adapted model is the one SFT starts from (section 8). Plot: `evaluation/adapt.svg`.\n")

post = os.path.join(out, "post", "results.jsonl")
if os.path.exists(post):
    res = [json.loads(l) for l in open(post)]
    print("## 8. Post-training: SFT then DPO (\"Is N even or odd?\", 200 held-out numbers)\n")
    print("| model | held-out exact match |")
    print("|---|---:|")
    first = "tiny, after domain adaptation" if os.path.exists(adapt) else "tiny, pretrained on fortunes"
    for name, r in zip((first, "after SFT", "after SFT + DPO"), res):
        print(f"| {name} | {r['correct']}/{r['items']} = {r['exact_match']:.3f} |")
    dpo = [json.loads(l) for l in open(os.path.join(out, "post", "dpo-train.jsonl"))]
    val = [r for r in dpo if "val_accuracy" in r]
    if val:
        print("\n| DPO step | held-out preference accuracy | margin | chosen reward | rejected reward |")
        print("|---:|---:|---:|---:|---:|")
        for r in val:
            print(f"| {r['step']} | {r['val_accuracy']:.3f} | {r['val_margin']:.4f} | "
                  f"{r['val_chosen_reward']:.4f} | {r['val_rejected_reward']:.4f} |")
    state = load("post/ckpt-dpo/latest/state.json") or {}
    stages = " -> ".join(e["stage"] for e in state.get("lineage", []))
    print(f"\nLineage recorded in `post/ckpt-dpo/latest/state.json`: {stages}\n")

quant = os.path.join(out, "quant", "results.jsonl")
if os.path.exists(quant):
    print("## 9. Quantization (dsk-quant, 4 bits, group 64)\n")
    print("Perplexity on the first test rows before and after; the layer error is the relative output error")
    print("on the calibration inputs (RTN's for the same weights in brackets).\n")
    print("| method | perplexity fp32 | perplexity int4 | change | mean layer error | size |")
    print("|---|---:|---:|---:|---:|---:|")
    for l in open(quant):
        q = json.loads(l)
        size = os.path.getsize(os.path.join(q["output"], "model.safetensors"))
        print(f"| {q['method']} | {q['ppl_before']:.2f} | {q['ppl_after']:.2f} | "
              f"{100 * (q['ppl_after'] / q['ppl_before'] - 1):+.2f}% | {q['mean_error']:.2e} ({q['mean_rtn_error']:.2e}) "
              f"| {size / 1e6:.1f} MB |")
    fp32 = os.path.getsize(os.path.join(out, "ckpt", "latest", "model.safetensors"))
    print(f"\nThe fp32 checkpoint's model.safetensors is {fp32 / 1e6:.1f} MB (the 8192 x 256 embedding stays fp32).\n")

table = os.path.join(out, "evaluation", "table.jsonl")
if os.path.exists(table):
    rows = [json.loads(l) for l in open(table)]
    names = {"ckpt": "tiny, pretrained (fp32)", "quant/gptq": "tiny, GPTQ int4",
             "adapt/ckpt": "after domain adaptation (dict-gcide)", "post/ckpt-sft": "after SFT",
             "post/ckpt-dpo": "after SFT + DPO", "evaluation/dpo-int4": "after SFT + DPO, RTN int4"}
    by = {}
    for r in rows:
        if r["command"] in ("ppl", "mc", "gen"):
            key = os.path.relpath(r["checkpoint"], out)
            key = key[:-len("/latest")] if key.endswith("/latest") else key
            by.setdefault(key, {})[r["command"]] = r
    print("## 10. Evaluation (dsk-eval, fortunes test split)\n")
    print("| model | test perplexity | bits/byte | cloze acc (4-way) | cloze acc_norm | parity exact match |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, name in names.items():
        r = by.get(key)
        if not r:
            continue
        p, m, g = r.get("ppl", {}), r.get("mc", {}), r.get("gen", {})
        print(f"| {name} | {p.get('ppl', 0):.2f} | {p.get('bpb', 0):.3f} | {m.get('acc', 0):.3f} | "
              f"{m.get('acc_norm', 0):.3f} | {g.get('exact_match', 0):.3f} |")
    print("\nChance on the cloze task is 0.25; a 6-layer model trained for 200 steps on fortunes is near it.\n")
    for r in rows:
        if r["command"] == "ab":
            for x in r["results"]:
                print(f"A/B, `{os.path.relpath(r['a'], out)}` (A) against `{os.path.relpath(r['b'], out)}` (B) on "
                      f"{x['metric']} over {x['n']} items: {x['verdict']}.\n")
    print("Plots: `evaluation/loss.svg` (pretraining), `evaluation/adapt.svg` (domain adaptation), "
          "`evaluation/post.svg` (SFT and DPO), `evaluation/ab.svg` (the A/B test).\n")

served = os.path.join(out, "serve.json")
if os.path.exists(served):
    r = json.load(open(served))
    print("## 11. Serving (dsk-serve)\n")
    print("`dsk-serve post/ckpt-dpo` answered `POST /v1/chat/completions` with \"Is 7 even or odd?\":\n")
    print(f"> {r['choices'][0]['message']['content']!r} (finish: {r['choices'][0]['finish_reason']}, "
          f"{r['usage']['prompt_tokens']} prompt + {r['usage']['completion_tokens']} completion tokens); "
          "the right answer is 'odd'; section 8 gives the model's accuracy on held-out numbers\n")
    sj = os.path.join(out, "serve-json.json")
    if os.path.exists(sj):
        c = json.load(open(sj))["choices"][0]
        text = c["message"]["content"]
        try:
            valid = json.loads(text).get("answer") in ("even", "odd")
        except (ValueError, AttributeError):
            valid = False
        print("The same question with `response_format` `json_schema` "
              "(`{\"answer\": {\"enum\": [\"even\", \"odd\"]}}`, required, nothing else):\n")
        print(f"> {text!r} (finish: {c['finish_reason']}; "
              f"{'a JSON object valid against the schema' if valid else 'NOT valid against the schema'})\n")
    st = os.path.join(out, "serve-tool.json")
    if os.path.exists(st):
        c = json.load(open(st))["choices"][0]
        calls = c["message"].get("tool_calls") or []
        try:
            args = json.loads(calls[0]["function"]["arguments"])
            valid = list(args) == ["answer"] and args["answer"] in ("even", "odd")
        except (IndexError, KeyError, ValueError, AttributeError):
            args, valid = None, False
        print("And as a forced tool call (`tools`: `record_parity` with those parameters, `tool_choice` naming it; "
              "the tool described in the prompt, the call held to its parameters):\n")
        print(f"> {calls[0]['function']['name'] if calls else None}({json.dumps(args)}) "
              f"(finish: {c['finish_reason']}; {json.load(open(st))['usage']['completion_tokens']} tokens; "
              f"{'arguments valid against the parameters' if valid else 'arguments NOT valid'}, "
              "the right answer is 'odd': the model was never trained on calls, so the form and the schema are "
              "held and the choice within them is the model's own)\n")
    burst = os.path.join(out, "serve-burst.txt")
    if os.path.exists(burst):
        rows = [l.split() for l in open(burst) if l.strip()]
        ok = sorted(float(t) for code, t in rows if code == "200")
        if ok:
            q = lambda f: ok[min(len(ok) - 1, int(f * len(ok)))] * 1000
            print(f"A burst of {len(rows)} completion requests at once (16 tokens each, {len(ok)} answered 200), "
                  f"latency per request: median {q(0.5):.0f} ms, P90 {q(0.9):.0f} ms, max {ok[-1] * 1000:.0f} ms; "
                  f"{16 * len(ok) / ok[-1]:.0f} generated tokens/s in all.\n")
    m = os.path.join(out, "serve-metrics.txt")
    if os.path.exists(m):
        vals = {}
        for l in open(m):
            if not l.startswith("#") and l.strip():
                k, v = l.rsplit(" ", 1)
                vals[k] = float(v)
        for name in ("time_to_first_token_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds"):
            n = vals.get(f"dsk:{name}_count", 0)
            if n:
                print(f"- `dsk:{name}`: mean {1000 * vals[f'dsk:{name}_sum'] / n:.1f} ms over {n:.0f}")
        drafted = vals.get("dsk:spec_decode_num_draft_tokens_total", 0)
        taken = vals.get("dsk:spec_decode_num_accepted_tokens_total", 0)
        print(f"- speculative decoding (`--speculate 7`, prompt lookup): {drafted:.0f} draft tokens fed, "
              f"{taken:.0f} taken ({100 * taken / drafted if drafted else 0:.0f}%), each a step saved")
        jumped = vals.get("dsk:jump_forward_tokens_total", 0)
        print(f"- jump-forward decoding: {jumped:.0f} tokens of the JSON answer and the call taken undrawn, "
              "where the grammar allowed one byte only (fed several a step, as drafts are)")
        print()

