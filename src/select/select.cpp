#include "imagescore/select/select.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "imagescore/core/text.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore {
namespace {

void check_fraction(const std::string& option, double fraction) {
  if (!(fraction >= 0.0 && fraction <= 1.0)) {
    fail_option(option, "must be between 0 and 1, got " + format_double(fraction));
  }
}

// Per-class tables are sized by the class count.
void check_class_count(std::size_t num_classes) {
  if (num_classes > std::size_t(kMaxClasses))
    fail_option("classes", "must be at most " + std::to_string(kMaxClasses) + ", got " + std::to_string(num_classes));
}

void check_options(const SelectOptions& options, std::size_t num_classes) {
  using Rule = SelectOptions::Rule;
  check_class_count(num_classes);
  if (options.rule == Rule::Fraction) check_fraction("fraction", options.fraction);
  if (options.rule == Rule::Alpha) {
    if (options.global) fail_option("alpha", "gives one fraction per class and cannot be combined with global selection");
    if (options.alpha.size() != num_classes) {
      fail_option("alpha", "expected " + std::to_string(num_classes) + " values (one per class), got " +
                          std::to_string(options.alpha.size()));
    }
    for (double alpha : options.alpha) check_fraction("alpha", alpha);
  }
  if (options.rule == Rule::MinScore && std::isnan(options.min_score)) fail_option("min_score", "must be a number");
}

// Class ids index the per-class tables.
void check_class(const ScoreTable& table, const ScoreRow& row, std::size_t num_classes) {
  if (std::size_t(row.pred) >= num_classes) {
    fail(table.path, "image " + std::to_string(row.id) + " has predicted class " + std::to_string(row.pred) +
                         ", but there are only " + std::to_string(num_classes) + " classes");
  }
}

void check_selected(const std::string& where, const ScoreTable& table, const std::vector<std::size_t>& selected) {
  for (std::size_t index : selected) {
    if (index >= table.rows.size()) fail(where, "selected row " + std::to_string(index) + " does not exist");
  }
}

// Scores must also be ordered: a NaN would break the sort.
void check_rows(const ScoreTable& table, std::size_t column, std::size_t num_classes) {
  for (const ScoreRow& row : table.rows) {
    check_class(table, row, num_classes);
    if (!std::isfinite(row.values[column])) {
      fail(table.path, "image " + std::to_string(row.id) + " has a non-finite " + table.value_columns[column]);
    }
  }
}

// How many of a group's candidates (sorted best first) the rule keeps.
std::size_t kept_count(const std::vector<double>& score, const std::vector<std::size_t>& sorted,
                       const SelectOptions& options, std::size_t group_class) {
  switch (options.rule) {
    case SelectOptions::Rule::Fraction: return count_for_fraction(options.fraction, sorted.size());
    case SelectOptions::Rule::Alpha: return count_for_fraction(options.alpha[group_class], sorted.size());
    case SelectOptions::Rule::Top: return std::min(options.top, sorted.size());
    case SelectOptions::Rule::MinScore:
      return std::size_t(std::find_if(sorted.begin(), sorted.end(), [&](std::size_t i) { return score[i] < options.min_score; }) -
                         sorted.begin());
  }
  return 0;
}

}  // namespace

std::vector<std::size_t> select_positions(const std::vector<double>& score, const std::vector<int>& pred,
                                          const std::vector<std::size_t>& ids, const SelectOptions& options,
                                          std::size_t num_classes) {
  check_options(options, num_classes);
  // One group of positions per predicted class, or a single group when global.
  std::vector<std::vector<std::size_t>> groups(options.global ? 1 : num_classes);
  for (std::size_t i = 0; i < score.size(); ++i) groups[options.global ? 0 : std::size_t(pred[i])].push_back(i);
  auto better = [&](std::size_t a, std::size_t b) {
    if (score[a] != score[b]) return score[a] > score[b];
    return ids[a] < ids[b];
  };
  std::vector<std::size_t> selected;
  for (std::size_t c = 0; c < groups.size(); ++c) {
    std::vector<std::size_t>& group = groups[c];
    std::stable_sort(group.begin(), group.end(), better);
    std::size_t keep = kept_count(score, group, options, c);
    selected.insert(selected.end(), group.begin(), group.begin() + std::ptrdiff_t(keep));
  }
  return selected;
}

std::vector<double> flexmatch_thresholds(const std::vector<double>& score, const std::vector<int>& pred, double tau,
                                         std::size_t num_classes) {
  check_class_count(num_classes);
  if (!(tau >= 0 && tau <= 1)) fail_option("threshold", "FlexMatch needs a threshold in [0, 1], got " + format_double(tau));
  std::vector<double> sigma(num_classes, 0.0);
  double unused = 0;
  for (std::size_t i = 0; i < score.size(); ++i) {
    if (score[i] > tau)
      sigma[std::size_t(pred[i])] += 1;
    else
      unused += 1;
  }
  const double norm = std::max(*std::max_element(sigma.begin(), sigma.end()), unused);
  std::vector<double> thresholds(num_classes, tau);
  if (norm == 0) return thresholds;
  for (std::size_t c = 0; c < num_classes; ++c) {
    const double beta = sigma[c] / norm;
    thresholds[c] = tau * beta / (2 - beta);
  }
  return thresholds;
}

std::vector<std::size_t> select_pseudo_labels(const std::vector<double>& score, const std::vector<int>& pred,
                                              const std::vector<std::size_t>& ids, const PseudoLabelRule& rule,
                                              std::size_t num_classes) {
  SelectOptions ranked;
  if (rule.share) {
    ranked.rule = SelectOptions::Rule::Fraction;
    ranked.fraction = *rule.share;
    ranked.global = true;
  } else {
    ranked.rule = SelectOptions::Rule::Alpha;
    ranked.alpha = rule.alpha;
  }
  auto selected = select_positions(score, pred, ids, ranked, num_classes);
  if (rule.threshold) {
    const auto thresholds = rule.flexmatch ? flexmatch_thresholds(score, pred, *rule.threshold, num_classes)
                                           : std::vector<double>(num_classes, *rule.threshold);
    selected.erase(std::remove_if(selected.begin(), selected.end(),
                                  [&](std::size_t i) { return score[i] < thresholds[std::size_t(pred[i])]; }),
                   selected.end());
  }
  if (rule.max_per_class > 0) {
    // select_positions lists each class best first (globally ranked: best first overall).
    std::vector<std::size_t> kept(num_classes, 0), capped;
    for (std::size_t i : selected)
      if (++kept[std::size_t(pred[i])] <= rule.max_per_class) capped.push_back(i);
    selected = std::move(capped);
  }
  return selected;
}

std::vector<std::size_t> select_rows(const ScoreTable& table, const std::string& column,
                                     const SelectOptions& options, std::size_t num_classes) {
  const std::size_t col = table.column(column);
  check_options(options, num_classes);
  check_rows(table, col, num_classes);
  std::vector<int> pred;
  std::vector<std::size_t> ids;
  for (const auto& row : table.rows) {
    pred.push_back(row.pred);
    ids.push_back(row.id);
  }
  return select_positions(table.values(column), pred, ids, options, num_classes);
}

std::size_t class_count(const ScoreTable& table, const SelectOptions& options) {
  std::size_t count = options.rule == SelectOptions::Rule::Alpha ? options.alpha.size() : 0;
  for (const auto& row : table.rows) count = std::max(count, std::size_t(row.pred) + 1);
  return count;
}

double ClassSelectionStats::precision() const {
  return selected == 0 ? std::numeric_limits<double>::quiet_NaN() : double(correct) / double(selected);
}

SelectionStats selection_stats(const ScoreTable& table, const std::vector<std::size_t>& selected,
                               std::size_t num_classes) {
  check_class_count(num_classes);
  SelectionStats stats;
  stats.per_class.resize(num_classes);
  check_selected(table.path, table, selected);
  for (const ScoreRow& row : table.rows) {
    check_class(table, row, num_classes);
    ++stats.per_class[std::size_t(row.pred)].candidates;
  }
  for (std::size_t index : selected) {
    const ScoreRow& row = table.rows[index];
    ClassSelectionStats& entry = stats.per_class[std::size_t(row.pred)];
    ++entry.selected;
    if (row.label >= 0 && row.label == row.pred) ++entry.correct;
  }
  for (const ClassSelectionStats& entry : stats.per_class) {
    stats.overall.candidates += entry.candidates;
    stats.overall.selected += entry.selected;
    stats.overall.correct += entry.correct;
  }
  return stats;
}

nlohmann::json selection_json(const SelectionStats& stats, bool labels) {
  auto entry = [&](const ClassSelectionStats& s) {
    nlohmann::json j = {{"candidates", s.candidates}, {"selected", s.selected}};
    if (labels) {
      j["correct"] = s.correct;
      j["precision"] = s.selected ? nlohmann::json(s.precision()) : nlohmann::json(nullptr);
    }
    return j;
  };
  // Only the classes with candidates: the class count may come from one stray predicted
  // class id, and a million empty entries help no one.
  nlohmann::json per_class = nlohmann::json::object();
  for (std::size_t c = 0; c < stats.per_class.size(); ++c)
    if (stats.per_class[c].candidates > 0) per_class[std::to_string(c)] = entry(stats.per_class[c]);
  return {{"overall", entry(stats.overall)}, {"per_class", per_class}};
}

std::string selection_csv(const std::string& name, const ScoreTable& table, const std::string& column,
                          const std::vector<std::size_t>& selected) {
  const std::size_t col = table.column(column);
  check_selected(name, table, selected);
  const bool names = !table.class_names.empty();  // every pred of a file with names has one
  std::ostringstream out;
  out << (names ? "id,path,pseudo_label,pseudo_label_name,score\n" : "id,path,pseudo_label,score\n");
  for (std::size_t index : selected) {
    const ScoreRow& row = table.rows[index];
    out << row.id << ',' << csv_field(row.path) << ',' << row.pred << ',';
    if (names) out << csv_field(table.class_names.at(std::size_t(row.pred))) << ',';
    out << format_double(row.values[col]) << '\n';
  }
  return out.str();
}

void write_selection(const std::string& path, const ScoreTable& table, const std::string& column,
                     const std::vector<std::size_t>& selected) {
  write_file_atomic(path, selection_csv(path, table, column, selected));
}

}  // namespace imagescore
