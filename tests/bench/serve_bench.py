#!/usr/bin/env python3
"""dsk-serve under load, and llama.cpp's batch-1 decode on the same model.

    serve_bench.py URL [--gguf MODEL.gguf --llama-python] [--json OUT]

Against a running dsk-serve at URL (completions endpoint, sampled text,
ignore_eos so every answer has its full length):
  - batch-1 decode: one whole (not streamed) request at a time, tokens/s
    of generation over the request's wall time, median of 3 runs;
  - 32 concurrent streams: aggregate generated tokens/s (median of 3
    bursts after one to warm up), its ratio to batch-1, and the time to
    first token (median, P99 over the three);
  - short requests (1 token), 32 at a time (curl): requests per second.
With --gguf, llama.cpp (llama-cpp-python in this process, same threads,
no HTTP) decodes the same number of tokens batch-1 on that file, for the
comparison; its end-of-text token is biased away, as ignore_eos does.
Structured output: batch-1 decode under a JSON schema (response_format
json_schema; llama.cpp: the grammar llama-cpp-python makes of the same
schema), tokens/s, and each one's cost against its own free text.
Speculative decoding (--spec-url: a second dsk-serve, with --speculate):
batch-1 greedy decode of free text and of quotes (a text from --quotes,
then its first half again: the answer may go on quoting), with drafts
and without, against llama.cpp with and without llama-cpp-python's
prompt lookup (LlamaPromptLookupDecoding, the same draft length and
n-gram); and sampled free text with drafts, against it without.
"""
import argparse
import json
import statistics
import subprocess
import threading
import time
import urllib.request

MAX_TOKENS = 48
# A record with a free string, so answers run to max_tokens on both sides.
SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array",
          "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}, "text": {"type": "string"}},
          "required": ["id", "text"], "additionalProperties": False}
# A record of choices only: most of its bytes are forced (keys, the rest
# of an enum value once it is told apart), which jump-forward decoding
# takes whole; time per answer, not tokens/s, since the two sides write
# it in different tokens (llama.cpp's grammar also allows whitespace).
RECORD = {"type": "object", "properties": {
    "parity": {"enum": ["even", "odd"]}, "prime": {"type": "boolean"},
    "size": {"enum": ["small", "medium", "large"]}, "colour": {"enum": ["red", "green", "blue"]},
    "kind": {"enum": ["integer", "fraction"]}},
    "required": ["parity", "prime", "size", "colour", "kind"], "additionalProperties": False}
RECORD_TOKENS = 160


def stream(url, prompt, max_tokens, seed):
    body = json.dumps({"model": "m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 1.0,
                       "seed": seed, "stream": True, "stream_options": {"include_usage": True},
                       "ignore_eos": True}).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    first, tokens = None, 0
    with urllib.request.urlopen(req, timeout=600) as r:
        buf = b""
        for chunk in iter(lambda: r.read1(65536), b""):
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                    continue
                j = json.loads(ev[6:])
                if j.get("choices") and first is None:
                    first = time.monotonic() - t0
                if j.get("usage"):
                    tokens = j["usage"]["completion_tokens"]
    return first if first is not None else time.monotonic() - t0, tokens, time.monotonic() - t0


def whole(url, prompt, max_tokens, seed, schema=None, temperature=1.0):
    b = {"model": "m", "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    if schema:
        b["response_format"] = {"type": "json_schema", "json_schema": {"name": "record", "schema": schema}}
    else:
        b["ignore_eos"] = True
    body = json.dumps(b).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=600) as r:
        tokens = json.loads(r.read())["usage"]["completion_tokens"]
    return tokens, time.monotonic() - t0


def concurrent(url, n, max_tokens):
    out, lock = [], threading.Lock()

    def one(i):
        r = stream(url, f"the {i} ", max_tokens, i)
        with lock:
            out.append(r)
    t0 = time.monotonic()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return out, time.monotonic() - t0


def short_qps(url, n, parallel):
    body = json.dumps({"model": "m", "prompt": "the 1 ", "max_tokens": 1, "temperature": 1.0})
    cmd = ["curl", "-s", "--no-progress-meter", "-Z", "--parallel-max", str(parallel), "-H", "Content-Type: application/json",
           "--data", body, "-w", "%{http_code}\\n"] + ["-o", "/dev/null", url + "/v1/completions"] * n
    t0 = time.monotonic()
    codes = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
    secs = time.monotonic() - t0
    if codes.count("200") != n:
        raise SystemExit(f"short requests: {n - codes.count('200')} of {n} failed: {sorted(set(codes))[:5]}")
    return n / secs


def batch1_rate(one):
    """Tokens/s of one(i) -> (tokens, seconds) for i in 0..4, median of 3 runs."""
    runs = []
    for rep in range(3):
        tok = secs = 0
        for i in range(5):
            t, s = one(i)
            tok, secs = tok + t, secs + s
        runs.append(tok / secs)
    return statistics.median(runs)


def answer_ms(one, n=10):
    """Milliseconds per answer of one(i) -> (tokens, seconds) for i in
    0..n-1, median of 3 runs; and the tokens an answer took, on average."""
    runs, tokens = [], 0
    for rep in range(3):
        secs = 0
        for i in range(n):
            t, s = one(i)
            secs, tokens = secs + s, tokens + t
        runs.append(1000 * secs / n)
    return statistics.median(runs), tokens / (3 * n)


def quotes(path, n=5, most=200):
    """n quote prompts: a text of at most `most` characters, a blank line,
    then its first half."""
    texts = [t.strip() for t in open(path, encoding="utf-8").read().split("\n\n")]
    texts = [t for t in texts if 60 <= len(t) <= most][:n]
    return [t + "\n\n" + t[: len(t) // 2] for t in texts]


def spec_metrics(url):
    text = urllib.request.urlopen(url + "/metrics", timeout=60).read().decode()
    return {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l.startswith("dsk:spec_decode")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--spec-url")
    ap.add_argument("--quotes")
    ap.add_argument("--spec-tokens", type=int, default=8)
    ap.add_argument("--spec-ngram", type=int, default=3)
    a = ap.parse_args()
    res = {}
    # batch-1: whole answers one at a time (the client parses no per-token
    # events); the wall time includes the prompt and HTTP
    res["batch1_tokens_per_s"] = batch1_rate(lambda i: whole(a.url, f"the {i} ", MAX_TOKENS, 100 + i))
    res["json_batch1_tokens_per_s"] = batch1_rate(lambda i: whole(a.url, f"the {i} ", MAX_TOKENS, 100 + i, SCHEMA))
    # 32 concurrent streams: a burst to warm up (the first touches the
    # slots' caches and starts the connection threads), then the median
    # of 3 bursts, as batch-1 is the median of 3 runs; one burst lasts
    # about half a second, and this VM's speed drifts more than that
    concurrent(a.url, 32, MAX_TOKENS)
    bursts = [concurrent(a.url, 32, MAX_TOKENS) for _ in range(3)]
    ttft = sorted(r[0] for out, _ in bursts for r in out)
    res["streams32_tokens_per_s"] = statistics.median(sum(r[1] for r in out) / wall for out, wall in bursts)
    res["streams32_ratio"] = res["streams32_tokens_per_s"] / res["batch1_tokens_per_s"]
    res["ttft_median_ms"] = 1000 * statistics.median(ttft)
    res["ttft_p99_ms"] = 1000 * ttft[min(len(ttft) - 1, int(0.99 * len(ttft)))]
    # short requests (1 token): 512 from 32 connections at a time, sent by
    # curl (a Python client tops out first on 2 cores), median of 3 runs
    res["short_qps"] = statistics.median(short_qps(a.url, 512, 32) for _ in range(3))
    if a.spec_url:
        qs = quotes(a.quotes)
        greedy = dict(temperature=0.0)
        res["greedy_tokens_per_s"] = batch1_rate(lambda i: whole(a.url, f"the {i} ", MAX_TOKENS, 1, **greedy))
        res["quote_tokens_per_s"] = batch1_rate(lambda i: whole(a.url, qs[i], MAX_TOKENS, 1, **greedy))
        m0 = spec_metrics(a.spec_url)
        res["spec_greedy_tokens_per_s"] = batch1_rate(lambda i: whole(a.spec_url, f"the {i} ", MAX_TOKENS, 1, **greedy))
        res["spec_quote_tokens_per_s"] = batch1_rate(lambda i: whole(a.spec_url, qs[i], MAX_TOKENS, 1, **greedy))
        res["spec_sampled_tokens_per_s"] = batch1_rate(lambda i: whole(a.spec_url, f"the {i} ", MAX_TOKENS, 100 + i))
        m1 = spec_metrics(a.spec_url)
        drafted = m1["dsk:spec_decode_num_draft_tokens_total"] - m0["dsk:spec_decode_num_draft_tokens_total"]
        taken = m1["dsk:spec_decode_num_accepted_tokens_total"] - m0["dsk:spec_decode_num_accepted_tokens_total"]
        res["spec_accept_rate"] = taken / drafted if drafted else 0.0
        res["record_ms"], res["record_tokens"] = answer_ms(
            lambda i: whole(a.spec_url, f"the {i} ", RECORD_TOKENS, 100 + i, RECORD))
    if a.gguf:
        from llama_cpp import Llama
        llm = Llama(model_path=a.gguf, n_ctx=256, n_threads=a.threads, verbose=False, seed=1)
        no_eos = {llm.token_eos(): -1e9}   # the same fixed length as ignore_eos
        llm.create_completion("warm up", max_tokens=8)

        def llama(i, **kw):
            t0 = time.monotonic()
            r = llm.create_completion(f"the {i} ", max_tokens=MAX_TOKENS, temperature=1.0, seed=100 + i, **kw)
            return r["usage"]["completion_tokens"], time.monotonic() - t0
        res["llamacpp_batch1_tokens_per_s"] = batch1_rate(lambda i: llama(i, logit_bias=no_eos))
        from llama_cpp import LlamaGrammar
        grammar = LlamaGrammar.from_json_schema(json.dumps(SCHEMA), verbose=False)
        res["llamacpp_json_batch1_tokens_per_s"] = batch1_rate(lambda i: llama(i, grammar=grammar))
        record = LlamaGrammar.from_json_schema(json.dumps(RECORD), verbose=False)

        def llama_record(i):
            t0 = time.monotonic()
            r = llm.create_completion(f"the {i} ", max_tokens=RECORD_TOKENS, temperature=1.0, seed=100 + i,
                                      grammar=record)
            return r["usage"]["completion_tokens"], time.monotonic() - t0
        res["llamacpp_record_ms"], res["llamacpp_record_tokens"] = answer_ms(llama_record)
        if a.spec_url:
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
            draft = LlamaPromptLookupDecoding(max_ngram_size=a.spec_ngram, num_pred_tokens=a.spec_tokens)
            llm_spec = Llama(model_path=a.gguf, n_ctx=256, n_threads=a.threads, verbose=False, seed=1,
                             draft_model=draft)
            llm_spec.create_completion("warm up", max_tokens=8)

            def llama_greedy(model, prompt):
                t0 = time.monotonic()
                r = model.create_completion(prompt, max_tokens=MAX_TOKENS, temperature=0.0, logit_bias=no_eos)
                return r["usage"]["completion_tokens"], time.monotonic() - t0
            for name, model in (("llamacpp", llm), ("llamacpp_spec", llm_spec)):
                res[name + "_greedy_tokens_per_s"] = batch1_rate(lambda i: llama_greedy(model, f"the {i} "))
                res[name + "_quote_tokens_per_s"] = batch1_rate(lambda i: llama_greedy(model, qs[i]))
    print(f"dsk-serve batch-1 decode: {res['batch1_tokens_per_s']:.1f} tokens/s"
          + (f"   llama.cpp (same GGUF model, Q4_K_M, {a.threads} threads): "
             f"{res['llamacpp_batch1_tokens_per_s']:.1f} tokens/s  ratio "
             f"{res['batch1_tokens_per_s'] / res['llamacpp_batch1_tokens_per_s']:.2f}x" if a.gguf else ""))
    print(f"batch-1 decode under a JSON schema: {res['json_batch1_tokens_per_s']:.1f} tokens/s "
          f"({res['json_batch1_tokens_per_s'] / res['batch1_tokens_per_s']:.2f}x its free text)"
          + (f"   llama.cpp with the schema's grammar: {res['llamacpp_json_batch1_tokens_per_s']:.1f} tokens/s "
             f"({res['llamacpp_json_batch1_tokens_per_s'] / res['llamacpp_batch1_tokens_per_s']:.2f}x its free text)"
             f"  ratio {res['json_batch1_tokens_per_s'] / res['llamacpp_json_batch1_tokens_per_s']:.2f}x"
             if a.gguf else ""))
    print(f"32 concurrent streams: {res['streams32_tokens_per_s']:.1f} tokens/s aggregate = "
          f"{res['streams32_ratio']:.2f}x batch-1 (target >= 3x); time to first token median "
          f"{res['ttft_median_ms']:.0f} ms, P99 {res['ttft_p99_ms']:.0f} ms (target < 500 ms)")
    print(f"short requests (1 token), 32 at a time: {res['short_qps']:.1f} requests/s (the seed's target: 500)")
    if a.spec_url:
        for kind, what in (("greedy", "greedy free text"), ("quote", "greedy quotes")):
            on, off = res[f"spec_{kind}_tokens_per_s"], res[f"{kind}_tokens_per_s"]
            line = f"speculative decoding, {what}: {on:.1f} tokens/s with drafts, {off:.1f} without ({on / off:.2f}x)"
            if a.gguf:
                lon, loff = res[f"llamacpp_spec_{kind}_tokens_per_s"], res[f"llamacpp_{kind}_tokens_per_s"]
                line += (f"   llama.cpp with prompt lookup {lon:.1f}, without {loff:.1f} ({lon / loff:.2f}x)"
                         f"  ratio {on / lon:.2f}x")
            print(line)
        print(f"speculative decoding, sampled free text: {res['spec_sampled_tokens_per_s']:.1f} tokens/s with drafts "
              f"({res['spec_sampled_tokens_per_s'] / res['batch1_tokens_per_s']:.2f}x without); "
              f"{100 * res['spec_accept_rate']:.0f}% of draft tokens taken over the three")
    if "record_ms" in res:
        print(f"a record of five choices (JSON schema, --json-compact): {res['record_ms']:.1f} ms an answer, "
              f"{res['record_tokens']:.1f} tokens"
              + (f"   llama.cpp with the schema's grammar: {res['llamacpp_record_ms']:.1f} ms, "
                 f"{res['llamacpp_record_tokens']:.1f} tokens  ratio {res['llamacpp_record_ms'] / res['record_ms']:.2f}x"
                 if "llamacpp_record_ms" in res else ""))
    if a.json:
        json.dump(res, open(a.json, "w"))


if __name__ == "__main__":
    main()
