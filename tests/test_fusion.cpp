// Fused columns: rank fusion by hand, logistic regression against its optimality
// conditions, the learned fusion file, bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "imagescore/core/io.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/score/fusion.hpp"
#include "imagescore/stats/logistic.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::TempDir;

ScoreTable table_of(const std::vector<int>& pred, const std::vector<std::vector<double>>& values) {
  ScoreTable t;
  t.path = "t.csv";
  t.value_columns = {"a", "b"};
  for (std::size_t i = 0; i < pred.size(); ++i) t.rows.push_back({i, "x", pred[i], pred[i], values[i]});
  return t;
}

TEST(Fusion, RankFusionByHand) {
  // Class 0: a = 1, 2, 3 (ranks 1, 2, 3 of 3); b = 3, 3, 1 (ranks 2.5, 2.5, 1). Class 1: one image.
  auto t = table_of({0, 0, 0, 1}, {{1, 3}, {2, 3}, {3, 1}, {5, 0}});
  const std::size_t c = add_fused_column(t, "rank:a+b");
  EXPECT_EQ(t.value_columns[c], "rank:a+b");
  EXPECT_DOUBLE_EQ(t.rows[0].values[c], (1.0 / 3 + 2.5 / 3) / 2);
  EXPECT_DOUBLE_EQ(t.rows[1].values[c], (2.0 / 3 + 2.5 / 3) / 2);
  EXPECT_DOUBLE_EQ(t.rows[2].values[c], (3.0 / 3 + 1.0 / 3) / 2);
  EXPECT_DOUBLE_EQ(t.rows[3].values[c], 1.0);
  EXPECT_EQ(add_fused_column(t, "rank:a+b"), c);  // added once
  EXPECT_EQ(add_fused_column(t, "a"), 0u);
  EXPECT_ERROR_CONTAINS(add_fused_column(t, "rank:a"), "fuse: 'rank:a': a rank fusion needs at least two columns");
  EXPECT_ERROR_CONTAINS(add_fused_column(t, "rank:a+"), "fuse: 'rank:a+': expected rank:A+B");
  EXPECT_ERROR_CONTAINS(add_fused_column(t, "rank:a+zz"), "t.csv: no column 'zz'");
}

// At the optimum the gradient of the penalised log-likelihood is zero.
TEST(Fusion, LogisticRegressionReachesItsOptimum) {
  SplitMix64 rng(3);
  const std::size_t n = 3000, d = 2;
  std::vector<double> x(n * d);
  std::vector<bool> y(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i * d] = rng.uniform() * 4 - 2;
    x[i * d + 1] = rng.uniform() * 4 - 2;
    const double z = 1.5 * x[i * d] - 0.5 * x[i * d + 1] + 0.3;
    y[i] = rng.uniform() < 1 / (1 + std::exp(-z));
  }
  for (double penalty : {0.01, 10.0}) {
    const auto m = fit_logistic(x, d, y, penalty);
    std::vector<double> gradient(d + 1, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      const double r = 1 / (1 + std::exp(-m.predict(&x[i * d]))) - (y[i] ? 1 : 0);
      for (std::size_t j = 0; j < d; ++j) gradient[j] += r * x[i * d + j];
      gradient[d] += r;
    }
    for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(gradient[j] + penalty * m.weights[j], 0.0, 1e-6) << penalty;
    EXPECT_NEAR(gradient[d], 0.0, 1e-6);
    if (penalty < 1) {
      EXPECT_NEAR(m.weights[0], 1.5, 0.3);
      EXPECT_NEAR(m.weights[1], -0.5, 0.2);
    }
  }
  EXPECT_ERROR_CONTAINS(fit_logistic(x, d, y, 0), "penalty: must be > 0");
}

TEST(Fusion, LearnedFusionFileRoundTripAndUse) {
  // "a" tells right from wrong; "b" is noise: the fit weighs "a".
  ScoreTable t;
  t.path = "val.csv";
  t.value_columns = {"a", "b"};
  SplitMix64 rng(5);
  for (std::size_t i = 0; i < 300; ++i) {
    const bool right = rng.uniform() < 0.7;
    t.rows.push_back({i, "x", 0, right ? 0 : 1, {(right ? 1.0 : 0.0) + rng.uniform(), rng.uniform()}});
  }
  const auto f = fit_learned_fusion(t, {"a", "b"}, {});
  EXPECT_GT(f.weights[0], 1.0);
  EXPECT_LT(std::fabs(f.weights[1]), 0.5);
  EXPECT_EQ(f.images, 300u);
  EXPECT_EQ(f.folds, 5u);
  TempDir dir;
  write_file_atomic(dir.file("f.json"), f.to_json().dump());
  const auto back = load_learned_fusion(dir.file("f.json"));
  EXPECT_EQ(back.weights, f.weights);
  EXPECT_EQ(back.penalty, f.penalty);
  const std::size_t c = add_fused_column(t, "learned:" + dir.file("f.json"));
  EXPECT_DOUBLE_EQ(t.rows[7].values[c], f.apply(t.rows[7].values));

  ScoreTable flat = t;
  for (auto& row : flat.rows) row.values[1] = 1;
  EXPECT_ERROR_CONTAINS(fit_learned_fusion(flat, {"a", "b"}, {}), "val.csv: column 'b' is constant: it cannot be combined");
  ScoreTable all_right = t;
  for (auto& row : all_right.rows) row.pred = row.label;
  EXPECT_ERROR_CONTAINS(fit_learned_fusion(all_right, {"a"}, {}), "val.csv: too few wrong (0) or right predictions");
  write_file_atomic(dir.file("bad.json"), R"({"format": "imagescore-fusion", "version": 1, "columns": ["a"], "means": [0],
    "deviations": [0], "weights": [1], "bias": 0})");
  EXPECT_ERROR_CONTAINS(load_learned_fusion(dir.file("bad.json")),
                        "bad.json: column 'a' has a non-finite mean or weight, or a deviation that is not positive");
  write_file_atomic(dir.file("other.json"), R"({"format": "x"})");
  EXPECT_ERROR_CONTAINS(load_learned_fusion(dir.file("other.json")), "other.json: not an imagescore fusion file");
}

}  // namespace
}  // namespace imagescore
