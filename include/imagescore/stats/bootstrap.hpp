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

}  // namespace imagescore
