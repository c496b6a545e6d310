#!/usr/bin/env python3
"""A naive BPE trainer, the reference for dsk-bpe train: the same rules
(most frequent pair; ties to the smaller left id, then the smaller right
id; ids 256.. in merge order), written the slow, obvious way.
  bpe_reference.py PATTERN VOCAB_SIZE N_SPECIALS < lines > merges
Prints each merged token's bytes in hex, one per line, in id order."""
import collections
import re
import sys

pattern, vocab_size, n_special = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
words = collections.Counter()
for line in sys.stdin.buffer.read().decode("utf-8").split("\n"):
    if line.strip():
        for piece in re.findall(pattern, line):
            words[tuple(piece.encode("utf-8"))] += 1
token_bytes = {i: bytes([i]) for i in range(256)}
next_id = 256
words = {w: c for w, c in words.items()}
while next_id < vocab_size - n_special:
    pairs = collections.Counter()
    for w, c in words.items():
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += c
    if not pairs:
        break
    (a, b), count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    if count < 2:
        break
    token_bytes[next_id] = token_bytes[a] + token_bytes[b]
    merged = {}
    for w, c in words.items():
        out, i = [], 0
        while i < len(w):
            if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                out.append(next_id)
                i += 2
            else:
                out.append(w[i])
                i += 1
        merged[tuple(out)] = merged.get(tuple(out), 0) + c
    words = merged
    print(token_bytes[next_id].hex())
    next_id += 1
