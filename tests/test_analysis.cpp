#include "imagescore/stats/analysis.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <random>

#include "imagescore/stats/metrics.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

std::vector<std::size_t> counts_of(const std::vector<ScoreBin>& bins) {
  std::vector<std::size_t> counts;
  for (const auto& b : bins) counts.push_back(b.images);
  return counts;
}

TEST(Analysis, ParsesBinning) {
  EXPECT_EQ(parse_binning("width"), Binning::Width);
  EXPECT_EQ(parse_binning("quantile"), Binning::Quantile);
  EXPECT_ERROR_CONTAINS(parse_binning("log"), "binning: unknown binning 'log' (expected width or quantile)");
}

TEST(Analysis, EqualWidthBinsByHand) {
  const std::vector<double> values = {0, 1, 2, 3, 4, 0.5};
  const auto edges = bin_edges(values, 4, Binning::Width);
  EXPECT_EQ(edges, (std::vector<double>{0, 1, 2, 3, 4}));
  // [0,1) holds 0 and 0.5; the last interval [3,4] is closed and holds 3 and 4.
  const auto bins = bin_scores(edges, values, {true, false, true, true, false, true});
  EXPECT_EQ(counts_of(bins), (std::vector<std::size_t>{2, 1, 1, 2}));
  EXPECT_EQ(bins[0].correct, 2u);
  EXPECT_DOUBLE_EQ(bins[3].accuracy(), 0.5);
  EXPECT_DOUBLE_EQ(bins[2].lower, 2);
  EXPECT_DOUBLE_EQ(bins[2].upper, 3);
}

TEST(Analysis, QuantileBinsByHand) {
  const std::vector<double> values = {8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_EQ(bin_edges(values, 4, Binning::Quantile), (std::vector<double>{1, 3, 5, 7, 8}));
  EXPECT_EQ(counts_of(bin_scores(bin_edges(values, 4, Binning::Quantile), values, std::vector<bool>(8, true))),
            (std::vector<std::size_t>{2, 2, 2, 2}));
  // Ties never straddle an edge: the edge at sorted position 2 (value 1) merges away.
  const std::vector<double> tied = {1, 1, 1, 1, 2, 3};
  const auto edges = bin_edges(tied, 3, Binning::Quantile);
  EXPECT_EQ(edges, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(counts_of(bin_scores(edges, tied, std::vector<bool>(6, false))), (std::vector<std::size_t>{4, 2}));
}

TEST(Analysis, ConstantValuesFormOneInterval) {
  const auto edges = bin_edges({2.5, 2.5, 2.5}, 10, Binning::Width);
  EXPECT_EQ(edges, (std::vector<double>{2.5, 2.5}));
  const auto bins = bin_scores(edges, {2.5, 2.5, 2.5}, {true, true, false});
  ASSERT_EQ(bins.size(), 1u);
  EXPECT_EQ(bins[0].images, 3u);
  EXPECT_TRUE(std::isnan(ScoreBin{}.accuracy()));
}

TEST(Analysis, BinningRejectsBadInput) {
  EXPECT_ERROR_CONTAINS(bin_edges({1, 2}, 0, Binning::Width), "bins: must be at least 1");
  EXPECT_ERROR_CONTAINS(bin_edges({1, 2}, 1000000, Binning::Width), "bins: must be at most 10000, got 1000000");
  EXPECT_EQ(bin_edges({1, 2}, kMaxBins, Binning::Width).size(), kMaxBins + 1);
  EXPECT_ERROR_CONTAINS(bin_edges({}, 3, Binning::Width), "no values");
  EXPECT_ERROR_CONTAINS(bin_edges({1, std::nan("")}, 3, Binning::Quantile), "not finite");
  EXPECT_ERROR_CONTAINS(bin_scores({0, 1}, {0.5}, {true, false}), "as many correctness flags");
}

TEST(Analysis, BinsMatchBruteForce) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t n = 1 + rng() % 80, bins = 1 + rng() % 12;
    const bool distinct = trial % 2 == 0;
    std::vector<double> values(n);
    std::vector<bool> correct(n);
    for (std::size_t i = 0; i < n; ++i) {
      values[i] = distinct ? double(i) * 0.37 + double(rng() % 1000) * 1e-6 : double(rng() % 5);
      correct[i] = rng() % 3 != 0;
    }
    std::shuffle(values.begin(), values.end(), rng);
    for (Binning binning : {Binning::Width, Binning::Quantile}) {
      SCOPED_TRACE("trial " + std::to_string(trial));
      const auto edges = bin_edges(values, bins, binning);
      const auto result = bin_scores(edges, values, correct);
      ASSERT_LE(result.size(), bins);
      for (std::size_t j = 0; j < result.size(); ++j) {
        std::size_t images = 0, right = 0;
        const bool last = j + 1 == result.size();
        for (std::size_t i = 0; i < n; ++i) {
          if (values[i] >= edges[j] && (values[i] < edges[j + 1] || (last && values[i] <= edges[j + 1]))) {
            ++images;
            right += correct[i];
          }
        }
        EXPECT_EQ(result[j].images, images);
        EXPECT_EQ(result[j].correct, right);
        // Distinct values: quantile interval j holds exactly floor((j+1)n/b) - floor(jn/b).
        if (binning == Binning::Quantile && distinct && result.size() == bins)
          EXPECT_EQ(images, (j + 1) * n / bins - j * n / bins);
      }
    }
  }
}

TEST(Analysis, QuantileInterpolates) {
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.0), 1);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 1.0), 4);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.25), 1.75);
  EXPECT_TRUE(std::isnan(quantile({}, 0.5)));
}

TEST(Analysis, RiskCoverageByHand) {
  const std::vector<double> score = {0.9, 0.8, 0.7, 0.6};
  const std::vector<bool> correct = {true, false, true, false};
  const auto full = risk_coverage(score, correct, 100);
  EXPECT_EQ(full.coverage, (std::vector<double>{0.25, 0.5, 0.75, 1.0}));
  EXPECT_EQ(full.risk, (std::vector<double>{0.0, 0.5, 1.0 / 3, 0.5}));
  // The mean risk over every coverage is the AURC.
  EXPECT_DOUBLE_EQ((full.risk[0] + full.risk[1] + full.risk[2] + full.risk[3]) / 4, aurc(score, correct));
  const auto two = risk_coverage(score, correct, 2);
  EXPECT_EQ(two.coverage, (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(two.risk, (std::vector<double>{0.5, 0.5}));
  const auto three = risk_coverage({5, 4, 3, 2, 1, 0, -1}, std::vector<bool>(7, true), 3);
  EXPECT_EQ(three.coverage.size(), 3u);  // at k = 3, 5, 7
  EXPECT_DOUBLE_EQ(three.coverage.back(), 1.0);
}

TEST(Analysis, BootstrapIsSeededAndBracketsTheValue) {
  std::mt19937_64 rng(3);
  std::vector<double> score(300);
  std::vector<bool> correct(300);
  for (std::size_t i = 0; i < score.size(); ++i) {
    correct[i] = rng() % 4 != 0;
    score[i] = (correct[i] ? 0.6 : 0.4) + double(rng() % 1000) / 2000;
  }
  BootstrapOptions options;
  options.resamples = 300;
  options.seed = 11;
  const auto a = detection_metrics(score, correct, options);
  const auto b = detection_metrics(score, correct, options);
  options.seed = 12;
  const auto c = detection_metrics(score, correct, options);
  ASSERT_EQ(a.size(), detection_metric_names().size());
  EXPECT_DOUBLE_EQ(a[0].value, auroc(score, correct));
  EXPECT_DOUBLE_EQ(a[3].value, excess_aurc(score, correct));
  EXPECT_DOUBLE_EQ(a[6].value, precision_at_top(score, correct, 0.3));
  for (std::size_t m = 0; m < a.size(); ++m) {
    SCOPED_TRACE(detection_metric_names()[m]);
    EXPECT_EQ(a[m].lower, b[m].lower);
    EXPECT_EQ(a[m].upper, b[m].upper);
    EXPECT_LE(a[m].lower, a[m].upper);
    EXPECT_LE(a[m].lower, a[m].value + 0.02);
    EXPECT_GE(a[m].upper, a[m].value - 0.02);
  }
  EXPECT_NE(a[0].lower, c[0].lower);
  options.confidence = 1.5;
  EXPECT_ERROR_CONTAINS(detection_metrics(score, correct, options), "confidence: must be in (0, 1)");
}

TEST(Analysis, UndefinedMetricsGiveNaNIntervals) {
  BootstrapOptions options;
  options.resamples = 50;
  const auto all_right = detection_metrics({0.1, 0.5, 0.9}, {true, true, true}, options);
  EXPECT_TRUE(std::isnan(all_right[0].value));  // AUROC needs both groups
  EXPECT_TRUE(std::isnan(all_right[0].lower));
  EXPECT_DOUBLE_EQ(all_right[2].value, 0.0);     // AURC with no error
  EXPECT_DOUBLE_EQ(all_right[2].upper, 0.0);
}

// Brute force: with n = 6 distinct scores, every one of the 6^6 equally likely resamples
// is enumerated, giving the exact bootstrap distribution of each metric (conditional on
// being defined). The interval from 20000 random resamples must sit at its tails.
TEST(Analysis, BootstrapIntervalMatchesTheExactBootstrapDistribution) {
  const std::vector<double> score = {0.95, 0.8, 0.7, 0.55, 0.4, 0.2};
  const std::vector<bool> correct = {true, false, true, true, false, false};
  const std::size_t n = score.size();
  const auto functions = std::vector<double (*)(const std::vector<double>&, const std::vector<bool>&)>{
      auroc, aupr_errors, aurc, excess_aurc, fpr_at_95_tpr,
      [](const std::vector<double>& s, const std::vector<bool>& c) { return precision_at_top(s, c, 0.1); },
      [](const std::vector<double>& s, const std::vector<bool>& c) { return precision_at_top(s, c, 0.3); },
      [](const std::vector<double>& s, const std::vector<bool>& c) { return precision_at_top(s, c, 0.5); }};
  std::vector<std::vector<double>> exact(functions.size());
  std::vector<std::size_t> pick(n, 0);
  for (;;) {
    std::vector<double> s;
    std::vector<bool> c;
    for (auto p : pick) {
      s.push_back(score[p]);
      c.push_back(correct[p]);
    }
    for (std::size_t m = 0; m < functions.size(); ++m) {
      const double v = functions[m](s, c);
      if (!std::isnan(v)) exact[m].push_back(v);
    }
    std::size_t digit = 0;
    while (digit < n && ++pick[digit] == n) pick[digit++] = 0;
    if (digit == n) break;
  }
  BootstrapOptions options;
  options.resamples = 20000;
  options.confidence = 0.9;
  const auto estimates = detection_metrics(score, correct, options);
  for (std::size_t m = 0; m < functions.size(); ++m) {
    SCOPED_TRACE(detection_metric_names()[m]);
    auto share = [&](auto predicate) {
      return double(std::count_if(exact[m].begin(), exact[m].end(), predicate)) / double(exact[m].size());
    };
    const double lower = estimates[m].lower, upper = estimates[m].upper, tolerance = 0.015;
    EXPECT_LE(share([&](double v) { return v < lower; }), 0.05 + tolerance);
    EXPECT_GE(share([&](double v) { return v <= lower; }), 0.05 - tolerance);
    EXPECT_LE(share([&](double v) { return v > upper; }), 0.05 + tolerance);
    EXPECT_GE(share([&](double v) { return v >= upper; }), 0.05 - tolerance);
  }
}

ScoreTable table_of(const std::string& path, const std::vector<std::vector<double>>& rows) {
  // rows: {label, pred, image_score, msp}
  ScoreTable table;
  table.path = path;
  table.value_columns = {"image_score", "msp"};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ScoreRow row;
    row.id = i;
    row.path = "img" + std::to_string(i);
    row.label = int(rows[i][0]);
    row.pred = int(rows[i][1]);
    row.values = {rows[i][2], rows[i][3]};
    table.rows.push_back(row);
  }
  return table;
}

TEST(Analysis, AnalyzesEveryColumnOnSharedEdges) {
  const auto test = table_of("test.csv", {{0, 0, 0.0, 0.9}, {1, 1, 1.0, 0.8}, {1, 0, 2.0, 0.3}, {0, 0, 4.0, 0.7}});
  const auto training = table_of("train.csv", {{0, 0, 3.0, 0.5}, {1, 0, 8.0, 0.6}});
  AnalysisOptions options;
  options.bins = 2;
  options.bootstrap.resamples = 20;
  const auto json = analyze_scores(test, &training, options);
  EXPECT_EQ(json["format"], "imagescore-analysis");
  EXPECT_EQ(json["test"]["images"], 4);
  EXPECT_DOUBLE_EQ(json["test"]["accuracy"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(json["training"]["accuracy"].get<double>(), 0.5);
  ASSERT_EQ(json["columns"].size(), 2u);
  const auto& image_score = json["columns"][0];
  EXPECT_EQ(image_score["name"], "image_score");
  // Edges from both sets: [0, 4) and [4, 8].
  const auto& bins = image_score["bins"];
  ASSERT_EQ(bins.size(), 2u);
  EXPECT_DOUBLE_EQ(bins[1]["lower"].get<double>(), 4.0);
  EXPECT_EQ(bins[0]["test"]["images"], 3);
  EXPECT_DOUBLE_EQ(bins[0]["test"]["share"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(bins[0]["test"]["accuracy"].get<double>(), 2.0 / 3);
  EXPECT_EQ(bins[1]["training"]["images"], 1);
  EXPECT_DOUBLE_EQ(bins[1]["training"]["accuracy"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(image_score["metrics"]["auroc"]["value"].get<double>(),
                   auroc({0.0, 1.0, 2.0, 4.0}, {true, true, false, true}));
  EXPECT_EQ(image_score["risk_coverage"]["coverage"].size(), 4u);

  const auto alone = analyze_scores(test, nullptr, options);
  EXPECT_TRUE(alone["training"].is_null());
  EXPECT_FALSE(alone["columns"][0]["bins"][0].contains("training"));
}

TEST(Analysis, RejectsTablesItCannotMeasure) {
  AnalysisOptions options;
  auto test = table_of("test.csv", {{0, 0, 0.1, 0.9}, {1, 1, 0.2, 0.8}});
  auto unlabelled = test;
  unlabelled.path = "pool.csv";
  unlabelled.rows[1].label = -1;
  EXPECT_ERROR_CONTAINS(analyze_scores(unlabelled, nullptr, options), "pool.csv: every row needs a label");
  auto training = test;
  training.path = "train.csv";
  training.value_columns = {"image_score", "margin"};
  EXPECT_ERROR_CONTAINS(analyze_scores(test, &training, options), "train.csv: no column 'msp'");
  ScoreTable empty;
  empty.path = "empty.csv";
  EXPECT_ERROR_CONTAINS(analyze_scores(empty, nullptr, options), "empty.csv: no rows");
}

}  // namespace
}  // namespace imagescore
