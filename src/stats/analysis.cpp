#include "imagescore/stats/analysis.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "imagescore/core/json.hpp"
#include "imagescore/core/names.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/score/fusion.hpp"
#include "imagescore/stats/metrics.hpp"

namespace imagescore {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using Metric = double (*)(const std::vector<double>&, const std::vector<bool>&);

double top10(const std::vector<double>& s, const std::vector<bool>& c) { return precision_at_top(s, c, 0.1); }
double top30(const std::vector<double>& s, const std::vector<bool>& c) { return precision_at_top(s, c, 0.3); }
double top50(const std::vector<double>& s, const std::vector<bool>& c) { return precision_at_top(s, c, 0.5); }

// In the order of detection_metric_names().
const std::vector<Metric>& detection_metric_functions() {
  static const std::vector<Metric> functions = {auroc, aupr_errors, aurc, excess_aurc, fpr_at_95_tpr, top10, top30, top50};
  return functions;
}


std::vector<bool> correctness(const ScoreTable& table) {
  if (!table.has_labels()) fail(table.path, "every row needs a label to measure accuracy");
  std::vector<bool> correct;
  correct.reserve(table.rows.size());
  for (const auto& row : table.rows) correct.push_back(row.label == row.pred);
  return correct;
}

nlohmann::json images_json(const std::vector<bool>& correct) {
  const auto right = std::size_t(std::count(correct.begin(), correct.end(), true));
  return {{"images", correct.size()}, {"correct", right}, {"accuracy", number_or_null(double(right) / double(correct.size()))}};
}

nlohmann::json bin_json(const ScoreBin& bin, std::size_t total) {
  return {{"images", bin.images},
          {"correct", bin.correct},
          {"share", double(bin.images) / double(total)},
          {"accuracy", number_or_null(bin.accuracy())}};
}

}  // namespace

namespace {
const EnumName<Binning> kBinningNames[] = {{Binning::Width, "width"}, {Binning::Quantile, "quantile"}};
}  // namespace

Binning parse_binning(const std::string& name) { return enum_from_name(kBinningNames, name, "binning"); }
std::string to_string(Binning binning) { return enum_name(kBinningNames, binning); }

std::vector<double> bin_edges(const std::vector<double>& values, std::size_t bins, Binning binning) {
  if (bins == 0) fail_option("bins", "must be at least 1");
  // Each interval costs memory in every table and column: a bound keeps a typo from
  // asking for gigabytes.
  if (bins > kMaxBins) fail_option("bins", "must be at most " + std::to_string(kMaxBins) + ", got " + std::to_string(bins));
  if (values.empty()) fail("bin_edges", "no values to bin");
  for (double v : values)
    if (!std::isfinite(v)) fail("bin_edges", "a value is not finite");
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const double lo = sorted.front(), hi = sorted.back();
  if (lo == hi) return {lo, hi};
  std::vector<double> edges{lo};
  for (std::size_t j = 1; j < bins; ++j) {
    const double edge = binning == Binning::Width ? lo + (hi - lo) * double(j) / double(bins)
                                                  : sorted[j * sorted.size() / bins];
    if (edge > edges.back() && edge < hi) edges.push_back(edge);
  }
  edges.push_back(hi);
  return edges;
}

double ScoreBin::accuracy() const { return images ? double(correct) / double(images) : kNaN; }

std::vector<ScoreBin> bin_scores(const std::vector<double>& edges, const std::vector<double>& score,
                                 const std::vector<bool>& correct) {
  if (edges.size() < 2) fail("bin_scores", "need at least two edges");
  if (score.size() != correct.size()) fail("bin_scores", "as many correctness flags as scores needed");
  std::vector<ScoreBin> bins(edges.size() - 1);
  for (std::size_t j = 0; j < bins.size(); ++j) {
    bins[j].lower = edges[j];
    bins[j].upper = edges[j + 1];
  }
  // The interval of v is the number of inner edges at or below it.
  const auto inner_begin = edges.begin() + 1, inner_end = edges.end() - 1;
  for (std::size_t i = 0; i < score.size(); ++i) {
    auto& bin = bins[std::size_t(std::upper_bound(inner_begin, inner_end, score[i]) - inner_begin)];
    ++bin.images;
    bin.correct += correct[i] ? 1 : 0;
  }
  return bins;
}

const std::vector<std::string>& detection_metric_names() {
  static const std::vector<std::string> names = {"auroc", "aupr_errors", "aurc", "excess_aurc", "fpr_at_95_tpr",
                                                 "precision_top10", "precision_top30", "precision_top50"};
  return names;
}

std::vector<Estimate> detection_metrics(const std::vector<double>& score, const std::vector<bool>& correct,
                                        const BootstrapOptions& options) {
  if (!(options.confidence > 0 && options.confidence < 1)) fail_option("confidence", "must be in (0, 1)");
  const auto& functions = detection_metric_functions();
  std::vector<Estimate> estimates(functions.size());
  for (std::size_t m = 0; m < functions.size(); ++m) estimates[m].value = functions[m](score, correct);

  // A resample is laid out in descending score order (each image repeated as often as
  // it was drawn), so that the metrics' sorts run on sorted input: several times faster.
  const std::size_t n = score.size();
  std::vector<std::size_t> by_score(n);
  for (std::size_t i = 0; i < n; ++i) by_score[i] = i;
  std::stable_sort(by_score.begin(), by_score.end(), [&](std::size_t a, std::size_t b) { return score[a] > score[b]; });
  std::vector<std::vector<double>> samples(functions.size());
  SplitMix64 rng(options.seed);
  std::vector<std::size_t> times_drawn(n);
  std::vector<double> drawn_score;
  std::vector<bool> drawn_correct;
  for (std::size_t r = 0; r < options.resamples && n > 0; ++r) {
    std::fill(times_drawn.begin(), times_drawn.end(), 0);
    for (std::size_t i = 0; i < n; ++i) ++times_drawn[rng.below(n)];
    drawn_score.clear();
    drawn_correct.clear();
    for (std::size_t i : by_score) {
      drawn_score.insert(drawn_score.end(), times_drawn[i], score[i]);
      drawn_correct.insert(drawn_correct.end(), times_drawn[i], correct[i]);
    }
    for (std::size_t m = 0; m < functions.size(); ++m) {
      const double v = functions[m](drawn_score, drawn_correct);
      if (!std::isnan(v)) samples[m].push_back(v);
    }
  }
  const double tail = (1 - options.confidence) / 2;
  for (std::size_t m = 0; m < functions.size(); ++m) {
    estimates[m].lower = quantile(samples[m], tail);
    estimates[m].upper = quantile(samples[m], 1 - tail);
  }
  return estimates;
}

RiskCoverage risk_coverage(const std::vector<double>& score, const std::vector<bool>& correct, std::size_t max_points) {
  if (score.size() != correct.size()) fail("risk_coverage", "as many correctness flags as scores needed");
  RiskCoverage curve;
  const std::size_t n = score.size();
  if (n == 0 || max_points == 0) return curve;
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] > score[b]; });
  const std::size_t points = std::min(max_points, n);
  std::size_t errors = 0, next_point = 1;
  for (std::size_t k = 1; k <= n; ++k) {
    errors += correct[order[k - 1]] ? 0 : 1;
    // Point j (1-based) sits at k = ceil(j n / points): evenly spread, the last at n.
    if (k * points >= next_point * n) {
      curve.coverage.push_back(double(k) / double(n));
      curve.risk.push_back(double(errors) / double(k));
      ++next_point;
    }
  }
  return curve;
}

nlohmann::json analyze_scores(const ScoreTable& test_table, const ScoreTable* training_table, const AnalysisOptions& options) {
  if (test_table.rows.empty()) fail(test_table.path, "no rows to analyse");
  if (training_table && training_table->rows.empty()) fail(training_table->path, "no rows to analyse");
  // Fused columns are computed per table, on copies.
  ScoreTable test = test_table, training_copy;
  const ScoreTable* training = nullptr;
  if (training_table) {
    training_copy = *training_table;
    training = &training_copy;
  }
  for (const auto& recipe : options.fuse) {
    add_fused_column(test, recipe);
    if (training) add_fused_column(training_copy, recipe);
  }
  const std::vector<bool> test_correct = correctness(test);
  const std::vector<bool> training_correct = training ? correctness(*training) : std::vector<bool>{};

  nlohmann::json columns = nlohmann::json::array();
  for (const auto& column : test.value_columns) {
    const std::vector<double> test_values = test.values(column);
    const std::vector<double> training_values = training ? training->values(column) : std::vector<double>{};
    std::vector<double> all = test_values;
    all.insert(all.end(), training_values.begin(), training_values.end());
    const auto edges = bin_edges(all, options.bins, options.binning);
    const auto test_bins = bin_scores(edges, test_values, test_correct);
    const auto training_bins = training ? bin_scores(edges, training_values, training_correct) : std::vector<ScoreBin>{};

    nlohmann::json bins = nlohmann::json::array();
    for (std::size_t j = 0; j < test_bins.size(); ++j) {
      nlohmann::json bin = {{"lower", test_bins[j].lower}, {"upper", test_bins[j].upper},
                            {"test", bin_json(test_bins[j], test_values.size())}};
      if (training) bin["training"] = bin_json(training_bins[j], training_values.size());
      bins.push_back(std::move(bin));
    }
    nlohmann::json metrics = nlohmann::json::object();
    const auto estimates = detection_metrics(test_values, test_correct, options.bootstrap);
    for (std::size_t m = 0; m < estimates.size(); ++m) {
      metrics[detection_metric_names()[m]] = {{"value", number_or_null(estimates[m].value)},
                                              {"lower", number_or_null(estimates[m].lower)},
                                              {"upper", number_or_null(estimates[m].upper)}};
    }
    const auto curve = risk_coverage(test_values, test_correct, options.curve_points);
    columns.push_back({{"name", column},
                       {"bins", std::move(bins)},
                       {"metrics", std::move(metrics)},
                       {"risk_coverage", {{"coverage", curve.coverage}, {"risk", curve.risk}}}});
  }
  return {{"format", "imagescore-analysis"},
          {"version", 1},
          {"scores", test.path},
          {"scores_train", training ? nlohmann::json(training->path) : nlohmann::json(nullptr)},
          {"binning", options.binning == Binning::Width ? "width" : "quantile"},
          {"bins", options.bins},
          {"bootstrap", {{"resamples", options.bootstrap.resamples}, {"seed", options.bootstrap.seed},
                         {"confidence", options.bootstrap.confidence}}},
          {"test", images_json(test_correct)},
          {"training", training ? images_json(training_correct) : nlohmann::json(nullptr)},
          {"columns", std::move(columns)}};
}

}  // namespace imagescore
