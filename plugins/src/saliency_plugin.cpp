#include "saliency_plugin.h"

#include "plugin_common.h"
#include "vidtldr_kernels.h"

#include <cmath>
#include <new>

using namespace nvinfer1;

namespace vidtldr
{

// in: q, k (B, H, N, D); out: score (B, N).
bool SaliencyPlugin::checkShapes(Dims const* in, Dims const* out) const noexcept
{
    Dims const& q = in[0];
    Dims const& k = in[1];
    if (q.nbDims != 4 || k.nbDims != 4)
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "q and k must be 4-D (B, H, N, D)");
        return false;
    }
    for (int32_t i = 0; i < 4; ++i)
    {
        if (q.d[i] != k.d[i])
        {
            fail(ErrorCode::kINVALID_ARGUMENT, "q and k must have the same shape (B, H, N, D)");
            return false;
        }
    }
    if (out != nullptr && (out->nbDims != 2 || out->d[0] != q.d[0] || out->d[1] != q.d[2]))
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "score must have shape (B, N)");
        return false;
    }
    return true;
}

bool SaliencyPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos > 2)
        return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR)
        return false;
    switch (pos)
    {
    case 0: return d.type == DataType::kFLOAT || d.type == DataType::kHALF;
    case 1: return d.type == inOut[0].desc.type;
    default: return d.type == DataType::kFLOAT; // the score is always fp32
    }
}

int32_t SaliencyPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != 1 || nbInputs != 2)
        return -1;
    int code = 0;
    if (!kernelDtype(inputTypes[0], code) || inputTypes[1] != inputTypes[0])
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "q and k must both be float32 or both float16");
        return -1;
    }
    outputTypes[0] = DataType::kFLOAT;
    return 0;
}

int32_t SaliencyPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    if (inputs == nullptr || outputs == nullptr || nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 4)
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "expects q, k of rank 4 and one output");
        return -1;
    }
    outputs[0].nbDims = 2;
    outputs[0].d[0] = inputs[0].d[0]; // B
    outputs[0].d[1] = inputs[0].d[2]; // N
    return 0;
}

size_t SaliencyPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    if (inputs == nullptr || nbInputs != 2 || inputs[0].max.nbDims != 4)
        return 0;
    Dims const& m = inputs[0].max; // the largest shape the engine will see
    return vidtldr_saliency_workspace_size(static_cast<int>(m.d[0]), static_cast<int>(m.d[1]),
        static_cast<int>(m.d[2]), static_cast<int>(m.d[3]));
}

int32_t SaliencyPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "enqueue called without tensors");
        return -1;
    }
    Dims const& q = inputDesc[0].dims;
    int dtype = 0;
    if (q.nbDims != 4 || !kernelDtype(inputDesc[0].type, dtype))
    {
        fail(ErrorCode::kINVALID_ARGUMENT, "q must be a 4-D float32 or float16 tensor");
        return -1;
    }
    int const status = vidtldr_saliency(inputs[0], inputs[1], static_cast<float*>(outputs[0]),
        static_cast<int>(q.d[0]), static_cast<int>(q.d[1]), static_cast<int>(q.d[2]), static_cast<int>(q.d[3]), mScale,
        dtype, workspace, stream);
    return kernelResult(status);
}

IPluginV3* SaliencyPlugin::create(PluginFieldCollection const* fc) noexcept
{
    float scale = 0.0f;
    if (!readFloatField(fc, kAttribute, scale) || !std::isfinite(scale))
    {
        reportError(nullptr, ErrorCode::kINVALID_ARGUMENT, kName,
            "attribute `scale` (finite float) is missing or invalid");
        return nullptr;
    }
    return new (std::nothrow) SaliencyPlugin(scale);
}

} // namespace vidtldr
