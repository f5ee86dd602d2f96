#include <nlohmann/json.hpp>

#include "imagescore/detect/detect.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "detect/detect_detail.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/data/image_codec.hpp"

namespace imagescore {
namespace {

using json = nlohmann::json;

constexpr int kThumbnailSide = 192;

json card(const ScoreRow& row, double score, const ImageBoxes* predicted, double min_confidence) {
  ImageShape shape;
  const std::vector<std::uint8_t> pixels = decode_rgb(row.path, shape);
  const double scale = std::min(1.0, double(kThumbnailSide) / std::max(shape.width, shape.height));
  const int width = std::max(1, int(std::lround(shape.width * scale)));
  const int height = std::max(1, int(std::lround(shape.height * scale)));
  const ImageShape thumbnail{3, height, width};
  const std::vector<std::uint8_t> small = resize_image(pixels, shape, width, height);
  json boxes = json::array();
  if (predicted)
    for (const Box& box : predicted->boxes)
      boxes.push_back({{"class", box.class_name},
                       {"score", box.score},
                       {"xmin", box.xmin},
                       {"ymin", box.ymin},
                       {"xmax", box.xmax},
                       {"ymax", box.ymax},
                       {"kept", box.score >= min_confidence}});
  return {{"id", row.id},
          {"path", row.path},
          {"score", score},
          {"width", shape.width},
          {"height", shape.height},
          {"predicted", predicted != nullptr},
          {"boxes", boxes},
          {"image", "data:image/png;base64," + base64(encode_png(thumbnail, small.data()))}};
}

}  // namespace

json detection_section(const ScoreTable& table, const std::string& by, const DetectionSectionOptions& options) {
  if (options.count == 0) fail_option("detection_count", "must be at least 1");
  const Detections predictions = read_predictions(options.predictions, options.coco_images);
  std::map<std::string, const ImageBoxes*> predicted;
  for (const auto& image : predictions.images) predicted.emplace(image.file_name, &image);

  std::map<std::size_t, const ScoreRow*> row_of_id;
  for (const auto& row : table.rows) row_of_id.emplace(row.id, &row);
  std::set<std::size_t> selected;
  for (const SelectionRow& row : read_selection(options.selection)) {
    const auto scored = row_of_id.find(row.id);
    if (scored == row_of_id.end() || scored->second->path != row.path)
      fail(options.selection, "image " + std::to_string(row.id) + " (" + row.path + ") is not in " + table.path +
                                  " (a selection made from other scores?)");
    selected.insert(row.id);
  }

  const std::size_t column = table.column(by);
  std::vector<const ScoreRow*> order;
  for (const auto& row : table.rows) order.push_back(&row);
  // Score descending, id ascending: the order `select` uses.
  std::sort(order.begin(), order.end(), [&](const ScoreRow* a, const ScoreRow* b) {
    return a->values[column] != b->values[column] ? a->values[column] > b->values[column] : a->id < b->id;
  });
  json shown_selected = json::array(), shown_rejected = json::array();
  for (const ScoreRow* row : order) {
    json& shown = selected.count(row->id) ? shown_selected : shown_rejected;
    if (shown.size() >= options.count) continue;
    const auto match = predicted.find(detail::file_name_of(row->path));
    shown.push_back(card(*row, row->values[column], match == predicted.end() ? nullptr : match->second, options.min_confidence));
  }
  return {{"by", by},
          {"min_confidence", options.min_confidence},
          {"selected_count", selected.size()},
          {"rejected_count", table.rows.size() - selected.size()},
          {"selected", shown_selected},
          {"rejected", shown_rejected}};
}

}  // namespace imagescore
