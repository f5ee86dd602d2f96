// Which score selects best: every score column against a baseline column (MSP by
// default) on the same images, with paired bootstrap intervals of the differences.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/score/scores_table.hpp"
#include "imagescore/stats/analysis.hpp"

namespace imagescore {

struct ComparisonOptions {
  std::string baseline = "msp";
  double select_fraction = 0.3;  // the top share of each predicted class, as `select --fraction`
  BootstrapOptions bootstrap;    // images are resampled with replacement, the same draws for every column
};

struct ScoreComparison {
  std::string column;
  double precision = 0;  // of the pseudo-labels the top share per predicted class selects
  double auroc = 0;      // telling right from wrong predictions
  Estimate precision_difference, auroc_difference;  // column minus baseline, with intervals
  // The interval excludes zero on the side of the column.
  bool beats_baseline_in_precision() const { return precision_difference.lower > 0; }
  bool beats_baseline_in_auroc() const { return auroc_difference.lower > 0; }
};

// Every column of `columns` (the baseline included) on a labelled table, in the order
// given. Deterministic for a seed, whatever the thread count.
std::vector<ScoreComparison> compare_scores(const ScoreTable& table, const std::vector<std::string>& columns,
                                            std::size_t num_classes, const ComparisonOptions& options);

nlohmann::json comparison_json(const std::vector<ScoreComparison>& comparisons, const ComparisonOptions& options);
// A table ranked by precision and a plain verdict: the best selector with its interval
// against the baseline, or that none beat it.
std::string comparison_text(std::vector<ScoreComparison> comparisons, const ComparisonOptions& options);

}  // namespace imagescore
