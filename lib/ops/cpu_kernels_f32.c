/* The CPU kernels in single precision: what the cpu backend runs. */
#include <stdint.h>
#include <string.h>

#include "ops/fast_exp.h"

#define REAL float
#define KS(name) dsk_cpu_##name##_f32
#define CBLAS_GEMM cblas_sgemm
#define CBLAS_GEMV cblas_sgemv
#define KERNEL_EXP(x) dsk_fast_expf(x)
#include "ops/cpu_kernels_impl.h"
