#include "imagescore/core/partition.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "imagescore/core/error.hpp"
#include "imagescore/core/text.hpp"

namespace imagescore {

std::size_t count_for_fraction(double fraction, std::size_t n) {
  if (!(fraction >= 0.0 && fraction <= 1.0)) fail_option("fraction", "must be between 0 and 1, got " + format_double(fraction));
  return std::min(n, std::size_t(std::floor(fraction * double(n) + 0.5)));
}

std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  std::size_t index = 0, count = 0;
  if (slash == std::string::npos || !parse_number(text.substr(0, slash), index) || !parse_number(text.substr(slash + 1), count))
    fail_option("shard", "expected I/K (for example 2/4), got '" + text + "'");
  if (count == 0 || index < 1 || index > count) fail_option("shard", "expected 1 <= I <= K, got '" + text + "'");
  return {index, count};
}

std::pair<std::size_t, std::size_t> shard_range(std::size_t n, std::size_t index, std::size_t count) {
  if (count == 0 || index < 1 || index > count)
    fail_option("shard", "expected I/K with 1 <= I <= K, got " + std::to_string(index) + "/" + std::to_string(count));
  // 128-bit products: index * n can exceed 64 bits for a huge count.
  __extension__ typedef unsigned __int128 u128;
  return {std::size_t(u128(index - 1) * n / count), std::size_t(u128(index) * n / count)};
}

void check_shard_count(const std::string& where, std::size_t n, std::size_t count) {
  if (count > n)
    fail(where, "cannot be cut into " + std::to_string(count) + " shards: it has " + std::to_string(n) + " images");
}

double quantile(std::vector<double> values, double p) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double position = p * double(values.size() - 1);
  const auto below = std::size_t(std::floor(position));
  const std::size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (position - double(below)) * (values[above] - values[below]);
}

}  // namespace imagescore
