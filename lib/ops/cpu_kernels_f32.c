/* The CPU kernels in single precision: what the cpu backend runs. */
#define REAL float
#define KS(name) dsk_cpu_##name##_f32
#define CBLAS_GEMM cblas_sgemm
#include "ops/cpu_kernels_impl.h"
