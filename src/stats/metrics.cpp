#include "imagescore/stats/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>
#include <queue>
#include <string>
#include <tuple>

#include "imagescore/core/partition.hpp"
#include "imagescore/core/error.hpp"

namespace imagescore {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_inputs(const char* metric, const std::vector<double>& score, const std::vector<bool>& correct) {
  if (score.size() != correct.size()) {
    fail(metric, std::to_string(score.size()) + " scores but " + std::to_string(correct.size()) +
                     " correctness flags");
  }
  for (std::size_t i = 0; i < score.size(); ++i) {
    if (!std::isfinite(score[i])) fail(metric, "score of image " + std::to_string(i) + " is not finite");
  }
}

// Positions sorted by score; equal scores keep their input order.
std::vector<std::size_t> sorted_positions(const std::vector<double>& score, bool descending) {
  std::vector<std::size_t> order(score.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return descending ? score[a] > score[b] : score[a] < score[b];
  });
  return order;
}

// Calls visit(begin, end) for each run [begin, end) of equal scores in `order`.
template <typename Visit>
void for_each_tied_block(const std::vector<double>& score, const std::vector<std::size_t>& order, Visit visit) {
  for (std::size_t begin = 0; begin < order.size();) {
    std::size_t end = begin + 1;
    while (end < order.size() && score[order[end]] == score[order[begin]]) ++end;
    visit(begin, end);
    begin = end;
  }
}

std::size_t count_correct(const std::vector<bool>& correct) {
  return std::size_t(std::count(correct.begin(), correct.end(), true));
}

}  // namespace

double auroc(const std::vector<double>& score, const std::vector<bool>& correct) {
  check_inputs("auroc", score, correct);
  const double n_correct = double(count_correct(correct));
  const double n_wrong = double(score.size()) - n_correct;
  if (n_correct == 0 || n_wrong == 0) return kNaN;
  // Mann-Whitney U from the rank sum of the correct predictions; tied scores share
  // their average rank, which counts each tied pair as one half.
  std::vector<std::size_t> order = sorted_positions(score, false);
  double rank_sum = 0;
  for_each_tied_block(score, order, [&](std::size_t begin, std::size_t end) {
    const double average_rank = double(begin + 1 + end) / 2.0;  // ranks begin+1 .. end
    for (std::size_t k = begin; k < end; ++k) {
      if (correct[order[k]]) rank_sum += average_rank;
    }
  });
  return (rank_sum - n_correct * (n_correct + 1) / 2) / (n_correct * n_wrong);
}

// Sorted runs in one anonymous temporary file (removed when closed), each read back in
// buffered pieces during the merge.
struct StreamingAuroc::Spill {
  struct Record {
    double score;
    std::uint64_t correct;
  };
  struct Cursor {
    std::size_t offset = 0, remaining = 0;  // in records
    std::vector<Record> buffer;
    std::size_t next = 0;
  };
  std::FILE* file = std::tmpfile();
  std::size_t written = 0;
  std::vector<Cursor> runs;
  Spill() {
    if (!file) fail("auroc", "cannot create a temporary file");
  }
  ~Spill() { std::fclose(file); }
  void write(const std::vector<std::pair<double, bool>>& run) {
    std::vector<Record> records;
    records.reserve(run.size());
    for (const auto& [score, correct] : run) records.push_back({score, std::uint64_t(correct)});
    if (std::fwrite(records.data(), sizeof(Record), records.size(), file) != records.size())
      fail("auroc", "cannot write a temporary file (disk full?)");
    runs.push_back({written, records.size(), {}, 0});
    written += records.size();
  }
  // The current record of a run, or nullptr at its end.
  const Record* peek(Cursor& run) {
    if (run.next == run.buffer.size()) {
      if (run.remaining == 0) return nullptr;
      run.buffer.resize(std::min<std::size_t>(run.remaining, 512));
      if (std::fseek(file, long(run.offset * sizeof(Record)), SEEK_SET) != 0 ||
          std::fread(run.buffer.data(), sizeof(Record), run.buffer.size(), file) != run.buffer.size())
        fail("auroc", "cannot read back a temporary file");
      run.offset += run.buffer.size();
      run.remaining -= run.buffer.size();
      run.next = 0;
    }
    return &run.buffer[run.next];
  }
};

StreamingAuroc::StreamingAuroc(std::size_t run_size) : run_size_(std::max<std::size_t>(run_size, 1)) {}
StreamingAuroc::~StreamingAuroc() = default;
StreamingAuroc::StreamingAuroc(StreamingAuroc&&) noexcept = default;
StreamingAuroc& StreamingAuroc::operator=(StreamingAuroc&&) noexcept = default;

void StreamingAuroc::add(double score, bool correct) {
  if (!std::isfinite(score)) fail("auroc", "score of image " + std::to_string(count_) + " is not finite");
  ++count_;
  run_.emplace_back(score, correct);
  if (run_.size() == run_size_) spill();
}

void StreamingAuroc::spill() {
  std::sort(run_.begin(), run_.end());
  if (!spill_) spill_ = std::make_unique<Spill>();
  spill_->write(run_);
  run_.clear();
}

double StreamingAuroc::finish() {
  if (spill_ && !run_.empty()) spill();
  std::sort(run_.begin(), run_.end());
  if (spill_ && std::fflush(spill_->file) != 0) fail("auroc", "cannot write a temporary file (disk full?)");
  // Merges the sorted runs through a min-heap of their current records (or walks the one
  // run in memory), handing out blocks of equal scores: the same rank sum as auroc().
  std::size_t in_memory = 0;
  using Head = std::pair<double, std::size_t>;  // a run's current score, the run
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads;
  if (spill_)
    for (std::size_t r = 0; r < spill_->runs.size(); ++r)
      if (const auto* record = spill_->peek(spill_->runs[r])) heads.emplace(record->score, r);
  auto next_smallest = [&](double& score, bool& correct) {
    if (!spill_) {
      if (in_memory == run_.size()) return false;
      std::tie(score, correct) = run_[in_memory++];
      return true;
    }
    if (heads.empty()) return false;
    auto& run = spill_->runs[heads.top().second];
    heads.pop();
    const auto* record = spill_->peek(run);
    score = record->score;
    correct = record->correct != 0;
    ++run.next;
    if (const auto* following = spill_->peek(run)) heads.emplace(following->score, std::size_t(&run - spill_->runs.data()));
    return true;
  };
  double n_correct = 0, rank_sum = 0;
  std::size_t position = 0;
  double score = 0;
  bool correct = false;
  bool more = next_smallest(score, correct);
  while (more) {
    const double block_score = score;
    const std::size_t begin = position;
    std::size_t block_correct = 0;
    while (more && score == block_score) {
      block_correct += correct;
      ++position;
      more = next_smallest(score, correct);
    }
    rank_sum += double(block_correct) * (double(begin + 1 + position) / 2.0);
    n_correct += double(block_correct);
  }
  spill_.reset();
  run_.clear();
  const double n_wrong = double(position) - n_correct;
  if (n_correct == 0 || n_wrong == 0) return kNaN;
  return (rank_sum - n_correct * (n_correct + 1) / 2) / (n_correct * n_wrong);
}

double aupr_errors(const std::vector<double>& score, const std::vector<bool>& correct) {
  check_inputs("aupr_errors", score, correct);
  const std::size_t n_errors = score.size() - count_correct(correct);
  if (n_errors == 0) return kNaN;
  // Step-wise average precision: the mean, over errors, of the precision at the error's
  // rank (lowest score first). A block of tied scores is one threshold: its precision is
  // taken at the end of the block and every error in it gets that precision. This is
  // what scikit-learn's average_precision_score computes.
  std::vector<std::size_t> order = sorted_positions(score, false);
  std::size_t errors_seen = 0;
  double precision_sum = 0;
  for_each_tied_block(score, order, [&](std::size_t begin, std::size_t end) {
    std::size_t block_errors = 0;
    for (std::size_t k = begin; k < end; ++k) block_errors += correct[order[k]] ? 0 : 1;
    errors_seen += block_errors;
    precision_sum += double(block_errors) * double(errors_seen) / double(end);
  });
  return precision_sum / double(n_errors);
}

double aurc(const std::vector<double>& score, const std::vector<bool>& correct) {
  check_inputs("aurc", score, correct);
  if (score.empty()) return kNaN;
  std::size_t errors = 0;
  double risk_sum = 0;
  std::vector<std::size_t> order = sorted_positions(score, true);
  for (std::size_t k = 0; k < order.size(); ++k) {
    errors += correct[order[k]] ? 0 : 1;
    risk_sum += double(errors) / double(k + 1);
  }
  return risk_sum / double(score.size());
}

double excess_aurc(const std::vector<double>& score, const std::vector<bool>& correct) {
  const double actual = aurc(score, correct);
  // The oracle ranks every correct prediction first: the top k hold max(0, k - n_correct) errors.
  const std::size_t n = score.size(), n_correct = count_correct(correct);
  double oracle_sum = 0;
  for (std::size_t k = n_correct + 1; k <= n; ++k) oracle_sum += double(k - n_correct) / double(k);
  return actual - oracle_sum / double(n);
}

double fpr_at_95_tpr(const std::vector<double>& score, const std::vector<bool>& correct) {
  check_inputs("fpr_at_95_tpr", score, correct);
  std::vector<double> correct_scores, wrong_scores;
  for (std::size_t i = 0; i < score.size(); ++i) (correct[i] ? correct_scores : wrong_scores).push_back(score[i]);
  if (correct_scores.empty() || wrong_scores.empty()) return kNaN;
  // The largest threshold accepting ceil(0.95 n) correct predictions is the score of the
  // ceil(0.95 n)-th best one (integer arithmetic: no rounding surprise at exact multiples).
  const std::size_t needed = (95 * correct_scores.size() + 99) / 100;
  std::nth_element(correct_scores.begin(), correct_scores.begin() + std::ptrdiff_t(needed - 1), correct_scores.end(),
                   std::greater<double>());
  const double threshold = correct_scores[needed - 1];
  const auto accepted =
      std::count_if(wrong_scores.begin(), wrong_scores.end(), [&](double s) { return s >= threshold; });
  return double(accepted) / double(wrong_scores.size());
}

double precision_at_top(const std::vector<double>& score, const std::vector<bool>& correct, double fraction) {
  check_inputs("precision_at_top", score, correct);
  const std::size_t count = count_for_fraction(fraction, score.size());
  if (count == 0) return kNaN;
  std::vector<std::size_t> order = sorted_positions(score, true);
  std::size_t hits = 0;
  for (std::size_t k = 0; k < count; ++k) hits += correct[order[k]] ? 1 : 0;
  return double(hits) / double(count);
}

}  // namespace imagescore
