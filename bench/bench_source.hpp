// An in-memory image source of random bytes for the benchmarks: no disk or decoding in
// the measured time, so the figures are those of the model and the scoring code.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "imagescore/data/data.hpp"

namespace imagescore::bench {

class RandomSource : public ImageSource {
 public:
  // `count` images of `shape`, labels i % classes, pixels from a seeded LCG.
  RandomSource(ImageShape shape, std::size_t count, int classes, std::uint64_t seed)
      : shape_(shape), count_(count), pixels_(count * shape.pixels()) {
    for (int c = 0; c < classes; ++c) classes_.push_back("class" + std::to_string(c));
    std::uint64_t state = seed * 2654435761u + 1;
    for (auto& p : pixels_) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      p = std::uint8_t(state >> 56);
    }
  }
  std::size_t size() const override { return count_; }
  ImageShape shape() const override { return shape_; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  int label(std::size_t i) const override { return int(i % classes_.size()); }
  std::string path(std::size_t i) const override { return "memory#" + std::to_string(i); }
  void read(std::size_t i, std::uint8_t* out) const override {
    std::memcpy(out, pixels_.data() + i * shape_.pixels(), shape_.pixels());
  }
  std::string spec() const override { return "memory"; }

 private:
  ImageShape shape_;
  std::size_t count_;
  std::vector<std::string> classes_;
  std::vector<std::uint8_t> pixels_;
};

}  // namespace imagescore::bench
