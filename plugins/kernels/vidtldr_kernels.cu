// vid-TLDR saliency and merge kernels (see vidtldr_kernels.h for the contract).
//
// Both ops are built on one block-level primitive, `tile_dot`: the 64 x 64 tile of dot products
// between 64 rows of A and 64 rows of B, streamed over the feature dimension through shared memory
// and left in a shared fp32 tile S. fp16 inputs use tensor cores (WMMA, fp32 accumulation: the
// fp16 x fp16 products are exact in fp32, so this matches the reference's fp32 matmul of the
// upcast inputs up to summation order); fp32 inputs use a register-tiled FMA loop so that fp32
// results stay fp32-exact (no TF32). Callers then run their own row-wise epilogue over S.
//
// Saliency (q, k -> score):
//   pass 1  per (sample, head, 64 query rows): online max / sum of exp over all keys -> (m, 1 / l)
//   pass 2  per (sample, 64 query rows, key range): for each key tile, A = sum_h exp(s - m) / l
//           accumulated over heads in registers, then sum_j (A/H) log(A/H) into a row partial.
//           Key ranges are split across blocks so that batch 1 still fills the GPU; partials are
//           summed in a fixed order in the final kernel (deterministic).
//   final   per sample: min / max / mean normalisation into the foreground score.
// Merge (x, size, score -> x', size'):
//   norms   1 / ||x_i|| (0 for a zero row, so its cosine is 0 as in the reference)
//   best    per even token: best odd token (max sim, lowest index on ties), key range split again
//   rank    per even token: its position in the stable descending order of best scores, computed by
//           counting (O(Na^2) comparisons per sample, exact and tie-correct, cheap at ViT sizes)
//   kept    per sample: ascending list of kept even tokens (block prefix sum)
//   emit    per output row: copy a kept token, or the size-weighted mean of an odd token and the
//           sources merged into it (summed in rank order, fp32, deterministic).
#include "vidtldr_kernels.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <climits>
#include <cstdint>

namespace
{

constexpr int kTile = 64;       // rows and columns of one S tile
constexpr int kThreads = 128;   // threads of a tile block: 4 warps
constexpr int kSPitch = 68;     // S row pitch in floats (multiple of 4 for WMMA stores)
constexpr int kHalfChunk = 64;  // feature chunk of the fp16 path
constexpr int kHalfPitch = 72;  // fp16 smem row pitch (multiple of 8 for WMMA loads, fewer bank conflicts)
constexpr int kFloatChunk = 32; // feature chunk of the fp32 path
constexpr int kFloatPitch = 65; // fp32 smem pitch (transposed tiles; odd pitch: conflict-free stores)
constexpr int kOperandBytes = 2 * kTile * kHalfPitch * 2; // 18432 >= 2 * kFloatChunk * kFloatPitch * 4
constexpr int kSmemBytes = kOperandBytes + kTile * kSPitch * 4;
constexpr int kColsPerThread = 32; // epilogue: 2 threads per row, 32 columns each
static_assert(2 * kFloatChunk * kFloatPitch * 4 <= kOperandBytes, "fp32 operand tiles must fit");
static_assert(kSmemBytes <= 48 * 1024, "static shared memory limit");

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ void store_as(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_as(__half* p, float v) { *p = __float2half_rn(v); }

// Epilogue column owned by (row r, half h) at step k. The skew (+2 * (r / 8)) makes the 32 lanes of
// a warp read 32 different banks of S; every column of the tile is still covered exactly once.
__device__ __forceinline__ int epilogue_col(int r, int h, int k)
{
    return (2 * k + h + 2 * (r >> 3)) & (kTile - 1);
}

// ------------------------------------------------------------------------------------------------
// tile_dot: S[i][j] = a_scale * A_i . B_j for i < na, j < nb (0 elsewhere), i, j < 64.
// A, B point at row 0 of the tile; lda / ldb are row strides in elements. All threads of the block
// must call it; it ends with S written but NOT synchronised (callers __syncthreads before reading).
// It may be called again right after an epilogue that only reads S: its first barrier orders the
// epilogue's reads before the next S store.
// ------------------------------------------------------------------------------------------------
template <typename T>
struct TileDot;

template <>
struct TileDot<__half>
{
    static __device__ void run(__half const* A, long long lda, int na, __half const* B, long long ldb, int nb, int D,
        float /*a_scale, applied by the caller*/, bool vec_ok, unsigned char* smem, float* S)
    {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
        using namespace nvcuda;
        __half* As = reinterpret_cast<__half*>(smem);
        __half* Bs = As + kTile * kHalfPitch;
        int const warp = threadIdx.x >> 5;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4];
#pragma unroll
        for (int j = 0; j < 4; ++j)
            wmma::fill_fragment(acc[j], 0.0f);
        for (int d0 = 0; d0 < D; d0 += kHalfChunk)
        {
            // 64 rows x 64 features per operand, 8 halves (16 bytes) per step.
            for (int v = threadIdx.x; v < kTile * (kHalfChunk / 8); v += kThreads)
            {
                int const row = v >> 3;
                int const col = d0 + (v & 7) * 8;
                uint4 va = make_uint4(0, 0, 0, 0), vb = make_uint4(0, 0, 0, 0);
                if (vec_ok)
                {
                    if (row < na && col < D)
                        va = *reinterpret_cast<uint4 const*>(A + row * lda + col);
                    if (row < nb && col < D)
                        vb = *reinterpret_cast<uint4 const*>(B + row * ldb + col);
                }
                else
                {
                    // Unaligned or ragged rows: element loads, packed through a union (no aliasing UB).
                    union Pack
                    {
                        uint4 v;
                        __half h[8];
                    } pa, pb;
#pragma unroll
                    for (int e = 0; e < 8; ++e)
                    {
                        pa.h[e] = (row < na && col + e < D) ? A[row * lda + col + e] : __float2half(0.0f);
                        pb.h[e] = (row < nb && col + e < D) ? B[row * ldb + col + e] : __float2half(0.0f);
                    }
                    va = pa.v;
                    vb = pb.v;
                }
                *reinterpret_cast<uint4*>(As + row * kHalfPitch + (v & 7) * 8) = va;
                *reinterpret_cast<uint4*>(Bs + row * kHalfPitch + (v & 7) * 8) = vb;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < kHalfChunk / 16; ++kk)
            {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
                wmma::load_matrix_sync(fa, As + warp * 16 * kHalfPitch + kk * 16, kHalfPitch);
#pragma unroll
                for (int j = 0; j < 4; ++j)
                {
                    // B^T as a col-major K x N matrix is B's rows as stored.
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
                    wmma::load_matrix_sync(fb, Bs + j * 16 * kHalfPitch + kk * 16, kHalfPitch);
                    wmma::mma_sync(acc[j], fa, fb, acc[j]);
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int j = 0; j < 4; ++j)
            wmma::store_matrix_sync(S + warp * 16 * kSPitch + j * 16, acc[j], kSPitch, wmma::mem_row_major);
#endif
    }
};

template <>
struct TileDot<float>
{
    static __device__ void run(float const* A, long long lda, int na, float const* B, long long ldb, int nb, int D,
        float a_scale, bool /*vec_ok*/, unsigned char* smem, float* S)
    {
        // Transposed operand tiles As[d][row], Bs[d][col]; each thread owns a 4 x 8 block of S:
        // rows 4*ty .. 4*ty+3, columns tx + 8*j (strided so a warp reads consecutive Bs words).
        float* As = reinterpret_cast<float*>(smem);
        float* Bs = As + kFloatChunk * kFloatPitch;
        int const ty = threadIdx.x >> 3;
        int const tx = threadIdx.x & 7;
        float acc[4][8];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j)
                acc[i][j] = 0.0f;
        for (int d0 = 0; d0 < D; d0 += kFloatChunk)
        {
            for (int e = threadIdx.x; e < kTile * kFloatChunk; e += kThreads)
            {
                int const row = e / kFloatChunk;
                int const c = e % kFloatChunk;
                int const d = d0 + c;
                // a_scale is applied before the product, as the reference scales q before q k^T.
                As[c * kFloatPitch + row] = (row < na && d < D) ? A[row * lda + d] * a_scale : 0.0f;
                Bs[c * kFloatPitch + row] = (row < nb && d < D) ? B[row * ldb + d] : 0.0f;
            }
            __syncthreads();
#pragma unroll 4
            for (int c = 0; c < kFloatChunk; ++c)
            {
                float a[4], b[8];
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    a[i] = As[c * kFloatPitch + ty * 4 + i];
#pragma unroll
                for (int j = 0; j < 8; ++j)
                    b[j] = Bs[c * kFloatPitch + tx + 8 * j];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 8; ++j)
                        acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j)
                S[(ty * 4 + i) * kSPitch + tx + 8 * j] = acc[i][j];
    }
};

// fp16: exp2/log2 domain with scale * log2(e) folded into one multiply (cheaper exponentials, the
// tensor-core product cannot take a pre-scaled fp32 q). fp32: q is pre-scaled as in the reference
// and the natural exp/log are used, to stay as close as possible to the fp32 reference.
template <typename T>
struct SoftmaxDomain;
template <>
struct SoftmaxDomain<float>
{
    static __device__ __forceinline__ float ex(float v) { return expf(v); }
    static __host__ float logit_mul(float /*scale*/) { return 1.0f; }
    static __host__ float a_scale(float scale) { return scale; }
};
template <>
struct SoftmaxDomain<__half>
{
    static __device__ __forceinline__ float ex(float v) { return exp2f(v); }
    static __host__ float logit_mul(float scale) { return scale * kLog2e; }
    static __host__ float a_scale(float /*scale*/) { return 1.0f; }
};

// ------------------------------------------------------------------------------------------------
// Saliency
// ------------------------------------------------------------------------------------------------

// The logit of pass 2 must be bit-identical to pass 1's (a row of equal logits must give one value,
// exp(0) * (1 / N), everywhere, hence constant entropies and the all-ones score): __fmul_rn is never contracted
// into an FMA with the following subtraction.
__device__ __forceinline__ float logit(float s, float mul) { return __fmul_rn(s, mul); }

// Pass 1: grid (query tiles, B*H). stat_m / stat_inv_l: (B*H, N) row max and 1 / (sum of exp).
// 1 / l rather than log l: exp(s - m - log l) would carry log l's rounding (up to ~2.4e-7 absolute,
// the same relative error on every probability of the row) into the entropy, which the foreground
// normalisation then magnifies by 1 / (span of the entropies); a product with 1 / l errs 4-8x less.
template <typename T>
__global__ void __launch_bounds__(kThreads) saliency_stats_kernel(T const* __restrict__ q, T const* __restrict__ k,
    int N, int D, float a_scale, float logit_mul, bool vec_ok, float* __restrict__ stat_m, float* __restrict__ stat_inv_l)
{
    __shared__ __align__(128) unsigned char smem[kSmemBytes];
    float* S = reinterpret_cast<float*>(smem + kOperandBytes);
    long long const bh = blockIdx.y;
    int const q0 = blockIdx.x * kTile;
    int const na = min(kTile, N - q0);
    T const* qrows = q + (bh * N + q0) * D;
    int const r = threadIdx.x >> 1;
    int const h = threadIdx.x & 1;
    float m = -INFINITY;
    float l = 0.0f;
    for (int k0 = 0; k0 < N; k0 += kTile)
    {
        int const nb = min(kTile, N - k0);
        TileDot<T>::run(qrows, D, na, k + (bh * N + k0) * D, D, nb, D, a_scale, vec_ok, smem, S);
        __syncthreads();
        float tmax = -INFINITY;
#pragma unroll 8
        for (int kk = 0; kk < kColsPerThread; ++kk)
        {
            int const c = epilogue_col(r, h, kk);
            if (c < nb)
                tmax = fmaxf(tmax, logit(S[r * kSPitch + c], logit_mul));
        }
        if (tmax > -INFINITY)
        {
            float const mnew = fmaxf(m, tmax);
            l = (m > -INFINITY) ? l * SoftmaxDomain<T>::ex(m - mnew) : 0.0f;
#pragma unroll 8
            for (int kk = 0; kk < kColsPerThread; ++kk)
            {
                int const c = epilogue_col(r, h, kk);
                if (c < nb)
                    l += SoftmaxDomain<T>::ex(logit(S[r * kSPitch + c], logit_mul) - mnew);
            }
            m = mnew;
        }
    }
    // Merge the two halves of the row (partner lane differs in bit 0).
    float const mo = __shfl_xor_sync(0xffffffffu, m, 1);
    float const lo = __shfl_xor_sync(0xffffffffu, l, 1);
    float const M = fmaxf(m, mo);
    float L = 0.0f;
    if (m > -INFINITY)
        L += l * SoftmaxDomain<T>::ex(m - M);
    if (mo > -INFINITY)
        L += lo * SoftmaxDomain<T>::ex(mo - M);
    if (h == 0 && r < na)
    {
        stat_m[bh * N + q0 + r] = M;
        stat_inv_l[bh * N + q0 + r] = 1.0f / L;
    }
}

// Pass 2: grid (query tiles, key splits, B). partial: (splits, B, N) sums of A log A over the split's keys.
// A = (sum_h exp(s - m) / l) / H is evaluated exactly as pass 1 produced s, so a row with
// constant logits gets one value everywhere (constant entropies -> the all-ones score).
template <typename T>
__global__ void __launch_bounds__(kThreads) saliency_entropy_kernel(T const* __restrict__ q, T const* __restrict__ k,
    int B, int H, int N, int D, float a_scale, float logit_mul, bool vec_ok, int tiles_per_split,
    float const* __restrict__ stat_m, float const* __restrict__ stat_inv_l, float* __restrict__ partial)
{
    __shared__ __align__(128) unsigned char smem[kSmemBytes];
    float* S = reinterpret_cast<float*>(smem + kOperandBytes);
    int const b = blockIdx.z;
    int const split = blockIdx.y;
    int const q0 = blockIdx.x * kTile;
    int const na = min(kTile, N - q0);
    int const r = threadIdx.x >> 1;
    int const h = threadIdx.x & 1;
    int const kt_begin = split * tiles_per_split;
    int const kt_end = min((N + kTile - 1) / kTile, kt_begin + tiles_per_split);
    float const inv_heads = 1.0f / static_cast<float>(H);
    float rowsum = 0.0f, rowcomp = 0.0f; // Kahan-compensated: hundreds of terms per thread
    for (int kt = kt_begin; kt < kt_end; ++kt)
    {
        int const k0 = kt * kTile;
        int const nb = min(kTile, N - k0);
        float acc[kColsPerThread];
#pragma unroll
        for (int kk = 0; kk < kColsPerThread; ++kk)
            acc[kk] = 0.0f;
        for (int hd = 0; hd < H; ++hd)
        {
            long long const bh = static_cast<long long>(b) * H + hd;
            TileDot<T>::run(q + (bh * N + q0) * D, D, na, k + (bh * N + k0) * D, D, nb, D, a_scale, vec_ok, smem, S);
            __syncthreads();
            if (r < na)
            {
                float const M = stat_m[bh * N + q0 + r];
                float const inv_l = stat_inv_l[bh * N + q0 + r];
#pragma unroll
                for (int kk = 0; kk < kColsPerThread; ++kk)
                {
                    int const c = epilogue_col(r, h, kk);
                    if (c < nb)
                        acc[kk] += SoftmaxDomain<T>::ex(logit(S[r * kSPitch + c], logit_mul) - M) * inv_l;
                }
            }
        }
#pragma unroll
        for (int kk = 0; kk < kColsPerThread; ++kk)
        {
            int const c = epilogue_col(r, h, kk);
            // The reference takes the head mean (sum / H) and then a log a with 0 log 0 := 0.
            float const a = acc[kk] * inv_heads;
            if (c < nb && a > 0.0f)
            {
                float const y = a * logf(a) - rowcomp;
                float const t = rowsum + y;
                rowcomp = (t - rowsum) - y;
                rowsum = t;
            }
        }
    }
    rowsum += __shfl_xor_sync(0xffffffffu, rowsum, 1);
    if (h == 0 && r < na)
        partial[(static_cast<long long>(split) * B + b) * N + q0 + r] = rowsum;
}

// Block reductions for a block of blockDim.x threads (multiple of 32, <= 1024).
enum class Red
{
    Sum,
    Min,
    Max
};
template <Red op>
__device__ __forceinline__ float red_apply(float a, float b)
{
    return op == Red::Sum ? a + b : (op == Red::Min ? fminf(a, b) : fmaxf(a, b));
}
template <Red op>
__device__ float block_reduce(float v, float* scratch /* >= 33 floats */)
{
    for (int o = 16; o > 0; o >>= 1)
        v = red_apply<op>(v, __shfl_xor_sync(0xffffffffu, v, o));
    int const warp = threadIdx.x >> 5;
    int const lane = threadIdx.x & 31;
    int const nwarps = blockDim.x >> 5;
    __syncthreads(); // scratch may still be read by a previous reduction
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    if (warp == 0)
    {
        float w = lane < nwarps ? scratch[lane] : scratch[0];
        for (int o = 16; o > 0; o >>= 1)
            w = red_apply<op>(w, __shfl_xor_sync(0xffffffffu, w, o));
        if (lane == 0)
            scratch[32] = w;
    }
    __syncthreads();
    return scratch[32];
}

// Final: grid B, block 1024. e_i = sum of partials (fixed split order), then foreground_score().
__global__ void __launch_bounds__(1024) saliency_finalize_kernel(
    float const* __restrict__ partial, int splits, int B, int N, float* __restrict__ score)
{
    __shared__ float scratch[33];
    int const b = blockIdx.x;
    float* e = score + static_cast<long long>(b) * N;
    float lo = INFINITY, hi = -INFINITY;
    for (int i = threadIdx.x; i < N; i += blockDim.x)
    {
        float v = 0.0f;
        for (int s = 0; s < splits; ++s)
            v += partial[(static_cast<long long>(s) * B + b) * N + i];
        e[i] = v;
        lo = fminf(lo, v);
        hi = fmaxf(hi, v);
    }
    float const emin = block_reduce<Red::Min>(lo, scratch);
    float const emax = block_reduce<Red::Max>(hi, scratch);
    float const span = emax - emin; // == max(e - min e), as the reference computes it
    bool const constant = span <= 0.0f;
    float const div = constant ? 1.0f : span;
    float sum = 0.0f;
    for (int i = threadIdx.x; i < N; i += blockDim.x)
    {
        float const s = (e[i] - emin) / div;
        e[i] = s;
        sum += s;
    }
    float const mean = block_reduce<Red::Sum>(sum, scratch) / static_cast<float>(N);
    float pk = -INFINITY;
    for (int i = threadIdx.x; i < N; i += blockDim.x)
        pk = fmaxf(pk, e[i] - mean);
    float const peak = block_reduce<Red::Max>(pk, scratch);
    float const pdiv = peak > 0.0f ? peak : 1.0f;
    for (int i = threadIdx.x; i < N; i += blockDim.x)
    {
        float const s = e[i];
        float out = (s < mean) ? 0.0f : (s - mean) / pdiv;
        e[i] = constant ? 1.0f : out;
    }
}

// ------------------------------------------------------------------------------------------------
// Merge
// ------------------------------------------------------------------------------------------------

// One warp per token: inv_norm = 1 / ||x|| (0 for a zero row).
template <typename T>
__global__ void merge_inv_norm_kernel(T const* __restrict__ x, long long rows, int C, float* __restrict__ inv_norm)
{
    long long const row = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    int const lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    T const* p = x + row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32)
    {
        float const v = to_float(p[c]);
        ss = fmaf(v, v, ss);
    }
    for (int o = 16; o > 0; o >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0)
    {
        float const n = sqrtf(ss);
        inv_norm[row] = n > 0.0f ? 1.0f / n : 0.0f;
    }
}

__device__ __forceinline__ bool better(float v, int j, float bv, int bj)
{
    return v > bv || (v == bv && j < bj);
}

// Grid (a tiles, b splits, B): per even token, its best odd token within the split's b tiles.
template <typename T>
__global__ void __launch_bounds__(kThreads) merge_best_kernel(T const* __restrict__ x, float const* __restrict__ inv_norm,
    int B, int N, int C, bool vec_ok, int tiles_per_split, float* __restrict__ part_val, int* __restrict__ part_idx)
{
    __shared__ __align__(128) unsigned char smem[kSmemBytes];
    float* S = reinterpret_cast<float*>(smem + kOperandBytes);
    int const Na = (N + 1) / 2;
    int const Nb = N / 2;
    int const b = blockIdx.z;
    int const split = blockIdx.y;
    int const a0 = blockIdx.x * kTile;
    int const na = min(kTile, Na - a0);
    int const r = threadIdx.x >> 1;
    int const h = threadIdx.x & 1;
    long long const base = static_cast<long long>(b) * N;
    long long const ld = 2LL * C; // even / odd tokens are every other row
    float const ia = r < na ? inv_norm[base + 2LL * (a0 + r)] : 0.0f;
    int const bt_begin = split * tiles_per_split;
    int const bt_end = min((Nb + kTile - 1) / kTile, bt_begin + tiles_per_split);
    float best = -INFINITY;
    int best_j = INT_MAX;
    for (int bt = bt_begin; bt < bt_end; ++bt)
    {
        int const b0 = bt * kTile;
        int const nb = min(kTile, Nb - b0);
        TileDot<T>::run(x + (base + 2LL * a0) * C, ld, na, x + (base + 2LL * b0 + 1) * C, ld, nb, C, 1.0f, vec_ok,
            smem, S);
        __syncthreads();
        if (r < na)
        {
#pragma unroll 8
            for (int kk = 0; kk < kColsPerThread; ++kk)
            {
                int const c = epilogue_col(r, h, kk);
                if (c < nb)
                {
                    // Reference: sim = (m_a . m_b + 1) / 2 with m = x / ||x||.
                    float const cosv = S[r * kSPitch + c] * ia * __ldg(inv_norm + base + 2LL * (b0 + c) + 1);
                    float const sim = (cosv + 1.0f) * 0.5f;
                    if (better(sim, b0 + c, best, best_j))
                    {
                        best = sim;
                        best_j = b0 + c;
                    }
                }
            }
        }
    }
    float const ov = __shfl_xor_sync(0xffffffffu, best, 1);
    int const oj = __shfl_xor_sync(0xffffffffu, best_j, 1);
    if (better(ov, oj, best, best_j))
    {
        best = ov;
        best_j = oj;
    }
    if (h == 0 && r < na)
    {
        long long const o = (static_cast<long long>(split) * B + b) * Na + a0 + r;
        part_val[o] = best;
        part_idx[o] = best_j;
    }
}

// Total order on floats for the descending sort: larger float -> larger key, -0 == +0, NaN largest
// (torch's sort puts NaN first in descending order).
__device__ __forceinline__ unsigned int order_key(float v)
{
    if (v != v)
        return 0xffffffffu;
    if (v == 0.0f)
        v = 0.0f;
    unsigned int const u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Grid over B*Na: combine split partials in split order (= ascending b index, so ties keep the first).
__global__ void merge_combine_kernel(float const* __restrict__ part_val, int const* __restrict__ part_idx, int splits,
    int B, int Na, unsigned int* __restrict__ key, int* __restrict__ dest)
{
    long long const t = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    long long const total = static_cast<long long>(B) * Na;
    if (t >= total)
        return;
    float best = -INFINITY;
    int best_j = INT_MAX;
    for (int s = 0; s < splits; ++s)
    {
        float const v = part_val[s * total + t];
        int const j = part_idx[s * total + t];
        if (better(v, j, best, best_j))
        {
            best = v;
            best_j = j;
        }
    }
    key[t] = order_key(best_j == INT_MAX ? NAN : best);
    dest[t] = best_j == INT_MAX ? 0 : best_j; // only reachable with NaN inputs; keeps indices in range
}

// Grid (ceil(Na / 256), B), block 256: rank of each even token in the stable descending order.
__global__ void __launch_bounds__(256) merge_rank_kernel(
    unsigned int const* __restrict__ key, int Na, int r, int* __restrict__ rank, int* __restrict__ src)
{
    __shared__ unsigned int sk[256];
    int const b = blockIdx.y;
    int const i = blockIdx.x * 256 + threadIdx.x;
    unsigned int const* kb = key + static_cast<long long>(b) * Na;
    unsigned int const ki = i < Na ? kb[i] : 0u;
    int cnt = 0;
    for (int j0 = 0; j0 < Na; j0 += 256)
    {
        __syncthreads();
        if (j0 + threadIdx.x < Na)
            sk[threadIdx.x] = kb[j0 + threadIdx.x];
        __syncthreads();
        int const n = min(256, Na - j0);
        for (int jj = 0; jj < n; ++jj)
        {
            unsigned int const kj = sk[jj];
            cnt += (kj > ki) || (kj == ki && j0 + jj < i);
        }
    }
    if (i < Na)
    {
        rank[static_cast<long long>(b) * Na + i] = cnt;
        if (cnt < r)
            src[static_cast<long long>(b) * r + cnt] = i;
    }
}

// Grid B, block 1024: kept[b][p] = p-th kept even token (rank >= r) in ascending order.
__global__ void __launch_bounds__(1024) merge_kept_kernel(int const* __restrict__ rank, int Na, int r, int* __restrict__ kept)
{
    __shared__ int warp_tot[32];
    int const b = blockIdx.x;
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    int const nwarps = blockDim.x >> 5;
    int offset = 0;
    for (int i0 = 0; i0 < Na; i0 += blockDim.x)
    {
        int const i = i0 + threadIdx.x;
        bool const keep = i < Na && rank[static_cast<long long>(b) * Na + i] >= r;
        unsigned int const ballot = __ballot_sync(0xffffffffu, keep);
        int const before_in_warp = __popc(ballot & ((1u << lane) - 1u));
        if (lane == 0)
            warp_tot[warp] = __popc(ballot);
        __syncthreads();
        int before = 0, total = 0;
        for (int w = 0; w < nwarps; ++w)
        {
            before += w < warp ? warp_tot[w] : 0;
            total += warp_tot[w];
        }
        if (keep)
            kept[static_cast<long long>(b) * Na + offset + before + before_in_warp] = i;
        offset += total;
        __syncthreads();
    }
}

constexpr int kEmitThreads = 256;
constexpr int kEmitChannelsPerThread = 8; // channels handled per pass: 2048

// Grid (N - r, B): one output row per block.
template <typename T>
__global__ void __launch_bounds__(kEmitThreads) merge_emit_kernel(T const* __restrict__ x, float const* __restrict__ size,
    float const* __restrict__ score, int N, int C, int r, int const* __restrict__ kept, int const* __restrict__ src,
    int const* __restrict__ dest, T* __restrict__ x_out, float* __restrict__ size_out)
{
    __shared__ int s_src[kEmitThreads];
    __shared__ float s_w[kEmitThreads];
    int const Na = (N + 1) / 2;
    int const b = blockIdx.y;
    int const o = blockIdx.x;
    int const n_kept = Na - r;
    long long const base = static_cast<long long>(b) * N;
    long long const out_row = static_cast<long long>(b) * (N - r) + o;
    if (o < n_kept)
    {
        int const i = kept[static_cast<long long>(b) * Na + o];
        T const* in = x + (base + 2LL * i) * C;
        T* out = x_out + out_row * C;
        for (int c = threadIdx.x; c < C; c += blockDim.x)
            out[c] = in[c];
        if (threadIdx.x == 0)
            size_out[out_row] = size ? size[base + 2LL * i] : 1.0f;
        return;
    }
    int const j = o - n_kept; // odd-token index: token 2j + 1
    T const* xj = x + (base + 2LL * j + 1) * C;
    T* out = x_out + out_row * C;
    float const sj = size ? size[base + 2LL * j + 1] : 1.0f;
    int const* srcb = src + static_cast<long long>(b) * r;
    int const* destb = dest + static_cast<long long>(b) * Na;
    for (int c0 = 0; c0 < C; c0 += kEmitThreads * kEmitChannelsPerThread)
    {
        float acc[kEmitChannelsPerThread];
#pragma unroll
        for (int u = 0; u < kEmitChannelsPerThread; ++u)
            acc[u] = 0.0f;
        float wsum = 0.0f;
        // Sources in rank order; each thread flags one, then all threads walk the flags in order.
        for (int k0 = 0; k0 < r; k0 += kEmitThreads)
        {
            __syncthreads();
            int const kk = k0 + threadIdx.x;
            int si = -1;
            float w = 0.0f;
            if (kk < r)
            {
                int const i = srcb[kk];
                if (destb[i] == j)
                {
                    si = i;
                    // Reference: weight = score * size of the source (background score 0 drops it).
                    w = score[base + 2LL * i] * (size ? size[base + 2LL * i] : 1.0f);
                }
            }
            s_src[threadIdx.x] = si;
            s_w[threadIdx.x] = w;
            __syncthreads();
            int const n = min(kEmitThreads, r - k0);
            for (int t = 0; t < n; ++t)
            {
                int const i = s_src[t];
                if (i < 0)
                    continue;
                float const w2 = s_w[t];
                wsum += w2;
                T const* xi = x + (base + 2LL * i) * C;
#pragma unroll
                for (int u = 0; u < kEmitChannelsPerThread; ++u)
                {
                    int const c = c0 + u * kEmitThreads + threadIdx.x;
                    if (c < C)
                        acc[u] += to_float(xi[c]) * w2; // product rounded first, as (xa * w) in the reference
                }
            }
        }
        float const new_size = sj + wsum;
#pragma unroll
        for (int u = 0; u < kEmitChannelsPerThread; ++u)
        {
            int const c = c0 + u * kEmitThreads + threadIdx.x;
            if (c < C)
                store_as(out + c, (to_float(xj[c]) * sj + acc[u]) / new_size);
        }
        if (c0 == 0 && threadIdx.x == 0)
            size_out[out_row] = new_size;
    }
}

__global__ void fill_kernel(float* p, long long n, float v)
{
    long long const i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n)
        p[i] = v;
}

// ------------------------------------------------------------------------------------------------
// Host side
// ------------------------------------------------------------------------------------------------

size_t align_up(size_t v) { return (v + 255) & ~static_cast<size_t>(255); }

// Carves aligned sub-buffers out of the caller's workspace (and sizes it when base is NULL).
struct Carver
{
    unsigned char* base;
    size_t used = 0;
    template <typename U>
    U* take(size_t count)
    {
        U* p = base ? reinterpret_cast<U*>(base + used) : nullptr;
        used += align_up(count * sizeof(U));
        return p;
    }
};

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// How the streamed dimension's tiles are shared among blocks: `count` blocks of `per_split` tiles
// each (the last may have fewer), so that at least ~4 blocks per SM are launched even at batch 1.
struct Splits
{
    int per_split;
    int count;
};

int choose_splits(int tiles, long long other_blocks)
{
    int dev = 0, sms = 80;
    if (cudaGetDevice(&dev) == cudaSuccess)
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaGetLastError(); // a failed query must not poison the launch check below
    long long const target = 4LL * (sms > 0 ? sms : 80);
    long long want = (target + other_blocks - 1) / (other_blocks > 0 ? other_blocks : 1);
    int splits = static_cast<int>(want < 1 ? 1 : (want > tiles ? tiles : want));
    return splits < 1 ? 1 : splits;
}

Splits split_tiles(int tiles, long long other_blocks)
{
    int const per_split = ceil_div(tiles, choose_splits(tiles, other_blocks));
    return Splits{per_split, ceil_div(tiles, per_split)}; // no empty split
}

bool aligned16(void const* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

struct SaliencyLayout
{
    float* stat_m;
    float* stat_inv_l;
    float* partial;
    size_t bytes;
};

SaliencyLayout saliency_layout(void* ws, int B, int H, int N)
{
    Carver cv{static_cast<unsigned char*>(ws)};
    SaliencyLayout l{};
    long long const bhn = static_cast<long long>(B) * H * N;
    l.stat_m = cv.take<float>(bhn);
    l.stat_inv_l = cv.take<float>(bhn);
    l.partial = cv.take<float>(static_cast<long long>(ceil_div(N, kTile)) * B * N);
    l.bytes = cv.used;
    return l;
}

template <typename T>
int saliency_impl(void const* qv, void const* kv, float* score, int B, int H, int N, int D, float scale, void* ws,
    cudaStream_t stream)
{
    T const* q = static_cast<T const*>(qv);
    T const* k = static_cast<T const*>(kv);
    SaliencyLayout const l = saliency_layout(ws, B, H, N);
    float const a_scale = SoftmaxDomain<T>::a_scale(scale);
    float const logit_mul = SoftmaxDomain<T>::logit_mul(scale);
    bool const vec_ok = (D % 8 == 0) && aligned16(q) && aligned16(k);
    int const qtiles = ceil_div(N, kTile);
    // Decided before any launch: choose_splits clears the CUDA error state of its own queries.
    Splits const sp = split_tiles(qtiles, static_cast<long long>(qtiles) * B);
    saliency_stats_kernel<T><<<dim3(qtiles, B * H), kThreads, 0, stream>>>(
        q, k, N, D, a_scale, logit_mul, vec_ok, l.stat_m, l.stat_inv_l);
    saliency_entropy_kernel<T><<<dim3(qtiles, sp.count, B), kThreads, 0, stream>>>(
        q, k, B, H, N, D, a_scale, logit_mul, vec_ok, sp.per_split, l.stat_m, l.stat_inv_l, l.partial);
    saliency_finalize_kernel<<<B, 1024, 0, stream>>>(l.partial, sp.count, B, N, score);
    return cudaGetLastError() == cudaSuccess ? VIDTLDR_OK : VIDTLDR_ERR_CUDA;
}

struct MergeLayout
{
    float* inv_norm;
    float* part_val;
    int* part_idx;
    unsigned int* key;
    int* dest;
    int* rank;
    int* src;
    int* kept;
    size_t bytes;
};

MergeLayout merge_layout(void* ws, int B, int N, int r)
{
    Carver cv{static_cast<unsigned char*>(ws)};
    MergeLayout l{};
    if (r <= 0)
        return l; // r = 0 is a plain copy: no workspace
    long long const bna = static_cast<long long>(B) * ((N + 1) / 2);
    long long const splits_max = ceil_div(N / 2, kTile);
    l.inv_norm = cv.take<float>(static_cast<long long>(B) * N);
    l.part_val = cv.take<float>(splits_max * bna);
    l.part_idx = cv.take<int>(splits_max * bna);
    l.key = cv.take<unsigned int>(bna);
    l.dest = cv.take<int>(bna);
    l.rank = cv.take<int>(bna);
    l.src = cv.take<int>(static_cast<long long>(B) * r);
    l.kept = cv.take<int>(bna);
    l.bytes = cv.used;
    return l;
}

template <typename T>
int merge_impl(void const* xv, float const* size, float const* score, void* xov, float* size_out, int B, int N, int C,
    int r, void* ws, cudaStream_t stream)
{
    T const* x = static_cast<T const*>(xv);
    T* x_out = static_cast<T*>(xov);
    long long const rows = static_cast<long long>(B) * N;
    if (r == 0)
    {
        // The reference returns x and size unchanged (original order) when nothing is merged.
        if (cudaMemcpyAsync(x_out, x, rows * C * sizeof(T), cudaMemcpyDeviceToDevice, stream) != cudaSuccess)
            return VIDTLDR_ERR_CUDA;
        if (size)
        {
            if (cudaMemcpyAsync(size_out, size, rows * sizeof(float), cudaMemcpyDeviceToDevice, stream) != cudaSuccess)
                return VIDTLDR_ERR_CUDA;
        }
        else
        {
            fill_kernel<<<static_cast<unsigned int>((rows + 255) / 256), 256, 0, stream>>>(size_out, rows, 1.0f);
        }
        return cudaGetLastError() == cudaSuccess ? VIDTLDR_OK : VIDTLDR_ERR_CUDA;
    }
    MergeLayout const l = merge_layout(ws, B, N, r);
    int const Na = (N + 1) / 2;
    int const Nb = N / 2;
    int const atiles = ceil_div(Na, kTile);
    int const btiles = ceil_div(Nb, kTile);
    // Decided before any launch: choose_splits clears the CUDA error state of its own queries.
    Splits const sp = split_tiles(btiles, static_cast<long long>(atiles) * B);
    merge_inv_norm_kernel<T><<<static_cast<unsigned int>((rows * 32 + 127) / 128), 128, 0, stream>>>(
        x, rows, C, l.inv_norm);
    bool const vec_ok = (C % 8 == 0) && aligned16(x);
    merge_best_kernel<T><<<dim3(atiles, sp.count, B), kThreads, 0, stream>>>(
        x, l.inv_norm, B, N, C, vec_ok, sp.per_split, l.part_val, l.part_idx);
    long long const bna = static_cast<long long>(B) * Na;
    merge_combine_kernel<<<static_cast<unsigned int>((bna + 255) / 256), 256, 0, stream>>>(
        l.part_val, l.part_idx, sp.count, B, Na, l.key, l.dest);
    merge_rank_kernel<<<dim3(ceil_div(Na, 256), B), 256, 0, stream>>>(l.key, Na, r, l.rank, l.src);
    merge_kept_kernel<<<B, 1024, 0, stream>>>(l.rank, Na, r, l.kept);
    merge_emit_kernel<T><<<dim3(N - r, B), kEmitThreads, 0, stream>>>(
        x, size, score, N, C, r, l.kept, l.src, l.dest, x_out, size_out);
    return cudaGetLastError() == cudaSuccess ? VIDTLDR_OK : VIDTLDR_ERR_CUDA;
}

bool dims_ok(long long product) { return product > 0 && product < (1LL << 40); }

} // namespace

extern "C" {

VIDTLDR_API int vidtldr_abi_version(void) { return VIDTLDR_KERNELS_ABI_VERSION; }

VIDTLDR_API const char* vidtldr_error_string(int code)
{
    switch (code)
    {
    case VIDTLDR_OK: return "ok";
    case VIDTLDR_ERR_INVALID_ARGUMENT: return "invalid argument (NULL tensor, dimension < 1, or r outside [0, N/2])";
    case VIDTLDR_ERR_UNSUPPORTED_DTYPE: return "unsupported dtype (expected 0 = float32 or 1 = float16)";
    case VIDTLDR_ERR_SHAPE_TOO_LARGE: return "shape too large for the kernels' index range";
    case VIDTLDR_ERR_WORKSPACE: return "workspace is NULL but the op needs one";
    case VIDTLDR_ERR_CUDA: return "CUDA kernel launch failed";
    default: return "unknown vidtldr error code";
    }
}

VIDTLDR_API size_t vidtldr_saliency_workspace_size(int B, int H, int N, int D)
{
    if (B < 1 || H < 1 || N < 1 || D < 1)
        return 0;
    return saliency_layout(nullptr, B, H, N).bytes;
}

VIDTLDR_API int vidtldr_saliency(const void* q, const void* k, float* score, int B, int H, int N, int D, float scale,
    int dtype, void* workspace, cudaStream_t stream)
{
    if (!q || !k || !score || B < 1 || H < 1 || N < 1 || D < 1)
        return VIDTLDR_ERR_INVALID_ARGUMENT;
    if (dtype != VIDTLDR_DTYPE_FLOAT32 && dtype != VIDTLDR_DTYPE_FLOAT16)
        return VIDTLDR_ERR_UNSUPPORTED_DTYPE;
    // Grid limits: B * H in gridDim.y, B in gridDim.z (<= 65535).
    if (!dims_ok(static_cast<long long>(B) * H * N * D) || static_cast<long long>(B) * H > 65535)
        return VIDTLDR_ERR_SHAPE_TOO_LARGE;
    if (!workspace)
        return VIDTLDR_ERR_WORKSPACE;
    return dtype == VIDTLDR_DTYPE_FLOAT32
        ? saliency_impl<float>(q, k, score, B, H, N, D, scale, workspace, stream)
        : saliency_impl<__half>(q, k, score, B, H, N, D, scale, workspace, stream);
}

VIDTLDR_API size_t vidtldr_merge_workspace_size(int B, int N, int C, int r)
{
    if (B < 1 || N < 1 || C < 1 || r < 1 || r > N / 2)
        return 0;
    return merge_layout(nullptr, B, N, r).bytes;
}

VIDTLDR_API int vidtldr_merge(const void* x, const float* size, const float* score, void* x_out, float* size_out, int B,
    int N, int C, int r, int dtype, void* workspace, cudaStream_t stream)
{
    if (!x || !score || !x_out || !size_out || B < 1 || N < 1 || C < 1 || r < 0 || r > N / 2)
        return VIDTLDR_ERR_INVALID_ARGUMENT;
    if (dtype != VIDTLDR_DTYPE_FLOAT32 && dtype != VIDTLDR_DTYPE_FLOAT16)
        return VIDTLDR_ERR_UNSUPPORTED_DTYPE;
    if (!dims_ok(static_cast<long long>(B) * N * C) || B > 65535)
        return VIDTLDR_ERR_SHAPE_TOO_LARGE;
    if (r > 0 && !workspace)
        return VIDTLDR_ERR_WORKSPACE;
    return dtype == VIDTLDR_DTYPE_FLOAT32
        ? merge_impl<float>(x, size, score, x_out, size_out, B, N, C, r, workspace, stream)
        : merge_impl<__half>(x, size, score, x_out, size_out, B, N, C, r, workspace, stream);
}

} // extern "C"
