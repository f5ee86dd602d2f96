// imagescore report: one self-contained HTML page with the analysis, a gallery, feature
// maps and, for a self-training run, its curves and tables.
#include "common.hpp"
#include "imagescore/report/report.hpp"

namespace imagescore::cli {

void add_report_command(CLI::App& app) {
  struct Options {
    ReportOptions report;
    std::string out, binning = "width";
    std::size_t feature_image = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("report", "Write an HTML report of a scores file, a study or a self-training run");
  auto& r = opt->report;
  auto* scores = cmd->add_option("--scores", r.scores, "Scores CSV");
  auto* run = cmd->add_option("--run", r.run_dir, "A study folder or a self-training run folder");
  scores->excludes(run);
  cmd->add_option("--scores-train", r.scores_train, "Scores CSV of training images, for the interval charts");
  cmd->add_option("--data", r.data, "Data spec the scores' ids index (for the gallery and feature maps)");
  auto* split = cmd->add_option("--split", r.split, "With --scores: the split of --data the ids index (train or test; a VOC list)")
                    ->default_val("test");
  split->excludes(run);
  cmd->add_option("--model", r.model, "Model checkpoint, for the first layer's feature maps");
  auto* feature = cmd->add_option("--feature-image", opt->feature_image, "Id of the image whose feature maps are drawn");
  cmd->add_option("--gallery-by", r.gallery_by, "Score column ranking the gallery (default: image_score)");
  cmd->add_option("--gallery-count", r.gallery_count, "Highest and lowest images shown per class")->default_val(4);
  cmd->add_option("--selection", r.selection, "Detection mode: selection CSV made from the scores");
  cmd->add_option("--detections", r.detections, "Detection mode: predictions, a folder of VOC XML files or a COCO file");
  cmd->add_option("--coco-images", r.coco_images, "With a COCO results file as --detections: the COCO file naming its images");
  cmd->add_option("--min-confidence", r.min_confidence, "Detection mode: boxes scoring below are drawn dashed")->default_val(0.5);
  cmd->add_option("--detection-count", r.detection_count, "Detection mode: selected and rejected images shown")->default_val(12);
  add_analysis_options(*cmd, r.analysis, opt->binning);
  cmd->add_option("--out", opt->out, "HTML file to write")->required();
  add_global_options(*cmd);
  cmd->callback([opt, feature] {
    run_command([&] {
      auto& o = *opt;
      o.report.analysis.binning = parse_binning(o.binning);
      if (*feature) o.report.feature_image = o.feature_image;
      write_report(o.report, o.out);
      if (!global_options().json) std::fprintf(stderr, "report -> %s\n", o.out.c_str());
      return nlohmann::json{{"out", o.out}};
    });
  });
}

}  // namespace imagescore::cli
