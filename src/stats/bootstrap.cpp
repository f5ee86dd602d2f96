#include "imagescore/stats/bootstrap.hpp"

#include <limits>

#include "imagescore/core/error.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/core/random.hpp"

namespace imagescore {
namespace {

double resampled_mean(const std::vector<double>& v, SplitMix64& rng) {
  double s = 0;
  for (std::size_t i = 0; i < v.size(); ++i) s += v[rng.below(v.size())];
  return s / double(v.size());
}

}  // namespace

double bootstrap_p_value(const std::vector<double>& a, const std::vector<double>& b, std::size_t resamples,
                         std::uint64_t seed) {
  if (a.empty() || b.empty()) return std::numeric_limits<double>::quiet_NaN();
  if (resamples == 0) fail_option("resamples", "must be > 0");
  SplitMix64 rng(seed);
  double below = 0;
  for (std::size_t r = 0; r < resamples; ++r) {
    double d = resampled_mean(a, rng) - resampled_mean(b, rng);
    if (d < 0)
      below += 1;
    else if (d == 0)
      below += 0.5;
  }
  return below / double(resamples);
}

MeanInterval bootstrap_mean_interval(const std::vector<double>& values, std::size_t resamples, std::uint64_t seed,
                                     double confidence) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  if (values.empty()) return {nan, nan};
  if (resamples == 0) fail_option("resamples", "must be > 0");
  if (!(confidence > 0 && confidence < 1)) fail_option("confidence", "must be in (0, 1)");
  SplitMix64 rng(seed);
  std::vector<double> means(resamples);
  for (auto& m : means) m = resampled_mean(values, rng);
  const double tail = (1 - confidence) / 2;
  return {quantile(means, tail), quantile(means, 1 - tail)};
}

}  // namespace imagescore
