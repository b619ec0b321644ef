// vidtldr::Saliency (version 1): q, k (B, H, N, D) fp32/fp16 -> foreground score (B, N) fp32.
// Attribute: float `scale` (the attention scale, usually D^-0.5). See docs/design.md "saliency(P0)".
#ifndef VIDTLDR_SALIENCY_PLUGIN_H
#define VIDTLDR_SALIENCY_PLUGIN_H

#include "plugin_base.h"

namespace vidtldr
{

class SaliencyPlugin final : public PluginBase<SaliencyPlugin>
{
public:
    static constexpr char const* kName = "Saliency";
    static constexpr char const* kAttribute = "scale";
    static constexpr nvinfer1::PluginFieldType kAttributeType = nvinfer1::PluginFieldType::kFLOAT32;
    static constexpr int32_t kNbInputs = 2;
    static constexpr int32_t kNbOutputs = 1;
    static constexpr char const* kIoDescription = "expects 2 inputs (q, k) and 1 output (score)";
    // nullptr (error reported) unless fc holds a finite `scale`.
    static nvinfer1::IPluginV3* create(nvinfer1::PluginFieldCollection const* fc) noexcept;

    explicit SaliencyPlugin(float scale)
        : mScale(scale)
    {
    }
    void const* attribute() const noexcept { return &mScale; }

    // (in, out) shapes, in the order of the op's inputs and outputs; reports what is wrong.
    bool checkShapes(nvinfer1::Dims const* in, nvinfer1::Dims const* out) const noexcept;

    // IPluginV3OneBuild
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

private:
    float mScale;
};

using SaliencyPluginCreator = PluginCreator<SaliencyPlugin>;

} // namespace vidtldr

#endif // VIDTLDR_SALIENCY_PLUGIN_H
