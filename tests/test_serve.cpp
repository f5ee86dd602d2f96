#include "imagescore/serve/serve.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <future>
#include <thread>

#include "imagescore/core/error.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/text.hpp"
#include "imagescore/data/image_codec.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/score/scores_table.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::TempDir;
using testing::write_bytes;

using testing::kNastyClass;
using testing::kNastyFile;

// A folder data set (test split) of 28x28 grey images whose class and file names are
// HTML, and its scores file with class names and two per-tap columns. Image i has pixel
// value 40 * (i % 3) + 100 * class and score i / 10 in every column; image 1 is
// predicted wrong.
struct ServeData {
  TempDir dir;
  std::string spec, scores;
  std::unique_ptr<ImageSource> source;
  ServeData() {
    spec = testing::write_nasty_folder(dir.file("data"), 2);
    scores = dir.file("scores.csv");
    source = open_data(spec, SplitName::Test);
    std::vector<std::string> columns = score_columns();
    columns.push_back("tap:conv1");
    columns.push_back("tap:fc");
    ScoreWriter writer(scores, columns, source->class_names());
    for (std::size_t i = 0; i < source->size(); ++i) {
      ScoreRow row;
      row.id = i;
      row.path = source->path(i);
      row.label = source->label(i);
      row.pred = i == 1 ? 1 - row.label : row.label;
      row.values = std::vector<double>(score_columns().size(), double(i) / 10);
      row.values.push_back(-0.25 * double(i));
      row.values.push_back(0.0);
      writer.write(row);
    }
    writer.commit();
  }
  ExplorerOptions options(bool pixels = true) const {
    ExplorerOptions o;
    o.scores = scores;
    if (pixels) o.data = spec;
    o.thumbnail_side = 14;
    return o;
  }
};

ExplorerResponse get(const Explorer& explorer, const std::string& path, std::map<std::string, std::string> params = {},
                     const std::string& host = "127.0.0.1:8080") {
  ExplorerRequest request;
  request.path = path;
  request.params = std::move(params);
  request.host = host;
  return explorer.handle(request);
}

ExplorerResponse post_export(const Explorer& explorer, const std::string& body, std::map<std::string, std::string> params) {
  ExplorerRequest request;
  request.method = "POST";
  request.path = "/api/export";
  request.params = std::move(params);
  request.host = "localhost:8080";
  request.body = body;
  return explorer.handle(request);
}

std::string header(const ExplorerResponse& response, const std::string& name) {
  for (const auto& [key, value] : response.headers)
    if (key == name) return value;
  return "";
}

void expect_error(const ExplorerResponse& response, int status, const std::string& message) {
  EXPECT_EQ(response.status, status) << response.body;
  EXPECT_EQ(response.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(response.body, nlohmann::json({{"error", message}}).dump());
  EXPECT_EQ(header(response, "X-Content-Type-Options"), "nosniff");
}

TEST(Serve, TableHoldsEveryRowColumnWise) {
  ServeData data;
  const Explorer explorer(data.options());
  EXPECT_EQ(explorer.size(), 6u);
  const auto response = get(explorer, "/api/table");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/json; charset=utf-8");
  const auto table = nlohmann::json::parse(response.body);
  EXPECT_EQ(table.at("rows"), 6);
  EXPECT_EQ(table.at("labels"), true);
  EXPECT_EQ(table.at("pixels"), true);
  EXPECT_EQ(table.at("classes"), nlohmann::json({kNastyClass, "plain"}));
  EXPECT_EQ(table.at("columns"), nlohmann::json(score_columns()));
  EXPECT_EQ(table.at("taps"), nlohmann::json({"tap:conv1", "tap:fc"}));
  EXPECT_EQ(table.at("id"), nlohmann::json({0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(table.at("label"), nlohmann::json({0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(table.at("pred"), nlohmann::json({0, 1, 0, 1, 1, 1}));
  EXPECT_EQ(table.at("values").at("msp"), nlohmann::json({0.0, 0.1, 0.2, 0.3, 0.4, 0.5}));
  EXPECT_EQ(table.at("values").at("tap:conv1"), nlohmann::json({0.0, -0.25, -0.5, -0.75, -1.0, -1.25}));
  EXPECT_EQ(table.at("path")[2], data.dir.file("data/test/" + kNastyClass + "/" + kNastyFile));
}

TEST(Serve, ThumbnailsAreShrunkAndCachedWithinTheirBudget) {
  ServeData data;
  auto options = data.options();
  const Explorer explorer(options);
  const auto first = get(explorer, "/api/thumb", {{"row", "4"}});
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.content_type, "image/png");
  EXPECT_EQ(header(first, "Cache-Control"), "private, max-age=3600");
  const ImageShape shape = read_image_header(first.body, "thumb");
  EXPECT_EQ(shape, (ImageShape{1, 14, 14}));  // 28 / 2: the box filter's factor
  std::vector<std::uint8_t> pixels(shape.pixels());
  decode_image(first.body, "thumb", shape, pixels.data());
  EXPECT_EQ(pixels.front(), 140);  // 40 * 1 + 100 * 1, unchanged by averaging a flat image
  EXPECT_EQ(explorer.thumbnails_encoded(), 1u);
  EXPECT_EQ(explorer.cache_bytes(), first.body.size());
  EXPECT_EQ(get(explorer, "/api/thumb", {{"row", "4"}}).body, first.body);
  EXPECT_EQ(explorer.thumbnails_encoded(), 1u);  // from the cache

  // A budget of one thumbnail keeps only the last one.
  options.cache_bytes = first.body.size() + 10;
  const Explorer small(options);
  get(small, "/api/thumb", {{"row", "4"}});
  const auto other = get(small, "/api/thumb", {{"row", "0"}});
  EXPECT_EQ(small.cache_bytes(), other.body.size());
  get(small, "/api/thumb", {{"row", "4"}});
  EXPECT_EQ(small.thumbnails_encoded(), 3u);  // row 4 was dropped and encoded again
}

TEST(Serve, FullImageAtItsOwnSize) {
  ServeData data;
  const Explorer explorer(data.options());
  const auto response = get(explorer, "/api/image", {{"row", "5"}});
  ASSERT_EQ(response.status, 200);
  const ImageShape shape = read_image_header(response.body, "image");
  EXPECT_EQ(shape, (ImageShape{1, 28, 28}));
  std::vector<std::uint8_t> pixels(shape.pixels());
  decode_image(response.body, "image", shape, pixels.data());
  EXPECT_EQ(pixels.back(), 180);
}

TEST(Serve, OneRowWithRanksAndPerTapTerms) {
  ServeData data;
  const Explorer explorer(data.options());
  const auto response = get(explorer, "/api/row", {{"row", "1"}});
  ASSERT_EQ(response.status, 200);
  const auto row = nlohmann::json::parse(response.body);
  EXPECT_EQ(row.at("id"), 1);
  EXPECT_EQ(row.at("label_name"), kNastyClass);
  EXPECT_EQ(row.at("pred_name"), "plain");
  EXPECT_EQ(row.at("correct"), false);
  EXPECT_EQ(row.at("rows"), 6);
  ASSERT_EQ(row.at("scores").size(), score_columns().size());
  EXPECT_EQ(row.at("scores")[0], nlohmann::json({{"column", "image_score"}, {"value", 0.1}, {"rank", 5}}));
  EXPECT_EQ(row.at("taps"), nlohmann::json::parse(R"([{"tap": "conv1", "term": -0.25}, {"tap": "fc", "term": 0.0}])"));
  const auto top = nlohmann::json::parse(get(explorer, "/api/row", {{"row", "5"}}).body);
  EXPECT_EQ(top.at("scores").at(1).at("rank"), 1);
}

TEST(Serve, ExportsASelectionFileTheReaderAccepts) {
  ServeData data;
  const Explorer explorer(data.options());
  // Duplicates count once, blank lines and CRLF are fine; the order is select's.
  const auto response = post_export(explorer, "4\r\n1\n\n5\n4\n0", {{"by", "msp"}});
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.content_type, "text/csv; charset=utf-8");
  EXPECT_EQ(header(response, "Content-Disposition"), "attachment; filename=\"selection.csv\"");
  auto line = [&](std::size_t i, int pred, const std::string& score) {
    return std::to_string(i) + "," + csv_field(data.source->path(i)) + "," + std::to_string(pred) + "," +
           csv_field(pred == 0 ? kNastyClass : "plain") + "," + score + "\n";
  };
  EXPECT_EQ(response.body, "id,path,pseudo_label,pseudo_label_name,score\n" + line(0, 0, "0") + line(5, 1, "0.5") +
                               line(4, 1, "0.4") + line(1, 1, "0.1"));
  write_bytes(data.dir.file("selection.csv"), response.body);
  const auto rows = read_selection(data.dir.file("selection.csv"));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[1].id, 5u);
  EXPECT_EQ(rows[3].pseudo_label, 1);
  EXPECT_EQ(rows[3].score, 0.1);
}

TEST(Serve, ExportErrorsSayWhatIsWrong) {
  ServeData data;
  const Explorer explorer(data.options());
  expect_error(post_export(explorer, "1", {}), 400, "by: missing (the score column the selection records)");
  expect_error(post_export(explorer, "1", {{"by", "confidence"}}), 400, "by: no score column 'confidence'");
  expect_error(post_export(explorer, "1\nx", {{"by", "msp"}}), 400, "line 2: expected a row number, got 'x'");
  expect_error(post_export(explorer, "-1", {{"by", "msp"}}), 400, "line 1: expected a row number, got '-1'");
  expect_error(post_export(explorer, "6", {{"by", "msp"}}), 400, "line 1: row 6 is beyond the 6 rows");
  expect_error(post_export(explorer, "\n\n", {{"by", "msp"}}), 400, "nothing selected");
  expect_error(post_export(explorer, std::string(kMaxRequestBody + 1, '1'), {{"by", "msp"}}), 413,
               "request body over 8388608 bytes");
  ExplorerRequest wrong_method;
  wrong_method.path = "/api/export";
  expect_error(explorer.handle(wrong_method), 405, "use POST");
}

TEST(Serve, MalformedQueriesGetTheirExactError) {
  ServeData data;
  const Explorer explorer(data.options());
  expect_error(get(explorer, "/api/thumb"), 400, "row: missing");
  expect_error(get(explorer, "/api/row", {{"row", "abc"}}), 400, "row: expected a row number, got 'abc'");
  expect_error(get(explorer, "/api/row", {{"row", "-1"}}), 400, "row: expected a row number, got '-1'");
  expect_error(get(explorer, "/api/row", {{"row", "1.5"}}), 400, "row: expected a row number, got '1.5'");
  expect_error(get(explorer, "/api/row", {{"row", ""}}), 400, "row: expected a row number, got ''");
  expect_error(get(explorer, "/api/image", {{"row", "99999999999999999999"}}), 400,
               "row: expected a row number, got '99999999999999999999'");
  expect_error(get(explorer, "/api/image", {{"row", "6"}}), 404, "row: 6 is beyond the 6 rows");
  // Echoed request text is cut short, and bytes that are no UTF-8 do not break the JSON.
  expect_error(get(explorer, "/api/row", {{"row", std::string(100, 'a')}}), 400,
               "row: expected a row number, got '" + std::string(40, 'a') + "...'");
  const auto invalid = get(explorer, "/api/row", {{"row", "\xff\xfe"}});
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(nlohmann::json::parse(invalid.body)["error"], "row: expected a row number, got '\xEF\xBF\xBD\xEF\xBF\xBD'");
  ExplorerRequest put;
  put.method = "PUT";
  put.path = "/api/table";
  expect_error(explorer.handle(put), 405, "use GET");
}

TEST(Serve, PathTraversalAndUnknownPathsGetNothing) {
  ServeData data;
  const Explorer explorer(data.options());
  for (const std::string& path : std::vector<std::string>{"/../../etc/passwd", "/etc/passwd", "//etc/passwd", "/app.js/../../etc/passwd", "/api/thumb/../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd", "/..\\..\\etc\\passwd", "/api/table/", "/API/TABLE", "/index.html", "",
        "/" + data.scores, data.dir.file("data/test/plain/0.png"), "/scores.csv", std::string("/app.js\0x", 9)})
    expect_error(get(explorer, path), 404, "no such page");
  // The row parameter is the only way to an image, and it is a number.
  expect_error(get(explorer, "/api/image", {{"row", "../../etc/passwd"}}), 400,
               "row: expected a row number, got '../../etc/passwd'");
}

TEST(Serve, OtherHostNamesAreRefused) {
  ServeData data;
  const Explorer explorer(data.options());
  // A page elsewhere whose name was rebound to 127.0.0.1 (DNS rebinding) gets nothing.
  expect_error(get(explorer, "/api/table", {}, "evil.example:8080"), 403,
               "host 'evil.example:8080' is not allowed: open the explorer by IP address or localhost");
  expect_error(get(explorer, "/", {}, "localhost.evil.example"), 403,
               "host 'localhost.evil.example' is not allowed: open the explorer by IP address or localhost");
  for (const std::string& host : {"localhost:8080", "127.0.0.1:1", "[::1]:8080", "192.168.1.7:80", "localhost", ""})
    EXPECT_EQ(get(explorer, "/api/table", {}, host).status, 200) << host;
}

TEST(Serve, PageComesFromTheServerOnly) {
  ServeData data;
  const Explorer explorer(data.options());
  const auto page = get(explorer, "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(header(page, "Content-Security-Policy").rfind("default-src 'none'; script-src 'self' 'unsafe-eval';", 0), 0u);
  EXPECT_EQ(page.body.find("http"), std::string::npos);  // nothing from elsewhere
  EXPECT_EQ(page.body.find("<script>"), std::string::npos);  // no inline script
  // Every script the page names is served.
  for (const std::string& script : {"/vega.min.js", "/vega-lite.min.js", "/app.js"}) {
    EXPECT_NE(page.body.find("<script src=\"" + script + "\"></script>"), std::string::npos) << script;
    const auto response = get(explorer, script);
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.content_type, "application/javascript; charset=utf-8");
    EXPECT_GT(response.body.size(), 1000u);
  }
  EXPECT_EQ(get(explorer, "/app.css").content_type, "text/css; charset=utf-8");
  EXPECT_EQ(get(explorer, "/favicon.ico").status, 204);
}

TEST(Serve, WithoutDataThereAreNoImages) {
  ServeData data;
  const Explorer explorer(data.options(false));
  EXPECT_EQ(nlohmann::json::parse(get(explorer, "/api/table").body)["pixels"], false);
  expect_error(get(explorer, "/api/thumb", {{"row", "0"}}), 404, "no images: the explorer was started without data");
  expect_error(get(explorer, "/api/image", {{"row", "0"}}), 404, "no images: the explorer was started without data");
  EXPECT_EQ(get(explorer, "/api/row", {{"row", "0"}}).status, 200);
}

TEST(Serve, FeatureMapsAndPerTapTermsOnDemand) {
  ServeData data;
  auto model = create_model("small-cnn", ImageShape{1, 28, 28}, {kNastyClass, "plain"}, Normalization{{0.5f}, {0.25f}}, 1);
  auto options = data.options();
  options.model = data.dir.file("model.st");
  options.profiles = data.dir.file("profiles.st");
  save_model(*model, options.model);
  ProfileRunOptions building;
  building.quiet = true;
  save_profiles(build_profiles(*model, *data.source, building), options.profiles);

  const Explorer explorer(options);
  const auto table = nlohmann::json::parse(get(explorer, "/api/table").body);
  EXPECT_EQ(table.at("model"), true);
  EXPECT_EQ(table.at("profiles"), true);
  const auto features = nlohmann::json::parse(get(explorer, "/api/features", {{"row", "4"}}).body);
  EXPECT_EQ(features.at("tap"), model->taps().front().name);
  EXPECT_EQ(features.at("id"), 4);
  EXPECT_EQ(features.at("maps").size(), std::size_t(model->taps().front().shape[0]));
  EXPECT_EQ(features.at("maps").at(0).at("image").get<std::string>().rfind("data:image/png;base64,", 0), 0u);

  const auto response = get(explorer, "/api/terms", {{"row", "4"}});
  ASSERT_EQ(response.status, 200) << response.body;
  const auto terms = nlohmann::json::parse(response.body);
  std::vector<std::string> names;
  double sum = 0;
  for (const auto& tap : terms.at("taps")) {
    names.push_back(tap.at("tap"));
    sum += tap.at("term").get<double>();
  }
  EXPECT_EQ(names, load_profiles(options.profiles).tap_names());
  EXPECT_NEAR(sum, terms.at("image_score").get<double>(), 1e-12);  // the score is the sum of its terms
  EXPECT_LE(terms.at("image_score").get<double>(), 0.0);
  EXPECT_EQ(table.at("neighbours"), false);  // profiles alone have no knn fit
  expect_error(get(explorer, "/api/neighbours", {{"row", "4"}}), 404,
               "no nearest labelled images: the explorer was started without a knn fit");

  // Without them, each says what is missing.
  const Explorer plain(data.options());
  expect_error(get(plain, "/api/features", {{"row", "4"}}), 404, "no model: the explorer was started without one");
  expect_error(get(plain, "/api/terms", {{"row", "4"}}), 404, "no profiles: the explorer was started without them");
  auto no_data = options;
  no_data.data.clear();
  EXPECT_THROW(Explorer{no_data}, OptionError);
  auto no_model = data.options();
  no_model.profiles = options.profiles;
  EXPECT_THROW(Explorer{no_model}, OptionError);
}

TEST(Serve, BadOptionsAndFiles) {
  ServeData data;
  ExplorerOptions none;
  EXPECT_THROW(Explorer{none}, OptionError);
  auto both = data.options();
  both.run_dir = data.dir.path();
  EXPECT_THROW(Explorer{both}, OptionError);
  auto tiny = data.options();
  tiny.thumbnail_side = 2;
  EXPECT_THROW(Explorer{tiny}, OptionError);
  ExplorerOptions run;
  run.run_dir = data.dir.file("data");
  try {
    Explorer explorer(run);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), data.dir.file("data") + ": not a study folder (no scores.csv)");
  }
  auto wrong = data.options();
  wrong.data = "folder:" + data.dir.file("elsewhere");
  EXPECT_THROW(Explorer{wrong}, Error);
}

// Sends raw bytes to 127.0.0.1:port and returns everything the server answers until it
// closes the connection.
std::string exchange(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(std::uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return "";
  }
  // No half-close: httplib answers no peer that has shut its side. A request the server
  // keeps waiting on ends with the timeout.
  timeval timeout{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  (void)!write(fd, bytes.data(), bytes.size());
  std::string answer;
  char buffer[4096];
  for (ssize_t got; (got = read(fd, buffer, sizeof buffer)) > 0;) answer.append(buffer, std::size_t(got));
  close(fd);
  return answer;
}

TEST(Serve, ServerSurvivesMalformedRequestsAndStopsOnInterrupt) {
  ServeData data;
  const Explorer explorer(data.options());
  std::promise<std::string> listening;
  std::thread server([&] {
    serve_explorer(explorer, {"127.0.0.1", 0}, [&](const std::string& url) { listening.set_value(url); });
  });
  const std::string url = listening.get_future().get();
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  EXPECT_EQ(url, "http://127.0.0.1:" + std::to_string(port) + "/");

  const std::string ok = "GET /api/row?row=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  const std::string first = exchange(port, ok);
  EXPECT_EQ(first.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << first;
  for (const std::string& bad : std::vector<std::string>{std::string("GARBAGE\r\n\r\n"), std::string("\0\0\0\0\r\n\r\n", 8), "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + std::string(20000, 'b') + "\r\n\r\n",
        std::string("POST /api/export?by=msp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\n1"),
        std::string("POST /api/export?by=msp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        std::string("GET /api/row?row=%ZZ&row=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        std::string("GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")}) {
    const std::string answer = exchange(port, bad);
    EXPECT_EQ(answer.find("root:"), std::string::npos);
    EXPECT_EQ(answer.find(" 200 "), std::string::npos) << bad.substr(0, 60) << " -> " << answer.substr(0, 80);
  }
  EXPECT_EQ(exchange(port, ok).rfind("HTTP/1.1 200 OK\r\n", 0), 0u);  // still serving

  request_interrupt();
  server.join();
  clear_interrupt();
}

}  // namespace
}  // namespace imagescore
