// imagescore selftrain / stats / assemble: the paper's section 3.1 experiment.
#include <nlohmann/json.hpp>

#include <fstream>

#include "common.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/pipeline/assembly.hpp"
#include "imagescore/pipeline/assembly.hpp"
#include "imagescore/pipeline/selftrain.hpp"
#include "imagescore/stats/bootstrap.hpp"

namespace imagescore::cli {

void add_selftrain_command(CLI::App& app) {
  struct Options {
    std::string config, preset, out, data;
    std::vector<std::uint64_t> seeds;
    bool print_config = false;
    int stop_after = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("selftrain", "Self-training with score-based pseudo-label selection (resumable)");
  auto* config = cmd->add_option("--config", opt->config, "Experiment file (JSON; see docs/selftrain.md)");
  auto* preset = cmd->add_option("--preset", opt->preset, "paper-cifar10-vgg16, paper-cifar10-resnet18, fashion-mnist-small or fashion-mnist-ssl");
  config->excludes(preset);
  cmd->add_option("--data", opt->data, "Override the experiment's data spec");
  cmd->add_option("--seeds", opt->seeds, "Repeat over these seeds (e.g. 0,1,2), replacing the experiment's")->delimiter(',');
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
      if (!opt->seeds.empty()) e = with_seeds(e, opt->seeds);
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
      auto stats = write_selftrain_stats(opt->dir, opt->resamples, opt->seed);
      if (!global_options().json) std::printf("%s", stats.markdown.c_str());
      return stats.summary;
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
      auto results = write_assembly(opt->dir, opt->epochs, so);
      if (!global_options().json) std::printf("%s", assembly_markdown(results).c_str());
      return nlohmann::json{{"rows", assembly_json(results)}};
    });
  });
}

}  // namespace imagescore::cli
