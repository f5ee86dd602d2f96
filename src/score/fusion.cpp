#include "imagescore/score/fusion.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"

namespace imagescore {
namespace {

constexpr const char* kRank = "rank:";
constexpr const char* kLearned = "learned:";

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

std::vector<std::string> components(const std::string& recipe) {
  std::vector<std::string> parts;
  const std::string list = recipe.substr(std::string(kRank).size());
  for (std::size_t start = 0;;) {
    const std::size_t plus = std::min(list.find('+', start), list.size());
    parts.push_back(list.substr(start, plus - start));
    if (plus == list.size()) break;
    start = plus + 1;
  }
  for (const auto& p : parts)
    if (p.empty() || is_fused_column(p))
      fail_option("fuse", "'" + recipe + "': expected rank:A+B with score columns A, B, ...");
  if (parts.size() < 2) fail_option("fuse", "'" + recipe + "': a rank fusion needs at least two columns");
  return parts;
}

// Ranks (1 = lowest score, ties sharing their mean rank) within each predicted class,
// divided by the class's number of rows.
std::vector<double> class_ranks(const ScoreTable& table, std::size_t column) {
  std::map<int, std::vector<std::size_t>> classes;
  for (std::size_t i = 0; i < table.rows.size(); ++i) classes[table.rows[i].pred].push_back(i);
  std::vector<double> out(table.rows.size());
  for (auto& [pred, rows] : classes) {
    std::stable_sort(rows.begin(), rows.end(),
                     [&](std::size_t a, std::size_t b) { return table.rows[a].values[column] < table.rows[b].values[column]; });
    for (std::size_t first = 0; first < rows.size();) {
      std::size_t last = first;
      while (last < rows.size() && table.rows[rows[last]].values[column] == table.rows[rows[first]].values[column]) ++last;
      const double mean_rank = (double(first + 1) + double(last)) / 2.0;
      for (std::size_t k = first; k < last; ++k) out[rows[k]] = mean_rank / double(rows.size());
      first = last;
    }
  }
  return out;
}

}  // namespace

bool is_fused_column(const std::string& name) { return starts_with(name, kRank) || starts_with(name, kLearned); }

std::size_t add_fused_column(ScoreTable& table, const std::string& recipe) {
  for (std::size_t i = 0; i < table.value_columns.size(); ++i)
    if (table.value_columns[i] == recipe) return i;
  if (!is_fused_column(recipe)) return table.column(recipe);  // fails naming the file
  std::vector<double> fused(table.rows.size(), 0.0);
  if (starts_with(recipe, kRank)) {
    const auto parts = components(recipe);
    for (const auto& part : parts) {
      const auto ranks = class_ranks(table, table.column(part));
      for (std::size_t i = 0; i < fused.size(); ++i) fused[i] += ranks[i] / double(parts.size());
    }
  } else {
    const auto fusion = load_learned_fusion(recipe.substr(std::string(kLearned).size()));
    std::vector<std::size_t> at;
    for (const auto& c : fusion.columns) at.push_back(table.column(c));
    std::vector<double> values(at.size());
    for (std::size_t i = 0; i < fused.size(); ++i) {
      for (std::size_t c = 0; c < at.size(); ++c) values[c] = table.rows[i].values[at[c]];
      fused[i] = fusion.apply(values);
    }
  }
  table.value_columns.push_back(recipe);
  for (std::size_t i = 0; i < fused.size(); ++i) table.rows[i].values.push_back(fused[i]);
  return table.value_columns.size() - 1;
}

double LearnedFusion::apply(const std::vector<double>& values) const {
  double z = bias;
  for (std::size_t c = 0; c < columns.size(); ++c) z += weights[c] * (values[c] - means[c]) / deviations[c];
  return z;
}

nlohmann::json LearnedFusion::to_json() const {
  return {{"format", "imagescore-fusion"},
          {"version", 1},
          {"columns", columns},
          {"means", means},
          {"deviations", deviations},
          {"weights", weights},
          {"bias", bias},
          {"fitted", {{"scores", fitted_on}, {"images", images}, {"errors", errors}, {"folds", folds}, {"penalty", penalty}}}};
}

LearnedFusion LearnedFusion::from_json(const nlohmann::json& j, const std::string& where) {
  if (json_field<std::string>(j, "format", where) != "imagescore-fusion") fail(where, "not an imagescore fusion file");
  if (json_field<int>(j, "version", where) != 1) fail(where, "unsupported fusion file version");
  LearnedFusion f;
  f.columns = json_field<std::vector<std::string>>(j, "columns", where);
  f.means = json_field<std::vector<double>>(j, "means", where);
  f.deviations = json_field<std::vector<double>>(j, "deviations", where);
  f.weights = json_field<std::vector<double>>(j, "weights", where);
  f.bias = json_field<double>(j, "bias", where);
  if (j.contains("fitted")) {
    const auto& fitted = j.at("fitted");
    f.fitted_on = json_field_or<std::string>(fitted, "scores", "", where);
    f.images = json_field_or<std::size_t>(fitted, "images", 0, where);
    f.errors = json_field_or<std::size_t>(fitted, "errors", 0, where);
    f.folds = json_field_or<std::size_t>(fitted, "folds", 0, where);
    f.penalty = json_field_or<double>(fitted, "penalty", 0, where);
  }
  const std::size_t n = f.columns.size();
  if (n == 0 || f.means.size() != n || f.deviations.size() != n || f.weights.size() != n)
    fail(where, "columns, means, deviations and weights must have the same, non-zero length");
  for (std::size_t c = 0; c < n; ++c)
    if (!std::isfinite(f.means[c]) || !(f.deviations[c] > 0) || !std::isfinite(f.deviations[c]) || !std::isfinite(f.weights[c]))
      fail(where, "column '" + f.columns[c] + "' has a non-finite mean or weight, or a deviation that is not positive");
  if (!std::isfinite(f.bias)) fail(where, "the bias is not finite");
  return f;
}

LearnedFusion load_learned_fusion(const std::string& path) {
  return LearnedFusion::from_json(read_json_file(path, 1 << 20), path);
}

}  // namespace imagescore
