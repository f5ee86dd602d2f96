#include "imagescore/stats/metrics.hpp"

#include <cmath>
#include <limits>
#include <random>

#include "test_util.hpp"

namespace imagescore {
namespace {

// Brute-force references, written from the definitions and independent of the library.

double brute_auroc(const std::vector<double>& score, const std::vector<bool>& correct) {
  double wins = 0;
  std::size_t pairs = 0;
  for (std::size_t i = 0; i < score.size(); ++i) {
    for (std::size_t j = 0; j < score.size(); ++j) {
      if (!correct[i] || correct[j]) continue;
      ++pairs;
      wins += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
    }
  }
  return pairs ? wins / double(pairs) : std::nan("");
}

// Each error i counts the precision of the threshold "score <= score[i]".
double brute_aupr_errors(const std::vector<double>& score, const std::vector<bool>& correct) {
  double sum = 0;
  std::size_t errors = 0;
  for (std::size_t i = 0; i < score.size(); ++i) {
    if (correct[i]) continue;
    ++errors;
    std::size_t flagged = 0, flagged_errors = 0;
    for (std::size_t j = 0; j < score.size(); ++j) {
      if (score[j] > score[i]) continue;
      ++flagged;
      flagged_errors += correct[j] ? 0 : 1;
    }
    sum += double(flagged_errors) / double(flagged);
  }
  return errors ? sum / double(errors) : std::nan("");
}

// Position of image i when sorting by score descending, ties in input order.
std::size_t rank_descending(const std::vector<double>& score, std::size_t i) {
  std::size_t rank = 0;
  for (std::size_t j = 0; j < score.size(); ++j) {
    if (score[j] > score[i] || (score[j] == score[i] && j < i)) ++rank;
  }
  return rank;
}

double brute_aurc(const std::vector<double>& score, const std::vector<bool>& correct) {
  double sum = 0;
  for (std::size_t k = 1; k <= score.size(); ++k) {
    std::size_t errors = 0;
    for (std::size_t i = 0; i < score.size(); ++i) {
      if (rank_descending(score, i) < k && !correct[i]) ++errors;
    }
    sum += double(errors) / double(k);
  }
  return sum / double(score.size());
}

double brute_excess_aurc(const std::vector<double>& score, const std::vector<bool>& correct) {
  // The oracle: a score that puts every correct prediction above every wrong one.
  std::vector<double> oracle(score.size());
  for (std::size_t i = 0; i < score.size(); ++i) oracle[i] = correct[i] ? 1.0 : 0.0;
  return brute_aurc(score, correct) - brute_aurc(oracle, correct);
}

double brute_fpr_at_95_tpr(const std::vector<double>& score, const std::vector<bool>& correct) {
  std::size_t n_correct = 0, n_wrong = 0;
  for (bool c : correct) (c ? n_correct : n_wrong) += 1;
  if (!n_correct || !n_wrong) return std::nan("");
  double best = -std::numeric_limits<double>::infinity();
  for (double t : score) {
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < score.size(); ++i) accepted += correct[i] && score[i] >= t;
    if (accepted * 100 >= 95 * n_correct) best = std::max(best, t);
  }
  std::size_t false_positives = 0;
  for (std::size_t i = 0; i < score.size(); ++i) false_positives += !correct[i] && score[i] >= best;
  return double(false_positives) / double(n_wrong);
}

double brute_precision_at_top(const std::vector<double>& score, const std::vector<bool>& correct, std::size_t count) {
  std::size_t hits = 0;
  for (std::size_t i = 0; i < score.size(); ++i) hits += rank_descending(score, i) < count && correct[i];
  return count ? double(hits) / double(count) : std::nan("");
}

TEST(Metrics, HandComputedSmallCase) {
  const std::vector<double> score = {0.9, 0.8, 0.7, 0.6};
  const std::vector<bool> correct = {true, false, true, false};
  // Pairs (correct, wrong): (0.9,0.8) (0.9,0.6) (0.7,0.6) won, (0.7,0.8) lost.
  EXPECT_DOUBLE_EQ(auroc(score, correct), 0.75);
  // Errors ranked by ascending score: 0.6 at rank 1 (precision 1), 0.8 at rank 3 (2/3).
  EXPECT_DOUBLE_EQ(aupr_errors(score, correct), (1.0 + 2.0 / 3) / 2);
  // Error rates of the top k: 0/1, 1/2, 1/3, 2/4.
  EXPECT_DOUBLE_EQ(aurc(score, correct), (0.0 + 1.0 / 2 + 1.0 / 3 + 2.0 / 4) / 4);  // 1/3
  // Oracle: 0, 0, 1/3, 2/4 -> 5/24; excess 1/3 - 5/24 = 1/8.
  EXPECT_DOUBLE_EQ(excess_aurc(score, correct), 0.125);
  // Both correct ones are needed (2 >= 0.95 * 2): threshold 0.7 accepts the wrong 0.8.
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(score, correct), 0.5);
  EXPECT_DOUBLE_EQ(precision_at_top(score, correct, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(precision_at_top(score, correct, 0.25), 1.0);
  EXPECT_DOUBLE_EQ(precision_at_top(score, correct, 0.375), 0.5);  // 1.5 rounds up to 2
  EXPECT_TRUE(std::isnan(precision_at_top(score, correct, 0.1)));  // 0.4 rounds to no image
}

TEST(Metrics, PerfectAndReversedRankings) {
  const std::vector<double> score = {4, 3, 2, 1};
  EXPECT_DOUBLE_EQ(auroc(score, {true, true, false, false}), 1.0);
  EXPECT_DOUBLE_EQ(auroc(score, {false, false, true, true}), 0.0);
  EXPECT_DOUBLE_EQ(excess_aurc(score, {true, true, false, false}), 0.0);
  EXPECT_DOUBLE_EQ(aupr_errors(score, {true, true, false, false}), 1.0);
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(score, {true, true, false, false}), 0.0);
  EXPECT_DOUBLE_EQ(aurc(score, {true, true, true, true}), 0.0);
  EXPECT_DOUBLE_EQ(aurc(score, {false, false, false, false}), 1.0);
}

TEST(Metrics, Ties) {
  const std::vector<double> flat = {0.5, 0.5, 0.5, 0.5};
  EXPECT_DOUBLE_EQ(auroc(flat, {true, false, true, false}), 0.5);
  // One tied block: precision 2/4 for both errors.
  EXPECT_DOUBLE_EQ(aupr_errors(flat, {true, false, true, false}), 0.5);
  // Ties keep their input order: errors 1, 1, 1, 2 in the top 1..4.
  EXPECT_DOUBLE_EQ(aurc(flat, {false, true, true, false}), (1.0 + 1.0 / 2 + 1.0 / 3 + 2.0 / 4) / 4);
  EXPECT_DOUBLE_EQ(aurc(flat, {true, false, true, false}), (0.0 + 1.0 / 2 + 1.0 / 3 + 2.0 / 4) / 4);
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(flat, {true, false, true, false}), 1.0);
  EXPECT_DOUBLE_EQ(precision_at_top(flat, {false, true, true, true}, 0.25), 0.0);  // by position

  const std::vector<double> score = {0.9, 0.7, 0.7, 0.3};
  const std::vector<bool> correct = {true, true, false, false};
  EXPECT_DOUBLE_EQ(auroc(score, correct), 3.5 / 4);
  // 0.3 alone (precision 1), then the block {0.7, 0.7} ending at rank 3 (precision 2/3).
  EXPECT_DOUBLE_EQ(aupr_errors(score, correct), (1.0 + 2.0 / 3) / 2);
}

TEST(Metrics, FprThresholdUsesTheCeilingOf95Percent) {
  // 20 correct scores 1..20: 19 must be accepted, so the threshold is 2.
  std::vector<double> score;
  std::vector<bool> correct;
  for (int s = 1; s <= 20; ++s) {
    score.push_back(s);
    correct.push_back(true);
  }
  for (double s : {1.5, 2.0, 2.5, 25.0}) {
    score.push_back(s);
    correct.push_back(false);
  }
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(score, correct), 0.75);
  // 21 correct: ceil(19.95) = 20 needed, threshold 1 accepts every wrong one.
  score.push_back(0.5);
  correct.push_back(true);
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(score, correct), 1.0);
}

TEST(Metrics, UndefinedCasesAreNaN) {
  EXPECT_TRUE(std::isnan(auroc({0.1, 0.2}, {true, true})));
  EXPECT_TRUE(std::isnan(auroc({0.1, 0.2}, {false, false})));
  EXPECT_TRUE(std::isnan(aupr_errors({0.1, 0.2}, {true, true})));
  EXPECT_TRUE(std::isnan(fpr_at_95_tpr({0.1, 0.2}, {true, true})));
  EXPECT_TRUE(std::isnan(fpr_at_95_tpr({0.1, 0.2}, {false, false})));
  EXPECT_TRUE(std::isnan(aurc({}, {})));
  EXPECT_TRUE(std::isnan(excess_aurc({}, {})));
  EXPECT_TRUE(std::isnan(precision_at_top({}, {}, 0.5)));
  EXPECT_DOUBLE_EQ(aupr_errors({0.1, 0.2}, {false, false}), 1.0);
}

TEST(Metrics, RejectsInconsistentInput) {
  EXPECT_ERROR_CONTAINS(auroc({0.1, 0.2, 0.3}, {true, false}), "auroc: 3 scores but 2 correctness flags");
  EXPECT_ERROR_CONTAINS(aurc({0.1, std::nan("")}, {true, false}), "aurc: score of image 1 is not finite");
  EXPECT_ERROR_CONTAINS(aupr_errors({-std::numeric_limits<double>::infinity()}, {false}),
                        "aupr_errors: score of image 0 is not finite");
  EXPECT_ERROR_CONTAINS(precision_at_top({0.1}, {true}, 2.0), "fraction: must be between 0 and 1");
}

TEST(Metrics, MatchBruteForceOnRandomDataWithTies) {
  std::mt19937_64 rng(20240601);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t n = 1 + rng() % 60;
    const int levels = 1 + int(rng() % 8);  // few distinct scores: many ties
    const double accuracy = double(rng() % 101) / 100;
    std::vector<double> score(n);
    std::vector<bool> correct(n);
    for (std::size_t i = 0; i < n; ++i) {
      score[i] = double(rng() % std::uint64_t(levels)) / 4 - 0.5;
      correct[i] = std::bernoulli_distribution(accuracy)(rng);
    }
    SCOPED_TRACE("trial " + std::to_string(trial) + ", n " + std::to_string(n));
    auto expect_same = [](double actual, double expected) {
      if (std::isnan(expected)) {
        EXPECT_TRUE(std::isnan(actual));
      } else {
        EXPECT_NEAR(actual, expected, 1e-12);
      }
    };
    expect_same(auroc(score, correct), brute_auroc(score, correct));
    expect_same(aupr_errors(score, correct), brute_aupr_errors(score, correct));
    expect_same(aurc(score, correct), brute_aurc(score, correct));
    expect_same(excess_aurc(score, correct), brute_excess_aurc(score, correct));
    expect_same(fpr_at_95_tpr(score, correct), brute_fpr_at_95_tpr(score, correct));
    for (double fraction : {0.1, 0.3, 0.5, 1.0}) {
      const std::size_t count = std::size_t(std::floor(fraction * double(n) + 0.5));
      expect_same(precision_at_top(score, correct, fraction), brute_precision_at_top(score, correct, count));
    }
  }
}

TEST(Metrics, StreamingAurocEqualsAurocWhateverTheRunSize) {
  // Runs of 1, 7 and 64 pairs spill to a temporary file and merge; 1 << 16 stays in memory.
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t n = 1 + rng() % 300;
    const int levels = 1 + int(rng() % 20);
    std::vector<double> score(n);
    std::vector<bool> correct(n);
    for (std::size_t i = 0; i < n; ++i) {
      score[i] = double(rng() % std::uint64_t(levels)) / 8 - 1.0;
      correct[i] = rng() % 3 != 0;
    }
    const double expected = auroc(score, correct);
    for (std::size_t run_size : {std::size_t(1), std::size_t(7), std::size_t(64), std::size_t(1) << 16}) {
      StreamingAuroc streaming(run_size);
      for (std::size_t i = 0; i < n; ++i) streaming.add(score[i], correct[i]);
      const double actual = streaming.finish();
      if (std::isnan(expected)) {
        EXPECT_TRUE(std::isnan(actual));
      } else {
        EXPECT_EQ(actual, expected) << "trial " << trial << ", run size " << run_size;
      }
    }
  }
  StreamingAuroc bad;
  EXPECT_ERROR_CONTAINS(bad.add(std::nan(""), true), "auroc: score of image 0 is not finite");
}

}  // namespace
}  // namespace imagescore
