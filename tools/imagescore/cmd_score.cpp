// imagescore score: image score and baseline scores of every image, as CSV.
#include "common.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/pipeline/profile_and_score.hpp"
#include "imagescore/score/registry.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/stats/score_summary.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore::cli {

void add_score_command(CLI::App& app) {
  struct Options {
    std::string model, preprocess;
    std::string profiles;
    DataOptions data;
    std::string out;
    std::string overlap = "recall";
    std::string by;
    ScoreRunOptions run;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("score", "Score images: image score and baseline confidence scores");
  cmd->add_option("--model", opt->model, "Model checkpoint or TorchScript file")->required();
  cmd->add_option("--preprocess", opt->preprocess, "TorchScript: preprocessing JSON (default: MODEL.json)");
  cmd->add_option("--profiles", opt->profiles, "Reference (profile) file from `imagescore profile`")->required();
  std::string scores_help = "Scores to compute, comma-separated (default: every cheap score the profile file allows):";
  for (const auto& info : score_registry()) scores_help += "\n  " + info.name + (info.costly ? " (costly)" : "") + ": " + info.summary;
  cmd->add_option("--scores", opt->run.scores, scores_help)->delimiter(',');
  cmd->add_option("--mc-passes", opt->run.mc_passes, "mc_dropout: forward passes with dropout")->default_val(10);
  cmd->add_option("--tta-passes", opt->run.tta_passes, "tta: augmented forward passes")->default_val(8);
  cmd->add_option("--tta-padding", opt->run.tta_padding, "tta: crop padding (default: an eighth of the smaller side)")->default_val(0);
  cmd->add_option("--seed", opt->run.seed, "mc_dropout, tta: seed of the masks and augmentations")->default_val(0);
  add_data_options(*cmd, opt->data, "test", false);
  cmd->add_option("--out", opt->out, "Scores CSV to write")->required();
  cmd->add_option("--overlap", opt->overlap, "recall (default), literal or jaccard")->default_val("recall");
  cmd->add_option("--floor", opt->run.image_score.floor, "Floor of each tap's overlap (default: half a neuron, 1/(2|M|))");
  cmd->add_option("--by", opt->by, "Profile that scores an image: predicted (default), label or global");
  cmd->add_flag("--per-tap", opt->run.per_tap, "Also write each tap's term of the score");
  cmd->add_option("--batch-size", opt->run.batch_size, "Batch size")->default_val(256)->check(CLI::PositiveNumber);
  add_global_options(*cmd);
  add_device_option(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto& o = *opt;
      if (o.data.spec.empty() && o.data.split_file.empty()) fail("score", "--data is required");
      o.run.image_score.overlap = parse_overlap(o.overlap);
      o.run.threads = global_options().threads;
      o.run.quiet = global_options().quiet;
      auto model = load_model(o.model, o.preprocess);
      auto set = load_reference(o.profiles);
      check_reference_matches(set, *model, o.profiles);
      o.run.by = !o.by.empty() ? parse_profile_choice(o.by)
                               : (set.options.profile.global ? ProfileChoice::Global : ProfileChoice::Predicted);
      auto source = open_selected_data(o.data, "additional", model.get());
      auto scored = score_to_file(*model, set, *source, o.run, o.out);
      if (!scored) return nlohmann::json(nullptr);  // rank 0 reports
      const auto& summary = *scored;
      if (!global_options().json) {
        std::fprintf(stderr, "scored %zu images -> %s\n", summary.images, o.out.c_str());
        if (!summary.auroc.empty()) {
          std::fprintf(stderr, "accuracy %.4f; AUROC of telling right from wrong predictions:\n", summary.accuracy());
          for (const auto& [name, value] : summary.auroc) std::fprintf(stderr, "  %-12s %s\n", name.c_str(), fixed(value, 4).c_str());
        }
      }
      nlohmann::json result = summary.to_json();
      result["out"] = o.out;
      return result;
    });
  });
}

}  // namespace imagescore::cli
