# The three-stage plan as make targets, for a model of any preset: data
# preparation, pretraining, domain adaptation, SFT then DPO, 4-bit
# quantization, evaluation, and the serving manifest.  125m.mk, 1.3b.mk and
# 7b.mk set the sizes and include this file:
#
#   make -f 1.3b.mk plan                      the numbers: tokens, steps, GPU-hours, memory per GPU
#   make -f 1.3b.mk -j 32 data                clean, tokenizer, encode, pack (one job per shard)
#   sbatch slurm/stage.sbatch 1.3b.mk pretrain   each training stage as one Slurm job (srun ranks)
#   make -f 1.3b.mk quant eval serve-manifest
#
# Inputs, on storage every node sees:
#   RAW/*.jsonl.zst      pretraining text, one shard per file ({"text": ...} lines)
#   DOMAIN/*.jsonl.zst   the domain corpus for stage 2 (continued pretraining)
#   SFT_DATA             chat JSONL ({"messages": [...]}), PREF_DATA preference JSONL
#                        ({"prompt": text or messages, "chosen", "rejected"}): see dsk-bpe(1)
#   EVAL_TASKS           multiple-choice task files for dsk-eval mc (see dsk-eval(1))
# Everything a stage writes goes under WORK; every target is a real file, so
# an interrupted run resumes where it stopped and a re-run does nothing.

BIN       ?= $(dir $(shell command -v dsk-train 2>/dev/null))
RAW       ?=
DOMAIN    ?=
SFT_DATA  ?=
PREF_DATA ?=
EVAL_TASKS ?=
# $(call need,VAR,what it is): stop with a message when VAR is unset (checked
# by the rules that read it, so `plan` needs none of them).
need = $(if $($(1)),,$(error set $(1) to $(2)))
WORK      ?= $(CURDIR)/work-$(NAME)
# How a training stage starts its ranks: srun inside an allocation
# (slurm/stage.sbatch), `mpirun -np 8` on one machine, or nothing for one.
LAUNCH    ?= srun --mpi=pmix --kill-on-bad-exit=1
BACKEND   ?= cuda
# Matrix products in bf16 (fp32 master weights and AdamW state); RECOMPUTE
# = --recompute keeps each layer's input only (dsk-train(1)).
DTYPE     ?= bf16
RECOMPUTE ?=
THREADS   ?= 8
RECIPE_DIR := $(dir $(lastword $(MAKEFILE_LIST)))

SHARDS   := $(if $(RAW),$(sort $(wildcard $(RAW)/*.jsonl.zst)))
CLEANED  := $(SHARDS:$(RAW)/%.jsonl.zst=$(WORK)/clean/%.jsonl)
ENCODED  := $(CLEANED:$(WORK)/clean/%.jsonl=$(WORK)/tok/%.dskt)
DSHARDS  := $(if $(DOMAIN),$(sort $(wildcard $(DOMAIN)/*.jsonl.zst)))
DCLEANED := $(DSHARDS:$(DOMAIN)/%.jsonl.zst=$(WORK)/domain-clean/%.jsonl)
DENCODED := $(DCLEANED:$(WORK)/domain-clean/%.jsonl=$(WORK)/domain-tok/%.dskt)

TRAIN = $(LAUNCH) $(BIN)dsk-train --device $(BACKEND) -j $(THREADS) --zero $(ZERO) --seq-len $(SEQ) \
        --dtype $(DTYPE) $(RECOMPUTE)

.PHONY: plan data pretrain adapt sft dpo quant eval serve-manifest all
# make -f NAME.mk print-WORK: a variable's value (slurm/prep.sbatch asks for WORK)
print-%:
	@echo '$($*)'
all: eval serve-manifest

# ---- the numbers -----------------------------------------------------------------
plan:
	@$(BIN)dsk-train --show-config $(PRESET) > $(WORK).config.json
	@echo "== $(NAME): pretraining"
	@python3 $(RECIPE_DIR)plan.py --config $(WORK).config.json --vocab $(VOCAB) --tokens $(TOKENS) \
	    --seq $(SEQ) --global-batch $$(($(MICRO_BATCH) * $(ACCUM))) --gpus $(GPUS) \
	    $(if $(TOKENS_PER_S_PER_GPU),--tokens-per-s-per-gpu $(TOKENS_PER_S_PER_GPU))
	@echo "== memory per GPU (fp32 weights, gradients and AdamW state; rows of $(strip $(SEQ)) per rank)"
	@$(BIN)dsk-train --memory-table $(PRESET) --set vocab=$(VOCAB) --seq-len $(SEQ) \
	    --batch $$(($(MICRO_BATCH) / $(GPUS)))
	@rm -f $(WORK).config.json

# ---- 1. data: clean, tokenizer, encode, pack (make -j N: one process per shard) ------------
# Exact and near-duplicate removal within each shard; for deduplication
# across shards on one machine, add --dedup-db $(WORK)/dedup.lmdb to
# CLEAN_OPTS (LMDB's lock file needs a local disk, not NFS).
CLEAN_OPTS ?= --dedup exact,minhash --split 998:1:1 -j 4 -q
$(WORK)/clean/%.jsonl: $(RAW)/%.jsonl.zst
	@mkdir -p $(dir $@)
	$(BIN)dsk-clean $(CLEAN_OPTS) --stats $@.stats.json -o $@ $<
$(WORK)/domain-clean/%.jsonl: $(DOMAIN)/%.jsonl.zst
	@mkdir -p $(dir $@)
	$(BIN)dsk-clean $(CLEAN_OPTS) --stats $@.stats.json -o $@ $<
# The tokenizer learns from the first TOKENIZER_SHARDS cleaned shards.
TOKENIZER_SHARDS ?= 8
$(WORK)/tokenizer.json: $(wordlist 1,$(TOKENIZER_SHARDS),$(CLEANED))
	$(call need,RAW,the directory of pretraining shards (*.jsonl.zst))
	$(BIN)dsk-bpe train --vocab-size $(VOCAB) -o $@ $^
$(WORK)/tok/%.dskt: $(WORK)/clean/%.jsonl $(WORK)/tokenizer.json
	@mkdir -p $(dir $@)
	$(BIN)dsk-bpe encode -t $(WORK)/tokenizer.json -o $@ $<
$(WORK)/domain-tok/%.dskt: $(WORK)/domain-clean/%.jsonl $(WORK)/tokenizer.json
	@mkdir -p $(dir $@)
	$(BIN)dsk-bpe encode -t $(WORK)/tokenizer.json -o $@ $<
$(WORK)/data/MANIFEST: $(ENCODED)
	$(call need,RAW,the directory of pretraining shards (*.jsonl.zst))
	$(BIN)dsk-pack --force -t $(WORK)/tokenizer.json -o $(WORK)/data --seq-len $(SEQ) --pack bestfit $^
	$(BIN)dsk-pack verify $(WORK)/data
# Stage 2's data: the domain corpus with REPLAY_SHARDS pretraining shards
# mixed in, so the model keeps what it knew.
REPLAY_SHARDS ?= 4
# (the encoded pretraining shards: this run's, or those a run with RAW made)
REPLAY := $(wordlist 1,$(REPLAY_SHARDS),$(or $(ENCODED),$(sort $(wildcard $(WORK)/tok/*.dskt))))
$(WORK)/domain-data/MANIFEST: $(DENCODED) $(REPLAY)
	$(call need,DOMAIN,the directory of domain shards (*.jsonl.zst))
	$(BIN)dsk-pack --force -t $(WORK)/tokenizer.json -o $(WORK)/domain-data --seq-len $(SEQ) --pack bestfit $^
$(WORK)/sft-data/MANIFEST: $(SFT_DATA) $(WORK)/tokenizer.json
	$(call need,SFT_DATA,the chat JSONL for SFT)
	$(BIN)dsk-bpe encode -t $(WORK)/tokenizer.json -o $(WORK)/sft.dskt $(SFT_DATA)
	$(BIN)dsk-pack --force -t $(WORK)/tokenizer.json -o $(WORK)/sft-data --seq-len $(SEQ) $(WORK)/sft.dskt
$(WORK)/pref-data/MANIFEST: $(PREF_DATA) $(WORK)/tokenizer.json
	$(call need,PREF_DATA,the preference JSONL for DPO)
	$(BIN)dsk-bpe encode -t $(WORK)/tokenizer.json -o $(WORK)/pref.dskt $(PREF_DATA)
	$(BIN)dsk-pack --force -t $(WORK)/tokenizer.json -o $(WORK)/pref-data --seq-len $(SEQ) $(WORK)/pref.dskt
data: $(WORK)/data/MANIFEST

# ---- 2. training stages (each resumes from its own latest checkpoint) -------------------
# --batch is the global micro-batch in rows (split over the ranks), times
# ACCUM micro-batches per step.  A stage interrupted (time limit, SIGTERM)
# saved a checkpoint: running the target again resumes it.
resume_or = $(if $(wildcard $(1)/latest),$(TRAIN) --resume --out $(1) --log $(1).jsonl,$(2))
$(WORK)/pretrain/DONE: $(WORK)/data/MANIFEST
	$(call resume_or,$(WORK)/pretrain,$(TRAIN) --config $(PRESET) --data $(WORK)/data --out $(WORK)/pretrain \
	    --batch $(MICRO_BATCH) --grad-accum $(ACCUM) --tokens $(TOKENS) --lr $(LR) --min-lr $(MIN_LR) \
	    --warmup $(WARMUP) --save-every 1000 --eval-every 1000 --log $(WORK)/pretrain.jsonl)
	touch $@
$(WORK)/adapt/DONE: $(WORK)/pretrain/DONE $(WORK)/domain-data/MANIFEST
	$(call resume_or,$(WORK)/adapt,$(TRAIN) --stage continue --init $(WORK)/pretrain --data $(WORK)/domain-data \
	    --out $(WORK)/adapt --batch $(MICRO_BATCH) --grad-accum $(ACCUM) --tokens $(ADAPT_TOKENS) \
	    --lr $(ADAPT_LR) --min-lr $(MIN_LR) --warmup 200 --save-every 1000 --eval-every 500 \
	    --log $(WORK)/adapt.jsonl)
	touch $@
$(WORK)/sft/DONE: $(WORK)/adapt/DONE $(WORK)/sft-data/MANIFEST
	$(call resume_or,$(WORK)/sft,$(TRAIN) --stage sft --init $(WORK)/adapt --data $(WORK)/sft-data \
	    --out $(WORK)/sft --batch $(SFT_BATCH) --epochs $(SFT_EPOCHS) --lr $(SFT_LR) --eval-every 200 \
	    --log $(WORK)/sft.jsonl)
	touch $@
$(WORK)/dpo/DONE: $(WORK)/sft/DONE $(WORK)/pref-data/MANIFEST
	$(call resume_or,$(WORK)/dpo,$(TRAIN) --stage dpo --init $(WORK)/sft --data $(WORK)/pref-data \
	    --out $(WORK)/dpo --batch $(SFT_BATCH) --epochs 1 --lr $(DPO_LR) --beta 0.1 --eval-every 100 \
	    --log $(WORK)/dpo.jsonl)
	touch $@
pretrain: $(WORK)/pretrain/DONE
adapt: $(WORK)/adapt/DONE
sft: $(WORK)/sft/DONE
dpo: $(WORK)/dpo/DONE

# ---- 3. quantize, evaluate, serve -----------------------------------------------------
QUANT_GROUP ?= 128
$(WORK)/dpo-gptq/config.json: $(WORK)/dpo/DONE
	$(BIN)dsk-quant -m gptq -g $(QUANT_GROUP) --act-order --calib $(WORK)/data --calib-rows 256 --eval $(WORK)/data \
	    --force $(WORK)/dpo -o $(WORK)/dpo-gptq
$(WORK)/eval.jsonl: $(WORK)/dpo-gptq/config.json
	rm -f $@.tmp
	for c in $(WORK)/pretrain $(WORK)/adapt $(WORK)/sft $(WORK)/dpo $(WORK)/dpo-gptq; do \
	    $(BIN)dsk-eval ppl $$c --data $(WORK)/data --split test --json --log $@.tmp > /dev/null || exit 1; \
	    $(BIN)dsk-eval ppl $$c --data $(WORK)/domain-data --split test --json --log $@.tmp > /dev/null || exit 1; \
	    for t in $(EVAL_TASKS); do $(BIN)dsk-eval mc $$c $$t --json --log $@.tmp > /dev/null || exit 1; done; \
	done
	$(if $(EVAL_TASKS),$(BIN)dsk-eval ab $(WORK)/dpo $(WORK)/dpo-gptq $(EVAL_TASKS) --log $@.tmp)
	mv $@.tmp $@
# The Kubernetes manifests with this model's path filled in (the image, the
# GPU limit and the memory, which the KV cache of --max-batch x --ctx adds to
# the weights', are for you to set: see ../k8s/README).
$(WORK)/k8s/dsk-serve.yaml: $(WORK)/dpo-gptq/config.json $(RECIPE_DIR)../k8s/dsk-serve.yaml
	@mkdir -p $(dir $@)
	sed -e 's|/models/ckpt|/models/$(NAME)-dpo-gptq|' $(RECIPE_DIR)../k8s/dsk-serve.yaml > $@
	@echo "copy $(WORK)/dpo-gptq to the volume's /models/$(NAME)-dpo-gptq, then: kubectl apply -f $@"
quant: $(WORK)/dpo-gptq/config.json
eval: $(WORK)/eval.jsonl
serve-manifest: $(WORK)/k8s/dsk-serve.yaml
