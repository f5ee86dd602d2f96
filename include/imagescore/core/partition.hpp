// How a share or a shard of n items is counted, the same way everywhere (selection,
// precision at the top, profile and score shards, MPI ranks).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace imagescore {

// How many of n items a fraction in [0, 1] keeps: round(fraction * n), halves rounded
// up. Fails on a fraction outside [0, 1].
std::size_t count_for_fraction(double fraction, std::size_t n);

// Items [first, last) of shard `index` (1-based) of `count` over n items: contiguous,
// disjoint, covering [0, n), sizes differing by at most one. Fails unless
// 1 <= index <= count.
std::pair<std::size_t, std::size_t> shard_range(std::size_t n, std::size_t index, std::size_t count);

// Refuses more shards of a reference set than it has items (a part with no images is a
// mistyped K, and 1/4294967296 would silently write an empty profile).
void check_shard_count(const std::string& where, std::size_t n, std::size_t count);

// "I/K" as a shard (1 <= I <= K); OptionError "shard" otherwise.
std::pair<std::size_t, std::size_t> parse_shard(const std::string& text);

// The p-quantile (0 <= p <= 1) of unsorted values with linear interpolation between order
// statistics (type 7); NaN for no values.
double quantile(std::vector<double> values, double p);

}  // namespace imagescore
