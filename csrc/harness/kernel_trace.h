// The GPU's own start and end timestamps of the kernels (and memsets/memcpys) a piece of host code
// launched, from CUPTI's activity API: the numbers Nsight Systems reports. The harness's "cupti"
// mode uses them instead of events, which also count the launch's front-end latency and the end
// event's wait (2.2 us on an H100, measured on kernels of known length: a fifth of a 10 us kernel).
// libcupti is loaded with dlopen at run time, so it is neither a build nor an install requirement.
// NVIDIA only; plain C++ interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tg {

class KernelTrace {
 public:
  // Whether CUPTI can be used in this process; `why` says why not.
  static bool available(std::string* why = nullptr);

  // Starts recording (throws std::runtime_error naming the cause when CUPTI is unusable, e.g. while
  // another CUPTI client such as the torch profiler or Nsight is attached).
  KernelTrace();
  ~KernelTrace();  // stops recording
  KernelTrace(const KernelTrace&) = delete;
  KernelTrace& operator=(const KernelTrace&) = delete;

  // Work enqueued by this thread between begin(tag) and end() is attributed to `tag` (0 .. n-1).
  void begin(std::uint64_t tag);
  void end();

  // After the work has completed: per tag 0 .. n-1, the span from the first start to the last end
  // of its device activities, in microseconds (-1 where CUPTI saw none). Clears the records.
  std::vector<double> spans_us(std::size_t n);

 private:
  std::uint64_t base_;  // tags are offset so that concurrent or successive traces never mix
};

}  // namespace tg
