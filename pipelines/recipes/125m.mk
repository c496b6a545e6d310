# 125m: the smallest GPU recipe (110M parameters with a 32K vocabulary),
# a first run on one GPU to check the whole pipeline end to end.
#   make -f 125m.mk plan ; make -f 125m.mk -j 16 data ; make -f 125m.mk LAUNCH= all
NAME         = 125m
PRESET       = 125m
VOCAB        = 32768
SEQ          = 2048
TOKENS       = 2500M         # about 20 per parameter (Chinchilla)
GPUS         = 1
MICRO_BATCH  = 8             # rows per micro-batch, all ranks (about 12 GiB: `make plan`)
ACCUM        = 32            # 256 rows x 2048 = 0.5M tokens a step, 5000 steps
ZERO         = 0             # one GPU: nothing to shard
LR           = 6e-4
MIN_LR       = 6e-5
WARMUP       = 200
ADAPT_TOKENS = 250M          # stage 2: 10% of pretraining, domain + replay shards
ADAPT_LR     = 3e-4
SFT_BATCH    = 32
SFT_EPOCHS   = 3
SFT_LR       = 5e-5
DPO_LR       = 5e-6
include $(dir $(lastword $(MAKEFILE_LIST)))recipe.mk
