// Runs the TensorRT plugins' own code (plugins/src) on the CPU: creators, attribute parsing,
// serialisation round trips, clone / attachToContext, type and shape checks, error reporting through
// an IErrorRecorder, and enqueue of both ops through the CUDA emulation of the kernels. Needs only
// TensorRT's headers: libnvinfer is never loaded (getLogger below stands in for it), so the plugins'
// errors are logged to stderr. Built and run by tests/test_plugins_emulated.py; exit code 0 = passed.
#include "merge_plugin.h"
#include "saliency_plugin.h"
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <vector>
#include <random>
#include <string>
using namespace nvinfer1;
extern "C" void emu_configure(unsigned long long, int);

// libnvinfer's logger entry point; nullptr sends the plugins' messages to stderr.
extern "C" nvinfer1::ILogger* getLogger() noexcept { return nullptr; }

struct Recorder : IErrorRecorder {
    int n = 0; std::string last;
    int32_t getNbErrors() const noexcept override { return n; }
    ErrorCode getErrorCode(int32_t) const noexcept override { return ErrorCode::kSUCCESS; }
    ErrorDesc getErrorDesc(int32_t) const noexcept override { return last.c_str(); }
    bool hasOverflowed() const noexcept override { return false; }
    void clear() noexcept override { n = 0; }
    bool reportError(ErrorCode, ErrorDesc d) noexcept override { ++n; last = d; return false; }
    RefCount incRefCount() noexcept override { return 1; }
    RefCount decRefCount() noexcept override { return 0; }
};
struct Ctx : IPluginResourceContext {
    Recorder* rec;
    IGpuAllocator* getGpuAllocator() const noexcept override { return nullptr; }
    IErrorRecorder* getErrorRecorder() const noexcept override { return rec; }
};
#define CHECK(c) do { if (!(c)) { std::printf("FAIL line %d: %s\n", __LINE__, #c); ++fails; } } while (0)
static Dims dims(std::initializer_list<int64_t> v) { Dims d{}; d.nbDims = (int32_t)v.size(); int i = 0; for (auto x : v) d.d[i++] = x; return d; }
static PluginTensorDesc desc(Dims d, DataType t) { PluginTensorDesc p{}; p.dims = d; p.type = t; p.format = TensorFormat::kLINEAR; return p; }
static DynamicPluginTensorDesc ddesc(Dims d, DataType t) { DynamicPluginTensorDesc p{}; p.desc = desc(d, t); p.min = d; p.max = d; p.opt = d; return p; }
// As TensorRT configures a plugin of a dynamic-batch engine: batch -1, profile batch 1..hi.
static DynamicPluginTensorDesc dynBatch(DynamicPluginTensorDesc p, int64_t hi) { p.desc.dims.d[0] = -1; p.min.d[0] = 1; p.opt.d[0] = hi; p.max.d[0] = hi; return p; }

int main() {
    int fails = 0;
    emu_configure(1, 4);
    vidtldr::SaliencyPluginCreator sc; vidtldr::MergePluginCreator mc;
    CHECK(std::strcmp(sc.getPluginName(), "Saliency") == 0 && std::strcmp(mc.getPluginName(), "Merge") == 0);
    CHECK(std::strcmp(sc.getPluginNamespace(), "vidtldr") == 0 && std::strcmp(sc.getPluginVersion(), "1") == 0);
    CHECK(sc.getFieldNames()->nbFields == 1 && std::strcmp(sc.getFieldNames()->fields[0].name, "scale") == 0);
    CHECK(mc.getFieldNames()->fields[0].type == PluginFieldType::kINT32);
    // missing / bad attributes
    PluginFieldCollection empty{}; CHECK(sc.createPlugin("s", &empty, TensorRTPhase::kBUILD) == nullptr);
    int64_t r64 = 5; PluginField rf("r", &r64, PluginFieldType::kINT64, 1); PluginFieldCollection rfc{1, &rf};
    IPluginV3* m = mc.createPlugin("m", &rfc, TensorRTPhase::kBUILD);
    CHECK(m != nullptr);
    float scale = 0.125f; PluginField sf("scale", &scale, PluginFieldType::kFLOAT32, 1); PluginFieldCollection sfc{1, &sf};
    IPluginV3* s = sc.createPlugin("s", &sfc, TensorRTPhase::kBUILD);
    CHECK(s != nullptr);
    auto* score = static_cast<IPluginV3OneCore*>(s->getCapabilityInterface(PluginCapabilityType::kCORE));
    CHECK(std::strcmp(score->getPluginName(), "Saliency") == 0);
    auto* sb = static_cast<IPluginV3OneBuild*>(s->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* sr = static_cast<IPluginV3OneRuntime*>(s->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto* mb = static_cast<IPluginV3OneBuild*>(m->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* mr = static_cast<IPluginV3OneRuntime*>(m->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    CHECK(sb->getNbOutputs() == 1 && mb->getNbOutputs() == 2);
    // serialisation round trip
    PluginFieldCollection const* ser = mr->getFieldsToSerialize();
    CHECK(ser->nbFields == 1 && std::strcmp(ser->fields[0].name, "r") == 0 && *(int32_t const*)ser->fields[0].data == 5);
    IPluginV3* m2 = mc.createPlugin("m", ser, TensorRTPhase::kRUNTIME);
    CHECK(m2 != nullptr);
    PluginFieldCollection const* ser2 = sr->getFieldsToSerialize();
    CHECK(*(float const*)ser2->fields[0].data == 0.125f);
    // clone keeps the attribute, and its table points into the clone
    IPluginV3* mclone = m->clone();
    auto* mcr = static_cast<IPluginV3OneRuntime*>(mclone->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* serc = mcr->getFieldsToSerialize();
    CHECK(*(int32_t const*)serc->fields[0].data == 5 && serc->fields[0].data != ser->fields[0].data);
    // formats / types
    DataType in3[3] = {DataType::kHALF, DataType::kFLOAT, DataType::kFLOAT}; DataType out2[2];
    CHECK(mb->getOutputDataTypes(out2, 2, in3, 3) == 0 && out2[0] == DataType::kHALF && out2[1] == DataType::kFLOAT);
    DataType qk[2] = {DataType::kHALF, DataType::kFLOAT}; DataType o1[1];
    CHECK(sb->getOutputDataTypes(o1, 1, qk, 2) == -1);  // mixed q/k types refused
    // attachToContext: errors go to the recorder
    Recorder rec; Ctx ctx; ctx.rec = &rec;
    IPluginV3* ma = mr->attachToContext(&ctx);
    auto* mar = static_cast<IPluginV3OneRuntime*>(ma->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    // r = 5 with N = 9 -> outside [0, 4]
    PluginTensorDesc bad[3] = {desc(dims({1, 9, 8}), DataType::kFLOAT), desc(dims({1, 9}), DataType::kFLOAT), desc(dims({1, 9}), DataType::kFLOAT)};
    PluginTensorDesc badout[2] = {desc(dims({1, 4, 8}), DataType::kFLOAT), desc(dims({1, 4}), DataType::kFLOAT)};
    CHECK(mar->onShapeChange(bad, 3, badout, 2) == -1 && rec.n == 1);
    std::printf("recorder got: %s\n", rec.last.c_str());
    // enqueue both ops through the emulated kernels and check shapes of results
    const int B = 2, H = 3, N = 41, D = 16, C = 24; const int r = 5;
    std::mt19937 g(3); std::normal_distribution<float> nd;
    std::vector<float> q(B * H * N * D), k(q.size()), sc_out(B * N, NAN);
    for (auto& v : q) v = nd(g); for (auto& v : k) v = nd(g);
    DynamicPluginTensorDesc sin[2] = {ddesc(dims({B, H, N, D}), DataType::kFLOAT), ddesc(dims({B, H, N, D}), DataType::kFLOAT)};
    DynamicPluginTensorDesc sout[1] = {ddesc(dims({B, N}), DataType::kFLOAT)};
    CHECK(sb->configurePlugin(sin, 2, sout, 1) == 0);
    DynamicPluginTensorDesc sio[3] = {sin[0], sin[1], sout[0]};
    for (int pos = 0; pos < 3; ++pos) CHECK(sb->supportsFormatCombination(pos, sio, 2, 1));
    std::vector<unsigned char> ws(sb->getWorkspaceSize(sin, 2, sout, 1));
    CHECK(!ws.empty());
    PluginTensorDesc sind[2] = {sin[0].desc, sin[1].desc}, soutd[1] = {sout[0].desc};
    void const* sins[2] = {q.data(), k.data()}; void* souts[1] = {sc_out.data()};
    CHECK(sr->onShapeChange(sind, 2, soutd, 1) == 0);
    CHECK(sr->enqueue(sind, soutd, sins, souts, ws.data(), nullptr) == 0);
    float mx = 0; bool finite = true; for (float v : sc_out) { finite &= std::isfinite(v); mx = std::max(mx, v); }
    CHECK(finite && mx == 1.0f);  // foreground scores peak at exactly 1
    std::vector<float> x(B * N * C), size(B * N, 1.0f), xo(B * (N - r) * C, NAN), so(B * (N - r), NAN);
    for (auto& v : x) v = nd(g);
    DynamicPluginTensorDesc min_[3] = {ddesc(dims({B, N, C}), DataType::kFLOAT), ddesc(dims({B, N}), DataType::kFLOAT), ddesc(dims({B, N}), DataType::kFLOAT)};
    DynamicPluginTensorDesc mout[2] = {ddesc(dims({B, N - r, C}), DataType::kFLOAT), ddesc(dims({B, N - r}), DataType::kFLOAT)};
    CHECK(mb->configurePlugin(min_, 3, mout, 2) == 0);
    std::vector<unsigned char> mws(mb->getWorkspaceSize(min_, 3, mout, 2));
    PluginTensorDesc mind[3] = {min_[0].desc, min_[1].desc, min_[2].desc}, moutd[2] = {mout[0].desc, mout[1].desc};
    void const* mins[3] = {x.data(), size.data(), sc_out.data()}; void* mouts[2] = {xo.data(), so.data()};
    CHECK(mr->enqueue(mind, moutd, mins, mouts, mws.data(), nullptr) == 0);
    double total = 0; finite = true; for (float v : so) { finite &= std::isfinite(v); total += v; } for (float v : xo) finite &= std::isfinite(v);
    CHECK(finite && total > 0 && total <= B * N);
    std::printf("size' sum %.4f (<= %d: background sources dropped)\n", total, B * N);
    // dynamic batch (export --max-batch): configured with batch -1 over 1..B, sized for B, and each
    // enqueue takes its batch from the input descs; clip 1 alone equals clip 1 of the batch of B
    DynamicPluginTensorDesc dsin[2] = {dynBatch(sin[0], B), dynBatch(sin[1], B)}, dsout[1] = {dynBatch(sout[0], B)};
    CHECK(sb->configurePlugin(dsin, 2, dsout, 1) == 0);
    DynamicPluginTensorDesc dsio[3] = {dsin[0], dsin[1], dsout[0]};
    for (int pos = 0; pos < 3; ++pos) CHECK(sb->supportsFormatCombination(pos, dsio, 2, 1));
    CHECK(sb->getWorkspaceSize(dsin, 2, dsout, 1) == ws.size());  // the max batch's workspace
    PluginTensorDesc s1[2] = {desc(dims({1, H, N, D}), DataType::kFLOAT), desc(dims({1, H, N, D}), DataType::kFLOAT)};
    PluginTensorDesc s1o[1] = {desc(dims({1, N}), DataType::kFLOAT)};
    std::vector<float> sc1(N, NAN);
    void const* s1in[2] = {q.data() + H * N * D, k.data() + H * N * D}; void* s1out[1] = {sc1.data()};
    CHECK(sr->onShapeChange(s1, 2, s1o, 1) == 0);
    CHECK(sr->enqueue(s1, s1o, s1in, s1out, ws.data(), nullptr) == 0);
    CHECK(std::equal(sc1.begin(), sc1.end(), sc_out.begin() + N));
    DynamicPluginTensorDesc dmin[3] = {dynBatch(min_[0], B), dynBatch(min_[1], B), dynBatch(min_[2], B)};
    DynamicPluginTensorDesc dmout[2] = {dynBatch(mout[0], B), dynBatch(mout[1], B)};
    CHECK(mb->configurePlugin(dmin, 3, dmout, 2) == 0);
    CHECK(mb->getWorkspaceSize(dmin, 3, dmout, 2) == mws.size());
    PluginTensorDesc m1[3] = {desc(dims({1, N, C}), DataType::kFLOAT), desc(dims({1, N}), DataType::kFLOAT), desc(dims({1, N}), DataType::kFLOAT)};
    PluginTensorDesc m1o[2] = {desc(dims({1, N - r, C}), DataType::kFLOAT), desc(dims({1, N - r}), DataType::kFLOAT)};
    std::vector<float> xo1((N - r) * C, NAN), so1(N - r, NAN);
    void const* m1in[3] = {x.data() + N * C, size.data() + N, sc_out.data() + N}; void* m1out[2] = {xo1.data(), so1.data()};
    CHECK(mr->onShapeChange(m1, 3, m1o, 2) == 0);
    CHECK(mr->enqueue(m1, m1o, m1in, m1out, mws.data(), nullptr) == 0);
    CHECK(std::equal(xo1.begin(), xo1.end(), xo.begin() + (N - r) * C));
    CHECK(std::equal(so1.begin(), so1.end(), so.begin() + (N - r)));
    std::printf("batch 1 of a 1..%d profile equals its clip in the batch of %d\n", B, B);
    // kernel failure is reported, not crashed: workspace NULL
    CHECK(mar->enqueue(mind, moutd, mins, mouts, nullptr, nullptr) == -1 && rec.n == 2);
    std::printf("recorder got: %s\n", rec.last.c_str());
    delete m; delete m2; delete s; delete mclone; delete ma;
    std::printf("%d failures\n", fails);
    return fails != 0;
}
