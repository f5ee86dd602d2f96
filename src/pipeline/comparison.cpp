#include "imagescore/pipeline/comparison.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/select/select.hpp"
#include "imagescore/stats/metrics.hpp"

namespace imagescore {
namespace {

// The rows of one (re)sample of the table, as plain arrays.
struct Sample {
  std::vector<std::vector<double>> scores;  // per column
  std::vector<int> pred;
  std::vector<std::size_t> ids;
  std::vector<bool> correct;
};

double selection_precision(const Sample& s, std::size_t column, std::size_t num_classes, double fraction) {
  SelectOptions o;
  o.fraction = fraction;
  const auto chosen = select_positions(s.scores[column], s.pred, s.ids, o, num_classes);
  std::size_t right = 0;
  for (auto i : chosen) right += s.correct[i];
  return chosen.empty() ? std::nan("") : double(right) / double(chosen.size());
}

Estimate interval(double value, std::vector<double> draws, double confidence) {
  draws.erase(std::remove_if(draws.begin(), draws.end(), [](double v) { return std::isnan(v); }), draws.end());
  const double tail = (1 - confidence) / 2;
  return {value, quantile(draws, tail), quantile(draws, 1 - tail)};
}

}  // namespace

std::vector<ScoreComparison> compare_scores(const ScoreTable& table, const std::vector<std::string>& columns,
                                            std::size_t num_classes, const ComparisonOptions& options) {
  if (!table.has_labels() || table.rows.empty()) fail(table.path, "comparing scores needs labelled rows");
  const auto& b = options.bootstrap;
  if (!(b.confidence > 0 && b.confidence < 1)) fail_option("confidence", "must be in (0, 1)");
  auto base = std::find(columns.begin(), columns.end(), options.baseline);
  if (base == columns.end()) fail_option("baseline", "'" + options.baseline + "' is not among the compared columns");
  const std::size_t baseline = std::size_t(base - columns.begin()), m = columns.size(), n = table.rows.size();
  Sample all;
  for (const auto& column : columns) all.scores.push_back(table.values(column));
  for (const auto& row : table.rows) {
    if (std::size_t(row.pred) >= num_classes) fail(table.path, "predicted class " + std::to_string(row.pred) + " out of range");
    all.pred.push_back(row.pred);
    all.ids.push_back(row.id);
    all.correct.push_back(row.label == row.pred);
  }
  auto measure = [&](const Sample& s, std::vector<double>& precision, std::vector<double>& auc) {
    for (std::size_t c = 0; c < m; ++c) {
      precision[c] = selection_precision(s, c, num_classes, options.select_fraction);
      auc[c] = auroc(s.scores[c], s.correct);
    }
  };
  std::vector<double> precision(m), auc(m);
  measure(all, precision, auc);

  // Differences to the baseline in each resample: resample r draws from its own seed, so
  // the draws do not depend on the thread that runs it.
  std::vector<std::vector<double>> dp(m, std::vector<double>(b.resamples)), da = dp;
  parallel_for(b.resamples, 1, [&](std::size_t begin, std::size_t end) {
    Sample s;
    s.scores.assign(m, std::vector<double>(n));
    s.pred.resize(n);
    s.ids.resize(n);
    s.correct.resize(n);
    std::vector<double> p(m), a(m);
    for (std::size_t r = begin; r < end; ++r) {
      SplitMix64 rng(mix_seed(b.seed, r));
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t j = std::size_t(rng.below(n));
        for (std::size_t c = 0; c < m; ++c) s.scores[c][i] = all.scores[c][j];
        s.pred[i] = all.pred[j];
        s.ids[i] = all.ids[j];
        s.correct[i] = all.correct[j];
      }
      measure(s, p, a);
      for (std::size_t c = 0; c < m; ++c) {
        dp[c][r] = p[c] - p[baseline];
        da[c][r] = a[c] - a[baseline];
      }
    }
  });
  std::vector<ScoreComparison> out;
  for (std::size_t c = 0; c < m; ++c) {
    ScoreComparison x;
    x.column = columns[c];
    x.precision = precision[c];
    x.auroc = auc[c];
    x.precision_difference = interval(precision[c] - precision[baseline], dp[c], b.confidence);
    x.auroc_difference = interval(auc[c] - auc[baseline], da[c], b.confidence);
    out.push_back(x);
  }
  return out;
}

nlohmann::json comparison_json(const std::vector<ScoreComparison>& comparisons, const ComparisonOptions& options) {
  auto estimate = [](const Estimate& e) {
    return nlohmann::json{{"value", number_or_null(e.value)}, {"lower", number_or_null(e.lower)}, {"upper", number_or_null(e.upper)}};
  };
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& c : comparisons)
    rows.push_back({{"score", c.column},
                    {"precision", number_or_null(c.precision)},
                    {"auroc", number_or_null(c.auroc)},
                    {"precision_minus_baseline", estimate(c.precision_difference)},
                    {"auroc_minus_baseline", estimate(c.auroc_difference)}});
  return {{"baseline", options.baseline},
          {"select_fraction", options.select_fraction},
          {"resamples", options.bootstrap.resamples},
          {"confidence", options.bootstrap.confidence},
          {"seed", options.bootstrap.seed},
          {"scores", rows}};
}

std::string comparison_text(std::vector<ScoreComparison> comparisons, const ComparisonOptions& options) {
  std::stable_sort(comparisons.begin(), comparisons.end(),
                   [](const ScoreComparison& a, const ScoreComparison& b) { return a.precision > b.precision; });
  auto signed_fixed = [](double v) { return std::string(v >= 0 ? "+" : "") + fixed(v, 4); };
  auto diff = [&](const Estimate& e) {
    return signed_fixed(e.value) + " [" + signed_fixed(e.lower) + ", " + signed_fixed(e.upper) + "]";
  };
  char line[256];
  const int percent = int(std::lround(100 * options.bootstrap.confidence));
  std::string s = "Scores ranked by the precision of the top " + fixed(100 * options.select_fraction, 0) +
                  "% per predicted class, against " + options.baseline + " (paired bootstrap, " +
                  std::to_string(options.bootstrap.resamples) + " resamples, " + std::to_string(percent) + "% intervals):\n";
  std::snprintf(line, sizeof line, "%-22s %9s %27s %9s %27s\n", "score", "precision", ("minus " + options.baseline).c_str(),
                "AUROC", ("minus " + options.baseline).c_str());
  s += line;
  for (const auto& c : comparisons) {
    std::snprintf(line, sizeof line, "%-22s %9s %27s %9s %27s\n", c.column.substr(0, 22).c_str(), fixed(c.precision, 4).c_str(),
                  c.column == options.baseline ? "" : diff(c.precision_difference).c_str(), fixed(c.auroc, 4).c_str(),
                  c.column == options.baseline ? "" : diff(c.auroc_difference).c_str());
    s += line;
  }
  auto verdict = [&](const char* what, auto better, auto difference, auto value) {
    const ScoreComparison* best = nullptr;
    for (const auto& c : comparisons)
      if (c.column != options.baseline && (!best || value(c) > value(*best))) best = &c;
    if (!best) return std::string();
    std::vector<std::string> winners;
    for (const auto& c : comparisons)
      if (c.column != options.baseline && better(c)) winners.push_back(c.column);
    std::string text = std::string(what) + ": ";
    if (winners.empty())
      text += "no score beat " + options.baseline + " (no interval lies above zero); the closest is " + best->column + " at " +
              diff(difference(*best)) + ".\n";
    else {
      text += "the best is " + best->column + ", " + diff(difference(*best)) + " over " + options.baseline + "; ";
      text += std::to_string(winners.size()) + " score(s) beat " + options.baseline + " with intervals above zero:";
      for (const auto& w : winners) text += " " + w;
      text += ".\n";
    }
    return text;
  };
  s += "\n";
  s += verdict(
      "Selection precision", [](const ScoreComparison& c) { return c.beats_baseline_in_precision(); },
      [](const ScoreComparison& c) { return c.precision_difference; }, [](const ScoreComparison& c) { return c.precision; });
  s += verdict(
      "AUROC", [](const ScoreComparison& c) { return c.beats_baseline_in_auroc(); },
      [](const ScoreComparison& c) { return c.auroc_difference; }, [](const ScoreComparison& c) { return c.auroc; });
  return s;
}

}  // namespace imagescore
