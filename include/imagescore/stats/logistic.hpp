// L2-penalised logistic regression, for learning a combination of scores that predicts
// whether a prediction is right (score/fusion.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "imagescore/score/fusion.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore {

struct LogisticModel {
  std::vector<double> weights;
  double bias = 0;
  double predict(const double* x) const;  // the linear predictor (log-odds)
};

// Maximises sum log p(y | x) - penalty / 2 * |w|^2 (the bias is not penalised) by Newton's
// method with step halving. x: n rows of d features, row-major.
LogisticModel fit_logistic(const std::vector<double>& x, std::size_t d, const std::vector<bool>& y, double penalty);
// Mean negative log-likelihood of y under the model.
double log_loss(const LogisticModel& model, const std::vector<double>& x, std::size_t d, const std::vector<bool>& y);

struct FusionFitOptions {
  std::vector<double> penalties = {1e-3, 1e-2, 1e-1, 1, 10, 100};  // tried by cross-validation
  std::size_t folds = 5;
  std::uint64_t seed = 0;
};

// A learned combination of `columns` fitted on the labelled rows of `table` (held-out
// images: never the images it will select from): z-scores of the columns, then the
// logistic regression whose penalty has the smallest cross-validated log-loss (folds drawn
// with the seed, stratified by right and wrong).
LearnedFusion fit_learned_fusion(const ScoreTable& table, const std::vector<std::string>& columns,
                                 const FusionFitOptions& options);

}  // namespace imagescore
