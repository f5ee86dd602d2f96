// Experiment files and presets for self-training.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <set>
#include <type_traits>

#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/score/scores_table.hpp"
#include "imagescore/pipeline/experiment.hpp"
#include "imagescore/score/registry.hpp"

namespace imagescore {
namespace {

const std::set<std::string> kKeys = {
    "data",      "training_fraction", "split_seed",     "pool_limit", "model",    "base_epochs",
    "retrain_epochs", "selection_interval", "optimizer", "lr",       "momentum", "weight_decay",
    "batch_size", "augment",           "seed",           "arms",       "alpha",    "protocols",
    "classes",   "rho",               "norm",           "scale",      "taps",     "overlap",
    "floor",     "keep_checkpoints_every", "eval_batch_size"};

template <typename T>
T get(const nlohmann::json& j, const char* key, const T& fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  if (!json_converts_to<T>(j.at(key)))
    fail(where, std::string("'") + key + "' has the wrong type (" + j.at(key).dump() + ")");
  return j.at(key).get<T>();
}

}  // namespace

bool Experiment::runs(Protocol protocol) const {
  return std::find(protocols.begin(), protocols.end(), protocol) != protocols.end();
}

bool Experiment::runs(const std::string& arm) const {
  return std::find(arms.begin(), arms.end(), Arm{arm}) != arms.end();
}

nlohmann::json Experiment::to_json() const {
  std::vector<std::string> arm_names, protocol_names;
  for (const auto& arm : arms) arm_names.push_back(arm.name);
  for (Protocol p : protocols) protocol_names.push_back(to_string(p));
  return {{"data", data},
          {"training_fraction", training_fraction},
          {"split_seed", split_seed},
          {"pool_limit", pool_limit},
          {"model", model},
          {"base_epochs", base_epochs},
          {"retrain_epochs", retrain_epochs},
          {"selection_interval", selection_interval},
          {"optimizer", to_string(train.optimizer.kind)},
          {"lr", train.optimizer.learning_rate},
          {"momentum", train.optimizer.momentum},
          {"weight_decay", train.optimizer.weight_decay},
          {"batch_size", train.batch_size},
          {"augment", train.augmentation.any()},
          {"seed", train.seed},
          {"arms", arm_names},
          {"alpha", alpha},
          {"protocols", protocol_names},
          {"classes", classes},
          {"rho", profile.rho},
          {"norm", to_string(profile.norm)},
          {"scale", to_string(profile.scale)},
          {"taps", taps},
          {"overlap", to_string(image_score.overlap)},
          {"floor", image_score.floor},
          {"keep_checkpoints_every", keep_checkpoints_every},
          {"eval_batch_size", eval_batch_size}};
}

Experiment parse_experiment(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "an experiment must be a JSON object");
  for (const auto& item : j.items())
    if (!kKeys.count(item.key())) fail(where, "unknown key '" + item.key() + "'");
  Experiment e;
  e.data = get(j, "data", e.data, where);
  e.training_fraction = get(j, "training_fraction", e.training_fraction, where);
  e.split_seed = get(j, "split_seed", e.split_seed, where);
  e.pool_limit = get(j, "pool_limit", e.pool_limit, where);
  e.model = get(j, "model", e.model, where);
  e.base_epochs = get(j, "base_epochs", e.base_epochs, where);
  e.retrain_epochs = get(j, "retrain_epochs", e.retrain_epochs, where);
  e.selection_interval = get(j, "selection_interval", e.selection_interval, where);
  e.train.optimizer.learning_rate = get(j, "lr", e.train.optimizer.learning_rate, where);
  e.train.optimizer.momentum = get(j, "momentum", e.train.optimizer.momentum, where);
  e.train.optimizer.weight_decay = get(j, "weight_decay", e.train.optimizer.weight_decay, where);
  e.train.batch_size = get(j, "batch_size", e.train.batch_size, where);
  if (get(j, "augment", false, where)) e.train.augmentation = {4, true};
  e.train.seed = get(j, "seed", e.train.seed, where);
  const auto arm_names = get(j, "arms", std::vector<std::string>{"baseline", "softmax", "imagescore"}, where);
  e.alpha = get(j, "alpha", e.alpha, where);
  const auto protocol_names = get(j, "protocols", std::vector<std::string>{"per-class", "joint"}, where);
  e.classes = get(j, "classes", e.classes, where);
  e.profile.rho = get(j, "rho", e.profile.rho, where);
  try {
    e.train.optimizer.kind = parse_optimizer(get(j, "optimizer", std::string("adam"), where));
    e.train.optimizer.validate();
    e.profile.norm = parse_norm(get(j, "norm", std::string("linf"), where));
    e.profile.scale = parse_scale(get(j, "scale", std::string("mean"), where));
    e.image_score.overlap = parse_overlap(get(j, "overlap", std::string("recall"), where));
    e.profile.validate();
    e.arms.clear();
    for (const auto& name : arm_names) e.arms.push_back(parse_arm(name, all_score_columns()));
    e.protocols.clear();
    for (const auto& name : protocol_names) {
      if (name != "per-class" && name != "joint")
        fail_option("protocols", "unknown protocol '" + name + "' (expected per-class or joint)");
      e.protocols.push_back(parse_protocol(name));
    }
  } catch (const OptionError& err) {
    fail(where, "'" + err.field() + "': " + err.problem());
  }
  e.taps = get(j, "taps", e.taps, where);
  e.image_score.floor = get(j, "floor", e.image_score.floor, where);
  e.keep_checkpoints_every = get(j, "keep_checkpoints_every", e.keep_checkpoints_every, where);
  e.eval_batch_size = get(j, "eval_batch_size", e.eval_batch_size, where);

  if (!(e.training_fraction > 0 && e.training_fraction < 1)) fail(where, "'training_fraction' must be in (0, 1)");
  if (e.base_epochs < 1) fail(where, "'base_epochs' must be >= 1");
  if (e.retrain_epochs < 1) fail(where, "'retrain_epochs' must be >= 1");
  if (e.selection_interval < 1) fail(where, "'selection_interval' must be >= 1");
  if (e.train.batch_size == 0 || e.eval_batch_size == 0) fail(where, "batch sizes must be > 0");
  if (!(e.image_score.floor >= 0 && e.image_score.floor <= 1)) fail(where, "'floor' must be in [0, 1]");
  if (e.keep_checkpoints_every < 0) fail(where, "'keep_checkpoints_every' must be >= 0");
  if (e.arms.empty()) fail(where, "'arms' is empty");
  for (const auto& arm : e.arms)
    if (std::count(e.arms.begin(), e.arms.end(), arm) > 1) fail(where, "arm '" + arm.name + "' given twice");
  if (e.protocols.empty()) fail(where, "'protocols' is empty");
  for (double a : e.alpha)
    if (!(a >= 0 && a <= 1)) fail(where, "every 'alpha' must be in [0, 1]");
  for (int c : e.classes)
    if (c < 0) fail(where, "'classes' must be class ids >= 0");
  if (e.alpha.empty()) fail(where, "'alpha' is required (one share per class, or one for all)");
  return e;
}

Experiment load_experiment(const std::string& path) {
  return parse_experiment(read_json_file(path, 1 << 20), path);
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"paper-cifar10-vgg16", "paper-cifar10-resnet18", "fashion-mnist-small"};
  return names;
}

Experiment preset_experiment(const std::string& name) {
  nlohmann::json j;
  if (name == "paper-cifar10-vgg16" || name == "paper-cifar10-resnet18") {
    // The paper's setting: 30,000 of CIFAR-10's 50,000 training images labelled, 100 base
    // epochs, 100 retraining epochs, selection every epoch, Adam. Meant for a GPU.
    const bool vgg = name == "paper-cifar10-vgg16";
    j = {{"data", "cifar10:data/cifar-10-batches-bin"},
         {"training_fraction", 0.6},
         {"model", vgg ? "vgg16" : "resnet18"},
         {"base_epochs", 100},
         {"retrain_epochs", 100},
         {"augment", true},
         {"alpha", vgg ? std::vector<double>{0.3, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3}
                       : std::vector<double>{0.2, 0.3, 0.2, 0.1, 0.2, 0.2, 0.3, 0.2, 0.4, 0.2}},
         {"keep_checkpoints_every", 10}};
  } else if (name == "fashion-mnist-small") {
    // Sized to finish in under 20 minutes on 2 CPU cores.
    j = {{"data", "fashion-mnist"},
         {"training_fraction", 0.05},
         {"pool_limit", 12000},
         {"model", "small-cnn"},
         {"base_epochs", 8},
         {"retrain_epochs", 4},
         {"alpha", {0.3}},
         {"keep_checkpoints_every", 1}};
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    fail_option("preset", "unknown preset '" + name + "' (expected " + known + ")");
  }
  return parse_experiment(j, "preset " + name);
}

}  // namespace imagescore
