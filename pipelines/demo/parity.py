#!/usr/bin/env python3
"""The post-training demo's synthetic task: "Is N even or odd?" for N in
0..999, split 800 train / 200 held out.  Writes, into the directory given:
sft.jsonl (chat records, held-out ones in the val split), pref.jsonl
(preference pairs: the right answer chosen, the wrong one rejected) and
heldout.jsonl (dsk-eval gen items for the held-out numbers)."""
import json
import os
import random
import sys

out = sys.argv[1]
random.seed(2)
nums = list(range(1000))
random.shuffle(nums)
train, held = nums[:800], set(nums[800:])
parity = lambda n: "even" if n % 2 == 0 else "odd"
question = lambda n: f"Is {n} even or odd?"
with open(os.path.join(out, "sft.jsonl"), "w") as f:
    for n in nums:
        f.write(json.dumps({"messages": [{"role": "user", "content": question(n)},
                                         {"role": "assistant", "content": parity(n)}],
                            "split": "val" if n in held else "train"}) + "\n")
with open(os.path.join(out, "pref.jsonl"), "w") as f:
    for n in nums:
        f.write(json.dumps({"prompt": question(n), "chosen": parity(n), "rejected": parity(n + 1),
                            "split": "val" if n in held else "train"}) + "\n")
with open(os.path.join(out, "heldout.jsonl"), "w") as f:
    for n in nums:
        if n in held:
            f.write(json.dumps({"prompt": question(n), "answer": parity(n)}) + "\n")
