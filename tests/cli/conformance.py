#!/usr/bin/env python3
"""Reference ids for the conformance tests.
  conformance.py corpus OUT.jsonl            write the test corpus
  conformance.py tiktoken NAME DIR IN OUT    ids from tiktoken for each document
  conformance.py hf TOKENIZER.JSON IN OUT    ids from Hugging Face tokenizers
  conformance.py hf-specials TOKENIZER.JSON  the special tokens' ids in Hugging Face tokenizers"""
import json
import random
import sys


def corpus(out, root):
    rng = random.Random(20261128)
    docs = []
    # real text: this repository's prose and code
    import glob
    for path in sorted(glob.glob(root + "/README.md") + glob.glob(root + "/man/*/*") + glob.glob(root + "/lib/*/*.c")):
        text = open(path, encoding="utf-8").read()
        docs += [p for p in text.split("\n\n") if p.strip()][:40]
    pieces = ["a" * 3000, " " * 300 + "x", "\n" * 50, "1234567890" * 30, "\U0001F389\U0001F468\u200d\U0001F469\u200d\U0001F467",
              "e\u0301\u0302\u0303" * 20, "\uff21\uff11", "\t \t\n\r\n  ", "'s'S'll'LL'Ve", "日本語のテキスト、中文文本。한국어",
              "x" * 200 + "y" * 200, "\u00a0\u2003\u3000", "\u01c5\u01c8" * 10, "\ufb01", "\U0002D847\U0001D800", "<|endoftext|>"]
    for _ in range(400):
        s = "".join(rng.choice(pieces + [chr(rng.randint(32, 0x2FFF)) for _ in range(5)])
                    for _ in range(rng.randint(1, 8)))
        docs.append(s)
    for _ in range(300):
        s = "".join(chr(rng.choice([rng.randint(0, 127), rng.randint(128, 0xFFFF), rng.randint(0x10000, 0x10FFFF)]))
                    for _ in range(rng.randint(1, 60)))
        docs.append("".join(c for c in s if not 0xD800 <= ord(c) <= 0xDFFF))
    with open(out, "w") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")  # ASCII-escaped: surrogate pairs included


def texts(path):
    return [json.loads(line)["text"] for line in open(path)]


def write_ids(out, all_ids):
    with open(out, "w") as f:
        for ids in all_ids:
            f.write(" ".join(map(str, ids)) + "\n")


cmd = sys.argv[1]
if cmd == "corpus":
    corpus(sys.argv[2], sys.argv[3])
elif cmd == "tiktoken":
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    name, d = sys.argv[2], sys.argv[3]
    meta = json.load(open(f"{d}/{name}.json"))
    enc = tiktoken.Encoding(name, pat_str=meta["pat_str"], mergeable_ranks=load_tiktoken_bpe(f"{d}/{name}.tiktoken"),
                            special_tokens=meta["special_tokens"])
    write_ids(sys.argv[5], [enc.encode_ordinary(t) for t in texts(sys.argv[4])])
elif cmd == "hf":
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(sys.argv[2])
    tok.encode_special_tokens = True  # special-token text is ordinary text, as in encode_ordinary
    write_ids(sys.argv[4], [tok.encode(t, add_special_tokens=False).ids for t in texts(sys.argv[3])])
elif cmd == "hf-specials":  # each special token's id in HF tokenizers is the one the file gives it
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(sys.argv[2])
    want = {a["content"]: a["id"] for a in json.load(open(sys.argv[2]))["added_tokens"]}
    got = {k: tok.token_to_id(k) for k in want}
    sys.exit(0 if want and got == want else f"special token ids: want {want}, HF says {got}")
elif cmd == "specials":  # --special arguments from a shared NAME.json
    meta = json.load(open(sys.argv[2]))
    print(" ".join(f"--special={k}={v}" for k, v in meta["special_tokens"].items()))
