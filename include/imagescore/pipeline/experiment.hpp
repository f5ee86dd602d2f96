// Self-training experiments (SPEC section 4, docs/selftrain.md): what an experiment file
// or a preset says, with every key checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/score/profile.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/train/selftrain_records.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore {

// How the arms pick pseudo-labels and train on them, beyond the paper's top alpha share
// per class (docs/selftrain.md, "Protocol options"). The defaults are the paper's.
struct PseudoLabelling {
  std::vector<double> curriculum;       // curriculum labelling: the top share of the whole
                                        // pool in each round, growing (replaces alpha)
  bool global_ranking = false;          // rank all candidates together for alpha (one value)
  std::map<std::string, double> threshold;  // per arm: keep scores >= it (FixMatch)
  bool flexmatch = false;               // scale the threshold per class (FlexMatch)
  std::size_t max_per_class = 0;        // > 0: add at most this many per class
  bool reinitialise = false;            // re-initialise the model at every selection
  double weight = 1;                    // loss weight of a pseudo-labelled image
  double batch_share = 0;               // > 0: this share of every batch is pseudo-labelled
  bool soft_targets = false;            // train towards the selecting model's probabilities
  bool paper() const;                   // every option at its default
};

// A whole experiment; read from a JSON file or a preset (docs/selftrain.md lists the keys).
struct Experiment {
  std::string data = "fashion-mnist";
  double training_fraction = 0.1;        // labelled share of each class (paper: 30,000 / 50,000)
  std::uint64_t split_seed = 0;
  double validation_fraction = 0;        // share of each class's labelled images held out
                                         // (never trained on) to choose settings
  std::vector<std::uint64_t> seeds;      // repeats: seed s adds s to split_seed and seed
  std::size_t pool_limit = 0;            // > 0: use only this many additional images (seeded sample)
  std::string model = "small-cnn";
  int base_epochs = 5;
  int retrain_epochs = 5;
  int selection_interval = 1;            // redo the selection every this many epochs
  TrainOptions train;                    // optimizer, lr, batch size, seed, augmentation
  std::vector<Arm> arms = {{"baseline"}, {"softmax"}, {"imagescore"}};
  std::vector<double> alpha;             // per class: share of its candidates added
  std::vector<Protocol> protocols = {Protocol::PerClass, Protocol::Joint};
  std::vector<int> classes;              // per-class protocol: these classes (empty: all)
  ProfileOptions profile;
  std::vector<std::string> taps;         // empty: all taps
  ImageScoreOptions image_score;
  PseudoLabelling pseudo;               // protocol options (defaults: the paper's)
  int keep_checkpoints_every = 0;        // > 0: keep every k-th epoch's checkpoint (assembly)
  std::size_t eval_batch_size = 256;

  bool runs(Protocol protocol) const;
  bool runs(const std::string& arm) const;
  nlohmann::json to_json() const;  // the keys of docs/selftrain.md; new ones only when set
  Experiment for_seed(std::uint64_t seed) const;  // one repeat: no seeds, shifted seeds
};

// Parses an experiment (unknown keys, wrong types and values out of range are errors
// naming `where` and the key).
Experiment parse_experiment(const nlohmann::json& json, const std::string& where);
Experiment load_experiment(const std::string& path);
// The experiment repeated over `seeds` (the command line's --seeds), checked as the key.
Experiment with_seeds(const Experiment& experiment, const std::vector<std::uint64_t>& seeds);
// paper-cifar10-vgg16, paper-cifar10-resnet18, fashion-mnist-small, fashion-mnist-ssl
Experiment preset_experiment(const std::string& name);
const std::vector<std::string>& preset_names();

}  // namespace imagescore
