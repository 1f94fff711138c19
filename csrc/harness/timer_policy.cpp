// The harness's pure policy (mode choice, graph size, labels): compiled in every build, CPU-only
// included, so the rules are unit-tested in CI.
#include <algorithm>
#include <cmath>

#include "timer.h"
#include "tinygemm/status.h"

namespace tg {

const char* to_string(TimingMode m) {
  switch (m) {
    case TimingMode::kGraph: return "graph";
    case TimingMode::kEvent: return "event";
    case TimingMode::kCupti: return "cupti";
    default: return "auto";
  }
}
const char* to_string(L2Mode m) { return m == L2Mode::kCold ? "cold" : "hot"; }

TimingMode choose_mode(double estimated_us, const TimerOptions& opts) {
  if (opts.mode != TimingMode::kAuto) return opts.mode;
  return estimated_us < opts.graph_threshold_us ? TimingMode::kGraph : TimingMode::kEvent;
}

int graph_launch_count(double estimated_us, const TimerOptions& opts) {
  if (opts.graph_launches > 0) return opts.graph_launches;
  // Enough launches that one replay lasts ~graph_target_us: the replay's own launch cost is then
  // a small share of each sample. At least 10 launches, so that a graph of long kernels (forced graph
  // mode) still times them back to back, as a decode step's graph runs them; at most 500, so that
  // capture, instantiation and the graph's memory stay small for the shortest kernels. Estimates
  // under 0.5 us count as 0.5 (below that they are mostly noise).
  const double n = std::ceil(opts.graph_target_us / std::max(estimated_us, 0.5));
  return static_cast<int>(std::clamp(n, 10.0, 500.0));
}

std::size_t default_flush_bytes(std::size_t l2_bytes) {
  return std::max<std::size_t>(2 * l2_bytes, std::size_t(32) << 20);
}

int rotation_copies(std::size_t bytes_per_copy, std::size_t l2_bytes, int max_copies) {
  TG_CHECK_ARG(bytes_per_copy > 0, "bytes_per_call must be > 0; got ", bytes_per_copy);
  // (copies - 1) x bytes >= 2 x L2, in integers (rounded up): the same rule as rotation_is_cold
  const unsigned long long need = 1 + (2ULL * l2_bytes + bytes_per_copy - 1) / bytes_per_copy;
  return static_cast<int>(std::max<unsigned long long>(2, std::min<unsigned long long>(need, std::max(max_copies, 0))));
}

bool rotation_is_cold(long long copies, std::size_t bytes_per_copy, std::size_t l2_bytes) {
  if (copies < 2) return false;
  return static_cast<unsigned long long>(copies - 1) * bytes_per_copy >= 2ULL * l2_bytes;
}

}  // namespace tg
