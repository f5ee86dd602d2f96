// imagescore model info: what a checkpoint holds and which taps it exposes.
#include <algorithm>

#include "common.hpp"
#include "imagescore/model.hpp"

namespace imagescore::cli {

void add_model_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("model", "Inspect models");
  cmd->require_subcommand(1);
  auto* info = cmd->add_subcommand("info", "List a model's taps with their shapes");
  auto preprocess = std::make_shared<std::string>();
  info->add_option("--model", *path, "Model checkpoint or TorchScript file")->required();
  info->add_option("--preprocess", *preprocess, "TorchScript: preprocessing JSON (default: MODEL.json)");
  add_global_options(*info);
  info->callback([path, preprocess] {
    run_command([&] {
      auto model = load_model(*path, *preprocess);
      const auto& m = model->meta();
      const auto defaults = model->default_taps();
      auto is_default = [&](std::size_t i) { return std::find(defaults.begin(), defaults.end(), i) != defaults.end(); };
      nlohmann::json taps = nlohmann::json::array();
      for (std::size_t i = 0; i < model->taps().size(); ++i) {
        const auto& t = model->taps()[i];
        taps.push_back({{"name", t.name}, {"shape", t.shape}, {"neurons", t.numel()}, {"default", is_default(i)}});
      }
      if (!global_options().json) {
        std::printf("%s: %s, input %dx%dx%d, %zu classes, weights %s\ntrained on: %s\n\n%-12s %-16s %10s\n",
                    path->c_str(), m.arch.c_str(), m.input.channels, m.input.height, m.input.width, m.num_classes(),
                    m.weights_hash.c_str(), m.data_spec.empty() ? "-" : m.data_spec.c_str(), "tap", "shape", "neurons");
        for (std::size_t i = 0; i < model->taps().size(); ++i) {
          const auto& t = model->taps()[i];
          std::string shape;
          for (auto d : t.shape) shape += (shape.empty() ? "" : "x") + std::to_string(d);
          std::printf("%-12s %-16s %10zu%s\n", t.name.c_str(), shape.c_str(), t.numel(), is_default(i) ? "  default" : "");
        }
      }
      return nlohmann::json{{"arch", m.arch},
                            {"input", {m.input.channels, m.input.height, m.input.width}},
                            {"classes", m.class_names},
                            {"weights_hash", m.weights_hash},
                            {"data", m.data_spec},
                            {"training", nlohmann::json::parse(m.training_json)},
                            {"taps", taps}};
    });
  });
}

}  // namespace imagescore::cli
