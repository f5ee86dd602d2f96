#include "imagescore/core/partition.hpp"
#include "imagescore/select/select.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::read_bytes;
using testing::TempDir;

struct Candidate {
  std::size_t id;
  int label;
  int pred;
  double score;
};

// A table with one value column, "msp"; row paths are "img<id>.png".
ScoreTable make_table(const std::vector<Candidate>& candidates) {
  ScoreTable table;
  table.path = "scores.csv";
  table.value_columns = {"energy", "msp"};
  for (const Candidate& c : candidates) {
    ScoreRow row;
    row.id = c.id;
    row.path = "img" + std::to_string(c.id) + ".png";
    row.label = c.label;
    row.pred = c.pred;
    row.values = {-c.score, c.score};
    table.rows.push_back(row);
  }
  return table;
}

std::vector<std::size_t> selected_ids(const ScoreTable& table, const std::vector<std::size_t>& positions) {
  std::vector<std::size_t> ids;
  for (std::size_t i : positions) ids.push_back(table.rows[i].id);
  return ids;
}

std::vector<std::size_t> select_ids(const ScoreTable& table, const SelectOptions& options,
                                    std::size_t num_classes = 3) {
  return selected_ids(table, select_rows(table, "msp", options, num_classes));
}

SelectOptions rule(SelectOptions::Rule kind, bool global = false) {
  SelectOptions options;
  options.rule = kind;
  options.global = global;
  return options;
}

// Class 0: ids 0-3, class 1: ids 10-12, class 2: none. Rows deliberately not sorted.
ScoreTable three_classes() {
  return make_table({{0, 0, 0, 0.2}, {10, 1, 1, 0.9}, {1, 0, 0, 0.8}, {11, 0, 1, 0.5},
                     {2, 1, 0, 0.6}, {12, 1, 1, 0.1}, {3, 0, 0, 0.4}});
}

TEST(Select, CountForFractionRoundsHalvesUp) {
  EXPECT_EQ(count_for_fraction(0.5, 3), 2u);    // 1.5
  EXPECT_EQ(count_for_fraction(0.25, 2), 1u);   // 0.5
  EXPECT_EQ(count_for_fraction(0.25, 6), 2u);   // 1.5
  EXPECT_EQ(count_for_fraction(0.125, 4), 1u);  // 0.5
  EXPECT_EQ(count_for_fraction(0.3, 10), 3u);
  EXPECT_EQ(count_for_fraction(0.3, 20000), 6000u);
  EXPECT_EQ(count_for_fraction(0.4, 1), 0u);
  EXPECT_EQ(count_for_fraction(0.0, 5), 0u);
  EXPECT_EQ(count_for_fraction(1.0, 5), 5u);
  EXPECT_EQ(count_for_fraction(0.5, 0), 0u);
  EXPECT_ERROR_CONTAINS(count_for_fraction(1.5, 4), "fraction: must be between 0 and 1, got 1.5");
  EXPECT_ERROR_CONTAINS(count_for_fraction(std::nan(""), 4), "fraction: must be between 0 and 1");
}

TEST(Select, FractionPerPredictedClass) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::Fraction);
  options.fraction = 0.5;  // class 0: 2 of 4, class 1: 2 of 3 (1.5 rounds up), class 2: 0 of 0
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{1, 2, 10, 11}));
  EXPECT_EQ(select_rows(table, "msp", options, 3), (std::vector<std::size_t>{2, 4, 1, 3}));
  options.fraction = 0.0;
  EXPECT_TRUE(select_ids(table, options).empty());
  options.fraction = 1.0;
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{1, 2, 3, 0, 10, 11, 12}));
  // Another column ranks the other way round.
  options.fraction = 0.25;
  EXPECT_EQ(selected_ids(table, select_rows(table, "energy", options, 3)), (std::vector<std::size_t>{0, 12}));
}

TEST(Select, TiesAreBrokenByIdWhateverTheRowOrder) {
  std::vector<Candidate> candidates = {{7, 0, 0, 0.5}, {3, 0, 0, 0.5}, {9, 0, 0, 0.9},
                                       {1, 0, 0, 0.5}, {4, 0, 0, 0.5}, {2, 0, 0, 0.1}};
  SelectOptions options = rule(SelectOptions::Rule::Top);
  options.top = 3;
  const std::vector<std::size_t> expected = {9, 1, 3};
  EXPECT_EQ(select_ids(make_table(candidates), options, 1), expected);
  std::reverse(candidates.begin(), candidates.end());
  EXPECT_EQ(select_ids(make_table(candidates), options, 1), expected);
  std::rotate(candidates.begin(), candidates.begin() + 2, candidates.end());
  EXPECT_EQ(select_ids(make_table(candidates), options, 1), expected);
}

TEST(Select, AlphaGivesEachClassItsOwnFraction) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::Alpha);
  options.alpha = {0.75, 1.0 / 3, 0.5};
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{1, 2, 3, 10}));
  options.alpha = {0.0, 1.0, 1.0};
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{10, 11, 12}));
}

TEST(Select, TopPerClassAndOverall) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::Top);
  options.top = 1;
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{1, 10}));
  options.top = 10;  // more than there are
  EXPECT_EQ(select_ids(table, options).size(), 7u);
  options = rule(SelectOptions::Rule::Top, true);
  options.top = 3;
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{10, 1, 2}));
}

TEST(Select, MinScoreKeepsEveryRowAtOrAboveIt) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::MinScore);
  options.min_score = 0.5;  // 0.5 itself is kept
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{1, 2, 10, 11}));
  options.global = true;
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{10, 1, 2, 11}));
  options.min_score = 2.0;
  EXPECT_TRUE(select_ids(table, options).empty());
}

TEST(Select, GlobalFractionRanksAllRowsTogether) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::Fraction, true);
  options.fraction = 0.5;  // 3.5 of 7 rounds up to 4
  EXPECT_EQ(select_ids(table, options), (std::vector<std::size_t>{10, 1, 2, 11}));
}

TEST(Select, RejectsBadOptions) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::Fraction);
  options.fraction = 1.5;
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", options, 3), "fraction: must be between 0 and 1, got 1.5");
  options.fraction = -0.1;
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", options, 3), "fraction: must be between 0 and 1, got -0.1");

  options = rule(SelectOptions::Rule::Alpha);
  options.alpha = {0.5, 0.5};
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", options, 3), "alpha: expected 3 values (one per class), got 2");
  options.alpha = {0.5, 2.0, 0.5};
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", options, 3), "alpha: must be between 0 and 1, got 2");
  options.alpha = {0.5, 0.5, 0.5};
  options.global = true;
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", options, 3), "alpha: gives one fraction per class");

  options = rule(SelectOptions::Rule::MinScore);
  options.min_score = std::nan("");
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", options, 3), "min_score: must be a number");

  EXPECT_ERROR_CONTAINS(select_rows(table, "nope", rule(SelectOptions::Rule::Fraction), 3),
                        "scores.csv: no column 'nope'");
}

TEST(Select, RejectsClassesOutOfRangeAndNonFiniteScores) {
  ScoreTable table = three_classes();
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", rule(SelectOptions::Rule::Fraction), 1),
                        "scores.csv: image 10 has predicted class 1, but there are only 1 classes");
  EXPECT_ERROR_CONTAINS(selection_stats(table, {}, 1), "scores.csv: image 10 has predicted class 1");
  table.rows[3].values[1] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", rule(SelectOptions::Rule::Fraction), 3),
                        "scores.csv: image 11 has a non-finite msp");
}

TEST(Select, StatsCountCandidatesSelectedAndCorrect) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::Fraction);
  options.fraction = 0.5;
  SelectionStats stats = selection_stats(table, select_rows(table, "msp", options, 3), 3);
  ASSERT_EQ(stats.per_class.size(), 3u);
  // Class 0 selects ids 1 (label 0) and 2 (label 1); class 1 selects 10 (label 1) and 11 (label 0).
  EXPECT_EQ(stats.per_class[0].candidates, 4u);
  EXPECT_EQ(stats.per_class[0].selected, 2u);
  EXPECT_EQ(stats.per_class[0].correct, 1u);
  EXPECT_DOUBLE_EQ(stats.per_class[0].precision(), 0.5);
  EXPECT_EQ(stats.per_class[1].candidates, 3u);
  EXPECT_EQ(stats.per_class[1].selected, 2u);
  EXPECT_EQ(stats.per_class[1].correct, 1u);
  EXPECT_EQ(stats.per_class[2].candidates, 0u);
  EXPECT_EQ(stats.per_class[2].selected, 0u);
  EXPECT_TRUE(std::isnan(stats.per_class[2].precision()));
  EXPECT_EQ(stats.overall.candidates, 7u);
  EXPECT_EQ(stats.overall.selected, 4u);
  EXPECT_EQ(stats.overall.correct, 2u);
  EXPECT_DOUBLE_EQ(stats.overall.precision(), 0.5);

  options.fraction = 0.25;  // ids 1 and 10: both right
  stats = selection_stats(table, select_rows(table, "msp", options, 3), 3);
  EXPECT_DOUBLE_EQ(stats.per_class[0].precision(), 1.0);
  EXPECT_DOUBLE_EQ(stats.overall.precision(), 1.0);
  EXPECT_ERROR_CONTAINS(selection_stats(table, {7}, 3), "scores.csv: selected row 7 does not exist");
}

TEST(Select, StatsWithoutLabelsCountNothingCorrect) {
  ScoreTable table = make_table({{0, -1, 0, 0.9}, {1, -1, 1, 0.8}});
  SelectionStats stats = selection_stats(table, {0, 1}, 2);
  EXPECT_EQ(stats.overall.selected, 2u);
  EXPECT_EQ(stats.overall.correct, 0u);
}

TEST(Select, ClassCountIsTheLargestPredictionOrAlphasLength) {
  ScoreTable table = make_table({{0, 0, 0, 0.9}, {1, 2, 4, 0.8}});
  SelectOptions options = rule(SelectOptions::Rule::Fraction);
  EXPECT_EQ(class_count(table, options), 5u);
  options = rule(SelectOptions::Rule::Alpha);
  options.alpha = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7};
  EXPECT_EQ(class_count(table, options), 7u);
  options.alpha = {0.1};
  EXPECT_EQ(class_count(table, options), 5u);
}

TEST(Select, SummaryGivesPrecisionOnlyWithLabels) {
  ScoreTable table = three_classes();
  SelectOptions options = rule(SelectOptions::Rule::Fraction);
  options.fraction = 0.5;
  const SelectionStats stats = selection_stats(table, select_rows(table, "msp", options, 3), 3);
  const nlohmann::json with = selection_json(stats, true);
  EXPECT_EQ(with["overall"].dump(), R"({"candidates":7,"correct":2,"precision":0.5,"selected":4})");
  // Per class: the classes with candidates only (class 2 has none).
  ASSERT_EQ(with["per_class"].size(), 2u);
  EXPECT_FALSE(with["per_class"].contains("2"));
  EXPECT_EQ(with["per_class"]["0"]["candidates"], 4);
  // A class with candidates and nothing selected has precision null.
  SelectOptions none = rule(SelectOptions::Rule::Top);
  none.top = 0;
  const nlohmann::json empty = selection_json(selection_stats(table, select_rows(table, "msp", none, 3), 3), true);
  EXPECT_EQ(empty["per_class"]["1"].dump(), R"({"candidates":3,"correct":0,"precision":null,"selected":0})");
  EXPECT_EQ(selection_json(stats, false)["overall"].dump(), R"({"candidates":7,"selected":4})");
}

TEST(Select, RefusesClassCountsAboveTheLimit) {
  ScoreTable table = three_classes();
  EXPECT_ERROR_CONTAINS(select_rows(table, "msp", rule(SelectOptions::Rule::Fraction), 2000000),
                        "classes: must be at most 1000000, got 2000000");
  EXPECT_ERROR_CONTAINS(selection_stats(table, {}, 2000000), "classes: must be at most 1000000, got 2000000");
}

TEST(Select, WritesTheSelection) {
  TempDir dir;
  const std::string path = dir.file("selected.csv");
  ScoreTable table = make_table({{4, 1, 1, 0.1 + 0.2}, {5, 0, 2, -1.5}});
  table.rows[1].path = "a,\"b\".png";
  write_selection(path, table, "msp", {1, 0});
  EXPECT_EQ(read_bytes(path),
            "id,path,pseudo_label,score\n"
            "5,\"a,\"\"b\"\".png\",2,-1.5\n"
            "4,img4.png,1,0.30000000000000004\n");
  EXPECT_ERROR_CONTAINS(write_selection(path, table, "nope", {0}), "scores.csv: no column 'nope'");
  EXPECT_ERROR_CONTAINS(write_selection(path, table, "msp", {2}), path + ": selected row 2 does not exist");
  EXPECT_ERROR_CONTAINS(write_selection(dir.file("missing/selected.csv"), table, "msp", {0}), "does not exist");
}


// Array selection is what select_rows does on a table.
TEST(Select, PositionsOnArraysMatchTheTable) {
  const std::vector<double> score = {0.9, 0.1, 0.5, 0.5, 0.7, 0.2};
  const std::vector<int> pred = {0, 0, 0, 1, 1, 1};
  const std::vector<std::size_t> ids = {10, 11, 12, 13, 14, 15};
  SelectOptions o;
  o.fraction = 0.5;  // round(1.5) = 2 of each class
  EXPECT_EQ(select_positions(score, pred, ids, o, 2), (std::vector<std::size_t>{0, 2, 4, 3}));
  o.global = true;
  o.fraction = 0.5;
  EXPECT_EQ(select_positions(score, pred, ids, o, 2), (std::vector<std::size_t>{0, 4, 2}));
  // Ties are broken by id, whatever the order of the arrays.
  EXPECT_EQ(select_positions({0.5, 0.5}, {0, 0}, {7, 3}, SelectOptions{SelectOptions::Rule::Top, 0.3, {}, 1, 0.0, false}, 1),
            (std::vector<std::size_t>{1}));
}

// Six candidates of three predicted classes, worked by hand.
TEST(PseudoLabels, SharesThresholdsCapsAndFlexMatch) {
  const std::vector<double> score = {0.99, 0.97, 0.60, 0.96, 0.50, 0.40};
  const std::vector<int> pred = {0, 0, 0, 1, 1, 2};
  const std::vector<std::size_t> ids = {0, 1, 2, 3, 4, 5};
  auto pick = [&](PseudoLabelRule rule) { return select_pseudo_labels(score, pred, ids, rule, 3); };
  using V = std::vector<std::size_t>;
  PseudoLabelRule rule;
  rule.alpha = {0.5, 0.5, 0.5};
  // Alpha alone is the Alpha selection: half of 3, 2 and 1 candidates, rounded half up.
  EXPECT_EQ(pick(rule), (V{0, 1, 3, 5}));
  SelectOptions alpha;
  alpha.rule = SelectOptions::Rule::Alpha;
  alpha.alpha = rule.alpha;
  EXPECT_EQ(pick(rule), select_positions(score, pred, ids, alpha, 3));
  rule.threshold = 0.95;  // FixMatch-style, together with the share
  EXPECT_EQ(pick(rule), (V{0, 1, 3}));
  rule.alpha = {1, 1, 1};
  rule.threshold.reset();
  rule.max_per_class = 1;  // the best of each class
  EXPECT_EQ(pick(rule), (V{0, 3, 5}));
  rule.max_per_class = 0;
  rule.share = 0.5;  // curriculum: the top half of all six, ranked together
  EXPECT_EQ(pick(rule), (V{0, 1, 3}));
  rule.share = 0.34;  // 2.04 images: 2
  EXPECT_EQ(pick(rule), (V{0, 1}));
  rule.share.reset();

  // FlexMatch, tau 0.95: sigma = (2, 1, 0) above tau, 3 not; beta = sigma / max(2, 3);
  // T_c = 0.95 beta / (2 - beta) = 0.475, 0.19 and 0 (the warm-up lowers every class).
  const auto t = flexmatch_thresholds(score, pred, 0.95, 3);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_DOUBLE_EQ(t[0], 0.475);
  EXPECT_DOUBLE_EQ(t[1], 0.19);
  EXPECT_DOUBLE_EQ(t[2], 0.0);
  rule.threshold = 0.95;
  rule.flexmatch = true;
  EXPECT_EQ(pick(rule), (V{0, 1, 2, 3, 4, 5}));
  // Past the warm-up (most candidates above tau) the best-learned class keeps tau.
  const std::vector<double> confident = {0.99, 0.98, 0.97, 0.96, 0.2};
  const auto late = flexmatch_thresholds(confident, {0, 0, 0, 1, 1}, 0.9, 2);
  EXPECT_DOUBLE_EQ(late[0], 0.9);                       // beta 1
  EXPECT_DOUBLE_EQ(late[1], 0.9 * (1.0 / 3) / (2 - 1.0 / 3));  // beta 1/3
  EXPECT_EQ(flexmatch_thresholds({}, {}, 0.9, 2), (std::vector<double>{0.9, 0.9}));
  EXPECT_ERROR_CONTAINS(flexmatch_thresholds(score, pred, 1.5, 3), "threshold: FlexMatch needs a threshold in [0, 1]");
}

}  // namespace
}  // namespace imagescore
