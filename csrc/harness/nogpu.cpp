// CPU-only builds: every GPU entry point exists and raises tg::NoGpuBuild, whose message says why,
// so the package installs and imports everywhere and fails clearly where a GPU is needed.
#include "../kernels/w4a16.h"
#include "clock.h"  // Timer holds a ClockReader (its destructor is inline)
#include "device_ops.h"
#include "timer.h"
#include "tinygemm/status.h"

namespace tg {

int device_count() { return 0; }
DeviceInfo device_info(int) { throw NoGpuBuild("device_info"); }

Timer::Timer(std::uintptr_t) { throw NoGpuBuild("Timer"); }
Timer::~Timer() = default;
TimerResult Timer::measure(const LaunchFn&, const TimerOptions&) { throw NoGpuBuild("Timer.measure"); }
TimerResult Timer::sample(const SampleFn&, const TimerOptions&, int, const std::string&, double) {
  throw NoGpuBuild("Timer.sample");
}
double Timer::estimate_us(const SampleFn&, int) { throw NoGpuBuild("Timer.estimate_us"); }
void Timer::flush_l2() { throw NoGpuBuild("Timer.flush_l2"); }
void Timer::ensure_flush_buffer(std::size_t) { throw NoGpuBuild("Timer"); }

void read_buffer(const void*, std::size_t, int*, std::uintptr_t) { throw NoGpuBuild("read_buffer"); }
void spin(std::uint64_t, std::uintptr_t) { throw NoGpuBuild("spin"); }
void fill_uniform(void*, std::size_t, DType, float, float, std::uint64_t, std::uintptr_t) {
  throw NoGpuBuild("fill_uniform");
}

void w4a16_gemv(const void*, const void*, const void*, const void*, void*, int, int, int, int, DType,
                std::uintptr_t, GemvConfig, W4Layout) {
  throw NoGpuBuild("w4a16_gemv");
}
void w4_dequant(const void*, const void*, const void*, void*, int, int, int, DType, std::uintptr_t) {
  throw NoGpuBuild("w4_dequant");
}
void gptq_to_layout(const void*, void*, int, int, std::uintptr_t) { throw NoGpuBuild("gptq_to_layout"); }
int w4a16_gemm_sm90_clusters(int, int) { return 0; }  // unknown: the config falls back to SMs / split
void w4a16_gemm_sm90(const void*, const void*, const void*, const void*, void*, int, int, int, int, DType,
                     std::uintptr_t, GemmSm90Config) {
  throw NoGpuBuild("w4a16_gemm_sm90");
}

}  // namespace tg
