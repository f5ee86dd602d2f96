#include "imagescore/stats/score_summary.hpp"

#include <nlohmann/json.hpp>

#include <limits>

#include "imagescore/core/json.hpp"

namespace imagescore {

double ScoreSummary::accuracy() const {
  return labelled > 0 ? double(correct) / double(labelled) : std::numeric_limits<double>::quiet_NaN();
}

nlohmann::json ScoreSummary::to_json() const {
  nlohmann::json j = {{"images", images}, {"labelled", labelled}};
  if (labelled > 0) {
    j["correct"] = correct;
    j["accuracy"] = accuracy();
  }
  if (!auroc.empty()) {
    nlohmann::json a = nlohmann::json::object();
    for (const auto& [name, value] : auroc) a[name] = number_or_null(value);
    j["auroc"] = a;
  }
  return j;
}

ScoreSummarizer::ScoreSummarizer(std::vector<std::string> columns)
    : columns_(std::move(columns)), auroc_(columns_.size()) {}

void ScoreSummarizer::add(const ScoreRow& row) {
  ++summary_.images;
  if (row.label < 0) return;
  ++summary_.labelled;
  const bool correct = row.label == row.pred;
  summary_.correct += correct;
  for (std::size_t c = 0; c < auroc_.size(); ++c) auroc_[c].add(row.values.at(c), correct);
}

ScoreSummary ScoreSummarizer::finish() {
  // The AUROC is defined only where every image has a label.
  if (summary_.labelled > 0 && summary_.labelled == summary_.images)
    for (std::size_t c = 0; c < auroc_.size(); ++c) summary_.auroc[columns_[c]] = auroc_[c].finish();
  return summary_;
}

ScoreSummary summarize_scores(const ScoreTable& table) {
  std::vector<std::string> scores;
  for (const auto& name : table.value_columns)
    if (name.rfind("tap:", 0) != 0) scores.push_back(name);
  ScoreSummarizer summarizer(scores);
  for (const auto& row : table.rows) summarizer.add(row);
  return summarizer.finish();
}

}  // namespace imagescore
