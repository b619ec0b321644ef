#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, each logged under $OUT (default ./gpu-checks) with its exit
# code. With no argument, one run (`quick`) of under 8 minutes does the most valuable checks first
# and writes at most 8 files, so a single short call on a lent GPU machine gives the key numbers:
#
#   bash benchmarks/gpu_checks.sh           # quick: setup, build, GPU kernel tests, bench_kernels
#                                           # (batch 1 and 8), bench_torch_gpu eager (batch 1 and 8)
#   bash benchmarks/gpu_checks.sh kernels   # build the kernels, GPU kernel tests, bench_kernels
#   bash benchmarks/gpu_checks.sh inspect   # Nsight Compute sections, compute-sanitizer memcheck/racecheck
#   bash benchmarks/gpu_checks.sh models    # bench_torch_gpu (eager + compile, b1/b8), bench_merge_share
#
# DRY_RUN=1 prints each step's command and time limit instead of running it, and imports every
# Python module the step would run (benchmarks/dry_imports.py); it exits 1 if any import fails
# (checks the script where there is no GPU). It uses the Python packages already on the machine (no network): the
# package itself is installed without dependencies. A step that fails is logged and the next one
# still runs; in `quick` every step's limit is also cut to what is left of the 8-minute budget.
set -u
cd "$(dirname "$0")/.."
stage="${1:-quick}"
out="${OUT:-gpu-checks}"
mkdir -p "$out"
[ "${DRY_RUN:-0}" = 1 ] || : >"$out/summary.txt"
export VIDTLDR_PLUGIN_DIR="${VIDTLDR_PLUGIN_DIR:-$PWD/plugins/build-gpu}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" # works even where the editable install cannot

# The whole `quick` run stays under 8 minutes: steps get at most what is left of this budget.
budget="${GPU_CHECKS_BUDGET_S:-450}"
dry="${DRY_RUN:-0}"
dry_failed=0

# step NAME LIMIT CMD...: run CMD with a time limit, output to $out/$LOG.log (LOG defaults to NAME;
# set LOG to group several steps in one file, which keeps `quick` at 8 files or fewer).
step() {
    local name=$1 limit=$2
    shift 2
    local log="$out/${LOG:-$name}.log"
    if [ "$stage" = quick ]; then
        local left=$((budget - SECONDS))
        [ "$left" -lt "$limit" ] && limit=$left
        if [ "$limit" -le 5 ]; then
            echo "== $name skipped: the ${budget} s budget is spent" | tee -a "$log" "$out/summary.txt"
            return
        fi
    fi
    echo "== $name (limit ${limit} s): $*"
    if [ "$dry" = 1 ]; then
        python3 benchmarks/dry_imports.py "$@" || dry_failed=1
        return
    fi
    local start=$SECONDS
    echo "== $name: $*" >>"$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s" | tee -a "$log"
    echo "$name exit $rc after $((SECONDS - start)) s" >>"$out/summary.txt"
    tail -n 30 "$log"
}

arch() {
    [ "$dry" = 1 ] && { echo 90; return; }
    python3 -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}{n}')"
}

# The kernel library for this GPU (kept in the ignored build folder between calls on a warm machine).
build_kernels() {
    if [ -f "$VIDTLDR_PLUGIN_DIR/libvidtldr_kernels.so" ] && [ "${1:-}" != force ]; then
        return
    fi
    # cmake when present (the supported build), else the same kernel library straight from nvcc.
    if [ "$dry" = 1 ] || command -v cmake >/dev/null; then
        step build 300 python3 -c "from vidtldr_deploy.runtime.plugin_build import build_plugins; print(build_plugins(build_dir='$VIDTLDR_PLUGIN_DIR', cuda_archs='$(arch)'))"
    else
        mkdir -p "$VIDTLDR_PLUGIN_DIR"
        step build 300 nvcc -std=c++17 -O3 -shared -Xcompiler -fPIC -arch="sm_$(arch)" \
            plugins/kernels/vidtldr_kernels.cu -o "$VIDTLDR_PLUGIN_DIR/libvidtldr_kernels.so"
    fi
}

case "$stage" in
quick)
    # Most valuable first: a broken build or failing kernel test makes the benchmarks moot.
    LOG=setup step machine 45 sh -c 'nvidia-smi; nvcc --version; cmake --version; python3 -c "import sys, torch; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"'
    LOG=setup step install 90 python3 -m pip install --no-deps --no-build-isolation -q -e .
    build_kernels force
    step kernel_tests 150 python3 -m pytest -q -p no:cacheprovider -ra tests/runtime/test_kernels.py
    step bench_kernels 90 python3 benchmarks/bench_kernels.py --batch 1 8 --json "$out/bench_kernels.json"
    step bench_torch_gpu 150 python3 benchmarks/bench_torch_gpu.py --batches 1 8 --modes eager \
        --iterations 50 --warmup 10 --json "$out/bench_torch_gpu.json"
    ;;
kernels)
    step machine 60 sh -c 'nvidia-smi; nvcc --version; cmake --version; python3 -c "import sys, torch; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"'
    step install 120 python3 -m pip install --no-deps --no-build-isolation -q -e .
    build_kernels force
    step kernel_tests 300 python3 -m pytest -q -p no:cacheprovider -ra tests/runtime/test_kernels.py
    step bench_kernels 240 python3 benchmarks/bench_kernels.py --batch 1 8 --json "$out/bench_kernels.json"
    ;;
inspect)
    build_kernels
    # What bounds each kernel (gpu_notes.md has the floors): speed of light, pipes, occupancy,
    # at UMT-B's first merge layer, batch 1, fp16, one launch of each kernel after a warm-up call.
    if [ "$dry" = 1 ] || command -v ncu >/dev/null; then
        step ncu_kernels 240 ncu --clock-control none --kernel-name 'regex:saliency|merge' --launch-skip 9 --launch-count 9 \
            --section SpeedOfLight --section ComputeWorkloadAnalysis --section Occupancy \
            --section MemoryWorkloadAnalysis --section WarpStateStats python3 -c "
import torch
from vidtldr_deploy.runtime import kernels
q, k = (torch.randn(1, 12, 2352, 64, device='cuda', dtype=torch.float16) for _ in range(2))
x = torch.randn(1, 2352, 768, device='cuda', dtype=torch.float16)
size, score = 1 + torch.rand(1, 2352, device='cuda'), torch.rand(1, 2352, device='cuda')
for _ in range(2):  # 3 saliency + 6 merge launches each; the first round is skipped (warm-up)
    kernels.saliency(q, k, 0.125)
    kernels.merge(x, size, score, 600)
torch.cuda.synchronize()
print('ok')"
    fi
    # The GPU's own race and memory checkers over small calls of both kernels (fp32 and fp16).
    if [ "$dry" = 1 ] || command -v compute-sanitizer >/dev/null; then
        for tool in memcheck racecheck; do
            step "sanitizer_$tool" 150 compute-sanitizer --tool "$tool" --error-exitcode 3 python3 -c "
import torch
from vidtldr_deploy.runtime import kernels
for dt in (torch.float32, torch.float16):
    q, k = (torch.randn(2, 3, 130, 64, device='cuda').to(dt) for _ in range(2))
    kernels.saliency(q, k, 0.125)
    x = torch.randn(2, 131, 72, device='cuda').to(dt)
    kernels.merge(x, 1 + torch.rand(2, 131, device='cuda'), torch.rand(2, 131, device='cuda'), 60)
torch.cuda.synchronize()
print('ok')"
        done
    fi
    ;;
models)
    build_kernels
    step bench_torch_gpu 420 python3 benchmarks/bench_torch_gpu.py --batches 1 8 --modes eager compile \
        --json "$out/bench_torch_gpu.json"
    step bench_merge_share 150 python3 benchmarks/bench_merge_share.py --batches 1 8 --json "$out/bench_merge_share.json"
    ;;
*)
    echo "usage: bash benchmarks/gpu_checks.sh [quick|kernels|inspect|models]" >&2
    exit 2
    ;;
esac
[ "$dry" = 1 ] && exit "$dry_failed"
exit 0
