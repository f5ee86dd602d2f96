// Seeded randomness that is identical on every platform and standard library (whose
// distributions and shuffles are not specified bit for bit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace imagescore {

// SplitMix64 (Steele, Lea and Flood): tiny, fast and fully specified.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  // Uniform in [0, bound), bound > 0, by rejection so that there is no modulo bias.
  std::uint64_t below(std::uint64_t bound);
  // Uniform in [0, 1) with 53 random bits.
  double uniform();

 private:
  std::uint64_t state_;
};

// Derives an independent seed from a seed and a value (epoch, class id, image index):
// nearby inputs give unrelated streams.
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t value);

// Seeded permutation of 0..n-1 (SplitMix64 + Fisher-Yates).
std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed);

}  // namespace imagescore
