// imagescore split: a stratified, seeded split into a training and an additional part.
#include "common.hpp"
#include "imagescore/data/data.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore::cli {

void add_split_command(CLI::App& app) {
  struct Options {
    std::string data;
    double fraction = 0.1;
    std::uint64_t seed = 0;
    std::string out;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("split", "Split a labelled training set into training and additional parts");
  cmd->add_option("--data", opt->data, "Data spec (its training split is divided)")->required();
  cmd->add_option("--fraction", opt->fraction, "Share of each class kept in the training part")->default_val(0.1);
  cmd->add_option("--seed", opt->seed, "Random seed")->default_val(0);
  cmd->add_option("--out", opt->out, "Output JSON file")->required();
  add_global_options(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto source = open_data(opt->data, SplitName::Train);
      auto split = make_split(*source, opt->fraction, opt->seed);
      save_split(split, opt->out);
      if (!global_options().json)
        std::fprintf(stderr, "split %zu images: %zu training, %zu additional -> %s\n", split.total,
                     split.training.size(), split.additional.size(), opt->out.c_str());
      return nlohmann::json{{"total", split.total},
                            {"training", split.training.size()},
                            {"additional", split.additional.size()},
                            {"out", opt->out}};
    });
  });
}

}  // namespace imagescore::cli
