#!/usr/bin/env python3
"""Builds the English benchmark corpus: JSON Lines of web-page-sized
documents (25 fortunes each, ~5 KB) drawn with a fixed seed from the
Debian fortunes package, up to the requested size in MB."""
import glob
import json
import os
import random
import sys

size_mb = float(sys.argv[1])
out = sys.argv[2]
root = "/usr/share/games/fortunes"
texts = []
for path in sorted(glob.glob(root + "/*")):
    name = os.path.basename(path)
    if "." in name or os.path.islink(path) or name in ("chinese", "tang300", "song100"):
        continue
    data = open(path, encoding="utf-8", errors="replace").read()
    texts += [t.strip() for t in data.split("\n%\n") if t.strip()]
if not texts:
    sys.exit("no fortunes found: install the Debian package 'fortunes'")
rng = random.Random(1)
limit = int(size_mb * 1e6)
with open(out, "w") as f:
    size = i = 0
    while size < limit:
        line = json.dumps({"id": i, "text": "\n\n".join(rng.sample(texts, 25))}) + "\n"
        f.write(line)
        size += len(line)
        i += 1
