// The scheduler and runtime of the CPU CUDA emulation (see include/emu_cuda.h for what it models).
#include "emu_cuda.h"

#include <ucontext.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace emu
{

ThreadCtx* current = nullptr;
dim3 block_idx;
dim3 block_dim;
dim3 grid_dim;

namespace
{

enum class Wait
{
    Run,   // runnable
    Block, // at __syncthreads
    Warp,  // at a warp collective
    Done   // returned from the kernel
};

struct Fiber
{
    ucontext_t ctx;
    ThreadCtx t;
    Wait wait;
    int warp;
};

constexpr size_t kStackBytes = 128 * 1024;
constexpr int kMaxBlockThreads = 1024;

ucontext_t scheduler_ctx;
Fiber* running = nullptr;
Body body_fn = nullptr;
void* body_arg = nullptr;
std::vector<Fiber> fibers(kMaxBlockThreads);
std::vector<std::vector<char>> stacks(kMaxBlockThreads);
std::vector<std::array<unsigned long long, 32>> warp_slots(kMaxBlockThreads / 32);

std::mt19937_64 rng(1);
int sm_count = 4;
cudaError_t last_error = cudaSuccess;
std::string failure;

void fail(cudaError_t code, std::string const& what)
{
    if (last_error == cudaSuccess)
        last_error = code;
    if (failure.empty())
        failure = what;
}

void trampoline()
{
    body_fn(body_arg);
    running->wait = Wait::Done; // returning resumes the scheduler through uc_link
}

void yield(Wait w)
{
    running->wait = w;
    swapcontext(&running->ctx, &scheduler_ctx);
}

std::string where()
{
    char buf[96];
    std::snprintf(buf, sizeof buf, "block (%u, %u, %u) of grid (%u, %u, %u)", block_idx.x, block_idx.y, block_idx.z,
        grid_dim.x, grid_dim.y, grid_dim.z);
    return buf;
}

void run_block(int n)
{
    for (int i = 0; i < n; ++i)
    {
        Fiber& f = fibers[i];
        f.t.tid = dim3(i % block_dim.x, (i / block_dim.x) % block_dim.y, i / (block_dim.x * block_dim.y));
        f.t.linear = i;
        f.wait = Wait::Run;
        f.warp = i / 32;
        if (stacks[i].empty())
            stacks[i].resize(kStackBytes);
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[i].data();
        f.ctx.uc_stack.ss_size = stacks[i].size();
        f.ctx.uc_link = &scheduler_ctx;
        makecontext(&f.ctx, trampoline, 0);
    }
    std::vector<int> order(n);
    for (int i = 0; i < n; ++i)
        order[i] = i;
    int const nwarps = (n + 31) / 32;
    for (;;)
    {
        // Every runnable thread runs up to its next barrier, in a fresh random order each round.
        std::shuffle(order.begin(), order.end(), rng);
        for (int i : order)
        {
            Fiber& f = fibers[i];
            if (f.wait != Wait::Run)
                continue;
            running = &f;
            current = &f.t;
            swapcontext(&scheduler_ctx, &f.ctx);
        }
        int alive = 0, at_block = 0;
        for (int i = 0; i < n; ++i)
        {
            alive += fibers[i].wait != Wait::Done;
            at_block += fibers[i].wait == Wait::Block;
        }
        if (alive == 0)
            return;
        bool released = false;
        bool stuck_warp = false;
        for (int w = 0; w < nwarps; ++w)
        {
            int const lo = w * 32, hi = std::min(n, lo + 32);
            int at_warp = 0;
            for (int i = lo; i < hi; ++i)
                at_warp += fibers[i].wait == Wait::Warp;
            if (at_warp == 0)
                continue;
            if (at_warp == hi - lo)
            {
                for (int i = lo; i < hi; ++i)
                    fibers[i].wait = Wait::Run;
                released = true;
            }
            else
                stuck_warp = true;
        }
        if (released)
            continue;
        if (!stuck_warp && at_block == alive)
        {
            if (alive != n)
                fail(cudaErrorLaunchFailure,
                    "__syncthreads reached by " + std::to_string(alive) + " threads while " + std::to_string(n - alive)
                        + " had already returned, in " + where());
        }
        else
        {
            fail(cudaErrorLaunchFailure,
                "divergent barrier: some lanes wait at a warp collective while others of their warp are at "
                "__syncthreads or have returned, in "
                    + where());
        }
        for (int i = 0; i < n; ++i) // release everyone, so the launch still terminates after a failure
            if (fibers[i].wait != Wait::Done)
                fibers[i].wait = Wait::Run;
    }
}

bool config_ok(dim3 grid, dim3 block, size_t dynamic_smem)
{
    unsigned long long const threads = 1ull * block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0)
        return false;
    if (grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u)
        return false;
    if (block.x > 1024u || block.y > 1024u || block.z > 64u || threads > static_cast<unsigned>(kMaxBlockThreads))
        return false;
    return dynamic_smem <= 48 * 1024;
}

} // namespace

void fail_launch(char const* what) { fail(cudaErrorLaunchFailure, std::string(what) + ", in " + where()); }
void sync_block() { yield(Wait::Block); }
void sync_warp() { yield(Wait::Warp); }
unsigned long long* warp_exchange() { return warp_slots[running->warp].data(); }

void run_grid(dim3 grid, dim3 block, size_t dynamic_smem, Body body, void* arg)
{
    if (!config_ok(grid, block, dynamic_smem))
    {
        char buf[160];
        std::snprintf(buf, sizeof buf, "invalid launch configuration: grid (%u, %u, %u), block (%u, %u, %u)", grid.x,
            grid.y, grid.z, block.x, block.y, block.z);
        fail(cudaErrorInvalidConfiguration, buf);
        return;
    }
    body_fn = body;
    body_arg = arg;
    grid_dim = grid;
    block_dim = block;
    int const n = static_cast<int>(block.x * block.y * block.z);
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x)
            {
                block_idx = dim3(x, y, z);
                run_block(n);
            }
    current = nullptr;
    running = nullptr;
}

} // namespace emu

extern "C" {

cudaError_t cudaGetLastError(void)
{
    cudaError_t const e = emu::last_error;
    emu::last_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDevice(int* device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int /*device*/)
{
    if (attr != cudaDevAttrMultiProcessorCount)
        return cudaErrorInvalidValue;
    *value = emu::sm_count;
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, void const* src, size_t count, cudaMemcpyKind, cudaStream_t)
{
    std::memmove(dst, src, count);
    return cudaSuccess;
}

__attribute__((visibility("default"))) void emu_configure(unsigned long long seed, int sm_count)
{
    emu::rng.seed(seed);
    emu::sm_count = sm_count;
    emu::last_error = cudaSuccess;
    emu::failure.clear();
}

__attribute__((visibility("default"))) char const* emu_last_failure(void) { return emu::failure.c_str(); }

} // extern "C"
