// Score-based selection of pseudo-labelled images (SPEC section 4).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/score/scores_table.hpp"

namespace imagescore {

struct SelectOptions {
  enum class Rule { Fraction, Alpha, Top, MinScore };
  Rule rule = Rule::Fraction;
  double fraction = 0.3;        // Fraction: share of each class's candidates
  std::vector<double> alpha;    // Alpha: one fraction per class
  std::size_t top = 0;          // Top: this many per class (or overall with global)
  double min_score = 0.0;       // MinScore: every row with score >= min_score
  bool global = false;          // rank all rows together instead of per predicted class
};

// Row positions of the selected rows, ordered by predicted class (or not, when global),
// then score descending, then id ascending (ties are broken by id, deterministically).
// `num_classes` bounds the class ids (alpha must have that many entries).
std::vector<std::size_t> select_rows(const ScoreTable& table, const std::string& column,
                                     const SelectOptions& options, std::size_t num_classes);

// The same on plain arrays (one entry per candidate): positions into them. Scores must be
// finite and every pred below num_classes; ties are broken by ids.
std::vector<std::size_t> select_positions(const std::vector<double>& score, const std::vector<int>& pred,
                                          const std::vector<std::size_t>& ids, const SelectOptions& options,
                                          std::size_t num_classes);

// Self-training's choice of pseudo-labels (docs/selftrain.md, "Protocol options"): the
// top share of the candidates (alpha per predicted class, or `share` of all candidates:
// curriculum labelling), of those the ones scoring at least the threshold (one for all
// classes, FixMatch; or per class, FlexMatch), and at most max_per_class per class.
struct PseudoLabelRule {
  std::vector<double> alpha;        // per class; used when share is unset
  std::optional<double> share;      // the top share of all candidates, ranked together
  std::optional<double> threshold;  // keep scores >= threshold
  bool flexmatch = false;           // per-class thresholds from `threshold` (flexmatch_thresholds)
  std::size_t max_per_class = 0;    // > 0: keep at most this many per predicted class
};
// Positions of the kept candidates, in the order of select_positions (Alpha per class, or
// Fraction global with `share`). Without a threshold or a cap it is exactly that selection.
std::vector<std::size_t> select_pseudo_labels(const std::vector<double>& score, const std::vector<int>& pred,
                                              const std::vector<std::size_t>& ids, const PseudoLabelRule& rule,
                                              std::size_t num_classes);

// FlexMatch's class-adaptive thresholds (Zhang et al. 2021, with its warm-up): with
// sigma_c the candidates predicted c whose score exceeds tau, and u those whose score does
// not, beta_c = sigma_c / max(max_k sigma_k, u) and T_c = tau * beta_c / (2 - beta_c).
// Scores are probabilities (in [0, 1]); a pool with no candidate gives tau for every class.
std::vector<double> flexmatch_thresholds(const std::vector<double>& score, const std::vector<int>& pred, double tau,
                                         std::size_t num_classes);

// The class count a selection uses when none is given: the largest predicted class plus
// one, and at least one per alpha value under the Alpha rule.
std::size_t class_count(const ScoreTable& table, const SelectOptions& options);

struct ClassSelectionStats {
  std::size_t candidates = 0;
  std::size_t selected = 0;
  std::size_t correct = 0;  // selected rows whose pseudo-label equals the true label
  double precision() const;  // NaN when nothing is selected
};
struct SelectionStats {
  std::vector<ClassSelectionStats> per_class;  // by predicted class
  ClassSelectionStats overall;
};
// Requires labels for `correct`; without labels the correct counts stay 0.
SelectionStats selection_stats(const ScoreTable& table, const std::vector<std::size_t>& selected,
                               std::size_t num_classes);

// {candidates, selected[, correct, precision]} overall and per class ("per_class": an
// object keyed by class id, holding the classes with candidates); correct and precision
// only where the table has labels (precision null when nothing is selected).
nlohmann::json selection_json(const SelectionStats& stats, bool labels);

// The text of a selection file: id,path,pseudo_label,score, with pseudo_label_name before
// score where the table has class names. `name` names the selection in errors.
std::string selection_csv(const std::string& name, const ScoreTable& table, const std::string& column,
                          const std::vector<std::size_t>& selected);

// selection_csv written atomically to `path`.
void write_selection(const std::string& path, const ScoreTable& table, const std::string& column,
                     const std::vector<std::size_t>& selected);

}  // namespace imagescore
