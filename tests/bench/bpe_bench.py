#!/usr/bin/env python3
"""dsk-bpe against tiktoken (encoding) and Hugging Face tokenizers
(training), on the same machine and text.  Prints table rows and writes
JSON.  Usage: bpe_bench.py BIN OUTDIR CORPUS.jsonl SHARED_TOKENIZERS_DIR"""
import json
import os
import resource
import subprocess
import sys
import time

BIN, OUT, CORPUS, SHARED = sys.argv[1:5]
rows, results = [], {}


def run(cmd, **kw):
    """Runs cmd; returns (seconds, peak RSS in MB of the child)."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    secs = time.perf_counter() - t
    return secs, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def median_run(cmd, out_path, n=3):
    """Median seconds of n runs, stdout to out_path (rewritten each run)."""
    times = []
    for _ in range(n):
        with open(out_path, "w") as f:
            times.append(run(cmd, stdout=f)[0])
    return sorted(times)[n // 2]


# ---- encoding: dsk-bpe vs tiktoken, same text, one thread ----------------------------
texts = [json.loads(line)["text"] for line in open(CORPUS)]
nbytes = sum(len(t.encode()) for t in texts)
if os.path.isdir(SHARED):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    for name, pat in (("cl100k_base", "cl100k"), ("o200k_base", "o200k")):
        meta = json.load(open(f"{SHARED}/{name}.json"))
        tok_json = f"{OUT}/{name}.json"
        if not os.path.exists(tok_json):
            specials = [f"--special={k}={v}" for k, v in meta["special_tokens"].items()]
            subprocess.run([f"{BIN}/dsk-bpe", "import", "--tiktoken", f"{SHARED}/{name}.tiktoken", "--pattern", pat,
                            *specials, "-o", tok_json], check=True)
        ids_path = f"{OUT}/{name}.dsk.ids"
        dsk_secs = median_run([f"{BIN}/dsk-bpe", "encode", "-j1", "-t", tok_json, "--ids", CORPUS], ids_path)
        cores = os.cpu_count() or 1
        dsk_mt = median_run([f"{BIN}/dsk-bpe", "encode", f"-j{cores}", "-t", tok_json, "--ids", CORPUS],
                            ids_path + ".mt")
        same_mt = open(ids_path).read() == open(ids_path + ".mt").read()
        enc = tiktoken.Encoding(name, pat_str=meta["pat_str"],
                                mergeable_ranks=load_tiktoken_bpe(f"{SHARED}/{name}.tiktoken"),
                                special_tokens=meta["special_tokens"])
        tt = []
        for _ in range(3):
            t = time.perf_counter()
            ids = [enc.encode_ordinary(x) for x in texts]
            tt.append(time.perf_counter() - t)
        tt_secs = sorted(tt)[1]
        same = open(ids_path).read() == "".join(" ".join(map(str, i)) + "\n" for i in ids)
        rows.append((f"encode {name}: tiktoken (1 thread, encode only)", tt_secs, nbytes / tt_secs / 1e6, "", "1x"))
        rows.append((f"encode {name}: dsk-bpe encode -j1 --ids (whole run)", dsk_secs, nbytes / dsk_secs / 1e6,
                     "identical ids" if same else "IDS DIFFER", f"{tt_secs / dsk_secs:.2f}x"))
        rows.append((f"encode {name}: dsk-bpe encode -j{cores} --ids (whole run)", dsk_mt, nbytes / dsk_mt / 1e6,
                     "identical ids" if same and same_mt else "IDS DIFFER", f"{tt_secs / dsk_mt:.2f}x"))
        results[f"encode_{name}"] = {"tiktoken_s": tt_secs, "dsk_j1_s": dsk_secs, f"dsk_j{cores}_s": dsk_mt,
                                     "text_bytes": nbytes, "identical": same and same_mt}
else:
    rows.append(("encode: skipped, no shared tokenizers at " + SHARED, 0, 0, "", ""))

# ---- training: dsk-bpe vs HF BpeTrainer, 32K vocab on dict-gcide ------------------------
gcide = f"{OUT}/gcide.txt"
if not os.path.exists(gcide):
    subprocess.run(f"zcat /usr/share/dictd/gcide.dict.dz > {gcide}", shell=True, check=True)
paras = [p for p in open(gcide, encoding="utf-8", errors="replace").read().split("\n\n") if p.strip()]
cut = len(paras) * 9 // 10
with open(f"{OUT}/gcide-train.txt", "w") as f:
    f.write("\n\n".join(paras[:cut]) + "\n")
with open(f"{OUT}/gcide-heldout.jsonl", "w") as f:
    for p in paras[cut:]:
        f.write(json.dumps({"text": p}) + "\n")
held = [p for p in paras[cut:]]
held_bytes = sum(len(p.encode()) for p in held)
pat = json.load(open(f"{SHARED}/cl100k_base.json"))["pat_str"] if os.path.isdir(SHARED) else None

def timed(cmd):
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], check=True, capture_output=True, text=True)
    secs, kb = r.stderr.strip().splitlines()[-1].split()
    return float(secs), int(kb) / 1024

dsk_secs, dsk_mb = timed([f"{BIN}/dsk-bpe", "train", "--records", "paragraphs", "--vocab-size", "32768", "-o",
                          f"{OUT}/gcide-dsk.json", f"{OUT}/gcide-train.txt"])
hf_secs, hf_mb = timed([sys.executable, os.path.join(os.path.dirname(__file__), "hf_train.py"),
                        f"{OUT}/gcide-train.txt", "32768", f"{OUT}/gcide-hf.json"])
from tokenizers import Tokenizer
hf = Tokenizer.from_file(f"{OUT}/gcide-hf.json")
hf_tokens = sum(len(e.ids) for e in hf.encode_batch(held, add_special_tokens=False))
dsk_ids = subprocess.run([f"{BIN}/dsk-bpe", "encode", "-t", f"{OUT}/gcide-dsk.json", "--ids",
                          f"{OUT}/gcide-heldout.jsonl"], check=True, capture_output=True, text=True).stdout
dsk_tokens = len(dsk_ids.split())
rows.append(("train 32K on dict-gcide: HF tokenizers BpeTrainer", hf_secs, hf_mb,
             f"{held_bytes / hf_tokens:.3f} bytes/token held out", "1x"))
rows.append(("train 32K on dict-gcide: dsk-bpe train", dsk_secs, dsk_mb,
             f"{held_bytes / dsk_tokens:.3f} bytes/token held out",
             f"{hf_secs / dsk_secs:.2f}x faster, {dsk_mb / hf_mb:.2f}x memory"))
results["train_gcide_32k"] = {"hf_s": hf_secs, "hf_peak_mb": hf_mb, "dsk_s": dsk_secs, "dsk_peak_mb": dsk_mb,
                              "hf_bytes_per_token": held_bytes / hf_tokens,
                              "dsk_bytes_per_token": held_bytes / dsk_tokens}

print(f"{'dsk-bpe run':<56} {'seconds':>8} {'MB/s|MB':>9}  {'note':<32} ratio")
for name, secs, rate, note, ratio in rows:
    print(f"{name:<56} {secs:8.2f} {rate:9.2f}  {note:<32} {ratio}")
print("(encode: MB/s of text; train: peak memory in MB; HF trains with all cores, dsk-bpe with one)")
json.dump(results, open(f"{OUT}/bpe-results.json", "w"), indent=2)
