#include "common.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "imagescore/dist/dist.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/version.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/models/device.hpp"

namespace imagescore::cli {

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

void add_global_options(CLI::App& command) {
  auto& g = global_options();
  command.add_flag("--json", g.json, "Print a machine-readable summary on stdout");
  command.add_flag("-q,--quiet", g.quiet, "No progress output on stderr");
  command.add_option("--threads", g.threads, "Compute threads (default: all cores; at most 4 per core)")
      ->check(CLI::Range(0, max_threads()));
}

void refuse_empty_numbers(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    const std::string type = option->get_type_name();
    if (type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0 || type.rfind("FLOAT", 0) == 0)
      option->check(CLI::Validator(
          [](std::string& value) { return value.empty() ? std::string("empty value, expected a number") : std::string(); },
          ""));
  }
  for (CLI::App* command : app.get_subcommands(std::function<bool(CLI::App*)>{})) refuse_empty_numbers(*command);
}

void add_device_option(CLI::App& command) {
  command.add_option("--device", global_options().device,
                     "cpu (default), cuda or cuda:N; under mpirun, cuda gives each rank of a machine its own GPU")
      ->default_str("cpu");
}

void add_data_options(CLI::App& command, DataOptions& data, const std::string& default_split, bool required) {
  data.split = default_split;
  auto* spec = command.add_option("--data", data.spec,
                                  "Data spec: fashion-mnist, idx:DIR, cifar10:DIR, cifar100:DIR, folder:DIR, csv:FILE, "
                                  "voc:DIR[@HxW], coco:FILE[:IMAGE_DIR][@HxW]");
  if (required) spec->required();
  command.add_option("--split", data.split, "train or test (voc: any list in ImageSets/Main, such as val)")->default_str(default_split);
  command.add_option("--split-file", data.split_file, "A split made by `imagescore split`");
  command.add_option("--part", data.part, "With --split-file: training or additional");
}

std::unique_ptr<ImageSource> open_selected_data(const DataOptions& data, const std::string& default_part,
                                                const Model* model) {
  const std::string part = data.split_file.empty() || !data.part.empty() ? data.part : default_part;
  return open_data_part(model ? spec_for_model(data.spec, *model) : data.spec, data.split, data.split_file, part);
}

std::string selected_part(const DataOptions& data, const std::string& default_part) {
  if (!data.split_file.empty()) return data.split_file + " part " + (data.part.empty() ? default_part : data.part);
  return data.split == "train" ? "" : "split " + data.split;
}

void run_command(const std::function<nlohmann::json()>& body) {
  auto& g = global_options();
  const auto& cluster = dist::cluster();
  // Only rank 0 reports; ranks on one machine share its cores.
  Progress::set_quiet(g.quiet || cluster.rank != 0);
  set_threads(g.threads > 0 ? g.threads : std::max(1, hardware_threads() / cluster.local_size));
  // One rank per GPU: the ranks of a machine take its GPUs in turn.
  const int gpus = g.device == "cuda" && cluster.local_size > 1 ? cuda_device_count() : 0;
  set_device(gpus > 0 ? "cuda:" + std::to_string(cluster.local_rank % gpus) : g.device);
  nlohmann::json summary = body();
  if (g.json && cluster.rank == 0) std::cout << summary.dump(2) << std::endl;
}

namespace {

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return !path.empty() && std::filesystem::is_regular_file(path, ec);
}

nlohmann::json file_record(const std::string& path) {
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", static_cast<unsigned>(crc32_of_file(path)));
  std::error_code ec;
  return {{"path", path}, {"bytes", std::filesystem::file_size(path, ec)}, {"crc32", crc}};
}

}  // namespace

void record_provenance(const CLI::App& command, int argc, char** argv) {
  if (dist::cluster().rank != 0) return;
  const CLI::Option* out = command.get_option_no_throw("--out");
  if (!out || out->count() == 0) return;
  const std::string target = out->as<std::string>();
  std::error_code ec;
  const bool folder = std::filesystem::is_directory(target, ec);
  if (!folder && !is_regular_file(target)) return;

  nlohmann::json options = nlohmann::json::object(), inputs = nlohmann::json::array();
  for (const CLI::Option* option : command.get_options()) {
    const bool named = !option->get_lnames().empty();
    if (option == out || (named && option->get_lnames().front() == "help")) continue;
    std::vector<std::string> values = option->count() > 0 ? option->results() : std::vector<std::string>{};
    if (option->count() == 0 && !option->get_default_str().empty()) values = {option->get_default_str()};
    for (const std::string& value : values)  // named and positional files (profile merge's shards)
      if (is_regular_file(value) && value != target) inputs.push_back(file_record(value));
    if (!named) continue;
    options["--" + option->get_lnames().front()] = values.empty() ? nlohmann::json(nullptr)
                                                   : values.size() == 1 ? nlohmann::json(values.front())
                                                                        : nlohmann::json(values);
  }

  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  std::string name = command.get_name();
  for (const CLI::App* parent = command.get_parent(); parent && parent->get_parent(); parent = parent->get_parent())
    name = parent->get_name() + " " + name;
  const nlohmann::json record = {{"format", "imagescore-provenance"},
                                 {"version", 1},
                                 {"tool", "imagescore " IMAGESCORE_VERSION},
                                 {"command", name},
                                 {"command_line", command_line},
                                 {"options", options},
                                 {"inputs", inputs},
                                 {"output", folder ? nlohmann::json({{"path", target}}) : file_record(target)}};
  const std::string sidecar = folder ? (std::filesystem::path(target) / "provenance.json").string() : target + ".provenance.json";
  write_file_atomic(sidecar, record.dump(2) + "\n");
}

}  // namespace imagescore::cli
