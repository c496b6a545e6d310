#!/usr/bin/env python3
"""A multiple-choice task from held-out fortunes, for `dsk-eval mc`.

Each item: the first line of a test-split fortune as the context, and four
choices for what follows: its own remaining lines and the remaining lines
of three other test fortunes.  A model that has learned anything about how
fortunes continue scores above the 25% of chance.

usage: cloze.py DOCS.jsonl N > TASK.jsonl
"""
import json
import random
import sys


def main():
    docs, n = sys.argv[1], int(sys.argv[2])
    pairs = []
    with open(docs, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d.get("split") != "test":
                continue
            head, sep, rest = d["text"].partition("\n")
            rest = rest.strip()
            if sep and 8 <= len(head) and 8 <= len(rest) <= 300:
                pairs.append((head, rest))
    rng = random.Random(1)
    rng.shuffle(pairs)
    pairs = pairs[:n]
    if len(pairs) < 4:
        sys.exit("cloze.py: fewer than 4 usable test fortunes")
    for i, (head, rest) in enumerate(pairs):
        others = [p[1] for j, p in enumerate(pairs) if j != i]
        choices = rng.sample(others, 3) + [rest]
        rng.shuffle(choices)
        item = {"context": head + "\n", "choices": choices, "gold": choices.index(rest)}
        print(json.dumps(item, ensure_ascii=False))


if __name__ == "__main__":
    main()
