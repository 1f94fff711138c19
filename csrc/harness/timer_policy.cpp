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

// Why the lead-in is enough. The timed region would wait on the host if the GPU reached a sample's
// start event before the host had enqueued the sample's work: about host_us after the host starts
// on the sample (host_us: the sample's fn and the harness's own launches around it). Before the
// start event the GPU runs the flush and then the spin, so flush + spin >= 2 x host_us gives the host
// twice its time even from an idle GPU; the factor 2 is the margin for host jitter. Within a batch
// the host enqueues sample after sample while the GPU works through them, and what the GPU has
// queued ahead of this sample delays it further: credit_us, how far that work (counted by lower
// bounds of its GPU time) runs ahead of the host's clock. flush + spin + credit >= 2 x host_us keeps,
// for every sample, the guarantee a batch's first sample has from its flush and spin alone. At
// least kMinLeadInUs, a margin even for a host callable too fast to time; at most kMaxLeadInUs, so
// that a slow Python callable does not make each sample's spin dominate the wall-time budget.
double sample_lead_in_us(double host_us, double flush_us, double credit_us) {
  return std::clamp(2 * host_us - flush_us - credit_us, kMinLeadInUs, kMaxLeadInUs);
}

// estimate_us times `calls` back-to-back calls with events: the GPU spins while the host enqueues
// them, so that the events see device work, not the host's launch overhead. The host needs about
// calls x its time for one call; the first (untimed) call's host time bounds that from above (it
// also pays any lazy initialisation), and x 2 is the margin. At most 0.5 ms (ample for a few
// Python launches; a first call slowed by JIT or autotuning would otherwise spin for seconds), at
// least 10 us (the event record and the launches themselves).
double estimate_lead_in_us(int calls, double first_call_host_us) {
  return std::clamp(2.0 * std::max(calls, 1) * first_call_host_us, kMinEstimateLeadInUs, kMaxEstimateLeadInUs);
}

// The estimate's calls only pick the mode and size the warm-up and lead-ins: for a kernel of 100 us
// or more one call is as good as three (the mode is events by far; the events' ~2 us is 2 %), and
// three would cost as much GPU time as a third of the samples of a long GEMM. The first call's events
// span at least its GPU time and at most its host time, the launch latency and its GPU time, so
// span - host time bounds the GPU time from below (lazy initialisation only lengthens the host
// time), and where the host time is under 5 % of that, the span is the GPU time to 5 %: no call
// needs timing at all.
int estimate_timed_calls(int calls, double first_call_gpu_us, double first_call_host_us) {
  const double gpu_lo = first_call_gpu_us - first_call_host_us;
  if (gpu_lo < kOneCallUs) return std::max(calls, 1);
  return first_call_host_us <= kFirstCallHostShare * gpu_lo ? 0 : 1;
}

// As many back-to-back runs as fit in what remains of warmup_ms after done_us (the estimate's timed
// calls): one run takes the longer of its GPU time and the host's time to enqueue it. Times under
// 1 us count as 1 us (noise); none when done_us filled warmup_ms, else at least one, at most
// kMaxWarmupRuns, ample for clocks and caches to settle however short the kernel.
int warmup_runs(double warmup_ms, double est_us, double host_us, double done_us) {
  const double left_us = warmup_ms * 1000.0 - std::max(done_us, 0.0);
  if (left_us <= 0 && done_us > 0) return 0;
  const double per_run = std::max({est_us, host_us, 1.0});
  return static_cast<int>(std::clamp(left_us / per_run, 1.0, static_cast<double>(kMaxWarmupRuns)));
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
