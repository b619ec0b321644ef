#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in the order the open work needs them, each logged under
# $OUT (default ./gpu-checks) with its exit code, so one short session on a lent GPU machine
# gives every number at once. Three stages, so each fits a 10-minute command limit:
#
#   bash benchmarks/gpu_checks.sh kernels   # build the kernels, GPU kernel tests, bench_kernels
#   bash benchmarks/gpu_checks.sh inspect   # Nsight Compute sections, compute-sanitizer memcheck/racecheck
#   bash benchmarks/gpu_checks.sh models    # bench_torch_gpu (eager + compile, b1/b8), bench_merge_share
#
# It uses the Python packages already on the machine (no network): the package itself is installed
# without dependencies. A step that fails is logged and the next one still runs.
set -u
cd "$(dirname "$0")/.."
stage="${1:-kernels}"
out="${OUT:-gpu-checks}"
mkdir -p "$out"
export VIDTLDR_PLUGIN_DIR="${VIDTLDR_PLUGIN_DIR:-$PWD/plugins/build-gpu}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" # works even where the editable install cannot

step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name ($*)"
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s" | tee -a "$out/$name.log"
    tail -n 30 "$out/$name.log"
}

arch() { python3 -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}{n}')"; }

# The kernel library for this GPU (kept in the ignored build folder between calls on a warm machine).
build_kernels() {
    if [ -f "$VIDTLDR_PLUGIN_DIR/libvidtldr_kernels.so" ] && [ "${1:-}" != force ]; then
        return
    fi
    # cmake when present (the supported build), else the same kernel library straight from nvcc.
    if command -v cmake >/dev/null; then
        step build 300 python3 -c "from vidtldr_deploy.runtime.plugin_build import build_plugins; print(build_plugins(build_dir='$VIDTLDR_PLUGIN_DIR', cuda_archs='$(arch)'))"
    else
        mkdir -p "$VIDTLDR_PLUGIN_DIR"
        step build 300 nvcc -std=c++17 -O3 -shared -Xcompiler -fPIC -arch="sm_$(arch)" \
            plugins/kernels/vidtldr_kernels.cu -o "$VIDTLDR_PLUGIN_DIR/libvidtldr_kernels.so"
    fi
}

case "$stage" in
kernels)
    step machine 60 sh -c 'nvidia-smi; nvcc --version; cmake --version; python3 -c "import sys, torch; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"'
    step install 120 python3 -m pip install --no-deps --no-build-isolation -q -e .
    build_kernels force
    step kernel_tests 300 python3 -m pytest -q -p no:cacheprovider -ra tests/test_kernels.py
    step bench_kernels 240 python3 benchmarks/bench_kernels.py --batch 1 8 --json "$out/bench_kernels.json"
    ;;
inspect)
    build_kernels
    # What bounds each kernel (gpu_notes.md has the floors): speed of light, pipes, occupancy,
    # at UMT-B's first merge layer, batch 1, fp16, one launch of each kernel after a warm-up call.
    if command -v ncu >/dev/null; then
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
    if command -v compute-sanitizer >/dev/null; then
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
    echo "usage: bash benchmarks/gpu_checks.sh kernels|inspect|models" >&2
    exit 2
    ;;
esac
