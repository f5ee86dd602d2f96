// Experiment files and presets for self-training.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <type_traits>

#include "imagescore/core/error.hpp"
#include "imagescore/core/text.hpp"
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
    "floor",     "keep_checkpoints_every", "eval_batch_size", "validation_fraction", "seeds", "curriculum",
    "threshold", "flexmatch", "max_per_class", "reinitialise", "pseudo_weight", "pseudo_batch_share", "soft_targets",
    "global_ranking"};

template <typename T>
T get(const nlohmann::json& j, const char* key, const T& fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  if (!json_converts_to<T>(j.at(key)))
    fail(where, std::string("'") + key + "' has the wrong type (" + j.at(key).dump() + ")");
  return j.at(key).get<T>();
}

// The pseudo-labelling keys (PseudoLabelling), checked against the arms and the batch size.
void parse_pseudo_labelling(const nlohmann::json& j, Experiment& e, const std::string& where) {
  PseudoLabelling& p = e.pseudo;
  p.curriculum = get(j, "curriculum", p.curriculum, where);
  p.flexmatch = get(j, "flexmatch", p.flexmatch, where);
  p.global_ranking = get(j, "global_ranking", p.global_ranking, where);
  if (p.global_ranking && e.alpha.size() != 1)
    fail(where, "'global_ranking' ranks all classes together and needs one 'alpha' value, not " +
                    std::to_string(e.alpha.size()));
  p.max_per_class = get(j, "max_per_class", p.max_per_class, where);
  p.reinitialise = get(j, "reinitialise", p.reinitialise, where);
  p.weight = get(j, "pseudo_weight", p.weight, where);
  p.batch_share = get(j, "pseudo_batch_share", p.batch_share, where);
  p.soft_targets = get(j, "soft_targets", p.soft_targets, where);

  std::vector<const Arm*> selecting;
  for (const Arm& arm : e.arms)
    if (!arm.column().empty()) selecting.push_back(&arm);
  if (j.contains("threshold")) {
    const auto& t = j.at("threshold");
    if (t.is_number()) {
      for (const Arm* arm : selecting) p.threshold[arm->name] = t.get<double>();
    } else if (t.is_object()) {
      for (const auto& item : t.items()) {
        if (std::none_of(selecting.begin(), selecting.end(), [&](const Arm* a) { return a->name == item.key(); }))
          fail(where, "'threshold' names '" + item.key() + "', which is not a selecting arm of 'arms'");
        if (!item.value().is_number()) fail(where, "'threshold' of '" + item.key() + "' must be a number");
        p.threshold[item.key()] = item.value().get<double>();
      }
      for (const Arm* arm : selecting)
        if (!p.threshold.count(arm->name)) fail(where, "'threshold' has no value for arm '" + arm->name + "'");
    } else {
      fail(where, "'threshold' must be a number or an object of numbers per arm (" + t.dump() + ")");
    }
  }
  for (const auto& [arm_name, value] : p.threshold) {
    const std::string column = Arm{arm_name}.column();
    ScoreRange range = column_range(column);
    if (column == "image_score" && e.image_score.overlap == Overlap::Literal) range.highest = std::numeric_limits<double>::infinity();
    if (!range.contains(value))
      fail(where, "'threshold' " + format_double(value) + " of arm '" + arm_name + "' is outside the range of " + column +
                      " ([" + format_double(range.lowest) + ", " + format_double(range.highest) + "])");
    if (p.flexmatch && !(range.lowest >= 0 && range.highest <= 1))
      fail(where, "'flexmatch' scales thresholds on probabilities; " + column + " (arm '" + arm_name +
                      "') is not in [0, 1]");
  }
  if (p.flexmatch && (p.threshold.empty() && !selecting.empty()))
    fail(where, "'flexmatch' needs a 'threshold' (its tau, e.g. 0.95)");

  if (!p.curriculum.empty()) {
    if (j.contains("alpha")) fail(where, "'alpha' and 'curriculum' exclude each other (a curriculum ranks the whole pool)");
    for (std::size_t r = 0; r < p.curriculum.size(); ++r) {
      const double share = p.curriculum[r];
      if (!(share > 0 && share <= 1)) fail(where, "every 'curriculum' share must be in (0, 1], got " + format_double(share));
      if (r > 0 && !(share > p.curriculum[r - 1]))
        fail(where, "'curriculum' must grow: " + format_double(share) + " follows " + format_double(p.curriculum[r - 1]));
    }
    const auto needed = std::size_t(e.selection_interval) * p.curriculum.size();
    if (std::size_t(e.retrain_epochs) != needed)
      fail(where, "'curriculum' has " + std::to_string(p.curriculum.size()) + " rounds of 'selection_interval' " +
                      std::to_string(e.selection_interval) + " epochs = " + std::to_string(needed) +
                      " epochs, but 'retrain_epochs' is " + std::to_string(e.retrain_epochs));
  }
  if (!(p.weight > 0 && std::isfinite(p.weight))) fail(where, "'pseudo_weight' must be a number > 0");
  if (!(p.batch_share >= 0 && p.batch_share < 1)) fail(where, "'pseudo_batch_share' must be in [0, 1)");
  if (p.batch_share > 0) {
    const auto pseudo = std::size_t(std::llround(p.batch_share * double(e.train.batch_size)));
    if (pseudo == 0 || pseudo >= e.train.batch_size)
      fail(where, "'pseudo_batch_share' " + format_double(p.batch_share) + " gives " + std::to_string(pseudo) +
                      " pseudo-labelled images in a batch of " + std::to_string(e.train.batch_size) +
                      " (each batch needs both kinds)");
  }
}

}  // namespace

bool PseudoLabelling::paper() const {
  return curriculum.empty() && !global_ranking && threshold.empty() && !flexmatch && max_per_class == 0 && !reinitialise && weight == 1 &&
         batch_share == 0 && !soft_targets;
}

Experiment Experiment::for_seed(std::uint64_t seed) const {
  Experiment e = *this;
  e.seeds.clear();
  e.split_seed += seed;
  e.train.seed += seed;
  return e;
}

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
  nlohmann::json j = {{"data", data},
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
  // Keys added after 1.0 appear only when set, so that earlier run folders still resume.
  if (validation_fraction > 0) j["validation_fraction"] = validation_fraction;
  if (!seeds.empty()) j["seeds"] = seeds;
  const PseudoLabelling& p = pseudo;
  if (!p.curriculum.empty()) {
    j["curriculum"] = p.curriculum;
    j.erase("alpha");
  }
  if (!p.threshold.empty()) j["threshold"] = p.threshold;
  if (p.global_ranking) j["global_ranking"] = true;
  if (p.flexmatch) j["flexmatch"] = true;
  if (p.max_per_class > 0) j["max_per_class"] = p.max_per_class;
  if (p.reinitialise) j["reinitialise"] = true;
  if (p.weight != 1) j["pseudo_weight"] = p.weight;
  if (p.batch_share > 0) j["pseudo_batch_share"] = p.batch_share;
  if (p.soft_targets) j["soft_targets"] = true;
  return j;
}

Experiment parse_experiment(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "an experiment must be a JSON object");
  for (const auto& item : j.items())
    if (!kKeys.count(item.key())) fail(where, "unknown key '" + item.key() + "'");
  Experiment e;
  e.data = get(j, "data", e.data, where);
  e.training_fraction = get(j, "training_fraction", e.training_fraction, where);
  e.split_seed = get(j, "split_seed", e.split_seed, where);
  e.validation_fraction = get(j, "validation_fraction", e.validation_fraction, where);
  e.seeds = get(j, "seeds", e.seeds, where);
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
  if (!(e.validation_fraction >= 0 && e.validation_fraction < 1)) fail(where, "'validation_fraction' must be in [0, 1)");
  if (j.contains("seeds") && e.seeds.empty()) fail(where, "'seeds' is empty (leave it out for one run)");
  for (std::size_t i = 0; i < e.seeds.size(); ++i)
    if (std::count(e.seeds.begin(), e.seeds.end(), e.seeds[i]) > 1)
      fail(where, "seed " + std::to_string(e.seeds[i]) + " is given twice in 'seeds'");
  try {
    parse_pseudo_labelling(j, e, where);
  } catch (const OptionError& err) {
    fail(where, "'" + err.field() + "': " + err.problem());
  }
  if (!e.pseudo.curriculum.empty()) e.alpha = {1.0};  // unused: the curriculum ranks the whole pool
  if (e.alpha.empty() && !e.pseudo.threshold.empty()) e.alpha = {1.0};  // a threshold alone
  if (e.alpha.empty()) fail(where, "'alpha' is required (one share per class, or one for all), unless a 'threshold' or 'curriculum' is given");
  return e;
}

Experiment load_experiment(const std::string& path) {
  return parse_experiment(read_json_file(path, 1 << 20), path);
}

Experiment with_seeds(const Experiment& experiment, const std::vector<std::uint64_t>& seeds) {
  nlohmann::json j = experiment.to_json();
  j["seeds"] = seeds;
  return parse_experiment(j, "--seeds");
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"paper-cifar10-vgg16", "paper-cifar10-resnet18", "fashion-mnist-small",
                                                 "fashion-mnist-ssl"};
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
  } else if (name == "fashion-mnist-ssl") {
    // Does pseudo-labelling help, and which score selects best (docs/results.md)? The
    // protocol chosen on validation accuracy by scripts/choose_protocol.py (FixMatch's 0.95
    // threshold with soft targets), with the threshold replaced by the share of the pool it
    // kept there (57%), ranked over all classes, so that every score adds as many images
    // and only its ranking differs. 3 seeds, sized for 2 CPU cores.
    j = {{"data", "fashion-mnist"},
         {"training_fraction", 0.05},
         {"validation_fraction", 0.2},
         {"pool_limit", 12000},
         {"model", "small-cnn"},
         {"base_epochs", 8},
         {"retrain_epochs", 4},
         {"protocols", {"joint"}},
         {"arms", {"baseline", "softmax", "imagescore", "margin", "trust"}},
         {"alpha", {0.57}},
         {"global_ranking", true},
         {"soft_targets", true},
         {"seeds", {0, 1, 2}}};
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    fail_option("preset", "unknown preset '" + name + "' (expected " + known + ")");
  }
  return parse_experiment(j, "preset " + name);
}

}  // namespace imagescore
