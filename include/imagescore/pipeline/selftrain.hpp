// Self-training as in the paper's section 3.1 (SPEC section 4): arms that add
// pseudo-labelled images chosen by a score, per-class and joint protocols, resumable runs,
// and the statistics of a run folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "imagescore/pipeline/experiment.hpp"
#include "imagescore/train/selftrain_records.hpp"

namespace imagescore {

struct SelftrainOptions {
  int threads = 0;
  bool quiet = false;
  int stop_after_epochs = 0;  // > 0: stop (as if killed) after this many trained epochs; for tests
};

// Runs (or resumes) the experiment in `out_dir`. Every epoch's results are appended to
// out_dir/epochs.jsonl as the run goes; checkpoints after every epoch make a rerun of
// the same command resume where it stopped and end with identical results.
void run_selftrain(const Experiment& experiment, const std::string& out_dir, const SelftrainOptions& options);

// The statistics of a run folder (its epochs.jsonl and classes.json), written to
// run_dir/stats.json, stats.md and stats.csv (and stats-seeds.csv): the table over seeds
// where the runs have a baseline, and the paper's tables 1-2 per seed.
struct SelftrainStatsFiles {
  SelftrainStats paper;     // the first seed's tables 1-2
  nlohmann::json summary;   // stats.json
  std::string markdown;     // stats.md
};
SelftrainStatsFiles write_selftrain_stats(const std::string& run_dir, std::size_t resamples, std::uint64_t seed);

}  // namespace imagescore
