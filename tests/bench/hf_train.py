#!/usr/bin/env python3
"""Hugging Face BpeTrainer with dsk-bpe's settings: cl100k's pre-tokenizer
regex, byte-level, min frequency 2, the five dsk special tokens.
  hf_train.py TEXT VOCAB_SIZE OUT.json   (paragraphs are documents)"""
import sys

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

CL100K = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(CL100K), behavior="isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
trainer = trainers.BpeTrainer(vocab_size=int(sys.argv[2]), min_frequency=2, show_progress=False,
                              special_tokens=["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
tok.train_from_iterator((p for p in text.split("\n\n") if p.strip()), trainer)
tok.save(sys.argv[3])
