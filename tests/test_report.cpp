#include "imagescore/report/report.hpp"

#include <nlohmann/json.hpp>

#include "imagescore/data/image_codec.hpp"
#include "imagescore/data/data.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/scores_table.hpp"
#include "report/assets.hpp"
#include "imagescore/data/image_codec.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::TempDir;
using testing::write_bytes;

using testing::kNastyClass;
using testing::kNastyFile;

std::string unbase64(const std::string& text) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    buffer = (buffer << 6) | std::uint32_t(alphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((buffer >> bits) & 0xff);
    }
  }
  return out;
}

TEST(Report, JsonForScriptEscapesMarkup) {
  const nlohmann::json value = {{"path", "</script><img src=x onerror=alert(1)>&amp;"}};
  const std::string text = json_for_script(value);
  EXPECT_EQ(text.find('<'), std::string::npos);
  EXPECT_EQ(text.find('>'), std::string::npos);
  EXPECT_EQ(text.find('&'), std::string::npos);
  EXPECT_NE(text.find("\\u003c/script\\u003e"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(text), value);
  // Invalid UTF-8 (a Latin-1 file name, say) is replaced, not fatal.
  EXPECT_NO_THROW(json_for_script(nlohmann::json{{"path", std::string("caf\xe9.png")}}));
}

TEST(Report, Base64KnownVectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\x00\x10", 3)), "/wAQ");
}

TEST(Report, PngRoundTripsThroughTheDecoder) {
  for (int channels : {1, 3}) {
    const ImageShape shape{channels, 3, 5};
    std::vector<std::uint8_t> chw(shape.pixels());
    for (std::size_t i = 0; i < chw.size(); ++i) chw[i] = std::uint8_t(i * 7);
    const std::string png = encode_png(shape, chw.data());
    EXPECT_EQ(read_image_header(png, "x.png"), shape);
    std::vector<std::uint8_t> back(shape.pixels());
    decode_image(png, "x.png", shape, back.data());
    EXPECT_EQ(back, chw);
  }
  EXPECT_ERROR_CONTAINS(encode_png(ImageShape{2, 2, 2}, nullptr), "only 1- or 3-channel");
}

TEST(Report, LargeThumbnailsAreShrunk) {
  const ImageShape shape{1, 200, 100};
  const std::vector<std::uint8_t> chw(shape.pixels(), 200);
  const std::string url = png_data_url(shape, chw, 96);
  ASSERT_EQ(url.rfind("data:image/png;base64,", 0), 0u);
  const std::string png = unbase64(url.substr(22));
  EXPECT_EQ(read_image_header(png, "thumb.png"), (ImageShape{1, 66, 33}));  // box filter of 3
  std::vector<std::uint8_t> pixels(66 * 33);
  decode_image(png, "thumb.png", ImageShape{1, 66, 33}, pixels.data());
  EXPECT_EQ(pixels.front(), 200);
}

TEST(Report, PageInlinesItsScriptsAndRequestsNothing) {
  const std::string html = report_html(nlohmann::json{{"title", "t"}});
  for (const char* asset : {"vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "report.js", "report.css"})
    EXPECT_NE(html.find(std::string(detail::report_asset(asset)).substr(0, 200)), std::string::npos) << asset;
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("sourceMappingURL"), std::string::npos);
  EXPECT_ERROR_CONTAINS(detail::report_asset("d3.js"), "no embedded asset 'd3.js'");
}

// A folder data set (test split) whose class and file names are HTML, with its scores.
struct NastyData {
  TempDir dir;
  std::string spec, scores;
  NastyData() {
    spec = testing::write_nasty_folder(dir.file("data"), 0);
    scores = dir.file("scores.csv");
    auto source = open_data(spec, SplitName::Test);
    ScoreWriter writer(scores, score_columns());
    for (std::size_t i = 0; i < source->size(); ++i) {
      ScoreRow row;
      row.id = i;
      row.path = source->path(i);
      row.label = source->label(i);
      row.pred = i == 1 ? 1 - row.label : row.label;
      row.values = std::vector<double>(score_columns().size(), double(i) / 10);
      writer.write(row);
    }
    writer.commit();
  }
};

TEST(Report, GalleryEscapesNamesFromTheData) {
  NastyData data;
  ReportOptions options;
  options.scores = data.scores;
  options.data = data.spec;
  options.gallery_count = 2;
  options.analysis.bootstrap.resamples = 10;
  const nlohmann::json page = report_data(options);
  ASSERT_TRUE(page["analysis"].is_object());
  const auto& gallery = page["gallery"];
  EXPECT_EQ(gallery["by"], "image_score");
  ASSERT_EQ(gallery["classes"].size(), 2u);
  const auto& first = gallery["classes"][0];
  EXPECT_EQ(first["class"], kNastyClass);
  EXPECT_EQ(first["candidates"], 2);  // image 1 is predicted as the other class
  EXPECT_EQ(first["highest"].size(), 2u);
  EXPECT_EQ(first["lowest"].size(), 0u);  // never the same image twice
  const auto& second = gallery["classes"][1];
  EXPECT_EQ(second["candidates"], 4);
  ASSERT_EQ(second["lowest"].size(), 2u);
  EXPECT_EQ(second["highest"][0]["id"], 5);  // scores rise with the id
  EXPECT_EQ(second["lowest"][0]["id"], 1);
  EXPECT_EQ(second["lowest"][0]["correct"], false);
  bool found = false;
  for (const auto& group : {first["highest"], first["lowest"]})
    for (const auto& item : group) {
      EXPECT_EQ(item["image"].get<std::string>().rfind("data:image/png;base64,", 0), 0u);
      found = found || item["path"].get<std::string>().find(kNastyFile) != std::string::npos;
    }
  EXPECT_TRUE(found);

  const std::string out = data.dir.file("report.html");
  write_report(options, out);
  const std::string html = testing::read_bytes(out);
  EXPECT_EQ(html.find("<img src=x"), std::string::npos);
  EXPECT_EQ(html.find("<b>bold"), std::string::npos);
  EXPECT_NE(html.find("\\u003cimg src=x onerror=alert(1)\\u003e.png"), std::string::npos);
}

TEST(Report, FeatureMapsOfTheFirstConvLayer) {
  NastyData data;
  auto model = create_model("small-cnn", ImageShape{1, 28, 28}, {kNastyClass, "plain"}, Normalization{{0.5f}, {0.25f}}, 1);
  const std::string model_path = data.dir.file("model.st");
  save_model(*model, model_path);
  ReportOptions options;
  options.scores = data.scores;
  options.data = data.spec;
  options.model = model_path;
  options.feature_image = 4;
  options.analysis.bootstrap.resamples = 10;
  const nlohmann::json features = report_data(options)["features"];
  EXPECT_EQ(features["tap"], model->taps().front().name);
  EXPECT_EQ(features["id"], 4);
  EXPECT_EQ(features["label"], "plain");
  EXPECT_EQ(features["maps"].size(), std::size_t(model->taps().front().shape[0]));
  EXPECT_LE(features["range"][0].get<double>(), features["range"][1].get<double>());

  options.feature_image = 99;
  EXPECT_ERROR_CONTAINS(report_data(options), "feature_image: 99 is beyond the 6 images");
  options.feature_image.reset();
  options.data.clear();
  EXPECT_ERROR_CONTAINS(report_data(options), "model: needs the data");
  options.model.clear();
  options.feature_image = 1;
  EXPECT_ERROR_CONTAINS(report_data(options), "feature_image: needs a model");
}

TEST(Report, RejectsScoresThatDoNotMatchTheData) {
  NastyData data;
  ReportOptions options;
  options.scores = data.scores;
  options.data = data.spec;
  options.split = "train";  // the folder has no train split
  EXPECT_ERROR_CONTAINS(report_data(options), "train");
  // Rows whose labels disagree with the images: the wrong data set.
  TempDir other;
  for (int i = 0; i < 6; ++i) {  // class a holds image 0 only, so image 1 has label 1 here
    std::vector<std::uint8_t> chw(28 * 28, 0);
    write_bytes(other.file("test/" + std::string(i == 0 ? "a" : "b") + "/" + std::to_string(i) + ".png"),
                encode_png(ImageShape{1, 28, 28}, chw.data()));
  }
  options.split = "test";
  options.data = "folder:" + other.path();
  options.gallery_count = 3;
  EXPECT_ERROR_CONTAINS(report_data(options), "wrong data or split?");
  options.gallery_count = 0;
  EXPECT_ERROR_CONTAINS(report_data(options), "gallery_count: must be at least 1");
}

void write_fake_run(const TempDir& dir) {
  write_bytes(dir.file("run/epochs.jsonl"),
              R"({"protocol": "per-class", "arm": "imagescore", "class": 1, "epoch": 0, "test_accuracy": 0.8, "per_class_accuracy": [0.7, 0.6], "added": 0, "added_correct": null, "added_precision": null})"
              "\n"
              R"({"protocol": "per-class", "arm": "imagescore", "class": 1, "epoch": 1, "test_accuracy": 0.82, "per_class_accuracy": [0.7, 0.65], "added": 10, "added_correct": 9, "added_precision": 0.9})"
              "\n\n"
              R"({"protocol": "joint", "arm": "baseline", "class": null, "epoch": 1, "test_accuracy": 0.81, "per_class_accuracy": [0.7, 0.6], "added": 0, "added_correct": null, "added_precision": null})"
              "\n");
  write_bytes(dir.file("run/stats.json"), nlohmann::json{
      {"classes", {kNastyClass, "plain"}},
      {"rows", {{{"class", kNastyClass}, {"baseline", 0.7}, {"train", 0.72}, {"diff_tb", 0.02}, {"p_value_tb", 0.01},
                 {"softmax", 0.71}, {"diff_sb", 0.01}, {"p_value_sb", 0.2}, {"diff_ts", 0.01}}}},
      {"significant_tb", 1},
      {"significant_sb", 0}}.dump());
  write_bytes(dir.file("run/assembly.json"),
              R"([{"epoch": 0, "base": 0.7, "baseline": 0.7, "assembled": 0.7, "claimed_by_none": 1, "claimed_by_several": 0},)"
              R"( {"epoch": 1, "base": 0.7, "baseline": null, "assembled": 0.74, "claimed_by_none": 0, "claimed_by_several": 2}])");
}

TEST(Report, SelfTrainingRunPages) {
  TempDir dir;
  write_fake_run(dir);
  ReportOptions options;
  options.run_dir = dir.file("run");
  const nlohmann::json page = report_data(options);
  EXPECT_TRUE(page["analysis"].is_null());
  const auto& epochs = page["selftrain"]["epochs"];
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_EQ(epochs[1]["class"], "plain");  // class 1, named from stats.json
  EXPECT_DOUBLE_EQ(epochs[1]["accuracy"].get<double>(), 0.65);  // the class's own accuracy
  EXPECT_DOUBLE_EQ(epochs[2]["accuracy"].get<double>(), 0.81);  // joint: the test accuracy
  EXPECT_DOUBLE_EQ(epochs[1]["added_precision"].get<double>(), 0.9);
  const auto& stats = page["selftrain"]["stats"];
  EXPECT_EQ(stats["rows"][0]["class"], kNastyClass);
  EXPECT_EQ(stats["significant_tb"], 1);
  EXPECT_EQ(stats["assembly"].size(), 2u);
  EXPECT_DOUBLE_EQ(stats["assembly"][1]["assembled"].get<double>(), 0.74);
  EXPECT_EQ(report_html(page).find("<b>bold"), std::string::npos);
}

TEST(Report, RejectsBadRunFolders) {
  TempDir dir;
  ReportOptions options;
  EXPECT_ERROR_CONTAINS(report_data(options), "scores: give exactly one of a scores file and a run folder");
  options.scores = "s.csv";
  options.run_dir = dir.path();
  EXPECT_ERROR_CONTAINS(report_data(options), "scores: give exactly one of a scores file and a run folder");
  options.scores.clear();
  options.run_dir = dir.file("missing");
  EXPECT_ERROR_CONTAINS(report_data(options), "missing: no such folder");
  options.run_dir = dir.path();
  EXPECT_ERROR_CONTAINS(report_data(options), "neither a study folder (scores.csv) nor a self-training run");

  write_fake_run(dir);
  options.run_dir = dir.file("run");
  const std::string epochs = dir.file("run/epochs.jsonl");
  write_bytes(epochs, "{\"protocol\": \"joint\", \"arm\": \"a\", \"epoch\": 0, \"test_accuracy\": 0.5}\n{oops\n");
  EXPECT_ERROR_CONTAINS(report_data(options), "epochs.jsonl:2: not valid JSON");
  write_bytes(epochs, "{\"protocol\": \"per-class\", \"arm\": \"a\", \"epoch\": 0, \"test_accuracy\": 0.5}\n");
  EXPECT_ERROR_CONTAINS(report_data(options), "epochs.jsonl:1: missing field 'class'");
  write_bytes(epochs, "{\"protocol\": \"per-class\", \"arm\": \"a\", \"class\": 5, \"epoch\": 0, \"test_accuracy\": 0.5, \"per_class_accuracy\": [1]}\n");
  EXPECT_ERROR_CONTAINS(report_data(options), "per_class_accuracy has no entry for class 5");
  write_bytes(epochs, "{\"protocol\": \"both\", \"arm\": \"a\", \"epoch\": 0, \"test_accuracy\": 0.5}\n");
  EXPECT_ERROR_CONTAINS(report_data(options), "epochs.jsonl:1: 'protocol': unknown protocol 'both'");
  write_bytes(epochs, "{\"protocol\": \"joint\", \"arm\": \"a\", \"epoch\": \"one\", \"test_accuracy\": 0.5}\n");
  EXPECT_ERROR_CONTAINS(report_data(options), "epochs.jsonl:1: 'epoch' has the wrong type (\"one\")");
  write_bytes(epochs, "\n");
  EXPECT_ERROR_CONTAINS(report_data(options), "epochs.jsonl: no records");
  std::remove(epochs.c_str());
  write_bytes(dir.file("run/stats.json"), R"({"classes": ["a"], "significant_tb": 0, "significant_sb": 0})");
  EXPECT_ERROR_CONTAINS(report_data(options), "stats.json: missing field 'rows'");
  write_bytes(dir.file("run/stats.json"), R"({"classes": ["a"], "rows": [{"class": "a", "baseline": "high"}], "significant_tb": 0, "significant_sb": 0})");
  EXPECT_ERROR_CONTAINS(report_data(options), "stats.json: rows[0].baseline: expected a number");
  write_bytes(dir.file("run/stats.json"), "[1,");
  EXPECT_ERROR_CONTAINS(report_data(options), "stats.json: not valid JSON");
}

}  // namespace
}  // namespace imagescore
