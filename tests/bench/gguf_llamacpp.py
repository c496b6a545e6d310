#!/usr/bin/env python3
"""llama.cpp's view of a GGUF file dsk exported: per-token log-probabilities
and perplexity on a text, through llama-cpp-python (which the caller installs
into a venv: `python3 -m venv V && V/bin/pip install llama-cpp-python`).

    gguf_llamacpp.py MODEL.gguf TEXT [--ctx N] [--max-tokens N]
                     [--reference dsk.json] [--kl-ref REF.gguf] [--json OUT]

The text is tokenized by llama.cpp (no BOS: dsk adds none) and cut into
independent windows of --ctx tokens; in each window, every token after the
first is predicted from the ones before it.  That is how the dsk side should
score it too, so the two agree token for token.

--reference takes dsk's own numbers for the same text and windows, as JSON
{"ctx": N, "tokens": [ids], "nll": [per predicted token], "argmax": [ids]}
(optional "argmax").  Then llama.cpp is fed dsk's token ids (so tokenization
and the model are checked apart), and the report gives: whether llama.cpp's
own tokenization of the text equals dsk's (over as many tokens as the
reference has), both mean NLLs and perplexities,
their relative difference, the largest per-token NLL difference, and how
often the two pick the same next token.  Exit status 0 when it ran (the
caller judges the numbers), 1 on a mismatch in the inputs.

--kl-ref scores REF.gguf too, on the same windows, and adds the mean per-token
KL(REF || MODEL) in nats and how often the two pick the same next token: a
quantized model against the float one it was made from, as llama.cpp's own
llama-perplexity --kl-divergence does.
"""
import argparse
import json
import math
import sys

import numpy as np


def load_model(path, ctx, threads):
    try:
        from llama_cpp import Llama
    except ImportError:
        sys.exit("gguf_llamacpp.py: llama_cpp is not installed (pip install llama-cpp-python in a venv)")
    return Llama(model_path=path, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, logits_all=True, n_threads=threads,
                 verbose=False, seed=0)


def windows(tokens, ctx):
    for s in range(0, len(tokens) - 1, ctx):
        w = tokens[s:s + ctx]
        if len(w) < 2:
            break
        yield w


def window_logits(llm, w):
    """The logits of each predicted position of one window, as float64."""
    llm.reset()
    llm.eval(w)
    return np.asarray(llm.scores[:len(w) - 1], dtype=np.float64)


def log_softmax(logits):
    m = logits.max(axis=1, keepdims=True)
    return logits - (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))


def window_nll(llm, tokens, ctx, ref_llm=None):
    """Per predicted token: (nll, argmax, kl against ref_llm, ref's argmax), window by window."""
    nll, argmax, kl, ref_argmax = [], [], [], []
    for w in windows(tokens, ctx):
        lp = log_softmax(window_logits(llm, w))
        target = np.asarray(w[1:])
        nll.extend((-lp[np.arange(len(target)), target]).tolist())
        argmax.extend(lp.argmax(axis=1).tolist())
        if ref_llm is not None:
            rlp = log_softmax(window_logits(ref_llm, w))
            kl.extend(np.maximum((np.exp(rlp) * (rlp - lp)).sum(axis=1), 0).tolist())
            ref_argmax.extend(rlp.argmax(axis=1).tolist())
    return nll, argmax, kl, ref_argmax


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, default=None, help="window length (default: the reference's, else 256)")
    ap.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens")
    ap.add_argument("--reference", help="dsk's numbers for the same text (JSON, see above)")
    ap.add_argument("--kl-ref", help="a GGUF to measure MODEL's KL divergence from (see above)")
    ap.add_argument("--json", help="write the per-token numbers here")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    ref = None
    if a.reference:
        with open(a.reference) as f:
            ref = json.load(f)
    ctx = a.ctx or (ref["ctx"] if ref else 256)
    llm = load_model(a.model, ctx, a.threads)
    with open(a.text, "rb") as f:
        text = f.read()
    own = llm.tokenize(text, add_bos=False, special=False)
    tokens = ref["tokens"] if ref else own
    if a.max_tokens:
        tokens = tokens[:a.max_tokens]
        own = own[:a.max_tokens]
    report = {"model": a.model, "ctx": ctx, "tokens": len(tokens)}
    if ref:
        # the reference may cover only the start of the text: compare that much
        n = len(tokens)
        report["tokenization_identical"] = own[:n] == tokens
        report["tokenization_agree_prefix"] = next((i for i, (x, y) in enumerate(zip(own, tokens)) if x != y),
                                                   min(len(own), n))

    ref_llm = load_model(a.kl_ref, ctx, a.threads) if a.kl_ref else None
    nll, argmax, kl, ref_argmax = window_nll(llm, tokens, ctx, ref_llm)
    mean = sum(nll) / len(nll)
    report.update(predicted=len(nll), llamacpp_nll=mean, llamacpp_ppl=math.exp(mean))
    if ref_llm is not None:
        report.update(kl_ref=a.kl_ref, kl_mean=sum(kl) / len(kl),
                      kl_top1_agreement=sum(1 for x, y in zip(argmax, ref_argmax) if x == y) / len(kl))
    if ref:
        rn = ref["nll"][:len(nll)]
        if len(rn) != len(nll):
            print(json.dumps(report, indent=1))
            sys.exit(f"gguf_llamacpp.py: the reference scores {len(ref['nll'])} tokens, llama.cpp {len(nll)}: "
                     "different windows or token counts")
        rmean = sum(rn) / len(rn)
        diffs = [abs(x - y) for x, y in zip(nll, rn)]
        report.update(dsk_nll=rmean, dsk_ppl=math.exp(rmean),
                      ppl_rel_diff=math.exp(mean) / math.exp(rmean) - 1,
                      max_token_nll_diff=max(diffs), mean_token_nll_diff=sum(diffs) / len(diffs))
        if "argmax" in ref:
            ra = ref["argmax"][:len(argmax)]
            report["top1_agreement"] = sum(1 for x, y in zip(argmax, ra) if x == y) / len(ra)
    print(json.dumps(report, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"report": report, "tokens": tokens, "nll": nll, "argmax": argmax}, f)


if __name__ == "__main__":
    main()
