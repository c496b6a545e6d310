# dsk: build, test, demo, bench.  `make help` lists the targets.
#
# Outputs go to build/ (release) and build/san/ (ASan+UBSan), never beside
# the sources.

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS = -Ilib -D_GNU_SOURCE
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) -pthread -fopenmp -MMD -MP
LDLIBS   = -ljson-c -lpcre2-8 -lutf8proc -llmdb -lzstd -lxxhash -lcrypto -lopenblas -lcurl -lmicrohttpd -lm -pthread -fopenmp
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# MPI (Open MPI's libopenmpi-dev) for data-parallel training: only
# lib/dist/comm_mpi.c includes <mpi.h> and only dsk-train links it.
# Without it that file builds a stub that refuses runs of several ranks.
MPI_CFLAGS := $(shell pkg-config --cflags mpi-c 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs mpi-c 2>/dev/null)
ifeq ($(strip $(MPI_LIBS)),)
MPI_CFLAGS := -DDSK_NO_MPI
endif
MPI_OBJ = lib/dist/comm_mpi.o

TOOLS    = dsk-clean dsk-bpe dsk-pack dsk-train dsk-eval dsk-quant dsk-serve
LIB_SRC  = $(wildcard lib/*/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
TOOL_SRC = $(wildcard tests/tools/*.c)
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
MAN_PAGES = $(wildcard man/man1/*.1 man/man5/*.5 man/man7/*.7)

BINS      = $(TOOLS:%=$(BUILD)/bin/%)
UNIT_BINS = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BINS = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%)

SAN_LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/san/%.o)
SAN_BINS     = $(TOOLS:%=$(BUILD)/san/bin/%)
SAN_UNIT_BINS = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/san/tests/%)

.PHONY: all check check-fast unit cli sanitize fuzz fuzz-build demo bench install uninstall clean help deps

all: $(BINS)

help:
	@echo "make            build the tools into $(BUILD)/bin"
	@echo "make check      build and run every test (unit, CLI, sanitizers, fuzz smoke)"
	@echo "make demo       install missing Debian packages (as root), build, run pipelines/demo"
	@echo "make bench      benchmarks against the peers (installs them in a private venv)"
	@echo "make fuzz       run each fuzz target for FUZZ_SECONDS (default 60)"
	@echo "make gpu-test   the GPU checks (tests/gpu/run.sh; its CPU half without a GPU)"
	@echo "make gpu-kit    the GPU checks packed for a bare CUDA machine (build/gpukit.tar.xz)"
	@echo "make install    install tools and man pages under PREFIX (default /usr/local)"
	@echo "make uninstall  remove what make install put under PREFIX"

# ---- release build ----------------------------------------------------------
# The CPU kernels and the sampler: -O3 vectorizes their loops,
# -fno-math-errno lets sqrt vectorize (nothing reads errno there), and
# -fno-trapping-math lets the branches of the exp (clamps, NaN) become
# selects (nothing reads the floating-point exception flags).
KERNEL_CFLAGS = -O3 -fno-math-errno -fno-trapping-math
$(BUILD)/lib/ops/cpu_kernels_%.o: lib/ops/cpu_kernels_%.c lib/ops/cpu_kernels_impl.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(KERNEL_CFLAGS) -c $< -o $@

$(BUILD)/lib/model/sample.o: lib/model/sample.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(KERNEL_CFLAGS) -c $< -o $@

$(BUILD)/lib/ops/attn_decode.o $(BUILD)/lib/ops/swiglu_avx2.o: $(BUILD)/lib/ops/%.o: lib/ops/%.c lib/ops/%.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(KERNEL_CFLAGS) -c $< -o $@

$(BUILD)/lib/quant/int4_matmul.o: lib/quant/int4_matmul.c lib/quant/int4.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(KERNEL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/$(MPI_OBJ): CPPFLAGS += $(MPI_CFLAGS)
$(BUILD)/bin/dsk-train: LDLIBS += $(MPI_LIBS)

$(BUILD)/libdsk.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/bin/%.o $(BUILD)/libdsk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libdsk.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libdsk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libdsk.a $(LDLIBS)

# Helpers the tests run (reference dumps), not tests themselves.
$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(BUILD)/libdsk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libdsk.a $(LDLIBS)

# ---- CUDA backend (cuda/) ----------------------------------------------------------
# With nvcc (on PATH or in /usr/local/cuda; `make NVCC=` builds without),
# cuda/*.cu join the release library, lib/ops/backend_open.c gets
# DSK_HAVE_CUDA, and release binaries link the CUDA runtime (cuBLAS is
# loaded when a cuda backend is opened, so CPU runs pay nothing).  The
# sanitizer and fuzz builds stay CPU-only.  Machine code for Ampere
# (sm_80) and Hopper (sm_90), and Hopper's PTX, which the driver compiles
# for newer GPUs (Blackwell) on first use; CUDA_ARCH=... for others.
NVCC := $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
GPU_TEST_BIN = $(BUILD)/tests/gpu/test_cuda_ops $(BUILD)/tests/gpu/test_cuda_gemm_dtype \
               $(BUILD)/tests/gpu/test_cuda_gemm_lt $(BUILD)/tests/gpu/test_cuda_profile
ifneq ($(strip $(NVCC)),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
NVCC_FLAGS = -O3 -std=c++17 $(CUDA_ARCH) -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -MMD -MP \
             -DDSK_CUDA_LIBDIR='"$(CUDA_HOME)/lib64"'
CUDA_OBJ  = $(patsubst %.cu,$(BUILD)/%.o,$(wildcard cuda/*.cu))
# The runtime statically; cuBLAS is dlopen()ed by the backend (cuda/cublas_load.cu).
CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart_static -Wl,--as-needed -ldl -lrt -lstdc++ -Wl,--no-as-needed
$(BUILD)/cuda/%.o: cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(CPPFLAGS) $(NVCC_FLAGS) -c $< -o $@
$(BUILD)/libdsk.a: $(CUDA_OBJ)
$(BUILD)/lib/ops/backend_open.o: CPPFLAGS += -DDSK_HAVE_CUDA
# NCCL between GPU ranks (cuda/comm_nccl.cu, reached through
# lib/dist/comm_gpu.c): its header at build time (the toolkit's or
# libnccl-dev's), libnccl.so.2 dlopen()ed when a run of several GPU ranks
# starts.  Without the header that file builds a stub that refuses them.
NCCL_H := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
ifeq ($(NCCL_H),)
$(BUILD)/cuda/comm_nccl.o: NVCC_FLAGS += -DDSK_NO_NCCL
endif
$(BUILD)/lib/dist/comm_gpu.o: CPPFLAGS += -DDSK_HAVE_CUDA
# cuDNN (DSK_CUDA_ATTN=cudnn, cuda/attention_cudnn.cu): its headers at
# build time (the toolkit's or a cudnn -dev package's), libcudnn.so.9
# dlopen()ed at the first use.  Without cudnn_graph.h those two files
# build stubs, and asking for cudnn says dsk was built without it.
CUDNN_H := $(firstword $(wildcard $(CUDA_HOME)/include/cudnn_graph.h /usr/include/cudnn_graph.h \
                                  /usr/include/x86_64-linux-gnu/cudnn_graph.h))
ifeq ($(CUDNN_H),)
$(BUILD)/cuda/attention_cudnn.o $(BUILD)/cuda/cudnn_load.o: NVCC_FLAGS += -DDSK_NO_CUDNN
endif
$(BINS) $(UNIT_BINS) $(TOOL_BINS) $(GPU_TEST_BIN): LDLIBS += $(CUDA_LIBS)
endif

# ---- the CPU emulation of cuda/ (tests/gpu/emu) ----------------------------------
# Without a GPU the backend's kernels and glue still run, op by op against
# the CPU backend: cuda/*.cu rewritten by tests/gpu/emu/unchevron (kernel
# launches become calls) and compiled by g++ with tests/gpu/emu/emu.h in
# front, under ASan and UBSan; blocks and threads run on fibers
# (emu_runtime.cc), cuBLAS and cuBLASLt are stand-ins that check their
# arguments as the real ones do (cublas_emu.cc).  It needs the toolkit's
# headers (not nvcc) and Boost.Context (libboost-context-dev); `make
# check` runs it (tests/gpu/emu/run.sh).
CUDA_INC ?= $(firstword $(wildcard $(CUDA_HOME)/include /usr/local/cuda/include))
ifneq ($(wildcard $(CUDA_INC)/cublasLt.h),)
ifneq ($(wildcard /usr/include/boost/context/fiber.hpp),)
EMU          = $(BUILD)/emu
CUBLAS_MAJOR := $(shell sed -n 's/^\#define CUBLAS_VER_MAJOR *\([0-9]*\).*/\1/p' $(CUDA_INC)/cublas_api.h)
EMU_CU_OBJ   = $(patsubst cuda/%.cu,$(EMU)/cuda/%.o,$(filter-out cuda/dlopen_lib.cu,$(wildcard cuda/*.cu)))
EMU_C_OBJ    = $(EMU)/lib/ops/backend_open.o $(EMU)/lib/dist/comm_gpu.o
EMU_LIBS     = $(EMU)/lib/libcublas.so.$(CUBLAS_MAJOR) $(EMU)/lib/libcublasLt.so.$(CUBLAS_MAJOR)
EMU_LINK     = $(EMU_CU_OBJ) $(EMU)/emu_runtime.o $(EMU_C_OBJ) $(BUILD)/san/libdsk.a
EMU_CXXFLAGS = -std=c++17 $(CPPFLAGS) -I$(CUDA_INC) $(SAN_FLAGS) -ffp-contract=off -Wall -Wextra -Werror \
               -Wno-unknown-pragmas -MMD -MP -include tests/gpu/emu/emu.h
EMU_TEST_BIN = $(GPU_TEST_BIN:$(BUILD)/tests/gpu/%=$(EMU)/tests/gpu/%)
$(EMU)/cuda/%.cc: cuda/%.cu tests/gpu/emu/unchevron
	@mkdir -p $(dir $@)
	perl tests/gpu/emu/unchevron $< > $@.tmp && mv $@.tmp $@
$(EMU)/cuda/%.o: $(EMU)/cuda/%.cc tests/gpu/emu/emu.h
	$(CXX) $(EMU_CXXFLAGS) -Icuda -DDSK_NO_NCCL -c $< -o $@
$(EMU)/emu_runtime.o: tests/gpu/emu/emu_runtime.cc tests/gpu/emu/emu.h
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -DDSK_EMU_LIBDIR='"$(abspath $(EMU)/lib)"' -c $< -o $@
# The C side: the backend table's "cuda" entry, and the tests.
$(EMU)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DDSK_HAVE_CUDA -std=c11 $(WARN) $(SAN_FLAGS) -pthread -fopenmp -MMD -MP -c $< -o $@
# One stand-in, under both names (cuBLAS and cuBLASLt), under the
# sanitizers too: its copies of the operands read what a GPU would.
$(EMU)/lib/libcublas.so.$(CUBLAS_MAJOR): tests/gpu/emu/cublas_emu.cc
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(SAN_FLAGS) -fPIC -shared -Wall -Wextra -Werror -I$(CUDA_INC) $< -o $@ \
	    -Wl,-soname,$(notdir $@) -lopenblas
$(EMU)/lib/libcublasLt.so.$(CUBLAS_MAJOR): $(EMU)/lib/libcublas.so.$(CUBLAS_MAJOR)
	cp $< $@
# The cuDNN stand-in (attention_cudnn.cu's graphs interpreted on the host,
# its calls checked as the real library's are), under its soname.
CUDNN_MAJOR  := $(shell sed -n 's/^\#define CUDNN_MAJOR *\([0-9]*\).*/\1/p' $(CUDA_INC)/cudnn_version.h 2>/dev/null)
ifneq ($(CUDNN_MAJOR),)
EMU_LIBS    += $(EMU)/lib/libcudnn.so.$(CUDNN_MAJOR)
EMU_CUDNN    = $(EMU)/tests/gpu/emu/test_cudnn_emu
$(EMU)/lib/libcudnn.so.$(CUDNN_MAJOR): tests/gpu/emu/cudnn_emu.cc
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(SAN_FLAGS) -ffp-contract=off -fPIC -shared -Wall -Wextra -Werror -I$(CUDA_INC) $< -o $@ \
	    -Wl,-soname,$(notdir $@)
else
$(EMU)/cuda/attention_cudnn.o $(EMU)/cuda/cudnn_load.o: EMU_CXXFLAGS += -DDSK_NO_CUDNN
endif
$(EMU_TEST_BIN): $(EMU)/tests/gpu/%: $(EMU)/tests/gpu/%.o $(EMU)/tests/gpu/harness.o $(EMU_LINK) | $(EMU_LIBS)
	$(CXX) $(SAN_FLAGS) -o $@ $< $(EMU)/tests/gpu/harness.o $(EMU_LINK) $(LDLIBS) -lboost_context -ldl
# The emulation's own test (kernels of its own, and what it must stop).
$(EMU)/tests/gpu/emu/test_emu.cc: tests/gpu/emu/test_emu.cu tests/gpu/emu/unchevron
	@mkdir -p $(dir $@)
	perl tests/gpu/emu/unchevron $< > $@.tmp && mv $@.tmp $@
$(EMU)/tests/gpu/emu/test_emu: $(EMU)/tests/gpu/emu/test_emu.cc $(EMU)/emu_runtime.o
	$(CXX) $(EMU_CXXFLAGS) -Icuda -o $@ $< $(EMU)/emu_runtime.o -lboost_context -ldl -pthread
# The cuBLAS stand-in's own test, through cuda/cublas_load.cu's tables.
$(EMU)/tests/gpu/emu/test_cublas_emu: tests/gpu/emu/test_cublas_emu.cc $(EMU)/cuda/cublas_load.o $(EMU)/emu_runtime.o \
                                      | $(EMU_LIBS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -Icuda -o $@ $< $(EMU)/cuda/cublas_load.o $(EMU)/emu_runtime.o -lboost_context -ldl -pthread
# The cuDNN stand-in's own test, loaded as attention_cudnn.cu loads it.
$(EMU)/tests/gpu/emu/test_cudnn_emu: tests/gpu/emu/test_cudnn_emu.cc $(EMU)/cuda/cudnn_load.o $(EMU)/emu_runtime.o \
                                     | $(EMU_LIBS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -Icuda -o $@ $< $(EMU)/cuda/cudnn_load.o $(EMU)/emu_runtime.o -lboost_context -ldl -pthread
# dsk-train and dsk-eval on the emulation, for tests/gpu/train_check.sh
# (checkpoints across backends, --recompute, --dtype, perplexity).
EMU_TOOLS = $(EMU)/bin/dsk-train $(EMU)/bin/dsk-eval
$(EMU_TOOLS): $(EMU)/bin/%: $(BUILD)/san/bin/%.o $(EMU_LINK) | $(EMU_LIBS)
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_FLAGS) -o $@ $< $(EMU_LINK) $(LDLIBS) $(MPI_LIBS) -lboost_context -ldl
# throughput.sh's benches on the emulation, run small (the tools work;
# their timings mean nothing there).
EMU_BENCH = $(EMU)/tests/tools/attn_bench $(EMU)/tests/tools/decode_bench
$(EMU_BENCH): $(EMU)/tests/tools/%: $(EMU)/tests/tools/%.o $(EMU_LINK) | $(EMU_LIBS)
	$(CXX) $(SAN_FLAGS) -o $@ $< $(EMU_LINK) $(LDLIBS) -lboost_context -ldl
EMU_ALL = $(EMU_TEST_BIN) $(EMU_TOOLS) $(EMU_BENCH) $(EMU)/tests/gpu/emu/test_emu \
          $(EMU)/tests/gpu/emu/test_cublas_emu $(EMU_CUDNN)
check: $(EMU_ALL)
emu: $(EMU_ALL)
-include $(EMU_CU_OBJ:.o=.d) $(EMU)/emu_runtime.d $(EMU_C_OBJ:.o=.d)
endif
endif

# CPU-vs-CUDA op and training comparison, gemm in bf16 / fp16, and the
# cuBLASLt products and gemm_grouped (test_cuda_gemm_lt): built
# by `make` (so CI compiles them), run by tests/gpu/run.sh (`make gpu-test`).
.PHONY: gpu-test gpu-kit emu
all: $(GPU_TEST_BIN)
# Each links the harness they share (tests/gpu/harness.c).
$(GPU_TEST_BIN): $(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.o $(BUILD)/tests/gpu/harness.o $(BUILD)/libdsk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/tests/gpu/harness.o $(BUILD)/libdsk.a $(LDLIBS)
gpu-test: $(GPU_TEST_BIN)
	@BUILD=$(BUILD) tests/gpu/run.sh
# The same checks packed for a GPU machine without the -dev packages:
# build/gpukit.tar.xz, which tests/gpu/kit_run.sh runs there.
gpu-kit:
	@sh tests/gpu/kit.sh

# ---- sanitizer build (ASan + UBSan) --------------------------------------------
$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=c11 $(WARN) $(SAN_FLAGS) -pthread -fopenmp -MMD -MP -c $< -o $@

$(BUILD)/san/$(MPI_OBJ): CPPFLAGS += $(MPI_CFLAGS)
$(BUILD)/san/bin/dsk-train: LDLIBS += $(MPI_LIBS)

$(BUILD)/san/libdsk.a: $(SAN_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/san/bin/%: $(BUILD)/san/bin/%.o $(BUILD)/san/libdsk.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -o $@ $< $(BUILD)/san/libdsk.a $(LDLIBS)

$(BUILD)/san/tests/%: $(BUILD)/san/tests/unit/%.o $(BUILD)/san/libdsk.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -o $@ $< $(BUILD)/san/libdsk.a $(LDLIBS)

# ---- fuzz targets (clang libFuzzer + ASan/UBSan) --------------------------------
FUZZ_CC    ?= clang
FUZZ_FLAGS  = -fopenmp -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_BINS   = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 60

# The library is compiled once with coverage and sanitizers
# (fuzzer-no-link), each target then links against it.
FUZZ_LIB_FLAGS = -fopenmp -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -std=c11 $(FUZZ_LIB_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/fuzz/obj/$(MPI_OBJ): CPPFLAGS += $(MPI_CFLAGS)
$(BUILD)/fuzz/libdsk.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/fuzz/libdsk.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -std=c11 $(FUZZ_FLAGS) -o $@ $< $(BUILD)/fuzz/libdsk.a $(LDLIBS)
-include $(FUZZ_LIB_OBJ:.o=.d)

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	  name=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ \
	      $(BUILD)/fuzz/corpus-$$name tests/fuzz/seeds/$$name > $(BUILD)/fuzz/$$name.log 2>&1; rc=$$?; \
	  tail -n 4 $(BUILD)/fuzz/$$name.log; [ $$rc -eq 0 ] || exit 1; \
	done

# ---- tests ------------------------------------------------------------------------
check: $(BINS) $(UNIT_BINS) $(TOOL_BINS) $(SAN_BINS) $(SAN_UNIT_BINS)
	@BUILD=$(BUILD) FUZZ_SECONDS=$${FUZZ_SECONDS:-10} tests/run-all

check-fast: $(BINS) $(UNIT_BINS) $(TOOL_BINS)
	@BUILD=$(BUILD) DSK_SKIP_SAN=1 DSK_SKIP_FUZZ=1 tests/run-all

# ---- demo and bench -----------------------------------------------------------------
deps:
	@pipelines/install-deps

demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C pipelines/demo BIN=$(abspath $(BUILD)/bin) OUT=$(abspath $(BUILD)/demo)

bench: all $(TOOL_BINS)
	@pipelines/install-deps build bench
	@tests/bench/run BIN=$(abspath $(BUILD)/bin)

# ---- install ---------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	for p in $(MAN_PAGES); do \
	  sec=$$(echo $$p | sed 's/.*\.//'); install -m 644 $$p $(DESTDIR)$(PREFIX)/share/man/man$$sec/; done

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(PREFIX)/bin/%)
	for p in $(MAN_PAGES); do \
	  sec=$$(echo $$p | sed 's/.*\.//'); rm -f $(DESTDIR)$(PREFIX)/share/man/man$$sec/$$(basename $$p); done

clean:
	rm -rf $(BUILD)

.SECONDARY:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
