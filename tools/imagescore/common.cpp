#include "common.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>

#include "imagescore/progress.hpp"
#include "imagescore/runtime.hpp"

namespace imagescore::cli {

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

void add_global_options(CLI::App& command) {
  auto& g = global_options();
  command.add_flag("--json", g.json, "Print a machine-readable summary on stdout");
  command.add_flag("-q,--quiet", g.quiet, "No progress output on stderr");
  command.add_option("--threads", g.threads, "Compute threads (default: all cores)")->check(CLI::NonNegativeNumber);
}

void add_data_options(CLI::App& command, DataOptions& data, const std::string& default_split, bool required) {
  data.split = default_split;
  auto* spec = command.add_option("--data", data.spec,
                                  "Data spec: fashion-mnist, idx:DIR, cifar10:DIR, cifar100:DIR, folder:DIR, csv:FILE");
  if (required) spec->required();
  command.add_option("--split", data.split, "train or test")->default_str(default_split);
  command.add_option("--split-file", data.split_file, "A split made by `imagescore split`");
  command.add_option("--part", data.part, "With --split-file: training or additional");
}

void run_command(const std::function<nlohmann::json()>& body) {
  auto& g = global_options();
  Progress::set_quiet(g.quiet);
  set_threads(g.threads);
  nlohmann::json summary = body();
  if (g.json) std::cout << summary.dump(2) << std::endl;
}

std::string fixed(double value, int decimals) {
  if (std::isnan(value)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

}  // namespace imagescore::cli
