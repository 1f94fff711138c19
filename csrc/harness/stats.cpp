#include "stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace tg {

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) throw std::invalid_argument("percentile of an empty sample");
  if (q < 0 || q > 1) throw std::invalid_argument("percentile q must be in [0, 1]");
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

double median_rel_spread(const std::vector<double>& sorted) {
  const int n = static_cast<int>(sorted.size());
  if (n < 5) return std::numeric_limits<double>::infinity();
  const double half = 1.96 * std::sqrt(static_cast<double>(n)) / 2.0;
  const int lo = std::max(0, static_cast<int>(std::floor(n / 2.0 - half)));
  const int hi = std::min(n - 1, static_cast<int>(std::ceil(n / 2.0 + half)));
  const double med = percentile(sorted, 0.5);
  if (med <= 0) return std::numeric_limits<double>::infinity();
  return (sorted[hi] - sorted[lo]) / (2.0 * med);
}

Stats summarize(std::vector<double> samples) {
  Stats s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.n = static_cast<int>(samples.size());
  s.min = samples.front();
  s.max = samples.back();
  s.median = percentile(samples, 0.5);
  s.p10 = percentile(samples, 0.1);
  s.p90 = percentile(samples, 0.9);
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / s.n;
  double var = 0;
  for (double v : samples) var += (v - s.mean) * (v - s.mean);
  s.stdev = s.n > 1 ? std::sqrt(var / (s.n - 1)) : 0.0;
  s.median_rel_spread = median_rel_spread(samples);
  return s;
}

bool should_stop(const Stats& s, double target, int min_samples, int max_samples, double elapsed_ms,
                 double budget_ms) {
  if (s.n >= max_samples) return true;
  if (elapsed_ms >= budget_ms && s.n >= std::min(min_samples, 3)) return true;
  return s.n >= min_samples && s.median_rel_spread <= target;
}

}  // namespace tg
