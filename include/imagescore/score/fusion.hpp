// Score columns combined from others (docs/method.md, "Fusions"). A fused column is named
// by its recipe and computed where a scores table is read (select, analyze, report, the
// study, self-training), since a rank fusion needs every candidate of a class:
//   rank:A+B[+C...]  the mean, over the columns A, B, ..., of the image's rank among the
//                    images of its predicted class (ties share their mean rank), divided by
//                    their number: in (0, 1], higher is better, like every score;
//   learned:FILE     a logistic combination of columns fitted on held-out labelled images
//                    (`imagescore fuse`; FILE says which columns and weights).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/score/scores_table.hpp"

namespace imagescore {

bool is_fused_column(const std::string& name);

// Adds the fused column `recipe` to every row of `table` unless it is there already, and
// returns its index. Fails on a malformed recipe, a missing component column, a bad fusion
// file, or a predicted class above max_classes.
std::size_t add_fused_column(ScoreTable& table, const std::string& recipe);

// A learned combination: z-scores of the columns (means and deviations of the fitting
// images), then weights and a bias; the column is the linear predictor (log-odds of a
// right prediction).
struct LearnedFusion {
  std::vector<std::string> columns;
  std::vector<double> means, deviations, weights;
  double bias = 0;
  // How it was fitted, kept in the file: the scores file, its images and wrong
  // predictions, the L2 penalty chosen by cross-validation and its folds.
  std::string fitted_on;
  std::size_t images = 0, errors = 0, folds = 0;
  double penalty = 0;
  double apply(const std::vector<double>& values) const;  // values in the order of columns
  nlohmann::json to_json() const;
  static LearnedFusion from_json(const nlohmann::json& json, const std::string& where);
};
LearnedFusion load_learned_fusion(const std::string& path);

}  // namespace imagescore
