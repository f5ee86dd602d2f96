// Every confidence score the toolkit computes, by the name `score --scores` takes: its
// columns in a scores file, the fitted statistics it needs and what it costs. Higher
// means more trustworthy for every column. Formulas and sources: docs/method.md.
#pragma once

#include <string>
#include <vector>

namespace imagescore {

struct ScoreInfo {
  std::string name;                  // what --scores takes
  std::vector<std::string> columns;  // what it writes
  std::string fit;                   // the fitted statistics it needs: "" (none), "profiles",
                                     // "features", "gaussian" or "nac"
  bool costly = false;               // extra forward passes: computed only on request
  std::string summary;               // one line: what it is, and its cost
};

// In the order of the columns of a scores file.
const std::vector<ScoreInfo>& score_registry();
// Fails (OptionError "scores") on an unknown name, listing the known ones.
const ScoreInfo& score_info(const std::string& name);
// The score whose columns include `column`, or null.
const ScoreInfo* score_of_column(const std::string& column);
// Every column of every score, in registry order (what an arm or a --by may name).
std::vector<std::string> all_score_columns();
// The values a column can take (docs/method.md, section 4b), for checking thresholds;
// infinite where unbounded. The image score's is that of the default overlap (recall).
struct ScoreRange {
  double lowest, highest;
  bool contains(double value) const { return value >= lowest && value <= highest; }
};
ScoreRange column_range(const std::string& column);  // OptionError "scores" on an unknown column

// Names in registry order, without repeats, each checked.
std::vector<std::string> canonical_score_names(const std::vector<std::string>& names);

}  // namespace imagescore
