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
#include "imagescore/train/selftrain_records.hpp"
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
json nullable_number(const json& value, const std::string& where) {
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
  // Summaries of earlier versions list no scores: they compared the six of score_columns().
  const auto scores = json_field_or<std::vector<std::string>>(summary, "scores", score_columns(), path);
  for (const auto& score : scores) {
    const json& precision = field(summary, "precision", path);
    if (!precision.contains(score)) continue;
    const std::string where = path + ": " + score;
    rows.push_back({{"score", score},
                    {"precision", nullable_number(field(precision[score], "overall", where), where)},
                    {"auroc", nullable_number(field(field(field(summary, "auroc", path), score, path), "overall", where), where)}});
  }
  return {{"training_images", integer(field(summary, "training_images", path), path + ": training_images")},
          {"additional_images", integer(field(summary, "additional_images", path), path + ": additional_images")},
          {"test_accuracy", number(field(summary, "test_accuracy", path), path + ": test_accuracy")},
          {"pseudo_label_accuracy", number(field(summary, "additional_pseudo_label_accuracy", path), path + ": additional_pseudo_label_accuracy")},
          {"reference_test_accuracy", nullable_number(field(summary, "reference_test_accuracy", path), path + ": reference_test_accuracy")},
          {"scores", rows}};
}

std::string class_name(const std::vector<std::string>& classes, std::int64_t id) {
  return id >= 0 && std::size_t(id) < classes.size() ? classes[std::size_t(id)] : std::to_string(id);
}

// epochs.jsonl: one row per retraining run and epoch (the base run is where every curve
// starts). The accuracy drawn is the class's own for the per-class protocol, the test
// accuracy otherwise.
json epoch_rows(const std::string& path, const std::vector<std::string>& classes) {
  json rows = json::array();
  for (const auto& r : read_epoch_records(path)) {
    if (r.protocol == Protocol::Base) continue;
    json row = {{"protocol", to_string(r.protocol)},
                {"arm", r.arm},
                {"epoch", r.epoch},
                {"test_accuracy", r.test_accuracy},
                {"added", r.epoch > 0 ? json(r.added) : json(nullptr)},
                {"added_precision", number_or_null(r.added_precision())},
                {"class", nullptr},
                {"accuracy", r.test_accuracy},
                {"seed", r.seed ? json(*r.seed) : json(nullptr)}};
    if (r.protocol == Protocol::Joint) {
      rows.push_back(row);
      continue;
    }
    // A per-class run draws its class's accuracy; the per-class baseline's one run
    // serves every class.
    for (std::size_t k = 0; k < r.per_class_accuracy.size(); ++k)
      if (r.class_id < 0 || k == std::size_t(r.class_id)) {
        row["class"] = class_name(classes, std::int64_t(k));
        row["accuracy"] = number_or_null(r.per_class_accuracy[k]);
        rows.push_back(row);
      }
  }
  if (rows.empty()) fail(path, "no records of a retraining run");
  return rows;
}

// stats.json (the first table: the per-class protocol when it ran) and assembly.json.
json stats_tables(const std::string& stats_path, const std::string& assembly_path) {
  const json stats = read_json_file(stats_path);
  const StatsTable table = parse_stats_table(stats, stats_path);
  json rows = json::array();
  for (const auto& r : table.rows) {
    rows.push_back({{"class", r.class_name},
                    {"baseline", number_or_null(r.baseline)},
                    {"train", number_or_null(r.train)},
                    {"diff_tb", number_or_null(r.diff_tb)},
                    {"p_value_tb", number_or_null(r.p_value_tb)},
                    {"softmax", number_or_null(r.softmax)},
                    {"diff_sb", number_or_null(r.diff_sb)},
                    {"p_value_sb", number_or_null(r.p_value_sb)},
                    {"diff_ts", number_or_null(r.diff_ts)}});
  }
  json assembly = nullptr;
  if (is_file(assembly_path)) {
    assembly = json::array();
    for (const auto& a : parse_assembly_json(read_json_file(assembly_path), assembly_path))
      assembly.push_back({{"epoch", a.epoch},
                          {"baseline", a.baseline_arm_accuracy ? json(*a.baseline_arm_accuracy) : json(nullptr)},
                          {"assembled", a.assembled_accuracy}});
  }
  return {{"over_seeds", stats.contains("over_seeds") ? stats.at("over_seeds") : json(nullptr)},
          {"classes", json_field<std::vector<std::string>>(stats, "classes", stats_path)},
          {"rows", rows},
          {"significant_tb", table.significant_tb},
          {"significant_sb", table.significant_sb},
          {"assembly", assembly}};
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
    json stats = is_file(path("stats.json")) ? stats_tables(path("stats.json"), path("assembly.json")) : json(nullptr);
    const std::vector<std::string> classes =
        stats.is_null() ? in.study_classes : stats["classes"].get<std::vector<std::string>>();
    in.selftrain = {{"epochs", is_file(path("epochs.jsonl")) ? epoch_rows(path("epochs.jsonl"), classes) : json(nullptr)},
                    {"stats", stats}};
  }
  return in;
}

// Image `row.id` of the data set (checked by check_rows_match_data).
std::vector<std::uint8_t> read_image(const ImageSource& source, const ScoreRow& row) {
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
          {"image", source ? json(png_data_url(source->shape(), read_image(*source, row), kThumbnailSide))
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

// The first layer's feature maps of one image, with the model's caption of it.
json feature_maps(const std::string& model_path, const ImageSource& given, const ScoreTable& table,
                  std::size_t id, const std::vector<std::string>& classes) {
  auto model = load_model(model_path);
  const auto aligned = align_to_model(*model, given);
  const ImageSource& source = *aligned;
  if (id >= source.size())
    fail_option("feature_image", std::to_string(id) + " is beyond the " + std::to_string(source.size()) + " images of " + source.spec());
  ScoreRow row;
  row.id = id;
  row.label = source.label(id);
  row.path = source.path(id);
  for (const auto& scored : table.rows)
    if (scored.id == id) row = scored;
  json out = first_layer_maps(*model, model_path, source, id);
  out["model"] = model_path;
  out["path"] = row.path;
  out["label"] = row.label >= 0 ? json(class_name(classes, row.label)) : json(nullptr);
  out["pred"] = class_name(classes, out["pred"].get<std::int64_t>());
  out["image"] = png_data_url(source.shape(), read_image(source, row), kThumbnailSide);
  return out;
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
  if (!in.data.empty()) {
    source = open_data(in.data, in.split);
    check_rows_match_data(table, *source);
  }
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

void check_rows_match_data(const ScoreTable& table, const ImageSource& source) {
  for (const ScoreRow& row : table.rows) {
    if (row.id >= source.size())
      fail(table.path, "image id " + std::to_string(row.id) + " is beyond the " + std::to_string(source.size()) +
                           " images of " + source.spec() + " (wrong data or split?)");
    if (!row.path.empty() && source.path(row.id) != row.path)
      fail(table.path, "image id " + std::to_string(row.id) + " is " + row.path + " but in " + source.spec() +
                           " it is " + source.path(row.id) + " (wrong data or split?)");
    if (row.path.empty() && row.label >= 0 && source.label(row.id) != row.label)
      fail(table.path, "image id " + std::to_string(row.id) + " has label " + std::to_string(row.label) + " but " +
                           source.spec() + " says " + std::to_string(source.label(row.id)) + " (wrong data or split?)");
  }
}

nlohmann::json first_layer_maps(Model& model, const std::string& model_name, const ImageSource& source, std::size_t id) {
  const TapInfo& tap = model.taps().front();
  if (tap.shape.size() != 3) fail(model_name, "first tap '" + tap.name + "' is not a feature map (C x H x W)");
  auto one = subset(source, {id});
  LoaderOptions loading;
  loading.batch_size = 1;
  loading.threads = 1;
  BatchLoader loader(*one, model.meta().normalization, loading);
  Batch batch;
  loader.next(batch);
  const ForwardOutput output = model.forward(batch, resolve_taps(model, {tap.name}));
  const TapView& view = output.taps.front();
  const auto channels = std::size_t(tap.shape[0]);
  const ImageShape map_shape{1, int(tap.shape[1]), int(tap.shape[2])};
  const std::size_t plane = map_shape.pixels();
  const float* image = view.row(0);
  // One grey PNG per channel on a common scale, so that a weakly responding channel looks dark.
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
  return {{"tap", tap.name},
          {"shape", tap.shape},
          {"channels_shown", maps.size()},
          {"range", {*low, *high}},
          {"id", id},
          {"pred", predicted},
          {"maps", maps}};
}

std::string_view chart_library(const std::string& name) {
  if (name != "vega.min.js" && name != "vega-lite.min.js") fail("report", "no chart library '" + name + "'");
  return detail::report_asset(name);
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
