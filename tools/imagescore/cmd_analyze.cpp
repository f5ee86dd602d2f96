// imagescore analyze: accuracy per score interval and misclassification-detection
// quality of every score column, as JSON.
#include <cstdio>
#include <optional>

#include "common.hpp"
#include "imagescore/stats/analysis.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore::cli {

void add_analysis_options(CLI::App& command, AnalysisOptions& analysis, std::string& binning) {
  command.add_option("--bins", analysis.bins, "Number of score intervals")->default_val(10)->check(CLI::PositiveNumber);
  command.add_option("--binning", binning, "width (equal-width intervals) or quantile (equal counts)")->default_val("width");
  command.add_option("--resamples", analysis.bootstrap.resamples, "Bootstrap resamples for the intervals")->default_val(1000);
  command.add_option("--seed", analysis.bootstrap.seed, "Seed of the bootstrap")->default_val(0);
  command.add_option("--confidence", analysis.bootstrap.confidence, "Level of the bootstrap intervals")->default_val(0.95);
  command.add_option("--fuse", analysis.fuse, "Fused columns to add: rank:A+B, learned:FILE (comma-separated)")->delimiter(',');
}

void add_analyze_command(CLI::App& app) {
  struct Options {
    std::string scores, scores_train, out, binning = "width";
    AnalysisOptions analysis;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("analyze", "Accuracy per score interval and detection quality of every score");
  cmd->add_option("--scores", opt->scores, "Scores CSV of test images (labels needed)")->required();
  cmd->add_option("--scores-train", opt->scores_train, "Scores CSV of training images, for the interval accuracies");
  cmd->add_option("--out", opt->out, "Analysis JSON to write")->required();
  add_analysis_options(*cmd, opt->analysis, opt->binning);
  add_global_options(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto& o = *opt;
      o.analysis.binning = parse_binning(o.binning);
      const ScoreTable test = read_score_table(o.scores);
      std::optional<ScoreTable> training;
      if (!o.scores_train.empty()) training = read_score_table(o.scores_train);
      const nlohmann::json analysis = analyze_scores(test, training ? &*training : nullptr, o.analysis);
      write_file_atomic(o.out, analysis.dump(2) + "\n");
      nlohmann::json summary = {{"out", o.out}, {"images", test.rows.size()}, {"auroc", nlohmann::json::object()}};
      if (!global_options().json) std::fprintf(stderr, "%-14s %-24s %-24s %s\n", "score", "AUROC", "E-AURC", "precision top 30%");
      for (const auto& column : analysis["columns"]) {
        const auto& m = column["metrics"];
        summary["auroc"][column["name"].get<std::string>()] = m["auroc"]["value"];
        if (global_options().json) continue;
        auto cell = [](const nlohmann::json& e) {
          auto number = [](const nlohmann::json& v) { return v.is_null() ? std::string("-") : fixed(v.get<double>(), 4); };
          return number(e["value"]) + " [" + number(e["lower"]) + ", " + number(e["upper"]) + "]";
        };
        std::fprintf(stderr, "%-14s %-24s %-24s %s\n", column["name"].get<std::string>().c_str(), cell(m["auroc"]).c_str(),
                     cell(m["excess_aurc"]).c_str(), cell(m["precision_top30"]).c_str());
      }
      return summary;
    });
  });
}

}  // namespace imagescore::cli
