/* The CPU kernels in double precision: the gradient checks' reference. */
#define REAL double
#define KS(name) dsk_cpu_##name##_f64
#define CBLAS_GEMM cblas_dgemm
#define CBLAS_GEMV cblas_dgemv
#include "ops/cpu_kernels_impl.h"
