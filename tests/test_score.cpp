// The image score on hand-computed cases and against a brute-force reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "imagescore/score/profile.hpp"
#include "imagescore/score/score.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::batch_of;
using testing::PixelModel;

const ImageShape kShape{1, 2, 2};  // 4 "neurons" per tap

// Class 0's reference images are {1,0,2,0} and {3,0,2,1}: sum {4,0,4,1}, mean {2,0,2,0.5}.
ProfileSet hand_profiles(ProfileOptions options, Model& model) {
  options.keep_sums = true;  // for the reference activations
  ProfileBuilder builder(model, resolve_taps(model, {"x", "neg"}), options);
  auto batch = batch_of(kShape, {{1, 0, 2, 0}, {3, 0, 2, 1}, {0, 5, 0, 0}}, {0, 0, 1});
  builder.add(model.forward(batch, resolve_taps(model, {"x", "neg"})), batch.labels);
  return builder.finish("hand");
}

double score_of(const ProfileSet& set, std::size_t profile, std::vector<float> x, ImageScoreOptions o,
                std::vector<double>* terms = nullptr) {
  std::vector<float> neg(x);
  for (auto& v : neg) v = -v;
  ImageScorer scorer(set, o);
  return scorer.score(profile, {x.data(), neg.data()}, terms);
}

TEST(ImageScore, HandComputedProfile) {
  PixelModel model(kShape, {"a", "b"});
  auto set = hand_profiles({}, model);
  const auto& tap = set.profiles[0].taps[0];
  EXPECT_EQ(set.profiles[0].count, 2u);
  EXPECT_EQ(reference_activation(tap, 2, set.options), (std::vector<double>{2, 0, 2, 0.5}));
  EXPECT_DOUBLE_EQ(tap.threshold, 1.0);  // 0.5 * max
  EXPECT_EQ(unpack_mask(tap), (std::vector<std::uint8_t>{1, 0, 1, 0}));
  EXPECT_EQ(tap.mask, (std::vector<std::uint64_t>{0b0101}));  // bit i is neuron i
  EXPECT_EQ(tap.mask_count, 2u);
  // The negated tap never exceeds 0: excluded and reported.
  EXPECT_TRUE(set.profiles[0].taps[1].excluded);
  ASSERT_EQ(set.exclusions().size(), 2u);
  EXPECT_EQ(set.exclusions()[0], "a/neg: max of the reference activation is <= 0");
  // Class b: mean {0,5,0,0}, t = 2.5, mask {0,1,0,0}.
  EXPECT_EQ(unpack_mask(set.profiles[1].taps[0]), (std::vector<std::uint8_t>{0, 1, 0, 0}));
}

TEST(ImageScore, HandComputedOverlaps) {
  PixelModel model(kShape, {"a", "b"});
  auto set = hand_profiles({}, model);
  // Image {1.5, 3, 0.5, 0}: its mask at t=1 is {1,1,0,0}; with M = {1,0,1,0}:
  // |M_I and M| = 1, |M_I| = 2, |M| = 2, |M_I or M| = 3.
  std::vector<float> image{1.5f, 3.f, 0.5f, 0.f};
  std::vector<double> terms;
  EXPECT_DOUBLE_EQ(score_of(set, 0, image, {Overlap::Recall, 0}, &terms), std::log(0.5));
  EXPECT_EQ(terms, (std::vector<double>{std::log(0.5), 0.0}));  // excluded tap contributes 0
  EXPECT_DOUBLE_EQ(score_of(set, 0, image, {Overlap::Literal, 0}), std::log(1.0));
  EXPECT_DOUBLE_EQ(score_of(set, 0, image, {Overlap::Jaccard, 0}), std::log(1.0 / 3.0));
  // The threshold is inclusive: exactly t counts as active.
  EXPECT_DOUBLE_EQ(score_of(set, 0, {1.f, 0.f, 1.f, 0.f}, {Overlap::Recall, 0}), 0.0);
}

TEST(ImageScore, FloorIsHalfANeuronByDefault) {
  PixelModel model(kShape, {"a", "b"});
  auto set = hand_profiles({}, model);
  std::vector<float> blank{0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(score_of(set, 0, blank, {Overlap::Recall, 0}), std::log(0.25));  // 1 / (2 * |M|)
  EXPECT_DOUBLE_EQ(score_of(set, 0, blank, {Overlap::Recall, 0.01}), std::log(0.01));
  EXPECT_TRUE(std::isfinite(score_of(set, 0, blank, {Overlap::Jaccard, 0})));
  EXPECT_ERROR_CONTAINS(ImageScorer(set, {Overlap::Recall, -1}), "floor: must be in (0, 1]");
  EXPECT_ERROR_CONTAINS(ImageScorer(set, {Overlap::Recall, 1.5}), "floor: must be in (0, 1]");
}

TEST(ImageScore, NormsAndScales) {
  PixelModel model(kShape, {"a", "b"});
  ProfileOptions l1;
  l1.norm = ThresholdNorm::L1;  // t = 0.5 * (2 + 0 + 2 + 0.5) / 4
  EXPECT_DOUBLE_EQ(hand_profiles(l1, model).profiles[0].taps[0].threshold, 0.5625);
  ProfileOptions l2;
  l2.norm = ThresholdNorm::L2;  // t = 0.5 * sqrt((4 + 0 + 4 + 0.25) / 4)
  EXPECT_DOUBLE_EQ(hand_profiles(l2, model).profiles[0].taps[0].threshold, 0.5 * std::sqrt(8.25 / 4));
  ProfileOptions sum;
  sum.scale = ProfileScale::Sum;  // A = {4,0,4,1}, t = 2: the literal reading
  auto s = hand_profiles(sum, model);
  EXPECT_EQ(reference_activation(s.profiles[0].taps[0], 2, s.options), (std::vector<double>{4, 0, 4, 1}));
  EXPECT_DOUBLE_EQ(s.profiles[0].taps[0].threshold, 2.0);
  // On the scale of the sum, a single image's mask is nearly empty: the floor applies.
  EXPECT_DOUBLE_EQ(score_of(s, 0, {1.5f, 3.f, 0.5f, 0.f}, {Overlap::Recall, 0}), std::log(0.25));
  ProfileOptions rho;
  rho.rho = 0.25;
  EXPECT_DOUBLE_EQ(hand_profiles(rho, model).profiles[0].taps[0].threshold, 0.5);
}

TEST(ImageScore, RhoOutOfRangeIsRejected) {
  PixelModel model(kShape, {"a", "b"});
  for (double rho : {0.0, -0.1, 1.5}) {
    ProfileOptions o;
    o.rho = rho;
    EXPECT_ERROR_CONTAINS(hand_profiles(o, model), "rho: must be in (0, 1], got ");
  }
  ProfileOptions one;
  one.rho = 1.0;
  EXPECT_NO_THROW(hand_profiles(one, model));
}

TEST(ImageScore, ThresholdFloatIsExact) {
  // The float threshold is the smallest float >= t, so float comparisons equal double ones.
  PixelModel model(kShape, {"a", "b"});
  ProfileOptions o;
  o.rho = 0.3;
  auto set = hand_profiles(o, model);
  const auto& tap = set.profiles[0].taps[0];
  EXPECT_GE(double(tap.threshold_float), tap.threshold);
  EXPECT_LT(double(std::nextafter(tap.threshold_float, 0.f)), tap.threshold);
}

// Brute force: per image, per neuron, straight from the definitions in SPEC section 2.
double brute_force_score(const std::vector<std::vector<double>>& mean_per_tap, const std::vector<std::vector<float>>& image,
                         double rho, Overlap overlap) {
  double total = 0;
  for (std::size_t l = 0; l < image.size(); ++l) {
    double mx = 0;
    for (double a : mean_per_tap[l]) mx = std::max(mx, std::fabs(a));
    double t = rho * mx;
    double m = 0, mi = 0, both = 0;
    for (std::size_t i = 0; i < image[l].size(); ++i) {
      bool in_ref = mean_per_tap[l][i] >= t, in_img = double(image[l][i]) >= t;
      m += in_ref;
      mi += in_img;
      both += in_ref && in_img;
    }
    double r = overlap == Overlap::Recall ? both / m : overlap == Overlap::Literal ? mi / m : both / (mi + m - both);
    total += std::log(std::max(r, 1.0 / (2 * m)));
  }
  return total;
}

TEST(ImageScore, MatchesBruteForceOnRandomActivations) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 3.f);
  const ImageShape shape{1, 5, 7};
  PixelModel model(shape, {"a", "b", "c"});
  const auto n = shape.pixels();
  std::vector<std::vector<float>> refs;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 60; ++i) {
    std::vector<float> x(n);
    for (auto& v : x) v = std::max(0.f, u(rng));
    refs.push_back(x);
    labels.push_back(i % 3);
  }
  for (Overlap overlap : {Overlap::Recall, Overlap::Literal, Overlap::Jaccard}) {
    ProfileOptions o;
    o.rho = 0.4;
    ProfileBuilder builder(model, resolve_taps(model, {"x"}), o);
    // Fed in uneven batches: the result must not depend on batching.
    for (std::size_t start = 0; start < refs.size(); start += 13) {
      std::size_t end = std::min(refs.size(), start + 13);
      auto b = batch_of(shape, {refs.begin() + long(start), refs.begin() + long(end)},
                        {labels.begin() + long(start), labels.begin() + long(end)});
      builder.add(model.forward(b, resolve_taps(model, {"x"})), b.labels);
    }
    auto set = builder.finish("random");
    ImageScorer scorer(set, {overlap, 0});
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<float> x(n);
      for (auto& v : x) v = std::max(0.f, u(rng));
      std::size_t cls = std::size_t(trial % 3);
      std::vector<double> mean(n, 0.0);
      double count = 0;
      for (std::size_t i = 0; i < refs.size(); ++i)
        if (std::size_t(labels[i]) == cls) {
          for (std::size_t k = 0; k < n; ++k) mean[k] += refs[i][k];
          ++count;
        }
      for (auto& m : mean) m /= count;
      EXPECT_NEAR(scorer.score(cls, {x.data()}, nullptr), brute_force_score({mean}, {x}, 0.4, overlap), 1e-12);
    }
  }
}

TEST(ImageScore, ProfileSumsStayExactWithLargeActivations) {
  // Values just below the 2^19 limit bring the 64-bit partial sums near overflow before
  // they are folded (every 4096 images of a class), several times within one batch; the
  // result must equal exact integer arithmetic.
  const ImageShape shape{1, 3, 5};
  PixelModel model(shape, {"a", "b"});
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-500000.f, 500000.f);
  const float largest = std::nextafter(524288.f, 0.f);  // the largest float below 2^19
  std::vector<std::vector<float>> images;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 9000; ++i) {
    std::vector<float> x(shape.pixels());
    // Class 0 (6000 images) at the largest value; class 1 random, some tiny.
    for (auto& v : x) v = i % 3 != 0 ? largest : i % 7 == 0 ? u(rng) * 1e-9f : u(rng);
    images.push_back(x);
    labels.push_back(i % 3 != 0 ? 0 : 1);
  }
  ProfileOptions keep;
  keep.keep_sums = true;
  ProfileBuilder builder(model, resolve_taps(model, {"x"}), keep);
  auto batch = batch_of(shape, images, labels);
  builder.add(model.forward(batch, resolve_taps(model, {"x"})), batch.labels);
  auto set = builder.finish("large");
  for (std::size_t c = 0; c < 2; ++c)
    for (std::size_t k = 0; k < shape.pixels(); ++k) {
      ExactSum expected = 0;
      for (std::size_t i = 0; i < images.size(); ++i)
        if (std::size_t(labels[i]) == c) expected += ExactSum(std::int64_t(std::nearbyint(double(images[i][k]) * 4294967296.0)));
      EXPECT_TRUE(set.profiles[c].taps[0].sum[k] == expected) << c << "," << k;
    }
  // Beyond the limit: refused, never silently wrong.
  ProfileBuilder refuses(model, resolve_taps(model, {"x"}), {});
  auto huge = batch_of(shape, {std::vector<float>(shape.pixels(), 600000.f)}, {0});
  EXPECT_ERROR_CONTAINS(refuses.add(model.forward(huge, resolve_taps(model, {"x"})), huge.labels),
                        "tap x: an activation is not finite or too large");
  ProfileBuilder refuses_nan(model, resolve_taps(model, {"x"}), {});
  auto nan = batch_of(shape, {std::vector<float>(shape.pixels(), std::nanf(""))}, {0});
  EXPECT_ERROR_CONTAINS(refuses_nan.add(model.forward(nan, resolve_taps(model, {"x"})), nan.labels),
                        "tap x: an activation is not finite or too large");
}

TEST(Baselines, HandComputed) {
  const float logits[3] = {1.f, 2.f, 0.f};
  auto b = baseline_scores(logits, 3);
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(0.0);
  double p0 = std::exp(1.0) / z, p1 = std::exp(2.0) / z, p2 = 1 / z;
  EXPECT_EQ(b.pred, 1);
  EXPECT_NEAR(b.msp, p1, 1e-15);
  EXPECT_NEAR(b.margin, p1 - p0, 1e-15);
  EXPECT_NEAR(b.neg_entropy, p0 * std::log(p0) + p1 * std::log(p1) + p2 * std::log(p2), 1e-15);
  EXPECT_NEAR(b.energy, std::log(z), 1e-15);
  EXPECT_EQ(b.max_logit, 2.0);
  // Huge logits stay finite (stable softmax).
  const float big[2] = {1000.f, -1000.f};
  auto s = baseline_scores(big, 2);
  EXPECT_EQ(s.msp, 1.0);
  EXPECT_TRUE(std::isfinite(s.neg_entropy));
  EXPECT_NEAR(s.energy, 1000.0, 1e-9);
}

TEST(Parsing, NamedOptions) {
  EXPECT_EQ(parse_overlap("jaccard"), Overlap::Jaccard);
  EXPECT_ERROR_CONTAINS(parse_overlap("dice"), "overlap: unknown overlap 'dice'");
  EXPECT_EQ(parse_norm("l2"), ThresholdNorm::L2);
  EXPECT_ERROR_CONTAINS(parse_norm("l3"), "norm: unknown norm 'l3' (expected linf, l1 or l2)");
  EXPECT_ERROR_CONTAINS(parse_scale("median"), "scale: unknown scale 'median' (expected mean or sum)");
  EXPECT_EQ(parse_profile_choice("label"), ProfileChoice::Label);
  EXPECT_ERROR_CONTAINS(parse_profile_choice("truth"), "by: unknown choice 'truth' (expected predicted, label or global)");
}

}  // namespace
}  // namespace imagescore
