// Small device routines the harness and its tests need: an L2 flush that reads (so no dirty lines are
// written back during the next timed sample), a spin of known length, and random fills for the binaries.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tg {

enum class DType { kF16, kBF16, kF32 };

// What kernel launchers need to know about the current device, read once per device and cached:
// cudaDeviceGetAttribute on every call would put three driver queries on a decode step's hot path.
struct DeviceProps {
  int index = 0, sm_count = 0, cc_major = 0, cc_minor = 0;
};
constexpr int kMaxDevices = 64;
const DeviceProps& device_props();  // of the calling thread's current device

// Reads `bytes` (a multiple of 16) from `buf` and folds them into *sink, so the reads cannot be elided.
void read_buffer(const void* buf, std::size_t bytes, int* sink, std::uintptr_t stream);

// One thread spins on the global timer for `ns` nanoseconds: a kernel of known duration.
void spin(std::uint64_t ns, std::uintptr_t stream);

// Uniform values in [lo, hi) from a counter-based hash of (seed, index): fresh data, never zeros.
void fill_uniform(void* ptr, std::size_t n, DType dtype, float lo, float hi, std::uint64_t seed,
                  std::uintptr_t stream);

}  // namespace tg
