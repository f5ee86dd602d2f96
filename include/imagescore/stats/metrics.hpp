// Misclassification-detection metrics of a confidence score: higher score should mean
// "prediction correct". All functions take one score and one correctness flag per image.
#pragma once

#include <cstddef>
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

namespace imagescore {

// P(score of a correct prediction > score of a wrong one), ties counting one half.
// NaN when either group is empty.
double auroc(const std::vector<double>& score, const std::vector<bool>& correct);

// auroc() of a stream of (score, correct) pairs in bounded memory: pairs are sorted in runs
// of `run_size`, which go to one anonymous temporary file once there is more than one,
// and finish() merges them. The value equals auroc() of the same pairs exactly (its rank sums
// are sums of half-integers, exact in a double below 2^52).
class StreamingAuroc {
 public:
  explicit StreamingAuroc(std::size_t run_size = std::size_t(1) << 16);
  ~StreamingAuroc();
  StreamingAuroc(StreamingAuroc&&) noexcept;
  StreamingAuroc& operator=(StreamingAuroc&&) noexcept;
  void add(double score, bool correct);  // fails on a non-finite score
  double finish();                       // NaN when either group is empty

 private:
  void spill();
  std::size_t run_size_;
  std::vector<std::pair<double, bool>> run_;
  struct Spill;
  std::unique_ptr<Spill> spill_;
  std::size_t count_ = 0;
};

// Average precision of detecting errors when ranking by ascending score (errors are the
// positive class). NaN when there is no error.
double aupr_errors(const std::vector<double>& score, const std::vector<bool>& correct);

// Area under the risk-coverage curve: mean over k = 1..n of the error rate among the k
// most confident images (sorted by score descending, ties kept in input order).
// E-AURC subtracts the AURC of an oracle ranking with the same accuracy.
double aurc(const std::vector<double>& score, const std::vector<bool>& correct);
double excess_aurc(const std::vector<double>& score, const std::vector<bool>& correct);

// False-positive rate (wrong predictions accepted) at the threshold that accepts at
// least 95% of the correct predictions. NaN when either group is empty.
double fpr_at_95_tpr(const std::vector<double>& score, const std::vector<bool>& correct);

// Accuracy among the top `fraction` of images by score (count_for_fraction rounding,
// ties broken by position). NaN when that is no image.
double precision_at_top(const std::vector<double>& score, const std::vector<bool>& correct,
                        double fraction);

}  // namespace imagescore
