// A CPU emulation of the part of CUDA that plugins/kernels/vidtldr_kernels.cu uses, so that the
// kernels' own source runs (and is tested against the PyTorch reference) on machines without a GPU.
//
// What it models: a grid runs block after block; the threads of a block are cooperative fibers on
// one OS thread, each running until its next barrier (__syncthreads, or a warp collective such as
// __shfl_xor_sync / __ballot_sync), in an order reshuffled from a seed at every barrier. `__shared__`
// variables are function statics, so all threads of a block see one copy. A race between two threads
// of a block (a read of shared memory without the barrier that orders it after the write) therefore
// shows up as results that depend on the seed; a barrier that not every live thread reaches is
// reported as a launch failure (cudaGetLastError), as is a launch whose configuration CUDA refuses.
// WMMA fragments hold their whole 16 x 16 matrix in lane 0 (fp16 products, fp32 accumulation).
//
// What it does not model: timing, memory coalescing, warp-lockstep execution, device maths
// (expf/logf here are glibc's, not CUDA's few-ulp versions) or the tensor cores' summation order.
// It is test support only: never built into the package.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 800 // selects the kernels' device code paths (WMMA for fp16), emulated below
#endif

// ---------------------------------------------------------------------------------------- types
struct dim3
{
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct alignas(16) uint4 // CUDA's alignment: a misaligned vector access faults on the GPU (UBSan here)
{
    unsigned int x, y, z, w;
};
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return uint4{x, y, z, w}; }

struct __half
{
    _Float16 v; // IEEE binary16; float -> _Float16 rounds to nearest even, like __float2half_rn
};
inline float __half2float(__half h) { return static_cast<float>(h.v); }
inline __half __float2half_rn(float f) { return __half{static_cast<_Float16>(f)}; }
inline __half __float2half(float f) { return __float2half_rn(f); }

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

enum cudaError_t
{
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorLaunchFailure = 719
};
enum cudaMemcpyKind
{
    cudaMemcpyDeviceToDevice = 3
};
enum cudaDeviceAttr
{
    cudaDevAttrMultiProcessorCount = 16
};

// ------------------------------------------------------------------------------ runtime (host)
extern "C" {
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaMemcpyAsync(void* dst, void const* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream);
}

namespace emu
{

// The thread being run, and the block it belongs to.
struct ThreadCtx
{
    dim3 tid;
    int linear; // x + y * bx + z * bx * by
};
extern ThreadCtx* current;
extern dim3 block_idx;
extern dim3 block_dim;
extern dim3 grid_dim;

void fail_launch(char const* what);  // records a launch failure (cudaGetLastError) with its reason
void sync_block();                   // __syncthreads
void sync_warp();                    // the barrier of every warp collective
unsigned long long* warp_exchange(); // 32 slots shared by the current warp

// Runs body() once per thread of every block; false (and a recorded launch error) when CUDA would
// refuse the configuration or a barrier was not reached by every live thread.
using Body = void (*)(void* arg);
void run_grid(dim3 grid, dim3 block, size_t dynamic_smem, Body body, void* arg);

struct Launch
{
    dim3 grid, block;
    size_t smem;

    // Parameters are converted to the kernel's parameter types at the launch, as CUDA does.
    template <typename... P, typename... A>
    void operator()(void (*kernel)(P...), A&&... args) const
    {
        static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
        struct Call
        {
            void (*kernel)(P...);
            std::tuple<std::decay_t<P>...> params;
        } call{kernel, std::tuple<std::decay_t<P>...>(static_cast<P>(std::forward<A>(args))...)};
        run_grid(grid, block, smem,
            [](void* a) {
                Call* c = static_cast<Call*>(a);
                std::apply(c->kernel, c->params);
            },
            &call);
    }
};

inline Launch launch(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t = nullptr) { return Launch{grid, block, smem}; }

template <typename T>
T shfl_xor(T v, int lane_mask)
{
    static_assert(sizeof(T) <= sizeof(unsigned long long), "shuffle of a type wider than 8 bytes");
    unsigned long long* slots = warp_exchange();
    int const lane = current->linear & 31;
    std::memcpy(&slots[lane], &v, sizeof(T));
    sync_warp();
    T out;
    std::memcpy(&out, &slots[(lane ^ lane_mask) & 31], sizeof(T));
    sync_warp(); // nobody overwrites a slot before every lane has read
    return out;
}

inline unsigned int ballot(int predicate)
{
    unsigned long long* slots = warp_exchange();
    int const lane = current->linear & 31;
    slots[lane] = predicate ? 1ull : 0ull;
    sync_warp();
    unsigned int bits = 0;
    for (int l = 0; l < 32; ++l)
        bits |= (slots[l] ? 1u : 0u) << l;
    sync_warp();
    return bits;
}

} // namespace emu

#define threadIdx (::emu::current->tid)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

// ---------------------------------------------------------------------------- device intrinsics
using std::max;
using std::min;

inline void __syncthreads() { emu::sync_block(); }
inline void __syncwarp(unsigned int = 0xffffffffu) { emu::sync_warp(); }
template <typename T>
inline T __shfl_xor_sync(unsigned int /*mask: all lanes here*/, T v, int lane_mask, int /*width*/ = 32)
{
    return emu::shfl_xor(v, lane_mask);
}
inline unsigned int __ballot_sync(unsigned int /*mask*/, int predicate) { return emu::ballot(predicate); }
inline int __popc(unsigned int v) { return __builtin_popcount(v); }
template <typename T>
inline T __ldg(T const* p)
{
    return *p;
}
inline unsigned int __float_as_uint(float v)
{
    unsigned int u;
    std::memcpy(&u, &v, sizeof u);
    return u;
}
inline float __fmul_rn(float a, float b)
{
    volatile float p = a * b; // never contracted into a following add
    return p;
}

// ------------------------------------------------------------------------------------------ WMMA
namespace nvcuda
{
namespace wmma
{
struct matrix_a
{
};
struct matrix_b
{
};
struct accumulator
{
};
struct row_major
{
};
struct col_major
{
};
enum layout_t
{
    mem_row_major,
    mem_col_major
};

// The whole M x N (or M x K, K x N) matrix, kept by lane 0 of the warp; other lanes hold nothing.
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment
{
    static_assert(M == 16 && N == 16 && K == 16, "only the 16 x 16 x 16 shape is emulated");
    float v[16][16];
};

inline bool lane0() { return (emu::current->linear & 31) == 0; }

// The documented preconditions of load/store_matrix_sync: a 256-bit aligned pointer and a leading
// dimension that is a multiple of 16 bytes. A GPU faults or misreads otherwise; here it is a failure.
template <typename E>
inline void check_operand(void const* p, unsigned ldm)
{
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || (ldm * sizeof(E)) % 16 != 0)
        emu::fail_launch("WMMA operand not 256-bit aligned or ldm not a multiple of 16 bytes");
}

template <typename Use, typename T, typename L>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, float value)
{
    if (lane0())
        for (auto& row : f.v)
            for (float& e : row)
                e = value;
}

// f.v[i][j] = p[offset(i, j)] (matrix order: a is M x K, b is K x N), kept by lane 0.
template <typename Fragment, typename Offset>
inline void load_fragment(Fragment& f, __half const* p, unsigned ldm, Offset offset)
{
    check_operand<__half>(p, ldm);
    if (lane0())
        for (int i = 0; i < 16; ++i)
            for (int j = 0; j < 16; ++j)
                f.v[i][j] = __half2float(p[offset(i, j)]);
}
inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, __half, row_major>& f, __half const* p, unsigned ldm)
{
    load_fragment(f, p, ldm, [ldm](int m, int k) { return m * ldm + k; });
}
inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __half, col_major>& f, __half const* p, unsigned ldm)
{
    load_fragment(f, p, ldm, [ldm](int k, int n) { return n * ldm + k; });
}
inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __half, row_major>& f, __half const* p, unsigned ldm)
{
    load_fragment(f, p, ldm, [ldm](int k, int n) { return k * ldm + n; });
}

template <typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, fragment<matrix_a, 16, 16, 16, __half, LA> const& a,
    fragment<matrix_b, 16, 16, 16, __half, LB> const& b, fragment<accumulator, 16, 16, 16, float> const& c)
{
    if (!lane0())
        return;
    float out[16][16];
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 16; ++n)
        {
            float s = c.v[m][n];
            for (int k = 0; k < 16; ++k)
                s += a.v[m][k] * b.v[k][n]; // fp16 x fp16 is exact in fp32
            out[m][n] = s;
        }
    std::memcpy(d.v, out, sizeof out);
}

inline void store_matrix_sync(float* p, fragment<accumulator, 16, 16, 16, float> const& f, unsigned ldm, layout_t layout)
{
    check_operand<float>(p, ldm);
    if (lane0())
        for (int m = 0; m < 16; ++m)
            for (int n = 0; n < 16; ++n)
                p[layout == mem_row_major ? m * ldm + n : n * ldm + m] = f.v[m][n];
}
} // namespace wmma
} // namespace nvcuda

// Emulator controls, for the tests (exported from the emulated library).
extern "C" {
void emu_configure(unsigned long long seed, int sm_count);
char const* emu_last_failure(void);
}
