/*
 * vid-TLDR CUDA kernels behind a small C ABI (no TensorRT dependency).
 *
 * Why a C ABI: the same kernels serve the TensorRT plugins (plugins/src), a ctypes binding for
 * PyTorch tensors (vidtldr_deploy/backends/kernels.py) and the GPU tests, so they are built and
 * tested without TensorRT. Semantics are those of the PyTorch reference
 * (vidtldr_deploy/core/saliency.py `saliency_from_qk`, vidtldr_deploy/core/merge.py
 * `bipartite_merge`), computed in fp32 for every input dtype.
 *
 * Conventions
 *  - All tensors are contiguous, row-major, on the current CUDA device; every launch goes on
 *    `stream`; nothing is synchronised and nothing is allocated: callers pass a device workspace of
 *    at least the size returned by the matching *_workspace_size function (may be NULL when it is 0).
 *  - dtype: VIDTLDR_DTYPE_FLOAT32 (0) or VIDTLDR_DTYPE_FLOAT16 (1) for q, k and x; score and size are
 *    always fp32; x_out has the dtype of x.
 *  - Return value: VIDTLDR_OK (0) or one of the error codes below; vidtldr_error_string names it.
 */
#ifndef VIDTLDR_KERNELS_H
#define VIDTLDR_KERNELS_H

#include <stddef.h>
#include <cuda_runtime_api.h>

#if defined(_WIN32)
#define VIDTLDR_API __declspec(dllexport)
#else
#define VIDTLDR_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature or a semantic of this header changes. */
#define VIDTLDR_KERNELS_ABI_VERSION 1

enum VidtldrStatus
{
    VIDTLDR_OK = 0,
    VIDTLDR_ERR_INVALID_ARGUMENT = 1, /* NULL tensor pointer, dimension < 1, r outside [0, N // 2] */
    VIDTLDR_ERR_UNSUPPORTED_DTYPE = 2, /* dtype is neither 0 (fp32) nor 1 (fp16) */
    VIDTLDR_ERR_SHAPE_TOO_LARGE = 3, /* a dimension product overflows the kernels' index range */
    VIDTLDR_ERR_WORKSPACE = 4, /* workspace is NULL although the workspace size is not 0 */
    VIDTLDR_ERR_CUDA = 5 /* a kernel launch failed (cudaGetLastError); see the CUDA error state */
};

enum VidtldrDtype
{
    VIDTLDR_DTYPE_FLOAT32 = 0,
    VIDTLDR_DTYPE_FLOAT16 = 1
};

VIDTLDR_API int vidtldr_abi_version(void);
VIDTLDR_API const char* vidtldr_error_string(int code);

/*
 * Saliency: foreground score (B, N) fp32 from q, k (B, H, N, D) of dtype `dtype`.
 * score_i follows docs/design.md "saliency(P0)" with P0 = softmax(scale * q k^T) per head: negative
 * entropy of the head-mean attention row (0 log 0 = 0), then the per-sample foreground
 * normalisation (constant entropies give all ones). Never materialises an N x N map.
 */
VIDTLDR_API size_t vidtldr_saliency_workspace_size(int B, int H, int N, int D);
VIDTLDR_API int vidtldr_saliency(const void* q, const void* k, float* score, int B, int H, int N, int D,
    float scale, int dtype, void* workspace, cudaStream_t stream);

/*
 * Merge: x (B, N, C) of dtype `dtype`, size (B, N) fp32 or NULL (all ones), score (B, N) fp32,
 * 0 <= r <= N / 2 -> x_out (B, N - r, C) of dtype `dtype`, size_out (B, N - r) fp32, ordered
 * [kept even tokens ascending, all odd tokens ascending] (r = 0: a plain copy, original order).
 * Tie rules of the reference: first best destination, stable descending order of best scores.
 * Never materialises the (N/2) x (N/2) similarity.
 */
VIDTLDR_API size_t vidtldr_merge_workspace_size(int B, int N, int C, int r);
VIDTLDR_API int vidtldr_merge(const void* x, const float* size, const float* score, void* x_out, float* size_out,
    int B, int N, int C, int r, int dtype, void* workspace, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* VIDTLDR_KERNELS_H */
