#include "timer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "clock.h"
#include "device_ops.h"
#include "kernel_trace.h"
#include "tinygemm/gpu.h"
#include "tinygemm/status.h"

namespace tg {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

DeviceInfo device_info(int device) {
  TG_CHECK_ARG(device_count() > 0, "no GPU is visible to the CUDA/HIP runtime");
  if (device < 0) TG_GPU_CHECK(cudaGetDevice(&device));
  cudaDeviceProp p{};
  TG_GPU_CHECK(cudaGetDeviceProperties(&p, device));
  DeviceInfo d;
  d.index = device;
  d.name = p.name;
  d.sm_count = p.multiProcessorCount;
  d.warp_size = p.warpSize;
  d.l2_bytes = static_cast<std::size_t>(p.l2CacheSize);
  d.total_mem_bytes = p.totalGlobalMem;
#if defined(TINYGEMM_HIP)
  d.arch = p.gcnArchName;
#else
  d.arch = "sm_" + std::to_string(p.major) + std::to_string(p.minor);
#endif
  char bus[32] = {0};
  TG_GPU_CHECK(cudaDeviceGetPCIBusId(bus, sizeof(bus), device));
  d.pci_bus_id = bus;
  TG_GPU_CHECK(cudaDriverGetVersion(&d.driver_version));
  TG_GPU_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
  return d;
}

Timer::Timer(std::uintptr_t stream) : stream_(stream) {
  const DeviceInfo d = device_info();
  pci_bus_id_ = d.pci_bus_id;
  l2_bytes_ = d.l2_bytes;
  clock_ = std::make_unique<ClockReader>(pci_bus_id_, d.index);
  TG_GPU_CHECK(cudaMalloc(reinterpret_cast<void**>(&sink_), sizeof(int)));
}

Timer::~Timer() {
  for (void* e : events_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(e));
  if (flush_buf_) (void)cudaFree(flush_buf_);
  if (sink_) (void)cudaFree(sink_);
}

namespace {
double elapsed_us(void* a, void* b) {
  float ms = 0;
  TG_GPU_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(a), static_cast<cudaEvent_t>(b)));
  return 1000.0 * ms;
}
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
}  // namespace

void Timer::ensure_events(std::size_t n) {
  while (events_.size() < n) {
    cudaEvent_t e;
    TG_GPU_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
}

void Timer::ensure_flush_buffer(std::size_t bytes) {
  if (bytes == 0) bytes = default_flush_bytes(l2_bytes_);
  bytes = (bytes + 15) / 16 * 16;
  if (flush_buf_ && flush_bytes_ == bytes) return;
  if (flush_buf_) TG_GPU_CHECK(cudaFree(flush_buf_));
  flush_buf_ = nullptr;
  flush_us_ = 0;  // a new buffer: its flush is timed anew (sample())
  TG_GPU_CHECK(cudaMalloc(&flush_buf_, bytes));
  TG_GPU_CHECK(cudaMemset(flush_buf_, 1, bytes));
  flush_bytes_ = bytes;
}

void Timer::flush_l2() {
  if (!flush_buf_) ensure_flush_buffer(0);
  read_buffer(flush_buf_, flush_bytes_, sink_, stream_);
}

double Timer::estimate_us(const SampleFn& fn, int calls) {
  ensure_events(4);
  auto s = as_stream(stream_);
  TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[2]), s));
  const auto f0 = Clock::now();
  fn();  // first call: module load, JIT, autotune, library handles
  const double first_host_us = std::chrono::duration<double, std::micro>(Clock::now() - f0).count();
  TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[3]), s));
  TG_GPU_CHECK(cudaStreamSynchronize(s));
  // how many calls to time: estimate_timed_calls (one, or none, when the first shows a long kernel)
  const double first_span_us = elapsed_us(events_[2], events_[3]);
  calls = estimate_timed_calls(calls, first_span_us, first_host_us);
  timed_calls_ = calls;
  if (calls == 0) {  // the first call's span is its GPU time to 5 %
    host_us_ = first_host_us;
    back_to_back_ = true;
    return first_span_us - first_host_us;
  }
  // The GPU spins while the host enqueues, so the events see back-to-back device work, not the
  // host's launch overhead (a Python callable can take longer to launch than its kernel runs); how
  // long: estimate_lead_in_us.
  const double lead_in_us = estimate_lead_in_us(calls, first_host_us);
  spin(static_cast<std::uint64_t>(1000.0 * lead_in_us), stream_);
  TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[0]), s));
  const auto h0 = Clock::now();
  for (int i = 0; i < calls; ++i) fn();
  const double enqueue_us = std::chrono::duration<double, std::micro>(Clock::now() - h0).count();
  host_us_ = enqueue_us / std::max(calls, 1);
  // the spin outlasted the host's enqueueing: the GPU ran the calls back to back, and the estimate is
  // their GPU time alone (else it may hold host time)
  back_to_back_ = lead_in_us >= enqueue_us;
  TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[1]), s));
  TG_GPU_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(events_[1])));
  return elapsed_us(events_[0], events_[1]) / std::max(calls, 1);
}

TimerResult Timer::sample(const SampleFn& fn, const TimerOptions& opts, int ops_per_sample,
                          const std::string& mode_label, double est_us) {
  TG_CHECK_ARG(ops_per_sample >= 1, "ops_per_sample must be >= 1, got ", ops_per_sample);
  TG_CHECK_ARG(opts.min_samples >= 1 && opts.max_samples >= opts.min_samples,
               "need 1 <= min_samples <= max_samples, got ", opts.min_samples, " and ", opts.max_samples);
  TG_CHECK_ARG(opts.target_rel_spread > 0, "target_rel_spread must be > 0, got ", opts.target_rel_spread);
  const bool cold = opts.l2 == L2Mode::kCold;
  if (cold) ensure_flush_buffer(opts.flush_bytes);
  auto s = as_stream(stream_);
  const ClockReader& clock = *clock_;

  // warm-up: back-to-back runs for about warmup_ms (warmup_runs), after the per-call estimate (the
  // caller's, when it just made one of this fn: its first call absorbed lazy initialisation). No L2
  // flushes between them: the warm-up is for lazy initialisation, clocks and instruction caches, and
  // each sample below is preceded by its own flush.
  TimerResult r;
  const auto w0 = Clock::now();
  const bool own_estimate = !(est_us > 0);
  const double est = own_estimate ? estimate_us(fn, 1) : est_us;
  const double host_us = host_us_;
  // the estimate's calls, its first and those it timed, are part of the warm-up already (when its
  // time is the GPU's alone)
  const int warm = warmup_runs(opts.warmup_ms, est, host_us, back_to_back_ ? est * (timed_calls_ + 1) : 0.0);
  for (int i = 0; i < warm; ++i) fn();
  // Cold: one flush timed behind the warm-up, with the GPU at its working clocks (an idle GPU's
  // memory clock can be low). The lead-in counts the flush queued ahead of each sample, so it must
  // not overrate it: flush_us_ is the fastest seen with this buffer.
  if (cold) {
    ensure_events(2);
    TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[0]), s));
    flush_l2();
    TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[1]), s));
  }
  TG_GPU_CHECK(cudaStreamSynchronize(s));
  if (cold) {
    const double us = elapsed_us(events_[0], events_[1]);
    flush_us_ = flush_us_ > 0 ? std::min(flush_us_, us) : us;
  }
  r.warmup_ms = ms_since(w0);
  // the untimed runs before the samples: the warm-up loop plus, when sample() made its own estimate,
  // estimate_us(fn, 1)'s calls (its first, absorbing lazy initialisation, and the one it timed, if any)
  r.warmup_runs = warm + (own_estimate ? 1 + timed_calls_ : 0);
  // The GPU spins before each sample's start event so that the timed region never waits on the
  // host (sample_lead_in_us says how long and why): the flush ahead of it counts, and so does the
  // batch's work queued ahead of it, as far as that runs ahead of the host's clock. That work is
  // counted by lower bounds of its GPU time: the flushes (the fastest seen), the spins (exact), and
  // each sample: in the first batch the estimate (hot L2, so no more than a cold sample; only when
  // its time is the GPU's alone, else nothing), in later ones the fastest sample measured; each less
  // kSampleBoundMargin, as the clock may run faster than when they were measured (a bound too high
  // would add up over a batch).
  constexpr double kSampleBoundMargin = 0.9;
  const double flush_us = cold ? flush_us_ : 0.0;
  // GPU time of one whole sample (all its operations)
  double sample_lb_us = back_to_back_ ? kSampleBoundMargin * est : 0.0;
  double lead_in_sum_us = 0;
  // The harness's own enqueueing per sample (flush, spin, events): the fastest seen, its typical
  // cost (a hiccup is what the lead-in's factor 2 is for); 0 until the first sample is enqueued.
  double harness_us = 0;
  // cupti mode: the GPU's timestamps of the kernels each sample launched, instead of events
  std::unique_ptr<KernelTrace> trace;
  if (opts.mode == TimingMode::kCupti) trace = std::make_unique<KernelTrace>();

  std::vector<double> clocks;
  std::uint64_t slowdown = 0;

  std::vector<double> samples;
  const auto t0 = Clock::now();
  Stats st;
  int batch = opts.min_samples;
  while (true) {
    // Enqueue a batch of samples, then read them all: the host runs ahead of the GPU, so the flush
    // of sample i+1 is queued while sample i runs and no sample waits on the host.
    ensure_events(2 * static_cast<std::size_t>(batch));
    // The GPU is idle here (the warm-up's or the last batch's wait): it starts this batch's work no
    // earlier than now, so by any time it has run at most what was queued since; queued_us is a
    // lower bound of that work's GPU time.
    const auto batch_start = Clock::now();
    double queued_us = 0;
    for (int i = 0; i < batch; ++i) {
      const auto a = Clock::now();
      const double ahead_us =
          std::max(0.0, queued_us - std::chrono::duration<double, std::micro>(a - batch_start).count());
      if (cold) flush_l2();
      // the host's time per sample: fn's (the estimate's) and the harness's own launches around it
      const double lead_in_us = sample_lead_in_us(host_us + harness_us, flush_us, ahead_us);
      lead_in_sum_us += lead_in_us;
      queued_us += flush_us + lead_in_us + sample_lb_us;
      // untimed: lets the host enqueue the sample before the GPU reaches it
      spin(static_cast<std::uint64_t>(1000.0 * lead_in_us), stream_);
      if (trace) trace->begin(i);
      TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[2 * i]), s));
      const auto b = Clock::now();
      fn();
      const auto c = Clock::now();
      TG_GPU_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[2 * i + 1]), s));
      if (trace) trace->end();
      const double own_us = std::chrono::duration<double, std::micro>((b - a) + (Clock::now() - c)).count();
      harness_us = harness_us > 0 ? std::min(harness_us, own_us) : own_us;
    }
    // read while the GPU works through the batch: the clock the samples run at
    if (clock.available()) {
      clocks.push_back(clock.sm_mhz());
      slowdown |= clock.slowdown_reasons();
    }
    TG_GPU_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(events_[2 * batch - 1])));
    if (trace) {
      const std::vector<double> spans = trace->spans_us(static_cast<std::size_t>(batch));
      for (double us : spans) {
        TG_CHECK_ARG(us >= 0, "cupti mode: CUPTI saw no kernel in a sample (the work must be launched by the "
                     "thread that calls the timer)");
        samples.push_back(us / ops_per_sample);
      }
    } else {
      for (int i = 0; i < batch; ++i)
        samples.push_back(elapsed_us(events_[2 * i], events_[2 * i + 1]) / ops_per_sample);
    }
    st = summarize(samples);
    sample_lb_us = kSampleBoundMargin * st.min * ops_per_sample;
    ++r.batches;
    if (should_stop(st, opts.target_rel_spread, opts.min_samples, opts.max_samples, ms_since(t0),
                    opts.budget_ms))
      break;
    // Next batch: half the samples so far (the interval narrows as 1/sqrt(n), so each batch is a
    // fixed share of progress), at least 5 (each batch costs one synchronisation and a readback of
    // its events), and no more than max_samples allows (a batch past it still runs 5: should_stop
    // ends the loop after it).
    batch = std::clamp(st.n / 2, 5, std::max(5, opts.max_samples - st.n));
  }
  r.sampling_ms = ms_since(t0);
  r.lead_in_us = st.n > 0 ? lead_in_sum_us / st.n : 0.0;
  r.us = st;
  r.mode = mode_label;
  r.l2 = to_string(opts.l2);
  r.ops_per_sample = ops_per_sample;
  r.clock.available = clock.available();
  r.clock.source = clock.source();
  if (!clocks.empty()) {
    r.clock.start_mhz = clocks.front();
    r.clock.end_mhz = clocks.back();
    r.clock.min_mhz = *std::min_element(clocks.begin(), clocks.end());
    r.clock.max_mhz = *std::max_element(clocks.begin(), clocks.end());
    r.clock.device_max_mhz = clock.max_sm_mhz();
    r.clock.sagged = r.clock.min_mhz < 0.9 * r.clock.max_mhz;
  }
  r.clock.slowdown = describe_slowdown(slowdown);
  return r;
}

TimerResult Timer::measure(const LaunchFn& launch, const TimerOptions& opts) {
  int counter = 0;
  SampleFn once = [&] { launch(counter++); };
  const double est = estimate_us(once, 3);
  const TimingMode mode = choose_mode(est, opts);
  // the estimate just made is of this same fn: sample() uses it rather than making another
  if (mode == TimingMode::kEvent || mode == TimingMode::kCupti) return sample(once, opts, 1, to_string(mode), est);

  // graph mode: capture n launches (each with its own index, for buffer rotation), time the replay
  const int n = graph_launch_count(est, opts);
  auto s = as_stream(stream_);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  TG_GPU_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < n; ++i) launch(i);
  TG_GPU_CHECK(cudaStreamEndCapture(s, &graph));
  TG_GPU_CHECK(cudaGraphInstantiate(&exec, graph));
  TimerResult r;
  try {
    r = sample([&] { TG_GPU_CHECK(cudaGraphLaunch(exec, s)); }, opts, n, "graph");
  } catch (...) {
    (void)cudaGraphExecDestroy(exec);
    (void)cudaGraphDestroy(graph);
    throw;
  }
  TG_GPU_CHECK(cudaGraphExecDestroy(exec));
  TG_GPU_CHECK(cudaGraphDestroy(graph));
  return r;
}

}  // namespace tg
