// The records of a self-training run (docs/selftrain.md), each with one writer and one
// reader: the per-epoch evaluations (epochs.jsonl), the paper's tables 1-2 computed from
// them (stats.json, stats.md, stats.csv) and the model assembly (assembly.json,
// assembly.md). The runner writes them; `stats`, `assemble` and the report read them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace imagescore {

// How the arms of an experiment train: the base model's own run, one model per class
// judged on that class (the paper's), or one model for all classes.
enum class Protocol { Base, PerClass, Joint };
Protocol parse_protocol(const std::string& name);  // base | per-class | joint
std::string to_string(Protocol protocol);

// An arm of an experiment: the baseline adds nothing; every other arm adds the
// pseudo-labels its score column ranks highest. "softmax" and "imagescore" are the paper's
// names for the msp and image_score columns; any other arm is named by its column.
struct Arm {
  std::string name;
  // The score column the arm ranks by; empty for the baseline and the base run.
  std::string column() const;
  bool operator==(const Arm& other) const { return name == other.name; }
};
// Fails (OptionError "arms") unless the arm is baseline or ranks by one of `columns`.
Arm parse_arm(const std::string& name, const std::vector<std::string>& columns);

// One evaluation of one run on the test set: a line of epochs.jsonl.
struct EpochRecord {
  Protocol protocol = Protocol::Joint;
  std::string arm;                            // "base" for the base run
  int class_id = -1;                          // the class a per-class run is for; -1 for a run
                                              // serving every class (the per-class baseline)
  int epoch = 0;                              // 0: the model a retraining run starts from
  double test_accuracy = 0;
  std::vector<double> per_class_accuracy;     // NaN for a class without test images (may be absent)
  std::size_t added = 0;                      // pseudo-labelled images trained on this epoch
  std::optional<std::size_t> added_correct;   // how many of them were right (when selecting)
  std::optional<double> validation_accuracy;  // on the held-out labelled images, when any
  std::optional<std::uint64_t> seed;          // the repeat, in a folder of several seeds
  double added_precision() const;             // NaN when nothing was added
  nlohmann::json to_json() const;
  // Fails naming `where` (file:line) and the field on a missing or mistyped field.
  static EpochRecord from_json(const nlohmann::json& json, const std::string& where);
};
// Every record of an epochs.jsonl file, in file order.
std::vector<EpochRecord> read_epoch_records(const std::string& path);
std::string epoch_records_jsonl(const std::vector<EpochRecord>& records);

// The class names of a run folder (classes.json), or "class K" where it has none.
std::vector<std::string> read_run_classes(const std::string& run_dir, std::size_t num_classes);

// The paper's tables 1-2: per class, the mean test accuracy (in %) of each arm over the
// retraining epochs, differences, and one-sided bootstrap p-values (stats/bootstrap.hpp).
struct StatsRow {
  std::string class_name;
  double baseline, train, diff_tb, p_value_tb, softmax, diff_sb, p_value_sb, diff_ts;
};
struct StatsTable {
  Protocol protocol = Protocol::PerClass;
  std::vector<StatsRow> rows;
  int significant_tb = 0, significant_sb = 0;  // classes with p < 0.05
};
struct SelftrainStats {
  std::vector<StatsTable> tables;  // one per protocol run, per-class first
  std::size_t resamples = 0;
  std::uint64_t seed = 0;
  nlohmann::json to_json() const;  // stats.json; the first table also at the top level
  static SelftrainStats from_json(const nlohmann::json& json, const std::string& where);
  std::string markdown() const;
  std::string csv() const;
};
// One table of stats.json (the top level holds the first one); a missing protocol is the
// per-class one.
StatsTable parse_stats_table(const nlohmann::json& json, const std::string& where);
// Fails if the records hold no retraining epoch yet.
SelftrainStats selftrain_stats(const std::vector<EpochRecord>& records, const std::vector<std::string>& class_names,
                               std::size_t resamples, std::uint64_t seed, const std::string& where);

// Over repeated seeds (docs/selftrain.md, "Seeds"): per protocol and arm, the accuracy of
// each seed's final model (joint: test accuracy; per-class: the mean over the run classes
// of each class's accuracy under its own run), the paired difference to the baseline of
// the same seed, with a percentile bootstrap interval over seeds, and the wins.
struct SeedArmRow {
  Protocol protocol = Protocol::Joint;
  std::string arm;
  std::vector<double> accuracy;               // per seed, in the order of SeedStats::seeds
  std::vector<double> difference;             // per seed: accuracy - the baseline's
  double mean = 0, mean_difference = 0, low = 0, high = 0;  // NaN for the baseline
  int wins = 0;                               // seeds with a difference > 0
  std::optional<double> validation_mean;      // final validation accuracy, when held out
  std::size_t added = 0, added_correct = 0;   // over every selection of every seed
};
struct SeedStats {
  std::vector<std::uint64_t> seeds;
  std::vector<SeedArmRow> rows;               // per protocol, the baseline first
  std::size_t resamples = 0;
  std::uint64_t seed = 0;
  nlohmann::json to_json() const;
  std::string markdown() const;
  std::string csv() const;
};
// Fails unless every seed has a finished baseline and arm run of the same length.
SeedStats seed_stats(const std::vector<EpochRecord>& records, std::size_t resamples, std::uint64_t seed,
                     const std::string& where);

// The paper's table 3 at one epoch: the per-class image-score models assembled by image
// score, next to the base model and the baseline arm.
struct AssemblyResult {
  int epoch = 0;
  double base_accuracy = 0;                     // the base model (the fallback)
  std::optional<double> baseline_arm_accuracy;  // the per-class baseline arm at that epoch
  double assembled_accuracy = 0;
  std::size_t claimed_by_none = 0, claimed_by_several = 0;
};
nlohmann::json assembly_json(const std::vector<AssemblyResult>& results);  // assembly.json
std::vector<AssemblyResult> parse_assembly_json(const nlohmann::json& json, const std::string& where);
std::string assembly_markdown(const std::vector<AssemblyResult>& results);  // assembly.md

}  // namespace imagescore
