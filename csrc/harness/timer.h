// The timing harness: device events around device work, warm-up, cold L2 by default, graph mode for
// tiny kernels, adaptive repetitions, SM clock readings. Plain C++ interface (streams are passed as
// integers) so the pybind11 module and the microbenchmark binaries share it without vendor headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stats.h"

namespace tg {

class ClockReader;  // clock.h

enum class L2Mode { kCold, kHot };
// kCupti: each sample is the span of the GPU's own timestamps of the kernels it launched (CUPTI
// activity records: what Nsight Systems / Compute report); events also count the launch latency.
enum class TimingMode { kAuto, kEvent, kGraph, kCupti };

// The harness's defaults are TimerOptions' initializers below: the one home of them. tinygemm.timing
// reads them through _C.TimerOptions(), the microbenchmarks' flags through TimerOptions{}.
struct TimerOptions {
  L2Mode l2 = L2Mode::kCold;
  TimingMode mode = TimingMode::kAuto;
  double target_rel_spread = 0.01;  // stop when the median is known to 1 % ...
  int min_samples = 10;
  int max_samples = 2000;
  double budget_ms = 2000;          // ... or when this much wall time went into sampling
  // Warm-up before the samples (lazy initialisation, clocks, instruction caches): back-to-back runs for
  // about this long, the estimate's calls included (when its time is the GPU's alone; no more runs
  // when they filled it), as many as fit by the larger of one run's GPU time and its host enqueue
  // time (at least 1 otherwise, at most 200), without L2 flushes between them (L2 state is what each
  // sample's own flush sets; the warm-up is not for it).
  double warmup_ms = 10;
  double graph_threshold_us = 10;   // auto mode: graphs below this per-launch time
  int graph_launches = 0;           // launches captured per graph; 0 = enough for ~graph_target_us
  double graph_target_us = 300;
  std::size_t flush_bytes = 0;      // cold L2: bytes read between samples; 0 = default_flush_bytes(L2)
};

// The most samples any caller may ask for: a bound on what a typo can request (the Python options
// and the microbenchmarks' flags check it).
constexpr int kMaxSamplesLimit = 1'000'000;

// Cold L2 between samples: a read of max(2 x L2, 32 MiB). Twice the L2 because its replacement is not
// strict LRU, so one L2-sized read can leave lines behind; the 32 MiB floor keeps the flush a real
// one where the reported L2 size is 0 or small.
std::size_t default_flush_bytes(std::size_t l2_bytes);

// Cold L2 without a flush between launches (a graph replays its launches back to back): launches
// rotate through copies of the buffers they read, and a launch misses in L2 only when more than
// twice the L2 (the flush's factor, for the same reason) is read between two uses of one copy.
// rotation_copies: the fewest copies that do so, at least 2, at most max_copies (memory: each copy
// is a full set of weights). rotation_is_cold: whether `copies` of `bytes_per_copy` do, i.e. the
// label "cold" rather than "cold-first" (only the first launch of a replay is cold).
constexpr int kMaxRotationCopies = 64;
int rotation_copies(std::size_t bytes_per_copy, std::size_t l2_bytes, int max_copies = kMaxRotationCopies);
bool rotation_is_cold(long long copies, std::size_t bytes_per_copy, std::size_t l2_bytes);

struct ClockInfo {
  bool available = false;
  std::string source;               // "nvml", "rocm_smi" or why none
  double start_mhz = 0, end_mhz = 0, min_mhz = 0, max_mhz = 0, device_max_mhz = 0;
  // Readings are taken while the GPU runs the samples (an idle GPU reports its boost clock, not the
  // clock a power-limited kernel runs at). A reading fell below 90 % of the highest of the same
  // measurement.
  bool sagged = false;
  // Why the clock was held down while the samples ran (NVML): e.g. "sw_power_cap"; "" for no reason.
  std::string slowdown;
};

struct TimerResult {
  Stats us;                         // per operation, in microseconds
  std::string mode;                 // "event", "graph" or "cupti"
  std::string l2;                   // "cold" or "hot"
  int ops_per_sample = 1;           // launches per timed sample (graph mode: launches per replay)
  int warmup_runs = 0;
  ClockInfo clock;
  // Where sample()'s host wall time went (steady clock; what a sweep's cost breakdown reads): the
  // warm-up (its estimate_us call, the warm-up runs and their synchronisation) and the sampling loop
  // (every batch's flushes, lead-in spins and samples, the clock readings, each batch's wait).
  double warmup_ms = 0;
  double sampling_ms = 0;
  double lead_in_us = 0;            // the mean GPU spin before a sample (untimed; sample_lead_in_us)
  int batches = 0;                  // sampling rounds: one synchronisation and event readback each
};

struct DeviceInfo {
  std::string name, pci_bus_id, arch;
  int index = 0, sm_count = 0, warp_size = 0;
  std::size_t l2_bytes = 0, total_mem_bytes = 0;
  int driver_version = 0, runtime_version = 0;
};

int device_count();  // 0 when no GPU (or a CPU-only build); never throws
DeviceInfo device_info(int device = -1);

// Enqueues device work on the timer's stream. `index` counts launches so callers can rotate buffers
// (cold L2 in graph mode: each launch reads its own copy of the weights).
using LaunchFn = std::function<void(int index)>;
// Enqueues one timed sample's worth of work (Python: a callable, or a torch graph replay).
using SampleFn = std::function<void()>;

class Timer {
 public:
  explicit Timer(std::uintptr_t stream);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // C++ callers: picks event or graph mode (stream capture of several launches) and samples.
  TimerResult measure(const LaunchFn& launch, const TimerOptions& opts);

  // The core loop. `fn` enqueues one sample, which holds `ops_per_sample` operations; the result is
  // per operation and labelled with `mode_label`. Warms up, flushes L2 (cold), samples adaptively.
  // Samples are timed with events, or with CUPTI's kernel timestamps when opts.mode is kCupti.
  // `est_us` > 0: the caller's estimate_us(fn) of this same fn, just made (measure()'s event mode),
  // whose per-call time and host time are used instead of a second estimate; otherwise sample()
  // makes its own (graph mode: the replay is another fn).
  TimerResult sample(const SampleFn& fn, const TimerOptions& opts, int ops_per_sample,
                     const std::string& mode_label, double est_us = -1);

  // Rough per-call time of `fn` from events around `calls` back-to-back calls (after one call that
  // absorbs JIT and lazy initialisation; one call, or none, when that first call shows a long
  // kernel: estimate_timed_calls). Used to choose the mode. Sets host_us().
  double estimate_us(const SampleFn& fn, int calls = 3);
  // The host's time to enqueue one call of fn, from the last estimate_us (its timed calls' mean).
  double host_us() const { return host_us_; }
  int estimate_calls() const { return timed_calls_; }  // how many calls the last estimate_us timed (0..calls)
  // The GPU time of one L2 flush: the fastest of those timed behind each cold sample()'s warm-up with
  // this flush buffer; 0 before the first.
  double flush_us() const { return flush_us_; }

  void flush_l2();
  std::size_t flush_bytes() const { return flush_bytes_; }
  std::uintptr_t stream() const { return stream_; }

 private:
  void ensure_flush_buffer(std::size_t bytes);
  void ensure_events(std::size_t n);             // at least n events in events_
  std::uintptr_t stream_;
  // Looked up once per timer, not per sample() call: the device's L2 size (cudaGetDeviceProperties
  // is slow) and its NVML handle (found by PCI bus id).
  std::size_t l2_bytes_ = 0;
  std::unique_ptr<ClockReader> clock_;
  void* flush_buf_ = nullptr;
  int* sink_ = nullptr;
  std::size_t flush_bytes_ = 0;
  double flush_us_ = 0;        // GPU time of one flush of flush_buf_ (flush_us())
  double host_us_ = 0;         // host time to enqueue one call, from the last estimate_us
  bool back_to_back_ = false;  // the last estimate_us's timed calls ran back to back on the GPU
  int timed_calls_ = 0;        // how many calls the last estimate_us timed
  std::string pci_bus_id_;
  std::vector<void*> events_;  // cudaEvent_t, kept as void* to keep vendor types out of this header
};

// Auto mode's rule, shared with the Python layer: graphs for launches under the threshold.
TimingMode choose_mode(double estimated_us, const TimerOptions& opts);
int graph_launch_count(double estimated_us, const TimerOptions& opts);

// The untimed GPU spins that keep the timed region from waiting on the host (timer_policy.cpp says
// why each is enough; pure functions, unit-tested without a GPU).
// Before each sample's start event: host_us = the host's time to enqueue one sample (its fn, from
// the estimate, and the harness's own launches around it, measured in the sampling loop), flush_us =
// the GPU time of the flush queued just before the spin (0 for hot L2), credit_us = how far the
// batch's work queued ahead (a lower bound of its GPU time) runs ahead of the host's clock (0 for a
// batch's first sample).
constexpr double kMinLeadInUs = 5, kMaxLeadInUs = 2000;
double sample_lead_in_us(double host_us, double flush_us, double credit_us);
// Before estimate_us's timed calls: from the host time of its first (untimed) call.
constexpr double kMinEstimateLeadInUs = 10, kMaxEstimateLeadInUs = 500;
double estimate_lead_in_us(int calls, double first_call_host_us);
// How many calls estimate_us times: `calls`, or one when its first call showed a kernel of at least
// kOneCallUs (its events' span less its host time: a lower bound of the call's GPU time), or none
// when that first call's host time was also under kFirstCallHostShare of it (its span is then the
// estimate, as span - host time).
constexpr double kOneCallUs = 100, kFirstCallHostShare = 0.05;
int estimate_timed_calls(int calls, double first_call_gpu_us, double first_call_host_us);
// The warm-up's run count (TimerOptions::warmup_ms says what it is); done_us: the GPU time of the
// runs already made (the estimate's calls).
constexpr int kMaxWarmupRuns = 200;
int warmup_runs(double warmup_ms, double est_us, double host_us, double done_us = 0);

const char* to_string(TimingMode m);
const char* to_string(L2Mode m);

}  // namespace tg
