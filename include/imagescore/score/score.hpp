// The image score (SPEC section 2, steps 4-6) and the baseline confidence scores
// (SPEC section 3), computed from one forward pass per batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "imagescore/score/fitted.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore {

enum class Overlap { Recall, Literal, Jaccard };
Overlap parse_overlap(const std::string& name);
std::string to_string(Overlap overlap);

// Which profile scores an image.
enum class ProfileChoice { Predicted, Label, Global };
ProfileChoice parse_profile_choice(const std::string& name);
std::string to_string(ProfileChoice choice);

struct ImageScoreOptions {
  Overlap overlap = Overlap::Recall;
  double floor = 0;  // > 0: this floor for every tap; 0: 1 / (2 |M|) (half a neuron)
};

// Scores activations against one profile. Exposed for tests and custom pipelines.
class ImageScorer {
 public:
  // Keeps a reference to `set`, which must outlive the scorer (a temporary cannot bind).
  ImageScorer(const ProfileSet& set, ImageScoreOptions options);
  ImageScorer(ProfileSet&&, ImageScoreOptions) = delete;
  // Score of one image against profile p; taps[l] points at the image's activation of
  // tap l (profile tap order). Per-tap terms (0 for excluded taps) go to `terms` if given.
  double score(std::size_t profile, const std::vector<const float*>& taps, std::vector<double>* terms) const;
  const ProfileSet& profiles() const { return set_; }

 private:
  const ProfileSet& set_;
  ImageScoreOptions options_;
};

struct Baselines {
  double msp, margin, neg_entropy, energy, max_logit;
  double doctor;  // sum of the squared probabilities (Granese et al.'s DOCTOR, D_alpha)
  int pred;
};
// From one image's logits (softmax computed in double, stable).
Baselines baseline_scores(const float* logits, std::size_t num_classes);

struct ScoreRunOptions {
  // Registry names (score/registry.hpp); empty: every cheap score the reference set and
  // the model allow.
  std::vector<std::string> scores;
  ImageScoreOptions image_score;
  ProfileChoice by = ProfileChoice::Predicted;
  bool per_tap = false;
  std::size_t mc_passes = 10;   // Monte Carlo dropout passes
  std::size_t tta_passes = 8;   // test-time augmentation passes
  int tta_padding = 0;          // crop padding of TTA; 0: an eighth of the smaller side, at least 1
  std::uint64_t seed = 0;       // of the dropout masks and the augmentations
  void validate() const;
  std::size_t batch_size = 256;
  int threads = 0;
  bool quiet = false;
};

// The scores a run computes, in registry order: those asked for (each checked: fitted in
// the set, possible with the model), or every cheap one the set and the model allow.
std::vector<std::string> scores_to_compute(const ReferenceSet& set, const Model& model, const ScoreRunOptions& options);
// The value columns a run writes: the columns of scores_to_compute, then "tap:<name>"
// for each image-score tap with per_tap.
std::vector<std::string> score_value_columns(const ReferenceSet& set, const Model& model, const ScoreRunOptions& options);

// Scores every image of `source`, calling `sink` with each row in source order, and
// returns the number of images. Memory does not grow with the number of images.
std::size_t score_images(Model& model, const ReferenceSet& set, const ImageSource& source, const ScoreRunOptions& options,
                         const std::function<void(const ScoreRow&)>& sink);

// With profiles alone: the image score and the five softmax scores of score_columns()
// (whatever options.scores says).
std::size_t score_images(Model& model, const ProfileSet& profiles, const ImageSource& source,
                         const ScoreRunOptions& options, const std::function<void(const ScoreRow&)>& sink);
std::vector<std::string> score_value_columns(const ProfileSet& profiles, bool per_tap);

}  // namespace imagescore
