#ifndef CXSMM_H
#define CXSMM_H
/* The tiny C face of libxsmm that Swift needs: dispatch a JIT batch-reduce GEMM and call it.
 * libxsmm's kernel pointers are C-variadic, so Swift cannot call them directly.
 * All matrices are column-major (libxsmm's convention):
 *   C[m x n] = beta * C + sum_i A_i[m x k] * op(B_i)   with op(B) = B, or B^T when trans_b. */
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Initialises libxsmm once (idempotent). */
void cxsmm_init(void);

/** The instruction set libxsmm generates code for ("hsw" = AVX2, "skx"/"clx"/"cpx" = AVX-512). */
const char *cxsmm_target_arch(void);

/** Returns a kernel handle or NULL when libxsmm has no kernel for these sizes. */
const void *cxsmm_dispatch_brgemm(int m, int n, int k, int lda, int ldb, int ldc, float beta, int trans_b);

/** Runs a kernel from `cxsmm_dispatch_brgemm` over `count` pairs (a[i], b[i]) into c. */
void cxsmm_brgemm(const void *kernel, const float **a, const float **b, float *c, uint64_t count);

#ifdef __cplusplus
}
#endif
#endif
