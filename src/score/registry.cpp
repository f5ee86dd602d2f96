#include "imagescore/score/registry.hpp"

#include <algorithm>
#include <limits>
#include <map>

#include "imagescore/core/error.hpp"

namespace imagescore {

const std::vector<ScoreInfo>& score_registry() {
  static const std::vector<ScoreInfo> registry = {
      {"image_score", {"image_score"}, "profiles", false,
       "the paper's image score: log-overlap of the image's active neurons with its class's masks"},
      {"msp", {"msp"}, "", false, "softmax probability of the predicted class"},
      {"margin", {"margin"}, "", false, "top-1 minus top-2 softmax probability"},
      {"neg_entropy", {"neg_entropy"}, "", false, "negative entropy of the softmax"},
      {"energy", {"energy"}, "", false, "log-sum-exp of the logits (negative free energy)"},
      {"max_logit", {"max_logit"}, "", false, "largest logit"},
      {"doctor", {"doctor"}, "", false, "DOCTOR (Granese et al. 2021): sum of squared softmax probabilities"},
      {"knn", {"knn"}, "features", false,
       "negative distance to the k-th nearest labelled feature, normalised (Sun et al. 2022)"},
      {"trust", {"trust"}, "features", false,
       "trust score (Jiang et al. 2018): distance to the nearest other class over distance to the predicted class"},
      {"mahalanobis", {"mahalanobis"}, "gaussian", false,
       "negative Mahalanobis distance to the closest class mean, tied covariance (Lee et al. 2018)"},
      {"rel_mahalanobis", {"rel_mahalanobis"}, "gaussian", false,
       "relative Mahalanobis distance (Ren et al. 2021): class distance minus the distance to all labelled images"},
      {"nac", {"nac"}, "nac", false,
       "neuron activation coverage (Liu et al. 2024) of the classifier's input; built-in models only"},
      {"mc_dropout", {"mc_dropout", "mc_dropout_certainty"}, "", true,
       "Monte Carlo dropout: mean and minus the spread of the predicted class's probability; costs "
       "--mc-passes extra forward passes (10 by default)"},
      {"tta", {"tta"}, "", true,
       "test-time augmentation: mean probability of the predicted class over shifted and flipped copies; costs "
       "--tta-passes extra forward passes (8 by default)"},
  };
  return registry;
}

const ScoreInfo& score_info(const std::string& name) {
  for (const auto& info : score_registry())
    if (info.name == name) return info;
  std::string known;
  for (const auto& info : score_registry()) known += (known.empty() ? "" : ", ") + info.name;
  fail_option("scores", "unknown score '" + name + "' (known: " + known + ")");
}

const ScoreInfo* score_of_column(const std::string& column) {
  for (const auto& info : score_registry())
    if (std::find(info.columns.begin(), info.columns.end(), column) != info.columns.end()) return &info;
  return nullptr;
}

std::vector<std::string> all_score_columns() {
  std::vector<std::string> columns;
  for (const auto& info : score_registry()) columns.insert(columns.end(), info.columns.begin(), info.columns.end());
  return columns;
}

ScoreRange column_range(const std::string& column) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  static const std::map<std::string, ScoreRange> ranges = {
      {"image_score", {-inf, 0}},  {"msp", {0, 1}},        {"margin", {0, 1}},
      {"neg_entropy", {-inf, 0}},  {"energy", {-inf, inf}}, {"max_logit", {-inf, inf}},
      {"doctor", {0, 1}},          {"knn", {-2, 0}},        {"trust", {0, inf}},
      {"mahalanobis", {-inf, 0}},  {"rel_mahalanobis", {-inf, inf}}, {"nac", {0, 1}},
      {"mc_dropout", {0, 1}},      {"mc_dropout_certainty", {-0.5, 0}}, {"tta", {0, 1}}};
  const auto it = ranges.find(column);
  if (it == ranges.end()) fail_option("scores", "unknown score column '" + column + "'");
  return it->second;
}

std::vector<std::string> canonical_score_names(const std::vector<std::string>& names) {
  for (const auto& name : names) score_info(name);
  std::vector<std::string> ordered;
  for (const auto& info : score_registry())
    if (std::find(names.begin(), names.end(), info.name) != names.end()) ordered.push_back(info.name);
  return ordered;
}

}  // namespace imagescore
