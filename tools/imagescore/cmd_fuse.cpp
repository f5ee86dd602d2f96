// imagescore fuse: learn a combination of score columns on held-out labelled images.
#include "common.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/stats/logistic.hpp"

namespace imagescore::cli {

void add_fuse_command(CLI::App& app) {
  struct Options {
    std::string scores, out;
    std::vector<std::string> columns;
    FusionFitOptions fit;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "fuse", "Learn a logistic combination of score columns on held-out labelled images (use it as learned:FILE)");
  cmd->add_option("--scores", opt->scores,
                  "Scores of labelled images the model was not trained on, and not the images it will select from")
      ->required();
  cmd->add_option("--columns", opt->columns, "Columns to combine (comma-separated)")->delimiter(',')->required();
  cmd->add_option("--folds", opt->fit.folds, "Cross-validation folds that choose the L2 penalty")->default_val(5);
  cmd->add_option("--seed", opt->fit.seed, "Seed of the folds")->default_val(0);
  cmd->add_option("--out", opt->out, "Fusion file to write (JSON)")->required();
  add_global_options(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      const auto fusion = fit_learned_fusion(read_score_table(opt->scores), opt->columns, opt->fit);
      write_file_atomic(opt->out, fusion.to_json().dump(2) + "\n");
      if (!global_options().json) {
        std::fprintf(stderr, "fitted on %zu images (%zu wrong), penalty %g by %zu-fold cross-validation -> %s\n",
                     fusion.images, fusion.errors, fusion.penalty, fusion.folds, opt->out.c_str());
        for (std::size_t c = 0; c < fusion.columns.size(); ++c)
          std::fprintf(stderr, "  %-18s weight %+.4f per standard deviation\n", fusion.columns[c].c_str(), fusion.weights[c]);
      }
      auto summary = fusion.to_json();
      summary["out"] = opt->out;
      return summary;
    });
  });
}

}  // namespace imagescore::cli
