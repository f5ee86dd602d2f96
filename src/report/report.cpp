#include "imagescore/report/report.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/scores_table.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/detect/detect.hpp"
#include "report/assets.hpp"
#include "imagescore/data/image_codec.hpp"

namespace imagescore {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kThumbnailSide = 96;   // larger images are shrunk for the gallery
constexpr std::size_t kMaxFeatureMaps = 64;

bool is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// Typed access to the run files, failing with the file and the field named.
const json& field(const json& object, const std::string& key, const std::string& where) {
  if (!object.is_object()) fail(where, "expected a JSON object");
  auto it = object.find(key);
  if (it == object.end()) fail(where, "missing field '" + key + "'");
  return *it;
}
double number(const json& value, const std::string& where) {
  if (!value.is_number()) fail(where, "expected a number");
  return value.get<double>();
}
json number_or_null(const json& value, const std::string& where) {
  return value.is_null() ? json(nullptr) : json(number(value, where));
}
std::int64_t integer(const json& value, const std::string& where) {
  if (!value.is_number_integer()) fail(where, "expected an integer");
  return value.get<std::int64_t>();
}
std::string text(const json& value, const std::string& where) {
  if (!value.is_string()) fail(where, "expected a string");
  return value.get<std::string>();
}
std::vector<std::string> texts(const json& value, const std::string& where) {
  if (!value.is_array()) fail(where, "expected an array of strings");
  std::vector<std::string> out;
  for (const auto& item : value) out.push_back(text(item, where));
  return out;
}

// Where the scores of the report come from, with the data their ids index.
struct Inputs {
  std::string scores, scores_train, data, model;
  std::string split = "test";  // a name: a VOC folder has lists such as val
  json study;       // summary of a study folder, or null
  json selftrain;   // pages of a self-training run, or null
  std::vector<std::string> study_classes;
};

// The study's summary.json, reduced to what the report shows.
json study_summary(const std::string& path, std::vector<std::string>& classes) {
  const json summary = read_json_file(path);
  classes = texts(field(summary, "classes", path), path + ": classes");
  json rows = json::array();
  for (const auto& score : score_columns()) {
    const json& precision = field(summary, "precision", path);
    if (!precision.contains(score)) continue;
    const std::string where = path + ": " + score;
    rows.push_back({{"score", score},
                    {"precision", number_or_null(field(precision[score], "overall", where), where)},
                    {"auroc", number_or_null(field(field(field(summary, "auroc", path), score, path), "overall", where), where)}});
  }
  return {{"training_images", integer(field(summary, "training_images", path), path + ": training_images")},
          {"additional_images", integer(field(summary, "additional_images", path), path + ": additional_images")},
          {"test_accuracy", number(field(summary, "test_accuracy", path), path + ": test_accuracy")},
          {"pseudo_label_accuracy", number(field(summary, "additional_pseudo_label_accuracy", path), path + ": additional_pseudo_label_accuracy")},
          {"reference_test_accuracy", number_or_null(field(summary, "reference_test_accuracy", path), path + ": reference_test_accuracy")},
          {"scores", rows}};
}

std::string class_name(const std::vector<std::string>& classes, std::int64_t id) {
  return id >= 0 && std::size_t(id) < classes.size() ? classes[std::size_t(id)] : std::to_string(id);
}

// epochs.jsonl: one row per arm, epoch (and class, for the per-class protocol). The
// accuracy drawn is the class's own for the per-class protocol, the test accuracy otherwise.
json epoch_rows(const std::string& path, const std::vector<std::string>& classes) {
  std::istringstream lines(read_file(path, std::uint64_t(1) << 30));
  json rows = json::array();
  std::string line;
  for (std::size_t number_of_line = 1; std::getline(lines, line); ++number_of_line) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number_of_line);
    json record;
    try {
      record = json::parse(line);
    } catch (const json::exception& e) {
      fail(where, std::string("not valid JSON: ") + e.what());
    }
    const std::string protocol = text(field(record, "protocol", where), where + ": protocol");
    if (protocol != "per-class" && protocol != "joint") fail(where, "protocol must be per-class or joint, got '" + protocol + "'");
    json row = {{"protocol", protocol},
                {"arm", text(field(record, "arm", where), where + ": arm")},
                {"epoch", integer(field(record, "epoch", where), where + ": epoch")},
                {"test_accuracy", number(field(record, "test_accuracy", where), where + ": test_accuracy")},
                {"added", record.contains("added") ? number_or_null(record["added"], where + ": added") : json(nullptr)},
                {"added_precision", record.contains("added_precision") ? number_or_null(record["added_precision"], where + ": added_precision") : json(nullptr)}};
    if (protocol == "per-class") {
      const std::int64_t c = integer(field(record, "class", where), where + ": class");
      const json& per_class = field(record, "per_class_accuracy", where);
      if (!per_class.is_array() || c < 0 || std::size_t(c) >= per_class.size())
        fail(where, "per_class_accuracy has no entry for class " + std::to_string(c));
      row["class"] = class_name(classes, c);
      row["accuracy"] = number(per_class[std::size_t(c)], where + ": per_class_accuracy");
    } else {
      row["class"] = nullptr;
      row["accuracy"] = row["test_accuracy"];
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) fail(path, "no records");
  return rows;
}

// stats.json: tables 1-3 and the optional assembly curve, with every value type-checked.
json stats_tables(const std::string& path) {
  const json stats = read_json_file(path);
  json rows = json::array();
  const json& input_rows = field(stats, "rows", path);
  if (!input_rows.is_array()) fail(path, "rows: expected an array");
  for (std::size_t i = 0; i < input_rows.size(); ++i) {
    const std::string where = path + ": rows[" + std::to_string(i) + "]";
    json row = {{"class", text(field(input_rows[i], "class", where), where + ".class")}};
    for (const char* key : {"baseline", "train", "diff_tb", "p_value_tb", "softmax", "diff_sb", "p_value_sb", "diff_ts"})
      row[key] = number_or_null(field(input_rows[i], key, where), where + "." + key);
    rows.push_back(std::move(row));
  }
  json tables = {{"classes", texts(field(stats, "classes", path), path + ": classes")},
                 {"rows", rows},
                 {"significant_tb", integer(field(stats, "significant_tb", path), path + ": significant_tb")},
                 {"significant_sb", integer(field(stats, "significant_sb", path), path + ": significant_sb")},
                 {"assembly", nullptr}};
  if (stats.contains("assembly") && !stats["assembly"].is_null()) {
    const json& assembly = stats["assembly"];
    const std::string where = path + ": assembly";
    json points = json::array();
    const json& epochs = field(assembly, "epochs", where);
    const json& baseline = field(assembly, "baseline", where);
    const json& assembled = field(assembly, "assembled", where);
    if (!epochs.is_array() || !baseline.is_array() || !assembled.is_array() || baseline.size() != epochs.size() ||
        assembled.size() != epochs.size())
      fail(where, "epochs, baseline and assembled must be arrays of the same length");
    for (std::size_t i = 0; i < epochs.size(); ++i)
      points.push_back({{"epoch", integer(epochs[i], where + ".epochs")},
                        {"baseline", number(baseline[i], where + ".baseline")},
                        {"assembled", number(assembled[i], where + ".assembled")}});
    tables["assembly"] = points;
  }
  return tables;
}

Inputs resolve_inputs(const ReportOptions& o) {
  if (o.scores.empty() == o.run_dir.empty()) fail_option("scores", "give exactly one of a scores file and a run folder");
  Inputs in;
  in.scores_train = o.scores_train;
  in.model = o.model;
  in.data = o.data;
  if (!o.scores.empty()) {
    in.scores = o.scores;
    in.split = o.split;
    return in;
  }
  const std::string dir = o.run_dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, "no such folder");
  auto path = [&](const std::string& name) { return (fs::path(dir) / name).string(); };
  const bool study = is_file(path("scores.csv"));
  const bool selftrain = is_file(path("epochs.jsonl")) || is_file(path("stats.json"));
  if (!study && !selftrain)
    fail(dir, "neither a study folder (scores.csv) nor a self-training run (epochs.jsonl, stats.json)");
  if (study) {
    in.scores = path("scores.csv");
    // A study scores part of the train split: its ids index that split.
    in.split = "train";
    if (in.data.empty() && is_file(path("split.json"))) in.data = load_split(path("split.json")).data_spec;
    if (in.model.empty() && is_file(path("model.safetensors"))) in.model = path("model.safetensors");
    if (is_file(path("summary.json"))) in.study = study_summary(path("summary.json"), in.study_classes);
  }
  if (selftrain) {
    json stats = is_file(path("stats.json")) ? stats_tables(path("stats.json")) : json(nullptr);
    const std::vector<std::string> classes =
        stats.is_null() ? in.study_classes : stats["classes"].get<std::vector<std::string>>();
    in.selftrain = {{"epochs", is_file(path("epochs.jsonl")) ? epoch_rows(path("epochs.jsonl"), classes) : json(nullptr)},
                    {"stats", stats}};
  }
  return in;
}

// Reads image `id` of the data set, checking that it is the image the scores row means.
std::vector<std::uint8_t> read_image(const ImageSource& source, const ScoreRow& row, const std::string& scores) {
  if (row.id >= source.size())
    fail(scores, "image id " + std::to_string(row.id) + " is beyond the " + std::to_string(source.size()) + " images of " +
                     source.spec() + " (wrong data or split?)");
  if (row.label >= 0 && source.label(row.id) != row.label)
    fail(scores, "image id " + std::to_string(row.id) + " has label " + std::to_string(row.label) + " but " +
                     source.spec() + " says " + std::to_string(source.label(row.id)) + " (wrong data or split?)");
  std::vector<std::uint8_t> pixels(source.shape().pixels());
  source.read(row.id, pixels.data());
  return pixels;
}

json gallery_item(const ScoreTable& table, std::size_t r, const std::vector<std::string>& classes,
                  const ImageSource* source) {
  const ScoreRow& row = table.rows[r];
  json values = json::array();
  for (std::size_t c = 0; c < table.value_columns.size(); ++c)
    values.push_back({{"column", table.value_columns[c]}, {"value", row.values[c]}});
  return {{"id", row.id},
          {"path", row.path},
          {"label", row.label >= 0 ? json(class_name(classes, row.label)) : json(nullptr)},
          {"pred", class_name(classes, row.pred)},
          {"correct", row.label >= 0 ? json(row.label == row.pred) : json(nullptr)},
          {"scores", values},
          {"image", source ? json(png_data_url(source->shape(), read_image(*source, row, table.path), kThumbnailSide))
                           : json(nullptr)}};
}

// The highest- and lowest-scored images of each predicted class (figure 1).
json gallery(const ScoreTable& table, const std::string& by, std::size_t count, const std::vector<std::string>& classes,
             const ImageSource* source) {
  const std::size_t column = table.column(by);
  std::size_t num_classes = classes.size();
  for (const auto& row : table.rows) num_classes = std::max(num_classes, std::size_t(row.pred) + 1);
  std::vector<std::vector<std::size_t>> rows_of_class(num_classes);
  for (std::size_t r = 0; r < table.rows.size(); ++r) rows_of_class[std::size_t(table.rows[r].pred)].push_back(r);
  json out = json::array();
  for (std::size_t c = 0; c < num_classes; ++c) {
    auto& rows = rows_of_class[c];
    if (rows.empty()) continue;
    // Score descending, id ascending: the order `select` uses.
    std::sort(rows.begin(), rows.end(), [&](std::size_t a, std::size_t b) {
      const double sa = table.rows[a].values[column], sb = table.rows[b].values[column];
      return sa != sb ? sa > sb : table.rows[a].id < table.rows[b].id;
    });
    const std::size_t shown = std::min(count, rows.size());
    json highest = json::array(), lowest = json::array();
    for (std::size_t k = 0; k < shown; ++k) highest.push_back(gallery_item(table, rows[k], classes, source));
    // Lowest first; an image already among the highest is not shown twice.
    for (std::size_t k = 0; k < shown && rows.size() - 1 - k >= shown; ++k)
      lowest.push_back(gallery_item(table, rows[rows.size() - 1 - k], classes, source));
    out.push_back({{"class", class_name(classes, std::int64_t(c))}, {"candidates", rows.size()}, {"highest", highest}, {"lowest", lowest}});
  }
  return {{"by", by}, {"count", count}, {"pixels", source != nullptr}, {"classes", out}};
}

// The first tap's activations of one image, one grey PNG per channel on a common scale
// (so that a weakly responding channel looks dark).
json feature_maps(const std::string& model_path, const ImageSource& source, const ScoreTable& table,
                  std::size_t id, const std::vector<std::string>& classes) {
  auto model = load_model(model_path);
  check_compatible(*model, source);
  const TapInfo& tap = model->taps().front();
  if (tap.shape.size() != 3) fail(model_path, "first tap '" + tap.name + "' is not a feature map (C x H x W)");
  if (id >= source.size())
    fail_option("feature_image", std::to_string(id) + " is beyond the " + std::to_string(source.size()) + " images of " + source.spec());
  ScoreRow row;
  row.id = id;
  row.label = source.label(id);
  row.path = source.path(id);
  for (const auto& scored : table.rows)
    if (scored.id == id) row = scored;
  const auto pixels = read_image(source, row, table.path);

  auto one = subset(source, {id});
  LoaderOptions loading;
  loading.batch_size = 1;
  loading.threads = 1;
  BatchLoader loader(*one, model->meta().normalization, loading);
  Batch batch;
  loader.next(batch);
  const ForwardOutput output = model->forward(batch, resolve_taps(*model, {tap.name}));
  const TapView& view = output.taps.front();
  const auto channels = std::size_t(tap.shape[0]);
  const ImageShape map_shape{1, int(tap.shape[1]), int(tap.shape[2])};
  const std::size_t plane = map_shape.pixels();
  const float* image = view.row(0);
  const auto [low, high] = std::minmax_element(image, image + view.numel);
  const float range = *high > *low ? *high - *low : 1.0f;
  json maps = json::array();
  std::vector<std::uint8_t> grey(plane);
  for (std::size_t c = 0; c < std::min(channels, kMaxFeatureMaps); ++c) {
    const float* map = image + c * plane;
    for (std::size_t p = 0; p < plane; ++p) grey[p] = std::uint8_t(std::lround(255.0f * (map[p] - *low) / range));
    maps.push_back({{"channel", c},
                    {"max", *std::max_element(map, map + plane)},
                    {"image", png_data_url(map_shape, grey, kThumbnailSide)}});
  }
  std::size_t predicted = 0;
  for (std::size_t k = 1; k < output.num_classes; ++k)
    if (output.logits[k] > output.logits[predicted]) predicted = k;
  return {{"model", model_path},
          {"tap", tap.name},
          {"shape", tap.shape},
          {"channels_shown", maps.size()},
          {"range", {*low, *high}},
          {"id", id},
          {"path", row.path},
          {"label", row.label >= 0 ? json(class_name(classes, row.label)) : json(nullptr)},
          {"pred", class_name(classes, std::int64_t(predicted))},
          {"image", png_data_url(source.shape(), pixels, kThumbnailSide)},
          {"maps", maps}};
}

}  // namespace

nlohmann::json report_data(const ReportOptions& o) {
  if (o.gallery_count == 0) fail_option("gallery_count", "must be at least 1");
  const Inputs in = resolve_inputs(o);
  if (!in.model.empty() && in.data.empty()) fail_option("model", "needs the data to read the image whose feature maps are drawn");
  if (o.feature_image && in.model.empty()) fail_option("feature_image", "needs a model");
  if (o.selection.empty() != o.detections.empty()) fail_option("detections", "a selection and detections go together");
  json data = {{"title", o.run_dir.empty() ? o.scores : o.run_dir},
               {"study", in.study},
               {"selftrain", in.selftrain},
               {"analysis", nullptr},
               {"gallery", nullptr},
               {"features", nullptr},
               {"boxes", nullptr}};
  if (in.scores.empty()) return data;

  const ScoreTable table = read_score_table(in.scores);
  if (table.rows.empty()) fail(in.scores, "no rows");
  std::optional<ScoreTable> training;
  if (!in.scores_train.empty()) training = read_score_table(in.scores_train);
  std::unique_ptr<ImageSource> source;
  if (!in.data.empty()) source = open_data(in.data, in.split);
  std::vector<std::string> classes = source && source->labelled() ? source->class_names() : in.study_classes;

  // The analysis needs labels; a pool without them still gets its gallery.
  if (table.has_labels()) data["analysis"] = analyze_scores(table, training ? &*training : nullptr, o.analysis);
  std::string by = o.gallery_by;
  if (by.empty()) {
    const auto& columns = table.value_columns;
    by = std::find(columns.begin(), columns.end(), "image_score") != columns.end() ? "image_score" : columns.front();
  }
  data["gallery"] = gallery(table, by, o.gallery_count, classes, source.get());
  if (!in.model.empty())
    data["features"] = feature_maps(in.model, *source, table, o.feature_image.value_or(table.rows.front().id), classes);
  if (!o.detections.empty())
    data["boxes"] = detection_section(table, by, {o.selection, o.detections, o.coco_images, o.min_confidence, o.detection_count});
  return data;
}

std::string json_for_script(const nlohmann::json& value) {
  // Invalid UTF-8 in a path becomes U+FFFD rather than an exception.
  const std::string dumped = value.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(dumped.size());
  // '<', '>' and '&' occur only inside JSON strings, where the \u escapes mean the same.
  for (char c : dumped) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

std::string report_html(const nlohmann::json& data) {
  using detail::report_asset;
  std::string html;
  html += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  // Nothing may leave the page: no fetch, no image or font from elsewhere. Vega compiles
  // its expressions with Function(), hence 'unsafe-eval'.
  html += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>imagescore report</title>\n<style>\n";
  html += report_asset("report.css");
  html += "</style>\n</head>\n<body>\n<main id=\"report\"></main>\n";
  html += "<script type=\"application/json\" id=\"report-data\">" + json_for_script(data) + "</script>\n";
  for (const char* script : {"vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "report.js"}) {
    html += "<script>\n";
    html += report_asset(script);
    html += "\n</script>\n";
  }
  html += "</body>\n</html>\n";
  return html;
}

void write_report(const ReportOptions& options, const std::string& out) {
  if (out.empty()) fail_option("out", "a report file is required");
  write_file_atomic(out, report_html(report_data(options)));
}

}  // namespace imagescore
