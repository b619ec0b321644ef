#include "merge_plugin.h"

#include "plugin_common.h"
#include "vidtldr_kernels.h"

#include <cstdio>
#include <limits>
#include <new>

using namespace nvinfer1;

namespace vidtldr
{

// in: x (B, N, C), size (B, N), score (B, N); out (optional): x' (B, N - r, C), size' (B, N - r).
bool MergePlugin::checkShapes(Dims const* in, Dims const* out) const noexcept
{
    Dims const& x = in[0];
    if (x.nbDims != 3 || in[1].nbDims != 2 || in[2].nbDims != 2)
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "expects x (B, N, C), size (B, N), score (B, N)");
        return false;
    }
    for (int32_t i = 1; i < 3; ++i)
    {
        if (in[i].d[0] != x.d[0] || in[i].d[1] != x.d[1])
        {
            fail(ErrorCode::kINVALID_ARGUMENT, "size and score must have shape (B, N) matching x");
            return false;
        }
    }
    if (x.d[1] >= 0 && (mR < 0 || mR > x.d[1] / 2))
    {
        char msg[160];
        std::snprintf(msg, sizeof(msg), "r = %d is outside [0, N // 2] for N = %lld", mR,
            static_cast<long long>(x.d[1]));
        fail(ErrorCode::kINVALID_ARGUMENT, msg);
        return false;
    }
    if (out != nullptr)
    {
        bool const ok = out[0].nbDims == 3 && out[1].nbDims == 2 && out[0].d[0] == x.d[0]
            && out[0].d[1] == x.d[1] - mR && out[0].d[2] == x.d[2] && out[1].d[0] == x.d[0]
            && out[1].d[1] == x.d[1] - mR;
        if (!ok)
        {
            fail(ErrorCode::kINVALID_ARGUMENT, "outputs must be x' (B, N - r, C) and size' (B, N - r)");
            return false;
        }
    }
    return true;
}

bool MergePlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != 3 || nbOutputs != 2 || pos < 0 || pos > 4)
        return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR)
        return false;
    switch (pos)
    {
    case 0: return d.type == DataType::kFLOAT || d.type == DataType::kHALF; // x
    case 3: return d.type == inOut[0].desc.type;                            // x' like x
    default: return d.type == DataType::kFLOAT;                             // size, score, size'
    }
}

int32_t MergePlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != 2 || nbInputs != 3)
        return -1;
    int code = 0;
    if (!kernelDtype(inputTypes[0], code))
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "x must be float32 or float16");
        return -1;
    }
    outputTypes[0] = inputTypes[0];
    outputTypes[1] = DataType::kFLOAT;
    return 0;
}

int32_t MergePlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (inputs == nullptr || outputs == nullptr || nbInputs != 3 || nbOutputs != 2 || inputs[0].nbDims != 3)
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "expects x of rank 3 and two outputs");
        return -1;
    }
    // N - r: a constant whenever N is (token counts are static per clip). The batch is the input's
    // expression, so an engine with a dynamic batch (export --max-batch) keeps it dynamic.
    IDimensionExpr const* kept = exprBuilder.operation(DimensionOperation::kSUB, *inputs[0].d[1], *exprBuilder.constant(mR));
    if (kept == nullptr)
        return -1;
    outputs[0].nbDims = 3;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = kept;
    outputs[0].d[2] = inputs[0].d[2];
    outputs[1].nbDims = 2;
    outputs[1].d[0] = inputs[0].d[0];
    outputs[1].d[1] = kept;
    return 0;
}

size_t MergePlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    if (inputs == nullptr || nbInputs != 3 || inputs[0].max.nbDims != 3)
        return 0;
    Dims const& m = inputs[0].max;
    return vidtldr_merge_workspace_size(
        static_cast<int>(m.d[0]), static_cast<int>(m.d[1]), static_cast<int>(m.d[2]), static_cast<int>(mR));
}

int32_t MergePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "enqueue called without tensors");
        return -1;
    }
    Dims const& x = inputDesc[0].dims;
    int dtype = 0;
    if (x.nbDims != 3 || !kernelDtype(inputDesc[0].type, dtype))
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "x must be a 3-D float32 or float16 tensor");
        return -1;
    }
    int const status = vidtldr_merge(inputs[0], static_cast<float const*>(inputs[1]),
        static_cast<float const*>(inputs[2]), outputs[0], static_cast<float*>(outputs[1]), static_cast<int>(x.d[0]),
        static_cast<int>(x.d[1]), static_cast<int>(x.d[2]), mR, dtype, workspace, stream);
    return kernelResult(status);
}

IPluginV3* MergePlugin::create(PluginFieldCollection const* fc) noexcept
{
    int64_t r = -1;
    if (!readIntField(fc, kAttribute, r) || r < 0 || r > std::numeric_limits<int32_t>::max())
    {
        reportError(nullptr, ErrorCode::kINVALID_ARGUMENT, kName, "attribute `r` (int >= 0) is missing or invalid");
        return nullptr;
    }
    return new (std::nothrow) MergePlugin(static_cast<int32_t>(r));
}

} // namespace vidtldr
