# 1.3b: the suggested starting point (1.35B parameters with a 32K vocabulary):
# 8 GPUs on one node, ZeRO-1 (AdamW's moments sharded; the fp32 weights
# and gradients, 5 GiB each, fit on every GPU).
#   make -f 1.3b.mk plan ; make -f 1.3b.mk -j 32 data
#   sbatch --nodes=1 --ntasks-per-node=8 --gpus-per-node=8 slurm/stage.sbatch 1.3b.mk pretrain
NAME         = 1.3b
PRESET       = 1.3b
VOCAB        = 32768
SEQ          = 2048
TOKENS       = 26G           # about 20 per parameter
GPUS         = 8
MICRO_BATCH  = 16            # 2 rows per GPU (about 24 GiB each: `make plan`)
ACCUM        = 32            # 512 rows x 2048 = 1M tokens a step, 26624 steps
ZERO         = 1
LR           = 3e-4
MIN_LR       = 3e-5
WARMUP       = 2000
ADAPT_TOKENS = 2600M
ADAPT_LR     = 1.5e-4
SFT_BATCH    = 64
SFT_EPOCHS   = 3
SFT_LR       = 2e-5
DPO_LR       = 1e-6
include $(dir $(lastword $(MAKEFILE_LIST)))recipe.mk
