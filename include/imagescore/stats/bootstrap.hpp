// Bootstrap tests of a difference of means.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace imagescore {

// One-sided bootstrap test of "mean(a) > mean(b)": both samples are resampled with
// replacement, independently; the p-value is the share of resamples whose difference of
// means is < 0, with differences of exactly 0 counted as one half. NaN for an empty sample.
double bootstrap_p_value(const std::vector<double>& a, const std::vector<double>& b, std::size_t resamples,
                         std::uint64_t seed);

// Percentile bootstrap interval of a mean (`confidence` 0.95: the 2.5% and 97.5% quantiles
// of the means of `resamples` draws of n values with replacement, SplitMix64 seeded). With
// few values (3 seeds, say) it is narrow, being bounded by the values themselves: read it
// with the count of values. {NaN, NaN} for no values.
struct MeanInterval {
  double low, high;
};
MeanInterval bootstrap_mean_interval(const std::vector<double>& values, std::size_t resamples, std::uint64_t seed,
                                     double confidence = 0.95);

}  // namespace imagescore
