// Entry points that make libvidtldr_plugins usable by every TensorRT loading path:
//  - static registration (REGISTER_TENSORRT_PLUGIN): the creators are registered in the global
//    plugin registry when the library is dlopen'ed (ctypes.CDLL, Polygraphy --plugins,
//    trtexec --staticPlugins);
//  - dynamic registration (getCreators / setLoggerFinder): IPluginRegistry::loadLibrary,
//    trtexec --dynamicPlugins, plugin libraries serialised into engines.
//
// Caveat: IPluginRegistry::loadLibrary is documented to fail when a creator it gets from
// getCreators is already registered, and dlopen runs the static registrars first. Configure with
// -DVIDTLDR_STATIC_REGISTRATION=OFF to build a dynamic-only library if loadLibrary refuses it.
#include "merge_plugin.h"
#include "plugin_common.h"
#include "saliency_plugin.h"

#include "NvInferRuntime.h"

#if defined(_WIN32)
#define VIDTLDR_PLUGIN_EXPORT __declspec(dllexport)
#else
#define VIDTLDR_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifndef VIDTLDR_STATIC_REGISTRATION
#define VIDTLDR_STATIC_REGISTRATION 1
#endif

#if VIDTLDR_STATIC_REGISTRATION
namespace vidtldr
{
REGISTER_TENSORRT_PLUGIN(SaliencyPluginCreator);
REGISTER_TENSORRT_PLUGIN(MergePluginCreator);
} // namespace vidtldr
#endif

extern "C" VIDTLDR_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    vidtldr::setLoggerFinder(finder);
}

// Signature TensorRT 10+ looks up in a dynamic plugin library (see TensorRT's plugin/vc/vfcCommon.h).
extern "C" VIDTLDR_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static vidtldr::SaliencyPluginCreator sSaliency;
    static vidtldr::MergePluginCreator sMerge;
    static nvinfer1::IPluginCreatorInterface* const kCreators[] = {&sSaliency, &sMerge};
    nbCreators = static_cast<int32_t>(sizeof(kCreators) / sizeof(kCreators[0]));
    return kCreators;
}
