// imagescore model info: what a checkpoint holds and which taps it exposes.
// imagescore model init: a freshly initialised built-in model (a backbone to measure).
#include <algorithm>

#include "common.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/models/model.hpp"

namespace imagescore::cli {
namespace {

void add_init_command(CLI::App& model) {
  struct Options {
    std::string arch, input, normalize = "imagenet", out;
    int classes = 2;
    std::uint64_t seed = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* init = model.add_subcommand("init", "Write a randomly initialised built-in model (seeded)");
  init->add_option("--arch", opt->arch, "small-cnn, vgg16 or resnet18")->required();
  init->add_option("--input", opt->input, "Input shape CxHxW, for example 3x224x224")->required();
  init->add_option("--classes", opt->classes, "Number of output classes")->default_val(2)->check(CLI::Range(1, 100000));
  init->add_option("--seed", opt->seed, "Initialisation seed")->default_val(0);
  init->add_option("--normalize", opt->normalize, "imagenet (ImageNet means and deviations), none, or MEANS/STDS")->default_val("imagenet");
  init->add_option("--out", opt->out, "Checkpoint to write")->required();
  add_global_options(*init);
  init->callback([opt] {
    run_command([&] {
      const auto& o = *opt;
      const ImageShape input = parse_image_shape(o.input);
      const Normalization norm = parse_normalization(o.normalize, input.channels);
      std::vector<std::string> classes;
      for (int c = 0; c < o.classes; ++c) classes.push_back(std::to_string(c));
      auto created = create_model(o.arch, input, classes, norm, o.seed);
      save_model(*created, o.out);
      if (!global_options().json)
        std::fprintf(stderr, "%s: random %s, input %dx%dx%d, %d classes, seed %llu\n", o.out.c_str(), o.arch.c_str(),
                     input.channels, input.height, input.width, o.classes, static_cast<unsigned long long>(o.seed));
      return nlohmann::json{{"out", o.out}, {"arch", o.arch}, {"input", {input.channels, input.height, input.width}},
                            {"weights_hash", created->meta().weights_hash}};
    });
  });
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("model", "Inspect models, or create a random one");
  cmd->require_subcommand(1);
  add_init_command(*cmd);
  auto* info = cmd->add_subcommand("info", "List a model's taps with their shapes");
  auto preprocess = std::make_shared<std::string>();
  auto max_bytes = std::make_shared<std::uint64_t>(0);
  info->add_option("--model", *path, "Model checkpoint or TorchScript file")->required();
  info->add_option("--max-memory", *max_bytes, "Memory limit of the profile estimate, in bytes (default: half the memory)");
  info->add_option("--preprocess", *preprocess, "TorchScript: preprocessing JSON (default: MODEL.json)");
  add_global_options(*info);
  info->callback([path, preprocess, max_bytes] {
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
      // What per-class profiles over the default taps cost (issue: 1,000-class models).
      const std::uint64_t limit = memory_limit(*max_bytes);
      ProfileMemory plan;
      std::string refusal;
      try {
        plan = plan_profile_memory(*model, defaults, ProfileOptions{}, limit);
      } catch (const OptionError& e) {
        refusal = e.what();
      }
      std::uint64_t neurons = 0;
      for (auto id : defaults) neurons += model->taps()[id].numel();
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
        std::printf("\nper-class profiles over the default taps (%llu neurons, %s of activations per image in a batch):\n",
                    (unsigned long long)neurons, format_bytes(4 * neurons).c_str());
        if (refusal.empty())
          std::printf("  %s at most while building (%zu classes per pass, %zu passes), a %s file; limit %s\n",
                      format_bytes(plan.peak()).c_str(), plan.group, plan.passes(), format_bytes(plan.file_bytes()).c_str(),
                      format_bytes(limit).c_str());
        else
          std::printf("  refused: %s\n", refusal.c_str());
      }
      nlohmann::json estimate = {{"neurons", neurons}, {"limit_bytes", limit}, {"activation_bytes_per_image", 4 * neurons}};
      if (refusal.empty())
        estimate.update({{"peak_bytes", plan.peak()},
                         {"file_bytes", plan.file_bytes()},
                         {"classes_per_pass", plan.group},
                         {"passes", plan.passes()}});
      else
        estimate["refusal"] = refusal;
      return nlohmann::json{{"arch", m.arch},
                            {"input", {m.input.channels, m.input.height, m.input.width}},
                            {"classes", m.class_names},
                            {"weights_hash", m.weights_hash},
                            {"data", m.data_spec},
                            {"training", nlohmann::json::parse(m.training_json)},
                            {"taps", taps},
                            {"profile_estimate", estimate}};
    });
  });
}

}  // namespace imagescore::cli
