// COCO: data set files (images, annotations, categories), results files, and the images
// of a COCO file as a source for the backbone.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "detect/detect_detail.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

json read_json(const std::string& path) {
  const std::string text = read_file(path, std::uint64_t(1) << 32);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
}

const json& member(const json& object, const char* key, const std::string& where) {
  if (!object.is_object()) fail(where, "expected a JSON object");
  auto it = object.find(key);
  if (it == object.end()) fail(where, std::string("missing \"") + key + "\"");
  return *it;
}

const json& array_member(const json& object, const char* key, const std::string& where) {
  const json& value = member(object, key, where);
  if (!value.is_array()) fail(where, std::string("\"") + key + "\" is not an array");
  return value;
}

std::int64_t integer(const json& value, const std::string& where, const char* key) {
  if (!value.is_number_integer()) fail(where, std::string("\"") + key + "\" is not an integer");
  return value.get<std::int64_t>();
}

double finite_number(const json& value, const std::string& where, const char* key) {
  if (!value.is_number() || !std::isfinite(value.get<double>())) fail(where, std::string("\"") + key + "\" is not a finite number");
  return value.get<double>();
}

// A side of an image: a non-negative int, 0 where the file leaves it out.
int image_side(const json& image, const char* key, const std::string& where) {
  if (!image.contains(key)) return 0;
  const std::int64_t side = integer(image[key], where, key);
  if (side < 0 || side > 1000000) fail(where, std::string("\"") + key + "\" " + std::to_string(side) + " is out of range");
  return int(side);
}

// The "images" and "categories" of a COCO file, with lookups by id.
struct CocoIndex {
  Detections detections;
  std::map<std::int64_t, std::size_t> image_of_id;          // position in detections.images
  std::map<std::int64_t, std::string> category_of_id;
  std::vector<std::string> image_file_names;                 // "file_name" as written (may hold folders)
};

CocoIndex index_coco(const json& root, const std::string& path) {
  CocoIndex index;
  const json& images = array_member(root, "images", path);
  for (std::size_t i = 0; i < images.size(); ++i) {
    const std::string where = path + ": images[" + std::to_string(i) + "]";
    const json& entry = images[i];
    ImageBoxes image;
    image.id = integer(member(entry, "id", where), where, "id");
    const json& file_name = member(entry, "file_name", where);
    if (!file_name.is_string() || file_name.get<std::string>().empty()) fail(where, "\"file_name\" is not a non-empty string");
    image.file_name = detail::file_name_of(file_name.get<std::string>());
    image.width = image_side(entry, "width", where);
    image.height = image_side(entry, "height", where);
    image.origin = path + ": image '" + image.file_name + "'";
    if (!index.image_of_id.emplace(image.id, i).second) fail(where, "image id " + std::to_string(image.id) + " appears twice");
    index.image_file_names.push_back(file_name.get<std::string>());
    index.detections.images.push_back(std::move(image));
  }
  detail::check_unique_file_names(index.detections.images, path);
  const json& categories = array_member(root, "categories", path);
  for (std::size_t i = 0; i < categories.size(); ++i) {
    const std::string where = path + ": categories[" + std::to_string(i) + "]";
    const std::int64_t id = integer(member(categories[i], "id", where), where, "id");
    const json& name = member(categories[i], "name", where);
    if (!name.is_string() || name.get<std::string>().empty()) fail(where, "\"name\" is not a non-empty string");
    if (!index.category_of_id.emplace(id, name.get<std::string>()).second)
      fail(where, "category id " + std::to_string(id) + " appears twice");
    index.detections.categories.push_back({id, name.get<std::string>()});
  }
  return index;
}

// Adds the annotations or results in `entries` to the images of `index`. Results must
// carry a score; annotations may.
void add_boxes(CocoIndex& index, const json& entries, const std::string& where_prefix, bool score_required) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string where = where_prefix + "[" + std::to_string(i) + "]";
    const json& entry = entries[i];
    const std::int64_t image_id = integer(member(entry, "image_id", where), where, "image_id");
    const auto image_it = index.image_of_id.find(image_id);
    if (image_it == index.image_of_id.end()) fail(where, "unknown image_id " + std::to_string(image_id));
    const std::int64_t category_id = integer(member(entry, "category_id", where), where, "category_id");
    const auto category_it = index.category_of_id.find(category_id);
    if (category_it == index.category_of_id.end()) fail(where, "unknown category_id " + std::to_string(category_id));
    const json& bbox = member(entry, "bbox", where);
    if (!bbox.is_array() || bbox.size() != 4) fail(where, "\"bbox\" is not [x, y, width, height]");
    double xywh[4];
    for (std::size_t k = 0; k < 4; ++k) xywh[k] = finite_number(bbox[k], where, "bbox");
    if (!(xywh[2] > 0) || !(xywh[3] > 0)) fail(where, "\"bbox\" has no area (width and height must be > 0)");
    Box box;
    box.class_name = category_it->second;
    box.xmin = xywh[0];
    box.ymin = xywh[1];
    box.xmax = xywh[0] + xywh[2];
    box.ymax = xywh[1] + xywh[3];
    if (entry.contains("iscrowd")) {
      const std::int64_t crowd = integer(entry["iscrowd"], where, "iscrowd");
      if (crowd != 0 && crowd != 1) fail(where, "\"iscrowd\" is not 0 or 1");
      box.difficult = crowd == 1;
    }
    if (score_required || entry.contains("score")) box.score = finite_number(member(entry, "score", where), where, "score");
    ImageBoxes& image = index.detections.images[image_it->second];
    if (image.width > 0 && image.height > 0) detail::clip_to_image(box, image.width, image.height, where);
    image.boxes.push_back(std::move(box));
  }
}

}  // namespace

std::unique_ptr<ImageSource> open_coco_images(const std::string& location, const std::string& spec) {
  auto [files, fit] = detail::split_detection_fit(location, spec);
  const std::size_t colon = files.find(':');
  const std::string path = files.substr(0, colon);
  if (path.empty()) fail("data spec '" + spec + "'", "missing the COCO file");
  const fs::path image_dir = colon != std::string::npos ? fs::path(files.substr(colon + 1)) : fs::path(path).parent_path();
  std::error_code ec;
  if (!image_dir.empty() && !fs::is_directory(image_dir, ec)) fail(image_dir.string(), "no such folder (the images of " + path + ")");
  const CocoIndex index = index_coco(read_json(path), path);
  if (index.image_file_names.empty()) fail(path, "lists no images");
  std::vector<std::string> paths;
  for (const auto& name : index.image_file_names) {
    const fs::path image = image_dir / name;
    if (!fs::is_regular_file(image, ec)) fail(image.string(), "image of " + path + " not found");
    paths.push_back(image.string());
  }
  return open_fitted_images(spec, std::move(paths), fit);
}

namespace {
// coco:FILE[:IMAGE_DIR][@HxW[,letterbox|stretch]] opens with the data specs of every command (a COCO
// file has no splits: the split asked for is ignored).
[[maybe_unused]] const bool kCocoKindRegistered = (register_data_kind({"coco", "coco:FILE[:IMAGE_DIR][@HxW[,letterbox|stretch]]", "file",
                                                                       [](const std::string& location, const std::string&,
                                                                          const std::string& spec) {
                                                                         return open_coco_images(location, spec);
                                                                       }}),
                                                   true);
}  // namespace

Detections read_coco(const std::string& path) {
  const json root = read_json(path);
  CocoIndex index = index_coco(root, path);
  if (root.contains("annotations")) add_boxes(index, array_member(root, "annotations", path), path + ": annotations", false);
  return std::move(index.detections);
}

Detections read_coco_results(const std::string& results_path, const std::string& images_path) {
  const json results = read_json(results_path);
  if (!results.is_array()) fail(results_path, "not a COCO results file (expected a JSON array of detections)");
  CocoIndex index = index_coco(read_json(images_path), images_path);
  add_boxes(index, results, results_path, true);
  return std::move(index.detections);
}

std::string coco_json(const Detections& detections) {
  // Whole numbers are written as integers (the export rounds boxes to whole pixels).
  auto number = [](double value) {
    return std::floor(value) == value && std::fabs(value) < 9e15 ? json(std::int64_t(value)) : json(value);
  };
  std::map<std::string, std::int64_t> category_ids;
  json categories = json::array();
  for (const auto& category : detections.categories) {
    category_ids.emplace(category.name, category.id);
    categories.push_back({{"id", category.id}, {"name", category.name}});
  }
  json images = json::array(), annotations = json::array();
  for (const auto& image : detections.images) {
    images.push_back({{"id", image.id}, {"file_name", image.file_name}, {"width", image.width}, {"height", image.height}});
    for (const auto& box : image.boxes) {
      const auto category = category_ids.find(box.class_name);
      if (category == category_ids.end()) fail(image.origin, "class '" + box.class_name + "' is not among the categories");
      const double width = box.xmax - box.xmin, height = box.ymax - box.ymin;
      annotations.push_back({{"id", std::int64_t(annotations.size() + 1)},
                             {"image_id", image.id},
                             {"category_id", category->second},
                             {"bbox", {number(box.xmin), number(box.ymin), number(width), number(height)}},
                             {"area", number(width * height)},
                             {"iscrowd", box.difficult ? 1 : 0},
                             {"score", box.score}});
    }
  }
  return json{{"images", images}, {"annotations", annotations}, {"categories", categories}}.dump(1) + "\n";
}

}  // namespace imagescore
