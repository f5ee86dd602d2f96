// imagescore serve: the explorer, a local web page over one scores file (docs/explorer.md).
#include <cstdio>

#include "common.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/serve/serve.hpp"

namespace imagescore::cli {

void add_serve_command(CLI::App& app) {
  struct Options {
    ExplorerOptions explorer;
    ServeAddress address;
    std::size_t cache_mb = 64;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("serve", "Explore a scores file in the browser: sort, filter, compare scores, export selections");
  auto& e = opt->explorer;
  auto* scores = cmd->add_option("--scores", e.scores, "Scores CSV");
  auto* run = cmd->add_option("--run", e.run_dir, "A study folder (its scores.csv and the data of its split.json)");
  scores->excludes(run);
  cmd->add_option("--data", e.data, "Data spec the scores' ids index (for the images)");
  cmd->add_option("--split", e.split, "With --scores: the split of --data the ids index (train or test)")
      ->default_val("test")
      ->excludes(run);
  cmd->add_option("--model", e.model, "Model, for one image's first-layer feature maps (a study's own by default)");
  cmd->add_option("--profiles", e.profiles, "Its profiles, for one image's per-tap terms computed on demand");
  cmd->add_option("--host", opt->address.host, "Address to listen on (other machines reach it only if not loopback)")
      ->default_val("127.0.0.1");
  cmd->add_option("--port", opt->address.port, "Port to listen on (0: any free port)")->default_val(8080);
  cmd->add_option("--cache-mb", opt->cache_mb, "Memory for encoded thumbnails, in MiB")
      ->default_val(64)
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--thumbnail-side", e.thumbnail_side, "Longest side of a thumbnail, in pixels")->default_val(96);
  add_global_options(*cmd);
  cmd->callback([opt] {
    run_command([&] {
      auto& o = *opt;
      o.explorer.cache_bytes = o.cache_mb << 20;
      const Explorer explorer(o.explorer, Progress::quiet());
      std::string url;
      serve_explorer(explorer, o.address, [&](const std::string& at) {
        url = at;
        // Always said, even with --quiet: it is how the user finds the page.
        std::fprintf(stderr, "serve: open %s (Ctrl-C stops)\n", at.c_str());
      });
      if (!Progress::quiet()) std::fprintf(stderr, "serve: stopped\n");
      return nlohmann::json{{"url", url}, {"rows", explorer.size()}, {"thumbnails_encoded", explorer.thumbnails_encoded()}};
    });
  });
}

}  // namespace imagescore::cli
