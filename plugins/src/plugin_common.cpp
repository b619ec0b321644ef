#include "plugin_common.h"

#include <atomic>
#include <cstdio>
#include <cstring>

namespace vidtldr
{
namespace
{
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

nvinfer1::ILogger* currentLogger() noexcept
{
    nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
    if (finder != nullptr)
    {
        if (nvinfer1::ILogger* logger = finder->findLogger())
            return logger;
    }
    return ::getLogger();
}

nvinfer1::PluginField const* findField(nvinfer1::PluginFieldCollection const* fc, char const* name) noexcept
{
    if (fc == nullptr || fc->fields == nullptr)
        return nullptr;
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& f = fc->fields[i];
        if (f.name != nullptr && std::strcmp(f.name, name) == 0 && f.data != nullptr && f.length >= 1)
            return &f;
    }
    return nullptr;
}
} // namespace

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    nvinfer1::ILoggerFinder* expected = nullptr;
    gLoggerFinder.compare_exchange_strong(expected, finder);
}

void logMessage(nvinfer1::ILogger::Severity severity, char const* message) noexcept
{
    if (nvinfer1::ILogger* logger = currentLogger())
        logger->log(severity, message);
    else if (severity <= nvinfer1::ILogger::Severity::kERROR)
        std::fprintf(stderr, "[vidtldr plugins] %s\n", message);
}

void reportError(nvinfer1::IErrorRecorder* recorder, nvinfer1::ErrorCode code, char const* where,
    char const* message) noexcept
{
    char buffer[512];
    std::snprintf(buffer, sizeof(buffer), "vidtldr::%s: %s", where, message);
    if (recorder != nullptr)
        recorder->reportError(code, buffer);
    logMessage(nvinfer1::ILogger::Severity::kERROR, buffer);
}

bool kernelDtype(nvinfer1::DataType type, int& code) noexcept
{
    switch (type)
    {
    case nvinfer1::DataType::kFLOAT: code = 0; return true;
    case nvinfer1::DataType::kHALF: code = 1; return true;
    default: return false;
    }
}

bool readFloatField(nvinfer1::PluginFieldCollection const* fc, char const* name, float& value) noexcept
{
    nvinfer1::PluginField const* f = findField(fc, name);
    if (f == nullptr)
        return false;
    switch (f->type)
    {
    case nvinfer1::PluginFieldType::kFLOAT32: value = *static_cast<float const*>(f->data); return true;
    case nvinfer1::PluginFieldType::kFLOAT64: value = static_cast<float>(*static_cast<double const*>(f->data)); return true;
    default: return false;
    }
}

bool readIntField(nvinfer1::PluginFieldCollection const* fc, char const* name, int64_t& value) noexcept
{
    nvinfer1::PluginField const* f = findField(fc, name);
    if (f == nullptr)
        return false;
    switch (f->type)
    {
    case nvinfer1::PluginFieldType::kINT32: value = *static_cast<int32_t const*>(f->data); return true;
    case nvinfer1::PluginFieldType::kINT64: value = *static_cast<int64_t const*>(f->data); return true;
    case nvinfer1::PluginFieldType::kINT16: value = *static_cast<int16_t const*>(f->data); return true;
    case nvinfer1::PluginFieldType::kINT8: value = *static_cast<int8_t const*>(f->data); return true;
    default: return false;
    }
}

} // namespace vidtldr
