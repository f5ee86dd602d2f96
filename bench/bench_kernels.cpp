// Micro-benchmarks of the two per-neuron loops of the method, apart from any model:
//   BM_Score          ImageScorer::score on one tap (threshold, mask and count)
//   BM_ProfileAdd     ProfileBuilder::add (exact fixed-point accumulation)
// Both report items/s, an item being one neuron of one image.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/score/score.hpp"

namespace imagescore::bench {
namespace {

constexpr int kClasses = 10;
constexpr std::size_t kImages = 32;  // images per synthetic batch

// A model with a single tap of `n` neurons; it is only asked for its metadata and tap
// shapes (ProfileBuilder's constructor), never run.
class TapOnlyModel : public Model {
 public:
  explicit TapOnlyModel(std::size_t n) {
    meta_.arch = "tap-only";
    meta_.input = {1, 1, 1};
    for (int c = 0; c < kClasses; ++c) meta_.class_names.push_back("class" + std::to_string(c));
    meta_.normalization = {{0.f}, {1.f}};
    meta_.weights_hash = "none";
    taps_ = {{"tap", {std::int64_t(n)}}};
  }
  const ModelMeta& meta() const override { return meta_; }
  const std::vector<TapInfo>& taps() const override { return taps_; }
  ForwardOutput forward(const Batch&, const std::vector<std::size_t>&) override { return {}; }

 private:
  ModelMeta meta_;
  std::vector<TapInfo> taps_;
};

// ReLU-like activations: half are zero, the others scaled per neuron so that the
// class means differ across neurons and the masks cover part of the tap (not all).
struct SyntheticTap {
  std::vector<float> values;  // kImages x n
  std::vector<std::int64_t> labels;
  ForwardOutput out;

  explicit SyntheticTap(std::size_t n) : values(kImages * n) {
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<float> unit(0.f, 1.f);
    std::vector<float> scale(n);
    for (auto& s : scale) s = unit(rng) * 4.f;
    for (std::size_t i = 0; i < kImages; ++i)
      for (std::size_t k = 0; k < n; ++k) {
        float u = unit(rng) * 2.f - 1.f;
        values[i * n + k] = u > 0 ? u * scale[k] : 0.f;
      }
    for (std::size_t i = 0; i < kImages; ++i) labels.push_back(std::int64_t(i % kClasses));
    out.batch = kImages;
    out.taps = {TapView::contiguous(values.data(), kImages, n)};
  }
};

void BM_Score(benchmark::State& state) {
  const auto n = std::size_t(state.range(0));
  TapOnlyModel model(n);
  SyntheticTap tap(n);
  ProfileBuilder builder(model, {0}, ProfileOptions{});
  builder.add(tap.out, tap.labels);
  const ProfileSet set = builder.finish("synthetic");
  ImageScorer scorer(set, ImageScoreOptions{});
  // Cycle through the batch's images and the profiles, as a scoring run does.
  std::vector<const float*> ptrs(1);
  std::size_t i = 0;
  for (auto _ : state) {
    ptrs[0] = tap.values.data() + i * n;
    benchmark::DoNotOptimize(scorer.score(i % kClasses, ptrs, nullptr));
    i = (i + 1) % kImages;
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(n));
  state.counters["mask_fraction"] =
      double(set.profiles[0].taps[0].mask_count) / double(set.profiles[0].taps[0].numel());
}

void BM_ProfileAdd(benchmark::State& state) {
  const auto n = std::size_t(state.range(0));
  TapOnlyModel model(n);
  SyntheticTap tap(n);
  ProfileBuilder builder(model, {0}, ProfileOptions{});
  for (auto _ : state) {
    builder.add(tap.out, tap.labels);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(kImages * n));
}

BENCHMARK(BM_Score)->Arg(512)->Arg(8192)->Arg(65536);
BENCHMARK(BM_ProfileAdd)->Arg(512)->Arg(8192)->Arg(65536);

}  // namespace
}  // namespace imagescore::bench

BENCHMARK_MAIN();
