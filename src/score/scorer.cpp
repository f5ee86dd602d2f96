#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "imagescore/core/error.hpp"
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

// Neurons with x >= t, and those of them in the mask. Branch-free 32-bit counts so that
// the loop vectorises (a tap has < 2^32 neurons); also compiled for AVX2, chosen at run
// time where the CPU has it.
__attribute__((target_clones("avx2", "default"))) std::pair<std::uint32_t, std::uint32_t> count_active(
    const float* __restrict x, const std::uint8_t* __restrict mask, float t, std::size_t n) {
  std::uint32_t in_image = 0, in_both = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t on = x[i] >= t;
    in_image += on;
    in_both += on & mask[i];
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
    const auto [in_image, in_both] = count_active(taps[l], tap.mask.data(), tap.threshold_float, tap.numel());
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
  double neg_entropy = 0, first = 0, second = 0;
  for (std::size_t c = 0; c < k; ++c) {
    const double log_p = double(logits[c]) - max_logit - log_z;
    const double p = std::exp(log_p);
    neg_entropy += p * log_p;  // p = 0 contributes 0 (exp underflows before log_p is -inf)
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
  return b;
}

std::vector<std::string> score_value_columns(const ProfileSet& profiles, bool per_tap) {
  std::vector<std::string> columns = score_columns();
  if (per_tap)
    for (const auto& name : profiles.tap_names()) columns.push_back("tap:" + name);
  return columns;
}

std::size_t score_images(Model& model, const ProfileSet& profiles, const ImageSource& source,
                         const ScoreRunOptions& options, const std::function<void(const ScoreRow&)>& sink) {
  check_compatible(model, source);
  const bool global = profiles.options.global;
  if (global && options.by != ProfileChoice::Global)
    fail_option("by", "the profile file holds one global profile: score by global");
  if (!global && options.by == ProfileChoice::Global)
    fail_option("by", "the profile file holds per-class profiles, not a global one");
  if (options.by == ProfileChoice::Label && !source.labelled())
    fail(source.spec(), "scoring by label needs labelled images");
  ImageScorer scorer(profiles, options.image_score);
  auto tap_ids = resolve_taps(model, profiles.tap_names());
  const std::size_t k = model.meta().num_classes();
  std::size_t images = 0;

  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.threads = options.threads;
  BatchLoader loader(source, model.meta().normalization, lo);
  Progress progress("score", loader.num_images(), options.quiet);
  Batch batch;
  std::vector<ScoreRow> rows;
  while (loader.next(batch)) {
    auto out = model.forward(batch, tap_ids);
    rows.resize(out.batch);
    // Images are independent: score them in parallel, then hand them on in order.
    parallel_for(out.batch, 8, [&](std::size_t begin, std::size_t end) {
      std::vector<const float*> tap_ptrs(tap_ids.size());
      std::vector<double> terms;
      for (std::size_t i = begin; i < end; ++i) {
        ScoreRow& row = rows[i];
        Baselines b = baseline_scores(&out.logits[i * k], k);
        const auto position = batch.indices[i];
        row.id = source.id(position);
        row.path = source.path(position);
        row.label = int(batch.labels[i]);
        row.pred = b.pred;
        std::size_t profile = 0;
        if (options.by == ProfileChoice::Predicted) profile = std::size_t(b.pred);
        if (options.by == ProfileChoice::Label) {
          if (row.label < 0 || std::size_t(row.label) >= profiles.profiles.size())
            fail(row.path, "has no usable label to score by label");
          profile = std::size_t(row.label);
        }
        for (std::size_t l = 0; l < tap_ids.size(); ++l) tap_ptrs[l] = out.taps[l].row(i);
        double image_score = scorer.score(profile, tap_ptrs, options.per_tap ? &terms : nullptr);
        row.values = {image_score, b.msp, b.margin, b.neg_entropy, b.energy, b.max_logit};
        if (options.per_tap) row.values.insert(row.values.end(), terms.begin(), terms.end());
        for (double v : row.values)
          if (!std::isfinite(v)) fail(row.path, "a score is not finite (non-finite logits?)");
      }
    });
    for (const ScoreRow& row : rows) sink(row);
    images += out.batch;
    progress.advance(out.batch);
  }
  progress.finish();
  return images;
}

}  // namespace imagescore
