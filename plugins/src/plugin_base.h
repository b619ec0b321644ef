// What every vid-TLDR plugin shares, written once: the IPluginV3 capability plumbing, its names,
// clone / attachToContext (copies that pick up the engine's error recorder), error reporting, the
// serialisation of the op's single attribute, the creator, and enqueue's kernel-status check.
//
// A plugin `class P final : public PluginBase<P>` provides
//   static constexpr char const* kName;                       the ONNX op type ("Saliency", "Merge")
//   static constexpr char const* kAttribute;                  its one attribute ("scale", "r")
//   static constexpr nvinfer1::PluginFieldType kAttributeType;
//   static constexpr int32_t kNbInputs, kNbOutputs;
//   static constexpr char const* kIoDescription;              "expects 2 inputs (q, k) and 1 output ..."
//   static nvinfer1::IPluginV3* create(nvinfer1::PluginFieldCollection const* fc) noexcept;
//   void const* attribute() const noexcept;                   the member getFieldsToSerialize points at
//   bool checkShapes(Dims const* in, Dims const* out) const;  reports (fail) and returns false if wrong
// and its op-specific IPluginV3OneBuild / IPluginV3OneRuntime methods; PluginCreator<P> is its creator.
#ifndef VIDTLDR_PLUGIN_BASE_H
#define VIDTLDR_PLUGIN_BASE_H

#include "NvInferRuntime.h"
#include "plugin_common.h"
#include "vidtldr_kernels.h"

#include <cstdio>
#include <new>

namespace vidtldr
{

template <typename Derived>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
{
public:
    PluginBase& operator=(PluginBase const&) = delete;
    ~PluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    nvinfer1::IPluginV3* clone() noexcept override { return copy(); }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return Derived::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild / IPluginV3OneRuntime: one shape check, at build time and at run time.
    int32_t getNbOutputs() const noexcept override { return Derived::kNbOutputs; }
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override
    {
        return checkIo(in, nbInputs, out, nbOutputs, [](nvinfer1::DynamicPluginTensorDesc const& d) { return d.desc.dims; });
    }
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override
    {
        return checkIo(in, nbInputs, out, nbOutputs, [](nvinfer1::PluginTensorDesc const& d) { return d.dims; });
    }

    // IPluginV3OneRuntime
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override
    {
        Derived* attached = copy();
        if (attached != nullptr && context != nullptr)
            static_cast<PluginBase*>(attached)->mRecorder = context->getErrorRecorder();
        return attached;
    }
    // The same field the creator reads from the ONNX attribute, so deserialisation parses alike.
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        mSerialField = nvinfer1::PluginField(Derived::kAttribute, self().attribute(), Derived::kAttributeType, 1);
        mSerialCollection.nbFields = 1;
        mSerialCollection.fields = &mSerialField;
        return &mSerialCollection;
    }

protected:
    PluginBase() = default;
    // The interfaces are not copyable: a copy gets fresh bases, the recorder, and its own
    // serialisation table (which points into its own object, never into the original).
    PluginBase(PluginBase const& other)
        : nvinfer1::IPluginV3()
        , nvinfer1::IPluginV3OneCore()
        , nvinfer1::IPluginV3OneBuild()
        , nvinfer1::IPluginV3OneRuntime()
        , mRecorder(other.mRecorder)
    {
    }

    void fail(nvinfer1::ErrorCode code, char const* message) const noexcept
    {
        reportError(mRecorder, code, Derived::kName, message);
    }

    // enqueue's last step: 0 for VIDTLDR_OK, else the kernel's error reported and -1.
    int32_t kernelResult(int status) const noexcept
    {
        if (status == VIDTLDR_OK)
            return 0;
        char msg[256];
        std::snprintf(msg, sizeof(msg), "kernel failed: %s (code %d)", vidtldr_error_string(status), status);
        fail(status == VIDTLDR_ERR_CUDA ? nvinfer1::ErrorCode::kFAILED_EXECUTION : nvinfer1::ErrorCode::kINVALID_ARGUMENT,
            msg);
        return -1;
    }

private:
    template <typename Desc, typename DimsOf>
    int32_t checkIo(Desc const* in, int32_t nbInputs, Desc const* out, int32_t nbOutputs, DimsOf dimsOf) const noexcept
    {
        if (in == nullptr || out == nullptr || nbInputs != Derived::kNbInputs || nbOutputs != Derived::kNbOutputs)
        {
            fail(nvinfer1::ErrorCode::kINVALID_ARGUMENT, Derived::kIoDescription);
            return -1;
        }
        nvinfer1::Dims ins[Derived::kNbInputs];
        nvinfer1::Dims outs[Derived::kNbOutputs];
        for (int32_t i = 0; i < Derived::kNbInputs; ++i)
            ins[i] = dimsOf(in[i]);
        for (int32_t i = 0; i < Derived::kNbOutputs; ++i)
            outs[i] = dimsOf(out[i]);
        return self().checkShapes(ins, outs) ? 0 : -1;
    }

    Derived const& self() const noexcept { return static_cast<Derived const&>(*this); }
    Derived* copy() const noexcept { return new (std::nothrow) Derived(self()); }

    nvinfer1::IErrorRecorder* mRecorder{nullptr}; // set on the copy attachToContext returns; not owned
    nvinfer1::PluginField mSerialField{};
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

template <typename Plugin>
class PluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    PluginCreator()
        : mField(Plugin::kAttribute, nullptr, Plugin::kAttributeType, 1)
    {
        mCollection.nbFields = 1;
        mCollection.fields = &mField;
    }
    PluginCreator(PluginCreator const&) = delete;
    PluginCreator& operator=(PluginCreator const&) = delete;

    char const* getPluginName() const noexcept override { return Plugin::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }
    // Build phase: fields from the ONNX node's attributes; runtime: from getFieldsToSerialize.
    nvinfer1::IPluginV3* createPlugin(
        char const* /*name*/, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept override
    {
        return Plugin::create(fc);
    }

private:
    nvinfer1::PluginField mField;
    nvinfer1::PluginFieldCollection mCollection{};
};

} // namespace vidtldr

#endif // VIDTLDR_PLUGIN_BASE_H
