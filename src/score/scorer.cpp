#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "imagescore/core/error.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/score/registry.hpp"
#include "imagescore/core/names.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/score/score.hpp"

namespace imagescore {

namespace {
const EnumName<Overlap> kOverlapNames[] = {
    {Overlap::Recall, "recall"}, {Overlap::Literal, "literal"}, {Overlap::Jaccard, "jaccard"}};
const EnumName<ProfileChoice> kProfileChoiceNames[] = {
    {ProfileChoice::Predicted, "predicted"}, {ProfileChoice::Label, "label"}, {ProfileChoice::Global, "global"}};
}  // namespace

Overlap parse_overlap(const std::string& name) { return enum_from_name(kOverlapNames, name, "overlap"); }
std::string to_string(Overlap overlap) { return enum_name(kOverlapNames, overlap); }
ProfileChoice parse_profile_choice(const std::string& name) {
  return enum_from_name(kProfileChoiceNames, name == "pred" ? "predicted" : name, "by", "choice");
}
std::string to_string(ProfileChoice choice) { return enum_name(kProfileChoiceNames, choice); }

namespace {

// Neurons with x >= t, and those of them in the bit-packed mask (neuron i in bit i % 8 of
// byte i / 8): 64 neurons at a time, their comparisons gathered into a word and counted
// against 8 mask bytes read as one little-endian word (the compares vectorise; also
// compiled for AVX2, chosen at run time where the CPU has it).
__attribute__((target_clones("avx2", "default"))) std::pair<std::uint64_t, std::uint64_t> count_active(
    const float* __restrict x, const unsigned char* __restrict mask, float t, std::size_t n) {
  std::uint64_t in_image = 0, in_both = 0;
  const std::size_t words = n / 64;
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t on = 0;
    const float* block = x + 64 * w;
    for (unsigned j = 0; j < 64; ++j) on |= std::uint64_t(block[j] >= t) << j;
    std::uint64_t m;
    std::memcpy(&m, mask + 8 * w, 8);
    in_image += std::uint64_t(__builtin_popcountll(on));
    in_both += std::uint64_t(__builtin_popcountll(on & m));
  }
  if (const std::size_t rest = n % 64) {
    std::uint64_t on = 0, m = 0;
    for (std::size_t j = 0; j < rest; ++j) on |= std::uint64_t(x[64 * words + j] >= t) << j;
    std::memcpy(&m, mask + 8 * words, (rest + 7) / 8);
    in_image += std::uint64_t(__builtin_popcountll(on));
    in_both += std::uint64_t(__builtin_popcountll(on & m));
  }
  return {in_image, in_both};
}

}  // namespace

ImageScorer::ImageScorer(const ProfileSet& set, ImageScoreOptions options) : set_(set), options_(options) {
  if (!(options_.floor >= 0 && options_.floor <= 1)) fail_option("floor", "must be in (0, 1] (or 0 for half a neuron)");
}

double ImageScorer::score(std::size_t profile, const std::vector<const float*>& taps, std::vector<double>* terms) const {
  const auto& prof = set_.profiles.at(profile);
  if (terms) terms->assign(prof.taps.size(), 0.0);
  double total = 0;
  for (std::size_t l = 0; l < prof.taps.size(); ++l) {
    const auto& tap = prof.taps[l];
    if (tap.excluded) continue;
    const auto [in_image, in_both] = count_active(taps[l], tap.mask_bytes(), tap.threshold_float, tap.numel());
    const double ref = double(tap.mask_count);
    double overlap = 0;
    switch (options_.overlap) {
      case Overlap::Recall: overlap = double(in_both) / ref; break;
      case Overlap::Literal: overlap = double(in_image) / ref; break;
      case Overlap::Jaccard: overlap = double(in_both) / (double(in_image) + ref - double(in_both)); break;
    }
    const double floor = options_.floor > 0 ? options_.floor : 1.0 / (2.0 * ref);
    const double term = std::log(std::max(overlap, floor));
    if (terms) (*terms)[l] = term;
    total += term;
  }
  return total;
}

Baselines baseline_scores(const float* logits, std::size_t k) {
  Baselines b{};
  std::size_t best = 0;
  for (std::size_t c = 1; c < k; ++c)
    if (logits[c] > logits[best]) best = c;
  const double max_logit = logits[best];
  double z = 0;
  for (std::size_t c = 0; c < k; ++c) z += std::exp(double(logits[c]) - max_logit);
  const double log_z = std::log(z);
  double neg_entropy = 0, first = 0, second = 0, squares = 0;
  for (std::size_t c = 0; c < k; ++c) {
    const double log_p = double(logits[c]) - max_logit - log_z;
    const double p = std::exp(log_p);
    neg_entropy += p * log_p;  // p = 0 contributes 0 (exp underflows before log_p is -inf)
    squares += p * p;
    if (p > first) {
      second = first;
      first = p;
    } else if (p > second) {
      second = p;
    }
  }
  b.pred = int(best);
  b.max_logit = max_logit;
  b.energy = max_logit + log_z;  // logsumexp of the logits (the negative free energy)
  b.msp = std::exp(max_logit - (max_logit + log_z));
  b.margin = k > 1 ? first - second : first;
  b.neg_entropy = neg_entropy;
  b.doctor = squares;
  return b;
}

void ScoreRunOptions::validate() const {
  if (mc_passes < 2 || mc_passes > 1000) fail_option("mc_passes", "must be from 2 to 1000");
  if (tta_passes < 1 || tta_passes > 1000) fail_option("tta_passes", "must be from 1 to 1000");
  if (tta_padding < 0) fail_option("tta_padding", "must be >= 0");
}

std::vector<std::string> scores_to_compute(const ReferenceSet& set, const Model& model, const ScoreRunOptions& options) {
  auto available = [&](const ScoreInfo& info) {
    for (const auto& column : info.columns)
      if (!info.fit.empty() && !set.provider(column)) return false;
    return info.name != "mc_dropout" || model.has_dropout();
  };
  std::vector<std::string> names;
  if (options.scores.empty()) {
    for (const auto& info : score_registry())
      if (!info.costly && available(info)) names.push_back(info.name);
    return names;
  }
  for (const auto& name : canonical_score_names(options.scores)) {
    const ScoreInfo& info = score_info(name);
    if (name == "mc_dropout" && !model.has_dropout())
      fail_option("scores", "mc_dropout needs a model with dropout layers (" + model.meta().arch + " has none)");
    if (!available(info))
      fail_option("scores", "'" + name + "' was not fitted: the reference set has " + [&] {
        std::string have;
        for (const auto& c : set.columns()) have += (have.empty() ? "" : ", ") + c;
        return have;
      }() + " (fit it with `imagescore profile --scores " + name + "`)");
    names.push_back(name);
  }
  return names;
}

std::vector<std::string> score_value_columns(const ReferenceSet& set, const Model& model, const ScoreRunOptions& options) {
  std::vector<std::string> columns;
  const auto names = scores_to_compute(set, model, options);
  for (const auto& name : names) {
    const auto& c = score_info(name).columns;
    columns.insert(columns.end(), c.begin(), c.end());
  }
  const ProfileSet* profiles = set.profiles();
  if (options.per_tap && profiles && std::find(names.begin(), names.end(), "image_score") != names.end())
    for (const auto& name : profiles->tap_names()) columns.push_back("tap:" + name);
  return columns;
}

std::vector<std::string> score_value_columns(const ProfileSet& profiles, bool per_tap) {
  std::vector<std::string> columns = score_columns();
  if (per_tap)
    for (const auto& name : profiles.tap_names()) columns.push_back("tap:" + name);
  return columns;
}

namespace {

// Softmax probability of class c from one image's logits (double, stable).
double probability(const float* logits, std::size_t k, int c) {
  const double top = *std::max_element(logits, logits + k);
  double total = 0;
  for (std::size_t j = 0; j < k; ++j) total += std::exp(double(logits[j]) - top);
  return std::exp(double(logits[std::size_t(c)]) - top) / total;
}

// Everything a run computes for one batch, column by column.
class BatchScorer {
 public:
  BatchScorer(Model& model, const ReferenceSet& set, const ImageSource& source, const ScoreRunOptions& options)
      : model_(model), set_(set), source_(source), options_(options), columns_(score_value_columns(set, model, options)),
        names_(scores_to_compute(set, model, options)), k_(model.meta().num_classes()) {
    if (has("image_score")) {
      profiles_ = set.profiles();
      scorer_ = std::make_unique<ImageScorer>(*profiles_, options.image_score);
      const bool global = profiles_->options.global;
      if (global && options.by != ProfileChoice::Global)
        fail_option("by", "the profile file holds one global profile: score by global");
      if (!global && options.by == ProfileChoice::Global)
        fail_option("by", "the profile file holds per-class profiles, not a global one");
      if (options.by == ProfileChoice::Label && !source.labelled())
        fail(source.spec(), "scoring by label needs labelled images");
      image_taps_ = profiles_->tap_names();
    }
    std::vector<std::string> taps = image_taps_;
    for (const auto& fit : set.fits) {
      if (fit->kind() == "profiles" || wanted(*fit).empty()) continue;
      for (const auto& t : fit->taps())
        if (std::find(taps.begin(), taps.end(), t) == taps.end()) taps.push_back(t);
    }
    tap_ids_ = resolve_taps(model, taps);
    for (auto id : tap_ids_) computed_.push_back(model.taps()[id].name);
    const int side = std::min(model.meta().input.height, model.meta().input.width);
    tta_ = {options.tta_padding > 0 ? options.tta_padding : std::max(1, side / 8), true};
  }

  const std::vector<std::string>& columns() const { return columns_; }

  // The rows of one batch, in batch order.
  void score(const Batch& batch, std::vector<ScoreRow>& rows) {
    const auto out = model_.forward(batch, tap_ids_);
    Activations a{&out, computed_, {}};
    for (auto index : batch.indices) a.ids.push_back(source_.id(index));
    const std::size_t n = out.batch, m = columns_.size();
    std::vector<Baselines> baselines(n);
    std::vector<int> pred(n);
    for (std::size_t i = 0; i < n; ++i) {
      baselines[i] = baseline_scores(&out.logits[i * k_], k_);
      pred[i] = baselines[i].pred;
    }
    std::vector<double> values(n * m, 0.0);
    auto put = [&](const std::string& column, std::size_t i, double v) { values[i * m + index_of(column)] = v; };
    for (const auto& fit : set_.fits) {
      const auto wanted_columns = wanted(*fit);
      if (fit->kind() == "profiles" || wanted_columns.empty()) continue;
      std::vector<double> fitted;
      fit->score(a, pred, wanted_columns, fitted);
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t c = 0; c < wanted_columns.size(); ++c) put(wanted_columns[c], i, fitted[i * wanted_columns.size() + c]);
    }
    if (has("mc_dropout")) monte_carlo_dropout(batch, pred, put);
    if (has("tta")) test_time_augmentation(batch, pred, put);

    rows.resize(n);
    // Images are independent: score them in parallel, then hand them on in order.
    parallel_for(n, 8, [&](std::size_t begin, std::size_t end) {
      std::vector<const float*> tap_rows(image_taps_.size());
      std::vector<double> terms;
      for (std::size_t i = begin; i < end; ++i) {
        ScoreRow& row = rows[i];
        const Baselines& b = baselines[i];
        const auto position = batch.indices[i];
        row.id = source_.id(position);
        row.path = source_.path(position);
        row.label = int(batch.labels[i]);
        row.pred = b.pred;
        const double softmax_scores[] = {b.msp, b.margin, b.neg_entropy, b.energy, b.max_logit, b.doctor};
        const char* softmax_names[] = {"msp", "margin", "neg_entropy", "energy", "max_logit", "doctor"};
        for (std::size_t s = 0; s < 6; ++s)
          if (has(softmax_names[s])) values[i * m + index_of(softmax_names[s])] = softmax_scores[s];
        if (scorer_) {
          for (std::size_t l = 0; l < image_taps_.size(); ++l) tap_rows[l] = a.tap(image_taps_[l]).row(i);
          const bool per_tap = options_.per_tap;
          values[i * m + index_of("image_score")] = scorer_->score(profile_of(row), tap_rows, per_tap ? &terms : nullptr);
          if (per_tap)
            for (std::size_t l = 0; l < terms.size(); ++l) values[i * m + index_of("tap:" + image_taps_[l])] = terms[l];
        }
        row.values.assign(values.begin() + long(i * m), values.begin() + long((i + 1) * m));
        for (double v : row.values)
          if (!std::isfinite(v)) fail(row.path, "a score is not finite (non-finite logits?)");
      }
    });
  }

 private:
  bool has(const std::string& name) const { return std::find(names_.begin(), names_.end(), name) != names_.end(); }

  std::size_t index_of(const std::string& column) const {
    return std::size_t(std::find(columns_.begin(), columns_.end(), column) - columns_.begin());
  }

  // The columns of a fit this run computes.
  std::vector<std::string> wanted(const FittedScore& fit) const {
    std::vector<std::string> out;
    for (const auto& c : fit.columns())
      if (has(score_of_column(c)->name)) out.push_back(c);
    return out;
  }

  std::size_t profile_of(const ScoreRow& row) const {
    if (options_.by == ProfileChoice::Global) return 0;
    if (options_.by == ProfileChoice::Predicted) return std::size_t(row.pred);
    if (row.label < 0 || std::size_t(row.label) >= profiles_->profiles.size())
      fail(row.path, "has no usable label to score by label");
    return std::size_t(row.label);
  }

  // The predicted class's probability with dropout active, pass by pass: its mean and
  // minus its standard deviation (higher: more certain), as Rizve et al. select.
  template <typename Put>
  void monte_carlo_dropout(const Batch& batch, const std::vector<int>& pred, const Put& put) {
    const std::size_t n = batch.size(), t = options_.mc_passes;
    std::vector<double> sum(n, 0.0), squares(n, 0.0);
    for (std::size_t pass = 0; pass < t; ++pass) {
      const auto logits = model_.logits_with_dropout(batch, mix_seed(options_.seed, pass));
      for (std::size_t i = 0; i < n; ++i) {
        const double p = probability(&logits[i * k_], k_, pred[i]);
        sum[i] += p;
        squares[i] += p * p;
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      const double mean = sum[i] / double(t);
      put("mc_dropout", i, mean);
      put("mc_dropout_certainty", i, -std::sqrt(std::max(0.0, squares[i] / double(t) - mean * mean)));
    }
  }

  // The predicted class's mean probability over shifted and flipped copies, each drawn
  // per image from (seed, pass, its position in the source).
  template <typename Put>
  void test_time_augmentation(const Batch& batch, const std::vector<int>& pred, const Put& put) {
    const std::size_t n = batch.size(), pixels = batch.shape.pixels();
    std::vector<double> sum(n, 0.0);
    Batch copy = batch;
    for (std::size_t pass = 0; pass < options_.tta_passes; ++pass) {
      for (std::size_t i = 0; i < n; ++i)
        apply_augmentation(&batch.pixels[i * pixels], &copy.pixels[i * pixels], batch.shape,
                           draw_augmentation(tta_, mix_seed(mix_seed(options_.seed, 1000 + pass), batch.indices[i])));
      const auto logits = model_.forward(copy, {}).logits;
      for (std::size_t i = 0; i < n; ++i) sum[i] += probability(&logits[i * k_], k_, pred[i]);
    }
    for (std::size_t i = 0; i < n; ++i) put("tta", i, sum[i] / double(options_.tta_passes));
  }

  Model& model_;
  const ReferenceSet& set_;
  const ImageSource& source_;
  const ScoreRunOptions& options_;
  std::vector<std::string> columns_, names_;
  std::size_t k_;
  const ProfileSet* profiles_ = nullptr;
  std::unique_ptr<ImageScorer> scorer_;
  std::vector<std::string> image_taps_, computed_;
  std::vector<std::size_t> tap_ids_;
  Augmentation tta_;
};

}  // namespace

std::size_t score_images(Model& model, const ReferenceSet& set, const ImageSource& given, const ScoreRunOptions& options,
                         const std::function<void(const ScoreRow&)>& sink) {
  options.validate();
  const auto aligned = align_to_model(model, given);
  const ImageSource& source = *aligned;
  BatchScorer scorer(model, set, source, options);
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.threads = options.threads;
  BatchLoader loader(source, model.meta().normalization, lo);
  Progress progress("score", loader.num_images(), options.quiet);
  Batch batch;
  std::vector<ScoreRow> rows;
  std::size_t images = 0;
  while (loader.next(batch)) {
    scorer.score(batch, rows);
    set.check_unchanged();  // before any score that may mix two versions of the file leaves
    for (const ScoreRow& row : rows) sink(row);
    images += rows.size();
    progress.advance(rows.size());
  }
  progress.finish();
  return images;
}

std::size_t score_images(Model& model, const ProfileSet& profiles, const ImageSource& source,
                         const ScoreRunOptions& options, const std::function<void(const ScoreRow&)>& sink) {
  ScoreRunOptions o = options;
  o.scores = score_columns();
  return score_images(model, reference_of(profiles), source, o, sink);
}

}  // namespace imagescore
