#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <list>
#include <mutex>
#include <unordered_map>

#include "imagescore/core/error.hpp"
#include "imagescore/data/image_codec.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/report/report.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/score/scores_table.hpp"
#include "imagescore/select/select.hpp"
#include "imagescore/serve/serve.hpp"
#include "serve/assets.hpp"

namespace imagescore {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kTapPrefix = "tap:";

// cpp-httplib compresses the types it knows by their exact name ("application/json",
// "text/...") with Brotli at its slowest quality when the browser accepts it: 12 s for a
// 3 MB table. With the charset named, scripts and data go as they are, in milliseconds
// over the loopback.
const std::string kJson = "application/json; charset=utf-8";
const std::string kScript = "application/javascript; charset=utf-8";

// The page holds no data (the app fetches it), so nothing in it needs escaping; scripts
// and styles come from this server only, and Vega compiles expressions with Function().
const char* const kPolicy =
    "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

std::string page_html() {
  return "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>imagescore explorer</title>\n<link rel=\"stylesheet\" href=\"/app.css\">\n</head>\n"
         "<body>\n<div id=\"app\"></div>\n"
         "<script src=\"/vega.min.js\"></script>\n<script src=\"/vega-lite.min.js\"></script>\n"
         "<script src=\"/app.js\"></script>\n</body>\n</html>\n";
}

// Request text echoed in an error is cut short (the JSON encoding escapes the rest).
std::string echoed(const std::string& text) {
  return "'" + (text.size() > 40 ? text.substr(0, 40) + "..." : text) + "'";
}

ExplorerResponse error(int status, const std::string& message) {
  // Invalid UTF-8 from a request becomes U+FFFD rather than an exception.
  return {status, kJson, json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

ExplorerResponse ok(std::string content_type, std::string body) { return {200, std::move(content_type), std::move(body), {}}; }

// A DNS name other than localhost may be an attacker's name rebound to 127.0.0.1 (DNS
// rebinding): only IP literals and localhost reach the explorer.
bool allowed_host(const std::string& host_header) {
  if (host_header.empty()) return true;  // HTTP/1.0 sends none
  std::string host = host_header;
  if (host.front() == '[') {             // [IPv6]:port
    const auto close = host.find(']');
    if (close == std::string::npos) return false;
    const std::string inside = host.substr(1, close - 1);
    return !inside.empty() && inside.find_first_not_of("0123456789abcdefABCDEF:.") == std::string::npos;
  }
  const auto colon = host.find(':');
  if (colon != std::string::npos) host = host.substr(0, colon);
  if (host == "localhost") return true;
  return !host.empty() && host.find_first_not_of("0123456789.") == std::string::npos;
}

// Row positions into the scores table, given as decimal text.
bool parse_index(const std::string& text, std::size_t& value) {
  if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos) return false;
  value = std::stoull(text);
  return true;
}

// Encoded thumbnails by row, the least recently used dropped beyond a byte budget.
class ThumbnailCache {
 public:
  explicit ThumbnailCache(std::size_t budget) : budget_(budget) {}

  bool find(std::size_t row, std::string& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = index_.find(row);
    if (it == index_.end()) return false;
    order_.splice(order_.begin(), order_, it->second);
    out = it->second->second;
    return true;
  }

  void put(std::size_t row, const std::string& bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++encoded_;
    if (index_.count(row) || bytes.size() > budget_) return;
    order_.emplace_front(row, bytes);
    index_[row] = order_.begin();
    bytes_ += bytes.size();
    while (bytes_ > budget_) {
      bytes_ -= order_.back().second.size();
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }

  std::size_t bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }
  std::size_t encoded() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return encoded_;
  }

 private:
  mutable std::mutex mutex_;
  std::size_t budget_;
  std::size_t bytes_ = 0;
  std::size_t encoded_ = 0;
  std::list<std::pair<std::size_t, std::string>> order_;
  std::unordered_map<std::size_t, std::list<std::pair<std::size_t, std::string>>::iterator> index_;
};

}  // namespace

struct Explorer::Impl {
  ExplorerOptions options;
  ScoreTable table;
  std::vector<std::string> classes;
  std::unique_ptr<ImageSource> source;
  std::unique_ptr<Model> model;
  std::unique_ptr<ImageSource> aligned;  // the data as the model reads it
  std::unique_ptr<ReferenceSet> reference;
  // The reference images' ids index the data: fitted on it, and its train split.
  bool reference_in_data = false;
  std::string model_path;
  mutable std::mutex model_mutex;  // one forward pass at a time
  std::string table_json;  // made once: it is the largest answer and never changes
  mutable ThumbnailCache cache;  // filled by const handlers, under its own lock

  explicit Impl(const ExplorerOptions& o) : options(o), cache(o.cache_bytes) {}

  std::string class_name(int id) const {
    return id >= 0 && std::size_t(id) < classes.size() && !classes[std::size_t(id)].empty() ? classes[std::size_t(id)]
                                                                                             : std::to_string(id);
  }

  ExplorerResponse route(const ExplorerRequest& request) const;
  // The row named by the parameter `row`, or an error answer.
  bool row_param(const ExplorerRequest& request, std::size_t& row, ExplorerResponse& failure) const;
  std::vector<std::uint8_t> pixels(std::size_t row) const;
  ExplorerResponse thumbnail(std::size_t row) const;
  ExplorerResponse image(std::size_t row) const;
  ExplorerResponse row_details(std::size_t row) const;
  ExplorerResponse features(std::size_t row) const;
  ExplorerResponse terms(std::size_t row) const;
  ExplorerResponse neighbours(std::size_t row) const;
  ExplorerResponse export_selection(const ExplorerRequest& request) const;
  void make_table_json();
};

void Explorer::Impl::make_table_json() {
  const std::size_t n = table.rows.size();
  json ids = json::array(), paths = json::array(), labels = json::array(), preds = json::array();
  for (const ScoreRow& row : table.rows) {
    ids.push_back(row.id);
    paths.push_back(row.path);
    labels.push_back(row.label >= 0 ? json(row.label) : json(nullptr));
    preds.push_back(row.pred);
  }
  json columns = json::array(), taps = json::array(), values = json::object();
  for (std::size_t c = 0; c < table.value_columns.size(); ++c) {
    const std::string& name = table.value_columns[c];
    (name.rfind(kTapPrefix, 0) == 0 ? taps : columns).push_back(name);
    json column = json::array();
    for (std::size_t r = 0; r < n; ++r) column.push_back(table.rows[r].values[c]);
    values[name] = std::move(column);
  }
  json class_names = json::array();
  for (std::size_t c = 0; c < classes.size(); ++c) class_names.push_back(class_name(int(c)));
  const json data = {{"title", table.path},
                     {"rows", n},
                     {"labels", table.has_labels()},
                     {"pixels", source != nullptr},
                     {"model", model != nullptr},
                     {"profiles", reference != nullptr},
                     {"neighbours", reference != nullptr && reference->provider("knn") != nullptr},
                     {"classes", class_names},
                     {"columns", columns},
                     {"taps", taps},
                     {"id", ids},
                     {"path", paths},
                     {"label", labels},
                     {"pred", preds},
                     {"values", values}};
  table_json = data.dump(-1, ' ', false, json::error_handler_t::replace);
}

Explorer::Explorer(const ExplorerOptions& o, bool quiet) : impl_(std::make_unique<Impl>(o)) {
  auto say = [&](const std::string& text) {
    if (!quiet) std::fprintf(stderr, "serve: %s\n", text.c_str());
  };
  if (o.scores.empty() == o.run_dir.empty()) fail_option("scores", "give exactly one of a scores file and a run folder");
  if (o.thumbnail_side < 8 || o.thumbnail_side > 1024) fail_option("thumbnail_side", "must be from 8 to 1024");
  std::string scores = o.scores, data = o.data, split = o.split, model = o.model, profiles = o.profiles;
  if (!o.run_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(o.run_dir, ec)) fail(o.run_dir, "no such folder");
    scores = (fs::path(o.run_dir) / "scores.csv").string();
    if (!fs::is_regular_file(scores, ec)) fail(o.run_dir, "not a study folder (no scores.csv)");
    // A study scores part of the train split: its ids index that split.
    const std::string split_file = (fs::path(o.run_dir) / "split.json").string();
    if (data.empty() && fs::is_regular_file(split_file, ec)) data = load_split(split_file).data_spec;
    split = "train";
    const std::string own_model = (fs::path(o.run_dir) / "model.safetensors").string();
    const std::string own_profiles = (fs::path(o.run_dir) / "profiles.safetensors").string();
    if (model.empty() && !data.empty() && fs::is_regular_file(own_model, ec)) model = own_model;
    if (profiles.empty() && model == own_model && fs::is_regular_file(own_profiles, ec)) profiles = own_profiles;
  }
  if (!model.empty() && data.empty()) fail_option("model", "needs the data to read the images");
  if (!profiles.empty() && model.empty()) fail_option("profiles", "need the model they were built with");
  say("reading " + scores);
  impl_->table = read_score_table(scores);
  if (impl_->table.rows.empty()) fail(scores, "no rows");
  impl_->classes = impl_->table.class_names;
  if (!data.empty()) {
    say("opening " + data + " (" + split + ") and checking the rows against it");
    impl_->source = open_data(data, split);
    check_rows_match_data(impl_->table, *impl_->source);
    if (impl_->source->labelled()) impl_->classes = impl_->source->class_names();
  }
  if (!model.empty()) {
    say("loading " + model + (profiles.empty() ? "" : " and " + profiles));
    impl_->model_path = model;
    impl_->model = load_model(model);
    impl_->aligned = align_to_model(*impl_->model, *impl_->source);
    if (!profiles.empty()) {
      impl_->reference = std::make_unique<ReferenceSet>(load_reference(profiles));
      check_reference_matches(*impl_->reference, *impl_->model, profiles);
      if (!impl_->reference->profiles()) fail(profiles, "holds no image-score profiles");
      impl_->reference_in_data = split == "train" && impl_->reference->data_spec == impl_->source->spec();
    }
  }
  impl_->make_table_json();
  say(std::to_string(impl_->table.rows.size()) + " images, " + std::to_string(impl_->table.value_columns.size()) +
      " score columns" + (impl_->source ? "" : " (no --data: no pixels)"));
}

Explorer::~Explorer() = default;

std::size_t Explorer::size() const { return impl_->table.rows.size(); }
std::size_t Explorer::thumbnails_encoded() const { return impl_->cache.encoded(); }
std::size_t Explorer::cache_bytes() const { return impl_->cache.bytes(); }

bool Explorer::Impl::row_param(const ExplorerRequest& request, std::size_t& row, ExplorerResponse& failure) const {
  const auto it = request.params.find("row");
  if (it == request.params.end()) {
    failure = error(400, "row: missing");
    return false;
  }
  if (!parse_index(it->second, row)) {
    failure = error(400, "row: expected a row number, got " + echoed(it->second));
    return false;
  }
  if (row >= table.rows.size()) {
    failure = error(404, "row: " + it->second + " is beyond the " + std::to_string(table.rows.size()) + " rows");
    return false;
  }
  return true;
}

std::vector<std::uint8_t> Explorer::Impl::pixels(std::size_t row) const {
  std::vector<std::uint8_t> out(source->shape().pixels());
  source->read(table.rows[row].id, out.data());
  return out;
}

ExplorerResponse Explorer::Impl::thumbnail(std::size_t row) const {
  if (!source) return error(404, "no images: the explorer was started without data");
  std::string png;
  if (!cache.find(row, png)) {
    ImageShape small;
    const auto shrunk = shrink_image(source->shape(), pixels(row), options.thumbnail_side, small);
    png = encode_png(small, shrunk.data());
    cache.put(row, png);
  }
  ExplorerResponse response = ok("image/png", std::move(png));
  // A row's image does not change while the server runs.
  response.headers.emplace_back("Cache-Control", "private, max-age=3600");
  return response;
}

ExplorerResponse Explorer::Impl::image(std::size_t row) const {
  if (!source) return error(404, "no images: the explorer was started without data");
  ExplorerResponse response = ok("image/png", encode_png(source->shape(), pixels(row).data()));
  response.headers.emplace_back("Cache-Control", "private, max-age=3600");
  return response;
}

ExplorerResponse Explorer::Impl::row_details(std::size_t r) const {
  const ScoreRow& row = table.rows[r];
  json scores = json::array(), taps = json::array();
  for (std::size_t c = 0; c < table.value_columns.size(); ++c) {
    const std::string& name = table.value_columns[c];
    const double value = row.values[c];
    if (name.rfind(kTapPrefix, 0) == 0) {
      taps.push_back({{"tap", name.substr(kTapPrefix.size())}, {"term", value}});
      continue;
    }
    // Rank 1 is the highest score; ties share the best rank.
    std::size_t above = 0;
    for (const ScoreRow& other : table.rows) above += other.values[c] > value;
    scores.push_back({{"column", name}, {"value", value}, {"rank", above + 1}});
  }
  const json out = {{"row", r},
                    {"id", row.id},
                    {"path", row.path},
                    {"label", row.label >= 0 ? json(row.label) : json(nullptr)},
                    {"label_name", row.label >= 0 ? json(class_name(row.label)) : json(nullptr)},
                    {"pred", row.pred},
                    {"pred_name", class_name(row.pred)},
                    {"correct", row.label >= 0 ? json(row.label == row.pred) : json(nullptr)},
                    {"rows", table.rows.size()},
                    {"scores", scores},
                    {"taps", taps}};
  return ok(kJson, out.dump(-1, ' ', false, json::error_handler_t::replace));
}

ExplorerResponse Explorer::Impl::features(std::size_t row) const {
  if (!model) return error(404, "no model: the explorer was started without one");
  std::lock_guard<std::mutex> lock(model_mutex);
  return ok(kJson, first_layer_maps(*model, model_path, *aligned, table.rows[row].id).dump());
}

ExplorerResponse Explorer::Impl::terms(std::size_t row) const {
  if (!reference) return error(404, "no profiles: the explorer was started without them");
  ScoreRunOptions options;
  options.scores = {"image_score"};
  options.per_tap = true;
  options.by = reference->options.profile.global ? ProfileChoice::Global : ProfileChoice::Predicted;
  options.batch_size = 1;
  options.threads = 1;
  options.quiet = true;
  std::lock_guard<std::mutex> lock(model_mutex);
  const auto columns = score_value_columns(*reference, *model, options);
  const auto one = subset(*aligned, {table.rows[row].id});
  json out = {{"row", row}};
  score_images(*model, *reference, *one, options, [&](const ScoreRow& scored) {
    json taps = json::array();
    for (std::size_t c = 0; c < columns.size(); ++c) {
      if (columns[c].rfind(kTapPrefix, 0) == 0)
        taps.push_back({{"tap", columns[c].substr(kTapPrefix.size())}, {"term", scored.values[c]}});
      else
        out[columns[c]] = scored.values[c];
    }
    out["pred"] = scored.pred;
    out["taps"] = taps;
  });
  return ok(kJson, out.dump(-1, ' ', false, json::error_handler_t::replace));
}

ExplorerResponse Explorer::Impl::neighbours(std::size_t row) const {
  const FittedScore* fit = reference ? reference->provider("knn") : nullptr;
  if (!fit) return error(404, "no nearest labelled images: the explorer was started without a knn fit");
  std::lock_guard<std::mutex> lock(model_mutex);
  const auto one = subset(*aligned, {table.rows[row].id});
  LoaderOptions loading;
  loading.batch_size = 1;
  loading.threads = 1;
  BatchLoader loader(*one, model->meta().normalization, loading);
  Batch batch;
  loader.next(batch);
  const auto tap_ids = resolve_taps(*model, fit->taps());
  const ForwardOutput out = model->forward(batch, tap_ids);
  Activations activations{&out, {}, {table.rows[row].id}};
  for (auto id : tap_ids) activations.tap_names.push_back(model->taps()[id].name);
  const int pred = int(std::max_element(out.logits.begin(), out.logits.begin() + long(out.num_classes)) - out.logits.begin());
  json explained = fit->explain(activations, 0, pred);
  // Their pixels only where the ids surely index the data (never an id from a request).
  for (auto& neighbour : explained["neighbours"]) {
    const auto id = neighbour["id"].get<std::size_t>();
    if (reference_in_data && id < source->size()) {
      std::vector<std::uint8_t> pixels(source->shape().pixels());
      source->read(id, pixels.data());
      neighbour["image"] = png_data_url(source->shape(), pixels, options.thumbnail_side);
    }
  }
  return ok(kJson, explained.dump(-1, ' ', false, json::error_handler_t::replace));
}

ExplorerResponse Explorer::Impl::export_selection(const ExplorerRequest& request) const {
  const auto by = request.params.find("by");
  if (by == request.params.end()) return error(400, "by: missing (the score column the selection records)");
  if (std::find(table.value_columns.begin(), table.value_columns.end(), by->second) == table.value_columns.end())
    return error(400, "by: no score column " + echoed(by->second));
  const std::size_t column = table.column(by->second);
  std::vector<std::size_t> rows;
  std::vector<bool> seen(table.rows.size(), false);
  std::size_t line_number = 0, start = 0;
  const std::string& body = request.body;
  while (start < body.size()) {
    std::size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::size_t row = 0;
    if (!parse_index(line, row))
      return error(400, "line " + std::to_string(line_number) + ": expected a row number, got " + echoed(line));
    if (row >= table.rows.size())
      return error(400, "line " + std::to_string(line_number) + ": row " + line + " is beyond the " +
                            std::to_string(table.rows.size()) + " rows");
    if (!seen[row]) rows.push_back(row);
    seen[row] = true;
  }
  if (rows.empty()) return error(400, "nothing selected");
  // The order `select` writes: predicted class, score descending, id ascending.
  std::sort(rows.begin(), rows.end(), [&](std::size_t a, std::size_t b) {
    const ScoreRow &x = table.rows[a], &y = table.rows[b];
    if (x.pred != y.pred) return x.pred < y.pred;
    if (x.values[column] != y.values[column]) return x.values[column] > y.values[column];
    return x.id < y.id;
  });
  ExplorerResponse response = ok("text/csv; charset=utf-8", selection_csv("selection", table, by->second, rows));
  response.headers.emplace_back("Content-Disposition", "attachment; filename=\"selection.csv\"");
  return response;
}

ExplorerResponse Explorer::Impl::route(const ExplorerRequest& request) const {
  if (!allowed_host(request.host))
    return error(403, "host " + echoed(request.host) + " is not allowed: open the explorer by IP address or localhost");
  if (request.body.size() > kMaxRequestBody) return error(413, "request body over " + std::to_string(kMaxRequestBody) + " bytes");
  const std::string& path = request.path;
  const bool get = request.method == "GET" || request.method == "HEAD";
  // Browsers ask for it unprompted; there is none.
  if (path == "/favicon.ico") return {204, "", "", {}};
  if (path == "/api/export") {
    if (request.method != "POST") return error(405, "use POST");
    return export_selection(request);
  }
  static const std::map<std::string, std::string> kStatic = {
      {"/", "text/html; charset=utf-8"},
      {"/app.js", kScript},
      {"/app.css", "text/css; charset=utf-8"},
      {"/vega.min.js", kScript},
      {"/vega-lite.min.js", kScript}};
  const auto page = kStatic.find(path);
  const bool api = path == "/api/table" || path == "/api/thumb" || path == "/api/image" || path == "/api/row" ||
                   path == "/api/features" || path == "/api/terms" || path == "/api/neighbours";
  if (page == kStatic.end() && !api) return error(404, "no such page");
  if (!get) return error(405, "use GET");
  if (page != kStatic.end()) {
    if (path == "/") return ok(page->second, page_html());
    const std::string name = path.substr(1);
    const std::string_view bytes =
        name == "app.js" || name == "app.css" ? detail::serve_asset(name) : chart_library(name);
    return ok(page->second, std::string(bytes));
  }
  if (path == "/api/table") return ok(kJson, table_json);
  std::size_t row = 0;
  ExplorerResponse failure;
  if (!row_param(request, row, failure)) return failure;
  if (path == "/api/thumb") return thumbnail(row);
  if (path == "/api/image") return image(row);
  if (path == "/api/features") return features(row);
  if (path == "/api/terms") return terms(row);
  if (path == "/api/neighbours") return neighbours(row);
  return row_details(row);
}

ExplorerResponse Explorer::handle(const ExplorerRequest& request) const {
  ExplorerResponse response;
  try {
    response = impl_->route(request);
  } catch (const Error& e) {
    // An image the data set cannot decode any more (changed on disk since start-up).
    response = error(500, e.what());
  } catch (const std::exception& e) {
    response = error(500, std::string("internal error: ") + e.what());
  }
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("Content-Security-Policy", kPolicy);
  response.headers.emplace_back("Referrer-Policy", "no-referrer");
  if (response.status != 200 || response.content_type == kJson)
    response.headers.emplace_back("Cache-Control", "no-store");
  return response;
}

}  // namespace imagescore
