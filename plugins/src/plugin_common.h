// Shared helpers of the vid-TLDR TensorRT plugins: names, logging / error reporting, attribute parsing.
//
// Nothing here throws: every entry point TensorRT calls is noexcept, so failures are reported through
// the engine's IErrorRecorder (runtime, after attachToContext) or the TensorRT logger (build time),
// and the call returns an error status / nullptr instead.
#ifndef VIDTLDR_PLUGIN_COMMON_H
#define VIDTLDR_PLUGIN_COMMON_H

#include "NvInferRuntime.h"

#include <cstdint>

namespace vidtldr
{

// Must match the ONNX nodes' plugin_namespace / plugin_version attributes (docs/design.md, ONNX contract).
constexpr char const* kPluginNamespace = "vidtldr";
constexpr char const* kPluginVersion = "1";

// Keeps the logger finder handed over by TensorRT when it loads this library dynamically.
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

// Logs through the finder's logger, else the process-wide TensorRT logger (libnvinfer getLogger()).
void logMessage(nvinfer1::ILogger::Severity severity, char const* message) noexcept;

// Reports to `recorder` when there is one, and always logs as an error. `where` names the plugin.
void reportError(nvinfer1::IErrorRecorder* recorder, nvinfer1::ErrorCode code, char const* where,
    char const* message) noexcept;

// TensorRT data type -> kernels' dtype code (0 fp32, 1 fp16); false for anything else.
bool kernelDtype(nvinfer1::DataType type, int& code) noexcept;

// Attribute lookup, lenient about the numeric type the producer used (ONNX parser: FLOAT32 / INT32).
bool readFloatField(nvinfer1::PluginFieldCollection const* fc, char const* name, float& value) noexcept;
bool readIntField(nvinfer1::PluginFieldCollection const* fc, char const* name, int64_t& value) noexcept;

} // namespace vidtldr

#endif // VIDTLDR_PLUGIN_COMMON_H
