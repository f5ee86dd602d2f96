// Model assembly (the paper's table 3) over the per-class image-score models of a run.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/pipeline/assembly.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore {

std::vector<int> assemble_labels(const std::vector<std::vector<int>>& labels, const std::vector<std::vector<double>>& scores,
                                 const std::vector<int>& base) {
  if (labels.size() != scores.size()) fail("assemble", "one score list per model needed");
  std::vector<int> out = base;
  std::vector<double> best(base.size(), -std::numeric_limits<double>::infinity());
  std::vector<bool> claimed(base.size(), false);
  for (std::size_t k = 0; k < labels.size(); ++k) {
    if (labels[k].size() != base.size() || scores[k].size() != base.size()) fail("assemble", "models disagree on the number of images");
    for (std::size_t i = 0; i < base.size(); ++i) {
      if (labels[k][i] != int(k)) continue;
      // Strictly greater: on a tie the lower class id (earlier model) keeps the image.
      if (!claimed[i] || scores[k][i] > best[i]) {
        claimed[i] = true;
        best[i] = scores[k][i];
        out[i] = int(k);
      }
    }
  }
  return out;
}

AssemblyResult assemble_run(const std::string& run_dir, int epoch, const SelftrainOptions& options) {
  namespace fs = std::filesystem;
  const std::string config_path = run_dir + "/experiment.json";
  if (!fs::exists(config_path)) fail(run_dir, "not a self-training run folder (no experiment.json)");
  auto experiment = load_experiment(config_path);
  if (!experiment.runs(Protocol::PerClass) || !experiment.runs("imagescore"))
    fail(config_path, "assembly needs the per-class protocol with the imagescore arm");
  if (!experiment.classes.empty() && experiment.classes.size() != open_data(experiment.data, SplitName::Test)->class_names().size())
    fail(config_path, "assembly needs a per-class model for every class ('classes' lists only some)");
  if (epoch <= 0) epoch = experiment.retrain_epochs;
  if (epoch > experiment.retrain_epochs) fail_option("epoch", "the run has " + std::to_string(experiment.retrain_epochs) + " epochs");

  auto train_all = open_data(experiment.data, SplitName::Train);
  auto test = open_data(experiment.data, SplitName::Test);
  auto split = load_split(run_dir + "/split.json");
  check_split_matches(split, *train_all, run_dir + "/split.json");
  auto training = subset(*train_all, split.training);
  const std::size_t k_classes = train_all->class_names().size();

  auto checkpoint = [&](const std::string& run, int e) {
    std::string path = run_dir + "/runs/" + run + "/epoch-" + std::to_string(e) + ".safetensors";
    if (!fs::exists(path)) fail(path, "missing: this epoch's checkpoint was not kept (see keep_checkpoints_every)");
    return path;
  };
  // Predictions and image scores of one model on the test set.
  auto score_test = [&](Model& model, std::vector<int>& labels, std::vector<double>& scores) {
    ProfileRunOptions po;
    po.profile = experiment.profile;
    po.taps = experiment.taps;
    po.threads = options.threads;
    po.quiet = true;
    auto profiles = build_profiles(model, *training, po);
    ScoreRunOptions so;
    so.image_score = experiment.image_score;
    so.threads = options.threads;
    so.quiet = true;
    score_images(model, profiles, *test, so, [&](const ScoreRow& row) {
      labels.push_back(row.pred);
      scores.push_back(row.values[0]);
    });
  };

  std::vector<int> truth;  // in the model's class ids, set once the first model is loaded
  auto accuracy = [&](const std::vector<int>& predicted) {
    std::size_t right = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) right += predicted[i] == truth[i];
    return double(right) / double(truth.size());
  };

  AssemblyResult result;
  result.epoch = epoch;
  std::vector<int> base_labels;
  std::vector<double> unused;
  auto base = load_model(checkpoint("base", experiment.base_epochs));
  truth = align_to_model(*base, *test)->labels();
  score_test(*base, base_labels, unused);
  result.base_accuracy = accuracy(base_labels);

  std::vector<std::vector<int>> labels(k_classes);
  std::vector<std::vector<double>> scores(k_classes);
  for (std::size_t k = 0; k < k_classes; ++k) {
    if (!options.quiet) std::fprintf(stderr, "assemble: model of class %zu\n", k);
    auto model = load_model(checkpoint("per-class/imagescore/class" + std::to_string(k), epoch));
    score_test(*model, labels[k], scores[k]);
  }
  auto assembled = assemble_labels(labels, scores, base_labels);
  result.assembled_accuracy = accuracy(assembled);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    int claims = 0;
    for (std::size_t k = 0; k < k_classes; ++k) claims += labels[k][i] == int(k);
    result.claimed_by_none += claims == 0;
    result.claimed_by_several += claims > 1;
  }

  // The baseline arm at the same epoch, from the run's records.
  for (const auto& r : read_epoch_records(run_dir + "/epochs.jsonl"))
    if (r.protocol == Protocol::PerClass && r.arm == "baseline" && r.epoch == epoch)
      result.baseline_arm_accuracy = r.test_accuracy;
  return result;
}

std::vector<AssemblyResult> write_assembly(const std::string& run_dir, const std::vector<int>& epochs,
                                           const SelftrainOptions& options) {
  std::vector<AssemblyResult> results;
  for (int epoch : epochs.empty() ? std::vector<int>{0} : epochs) results.push_back(assemble_run(run_dir, epoch, options));
  write_file_atomic(run_dir + "/assembly.md", assembly_markdown(results));
  write_file_atomic(run_dir + "/assembly.json", assembly_json(results).dump(2) + "\n");
  return results;
}

}  // namespace imagescore
