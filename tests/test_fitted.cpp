// Fitted scores: kNN, trust score, Mahalanobis, relative Mahalanobis and NAC against
// brute-force double-precision computations; shards, files, threads; bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>

#include "imagescore/core/random.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/registry.hpp"
#include "imagescore/score/score.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::MemorySource;
using testing::PixelModel;
using testing::TempDir;

const ImageShape kShape{1, 2, 3};  // six features per image
const std::vector<std::string> kClasses = {"a", "b", "c"};

// Random images: class c has its features around c / 3 (so classes overlap a little).
std::unique_ptr<MemorySource> random_source(std::size_t per_class, std::uint64_t seed, bool labelled = true) {
  auto source = std::make_unique<MemorySource>(kShape, labelled ? kClasses : std::vector<std::string>{});
  SplitMix64 rng(seed);
  for (std::size_t i = 0; i < per_class; ++i)
    for (int c = 0; c < 3; ++c) {
      std::vector<std::uint8_t> px(kShape.pixels());
      for (auto& p : px) p = std::uint8_t(60 * c + rng.below(120));
      source->add(px, labelled ? c : kNoLabel);
    }
  return source;
}

// The features the model sees: what the loader gives for a byte (mean 0, deviation 1).
std::vector<std::vector<double>> features_of(const ImageSource& source) {
  std::vector<std::vector<double>> out;
  std::vector<std::uint8_t> px(source.shape().pixels());
  for (std::size_t i = 0; i < source.size(); ++i) {
    source.read(i, px.data());
    std::vector<double> f;
    for (auto v : px) f.push_back(double(float(v / 255.0)));
    out.push_back(f);
  }
  return out;
}

// PixelModel's logits are the first pixels: the predicted class is the argmax of them.
int predicted(const std::vector<double>& f) {
  return int(std::max_element(f.begin(), f.begin() + 3) - f.begin());
}

double distance(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

std::vector<double> unit(std::vector<double> v) {
  double n = 0;
  for (double x : v) n += x * x;
  for (double& x : v) x /= std::sqrt(n) + 1e-10;
  return v;
}

FitRunOptions fit_options(std::vector<std::string> scores) {
  FitRunOptions o;
  o.scores = std::move(scores);
  o.fit.feature_tap = "x";
  o.quiet = true;
  return o;
}

// Scores of every image of `source` by the named scores: one vector per column.
std::map<std::string, std::vector<double>> score_all(Model& model, const ReferenceSet& set, const ImageSource& source,
                                                     std::vector<std::string> scores, std::size_t batch = 7) {
  ScoreRunOptions o;
  o.scores = std::move(scores);
  o.quiet = true;
  o.batch_size = batch;
  const auto columns = score_value_columns(set, model, o);
  std::map<std::string, std::vector<double>> out;
  score_images(model, set, source, o, [&](const ScoreRow& row) {
    for (std::size_t c = 0; c < columns.size(); ++c) out[columns[c]].push_back(row.values[c]);
  });
  return out;
}

TEST(FittedScores, KnnAndTrustEqualBruteForce) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(20, 1);
  auto candidates = random_source(10, 2);
  for (std::size_t k : {std::size_t(1), std::size_t(5)}) {
    auto options = fit_options({"knn", "trust"});
    options.fit.knn_k = k;
    const auto set = fit_reference(model, *reference, options);
    const auto scores = score_all(model, set, *candidates, {"knn", "trust"});
    const auto ref = features_of(*reference), cand = features_of(*candidates);
    for (std::size_t i = 0; i < cand.size(); ++i) {
      // kNN: k-th smallest distance between unit vectors.
      std::vector<double> d;
      for (const auto& r : ref) d.push_back(distance(unit(cand[i]), unit(r)));
      std::sort(d.begin(), d.end());
      EXPECT_NEAR(scores.at("knn")[i], -d[k - 1], 1e-5) << i;
      // Trust: nearest other class over nearest predicted class.
      std::vector<double> nearest(3, std::numeric_limits<double>::infinity());
      for (std::size_t r = 0; r < ref.size(); ++r)
        nearest[std::size_t(reference->label(r))] = std::min(nearest[std::size_t(reference->label(r))], distance(cand[i], ref[r]));
      const int p = predicted(cand[i]);
      double other = std::numeric_limits<double>::infinity();
      for (int c = 0; c < 3; ++c)
        if (c != p) other = std::min(other, nearest[std::size_t(c)]);
      EXPECT_NEAR(scores.at("trust")[i], other / (nearest[std::size_t(p)] + 1e-12), 1e-4 * std::max(1.0, other)) << i;
    }
  }
}

TEST(FittedScores, TrustDensityFilterDropsTheSparsestPoints) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(20, 3);
  auto candidates = random_source(5, 4);
  auto options = fit_options({"trust"});
  options.fit.trust_alpha = 0.25;
  options.fit.trust_k = 3;
  const auto set = fit_reference(model, *reference, options);
  const auto scores = score_all(model, set, *candidates, {"trust"});
  const auto ref = features_of(*reference), cand = features_of(*candidates);
  // Per class: radius = distance to the 3rd nearest point of the class (itself first);
  // keep those at or below the 75th percentile (linear interpolation).
  std::vector<std::vector<std::vector<double>>> kept(3);
  for (int c = 0; c < 3; ++c) {
    std::vector<std::size_t> members;
    for (std::size_t r = 0; r < ref.size(); ++r)
      if (reference->label(r) == c) members.push_back(r);
    std::vector<double> radius;
    for (auto i : members) {
      std::vector<double> d;
      for (auto j : members) d.push_back(distance(ref[i], ref[j]));
      std::sort(d.begin(), d.end());
      radius.push_back(d[2]);
    }
    std::vector<double> sorted = radius;
    std::sort(sorted.begin(), sorted.end());
    const double position = 0.75 * double(sorted.size() - 1);
    const auto lo = std::size_t(position);
    const double cutoff = sorted[lo] + (position - double(lo)) * (sorted[std::min(lo + 1, sorted.size() - 1)] - sorted[lo]);
    for (std::size_t m = 0; m < members.size(); ++m)
      if (radius[m] <= cutoff + 1e-6) kept[std::size_t(c)].push_back(ref[members[m]]);
    EXPECT_LT(kept[std::size_t(c)].size(), members.size());
  }
  for (std::size_t i = 0; i < cand.size(); ++i) {
    std::vector<double> nearest(3, std::numeric_limits<double>::infinity());
    for (int c = 0; c < 3; ++c)
      for (const auto& r : kept[std::size_t(c)]) nearest[std::size_t(c)] = std::min(nearest[std::size_t(c)], distance(cand[i], r));
    const int p = predicted(cand[i]);
    double other = std::numeric_limits<double>::infinity();
    for (int c = 0; c < 3; ++c)
      if (c != p) other = std::min(other, nearest[std::size_t(c)]);
    EXPECT_NEAR(scores.at("trust")[i], other / (nearest[std::size_t(p)] + 1e-12), 1e-4 * std::max(1.0, other)) << i;
  }
}

// Solves A x = b by Gaussian elimination with partial pivoting (a plain reference).
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const std::size_t n = b.size();
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t pivot = c;
    for (std::size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[pivot][c])) pivot = r;
    std::swap(a[c], a[pivot]);
    std::swap(b[c], b[pivot]);
    for (std::size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (std::size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (std::size_t r = n; r-- > 0;) {
    double s = b[r];
    for (std::size_t k = r + 1; k < n; ++k) s -= a[r][k] * x[k];
    x[r] = s / a[r][r];
  }
  return x;
}

// (x - m)^T S^-1 (x - m) with S shrunk as the library does.
double mahalanobis(const std::vector<double>& x, const std::vector<double>& m, std::vector<std::vector<double>> s, double shrink) {
  const std::size_t d = x.size();
  double trace = 0;
  for (std::size_t i = 0; i < d; ++i) trace += s[i][i];
  for (std::size_t i = 0; i < d; ++i)
    for (std::size_t j = 0; j < d; ++j) s[i][j] = (1 - shrink) * s[i][j] + (i == j ? shrink * trace / double(d) : 0);
  std::vector<double> diff(d);
  for (std::size_t i = 0; i < d; ++i) diff[i] = x[i] - m[i];
  const auto y = solve(s, diff);
  double q = 0;
  for (std::size_t i = 0; i < d; ++i) q += diff[i] * y[i];
  return q;
}

TEST(FittedScores, MahalanobisAndRelativeMahalanobisEqualBruteForce) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(30, 5);
  auto candidates = random_source(10, 6);
  for (double shrink : {0.0, 0.1}) {
    auto options = fit_options({"mahalanobis", "rel_mahalanobis"});
    options.fit.shrinkage = shrink;
    const auto set = fit_reference(model, *reference, options);
    const auto scores = score_all(model, set, *candidates, {"mahalanobis", "rel_mahalanobis"});
    const auto ref = features_of(*reference), cand = features_of(*candidates);
    const std::size_t d = 6, n = ref.size();
    std::vector<std::vector<double>> means(3, std::vector<double>(d, 0.0));
    std::vector<double> mean(d, 0.0), counts(3, 0.0);
    for (std::size_t r = 0; r < n; ++r) {
      const auto c = std::size_t(reference->label(r));
      counts[c] += 1;
      for (std::size_t j = 0; j < d; ++j) {
        means[c][j] += ref[r][j];
        mean[j] += ref[r][j] / double(n);
      }
    }
    for (std::size_t c = 0; c < 3; ++c)
      for (double& v : means[c]) v /= counts[c];
    std::vector<std::vector<double>> within(d, std::vector<double>(d, 0.0)), all = within;
    for (std::size_t r = 0; r < n; ++r) {
      const auto& m = means[std::size_t(reference->label(r))];
      for (std::size_t i = 0; i < d; ++i)
        for (std::size_t j = 0; j < d; ++j) {
          within[i][j] += (ref[r][i] - m[i]) * (ref[r][j] - m[j]) / double(n);
          all[i][j] += (ref[r][i] - mean[i]) * (ref[r][j] - mean[j]) / double(n);
        }
    }
    for (std::size_t i = 0; i < cand.size(); ++i) {
      double closest = std::numeric_limits<double>::infinity(), closest_relative = closest;
      const double global = mahalanobis(cand[i], mean, all, shrink);
      for (std::size_t c = 0; c < 3; ++c) {
        const double md = mahalanobis(cand[i], means[c], within, shrink);
        closest = std::min(closest, md);
        closest_relative = std::min(closest_relative, md - global);
      }
      EXPECT_NEAR(scores.at("mahalanobis")[i], -closest, 1e-6 * std::max(1.0, closest)) << i;
      EXPECT_NEAR(scores.at("rel_mahalanobis")[i], -closest_relative, 1e-6 * std::max(1.0, closest)) << i;
    }
  }
}

TEST(FittedScores, DoctorIsTheSumOfSquaredProbabilities) {
  const float logits[] = {0.f, std::log(3.f)};  // p = (0.25, 0.75) up to float rounding
  const double p = 1.0 / (1.0 + std::exp(-double(logits[1])));
  EXPECT_NEAR(baseline_scores(logits, 2).doctor, p * p + (1 - p) * (1 - p), 1e-15);
  const float equal[] = {1.f, 1.f, 1.f, 1.f};
  EXPECT_DOUBLE_EQ(baseline_scores(equal, 4).doctor, 0.25);
}

// NAC of a built-in model against its definition computed here from the classifier's
// weights: states, the histogram of the reference images, coverage.
TEST(FittedScores, NacEqualsBruteForce) {
  auto reference = testing::separable_source(3, 12, {1, 8, 8}, 7);
  auto candidates = testing::separable_source(3, 4, {1, 8, 8}, 8);
  auto model = create_model("small-cnn", reference->shape(), reference->class_names(), compute_normalization(*reference, 1), 3);
  FitRunOptions options;
  options.scores = {"nac"};
  options.quiet = true;
  options.fit.nac.bins = 10;
  options.fit.nac.min_count = 3;
  const auto set = fit_reference(*model, *reference, options);
  const auto scores = score_all(*model, set, *candidates, {"nac"});
  const auto head = *model->linear_head();
  const std::size_t d = 128, k = 3;
  // The edges as documented: log-spaced halves mirrored about 0.5, 1.01, then 1.2.
  std::vector<double> low;
  for (int i = 0; i < 5; ++i) low.push_back(std::log10(1.0 + (std::sqrt(1000.0) - 1.0) * i / 4.0) / 3.0);
  std::vector<double> edges = {low[0], low[1], low[2], low[3], 1 - low[4], 1 - low[3], 1 - low[2], 1 - low[1], 1 - low[0] + 0.01, 1.2};
  auto states = [&](const ImageSource& source) {
    std::vector<std::vector<int>> bins;
    BatchLoader loader(source, model->meta().normalization, {});
    Batch batch;
    while (loader.next(batch)) {
      auto out = model->forward(batch, {head.tap});
      for (std::size_t i = 0; i < out.batch; ++i) {
        const float* z = out.taps[0].row(i);
        const float* logits = &out.logits[i * k];
        double top = *std::max_element(logits, logits + k), total = 0;
        std::vector<double> p(k);
        for (std::size_t c = 0; c < k; ++c) total += p[c] = std::exp(logits[c] - top);
        std::vector<int> b(d);
        for (std::size_t j = 0; j < d; ++j) {
          double g = 0;
          for (std::size_t c = 0; c < k; ++c) g += head.weight[c * d + j] * (p[c] / total - 1.0 / 3);
          const double s = 1 / (1 + std::exp(-100 * z[j] * g));
          b[j] = -1;
          for (std::size_t e = 0; e + 1 < edges.size(); ++e)
            if (s >= edges[e] && s < edges[e + 1]) b[j] = int(e);
        }
        bins.push_back(b);
      }
    }
    return bins;
  };
  std::vector<std::vector<double>> counts(9, std::vector<double>(d, 0.0));
  for (const auto& b : states(*reference))
    for (std::size_t j = 0; j < d; ++j)
      if (b[j] >= 0) counts[std::size_t(b[j])][j] += 1;
  const auto candidate_bins = states(*candidates);
  for (std::size_t i = 0; i < candidate_bins.size(); ++i) {
    double sum = 0;
    for (std::size_t j = 0; j < d; ++j)
      if (candidate_bins[i][j] >= 0) sum += std::min(counts[std::size_t(candidate_bins[i][j])][j] / 3.0, 1.0);
    EXPECT_NEAR(scores.at("nac")[i], sum / double(d), 1e-12) << i;
  }
}

TEST(FittedScores, ShardsFilesAndThreadsGiveTheSameScores) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(15, 9);
  auto candidates = random_source(8, 10);
  const std::vector<std::string> all = {"knn", "trust", "mahalanobis", "rel_mahalanobis"};
  auto options = fit_options(all);
  options.fit.trust_alpha = 0.1;
  options.fit.trust_k = 2;
  const auto whole = fit_reference(model, *reference, options);
  std::vector<ReferenceSet> shards;
  std::vector<std::string> names;
  for (std::size_t i : {2, 3, 1}) {
    options.shard_index = i;
    options.shard_count = 3;
    shards.push_back(decode_reference(encode_reference(fit_reference(model, *reference, options)), "shard"));
    names.push_back("shard" + std::to_string(i));
  }
  const auto merged = merge_references(std::move(shards), names);
  TempDir dir;
  save_reference(merged, dir.file("r.st"));
  // The files merge into the same set, unless together they pass the memory limit.
  std::vector<std::string> files;
  for (std::size_t i : {1, 2, 3}) {
    options.shard_index = i;
    files.push_back(dir.file("shard" + std::to_string(i) + ".st"));
    save_reference(fit_reference(model, *reference, options), files.back());
  }
  save_reference(merge_reference_files(files, 0), dir.file("from-files.st"));
  EXPECT_EQ(testing::read_bytes(dir.file("from-files.st")), testing::read_bytes(dir.file("r.st")));
  EXPECT_ERROR_CONTAINS(merge_reference_files(files, 100),
                        "max_memory: merging 3 shards holds their");
  EXPECT_ERROR_CONTAINS(merge_reference_files(files, 100), "bytes at once, over the limit of 100 bytes");
  EXPECT_ERROR_CONTAINS(merge_reference_files({dir.file("missing.st")}, 0), "missing.st: cannot read");
  const auto loaded = load_reference(dir.file("r.st"));
  check_reference_matches(loaded, model, "r.st");
  set_threads(1);
  const auto a = score_all(model, whole, *candidates, all, 5);
  set_threads(2);
  const auto b = score_all(model, merged, *candidates, all, 64);
  const auto c = score_all(model, loaded, *candidates, all, 3);
  set_threads(0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

// The IVF index searching every list finds the exact index's neighbours: the same scores,
// bit for bit (both compute each distance with faiss's fvec_L2sqr).
TEST(FittedScores, IvfSearchingEveryListEqualsExact) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(100, 21);  // 300 images: 7 lists; 100 per class: 2 lists
  auto candidates = random_source(20, 22);
  ASSERT_EQ(knn_ivf_lists(300), 7u);
  ASSERT_EQ(knn_ivf_lists(100), 2u);
  auto options = fit_options({"knn", "trust"});
  options.fit.knn_k = 5;
  const auto exact = fit_reference(model, *reference, options);
  options.fit.knn_index = "ivf";
  options.fit.knn_nprobe = 7;  // every list (2 of 2 per class)
  const auto ivf = fit_reference(model, *reference, options);
  EXPECT_EQ(score_all(model, exact, *candidates, {"knn", "trust"}), score_all(model, ivf, *candidates, {"knn", "trust"}));
}

// With few lists probed the IVF scores are approximate but repeat across thread counts,
// batch sizes and a saved and reloaded file; a k above what one list holds is found by
// probing more lists.
TEST(FittedScores, IvfScoresRepeatAcrossThreadsBatchesAndFiles) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(100, 23);
  auto candidates = random_source(30, 24);
  auto options = fit_options({"knn", "trust"});
  options.fit.knn_index = "ivf";
  options.fit.knn_nprobe = 1;
  for (std::size_t k : {std::size_t(3), std::size_t(120)}) {  // 120: more than any of the 7 lists holds
    options.fit.knn_k = k;
    const auto set = fit_reference(model, *reference, options);
    TempDir dir;
    save_reference(set, dir.file("r.st"));
    const auto loaded = load_reference(dir.file("r.st"));
    EXPECT_EQ(loaded.options.knn_index, "ivf");
    EXPECT_EQ(loaded.options.knn_nprobe, 1u);
    set_threads(1);
    const auto a = score_all(model, set, *candidates, {"knn", "trust"}, 5);
    set_threads(2);
    const auto b = score_all(model, set, *candidates, {"knn", "trust"}, 64);
    const auto c = score_all(model, loaded, *candidates, {"knn", "trust"}, 3);
    set_threads(0);
    EXPECT_EQ(a, b) << k;
    EXPECT_EQ(a, c) << k;
    for (double v : a.at("knn")) EXPECT_TRUE(v >= -2 && v <= 0) << v;
    for (double v : a.at("trust")) EXPECT_TRUE(std::isfinite(v) && v >= 0) << v;
    // One list of seven is searched: some neighbours are missed (the index is in use).
    auto exact = options;
    exact.fit.knn_index = "exact";
    EXPECT_NE(a, score_all(model, fit_reference(model, *reference, exact), *candidates, {"knn", "trust"})) << k;
  }
}

TEST(FittedScores, ProfileFilesReadAsReferenceSets) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(5, 11);
  ProfileRunOptions po;
  po.taps = {"x"};
  po.quiet = true;
  const auto profiles = build_profiles(model, *reference, po);
  TempDir dir;
  save_profiles(profiles, dir.file("p.st"));
  const auto set = load_reference(dir.file("p.st"));
  ASSERT_NE(set.profiles(), nullptr);
  EXPECT_EQ(set.columns(), std::vector<std::string>{"image_score"});
  ScoreRunOptions so;
  so.quiet = true;
  // The default scores: every cheap score this set allows (no fitted feature score).
  EXPECT_EQ(score_value_columns(set, model, so),
            (std::vector<std::string>{"image_score", "msp", "margin", "neg_entropy", "energy", "max_logit", "doctor"}));
}

TEST(FittedScores, MonteCarloDropoutAndAugmentationRepeatAndIgnoreTheBatch) {
  auto reference = testing::separable_source(3, 6, {1, 8, 8}, 12);
  auto model = create_model("small-cnn", reference->shape(), reference->class_names(), compute_normalization(*reference, 1), 4);
  ProfileRunOptions po;
  po.quiet = true;
  const auto set = reference_of(build_profiles(*model, *reference, po));
  const std::vector<std::string> costly = {"mc_dropout", "tta"};
  const auto a = score_all(*model, set, *reference, costly, 5);
  const auto b = score_all(*model, set, *reference, costly, 16);
  EXPECT_EQ(a, b);
  for (double v : a.at("mc_dropout_certainty")) EXPECT_LE(v, 0.0);
  for (double v : a.at("mc_dropout")) EXPECT_TRUE(v > 0 && v <= 1);
  for (double v : a.at("tta")) EXPECT_TRUE(v > 0 && v <= 1);
  EXPECT_GT(*std::min_element(a.at("mc_dropout_certainty").begin(), a.at("mc_dropout_certainty").end()), -1.0);
}

TEST(FittedScores, BadInput) {
  PixelModel model(kShape, kClasses);
  auto reference = random_source(4, 13);
  auto options = fit_options({"knn"});
  options.fit.feature_tap = "conv9";
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, options), "feature_tap: unknown tap 'conv9'");
  options.fit.feature_tap = "output";
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, options), "feature_tap: 'output' is the softmax, not a feature tap");
  options.fit.feature_tap = "x";
  options.fit.knn_k = 13;
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, options), "knn_k: 13 exceeds the 12 reference images");
  options.fit.knn_k = 0;
  options.fit.knn_index = "hnsw";
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, options), "knn_index: must be exact or ivf, got 'hnsw'");
  options.fit.knn_index = "ivf";
  options.fit.knn_nprobe = 0;
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, options), "knn_nprobe: must be >= 1");
  options.fit.knn_index = "exact";
  options.fit.knn_nprobe = 64;
  options.scores = {"trust"};
  options.fit.trust_alpha = 0.5;
  options.fit.trust_k = 5;
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, options), "trust_k: 5 exceeds the 4 reference images of class 'a'");
  options.fit.trust_alpha = 0;

  // A class without reference images.
  MemorySource two(kShape, kClasses);
  two.add(std::vector<std::uint8_t>(6, 1), 0);
  two.add(std::vector<std::uint8_t>(6, 2), 1);
  EXPECT_ERROR_CONTAINS(fit_reference(model, two, options), "class 'c' has no reference images (empty class)");

  // A constant feature makes the covariance singular without shrinkage.
  MemorySource flat(kShape, kClasses);
  SplitMix64 rng(1);
  for (int i = 0; i < 12; ++i) {
    std::vector<std::uint8_t> px = {std::uint8_t(rng.below(200)), std::uint8_t(rng.below(200)), std::uint8_t(rng.below(200)), 7,
                                    std::uint8_t(rng.below(200)), std::uint8_t(rng.below(200))};
    flat.add(px, i % 3);
  }
  auto gaussian = fit_options({"mahalanobis"});
  gaussian.fit.shrinkage = 0;
  EXPECT_ERROR_CONTAINS(fit_reference(model, flat, gaussian),
                        "feature tap x (class covariance): the covariance is singular (feature 3 is constant or a "
                        "combination of others): give a shrinkage above 0");
  gaussian.fit.shrinkage = 1e-3;
  EXPECT_NO_THROW(fit_reference(model, flat, gaussian));

  // A feature tap too large to store.
  PixelModel wide({1, 300, 300}, kClasses);
  MemorySource big({1, 300, 300}, kClasses);
  big.add(std::vector<std::uint8_t>(90000, 1), 0);
  EXPECT_ERROR_CONTAINS(fit_reference(wide, big, fit_options({"knn"})),
                        "feature_tap: tap 'x' has 90000 neurons, more than the 65536 a feature score takes");
  // More memory than allowed: 12 images x (3 copies of 6 floats + label and id) = 1056
  // bytes; the IVF lists add 16 bytes per image and at most 1 + 3 classes + 2 x 12/39
  // centroids of 24 bytes.
  EXPECT_EQ(knn_features_bytes(12, 6, 3, "exact"), 1056u);
  EXPECT_EQ(knn_features_bytes(12, 6, 3, "ivf"), 1056u + 192u + 96u);
  auto limited = fit_options({"knn"});
  limited.fit.max_bytes = 1055;
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, limited),
                        "max_memory: the reference features need 1056 bytes (12 images x 6 neurons x 3 copies of 4 bytes, "
                        "labels and ids), over the limit of 1055 bytes");
  limited.fit.max_bytes = 1056;
  EXPECT_NO_THROW(fit_reference(model, *reference, limited));
  limited.fit.knn_index = "ivf";
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, limited),
                        "max_memory: the reference features need 1344 bytes (12 images x 6 neurons x 3 copies of 4 bytes, "
                        "labels and ids, the IVF lists), over the limit of 1056 bytes");
  // A large reference set is refused when the builder is made, before any image is read.
  limited.fit.max_bytes = std::uint64_t(1) << 30;
  limited.fit.knn_index = "exact";
  EXPECT_ERROR_CONTAINS(ReferenceBuilder(model, limited.fit, {"knn"}, "spec", 50000000),
                        "max_memory: the reference features need 4196 MiB (50000000 images x 6 neurons x 3 copies of 4 "
                        "bytes, labels and ids), over the limit of 1024 MiB");

  // NAC needs the classifier's weights; MC dropout needs dropout; unfitted scores.
  EXPECT_ERROR_CONTAINS(fit_reference(model, *reference, fit_options({"nac"})),
                        "scores: nac needs the classifier's weights, which only built-in models expose (pixel does not)");
  auto set = fit_reference(model, *reference, fit_options({"knn"}));
  EXPECT_ERROR_CONTAINS(score_all(model, set, *reference, {"mc_dropout"}),
                        "scores: mc_dropout needs a model with dropout layers (pixel has none)");
  EXPECT_ERROR_CONTAINS(score_all(model, set, *reference, {"mahalanobis"}),
                        "scores: 'mahalanobis' was not fitted: the reference set has knn, trust");
  EXPECT_ERROR_CONTAINS(score_all(model, set, *reference, {"magic"}), "scores: unknown score 'magic' (known: image_score, msp");
  // Non-finite features.
  auto gaussian_set = fit_reference(model, *reference, fit_options({"mahalanobis"}));
  std::vector<float> row = {std::nanf(""), 0, 0, 0, 0, 0};
  ForwardOutput out;
  out.batch = 1;
  out.num_classes = 3;
  out.logits = {0, 0, 0};
  out.taps = {TapView::contiguous(row.data(), 1, 6)};
  const Activations nan_features{&out, {"x"}, {}};
  EXPECT_ERROR_CONTAINS(set.fits.front()->add(nan_features, {0}), "feature tap x: a feature is not finite");
  EXPECT_ERROR_CONTAINS(gaussian_set.fits.front()->add(nan_features, {0}),
                        "feature tap x: an activation is not finite or too large (|x| >= 2^19)");

  // A reference set of another model.
  PixelModel other(kShape, {"a", "b", "d"});
  EXPECT_ERROR_CONTAINS(check_reference_matches(set, other, "r.st"), "r.st: profile classes differ from the model's");
}

// On real images (Fashion-MNIST, when installed): the fc1 features of a seeded small CNN,
// kNN and Mahalanobis against the double-precision references above.
TEST(FittedScores, RealFeaturesAgreeWithDoublePrecision) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (Debian's dataset-fashion-mnist)";
  auto all = open_data("fashion-mnist", SplitName::Test);
  std::vector<std::size_t> first(300), next(60);
  std::iota(first.begin(), first.end(), 0);
  std::iota(next.begin(), next.end(), 300);
  auto reference = subset(*all, first);
  auto candidates = subset(*all, next);
  auto model = create_model("small-cnn", all->shape(), all->class_names(), compute_normalization(*reference, 1), 5);
  FitRunOptions options;
  options.scores = {"knn", "mahalanobis"};
  options.quiet = true;
  options.fit.knn_k = 3;
  options.fit.shrinkage = 0.05;
  const auto set = fit_reference(*model, *reference, options);
  const auto scores = score_all(*model, set, *candidates, {"knn", "mahalanobis"});
  auto features = [&](const ImageSource& source) {
    std::vector<std::vector<double>> out;
    BatchLoader loader(source, model->meta().normalization, {});
    Batch batch;
    while (loader.next(batch)) {
      auto o = model->forward(batch, {2});  // fc1
      for (std::size_t i = 0; i < o.batch; ++i) out.emplace_back(o.taps[0].row(i), o.taps[0].row(i) + 128);
    }
    return out;
  };
  const auto ref = features(*reference), cand = features(*candidates);
  const std::size_t d = 128, n = ref.size(), k = 10;
  std::vector<std::vector<double>> means(k, std::vector<double>(d, 0.0));
  std::vector<double> counts(k, 0.0);
  for (std::size_t r = 0; r < n; ++r) {
    counts[std::size_t(reference->label(r))] += 1;
    for (std::size_t j = 0; j < d; ++j) means[std::size_t(reference->label(r))][j] += ref[r][j];
  }
  for (std::size_t c = 0; c < k; ++c)
    for (double& v : means[c]) v /= counts[c];
  std::vector<std::vector<double>> within(d, std::vector<double>(d, 0.0));
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t j = 0; j < d; ++j)
        within[i][j] += (ref[r][i] - means[std::size_t(reference->label(r))][i]) *
                        (ref[r][j] - means[std::size_t(reference->label(r))][j]) / double(n);
  for (std::size_t i = 0; i < cand.size(); ++i) {
    std::vector<double> dist;
    for (const auto& r : ref) dist.push_back(distance(unit(cand[i]), unit(r)));
    std::sort(dist.begin(), dist.end());
    EXPECT_NEAR(scores.at("knn")[i], -dist[2], 1e-5) << i;
    double closest = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < k; ++c) closest = std::min(closest, mahalanobis(cand[i], means[c], within, 0.05));
    EXPECT_NEAR(scores.at("mahalanobis")[i], -closest, 1e-6 * closest) << i;
  }
}

}  // namespace
}  // namespace imagescore
