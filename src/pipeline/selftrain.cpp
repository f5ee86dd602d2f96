// The self-training runner: base training, then each arm's retraining runs, with a
// checkpoint after every epoch so that an interrupted run resumes exactly.
#include "imagescore/pipeline/selftrain.hpp"
#include "imagescore/score/registry.hpp"
#include "imagescore/score/fitted.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <type_traits>
#include <filesystem>
#include <optional>
#include <set>

#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/select/select.hpp"

namespace imagescore {
namespace fs = std::filesystem;
namespace {

using json = nlohmann::json;

// A pseudo-labelled selection from the additional pool: positions in the training set,
// and with soft targets the selecting model's probabilities (ids x classes).
struct Selection {
  std::vector<std::size_t> ids;
  std::vector<int> labels;
  std::size_t correct = 0;
  std::vector<float> soft;
};

// One training run: the base run, or an arm's retraining run under a protocol (for one
// class under the per-class protocol).
struct Run {
  Protocol protocol = Protocol::Base;
  Arm arm{"base"};
  int class_id = -1;
  std::string dir;
  std::string start_model;  // the checkpoint it starts from; "" for a fresh model
  int epochs = 0;
  int seed_offset = 0;      // added to the epoch number to seed its data order
  bool selects() const { return protocol != Protocol::Base && !arm.column().empty(); }
};

// What a run folder's state.json holds: the last finished epoch (whose checkpoint and
// optimizer state are in the folder), its records so far, and the selection in use.
struct RunState {
  int epoch = 0;
  std::vector<EpochRecord> records;
  Selection selection;
};

struct Context {
  Experiment e;
  std::string dir;
  SelftrainOptions o;
  std::unique_ptr<ImageSource> train_all, test;
  std::unique_ptr<ImageSource> training, pool, validation;  // validation: null when none
  std::size_t num_classes = 0;
  std::vector<double> alpha;  // one per class
  std::vector<Run> runs;      // in training order, the base run first
  int trained_this_session = 0;
};

// Thrown by the test hook that stops a run as if it had been killed.
struct Stopped : Error {
  using Error::Error;
};

std::string checkpoint(const std::string& dir, int epoch) { return dir + "/epoch-" + std::to_string(epoch) + ".safetensors"; }
std::string optimizer_state(const std::string& dir, int epoch) { return dir + "/optimizer-" + std::to_string(epoch) + ".pt"; }

RunState read_state(const std::string& path) {
  RunState state;
  if (!fs::exists(path)) return state;
  const json j = read_json_file(path);
  state.epoch = json_field<int>(j, "epoch", path);
  const json& records = j.contains("records") ? j.at("records") : json();
  if (!records.is_array()) fail(path, "'records' must be an array");
  for (std::size_t i = 0; i < records.size(); ++i)
    state.records.push_back(EpochRecord::from_json(records[i], path + ": records[" + std::to_string(i) + "]"));
  if (j.contains("selection") && !j.at("selection").is_null()) {
    const json& s = j.at("selection");
    const std::string where = path + ": selection";
    state.selection.ids = json_field<std::vector<std::size_t>>(s, "ids", where);
    state.selection.labels = json_field<std::vector<int>>(s, "labels", where);
    state.selection.correct = json_field<std::size_t>(s, "correct", where);
    if (state.selection.ids.size() != state.selection.labels.size()) fail(where, "'ids' and 'labels' differ in length");
    state.selection.soft = json_field_or<std::vector<float>>(s, "soft", {}, where);
  }
  return state;
}

void write_state(const std::string& path, const RunState& state) {
  json records = json::array();
  for (const auto& r : state.records) records.push_back(r.to_json());
  const auto& s = state.selection;
  json selection = {{"ids", s.ids}, {"labels", s.labels}, {"correct", s.correct}};
  if (!s.soft.empty()) selection["soft"] = s.soft;
  const json j = {{"epoch", state.epoch}, {"records", records}, {"selection", selection}};
  write_file_atomic(path, j.dump() + "\n");
}

EpochRecord evaluation_record(Context& c, Model& model, const Run& run, int epoch, const Selection* added) {
  auto ev = evaluate(model, *c.test, c.e.eval_batch_size, c.o.threads, true);
  EpochRecord r;
  r.protocol = run.protocol;
  r.arm = run.arm.name;
  r.class_id = run.class_id;
  r.epoch = epoch;
  r.test_accuracy = ev.accuracy;
  r.per_class_accuracy = ev.per_class_accuracy;
  if (c.validation) r.validation_accuracy = evaluate(model, *c.validation, c.e.eval_batch_size, c.o.threads, true).accuracy;
  if (added) {
    r.added = added->ids.size();
    r.added_correct = added->correct;
  }
  return r;
}

// The arm's pseudo-labels for a round (0-based): the pool scored by this round's model,
// chosen by the experiment's rule (select layer), with their probabilities for soft targets.
Selection choose_pseudo_labels(Context& c, Model& model, const Run& run, int round) {
  const std::string column = run.arm.column();
  const ScoreInfo* score = score_of_column(column);
  if (!score) fail_option("arms", "'" + run.arm.name + "' is not a score column");
  ScoreTable table;
  table.path = "additional pool";
  auto collect = [&](const ScoreRow& row) { table.rows.push_back(row); };
  ScoreRunOptions so;
  so.scores = {score->name};
  so.image_score = c.e.image_score;
  so.batch_size = c.e.eval_batch_size;
  so.threads = c.o.threads;
  so.quiet = true;
  // The statistics the arm's score needs, fitted on the labelled part by this epoch's
  // model: the image score's profiles (with the experiment's options), a feature score's
  // fit (knn, trust, mahalanobis, nac: the defaults of `imagescore profile`), or, for a
  // score of the logits alone, a one-tap profile (the cheapest set score_images accepts).
  ReferenceSet reference;
  if (score->fit.empty() || score->fit == "profiles") {
    ProfileRunOptions po;
    po.profile = c.e.profile;
    po.taps = column == "image_score" ? c.e.taps : std::vector<std::string>{"output"};
    po.batch_size = c.e.eval_batch_size;
    po.threads = c.o.threads;
    po.quiet = true;
    reference = reference_of(build_profiles(model, *c.training, po));
  } else {
    FitRunOptions fo;
    fo.scores = {score->name};
    fo.batch_size = c.e.eval_batch_size;
    fo.threads = c.o.threads;
    fo.quiet = true;
    reference = fit_reference(model, *c.training, fo);
  }
  table.value_columns = score_value_columns(reference, model, so);
  score_images(model, reference, *c.pool, so, collect);
  const auto& p = c.e.pseudo;
  PseudoLabelRule rule;
  rule.alpha = c.alpha;
  if (!p.curriculum.empty()) rule.share = p.curriculum[std::size_t(round)];
  if (p.global_ranking) rule.share = c.alpha.front();
  if (p.threshold.count(run.arm.name)) rule.threshold = p.threshold.at(run.arm.name);
  rule.flexmatch = p.flexmatch;
  rule.max_per_class = p.max_per_class;
  const auto scores = table.values(column);
  std::vector<int> pred;
  std::vector<std::size_t> ids;
  for (std::size_t i = 0; i < table.rows.size(); ++i) {
    const auto& row = table.rows[i];
    if (!std::isfinite(scores[i])) fail(table.path, "image " + std::to_string(row.id) + " has a non-finite " + column);
    pred.push_back(row.pred);
    ids.push_back(row.id);
  }
  Selection s;
  for (auto row_index : select_pseudo_labels(scores, pred, ids, rule, c.num_classes)) {
    const auto& row = table.rows[row_index];
    if (run.class_id >= 0 && row.pred != run.class_id) continue;  // per-class protocol: only class-c candidates
    s.ids.push_back(row.id);
    s.labels.push_back(row.pred);
    s.correct += row.label == row.pred;
  }
  if (p.soft_targets) s.soft = predict_probabilities(model, *subset(*c.train_all, s.ids), c.e.eval_batch_size, c.o.threads);
  return s;
}

// Rewrites epochs.jsonl from every run's state, in training order (atomically).
void write_epochs_file(const Context& c) {
  std::vector<EpochRecord> records;
  for (const auto& run : c.runs) {
    auto state = read_state(run.dir + "/state.json");
    records.insert(records.end(), state.records.begin(), state.records.end());
  }
  write_file_atomic(c.dir + "/epochs.jsonl", epoch_records_jsonl(records));
}

// The base run's initial model (the experiment's seed), normalised as given.
std::unique_ptr<TrainableModel> fresh_model(const Context& c, const Normalization& norm) {
  return create_model(c.e.model, c.training->shape(), c.train_all->class_names(), norm, c.e.train.seed);
}

// The model a run resumes from: its last checkpoint, the one it starts from, or a fresh one.
std::unique_ptr<TrainableModel> starting_model(const Context& c, const Run& run, int done) {
  if (done > 0) return load_trainable_model(checkpoint(run.dir, done));
  if (!run.start_model.empty()) return load_trainable_model(run.start_model);
  return fresh_model(c, compute_normalization(*c.training, c.o.threads));
}

// What one epoch trains on: the labelled part with its labels plus the selection with its
// pseudo-labels, and how (EpochTargets: the pseudo-labels' weight and soft targets).
struct EpochData {
  std::unique_ptr<ImageSource> source;
  EpochTargets targets;
};

EpochData epoch_data(const Context& c, const Selection& selection, int data_epoch) {
  const std::size_t labelled = c.training->size(), k = c.num_classes;
  std::vector<std::size_t> ids(labelled);
  std::vector<int> labels(labelled);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = c.training->id(i);
    labels[i] = c.training->label(i);
  }
  ids.insert(ids.end(), selection.ids.begin(), selection.ids.end());
  labels.insert(labels.end(), selection.labels.begin(), selection.labels.end());
  const auto& p = c.e.pseudo;
  EpochData d;
  if (p.weight != 1) {
    d.targets.weights.assign(labelled, 1.0f);
    d.targets.weights.resize(ids.size(), float(p.weight));
  }
  if (p.soft_targets && !selection.ids.empty()) {
    d.targets.soft.assign(labelled * k, 0.0f);
    for (std::size_t i = 0; i < labelled; ++i) d.targets.soft[i * k + std::size_t(labels[i])] = 1.0f;
    d.targets.soft.insert(d.targets.soft.end(), selection.soft.begin(), selection.soft.end());
  }
  if (p.batch_share > 0 && !selection.ids.empty()) {
    const auto order = mixed_batch_order(labelled, selection.ids.size(), c.e.train.batch_size, p.batch_share,
                                   c.e.train.seed * 1000003ULL + std::uint64_t(data_epoch));
    auto pick = [&](const auto& values, std::size_t width) {
      std::decay_t<decltype(values)> picked;
      if (values.empty()) return picked;
      for (auto i : order) picked.insert(picked.end(), values.begin() + std::ptrdiff_t(i * width), values.begin() + std::ptrdiff_t((i + 1) * width));
      return picked;
    };
    ids = pick(ids, 1);
    labels = pick(labels, 1);
    d.targets.weights = pick(d.targets.weights, 1);
    d.targets.soft = pick(d.targets.soft, k);
    d.targets.keep_order = true;
  }
  d.source = relabel(*c.train_all, std::move(ids), std::move(labels));
  return d;
}

// Trains one run epoch by epoch, resuming from its state.json when present.
void execute_run(Context& c, const Run& run) {
  make_directories(run.dir);
  const std::string state_path = run.dir + "/state.json";
  RunState state = read_state(state_path);
  if (state.epoch >= run.epochs) return;

  auto model = starting_model(c, run, state.epoch);
  TrainOptions to = c.e.train;
  to.threads = c.o.threads;
  to.quiet = c.o.quiet;
  auto trainer = std::make_unique<Trainer>(*model, to);
  if (state.epoch > 0) trainer->load_state(optimizer_state(run.dir, state.epoch));
  // Every retraining curve starts at the base model.
  if (state.epoch == 0 && run.protocol != Protocol::Base) state.records.push_back(evaluation_record(c, *model, run, 0, nullptr));

  for (int epoch = state.epoch + 1; epoch <= run.epochs; ++epoch) {
    if (!c.o.quiet)
      std::fprintf(stderr, "== %s %s%s: epoch %d/%d\n", to_string(run.protocol).c_str(), run.arm.name.c_str(),
                   run.class_id >= 0 ? (" class " + std::to_string(run.class_id)).c_str() : "", epoch, run.epochs);
    if (run.selects() && (epoch - 1) % c.e.selection_interval == 0) {
      state.selection = choose_pseudo_labels(c, *model, run, (epoch - 1) / c.e.selection_interval);
      // Curriculum labelling's rounds start from the initial weights (the base model's
      // initialisation), with a fresh optimizer; only the selection carries over.
      if (c.e.pseudo.reinitialise) {
        model = fresh_model(c, model->meta().normalization);  // the base run's, carried by every checkpoint
        trainer = std::make_unique<Trainer>(*model, to);
      }
    }
    const auto data = epoch_data(c, state.selection, run.seed_offset + epoch);
    trainer->train_epoch(*data.source, run.seed_offset + epoch, data.targets);
    state.records.push_back(evaluation_record(c, *model, run, epoch, run.selects() ? &state.selection : nullptr));

    // Checkpoint, then the state that points at it: a kill between the two leaves the
    // previous state, whose checkpoint is still there.
    save_model(*model, checkpoint(run.dir, epoch));
    trainer->save_state(optimizer_state(run.dir, epoch));
    state.epoch = epoch;
    write_state(state_path, state);
    const int keep = c.e.keep_checkpoints_every;
    const int previous = epoch - 1;
    if (previous > 0 && !(keep > 0 && previous % keep == 0)) fs::remove(checkpoint(run.dir, previous));
    if (previous > 0) fs::remove(optimizer_state(run.dir, previous));
    write_epochs_file(c);
    if (c.o.stop_after_epochs > 0 && ++c.trained_this_session >= c.o.stop_after_epochs)
      throw Stopped(c.dir + ": stopped after " + std::to_string(c.trained_this_session) + " epochs (test hook)");
  }
}

// The experiment's file in the folder, or a refusal if the folder holds another one.
void claim_folder(const Experiment& experiment, const std::string& out_dir) {
  make_directories(out_dir);
  const std::string config_path = out_dir + "/experiment.json";
  const json config = experiment.to_json();
  if (fs::exists(config_path)) {
    const json stored = read_json_file(config_path);
    if (stored != config) {
      std::string keys;
      for (const auto& item : config.items())
        if (!stored.contains(item.key()) || stored.at(item.key()) != item.value()) keys += (keys.empty() ? "'" : ", '") + item.key() + "'";
      if (stored.is_object())
        for (const auto& item : stored.items())
          if (!config.contains(item.key())) keys += (keys.empty() ? "'" : ", '") + item.key() + "'";
      fail(config_path, "the folder holds another experiment (it differs in " + keys + "; use a new output folder)");
    }
  } else {
    write_file_atomic(config_path, config.dump(2) + "\n");
  }
}

// The training and pool parts of the run's split (made once, then read back).
void open_parts(Context& c) {
  const auto& e = c.e;
  const std::string split_path = c.dir + "/split.json";
  DataSplit split;
  if (fs::exists(split_path)) {
    split = load_split(split_path);
    check_split_matches(split, *c.train_all, split_path);
  } else {
    split = make_split(*c.train_all, e.training_fraction, e.split_seed);
    save_split(split, split_path);
  }
  std::vector<std::size_t> pool = split.additional;
  if (e.pool_limit > 0 && e.pool_limit < pool.size()) {
    auto order = seeded_permutation(pool.size(), e.split_seed + 0x9e3779b97f4a7c15ULL);
    std::vector<std::size_t> chosen;
    for (std::size_t i = 0; i < e.pool_limit; ++i) chosen.push_back(pool[order[i]]);
    std::sort(chosen.begin(), chosen.end());
    pool = chosen;
  }
  std::vector<std::size_t> training = split.training;
  if (e.validation_fraction > 0) {
    // Per class and seeded like the split itself, from the labelled part only.
    auto labelled = subset(*c.train_all, training);
    const DataSplit held = make_split(*labelled, 1 - e.validation_fraction, e.split_seed + 1);
    std::vector<std::size_t> validation;
    for (auto i : held.additional) validation.push_back(training[i]);
    std::vector<std::size_t> kept;
    for (auto i : held.training) kept.push_back(training[i]);
    if (validation.empty() || kept.empty())
      fail(c.dir + "/experiment.json", "'validation_fraction' " + format_double(e.validation_fraction) + " leaves " +
                                           std::to_string(kept.size()) + " images to train on and " +
                                           std::to_string(validation.size()) + " to validate on");
    c.validation = subset(*c.train_all, validation);
    training = kept;
  }
  c.training = subset(*c.train_all, training);
  c.pool = subset(*c.train_all, pool);
}

// The runs, in the order they are trained: the base run, then per protocol and arm.
std::vector<Run> plan_runs(const Experiment& e, const std::string& out_dir, std::size_t num_classes) {
  std::vector<Run> runs;
  Run base;
  base.dir = out_dir + "/runs/base";
  base.epochs = e.base_epochs;
  runs.push_back(base);
  std::vector<int> classes = e.classes;
  if (classes.empty())
    for (std::size_t k = 0; k < num_classes; ++k) classes.push_back(int(k));
  for (Protocol protocol : e.protocols)
    for (const Arm& arm : e.arms) {
      Run r;
      r.protocol = protocol;
      r.arm = arm;
      r.start_model = checkpoint(base.dir, e.base_epochs);
      r.epochs = e.retrain_epochs;
      r.seed_offset = e.base_epochs;
      const std::string folder = out_dir + "/runs/" + to_string(protocol) + "/" + arm.name;
      // The baseline adds nothing, so one run serves every class of the per-class protocol.
      if (protocol == Protocol::Joint || arm.column().empty()) {
        r.dir = folder;
        runs.push_back(r);
      } else {
        for (int k : classes) {
          r.class_id = k;
          r.dir = folder + "/class" + std::to_string(k);
          runs.push_back(r);
        }
      }
    }
  return runs;
}


// One repeat: the whole experiment in its folder. Returns the epochs it trained.
int run_one_seed(const Experiment& experiment, const std::string& out_dir, const SelftrainOptions& options) {
  claim_folder(experiment, out_dir);
  const std::string config_path = out_dir + "/experiment.json";
  Context c;
  c.e = experiment;
  c.dir = out_dir;
  c.o = options;
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
  open_parts(c);
  c.runs = plan_runs(experiment, out_dir, c.num_classes);
  for (const Run& run : c.runs) execute_run(c, run);
  return c.trained_this_session;
}

std::string seed_folder(const std::string& out_dir, std::uint64_t seed) { return out_dir + "/seed-" + std::to_string(seed); }

// The records of every finished or started repeat, each marked with its seed.
void write_seeds_epochs_file(const Experiment& experiment, const std::string& out_dir) {
  std::vector<EpochRecord> all;
  for (auto seed : experiment.seeds) {
    const std::string path = seed_folder(out_dir, seed) + "/epochs.jsonl";
    if (!fs::exists(path)) continue;
    for (auto record : read_epoch_records(path)) {
      record.seed = seed;
      all.push_back(record);
    }
  }
  write_file_atomic(out_dir + "/epochs.jsonl", epoch_records_jsonl(all));
}

}  // namespace

void run_selftrain(const Experiment& experiment, const std::string& out_dir, const SelftrainOptions& options) {
  if (experiment.seeds.empty()) {
    run_one_seed(experiment, out_dir, options);
    return;
  }
  claim_folder(experiment, out_dir);
  write_file_atomic(out_dir + "/classes.json", json(open_data(experiment.data, SplitName::Train)->class_names()).dump() + "\n");
  SelftrainOptions remaining = options;
  for (auto seed : experiment.seeds) {
    try {
      remaining.stop_after_epochs -= run_one_seed(experiment.for_seed(seed), seed_folder(out_dir, seed), remaining);
    } catch (const Stopped&) {
      write_seeds_epochs_file(experiment, out_dir);
      throw;
    }
    write_seeds_epochs_file(experiment, out_dir);
  }
}

SelftrainStatsFiles write_selftrain_stats(const std::string& run_dir, std::size_t resamples, std::uint64_t seed) {
  const std::string path = run_dir + "/epochs.jsonl";
  const auto records = read_epoch_records(path);
  std::size_t num_classes = 0;
  std::set<std::uint64_t> seeds;
  for (const auto& r : records) {
    num_classes = std::max(num_classes, r.per_class_accuracy.size());
    seeds.insert(r.seed.value_or(0));
  }
  const auto classes = read_run_classes(run_dir, num_classes);
  // The paper's epoch bootstrap, per seed; the first seed's tables lead stats.json.
  json per_seed = json::array();
  std::string markdown;
  std::optional<SelftrainStats> first;
  for (auto s : seeds) {
    std::vector<EpochRecord> own;
    for (const auto& r : records)
      if (r.seed.value_or(0) == s) own.push_back(r);
    auto stats = selftrain_stats(own, classes, resamples, seed, path);
    if (seeds.size() > 1) {
      json j = stats.to_json();
      j["run_seed"] = s;
      per_seed.push_back(j);
      markdown += "## Seed " + std::to_string(s) + ": the paper's tables (epoch bootstrap)\n\n" + stats.markdown();
    } else {
      markdown += "## The paper's tables (epoch bootstrap)\n\n" + stats.markdown();
    }
    if (!first) first = stats;
  }
  json summary = first->to_json();
  if (seeds.size() > 1) summary["per_seed"] = per_seed;
  // Over seeds (a baseline is needed); a single run also gets its final accuracies per arm.
  bool has_baseline = std::any_of(records.begin(), records.end(), [](const EpochRecord& r) { return r.arm == "baseline"; });
  if (has_baseline) {
    const auto over = seed_stats(records, resamples, seed, path);
    summary["over_seeds"] = over.to_json();
    markdown = over.markdown() + markdown;
    write_file_atomic(run_dir + "/stats-seeds.csv", over.csv());
  }
  write_file_atomic(run_dir + "/stats.md", markdown);
  write_file_atomic(run_dir + "/stats.csv", first->csv());
  write_file_atomic(run_dir + "/stats.json", summary.dump(2) + "\n");
  return {*first, summary, markdown};
}

}  // namespace imagescore
