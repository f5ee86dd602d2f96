// Analysis of a scores file (SPEC section 5): labelling accuracy and share of images per
// score interval (the paper's figures 2-4), and how well each score detects wrong
// predictions, with seeded bootstrap confidence intervals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/core/partition.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore {

enum class Binning { Width, Quantile };
Binning parse_binning(const std::string& name);  // "width" | "quantile", else OptionError "binning"
std::string to_string(Binning binning);

// Edges e_0 < e_1 < ... < e_m of at most `bins` score intervals [e_j, e_j+1) (the last
// one closed) covering every value.
//   Width:    equal-width intervals from the smallest to the largest value.
//   Quantile: e_j is the value at sorted position floor(j n / bins), so that each
//             interval holds about n / bins values; tied values never straddle an
//             edge, so repeated edges are merged and fewer intervals may remain.
// One interval [v, v] when every value is v. Fails on no values, a non-finite one, or
// bins outside [1, kMaxBins].
constexpr std::size_t kMaxBins = 10000;
std::vector<double> bin_edges(const std::vector<double>& values, std::size_t bins, Binning binning);

struct ScoreBin {
  double lower = 0, upper = 0;
  std::size_t images = 0;
  std::size_t correct = 0;
  double accuracy() const;  // NaN for an empty interval
};
// Counts the images and correct predictions per interval of `edges`. Values outside
// [e_0, e_m] go to the first or last interval.
std::vector<ScoreBin> bin_scores(const std::vector<double>& edges, const std::vector<double>& score,
                                 const std::vector<bool>& correct);

struct BootstrapOptions {
  std::size_t resamples = 1000;
  std::uint64_t seed = 0;
  double confidence = 0.95;
};

// A metric's value on the data and its percentile bootstrap interval (NaN where undefined).
struct Estimate {
  double value = 0, lower = 0, upper = 0;
};


// The misclassification-detection metrics of metrics.hpp, in this order:
// auroc, aupr_errors, aurc, excess_aurc, fpr_at_95_tpr, precision_top10/30/50.
const std::vector<std::string>& detection_metric_names();

// Every detection metric with its interval. Each resample draws n images with
// replacement (SplitMix64 seeded by `seed`: the same draws for every score column, so
// the intervals of two scores are paired); a resample where a metric is undefined (no
// error drawn, say) is left out of that metric's interval.
std::vector<Estimate> detection_metrics(const std::vector<double>& score, const std::vector<bool>& correct,
                                        const BootstrapOptions& options);

// Risk (error rate) among the most confident images against their share (coverage),
// images sorted by score descending with ties in input order, at no more than
// `max_points` coverages spread evenly (always including full coverage).
struct RiskCoverage {
  std::vector<double> coverage, risk;
};
RiskCoverage risk_coverage(const std::vector<double>& score, const std::vector<bool>& correct, std::size_t max_points);

struct AnalysisOptions {
  std::vector<std::string> fuse;  // fused columns to add and analyse too (score/fusion.hpp)
  std::size_t bins = 10;
  Binning binning = Binning::Width;
  BootstrapOptions bootstrap;
  std::size_t curve_points = 200;
};

// The analysis of every value column of `test` (and, when `training` is given, the
// interval accuracies of its images too, on the same edges, made from both sets).
// Both tables need labels on every row and `training` every column of `test`.
// The JSON layout is described in docs/report.md.
nlohmann::json analyze_scores(const ScoreTable& test, const ScoreTable* training, const AnalysisOptions& options);

}  // namespace imagescore
