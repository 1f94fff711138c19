// What every tinygemm-bench-* binary shares: flag parsing (with a usage message and exit code 2 on
// bad input), harness options, the --profile mode (one launch between cudaProfilerStart/Stop inside an
// NVTX range, for `ncu --profile-from-start off`), and CSV / JSON output.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "harness/timer.h"
#include "tinygemm/gpu.h"
#include "tinygemm/status.h"

#if !defined(TINYGEMM_HIP)
#include <nvtx3/nvToolsExt.h>
#endif

namespace tg::bench {

constexpr int kExitUsage = 2;
constexpr int kExitNoGpu = 77;  // the automake / ctest convention for "skipped"

struct Flag {
  std::string name, help, value;
  std::string def;  // the default, as usage prints it (value may hold a rejected argument)
  bool is_switch = false;
  bool seen = false;
};

class Args {
 public:
  Args(std::string prog, std::string about) : prog_(std::move(prog)), about_(std::move(about)) {
    add("device", "0", "GPU index");
    add("l2", "cold", "cold (L2 flushed before each sample) or hot");
    // defaults: the harness's own (TimerOptions' initializers, timer.h)
    const TimerOptions d;
    add("mode", "auto", "auto (graphs under " + num(d.graph_threshold_us) +
                            " us), event, graph or cupti (the kernels' own GPU timestamps)");
    add("target", num(d.target_rel_spread), "stop when the median's relative spread is under this");
    add("min-samples", num(d.min_samples), "fewest samples");
    add("max-samples", num(d.max_samples), "most samples");
    add("budget-ms", num(d.budget_ms), "wall-time budget for sampling");
    add("csv", "", "write a CSV row to this path ('-' = stdout)");
    add("json", "", "write a JSON object to this path ('-' = stdout)");
    add_switch("profile", "run one launch between cudaProfilerStart/Stop (NVTX range) instead of timing");
    add_switch("smoke", "a short run for ctest (small sizes, small budget)");
    add_switch("help", "show this message");
  }
  static std::string num(double v) {  // 0.01, 10, 2000: as a flag's default reads
    std::ostringstream os;
    os << v;
    return os.str();
  }
  void add(const std::string& name, const std::string& def, const std::string& help) {
    flags_[name] = Flag{name, help, def, def, false, false};
    order_.push_back(name);
  }
  void add_switch(const std::string& name, const std::string& help) {
    flags_[name] = Flag{name, help, "0", "0", true, false};
    order_.push_back(name);
  }
  [[noreturn]] void usage(const std::string& error) const {
    std::ostream& os = error.empty() ? std::cout : std::cerr;
    if (!error.empty()) os << prog_ << ": error: " << error << "\n\n";
    os << "usage: " << prog_ << " [options]\n" << about_ << "\n\noptions:\n";
    for (const auto& n : order_) {
      const Flag& f = flags_.at(n);
      os << "  --" << n << (f.is_switch ? "" : " VALUE") << "\n      " << f.help
         << (f.is_switch || f.def.empty() ? "" : " (default " + f.def + ")") << "\n";
    }
    std::exit(error.empty() ? 0 : kExitUsage);
  }
  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) usage("unexpected argument '" + a + "'");
      std::string name = a.substr(2), value;
      const auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      auto it = flags_.find(name);
      if (it == flags_.end()) usage("unknown option '--" + name + "'");
      Flag& f = it->second;
      if (f.is_switch) {
        f.value = "1";
      } else if (eq == std::string::npos) {
        if (i + 1 >= argc) usage("option '--" + name + "' needs a value");
        f.value = argv[++i];
      } else {
        f.value = value;
      }
      f.seen = true;
    }
    if (flag("help")) usage("");
  }
  const std::string& str(const std::string& n) const { return flags_.at(n).value; }
  bool flag(const std::string& n) const { return flags_.at(n).value == "1"; }
  bool seen(const std::string& n) const { return flags_.at(n).seen; }
  // A plain integer flag (--device): no size suffix ("1k" is not a device).
  long long integer(const std::string& n, long long lo, long long hi) const { return number(n, lo, hi, false); }
  // A size flag (--bytes, --m/--n/--k): an integer with an optional K, M or G suffix.
  long long size(const std::string& n, long long lo, long long hi) const { return number(n, lo, hi, true); }
  long long number(const std::string& n, long long lo, long long hi, bool suffix) const {
    const std::string& v = str(n);
    const auto range_error = [&] {
      usage("--" + n + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + "; got '" + v + "'");
    };
    long long x = 0;
    const bool refused_suffix = !suffix && !v.empty() && std::isalpha(static_cast<unsigned char>(v.back()));
    if (refused_suffix || !parse_integer(v, &x)) {
      if (!refused_suffix && parse_integer(v, &x, /*range_only=*/true)) range_error();  // beyond 64 bits
      usage("--" + n + " must be an integer" + (suffix ? " (with an optional K, M or G suffix)" : "") + "; got '" + v + "'");
    }
    if (x < lo || x > hi) range_error();
    return x;
  }
  // An integer with an optional binary size suffix (k/K = 2^10, m/M = 2^20, g/G = 2^30): false for
  // anything else, and for a value that does not fit in 64 bits (17179869185G), unless range_only,
  // which answers whether v is well-formed whatever its size.
  static bool parse_integer(const std::string& v, long long* out, bool range_only = false) {
    if (v.empty() || !(std::isdigit(static_cast<unsigned char>(v[0])) || v[0] == '-' || v[0] == '+')) return false;
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (end == v.c_str() || !std::isdigit(static_cast<unsigned char>(end[-1]))) return false;
    const bool overflow = errno == ERANGE;
    int shift = 0;
    const std::string suf(end);
    if (suf == "K" || suf == "k") shift = 10;
    else if (suf == "M" || suf == "m") shift = 20;
    else if (suf == "G" || suf == "g") shift = 30;
    else if (!suf.empty()) return false;
    if (range_only) return true;
    if (overflow || x > (LLONG_MAX >> shift) || x < (LLONG_MIN >> shift)) return false;
    *out = shift ? static_cast<long long>(static_cast<unsigned long long>(x) << shift) : x;
    return true;
  }
  double real(const std::string& n, double lo, double hi) const {
    const std::string& v = str(n);
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(v.c_str(), &end);
    // written as !(in range) so that NaN fails too
    if (v.empty() || (end && *end) || errno == ERANGE || !(x >= lo && x <= hi))
      usage("--" + n + " must be a number between " + std::to_string(lo) + " and " + std::to_string(hi) +
            "; got '" + v + "'");
    return x;
  }
  std::string choice(const std::string& n, const std::vector<std::string>& allowed) const {
    for (const auto& a : allowed)
      if (a == str(n)) return a;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    usage("--" + n + " must be one of " + list + "; got '" + str(n) + "'");
  }
  TimerOptions timer_options() const {
    TimerOptions o;
    o.l2 = choice("l2", {"cold", "hot"}) == "cold" ? L2Mode::kCold : L2Mode::kHot;
    const std::string m = choice("mode", {"auto", "event", "graph", "cupti"});
    o.mode = m == "auto"    ? TimingMode::kAuto
             : m == "event" ? TimingMode::kEvent
             : m == "cupti" ? TimingMode::kCupti
                            : TimingMode::kGraph;
    o.target_rel_spread = real("target", 1e-4, 1.0);
    o.min_samples = static_cast<int>(integer("min-samples", 1, kMaxSamplesLimit));
    o.max_samples = static_cast<int>(integer("max-samples", o.min_samples, kMaxSamplesLimit));
    o.budget_ms = real("budget-ms", 1, 3.6e6);
    if (flag("smoke")) {
      o.budget_ms = std::min(o.budget_ms, 200.0);
      o.max_samples = std::min(o.max_samples, 50);
      o.min_samples = std::min(o.min_samples, o.max_samples);
    }
    return o;
  }

 private:
  std::string prog_, about_;
  std::map<std::string, Flag> flags_;
  std::vector<std::string> order_;
};

// Selects the GPU or exits 77 with a clear message when there is none. A malformed --device (-1,
// abc) is bad input, exit 2, on any machine: its syntax is checked before the GPU count.
inline void select_device(const Args& args) {
  args.integer("device", 0, 1023);
  const int n = device_count();
  if (n == 0) {
    std::cerr << "no GPU is visible to the CUDA/HIP runtime: nothing to measure (exit 77 = skipped)\n";
    std::exit(kExitNoGpu);
  }
  const int d = static_cast<int>(args.integer("device", 0, n - 1));
#if defined(TINYGEMM_HIP)
  TG_GPU_CHECK(hipSetDevice(d));
#else
  TG_GPU_CHECK(cudaSetDevice(d));
#endif
}

// The L2 label of a result, by the harness's rotation rule (rotation_is_cold, timer.h; tinygemm.timing
// uses the same): a cold-L2 graph result is "cold" only when its launches rotate through enough
// buffers; otherwise only the first launch of a replay is cold: "cold-first".
inline std::string l2_label(const TimerResult& r, long long copies, std::size_t bytes_per_copy,
                            std::size_t l2_bytes) {
  if (r.l2 != "cold" || r.mode != "graph") return r.l2;
  return rotation_is_cold(copies, bytes_per_copy, l2_bytes) ? "cold" : "cold-first";
}

// One launch inside the profiler's capture window, after a warm-up launch outside it.
template <typename F>
void profile_once(F&& launch, cudaStream_t stream, const std::string& range) {
  launch();
  TG_GPU_CHECK(cudaStreamSynchronize(stream));
  TG_GPU_CHECK(cudaProfilerStart());
#if !defined(TINYGEMM_HIP)
  nvtxRangePushA(range.c_str());
#endif
  launch();
  TG_GPU_CHECK(cudaStreamSynchronize(stream));
#if !defined(TINYGEMM_HIP)
  nvtxRangePop();
#endif
  TG_GPU_CHECK(cudaProfilerStop());
}

// An ordered record written as CSV (header + row) or JSON (one object).
class Record {
 public:
  template <typename V>
  Record& set(const std::string& k, const V& v) {
    std::ostringstream os;
    os << v;
    fields_.emplace_back(k, os.str(), !std::is_arithmetic<V>::value);
    return *this;
  }
  Record& timing(const TimerResult& r) {
    set("mode", r.mode).set("l2", r.l2).set("median_us", r.us.median).set("min_us", r.us.min);
    set("mean_us", r.us.mean).set("p10_us", r.us.p10).set("p90_us", r.us.p90).set("stdev_us", r.us.stdev);
    set("samples", r.us.n).set("ops_per_sample", r.ops_per_sample);
    set("sm_clock_mhz_min", r.clock.min_mhz).set("sm_clock_mhz_max", r.clock.max_mhz);
    set("clock_sagged", r.clock.sagged ? 1 : 0).set("clock_slowdown", r.clock.slowdown);
    return *this;
  }
  std::string csv() const {
    std::string h, v;
    for (const auto& [k, val, q] : fields_) {
      h += (h.empty() ? "" : ",") + k;
      v += (v.empty() ? "" : ",") + val;
    }
    return h + "\n" + v + "\n";
  }
  std::string json() const {
    std::string s = "{";
    for (const auto& [k, val, q] : fields_)
      s += (s.size() > 1 ? ", " : "") + ("\"" + k + "\": ") + (q ? "\"" + val + "\"" : val);
    return s + "}\n";
  }
  std::string text() const {
    std::string s;
    for (const auto& [k, val, q] : fields_) s += k + "=" + val + " ";
    return s + "\n";
  }

 private:
  std::vector<std::tuple<std::string, std::string, bool>> fields_;
};

inline void emit(const Args& args, const Record& r) {
  auto out = [](const std::string& path, const std::string& text) {
    if (path == "-") {
      std::cout << text;
    } else {
      std::ofstream f(path);
      if (!f) throw std::runtime_error("cannot write " + path);
      f << text;
    }
  };
  bool any = false;
  if (!args.str("csv").empty()) out(args.str("csv"), r.csv()), any = true;
  if (!args.str("json").empty()) out(args.str("json"), r.json()), any = true;
  if (!any) std::cout << r.text();
}

// main() wrapper: errors become a message and exit 1, never an abort.
template <typename F>
int run_main(F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace tg::bench
