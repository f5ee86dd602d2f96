// imagescore selftrain / stats / assemble: the paper's section 3.1 experiment.
#include <nlohmann/json.hpp>

#include <fstream>

#include "common.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/pipeline/selftrain.hpp"

namespace imagescore::cli {

void add_selftrain_command(CLI::App& app) {
  struct Options {
    std::string config, preset, out, data;
    bool print_config = false;
    int stop_after = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("selftrain", "Self-training with score-based pseudo-label selection (resumable)");
  auto* config = cmd->add_option("--config", opt->config, "Experiment file (JSON; see docs/selftrain.md)");
  auto* preset = cmd->add_option("--preset", opt->preset, "paper-cifar10-vgg16, paper-cifar10-resnet18 or fashion-mnist-small");
  config->excludes(preset);
  cmd->add_option("--data", opt->data, "Override the experiment's data spec");
  cmd->add_option("--out", opt->out, "Run folder (rerun the same command to resume)");
  cmd->add_flag("--print-config", opt->print_config, "Print the experiment as JSON and stop");
  cmd->add_option("--stop-after-epochs", opt->stop_after, "Stop after this many epochs, as if killed (for tests)")
      ->group("");
  add_global_options(*cmd);
  add_device_option(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      if (opt->config.empty() && opt->preset.empty()) fail("selftrain", "give --config FILE or --preset NAME");
      auto e = opt->config.empty() ? preset_experiment(opt->preset) : load_experiment(opt->config);
      if (!opt->data.empty()) e.data = opt->data;
      if (opt->print_config) {
        std::printf("%s\n", e.to_json().dump(2).c_str());
        return nlohmann::json(nullptr);
      }
      if (opt->out.empty()) fail("selftrain", "--out is required");
      SelftrainOptions so;
      so.threads = global_options().threads;
      so.quiet = global_options().quiet;
      so.stop_after_epochs = opt->stop_after;
      run_selftrain(e, opt->out, so);
      if (!global_options().json) std::fprintf(stderr, "done: %s/epochs.jsonl; next: imagescore stats %s\n", opt->out.c_str(), opt->out.c_str());
      return nlohmann::json{{"out", opt->out}, {"epochs", opt->out + "/epochs.jsonl"}};
    });
  });
}

void add_stats_command(CLI::App& app) {
  struct Options {
    std::string dir;
    std::size_t resamples = 10000;
    std::uint64_t seed = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("stats", "The paper's tables 1-2 from a self-training run, with bootstrap p-values");
  cmd->add_option("dir", opt->dir, "Run folder")->required();
  cmd->add_option("--resamples", opt->resamples, "Bootstrap resamples")->default_val(10000)->check(CLI::PositiveNumber);
  cmd->add_option("--seed", opt->seed, "Bootstrap seed")->default_val(0);
  add_global_options(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto tables = selftrain_stats(opt->dir, opt->resamples, opt->seed);
      const auto markdown = stats_markdown(tables);
      write_file_atomic(opt->dir + "/stats.md", markdown);
      write_file_atomic(opt->dir + "/stats.csv", stats_csv(tables));
      auto table_json = [](const StatsTable& t) {
        nlohmann::json rows = nlohmann::json::array();
        auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
        for (const auto& r : t.rows)
          rows.push_back({{"class", r.class_name}, {"baseline", num(r.baseline)}, {"train", num(r.train)},
                          {"diff_tb", num(r.diff_tb)}, {"p_value_tb", num(r.p_value_tb)}, {"softmax", num(r.softmax)},
                          {"diff_sb", num(r.diff_sb)}, {"p_value_sb", num(r.p_value_sb)}, {"diff_ts", num(r.diff_ts)}});
        return nlohmann::json{{"protocol", t.protocol}, {"rows", rows}, {"significant_tb", t.significant_tb},
                              {"significant_sb", t.significant_sb}};
      };
      nlohmann::json all = nlohmann::json::array();
      for (const auto& t : tables) all.push_back(table_json(t));
      // The first table (per-class protocol when run) also at the top level.
      nlohmann::json summary = table_json(tables.front());
      nlohmann::json classes = nlohmann::json::array();
      for (const auto& r : tables.front().rows) classes.push_back(r.class_name);
      summary["classes"] = classes;
      summary["tables"] = all;
      summary["resamples"] = opt->resamples;
      summary["seed"] = opt->seed;
      write_file_atomic(opt->dir + "/stats.json", summary.dump(2) + "\n");
      if (!global_options().json) std::printf("%s", markdown.c_str());
      return summary;
    });
  });
}

void add_assemble_command(CLI::App& app) {
  struct Options {
    std::string dir;
    std::vector<int> epochs;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("assemble", "Assemble the per-class image-score models of a run (the paper's table 3)");
  cmd->add_option("--run", opt->dir, "Run folder")->required();
  cmd->add_option("--epochs", opt->epochs, "Retraining epochs to assemble at (default: the last)")->delimiter(',');
  add_global_options(*cmd);
  add_device_option(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      SelftrainOptions so;
      so.threads = global_options().threads;
      so.quiet = global_options().quiet;
      if (opt->epochs.empty()) opt->epochs = {0};
      nlohmann::json rows = nlohmann::json::array();
      std::string table = "| epoch | base model | baseline arm | assembled |\n|---|---|---|---|\n";
      for (int e : opt->epochs) {
        auto r = assemble_run(opt->dir, e, so);
        rows.push_back({{"epoch", r.epoch}, {"base", r.base_accuracy},
                        {"baseline", r.baseline_arm_accuracy < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.baseline_arm_accuracy)},
                        {"assembled", r.assembled_accuracy}, {"claimed_by_none", r.claimed_by_none},
                        {"claimed_by_several", r.claimed_by_several}});
        table += "| " + std::to_string(r.epoch) + " | " + fixed(100 * r.base_accuracy, 2) + " | " +
                 (r.baseline_arm_accuracy < 0 ? std::string("-") : fixed(100 * r.baseline_arm_accuracy, 2)) + " | " +
                 fixed(100 * r.assembled_accuracy, 2) + " |\n";
      }
      write_file_atomic(opt->dir + "/assembly.md", table);
      write_file_atomic(opt->dir + "/assembly.json", rows.dump(2) + "\n");
      if (!global_options().json) std::printf("%s", table.c_str());
      return nlohmann::json{{"rows", rows}};
    });
  });
}

}  // namespace imagescore::cli
