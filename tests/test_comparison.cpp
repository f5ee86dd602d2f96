// Comparing scores with a baseline: exact values on a hand-made table, paired intervals.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "imagescore/core/runtime.hpp"
#include "imagescore/pipeline/comparison.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

// Two classes, eight images; "good" ranks every right prediction above every wrong one,
// "msp" does not.
ScoreTable hand_table() {
  ScoreTable t;
  t.path = "t.csv";
  t.value_columns = {"msp", "good"};
  const int label[] = {0, 0, 1, 0, 1, 1, 0, 1};
  const int pred[] = {0, 0, 0, 0, 1, 1, 1, 1};
  const double msp[] = {0.9, 0.8, 0.95, 0.6, 0.9, 0.8, 0.95, 0.6};
  const double good[] = {0.9, 0.8, 0.1, 0.6, 0.9, 0.8, 0.1, 0.6};
  for (std::size_t i = 0; i < 8; ++i) t.rows.push_back({i, "x", label[i], pred[i], {msp[i], good[i]}});
  return t;
}

TEST(Comparison, ExactValuesAndPairedIntervals) {
  ComparisonOptions o;
  o.select_fraction = 0.5;  // two of the four candidates of each class
  o.bootstrap.resamples = 300;
  const auto c = compare_scores(hand_table(), {"msp", "good"}, 2, o);
  ASSERT_EQ(c.size(), 2u);
  // msp selects ids 2, 0 (class 0: 0.95, 0.9) and 6, 4 (class 1): two of four are right.
  EXPECT_DOUBLE_EQ(c[0].precision, 0.5);
  EXPECT_DOUBLE_EQ(c[1].precision, 1.0);
  // AUROC: msp ranks the two wrong (0.95) above all six right ones; good the opposite.
  EXPECT_DOUBLE_EQ(c[0].auroc, 0.0 / 12.0 + 0.0);
  EXPECT_DOUBLE_EQ(c[1].auroc, 1.0);
  EXPECT_DOUBLE_EQ(c[1].precision_difference.value, 0.5);
  EXPECT_DOUBLE_EQ(c[0].precision_difference.value, 0.0);
  EXPECT_EQ(c[0].precision_difference.lower, 0.0);  // the baseline against itself
  EXPECT_EQ(c[0].precision_difference.upper, 0.0);
  EXPECT_LE(c[1].precision_difference.lower, 0.5);
  EXPECT_GE(c[1].precision_difference.upper, 0.5);
  EXPECT_TRUE(c[1].beats_baseline_in_auroc());
  // The same for any thread count and seed repeat.
  set_threads(1);
  const auto a = compare_scores(hand_table(), {"msp", "good"}, 2, o);
  set_threads(2);
  const auto b = compare_scores(hand_table(), {"msp", "good"}, 2, o);
  set_threads(0);
  EXPECT_EQ(comparison_json(a, o).dump(), comparison_json(b, o).dump());
  const auto text = comparison_text(a, o);
  // Eight images: the precision interval [0, 1] includes zero, so it is not called a win;
  // the AUROC's does not.
  EXPECT_NE(text.find("Selection precision: no score beat msp (no interval lies above zero); the closest is good at +0.5000"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("AUROC: the best is good, +1.0000 [+1.0000, +1.0000] over msp; 1 score(s) beat msp with intervals above zero: good."),
            std::string::npos)
      << text;
}

TEST(Comparison, SaysPlainlyWhenNothingBeatsTheBaseline) {
  ComparisonOptions o;
  o.select_fraction = 0.5;
  o.bootstrap.resamples = 100;
  auto t = hand_table();
  t.value_columns = {"good", "msp"};  // now "good" is the baseline named msp
  for (auto& row : t.rows) std::swap(row.values[0], row.values[1]);
  const auto text = comparison_text(compare_scores(t, {"good", "msp"}, 2, o), o);
  EXPECT_NE(text.find("Selection precision: no score beat msp"), std::string::npos) << text;
}

TEST(Comparison, BadInput) {
  ComparisonOptions o;
  EXPECT_ERROR_CONTAINS(compare_scores(hand_table(), {"good"}, 2, o), "baseline: 'msp' is not among the compared columns");
  auto unlabelled = hand_table();
  unlabelled.rows[0].label = -1;
  EXPECT_ERROR_CONTAINS(compare_scores(unlabelled, {"msp"}, 2, o), "t.csv: comparing scores needs labelled rows");
  o.bootstrap.confidence = 1;
  EXPECT_ERROR_CONTAINS(compare_scores(hand_table(), {"msp"}, 2, o), "confidence: must be in (0, 1)");
  EXPECT_ERROR_CONTAINS(compare_scores(hand_table(), {"msp"}, 1, ComparisonOptions{}), "t.csv: predicted class 1 out of range");
}

}  // namespace
}  // namespace imagescore
