# 7b: 6.7B parameters with a 32K vocabulary, 64 GPUs (8 nodes of 8), ZeRO-3
# (weights, gradients and AdamW state sharded: fp32 training state alone is
# 16 bytes a parameter, 108 GB, more than one GPU holds).  Rows of 4096
# tokens, one per GPU, with --recompute: about 4 GiB of activations a GPU
# instead of 33 (`make plan`).
#   make -f 7b.mk plan ; make -f 7b.mk RAW=... WORK/tokenizer.json   (one node: the tokenizer first)
#   sbatch --array=0-255%64 slurm/prep.sbatch 7b.mk
#   sbatch --nodes=8 --ntasks-per-node=8 --gpus-per-node=8 slurm/stage.sbatch 7b.mk pretrain
NAME         = 7b
PRESET       = 7b
VOCAB        = 32768
SEQ          = 4096
RECOMPUTE    = --recompute
TOKENS       = 140G          # about 20 per parameter
GPUS         = 64
MICRO_BATCH  = 64            # 1 row per GPU (`make plan` for the memory)
ACCUM        = 8             # 512 rows x 4096 = 2M tokens a step, 71680 steps
ZERO         = 3
LR           = 3e-4
MIN_LR       = 3e-5
WARMUP       = 2000
ADAPT_TOKENS = 14G
ADAPT_LR     = 1e-4
SFT_BATCH    = 128
SFT_EPOCHS   = 2
SFT_LR       = 1e-5
DPO_LR       = 5e-7
include $(dir $(lastword $(MAKEFILE_LIST)))recipe.mk
