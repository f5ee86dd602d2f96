// The self-training runner: base training, then each arm's retraining runs, with a
// checkpoint after every epoch so that an interrupted run resumes exactly.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "imagescore/core/random.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/select/select.hpp"
#include "imagescore/pipeline/selftrain.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore {
namespace fs = std::filesystem;
namespace {

using json = nlohmann::json;

// A pseudo-labelled selection from the additional pool: positions in the training set.
struct Selection {
  std::vector<std::size_t> ids;
  std::vector<int> labels;
  std::size_t correct = 0;
};

struct Context {
  Experiment e;
  std::string dir;
  SelftrainOptions o;
  std::unique_ptr<ImageSource> train_all, test;
  std::unique_ptr<ImageSource> training, pool;
  std::size_t num_classes = 0;
  std::vector<double> alpha;  // one per class
  int trained_this_session = 0;
};

// Thrown by the test hook that stops a run as if it had been killed.
struct Stopped : Error {
  using Error::Error;
};

std::string run_folder(const Context& c, const std::string& protocol, const std::string& arm, int cls) {
  std::string name = protocol + "/" + arm;
  if (cls >= 0) name += "/class" + std::to_string(cls);
  return c.dir + "/runs/" + name;
}

json evaluation_record(Context& c, Model& model, const std::string& protocol, const std::string& arm, int cls, int epoch,
                       const Selection* added) {
  auto ev = evaluate(model, *c.test, c.e.eval_batch_size, c.o.threads, true);
  json per_class = json::array();
  for (double a : ev.per_class_accuracy) per_class.push_back(std::isnan(a) ? json(nullptr) : json(a));
  json r = {{"protocol", protocol},
            {"arm", arm},
            {"class", cls >= 0 ? json(cls) : json(nullptr)},
            {"epoch", epoch},
            {"test_accuracy", ev.accuracy},
            {"per_class_accuracy", per_class},
            {"added", added ? added->ids.size() : 0},
            {"added_correct", added ? json(added->correct) : json(nullptr)},
            {"added_precision", added && !added->ids.empty() ? json(double(added->correct) / double(added->ids.size())) : json(nullptr)}};
  return r;
}

Selection select_pseudo_labels(Context& c, Model& model, const std::string& arm, int cls) {
  const std::string column = Experiment::arm_column(arm);
  // Profiles are needed only by the image score; other arms use a one-tap profile
  // (the cheapest pass that score_images accepts).
  ProfileRunOptions po;
  po.profile = c.e.profile;
  po.taps = column == "image_score" ? c.e.taps : std::vector<std::string>{"output"};
  po.batch_size = c.e.eval_batch_size;
  po.threads = c.o.threads;
  po.quiet = true;
  auto profiles = build_profiles(model, *c.training, po);
  ScoreRunOptions so;
  so.image_score = c.e.image_score;
  so.batch_size = c.e.eval_batch_size;
  so.threads = c.o.threads;
  so.quiet = true;
  ScoreTable table;
  table.path = "additional pool";
  table.value_columns = score_columns();
  score_images(model, profiles, *c.pool, so, [&](const ScoreRow& row) { table.rows.push_back(row); });
  SelectOptions sel;
  sel.rule = SelectOptions::Rule::Alpha;
  sel.alpha = c.alpha;
  Selection s;
  for (auto row_index : select_rows(table, column, sel, c.num_classes)) {
    const auto& row = table.rows[row_index];
    if (cls >= 0 && row.pred != cls) continue;  // per-class protocol: only class-c candidates
    s.ids.push_back(row.id);
    s.labels.push_back(row.pred);
    s.correct += row.label == row.pred;
  }
  return s;
}

// Rewrites epochs.jsonl from every run's state, in a fixed order (atomically).
void write_epochs_file(const Context& c, const std::vector<std::string>& run_dirs) {
  std::string lines;
  for (const auto& dir : run_dirs) {
    const std::string state = dir + "/state.json";
    if (!fs::exists(state)) continue;
    const json run = read_json_file(state);
    for (const auto& record : run.at("records")) lines += record.dump() + "\n";
  }
  write_file_atomic(c.dir + "/epochs.jsonl", lines);
}

std::string checkpoint(const std::string& dir, int epoch) { return dir + "/epoch-" + std::to_string(epoch) + ".safetensors"; }
std::string optimizer_state(const std::string& dir, int epoch) { return dir + "/optimizer-" + std::to_string(epoch) + ".pt"; }

// Trains one run epoch by epoch from `start_model` (a checkpoint path, or "" for a fresh
// model). Resumes from the run's state.json when present.
void execute_run(Context& c, const std::string& dir, const std::string& start_model, const std::string& protocol,
                 const std::string& arm, int cls, int epochs, int seed_offset, const std::vector<std::string>& all_runs) {
  make_directories(dir);
  const std::string state_path = dir + "/state.json";
  json state = fs::exists(state_path) ? read_json_file(state_path) : json{{"epoch", 0}, {"records", json::array()}, {"selection", nullptr}};
  int done = state.at("epoch").get<int>();
  if (done >= epochs) return;

  std::unique_ptr<TrainableModel> model;
  if (done > 0) {
    model = load_trainable_model(checkpoint(dir, done));
  } else if (!start_model.empty()) {
    model = load_trainable_model(start_model);
  } else {
    model = create_model(c.e.model, c.training->shape(), c.train_all->class_names(),
                         compute_normalization(*c.training, c.o.threads), c.e.train.seed);
  }
  TrainOptions to = c.e.train;
  to.threads = c.o.threads;
  to.quiet = c.o.quiet;
  Trainer trainer(*model, to);
  if (done > 0) trainer.load_state(optimizer_state(dir, done));
  if (done == 0 && protocol != "base") {
    // Every retraining curve starts at the base model.
    state["records"].push_back(evaluation_record(c, *model, protocol, arm, cls, 0, nullptr));
  }

  const std::string column = Experiment::arm_column(arm);
  Selection selection;
  if (!state.at("selection").is_null()) {
    selection.ids = state["selection"].at("ids").get<std::vector<std::size_t>>();
    selection.labels = state["selection"].at("labels").get<std::vector<int>>();
    selection.correct = state["selection"].at("correct").get<std::size_t>();
  }
  for (int epoch = done + 1; epoch <= epochs; ++epoch) {
    if (!c.o.quiet)
      std::fprintf(stderr, "== %s %s%s: epoch %d/%d\n", protocol.c_str(), arm.c_str(),
                   cls >= 0 ? (" class " + std::to_string(cls)).c_str() : "", epoch, epochs);
    const bool selecting = protocol != "base" && !column.empty();
    if (selecting && (epoch - 1) % c.e.selection_interval == 0) selection = select_pseudo_labels(c, *model, arm, cls);
    // The training set: the labelled part with its labels, plus the selection with its
    // pseudo-labels.
    std::vector<std::size_t> ids(c.training->size());
    std::vector<int> labels(c.training->size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      ids[i] = c.training->id(i);
      labels[i] = c.training->label(i);
    }
    ids.insert(ids.end(), selection.ids.begin(), selection.ids.end());
    labels.insert(labels.end(), selection.labels.begin(), selection.labels.end());
    auto data = relabel(*c.train_all, std::move(ids), std::move(labels));
    trainer.train_epoch(*data, seed_offset + epoch);
    state["records"].push_back(evaluation_record(c, *model, protocol, arm, cls, epoch, selecting ? &selection : nullptr));

    // Checkpoint, then the state that points at it: a kill between the two leaves the
    // previous state, whose checkpoint is still there.
    save_model(*model, checkpoint(dir, epoch));
    trainer.save_state(optimizer_state(dir, epoch));
    state["epoch"] = epoch;
    state["selection"] = {{"ids", selection.ids}, {"labels", selection.labels}, {"correct", selection.correct}};
    write_file_atomic(state_path, state.dump() + "\n");
    const int keep = c.e.keep_checkpoints_every;
    const int previous = epoch - 1;
    if (previous > 0 && !(keep > 0 && previous % keep == 0)) {
      fs::remove(checkpoint(dir, previous));
    }
    if (previous > 0) fs::remove(optimizer_state(dir, previous));
    write_epochs_file(c, all_runs);
    if (c.o.stop_after_epochs > 0 && ++c.trained_this_session >= c.o.stop_after_epochs)
      throw Stopped(c.dir + ": stopped after " + std::to_string(c.trained_this_session) + " epochs (test hook)");
  }
}

}  // namespace

void run_selftrain(const Experiment& experiment, const std::string& out_dir, const SelftrainOptions& options) {
  Context c;
  c.e = experiment;
  c.dir = out_dir;
  c.o = options;
  make_directories(out_dir);
  const std::string config_path = out_dir + "/experiment.json";
  const json config = experiment.to_json();
  if (fs::exists(config_path)) {
    if (read_json_file(config_path) != config)
      fail(config_path, "the folder holds another experiment (use a new output folder)");
  } else {
    write_file_atomic(config_path, config.dump(2) + "\n");
  }

  c.train_all = open_data(experiment.data, SplitName::Train);
  c.test = open_data(experiment.data, SplitName::Test);
  c.num_classes = c.train_all->class_names().size();
  write_file_atomic(out_dir + "/classes.json", json(c.train_all->class_names()).dump() + "\n");
  if (experiment.alpha.size() == 1)
    c.alpha.assign(c.num_classes, experiment.alpha[0]);
  else if (experiment.alpha.size() == c.num_classes)
    c.alpha = experiment.alpha;
  else
    fail(config_path, "'alpha' has " + std::to_string(experiment.alpha.size()) + " values for " +
                          std::to_string(c.num_classes) + " classes");
  for (int cls : experiment.classes)
    if (std::size_t(cls) >= c.num_classes) fail(config_path, "class " + std::to_string(cls) + " out of range");

  const std::string split_path = out_dir + "/split.json";
  DataSplit split;
  if (fs::exists(split_path)) {
    split = load_split(split_path);
    check_split_matches(split, *c.train_all, split_path);
  } else {
    split = make_split(*c.train_all, experiment.training_fraction, experiment.split_seed);
    save_split(split, split_path);
  }
  std::vector<std::size_t> pool = split.additional;
  if (experiment.pool_limit > 0 && experiment.pool_limit < pool.size()) {
    auto order = seeded_permutation(pool.size(), experiment.split_seed + 0x9e3779b97f4a7c15ULL);
    std::vector<std::size_t> chosen;
    for (std::size_t i = 0; i < experiment.pool_limit; ++i) chosen.push_back(pool[order[i]]);
    std::sort(chosen.begin(), chosen.end());
    pool = chosen;
  }
  c.training = subset(*c.train_all, split.training);
  c.pool = subset(*c.train_all, pool);

  // The runs, in the order they are trained.
  struct Run {
    std::string protocol, arm;
    int cls;
  };
  std::vector<Run> runs;
  std::vector<int> classes = experiment.classes;
  if (classes.empty())
    for (std::size_t k = 0; k < c.num_classes; ++k) classes.push_back(int(k));
  for (const auto& protocol : experiment.protocols) {
    for (const auto& arm : experiment.arms) {
      // The baseline adds nothing, so one run serves every class of the per-class protocol.
      if (protocol == "joint" || arm == "baseline") {
        runs.push_back({protocol, arm, -1});
      } else {
        for (int k : classes) runs.push_back({protocol, arm, k});
      }
    }
  }
  std::vector<std::string> all_runs = {out_dir + "/runs/base"};
  for (const auto& r : runs) all_runs.push_back(run_folder(c, r.protocol, r.arm, r.cls));

  execute_run(c, all_runs[0], "", "base", "base", -1, experiment.base_epochs, 0, all_runs);
  const std::string base_model = checkpoint(all_runs[0], experiment.base_epochs);
  for (std::size_t i = 0; i < runs.size(); ++i)
    execute_run(c, all_runs[i + 1], base_model, runs[i].protocol, runs[i].arm, runs[i].cls, experiment.retrain_epochs,
                experiment.base_epochs, all_runs);
}

}  // namespace imagescore
