// imagescore select: pick pseudo-labelled images by any score column.
#include "common.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/score/fusion.hpp"
#include "imagescore/select/select.hpp"

namespace imagescore::cli {

void add_select_command(CLI::App& app) {
  struct Options {
    std::string scores;
    std::string by = "image_score";
    std::string out;
    double fraction = -1;
    std::vector<double> alpha;
    std::size_t top = 0;
    double min_score = 0;
    bool global = false;
    std::size_t classes = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("select", "Select images per predicted class by a score");
  cmd->add_option("--scores", opt->scores, "Scores CSV from `imagescore score`")->required();
  cmd->add_option("--by", opt->by, "Score column to rank by, or a fusion: rank:A+B, learned:FILE (docs/method.md)")->default_val("image_score");
  auto* fraction = cmd->add_option("--fraction", opt->fraction, "Keep this share of each class's candidates");
  auto* alpha = cmd->add_option("--alpha", opt->alpha, "One fraction per class (comma-separated)")->delimiter(',');
  auto* top = cmd->add_option("--top", opt->top, "Keep this many per class (overall with --global)");
  auto* min = cmd->add_option("--min-score", opt->min_score, "Keep every image scoring at least this");
  fraction->excludes(alpha)->excludes(top)->excludes(min);
  alpha->excludes(top)->excludes(min);
  top->excludes(min);
  cmd->add_flag("--global", opt->global, "Rank all images together instead of per predicted class");
  cmd->add_option("--classes", opt->classes, "Number of classes (default: largest class id + 1)");
  cmd->add_option("--out", opt->out, "Selection CSV to write (id,path,pseudo_label,score)")->required();
  add_global_options(*cmd);
  cmd->callback([opt, fraction, alpha, top, min] {
    run_command([&] {
      auto& o = *opt;
      SelectOptions so;
      so.global = o.global;
      if (*fraction) {
        so.rule = SelectOptions::Rule::Fraction;
        so.fraction = o.fraction;
      } else if (*alpha) {
        so.rule = SelectOptions::Rule::Alpha;
        so.alpha = o.alpha;
      } else if (*top) {
        so.rule = SelectOptions::Rule::Top;
        so.top = o.top;
      } else if (*min) {
        so.rule = SelectOptions::Rule::MinScore;
        so.min_score = o.min_score;
      } else {
        fail("select", "give one of --fraction, --alpha, --top or --min-score");
      }
      auto table = read_score_table(o.scores);
      add_fused_column(table, o.by);  // a fused column is computed; a missing one fails, naming the file
      const std::size_t classes = o.classes ? o.classes : class_count(table, so);
      auto selected = select_rows(table, o.by, so, classes);
      write_selection(o.out, table, o.by, selected);
      auto stats = selection_stats(table, selected, classes);
      if (!global_options().json) {
        std::fprintf(stderr, "selected %zu of %zu images by %s -> %s\n", stats.overall.selected, table.rows.size(),
                     o.by.c_str(), o.out.c_str());
        if (table.has_labels())
          std::fprintf(stderr, "precision of the pseudo-labels: %s\n", fixed(stats.overall.precision(), 4).c_str());
      }
      auto summary = selection_json(stats, table.has_labels());
      summary["out"] = o.out;
      summary["by"] = o.by;
      return summary;
    });
  });
}

}  // namespace imagescore::cli
