// Pascal VOC: the image lists of a VOC folder, annotation XML files (read and written
// with pugixml), and folders of XML files.
#include <pugixml.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "imagescore/data/image_codec.hpp"
#include "detect/detect_detail.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore {
namespace {
namespace fs = std::filesystem;

constexpr std::uint64_t kMaxXmlBytes = std::uint64_t(1) << 26;

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  const std::size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) + 1 - begin);
}

bool parse_number(const std::string& text, double& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && std::isfinite(value);
}

bool parse_count(const std::string& text, int& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && value >= 0;
}

// The text of child `name` of `node` as a number, failing at `where`.
double number_child(const pugi::xml_node& node, const char* name, const std::string& where) {
  const pugi::xml_node child = node.child(name);
  if (!child) fail(where, std::string("no <") + name + ">");
  const std::string text = trim(child.child_value());
  double value = 0;
  if (!parse_number(text, value)) fail(where, std::string("<") + name + "> '" + text + "' is not a finite number");
  return value;
}

// The folder of a VOC data set and its image ids (file names without extension).
struct VocImages {
  fs::path root;
  std::vector<std::string> ids;
  std::vector<std::string> image_paths;
};

std::vector<std::string> list_ids(const fs::path& root, const std::string& list) {
  std::error_code ec;
  const fs::path lists = root / "ImageSets" / "Main";
  std::vector<std::string> ids;
  if (!fs::is_directory(lists, ec)) {
    // No lists: every annotated image.
    const fs::path annotations = root / "Annotations";
    if (!fs::is_directory(annotations, ec))
      fail(root.string(), "is not a VOC folder (no ImageSets/Main and no Annotations folder)");
    for (fs::directory_iterator it(annotations, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".xml" && it->path().filename().string().front() != '.') ids.push_back(it->path().stem().string());
    if (ec) fail(annotations.string(), "cannot list folder: " + ec.message());
    if (ids.empty()) fail(annotations.string(), "contains no *.xml files");
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  const fs::path file = lists / (list + ".txt");
  if (list.empty() || list.find_first_of("/\\") != std::string::npos || !fs::is_regular_file(file, ec)) {
    std::vector<std::string> present;
    for (fs::directory_iterator it(lists, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".txt") present.push_back(it->path().stem().string());
    std::sort(present.begin(), present.end());
    std::string names;
    for (const auto& name : present) names += (names.empty() ? "" : ", ") + name;
    fail(root.string(), "has no list ImageSets/Main/" + list + ".txt (lists: " + (names.empty() ? "none" : names) + ")");
  }
  std::istringstream lines(read_file(file.string(), kMaxXmlBytes));
  std::set<std::string> seen;
  std::string line;
  for (std::size_t number = 1; std::getline(lines, line); ++number) {
    const std::string id = trim(line);
    if (id.empty()) continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    if (id.find_first_of(" \t") != std::string::npos)
      fail(where, "expected one image name per line, got '" + id + "' (class lists with flags are not image lists)");
    if (id.find_first_of("/\\") != std::string::npos || id == "." || id == "..")
      fail(where, "'" + id + "' is not a plain image name");
    if (!seen.insert(id).second) fail(where, "'" + id + "' is listed twice");
    ids.push_back(id);
  }
  if (ids.empty()) fail(file.string(), "lists no images");
  return ids;
}

VocImages voc_images(const std::string& dir, const std::string& list) {
  VocImages images;
  images.root = dir;
  std::error_code ec;
  if (!fs::is_directory(images.root, ec)) fail(dir, "no such folder");
  images.ids = list_ids(images.root, list);
  const fs::path jpeg_images = images.root / "JPEGImages";
  for (const std::string& id : images.ids) {
    std::string found;
    for (const char* extension : {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"}) {
      const fs::path candidate = jpeg_images / (id + extension);
      if (fs::is_regular_file(candidate, ec)) {
        found = candidate.string();
        break;
      }
    }
    if (found.empty()) fail((jpeg_images / (id + ".jpg")).string(), "image '" + id + "' not found (no .jpg, .jpeg or .png)");
    images.image_paths.push_back(found);
  }
  return images;
}

// An annotation file as written, without clipping.
ImageBoxes parse_voc_xml(const std::string& path) {
  const std::string text = read_file(path, kMaxXmlBytes);
  pugi::xml_document document;
  const pugi::xml_parse_result parsed = document.load_buffer(text.data(), text.size());
  if (!parsed)
    fail(path, std::string("not valid XML (") + parsed.description() + " at byte " + std::to_string(parsed.offset) + ")");
  const pugi::xml_node root = document.child("annotation");
  if (!root) fail(path, "no <annotation> element (not a VOC annotation)");
  ImageBoxes image;
  image.origin = path;
  image.file_name = detail::file_name_of(trim(root.child_value("filename")));
  if (const pugi::xml_node size = root.child("size")) {
    const std::pair<const char*, int*> fields[] = {{"width", &image.width}, {"height", &image.height}, {"depth", &image.depth}};
    for (const auto& [name, value] : fields) {
      const std::string field = trim(size.child_value(name));
      if (!field.empty() && !parse_count(field, *value))
        fail(path, std::string("<size><") + name + "> '" + field + "' is not a non-negative integer");
    }
  }
  std::size_t index = 0;
  for (const pugi::xml_node object : root.children("object")) {
    ++index;
    const std::string name = trim(object.child_value("name"));
    std::string where = path + ": object " + std::to_string(index);
    if (name.empty()) fail(where, "has no <name>");
    where += " ('" + name + "')";
    Box box;
    box.class_name = name;
    const std::string difficult = trim(object.child_value("difficult"));
    if (difficult != "" && difficult != "0" && difficult != "1") fail(where, "<difficult> '" + difficult + "' is not 0 or 1");
    box.difficult = difficult == "1";
    if (object.child("score")) box.score = number_child(object, "score", where);
    const pugi::xml_node bndbox = object.child("bndbox");
    if (!bndbox) fail(where, "has no <bndbox>");
    const double xmin = number_child(bndbox, "xmin", where), ymin = number_child(bndbox, "ymin", where);
    const double xmax = number_child(bndbox, "xmax", where), ymax = number_child(bndbox, "ymax", where);
    if (xmin > xmax || ymin > ymax)
      fail(where, "inverted box (xmin " + format_double(xmin) + ", ymin " + format_double(ymin) + ", xmax " +
                      format_double(xmax) + ", ymax " + format_double(ymax) + ")");
    // VOC counts pixels from 1, inclusive: pixel i covers [i - 1, i].
    box.xmin = xmin - 1;
    box.ymin = ymin - 1;
    box.xmax = xmax;
    box.ymax = ymax;
    image.boxes.push_back(std::move(box));
  }
  return image;
}

void clip_boxes(ImageBoxes& image) {
  if (image.width <= 0 || image.height <= 0) return;
  for (std::size_t k = 0; k < image.boxes.size(); ++k)
    detail::clip_to_image(image.boxes[k], image.width, image.height,
                          image.origin + ": object " + std::to_string(k + 1) + " ('" + image.boxes[k].class_name + "')");
}

std::vector<Category> categories_of(const std::vector<ImageBoxes>& images) {
  std::set<std::string> names;
  for (const auto& image : images)
    for (const auto& box : image.boxes) names.insert(box.class_name);
  std::vector<Category> categories;
  for (const auto& name : names) categories.push_back({std::int64_t(categories.size() + 1), name});
  return categories;
}

}  // namespace

namespace detail {

std::string file_name_of(const std::string& path) {
  const std::size_t slash = path.find_last_of("/\\");
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void clip_to_image(Box& box, int width, int height, const std::string& where) {
  box.xmin = std::clamp(box.xmin, 0.0, double(width));
  box.xmax = std::clamp(box.xmax, 0.0, double(width));
  box.ymin = std::clamp(box.ymin, 0.0, double(height));
  box.ymax = std::clamp(box.ymax, 0.0, double(height));
  if (box.xmax <= box.xmin || box.ymax <= box.ymin)
    fail(where, "box lies outside the " + std::to_string(width) + "x" + std::to_string(height) + " image");
}

void check_unique_file_names(const std::vector<ImageBoxes>& images, const std::string& where) {
  std::map<std::string, const ImageBoxes*> seen;
  for (const auto& image : images) {
    auto [it, inserted] = seen.emplace(image.file_name, &image);
    if (!inserted)
      fail(where, "two entries for image '" + image.file_name + "' (" + it->second->origin + " and " + image.origin +
                      "); images are matched by file name");
  }
}

}  // namespace detail

bool Box::operator==(const Box& other) const {
  return class_name == other.class_name && xmin == other.xmin && ymin == other.ymin && xmax == other.xmax &&
         ymax == other.ymax && difficult == other.difficult && score == other.score;
}

const ImageBoxes* Detections::find(const std::string& file_name) const {
  for (const auto& image : images)
    if (image.file_name == file_name) return &image;
  return nullptr;
}

std::pair<std::string, InputFit> detail::split_detection_fit(const std::string& location, const std::string& spec) {
  auto [path, fit] = split_input_fit(location, spec, FitMode::Letterbox);
  if (fit && fit->mode == FitMode::Crop)
    fail("data spec '" + spec + "'", "crop would cut boxes off the images: use letterbox or stretch");
  return {path, fit.value_or(InputFit{})};
}

std::unique_ptr<ImageSource> open_voc_images(const std::string& location, const std::string& list, const std::string& spec) {
  auto [dir, fit] = detail::split_detection_fit(location, spec);
  VocImages images = voc_images(dir, list);
  return open_fitted_images(spec, std::move(images.image_paths), fit);
}

namespace {
// voc:DIR[@HxW[,letterbox|stretch]] opens with the data specs of every command.
[[maybe_unused]] const bool kVocKindRegistered =
    (register_data_kind({"voc", "voc:DIR[@HxW[,letterbox|stretch]]", "folder", open_voc_images}), true);
}  // namespace

ImageBoxes read_voc_xml(const std::string& path) {
  ImageBoxes image = parse_voc_xml(path);
  clip_boxes(image);
  return image;
}

Detections read_voc_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, "no such folder");
  std::vector<std::string> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".xml" && it->path().filename().string().front() != '.') files.push_back(it->path().string());
  if (ec) fail(dir, "cannot list folder: " + ec.message());
  if (files.empty()) fail(dir, "contains no *.xml files");
  std::sort(files.begin(), files.end());
  Detections detections;
  for (const auto& file : files) {
    ImageBoxes image = read_voc_xml(file);
    if (image.file_name.empty()) fail(file, "has no <filename> (needed to match its image)");
    detections.images.push_back(std::move(image));
  }
  detail::check_unique_file_names(detections.images, dir);
  detections.categories = categories_of(detections.images);
  return detections;
}

Detections read_voc_annotations(const std::string& location, const std::string& list) {
  const std::string dir = detail::split_detection_fit(location, "voc:" + location).first;
  const VocImages images = voc_images(dir, list);
  Detections detections;
  for (std::size_t i = 0; i < images.ids.size(); ++i) {
    ImageBoxes image = parse_voc_xml((images.root / "Annotations" / (images.ids[i] + ".xml")).string());
    // The image file itself is what scores and selections name.
    image.file_name = detail::file_name_of(images.image_paths[i]);
    if (image.width <= 0 || image.height <= 0) {
      const ImageShape shape = read_image_header(read_file(images.image_paths[i], std::uint64_t(1) << 30),
                                                         images.image_paths[i]);
      image.width = shape.width;
      image.height = shape.height;
      image.depth = shape.channels;
    }
    clip_boxes(image);
    detections.images.push_back(std::move(image));
  }
  detail::check_unique_file_names(detections.images, dir);
  detections.categories = categories_of(detections.images);
  return detections;
}

std::string voc_xml(const ImageBoxes& image) {
  pugi::xml_document document;
  pugi::xml_node root = document.append_child("annotation");
  root.append_child("folder").text().set("JPEGImages");
  root.append_child("filename").text().set(image.file_name.c_str());
  pugi::xml_node size = root.append_child("size");
  size.append_child("width").text().set(image.width);
  size.append_child("height").text().set(image.height);
  size.append_child("depth").text().set(image.depth);
  root.append_child("segmented").text().set(0);
  for (const Box& box : image.boxes) {
    pugi::xml_node object = root.append_child("object");
    object.append_child("name").text().set(box.class_name.c_str());
    object.append_child("pose").text().set("Unspecified");
    object.append_child("truncated").text().set(0);
    object.append_child("difficult").text().set(box.difficult ? 1 : 0);
    object.append_child("score").text().set(format_double(box.score).c_str());
    pugi::xml_node bndbox = object.append_child("bndbox");
    bndbox.append_child("xmin").text().set(format_double(box.xmin + 1).c_str());
    bndbox.append_child("ymin").text().set(format_double(box.ymin + 1).c_str());
    bndbox.append_child("xmax").text().set(format_double(box.xmax).c_str());
    bndbox.append_child("ymax").text().set(format_double(box.ymax).c_str());
  }
  std::ostringstream out;
  document.save(out, "  ", pugi::format_indent, pugi::encoding_utf8);
  return out.str();
}

}  // namespace imagescore
