#!/usr/bin/env python3
"""Dictionary entries from dict-gcide (GNU's Collaborative International
Dictionary of English) as JSON Lines, the demo's second corpus for domain
adaptation.

    gcide.py DICT.dz MAX_BYTES > gcide.jsonl

An entry starts at an unindented line after a blank line and runs to the
next one (its numbered senses may have blank lines between them).  Every
k-th entry is taken, k chosen so the output is about MAX_BYTES, so the
sample spans the alphabet rather than stopping at "Ab".  The dictd header
entries (00-database-*) and notices without a headword are skipped.
"""
import gzip
import json
import sys


def entries(path):
    cur = []
    prev_blank = True
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if prev_blank and line and not line[0].isspace() and cur:
                yield "\n".join(cur).strip()
                cur = []
            cur.append(line)
            prev_blank = not line.strip()
    if cur:
        yield "\n".join(cur).strip()


def main():
    path, max_bytes = sys.argv[1], int(sys.argv[2])
    # a headword line reads "Word \\Pron\\, pos.": that skips the header's notices
    all_entries = [e for e in entries(path) if "\\" in e.split("\n", 1)[0] and not e.startswith("00")]
    total = sum(len(e.encode()) for e in all_entries)
    k = max(1, total // max_bytes)
    out = 0
    for e in all_entries[::k]:
        sys.stdout.write(json.dumps({"text": e}, ensure_ascii=False) + "\n")
        out += len(e.encode())
        if out >= max_bytes:
            break


if __name__ == "__main__":
    main()
