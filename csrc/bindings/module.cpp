// tinygemm._C: the kernels' launchers and the timing harness, bound with pybind11. No torch headers:
// tensors arrive as data pointers, streams as integers (torch.cuda.current_stream().cuda_stream),
// so one build works with any torch version.
#include <iterator>
#include <optional>
#include <vector>

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "../harness/device_ops.h"
#include "../harness/kernel_trace.h"
#include "../harness/stats.h"
#include "../harness/timer.h"
#include "../kernels/w4a16.h"
#include "tinygemm/status.h"

namespace py = pybind11;

namespace {

tg::DType parse_dtype(const std::string& s) {
  if (s == "float16") return tg::DType::kF16;
  if (s == "bfloat16") return tg::DType::kBF16;
  if (s == "float32") return tg::DType::kF32;
  throw std::invalid_argument("dtype must be 'float16', 'bfloat16' or 'float32'; got '" + s + "'");
}

// impl as a name ('auto', 'mma', 'simt', 'tma'), a tinygemm._C.GemvImpl (an IntEnum), or its integer
tg::GemvImpl to_gemv_impl(const py::handle& v) {
  if (py::isinstance<py::str>(v)) return tg::parse_gemv_impl(v.cast<std::string>());
  if (py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v)) {
    const long long i = v.cast<long long>();
    if (i >= 0 && i < static_cast<long long>(std::size(tg::kGemvImplNames))) return static_cast<tg::GemvImpl>(i);
  }
  throw std::invalid_argument("impl must be 'auto', 'mma', 'simt' or 'tma' (or their numbers 0..3); got " +
                              py::repr(v).cast<std::string>());
}

const void* ptr(std::uintptr_t p) { return reinterpret_cast<const void*>(p); }
void* mut(std::uintptr_t p) { return reinterpret_cast<void*>(p); }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "tinygemm compiled core: INT4 kernels and the C++ timing harness";
#if defined(TINYGEMM_HIP)
  m.attr("gpu_backend") = "hip";
#elif defined(TINYGEMM_CUDA)
  m.attr("gpu_backend") = "cuda";
#else
  m.attr("gpu_backend") = "cpu";
#endif
  // whether the Hopper GEMM's sm_90a code is in this build (CMAKE_CUDA_ARCHITECTURES has 90a)
#if defined(TINYGEMM_HAVE_SM90)
  m.attr("has_sm90") = true;
#else
  m.attr("has_sm90") = false;
#endif
  py::register_exception<tg::NoGpuBuild>(m, "NoGpuBuild", PyExc_RuntimeError);
  m.attr("w4_layouts") = py::make_tuple(tg::kLayoutNames[0], tg::kLayoutNames[1]);
  {
    py::tuple gs(std::size(tg::kW4GroupSizes));
    for (std::size_t i = 0; i < std::size(tg::kW4GroupSizes); ++i) gs[i] = tg::kW4GroupSizes[i];
    m.attr("w4_group_sizes") = gs;
  }

  // The GEMV's implementations as a Python enum.IntEnum (names from w4a16.h): it compares equal to
  // the old integers 0/1/2 on every pybind11 version, and .name is what bench notes record.
  py::list impl_members;
  for (int i = 0; i < static_cast<int>(std::size(tg::kGemvImplNames)); ++i)
    impl_members.append(py::make_tuple(tg::kGemvImplNames[i], i));
  const py::object gemv_impl =
      py::module_::import("enum").attr("IntEnum")("GemvImpl", impl_members, py::arg("module") = "tinygemm._C");
  m.attr("GemvImpl") = gemv_impl;

  // statistics (CPU)
  py::class_<tg::Stats>(m, "Stats")
      .def_readonly("median", &tg::Stats::median)
      .def_readonly("min", &tg::Stats::min)
      .def_readonly("max", &tg::Stats::max)
      .def_readonly("mean", &tg::Stats::mean)
      .def_readonly("p10", &tg::Stats::p10)
      .def_readonly("p90", &tg::Stats::p90)
      .def_readonly("stdev", &tg::Stats::stdev)
      .def_readonly("n", &tg::Stats::n)
      .def_readonly("median_rel_spread", &tg::Stats::median_rel_spread);
  m.def("summarize", &tg::summarize, py::arg("samples"));
  m.def("percentile", [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return tg::percentile(v, q);
  });
  m.def("should_stop", &tg::should_stop, py::arg("stats"), py::arg("target"), py::arg("min_samples"),
        py::arg("max_samples"), py::arg("elapsed_ms"), py::arg("budget_ms"));

  // harness
  py::enum_<tg::L2Mode>(m, "L2Mode").value("cold", tg::L2Mode::kCold).value("hot", tg::L2Mode::kHot);
  py::enum_<tg::TimingMode>(m, "TimingMode")
      .value("auto", tg::TimingMode::kAuto)
      .value("event", tg::TimingMode::kEvent)
      .value("graph", tg::TimingMode::kGraph)
      .value("cupti", tg::TimingMode::kCupti);
  py::class_<tg::TimerOptions>(m, "TimerOptions")
      .def(py::init<>())
      .def_readwrite("l2", &tg::TimerOptions::l2)
      .def_readwrite("mode", &tg::TimerOptions::mode)
      .def_readwrite("target_rel_spread", &tg::TimerOptions::target_rel_spread)
      .def_readwrite("min_samples", &tg::TimerOptions::min_samples)
      .def_readwrite("max_samples", &tg::TimerOptions::max_samples)
      .def_readwrite("budget_ms", &tg::TimerOptions::budget_ms)
      .def_readwrite("warmup_ms", &tg::TimerOptions::warmup_ms)
      .def_readwrite("graph_threshold_us", &tg::TimerOptions::graph_threshold_us)
      .def_readwrite("graph_launches", &tg::TimerOptions::graph_launches)
      .def_readwrite("graph_target_us", &tg::TimerOptions::graph_target_us)
      .def_readwrite("flush_bytes", &tg::TimerOptions::flush_bytes);
  py::class_<tg::ClockInfo>(m, "ClockInfo")
      .def_readonly("available", &tg::ClockInfo::available)
      .def_readonly("source", &tg::ClockInfo::source)
      .def_readonly("start_mhz", &tg::ClockInfo::start_mhz)
      .def_readonly("end_mhz", &tg::ClockInfo::end_mhz)
      .def_readonly("min_mhz", &tg::ClockInfo::min_mhz)
      .def_readonly("max_mhz", &tg::ClockInfo::max_mhz)
      .def_readonly("device_max_mhz", &tg::ClockInfo::device_max_mhz)
      .def_readonly("sagged", &tg::ClockInfo::sagged)
      .def_readonly("slowdown", &tg::ClockInfo::slowdown);
  py::class_<tg::TimerResult>(m, "TimerResult")
      .def_readonly("us", &tg::TimerResult::us)
      .def_readonly("mode", &tg::TimerResult::mode)
      .def_readonly("l2", &tg::TimerResult::l2)
      .def_readonly("ops_per_sample", &tg::TimerResult::ops_per_sample)
      .def_readonly("warmup_runs", &tg::TimerResult::warmup_runs)
      .def_readonly("clock", &tg::TimerResult::clock)
      .def_readonly("warmup_ms", &tg::TimerResult::warmup_ms)
      .def_readonly("sampling_ms", &tg::TimerResult::sampling_ms)
      .def_readonly("lead_in_us", &tg::TimerResult::lead_in_us)
      .def_readonly("batches", &tg::TimerResult::batches);
  m.attr("max_samples_limit") = tg::kMaxSamplesLimit;
  m.attr("max_rotation_copies") = tg::kMaxRotationCopies;
  m.def("default_flush_bytes", &tg::default_flush_bytes, py::arg("l2_bytes"));
  m.def("rotation_copies", &tg::rotation_copies, py::arg("bytes_per_copy"), py::arg("l2_bytes"),
        py::arg("max_copies") = tg::kMaxRotationCopies);
  m.def("rotation_is_cold", &tg::rotation_is_cold, py::arg("copies"), py::arg("bytes_per_copy"),
        py::arg("l2_bytes"));
  m.def("choose_mode", &tg::choose_mode, py::arg("estimated_us"), py::arg("options"));
  m.def("sample_lead_in_us", &tg::sample_lead_in_us, py::arg("host_us"), py::arg("flush_us"), py::arg("credit_us"));
  m.def("estimate_lead_in_us", &tg::estimate_lead_in_us, py::arg("calls"), py::arg("first_call_host_us"));
  m.def("warmup_runs", &tg::warmup_runs, py::arg("warmup_ms"), py::arg("est_us"), py::arg("host_us"),
        py::arg("done_us") = 0.0);
  m.def("estimate_timed_calls", &tg::estimate_timed_calls, py::arg("calls"), py::arg("first_call_gpu_us"),
        py::arg("first_call_host_us"));
  m.attr("one_call_us") = tg::kOneCallUs;
  m.attr("lead_in_us_range") = py::make_tuple(tg::kMinLeadInUs, tg::kMaxLeadInUs);
  m.attr("estimate_lead_in_us_range") = py::make_tuple(tg::kMinEstimateLeadInUs, tg::kMaxEstimateLeadInUs);
  m.attr("max_warmup_runs") = tg::kMaxWarmupRuns;
  m.def("graph_launch_count", &tg::graph_launch_count, py::arg("estimated_us"), py::arg("options"));
  m.def("cupti_available", [] {
    std::string why;
    const bool ok = tg::KernelTrace::available(&why);
    return py::make_tuple(ok, why);
  }, "(usable, why not): whether the cupti timing mode can load CUPTI in this process");
  py::class_<tg::Timer>(m, "Timer")
      .def(py::init<std::uintptr_t>(), py::arg("stream"))
      .def("sample", &tg::Timer::sample, py::arg("fn"), py::arg("options"), py::arg("ops_per_sample") = 1,
           py::arg("mode_label") = "event", py::arg("est_us") = -1.0)
      .def("estimate_us", &tg::Timer::estimate_us, py::arg("fn"), py::arg("calls") = 3)
      .def("flush_l2", &tg::Timer::flush_l2)
      .def_property_readonly("flush_bytes", &tg::Timer::flush_bytes)
      .def_property_readonly("flush_us", &tg::Timer::flush_us)
      .def_property_readonly("host_us", &tg::Timer::host_us)
      .def_property_readonly("estimate_calls", &tg::Timer::estimate_calls);

  py::class_<tg::DeviceInfo>(m, "DeviceInfo")
      .def_readonly("name", &tg::DeviceInfo::name)
      .def_readonly("pci_bus_id", &tg::DeviceInfo::pci_bus_id)
      .def_readonly("arch", &tg::DeviceInfo::arch)
      .def_readonly("index", &tg::DeviceInfo::index)
      .def_readonly("sm_count", &tg::DeviceInfo::sm_count)
      .def_readonly("warp_size", &tg::DeviceInfo::warp_size)
      .def_readonly("l2_bytes", &tg::DeviceInfo::l2_bytes)
      .def_readonly("total_mem_bytes", &tg::DeviceInfo::total_mem_bytes)
      .def_readonly("driver_version", &tg::DeviceInfo::driver_version)
      .def_readonly("runtime_version", &tg::DeviceInfo::runtime_version);
  m.def("device_count", &tg::device_count);
  m.def("device_info", &tg::device_info, py::arg("device") = -1);

  // device routines the harness tests use
  m.def("spin", &tg::spin, py::arg("ns"), py::arg("stream"));
  m.def("read_buffer", [](std::uintptr_t buf, std::size_t bytes, std::uintptr_t sink, std::uintptr_t stream) {
    tg::read_buffer(ptr(buf), bytes, static_cast<int*>(mut(sink)), stream);
  }, py::arg("buf"), py::arg("bytes"), py::arg("sink"), py::arg("stream"));

  // INT4 kernels
  m.def(
      "w4a16_gemv",
      [](std::uintptr_t x, std::uintptr_t qweight, std::uintptr_t scales, std::uintptr_t zeros, std::uintptr_t y,
         int M, int N, int K, int group_size, const std::string& dtype, std::uintptr_t stream, int n_tiles,
         int warps, const py::object& impl, const std::string& layout) {
        tg::GemvConfig cfg;
        cfg.n_tiles = n_tiles;
        cfg.warps = warps;
        cfg.impl = to_gemv_impl(impl);
        tg::w4a16_gemv(ptr(x), ptr(qweight), ptr(scales), zeros ? ptr(zeros) : nullptr, mut(y), M, N, K,
                       group_size, parse_dtype(dtype), stream, cfg, tg::parse_layout(layout));
      },
      py::arg("x"), py::arg("qweight"), py::arg("scales"), py::arg("zeros"), py::arg("y"), py::arg("M"),
      py::arg("N"), py::arg("K"), py::arg("group_size"), py::arg("dtype"), py::arg("stream"),
      py::arg("n_tiles") = 0, py::arg("warps") = 0, py::arg("impl") = "auto", py::arg("layout") = tg::kLayoutNames[0]);
  m.def(
      "w4a16_gemm_sm90",
      [](std::uintptr_t x, std::uintptr_t qweight, std::uintptr_t scales, std::uintptr_t zeros, std::uintptr_t y,
         int M, int N, int K, int group_size, const std::string& dtype, std::uintptr_t stream, int block_m,
         int split, int warpgroups) {
        tg::GemmSm90Config cfg;
        cfg.block_m = block_m;
        cfg.split = split;
        cfg.warpgroups = warpgroups;
        tg::w4a16_gemm_sm90(ptr(x), ptr(qweight), ptr(scales), zeros ? ptr(zeros) : nullptr, mut(y), M, N, K,
                            group_size, parse_dtype(dtype), stream, cfg);
      },
      py::arg("x"), py::arg("qweight"), py::arg("scales"), py::arg("zeros"), py::arg("y"), py::arg("M"),
      py::arg("N"), py::arg("K"), py::arg("group_size"), py::arg("dtype"), py::arg("stream"),
      py::arg("block_m") = 0, py::arg("split") = 0, py::arg("warpgroups") = 0);
  m.def(
      "w4a16_gemm_sm90_config",
      [](int M, int N, int K, int sm_count, std::optional<std::vector<std::vector<int>>> clusters) {
        tg::Sm90ClusterCounts counts{};
        if (clusters) {
          TG_CHECK_ARG(clusters->size() == 5, "clusters: 5 rows (block_m 8, 16, 32, 64, 128); got ", clusters->size());
          for (std::size_t b = 0; b < 5; ++b) {
            TG_CHECK_ARG((*clusters)[b].size() == 8, "clusters: 8 counts per row (split 1..8); row ", b, " has ",
                         (*clusters)[b].size());
            for (std::size_t s = 0; s < 8; ++s) {
              TG_CHECK_ARG((*clusters)[b][s] >= 1 || (*clusters)[b][s] == -1,
                           "clusters: counts must be >= 1 (or -1: none fits); got ", (*clusters)[b][s]);
              counts[b][s] = (*clusters)[b][s];
            }
          }
        }
        const tg::GemmSm90Config c = tg::w4a16_gemm_sm90_config(M, N, K, sm_count, clusters ? &counts : nullptr);
        return py::dict(py::arg("block_m") = c.block_m, py::arg("split") = c.split, py::arg("warpgroups") = c.warpgroups);
      },
      py::arg("M"), py::arg("N"), py::arg("K"), py::arg("sm_count"), py::arg("clusters") = py::none());
  m.def("w4a16_gemm_sm90_clusters", &tg::w4a16_gemm_sm90_clusters, py::arg("block_m"), py::arg("split"),
        "Clusters of `split` CTAs of the block_m-token Hopper GEMM the current GPU runs at once (-1: none fits, 0: unknown)");
  m.def(
      "w4_dequant",
      [](std::uintptr_t qweight, std::uintptr_t scales, std::uintptr_t zeros, std::uintptr_t w, int N, int K,
         int group_size, const std::string& dtype, std::uintptr_t stream) {
        tg::w4_dequant(ptr(qweight), ptr(scales), zeros ? ptr(zeros) : nullptr, mut(w), N, K, group_size,
                       parse_dtype(dtype), stream);
      },
      py::arg("qweight"), py::arg("scales"), py::arg("zeros"), py::arg("w"), py::arg("N"), py::arg("K"),
      py::arg("group_size"), py::arg("dtype"), py::arg("stream"));
  m.def(
      "gptq_to_layout",
      [](std::uintptr_t gptq_qweight, std::uintptr_t qweight, int N, int K, std::uintptr_t stream) {
        tg::gptq_to_layout(ptr(gptq_qweight), mut(qweight), N, K, stream);
      },
      py::arg("gptq_qweight"), py::arg("qweight"), py::arg("N"), py::arg("K"), py::arg("stream"));
  m.def(
      "w4a16_gemv_config",
      [gemv_impl](int M, int N, int K, int sm_count, int cc_major, const std::string& layout) {
        const tg::GemvConfig c = tg::w4a16_gemv_config(M, N, K, sm_count, cc_major, tg::parse_layout(layout));
        return py::dict(py::arg("n_tiles") = c.n_tiles, py::arg("warps") = c.warps,
                        py::arg("impl") = gemv_impl(static_cast<int>(c.impl)));
      },
      py::arg("M"), py::arg("N"), py::arg("K"), py::arg("sm_count"), py::arg("cc_major"),
      py::arg("layout") = tg::kLayoutNames[0]);
  m.def(
      "w4a16_gemv_configs",
      [] {
        py::list out;
        for (int nt : tg::kGemvNTiles)
          for (int w : tg::kGemvWarps)
            if (tg::gemv_config_valid(nt, w)) out.append(py::dict(py::arg("n_tiles") = nt, py::arg("warps") = w));
        return out;
      },
      "every compiled (n_tiles, warps) of the GEMV's mma implementation, as dicts");
  m.def(
      "w4a16_gemv_tma_shapes",
      [] {
        py::list out;
        for (const auto& sh : tg::kGemvTmaShapes) out.append(py::make_tuple(sh[0], sh[1]));
        return out;
      },
      "every compiled (n_tiles, warps) of the GEMV's tma implementation (Hopper builds)");
  m.def("check_w4_dims", &tg::check_w4_dims, py::arg("N"), py::arg("K"), py::arg("group_size"),
        "the packed layouts' shape rules (ValueError naming the constraint and the values)");
  m.def(
      "check_w4_shape",
      [](int N, int K, int group_size, const std::string& dtype) {
        tg::check_w4_shape(N, K, group_size, parse_dtype(dtype));
      },
      py::arg("N"), py::arg("K"), py::arg("group_size"), py::arg("dtype"));
}
