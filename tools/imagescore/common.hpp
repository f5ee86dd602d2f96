// Shared plumbing of the sub-commands: global options, data options, JSON output.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>

#include "imagescore/data/data.hpp"
#include "imagescore/models/model.hpp"
#include <string>

#include "imagescore/core/text.hpp"
#include "imagescore/stats/analysis.hpp"

namespace imagescore::cli {

struct GlobalOptions {
  bool json = false;
  bool quiet = false;
  int threads = 0;  // 0: all cores
  std::string device = "cpu";
};
GlobalOptions& global_options();

// Adds --json, --quiet and --threads to a sub-command.
void add_global_options(CLI::App& command);
// Adds --device to a sub-command that runs a model.
void add_device_option(CLI::App& command);

// CLI11 reads an empty value as 0 (`train --epochs ""` trained nothing and exited 0):
// every numeric option of `app` and its sub-commands refuses an empty value instead.
void refuse_empty_numbers(CLI::App& app);

// Options selecting the images a command works on.
struct DataOptions {
  std::string spec;
  std::string split = "train";
  std::string split_file;
  std::string part;
};
void add_data_options(CLI::App& command, DataOptions& data, const std::string& default_split, bool required = true);
// Opens the selected images; with --split-file and no --part, the part is `default_part`.
// With a model, as the model reads them (spec_for_model).
std::unique_ptr<ImageSource> open_selected_data(const DataOptions& data, const std::string& default_part,
                                                const Model* model = nullptr);
// Which part of the data set open_selected_data opens, in words, or "" for the whole
// training split (FitRunOptions::data_part).
std::string selected_part(const DataOptions& data, const std::string& default_part);

// Applies the global options (threads, quiet, device) and runs `body`, which returns the JSON
// summary printed with --json.
void run_command(const std::function<nlohmann::json()>& body);

// After a command that wrote `--out` succeeded: writes beside it (OUT.provenance.json,
// or OUT/provenance.json for a folder) the tool version, the command line, every option
// of the command with its value (defaults included), and the size and CRC-32 of every
// input file named by an option and of the output (docs/formats.md, section 10). Only
// the first rank of a distributed run writes it.
void record_provenance(const CLI::App& command, int argc, char** argv);

// Every sub-command registers itself on the top-level app.
void add_split_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_model_command(CLI::App& app);
void add_profile_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_select_command(CLI::App& app);
void add_study_command(CLI::App& app);
void add_analyze_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_selftrain_command(CLI::App& app);
void add_stats_command(CLI::App& app);
void add_assemble_command(CLI::App& app);
void add_detect_command(CLI::App& app);
void add_fuse_command(CLI::App& app);
void add_serve_command(CLI::App& app);

// --bins, --binning (into `binning`, parsed later), --resamples, --seed, --confidence:
// shared by analyze and report.
void add_analysis_options(CLI::App& command, AnalysisOptions& analysis, std::string& binning);

}  // namespace imagescore::cli
