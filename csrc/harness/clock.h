// SM clock readings through NVML (NVIDIA) or ROCm SMI (AMD), loaded with dlopen at run time so that
// neither library is a build or install requirement. Plain C++.
#pragma once

#include <cstdint>
#include <string>

namespace tg {

class ClockReader {
 public:
  // `pci_bus_id` as the runtime reports it ("0000:3B:00.0"); `hip_index` for ROCm SMI.
  ClockReader(const std::string& pci_bus_id, int hip_index);
  bool available() const { return ok_; }
  const std::string& source() const { return source_; }
  double sm_mhz() const;          // current SM clock; 0 when unavailable
  double max_sm_mhz() const;      // the device's maximum SM clock; 0 when unknown
  // Why the clock is held down now (NVML's clocks event reasons), only the bits that slow a kernel
  // down; 0 when none or unknown. Idle, application-clock and sync-boost bits are left out.
  std::uint64_t slowdown_reasons() const;
  static constexpr std::uint64_t kSwPowerCap = 0x4, kHwSlowdown = 0x8, kSwThermal = 0x20, kHwThermal = 0x40,
                                 kHwPowerBrake = 0x80;

 private:
  bool ok_ = false;
  std::string source_;
  void* handle_ = nullptr;        // nvmlDevice_t
  mutable double max_mhz_ = -1;   // max_sm_mhz(), once known (-1: not yet)
  int hip_index_ = 0;
};

// "sw_power_cap,hw_slowdown", or "" for none.
std::string describe_slowdown(std::uint64_t bits);

}  // namespace tg
