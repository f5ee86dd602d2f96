#include "imagescore/core/random.hpp"

#include <numeric>
#include <utility>

namespace imagescore {
namespace {

constexpr std::uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

std::uint64_t splitmix_finalize(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::uint64_t SplitMix64::next() { return splitmix_finalize(state_ += kGoldenGamma); }

std::uint64_t SplitMix64::below(std::uint64_t bound) {
  const std::uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    std::uint64_t r = next();
    if (r >= threshold) return r % bound;
  }
}

double SplitMix64::uniform() { return double(next() >> 11) * 0x1.0p-53; }

std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t value) {
  return splitmix_finalize(splitmix_finalize(seed) ^ (value + kGoldenGamma));
}

std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> permutation(n);
  std::iota(permutation.begin(), permutation.end(), std::size_t(0));
  SplitMix64 rng(seed);
  for (std::size_t i = n; i > 1; --i) std::swap(permutation[i - 1], permutation[rng.below(i)]);
  return permutation;
}

}  // namespace imagescore
