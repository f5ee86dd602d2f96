// The HTML report: one self-contained file (charts, data and thumbnails inlined; no
// network request) drawing the analysis of a scores file, a gallery of the highest- and
// lowest-scored images, first-layer feature maps, and the pages of a self-training run.
// Sections are described in docs/report.md.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/data/data.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/scores_table.hpp"
#include "imagescore/stats/analysis.hpp"

namespace imagescore {

struct ReportOptions {
  // Exactly one of scores and run_dir.
  std::string scores;         // a scores CSV
  std::string run_dir;        // a study folder (scores.csv, split.json, model.safetensors)
                              // or a self-training run (epochs.jsonl, stats.json)
  std::string scores_train;   // optional: scores of training images, for the interval charts
  // Pixels for the gallery and the feature maps: the data set the scores' ids index.
  // For a study folder they default to split.json's data, train split.
  std::string data;
  std::string split = "test";
  std::string model;                         // for the feature maps (a study's own by default)
  std::optional<std::size_t> feature_image;  // id of the image (default: the first scored one)
  std::string gallery_by;                    // column ranking the gallery (default: image_score, else the first)
  std::size_t gallery_count = 4;             // highest and lowest per predicted class
  // Detection mode (docs/detection.md): the selected and rejected images with their
  // predicted boxes, when a selection and predictions are given.
  std::string selection;                     // selection CSV made from the scores
  std::string detections;                    // folder of VOC XML files or a COCO file
  std::string coco_images;                   // with a COCO results file: its images file
  double min_confidence = 0.5;               // boxes below are drawn dashed
  std::size_t detection_count = 12;          // selected and rejected images shown
  AnalysisOptions analysis;
};

// Gathers everything the options name into the page's data (the JSON embedded in the
// page), failing with an Error naming the file or option of any bad input.
nlohmann::json report_data(const ReportOptions& options);

// The page around that data: inlined scripts and style, the data as JSON.
std::string report_html(const nlohmann::json& data);

// JSON text that is safe inside a <script> element: '<', '>' and '&' are written as
// \u003c, \u003e and \u0026 (valid JSON, so the text still parses to the same value).
std::string json_for_script(const nlohmann::json& value);

// Fails unless every row of the scores file names the image the data set has at its id
// (by path; by label where a row has no path), so that no thumbnail shows another image
// than its caption.
void check_rows_match_data(const ScoreTable& table, const ImageSource& source);

// The first tap's activations of image `id` of `source` (as the model reads it:
// align_to_model), one grey PNG data URL per channel (at most 64) on a common scale:
// {tap, shape, channels_shown, range, id, pred (class id), maps: [{channel, max, image}]}.
// `model_name` names the model in errors.
nlohmann::json first_layer_maps(Model& model, const std::string& model_name, const ImageSource& source, std::size_t id);

// The chart libraries the report inlines, for the library's other pages (the explorer):
// "vega.min.js" or "vega-lite.min.js".
std::string_view chart_library(const std::string& name);

// report_html(report_data(options)) written atomically to `out`.
void write_report(const ReportOptions& options, const std::string& out);

}  // namespace imagescore
