#!/usr/bin/env python3
"""datatrove's filters over a JSONL file, in one process, in the order and
with the settings dsk-clean uses by default (FineWeb's: Gopher repetition,
Gopher quality, C4 without the terminal-punctuation rule, FineWeb quality).
Prints documents kept and seconds; writes the kept ids, one per line, to
the file named by the second argument."""
import json
import sys
import time

from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)

filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
           FineWebQualityFilter()]
docs = [Document(text=json.loads(line)["text"], id=str(i)) for i, line in enumerate(open(sys.argv[1]))]
t0 = time.perf_counter()
kept = []
for doc in docs:
    ok = True
    for f in filters:
        r = f.filter(doc)
        if r is not True and (r is False or not r[0]):
            ok = False
            break
    if ok:
        kept.append(doc.id)
seconds = time.perf_counter() - t0
with open(sys.argv[2], "w") as f:
    f.write("".join(f"{i}\n" for i in kept))
print(len(kept), seconds)
