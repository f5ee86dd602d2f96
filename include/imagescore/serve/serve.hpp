// The explorer (`imagescore serve`, docs/explorer.md): a local web server and a
// single-page app over one scores file: every image in a sortable, filterable grid,
// two scores against each other, one image's details, and selections exported as
// selection files. The handlers are plain functions of a request, apart from the
// server, so that they are tested and fuzzed without sockets.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace imagescore {

struct ExplorerOptions {
  // Exactly one of scores and run_dir.
  std::string scores;   // a scores CSV
  std::string run_dir;  // a study folder: its scores.csv, and the data of its split.json
  // Pixels: the data set the scores' ids index (without it the grid shows no images).
  std::string data;
  std::string split = "test";
  // With data: a model draws one image's first-layer feature maps; with its profiles (or
  // any reference file `score` takes) too, the per-tap terms of its image score are
  // computed on demand. A study folder's own are the default.
  std::string model;
  std::string profiles;
  std::size_t cache_bytes = std::size_t(64) << 20;  // thumbnails kept encoded, least recently used dropped
  int thumbnail_side = 96;                           // longest side of a thumbnail
};

// One HTTP request as the handlers see it: the path without the query, the decoded query
// parameters, the Host header and the body.
struct ExplorerRequest {
  std::string method = "GET";
  std::string path = "/";
  std::map<std::string, std::string> params;
  std::string host;
  std::string body;
};

struct ExplorerResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond the content type
};

// Requests larger than this are refused (413) before any handler reads them.
constexpr std::size_t kMaxRequestBody = std::size_t(8) << 20;

class Explorer {
 public:
  // Reads the scores file (and checks it against the data), printing progress unless quiet.
  explicit Explorer(const ExplorerOptions& options, bool quiet = true);
  ~Explorer();
  Explorer(const Explorer&) = delete;
  Explorer& operator=(const Explorer&) = delete;

  // Answers one request; never throws. Routes (docs/explorer.md):
  //   GET  /, /app.js, /app.css, /vega.min.js, /vega-lite.min.js   the page
  //   GET  /api/table                 every row, column-wise JSON
  //   GET  /api/thumb?row=R           PNG thumbnail of row R (cached)
  //   GET  /api/image?row=R           PNG of row R at its size
  //   GET  /api/row?row=R             one row's scores, per-tap terms and ranks
  //   GET  /api/features?row=R        its first layer's feature maps (with a model)
  //   GET  /api/terms?row=R           its per-tap terms computed now (with a model and profiles)
  //   GET  /api/neighbours?row=R      its nearest labelled images (profiles with a knn fit)
  //   POST /api/export?by=COLUMN      body: row numbers, one a line; answers the selection file
  // Errors are JSON {"error": "..."} with status 400, 403, 404, 405 or 413.
  ExplorerResponse handle(const ExplorerRequest& request) const;

  std::size_t size() const;  // rows of the scores file
  // Thumbnails encoded so far, and the bytes the cache holds.
  std::size_t thumbnails_encoded() const;
  std::size_t cache_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ServeAddress {
  std::string host = "127.0.0.1";  // loopback only, unless asked
  int port = 8080;                 // 0: any free port
};

// Serves the explorer until interrupt_requested() (Ctrl-C in the CLI); `on_listening`
// receives the URL once the socket listens. Fails with an Error if the address cannot
// be bound.
void serve_explorer(const Explorer& explorer, const ServeAddress& address,
                    const std::function<void(const std::string& url)>& on_listening);

}  // namespace imagescore
