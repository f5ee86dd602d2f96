// imagescore detect export: pseudo-labels for a detector, from a selection and the
// detector's predictions (docs/detection.md).
#include "common.hpp"
#include "imagescore/detect/detect.hpp"

namespace imagescore::cli {

void add_detect_command(CLI::App& app) {
  struct Options {
    std::string selection, predictions, coco_images;
    ExportOptions export_options;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("detect", "Detection mode: pseudo-labels from a detector's predictions");
  cmd->require_subcommand(1);
  auto* export_cmd = cmd->add_subcommand("export", "Write the selected images' predicted boxes as VOC XML and COCO JSON");
  auto& e = opt->export_options;
  export_cmd->add_option("--selection", opt->selection, "Selection CSV from `imagescore select`")->required();
  export_cmd->add_option("--predictions", opt->predictions,
                         "The detector's predictions: a folder of VOC XML files, a COCO file, or a COCO results file")
      ->required();
  export_cmd->add_option("--coco-images", opt->coco_images, "With a COCO results file: the COCO file naming its images and categories");
  export_cmd->add_option("--min-confidence", e.min_confidence, "Drop boxes scoring below this")->default_val(0.5);
  export_cmd->add_option("--classes", e.classes, "Known class names: any other predicted class is an error")->delimiter(',');
  export_cmd->add_flag("--keep-empty", e.keep_empty, "Also write selected images left without boxes");
  export_cmd->add_option("--out-voc", e.out_voc, "Folder for one VOC XML file per image");
  export_cmd->add_option("--out-coco", e.out_coco, "COCO JSON file to write");
  add_global_options(*export_cmd);
  export_cmd->callback([opt] {
    run_command([&] {
      const auto& o = *opt;
      const Detections predictions = read_predictions(o.predictions, o.coco_images);
      const ExportSummary s = export_pseudo_labels(o.selection, predictions, o.export_options);
      if (!global_options().json)
        std::fprintf(stderr,
                     "%zu selected images: %zu written with %zu boxes; dropped %zu boxes below %g and %zu empty once "
                     "clipped; %zu images left without boxes%s\n",
                     s.selected, s.written, s.boxes, s.below_confidence, o.export_options.min_confidence, s.degenerate,
                     s.empty_images, o.export_options.keep_empty ? " (written)" : " (not written)");
      return nlohmann::json{{"selected", s.selected},
                            {"written", s.written},
                            {"boxes", s.boxes},
                            {"below_confidence", s.below_confidence},
                            {"degenerate", s.degenerate},
                            {"empty_images", s.empty_images},
                            {"out_voc", o.export_options.out_voc},
                            {"out_coco", o.export_options.out_coco}};
    });
  });
}

}  // namespace imagescore::cli
