// Pseudo-labels: the selected images' predicted boxes as VOC XML files and a COCO file.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "imagescore/data/image_codec.hpp"
#include "detect/detect_detail.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore {
namespace {
namespace fs = std::filesystem;

// A predicted box ready to be written: above the threshold, clipped to the image and
// rounded to whole pixels (VOC stores whole pixels). False if nothing is left of it.
bool whole_pixel_box(Box& box, int width, int height) {
  box.xmin = std::round(std::clamp(box.xmin, 0.0, double(width)));
  box.xmax = std::round(std::clamp(box.xmax, 0.0, double(width)));
  box.ymin = std::round(std::clamp(box.ymin, 0.0, double(height)));
  box.ymax = std::round(std::clamp(box.ymax, 0.0, double(height)));
  return box.xmax > box.xmin && box.ymax > box.ymin;
}

}  // namespace

Detections read_predictions(const std::string& predictions, const std::string& coco_images) {
  std::error_code ec;
  if (fs::is_directory(predictions, ec)) {
    if (!coco_images.empty()) fail_option("coco_images", "only used with a COCO results file, not a folder of VOC XML files");
    return read_voc_folder(predictions);
  }
  if (!coco_images.empty()) return read_coco_results(predictions, coco_images);
  return read_coco(predictions);
}

void check_classes(const Detections& detections, const std::vector<std::string>& classes) {
  const std::set<std::string> known(classes.begin(), classes.end());
  std::string list;
  for (const auto& name : classes) list += (list.empty() ? "" : ", ") + name;
  for (const auto& image : detections.images)
    for (const auto& box : image.boxes)
      if (!known.count(box.class_name))
        fail(image.origin, "unknown class '" + box.class_name + "' (classes: " + list + ")");
}

ExportSummary export_pseudo_labels(const std::string& selection_path, const Detections& predictions,
                                   const ExportOptions& options) {
  if (options.out_voc.empty() && options.out_coco.empty()) fail_option("out_voc", "nothing to write: give a VOC folder, a COCO file or both");
  if (!std::isfinite(options.min_confidence)) fail_option("min_confidence", "must be a finite number");
  if (!options.classes.empty()) check_classes(predictions, options.classes);
  const std::vector<SelectionRow> selection = read_selection(selection_path);

  std::map<std::string, const ImageBoxes*> predicted;
  for (const auto& image : predictions.images) predicted.emplace(image.file_name, &image);
  std::map<std::string, std::string> selected_names, written_stems;

  ExportSummary summary;
  summary.selected = selection.size();
  summary.exported.categories = predictions.categories;
  for (const SelectionRow& row : selection) {
    const std::string name = detail::file_name_of(row.path);
    auto [previous, fresh] = selected_names.emplace(name, row.path);
    if (!fresh)
      fail(selection_path, "images " + previous->second + " and " + row.path + " share the file name '" + name +
                               "' (predictions are matched by file name)");
    const auto match = predicted.find(name);
    if (match == predicted.end())
      fail(selection_path, "no predictions for the selected image '" + name + "' (" + row.path +
                               "; predictions are matched by file name)");
    const ImageShape shape = read_image_header(read_file(row.path, std::uint64_t(1) << 30), row.path);
    ImageBoxes image;
    image.file_name = name;
    image.id = match->second->id;
    image.width = shape.width;
    image.height = shape.height;
    image.depth = shape.channels;
    image.origin = row.path;
    for (Box box : match->second->boxes) {
      if (box.score < options.min_confidence) {
        ++summary.below_confidence;
      } else if (!whole_pixel_box(box, shape.width, shape.height)) {
        ++summary.degenerate;
      } else {
        image.boxes.push_back(std::move(box));
      }
    }
    if (image.boxes.empty()) {
      ++summary.empty_images;
      if (!options.keep_empty) continue;
    }
    summary.boxes += image.boxes.size();
    summary.exported.images.push_back(std::move(image));
  }
  // Images without a COCO id (VOC predictions) are numbered in the order written.
  for (std::size_t i = 0; i < summary.exported.images.size(); ++i)
    if (summary.exported.images[i].id == 0) summary.exported.images[i].id = std::int64_t(i + 1);
  summary.written = summary.exported.images.size();

  if (!options.out_voc.empty()) {
    make_directories(options.out_voc);
    for (const auto& image : summary.exported.images) {
      const std::string stem = fs::path(image.file_name).stem().string();
      auto [previous, fresh] = written_stems.emplace(stem, image.file_name);
      if (!fresh)
        fail(options.out_voc, "images '" + previous->second + "' and '" + image.file_name + "' would both be " + stem + ".xml");
    }
    for (const auto& image : summary.exported.images)
      write_file_atomic((fs::path(options.out_voc) / (fs::path(image.file_name).stem().string() + ".xml")).string(), voc_xml(image));
  }
  if (!options.out_coco.empty()) write_file_atomic(options.out_coco, coco_json(summary.exported));
  return summary;
}

}  // namespace imagescore
