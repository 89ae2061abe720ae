#include "cxsmm.h"
#include <libxsmm.h>

void cxsmm_init(void) { libxsmm_init(); }

const char *cxsmm_target_arch(void) { return libxsmm_get_target_arch(); }

const void *cxsmm_dispatch_brgemm(int m, int n, int k, int lda, int ldb, int ldc, float beta, int trans_b) {
    libxsmm_blasint lda_ = lda, ldb_ = ldb, ldc_ = ldc;
    float alpha = 1.0f;
    int flags = trans_b ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
    libxsmm_smmfunction_reducebatch_addr kernel =
        libxsmm_smmdispatch_reducebatch_addr(m, n, k, &lda_, &ldb_, &ldc_, &alpha, &beta, &flags, NULL);
    return (const void *)kernel;
}

void cxsmm_brgemm(const void *kernel, const float **a, const float **b, float *c, uint64_t count) {
    unsigned long long n = (unsigned long long)count;
    ((libxsmm_smmfunction_reducebatch_addr)kernel)(a, b, c, &n);
}
