// Sample statistics and the adaptive stopping rule. Plain C++ (built in every configuration, CPU-only
// included) so that the rule the GPU timings depend on is tested in CI.
#pragma once

#include <vector>

namespace tg {

struct Stats {
  double median = 0, min = 0, max = 0, mean = 0, p10 = 0, p90 = 0, stdev = 0;
  int n = 0;
  // Half-width of the ~95 % confidence interval of the median (order statistics), over the median.
  double median_rel_spread = 0;
};

// Linear interpolation between order statistics (numpy's default "linear" method). `sorted` ascending.
double percentile(const std::vector<double>& sorted, double q);

// Distribution-free confidence interval of the median: with n samples the ranks
// n/2 -/+ 1.96 * sqrt(n) / 2 bound it at about 95 %. Returns its half-width over the median;
// infinity for fewer than 5 samples (no useful interval exists).
double median_rel_spread(const std::vector<double>& sorted);

Stats summarize(std::vector<double> samples);

// Stop sampling once the median is known to `target` (relative), after at least `min_samples`,
// or when `max_samples` or the time budget is spent.
bool should_stop(const Stats& s, double target, int min_samples, int max_samples, double elapsed_ms,
                 double budget_ms);

}  // namespace tg
