// Self-training as in the paper's section 3.1 (SPEC section 4): arms that add
// pseudo-labelled images chosen by a score, per-class and joint protocols, resumable
// runs, bootstrap statistics and model assembly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/score/profile.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore {

// A whole experiment; read from a JSON file or a preset (docs/selftrain.md lists the keys).
struct Experiment {
  std::string data = "fashion-mnist";
  double training_fraction = 0.1;        // labelled share of each class (paper: 30,000 / 50,000)
  std::uint64_t split_seed = 0;
  std::size_t pool_limit = 0;            // > 0: use only this many additional images (seeded sample)
  std::string model = "small-cnn";
  int base_epochs = 5;
  int retrain_epochs = 5;
  int selection_interval = 1;            // redo the selection every this many epochs
  TrainOptions train;                    // optimizer, lr, batch size, seed, augmentation
  std::vector<std::string> arms = {"baseline", "softmax", "imagescore"};
  std::vector<double> alpha;             // per class: share of its candidates added
  std::vector<std::string> protocols = {"per-class", "joint"};
  std::vector<int> classes;              // per-class protocol: these classes (empty: all)
  ProfileOptions profile;
  std::vector<std::string> taps;         // empty: all taps
  ImageScoreOptions image_score;
  int keep_checkpoints_every = 0;        // > 0: keep every k-th epoch's checkpoint (assembly)
  std::size_t eval_batch_size = 256;

  // The score column an arm ranks by ("" for baseline).
  static std::string arm_column(const std::string& arm);
  nlohmann::json to_json() const;
};

// Parses an experiment (unknown keys, wrong types and values out of range are errors
// naming `where`). `num_classes` (0: unknown) checks the length of alpha.
Experiment parse_experiment(const nlohmann::json& json, const std::string& where);
Experiment load_experiment(const std::string& path);
// paper-cifar10-vgg16, paper-cifar10-resnet18, fashion-mnist-small
Experiment preset_experiment(const std::string& name);
const std::vector<std::string>& preset_names();

struct SelftrainOptions {
  int threads = 0;
  bool quiet = false;
  int stop_after_epochs = 0;  // > 0: stop (as if killed) after this many trained epochs; for tests
};

// Runs (or resumes) the experiment in `out_dir`. Every epoch's results are appended to
// out_dir/epochs.jsonl as the run goes; checkpoints after every epoch make a rerun of
// the same command resume where it stopped and end with identical results.
void run_selftrain(const Experiment& experiment, const std::string& out_dir, const SelftrainOptions& options);

// One-sided bootstrap test of "mean(a) > mean(b)": both samples are resampled with
// replacement, independently; the p-value is the share of resamples whose difference of
// means is < 0, with differences of exactly 0 counted as one half.
double bootstrap_p_value(const std::vector<double>& a, const std::vector<double>& b, std::size_t resamples,
                         std::uint64_t seed);

struct StatsRow {
  std::string class_name;
  double baseline, train, diff_tb, p_value_tb, softmax, diff_sb, p_value_sb, diff_ts;
};
struct StatsTable {
  std::string protocol;
  std::vector<StatsRow> rows;
  int significant_tb = 0, significant_sb = 0;  // classes with p < 0.05
};
// The paper's tables 1-2 from a run folder: per class, mean test accuracy of each arm over
// the retraining epochs, differences and bootstrap p-values. One table per protocol run.
std::vector<StatsTable> selftrain_stats(const std::string& run_dir, std::size_t resamples, std::uint64_t seed);
std::string stats_markdown(const std::vector<StatsTable>& tables);
std::string stats_csv(const std::vector<StatsTable>& tables);

// The paper's table 3 rule. For image i and model k: labels[k][i] is model k's prediction
// and scores[k][i] its class-k image score. An image labelled k by model k takes label k;
// labelled so by several models, the one with the highest score wins (ties: lowest k);
// labelled so by none, it keeps the base model's prediction.
std::vector<int> assemble_labels(const std::vector<std::vector<int>>& labels,
                                 const std::vector<std::vector<double>>& scores, const std::vector<int>& base);

struct AssemblyResult {
  int epoch = 0;
  double base_accuracy = 0;           // the base model (the fallback)
  double baseline_arm_accuracy = -1;  // the baseline arm at the same epoch (-1: not run)
  double assembled_accuracy = 0;
  std::size_t claimed_by_none = 0, claimed_by_several = 0;
};
// Assembles the per-class image-score models of a run (at `epoch`, 0: the last) on the
// test set, next to the base model.
AssemblyResult assemble_run(const std::string& run_dir, int epoch, const SelftrainOptions& options);

}  // namespace imagescore
