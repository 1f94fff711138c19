// The harness's pure policy (mode choice, graph size, labels): compiled in every build, CPU-only
// included, so the rules are unit-tested in CI.
#include <algorithm>
#include <cmath>

#include "timer.h"

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
  // a small share of each sample.
  const double n = std::ceil(opts.graph_target_us / std::max(estimated_us, 0.5));
  return static_cast<int>(std::clamp(n, 10.0, 500.0));
}

}  // namespace tg
