// A summary of a scores stream: counts, accuracy and how well each score column tells
// right from wrong predictions, in bounded memory.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/score/scores_table.hpp"
#include "imagescore/stats/metrics.hpp"

namespace imagescore {

struct ScoreSummary {
  std::size_t images = 0;
  std::size_t labelled = 0;
  std::size_t correct = 0;
  std::map<std::string, double> auroc;  // per score column, when labels are known
  double accuracy() const;              // NaN without labels
  // {images, labelled[, correct, accuracy][, auroc: {column: value or null}]}
  nlohmann::json to_json() const;
};

// Counts, accuracy and (when every row has a label) the AUROC of each score column, from
// rows as they stream past, in bounded memory (StreamingAuroc).
class ScoreSummarizer {
 public:
  // Summarises the first columns.size() values of each row, named `columns`.
  explicit ScoreSummarizer(std::vector<std::string> columns = score_columns());
  void add(const ScoreRow& row);
  ScoreSummary finish();

 private:
  ScoreSummary summary_;
  std::vector<std::string> columns_;
  std::vector<StreamingAuroc> auroc_;  // one per summarised column
};
// The same for a table in memory, over its score columns (not the per-tap terms).
ScoreSummary summarize_scores(const ScoreTable& table);

}  // namespace imagescore
