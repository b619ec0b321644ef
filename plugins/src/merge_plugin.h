// vidtldr::Merge (version 1): x (B, N, C) fp32/fp16, size (B, N) fp32, score (B, N) fp32
//   -> x' (B, N - r, C) in x's dtype, size' (B, N - r) fp32. Attribute: int `r` (resolved count,
//   0 <= r <= N // 2). See docs/design.md "merge(x, size, s, r)".
#ifndef VIDTLDR_MERGE_PLUGIN_H
#define VIDTLDR_MERGE_PLUGIN_H

#include "plugin_base.h"

namespace vidtldr
{

class MergePlugin final : public PluginBase<MergePlugin>
{
public:
    static constexpr char const* kName = "Merge";
    static constexpr char const* kAttribute = "r";
    static constexpr nvinfer1::PluginFieldType kAttributeType = nvinfer1::PluginFieldType::kINT32;
    static constexpr int32_t kNbInputs = 3;
    static constexpr int32_t kNbOutputs = 2;
    static constexpr char const* kIoDescription = "expects 3 inputs (x, size, score) and 2 outputs (x', size')";
    // nullptr (error reported) unless fc holds an integer `r` >= 0 (checked against N at configure).
    static nvinfer1::IPluginV3* create(nvinfer1::PluginFieldCollection const* fc) noexcept;

    explicit MergePlugin(int32_t r)
        : mR(r)
    {
    }
    void const* attribute() const noexcept { return &mR; }

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
    int32_t mR;
};

using MergePluginCreator = PluginCreator<MergePlugin>;

} // namespace vidtldr

#endif // VIDTLDR_MERGE_PLUGIN_H
