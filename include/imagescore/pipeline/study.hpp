// The selection study (the main job): split a labelled training set, train on the
// labelled part, build per-class profiles, score the additional part, select the top
// fraction per class by the image score and by every baseline score, and measure how
// right each selection's pseudo-labels are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/pipeline/comparison.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/fusion.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore {

struct StudyOptions {
  std::string data = "fashion-mnist";
  std::string out_dir;
  double labelled_fraction = 0.1;
  // Share of each class of the labelled part held out of training: the learned fusion is
  // fitted there and the best selector chosen there, never on the scored pool (0: none).
  double validation_fraction = 0.1;
  std::vector<std::string> fuse;    // rank fusions to compare too (rank:A+B)
  std::uint64_t seed = 0;
  std::string arch = "small-cnn";
  TrainOptions train;               // for the model trained on the labelled part
  int reference_epochs = 5;         // fully supervised reference model; 0 skips it
  FitOptions fit;                   // the image score's profiles and the other fitted scores
  std::vector<std::string> scores;  // empty: every cheap score
  ImageScoreOptions image_score;
  double select_fraction = 0.3;
  std::size_t resamples = 200;      // of the paired bootstrap against msp
  std::size_t batch_size = 256;     // profile and score passes
  int threads = 0;
  bool quiet = false;
};

struct StudyResult {
  std::vector<std::string> class_names;
  std::vector<std::string> scores;                // score columns compared
  std::size_t training_images = 0, validation_images = 0, additional_images = 0;
  double test_accuracy = 0;                       // model trained on the labelled part
  double additional_accuracy = 0;                 // its pseudo-label accuracy on the additional part
  double reference_test_accuracy = -1;            // fully supervised model (-1: not trained)
  std::vector<std::size_t> candidates;            // per predicted class
  std::vector<std::size_t> selected;              // per predicted class (same for every score)
  std::map<std::string, std::vector<double>> precision;  // score -> per class, then overall last
  std::map<std::string, std::vector<double>> auroc;      // score -> per class, then overall last
  std::vector<std::string> exclusions;
  ComparisonOptions comparison_options;
  std::vector<ScoreComparison> comparisons;       // every score against msp, on the pool
  std::vector<ScoreComparison> validation_comparisons;  // the same on the validation part
  std::string chosen_on_validation;               // the best precision there (empty: no validation)
  LearnedFusion learned;                          // fitted on the validation part
  std::string learned_skipped;                    // why it was not fitted (empty: it was)
  nlohmann::json to_json() const;
};

StudyResult run_study(const StudyOptions& options);

// The comparison tables and a plain verdict, as printed by the main job.
std::string format_study(const StudyResult& result);

}  // namespace imagescore
