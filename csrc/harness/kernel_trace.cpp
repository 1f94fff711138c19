#include "kernel_trace.h"

#include <stdexcept>

#if defined(TINYGEMM_HAVE_CUPTI)
#include <cupti.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace tg {
namespace {

// The three fields read from each record sit at the same offsets in every version of these records
// since CUDA 11 (Kernel4 .. Kernel10, Memset3/4, Memcpy5/6): read them by offset, checked against
// this header's old versions, so a newer libcupti's records parse too.
constexpr std::size_t kStart = 16, kEnd = 24, kKernelCorr = 92, kCopyCorr = 44;
static_assert(offsetof(CUpti_ActivityKernel4, start) == kStart && offsetof(CUpti_ActivityKernel4, end) == kEnd &&
              offsetof(CUpti_ActivityKernel4, correlationId) == kKernelCorr, "CUPTI kernel record layout");
static_assert(offsetof(CUpti_ActivityMemset3, correlationId) == kCopyCorr &&
              offsetof(CUpti_ActivityMemcpy5, correlationId) == kCopyCorr, "CUPTI memset/memcpy record layout");

struct Api {
  void* lib = nullptr;
  std::string why;
  decltype(&cuptiGetVersion) version = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityGetNumDroppedRecords) dropped = nullptr;
  decltype(&cuptiActivityPushExternalCorrelationId) push = nullptr;
  decltype(&cuptiActivityPopExternalCorrelationId) pop = nullptr;
};

template <typename F>
bool load(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

const Api& api() {
  static const Api a = [] {
    Api a;
    // the soname of this header's major version first (already loaded when torch's profiler
    // library is), then the CUDA toolkit's copies found at build time
    std::vector<std::string> names = {"libcupti.so." + std::to_string(CUPTI_API_VERSION / 10000), "libcupti.so"};
#if defined(TINYGEMM_CUPTI_DIRS)
    std::stringstream dirs(TINYGEMM_CUPTI_DIRS);
    for (std::string d; std::getline(dirs, d, ':');)
      if (!d.empty()) names.push_back(d + "/libcupti.so");
#endif
    for (const auto& n : names)
      if ((a.lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    if (a.lib == nullptr) {
      a.why = "libcupti.so was not found (looked for " + names.front() + " on the library path and in the "
              "CUDA toolkit); add CUDA's CUPTI library directory to LD_LIBRARY_PATH";
      return a;
    }
    const bool ok = load(a.lib, "cuptiGetVersion", a.version) && load(a.lib, "cuptiGetResultString", a.result_string) &&
                    load(a.lib, "cuptiActivityRegisterCallbacks", a.register_callbacks) &&
                    load(a.lib, "cuptiActivityEnable", a.enable) && load(a.lib, "cuptiActivityDisable", a.disable) &&
                    load(a.lib, "cuptiActivityFlushAll", a.flush_all) &&
                    load(a.lib, "cuptiActivityGetNextRecord", a.next_record) &&
                    load(a.lib, "cuptiActivityGetNumDroppedRecords", a.dropped) &&
                    load(a.lib, "cuptiActivityPushExternalCorrelationId", a.push) &&
                    load(a.lib, "cuptiActivityPopExternalCorrelationId", a.pop);
    std::uint32_t v = 0;
    if (!ok) {
      a.why = "libcupti.so lacks the activity API";
    } else if (a.version(&v) != CUPTI_SUCCESS || v / 10000 != CUPTI_API_VERSION / 10000) {
      a.why = "libcupti.so is API version " + std::to_string(v) + ", tinygemm was built against " +
              std::to_string(CUPTI_API_VERSION) + " (major versions differ)";
    }
    if (!a.why.empty()) {
      dlclose(a.lib);
      a.lib = nullptr;
    }
    return a;
  }();
  return a;
}

void check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* s = nullptr;
  if (api().result_string) api().result_string(r, &s);
  throw std::runtime_error(std::string("CUPTI ") + what + " failed: " + (s ? s : "error " + std::to_string(r)) +
                           " (is another CUPTI client, e.g. the torch profiler or Nsight, attached?)");
}

struct Activity {
  std::uint64_t start, end;
  std::uint32_t corr;
};

// Filled by CUPTI's buffer callback (any thread), read by spans_us.
std::mutex g_mu;
std::vector<Activity> g_acts;
std::unordered_map<std::uint32_t, std::uint64_t> g_ext;  // API correlation id -> our tag
std::size_t g_dropped = 0;
bool g_active = false;
std::uint64_t g_next_base = 1;

Activity read(const CUpti_Activity* r, std::size_t corr_offset) {
  Activity a{};
  const auto* p = reinterpret_cast<const unsigned char*>(r);
  std::memcpy(&a.start, p + kStart, sizeof a.start);
  std::memcpy(&a.end, p + kEnd, sizeof a.end);
  std::memcpy(&a.corr, p + corr_offset, sizeof a.corr);
  return a;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *size = std::size_t(4) << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, *size));
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(g_mu);
  CUpti_Activity* r = nullptr;
  while (api().next_record(buffer, valid, &r) == CUPTI_SUCCESS) {
    switch (r->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: g_acts.push_back(read(r, kKernelCorr)); break;
      case CUPTI_ACTIVITY_KIND_MEMSET:
      case CUPTI_ACTIVITY_KIND_MEMCPY: g_acts.push_back(read(r, kCopyCorr)); break;
      case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION: {
        const auto* e = reinterpret_cast<const CUpti_ActivityExternalCorrelation*>(r);
        if (e->externalKind == CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0) g_ext[e->correlationId] = e->externalId;
        break;
      }
      default: break;  // the API records only carry the correlation
    }
  }
  std::size_t dropped = 0;
  if (api().dropped(ctx, stream, &dropped) == CUPTI_SUCCESS) g_dropped += dropped;
  std::free(buffer);
}

// The external correlation records follow API records, so the runtime and driver API kinds are on too.
constexpr CUpti_ActivityKind kKinds[] = {
    CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMSET, CUPTI_ACTIVITY_KIND_MEMCPY,
    CUPTI_ACTIVITY_KIND_RUNTIME, CUPTI_ACTIVITY_KIND_DRIVER, CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION};

}  // namespace

bool KernelTrace::available(std::string* why) {
  if (why) *why = api().why;
  return api().lib != nullptr;
}

KernelTrace::KernelTrace() {
  std::string why;
  if (!available(&why)) throw std::runtime_error("cupti timing mode: " + why);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_active) throw std::runtime_error("cupti timing mode: another measurement is already tracing");
    g_active = true;
    g_acts.clear();
    g_ext.clear();
    g_dropped = 0;
    base_ = g_next_base;
  }
  try {
    // registered again by every trace: another in-process client (the torch profiler) may have
    // replaced the callbacks since the last one
    check(api().register_callbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
    for (auto k : kKinds) check(api().enable(k), "cuptiActivityEnable");
  } catch (...) {
    for (auto k : kKinds) api().disable(k);
    std::lock_guard<std::mutex> lock(g_mu);
    g_active = false;
    throw;
  }
}

KernelTrace::~KernelTrace() {
  for (auto k : kKinds) api().disable(k);
  api().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::lock_guard<std::mutex> lock(g_mu);
  g_acts.clear();
  g_ext.clear();
  g_active = false;
}

void KernelTrace::begin(std::uint64_t tag) {
  check(api().push(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, base_ + tag), "cuptiActivityPushExternalCorrelationId");
}

void KernelTrace::end() {
  std::uint64_t id = 0;
  check(api().pop(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &id), "cuptiActivityPopExternalCorrelationId");
}

std::vector<double> KernelTrace::spans_us(std::size_t n) {
  check(api().flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_dropped)
    throw std::runtime_error("cupti timing mode: CUPTI dropped " + std::to_string(g_dropped) + " activity records");
  std::vector<std::uint64_t> first(n, UINT64_MAX), last(n, 0);
  for (const Activity& a : g_acts) {
    const auto it = g_ext.find(a.corr);
    if (it == g_ext.end() || it->second < base_ || it->second >= base_ + n) continue;  // flushes, lead-in spins
    const std::size_t i = it->second - base_;
    first[i] = std::min(first[i], a.start);
    last[i] = std::max(last[i], a.end);
  }
  std::vector<double> us(n, -1.0);
  for (std::size_t i = 0; i < n; ++i)
    if (last[i] > 0) us[i] = (last[i] - first[i]) / 1000.0;
  g_acts.clear();
  g_ext.clear();
  g_next_base = std::max(g_next_base, base_ + n);
  base_ = g_next_base;  // the next batch's tags
  return us;
}

}  // namespace tg

#else  // HIP builds, and CUDA toolkits without CUPTI's headers

namespace tg {

namespace {
const char* kWhy =
#if defined(TINYGEMM_HIP)
    "the cupti timing mode is NVIDIA-only (on ROCm, rocprofv3 gives kernel timestamps: python -m tinygemm.profile rocprof)";
#elif defined(TINYGEMM_CUDA)
    "tinygemm was built without CUPTI's headers (cupti.h was not found in the CUDA toolkit)";
#else
    "this is a CPU-only build of tinygemm (no GPU toolkit was found when it was built)";
#endif
}  // namespace

bool KernelTrace::available(std::string* why) {
  if (why) *why = kWhy;
  return false;
}
KernelTrace::KernelTrace() : base_(0) { throw std::runtime_error(std::string("cupti timing mode: ") + kWhy); }
KernelTrace::~KernelTrace() = default;
void KernelTrace::begin(std::uint64_t) {}
void KernelTrace::end() {}
std::vector<double> KernelTrace::spans_us(std::size_t n) { return std::vector<double>(n, -1.0); }

}  // namespace tg

#endif
