#include "clock.h"

#include <dlfcn.h>

#include <cstdint>

namespace tg {
namespace {

// The NVML entry points used, declared here (not from nvml.h) because the library is optional.
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
constexpr int kNvmlClockSm = 1;

struct Nvml {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*by_pci)(const char*, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*clock)(nvmlDevice_t, int, unsigned*) = nullptr;
  nvmlReturn_t (*max_clock)(nvmlDevice_t, int, unsigned*) = nullptr;
  nvmlReturn_t (*reasons)(nvmlDevice_t, unsigned long long*) = nullptr;  // optional
  bool ok = false;
  std::string why;
};

const Nvml& nvml() {
  static Nvml n = [] {
    Nvml r;
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!lib) {
      r.why = "libnvidia-ml.so.1 not found";
      return r;
    }
    r.init = reinterpret_cast<nvmlReturn_t (*)()>(dlsym(lib, "nvmlInit_v2"));
    r.by_pci = reinterpret_cast<nvmlReturn_t (*)(const char*, nvmlDevice_t*)>(
        dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
    r.clock = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, int, unsigned*)>(
        dlsym(lib, "nvmlDeviceGetClockInfo"));
    r.max_clock = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, int, unsigned*)>(
        dlsym(lib, "nvmlDeviceGetMaxClockInfo"));
    // "clocks event reasons" is the newer name of the same call ("throttle reasons")
    void* why = dlsym(lib, "nvmlDeviceGetCurrentClocksEventReasons");
    if (!why) why = dlsym(lib, "nvmlDeviceGetCurrentClocksThrottleReasons");
    r.reasons = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, unsigned long long*)>(why);
    if (!r.init || !r.by_pci || !r.clock || !r.max_clock) {
      r.why = "NVML lacks the clock entry points";
      return r;
    }
    if (r.init() != 0) {
      r.why = "nvmlInit failed";
      return r;
    }
    r.ok = true;
    return r;
  }();
  return n;
}

// ROCm SMI: rsmi_dev_gpu_clk_freq_get(index, RSMI_CLK_TYPE_SYS, rsmi_frequencies_t*).
struct RsmiFrequencies {
  bool has_deep_sleep;  // present in ROCm >= 5.x layouts; only `num_supported`, `current`, `frequency` read
  uint32_t num_supported;
  uint32_t current;
  uint64_t frequency[33];
};

struct Rsmi {
  int (*clk)(uint32_t, int, RsmiFrequencies*) = nullptr;
  bool ok = false;
};

const Rsmi& rsmi() {
  static Rsmi r = [] {
    Rsmi s;
    void* lib = dlopen("librocm_smi64.so", RTLD_LAZY | RTLD_LOCAL);
    if (!lib) lib = dlopen("librocm_smi64.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!lib) return s;
    auto init = reinterpret_cast<int (*)(uint64_t)>(dlsym(lib, "rsmi_init"));
    s.clk = reinterpret_cast<int (*)(uint32_t, int, RsmiFrequencies*)>(dlsym(lib, "rsmi_dev_gpu_clk_freq_get"));
    s.ok = init && s.clk && init(0) == 0;
    return s;
  }();
  return r;
}

}  // namespace

ClockReader::ClockReader(const std::string& pci_bus_id, int hip_index) : hip_index_(hip_index) {
#if defined(TINYGEMM_HIP)
  (void)pci_bus_id;
  ok_ = rsmi().ok;
  source_ = ok_ ? "rocm_smi" : "none: librocm_smi64 not loadable";
#else
  const Nvml& n = nvml();
  if (!n.ok) {
    source_ = "none: " + n.why;
    return;
  }
  nvmlDevice_t dev = nullptr;
  if (n.by_pci(pci_bus_id.c_str(), &dev) != 0) {
    source_ = "none: NVML does not know PCI bus " + pci_bus_id;
    return;
  }
  handle_ = dev;
  ok_ = true;
  source_ = "nvml";
  (void)hip_index_;
#endif
}

double ClockReader::sm_mhz() const {
  if (!ok_) return 0;
#if defined(TINYGEMM_HIP)
  RsmiFrequencies f{};
  if (rsmi().clk(static_cast<uint32_t>(hip_index_), 0, &f) != 0 || f.current >= 33) return 0;
  return static_cast<double>(f.frequency[f.current]) / 1e6;
#else
  unsigned mhz = 0;
  return nvml().clock(handle_, kNvmlClockSm, &mhz) == 0 ? mhz : 0;
#endif
}

std::uint64_t ClockReader::slowdown_reasons() const {
#if defined(TINYGEMM_HIP)
  return 0;
#else
  unsigned long long bits = 0;
  if (!ok_ || !nvml().reasons || nvml().reasons(handle_, &bits) != 0) return 0;
  return bits & (kSwPowerCap | kHwSlowdown | kSwThermal | kHwThermal | kHwPowerBrake);
#endif
}

std::string describe_slowdown(std::uint64_t bits) {
  static const std::pair<std::uint64_t, const char*> names[] = {
      {ClockReader::kSwPowerCap, "sw_power_cap"}, {ClockReader::kHwSlowdown, "hw_slowdown"},
      {ClockReader::kSwThermal, "sw_thermal"}, {ClockReader::kHwThermal, "hw_thermal"},
      {ClockReader::kHwPowerBrake, "hw_power_brake"}};
  std::string s;
  for (const auto& [bit, name] : names)
    if (bits & bit) s += (s.empty() ? "" : ",") + std::string(name);
  return s;
}

double ClockReader::max_sm_mhz() const {
  if (!ok_) return 0;
  if (max_mhz_ >= 0) return max_mhz_;  // a property of the device: queried once per reader
#if defined(TINYGEMM_HIP)
  RsmiFrequencies f{};
  if (rsmi().clk(static_cast<uint32_t>(hip_index_), 0, &f) != 0 || f.num_supported == 0 || f.num_supported > 33)
    return 0;  // not cached: a failed query is tried again
  max_mhz_ = static_cast<double>(f.frequency[f.num_supported - 1]) / 1e6;
#else
  unsigned mhz = 0;
  if (nvml().max_clock(handle_, kNvmlClockSm, &mhz) != 0) return 0;  // not cached: tried again
  max_mhz_ = mhz;
#endif
  return max_mhz_;
}

}  // namespace tg
