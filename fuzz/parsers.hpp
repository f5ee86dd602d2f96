// One entry point per file parser, taking raw fuzz input: the libFuzzer targets
// (fuzz_target.cpp) call them, and tests/test_reliability.cpp replays the seed corpora
// and the regression inputs through them. Parsers that read files get the input written
// to a private scratch folder first. An imagescore::Error is the correct answer to bad
// input; any other exception escapes, and crashes and sanitizer reports end the process:
// those are findings.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imagescore/data/image_codec.hpp"
#include "imagescore/data/data.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/core/safetensors.hpp"
#include "imagescore/score/scores_table.hpp"
#include "imagescore/pipeline/assembly.hpp"
#include "imagescore/pipeline/selftrain.hpp"
#include "imagescore/stats/bootstrap.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/data/fit.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/fusion.hpp"
#include "imagescore/score/registry.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/select/select.hpp"
#include "imagescore/serve/serve.hpp"
#include "imagescore/stats/analysis.hpp"
#include "imagescore/train/selftrain_records.hpp"

namespace fuzz {

// A folder of this process, in memory where /dev/shm exists, removed at exit.
inline const std::string& scratch_folder() {
  static const std::string folder = [] {
    std::string pattern = (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + std::string("/imagescore-fuzz-XXXXXX");
    if (!mkdtemp(pattern.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    return pattern;
  }();
  static const bool removed_at_exit = std::atexit([] { std::system(("rm -rf '" + scratch_folder() + "'").c_str()); }) == 0;
  (void)removed_at_exit;
  return folder;
}

// Writes `size` bytes to `name` in the scratch folder and returns the file's path.
inline std::string scratch_file(const std::string& name, const void* data, std::size_t size) {
  const std::string path = scratch_folder() + "/" + name;
  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (!out || std::fwrite(data, 1, size, out) != size || std::fclose(out) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

template <typename Parse>
void expect_only_errors(const Parse& parse) {
  try {
    parse();
  } catch (const imagescore::Error&) {
  }
}

// Opens a data spec and decodes every image.
inline void read_every_image(const std::string& spec, imagescore::SplitName split) {
  expect_only_errors([&] {
    auto source = imagescore::open_data(spec, split);
    std::vector<std::uint8_t> image(source->shape().pixels());
    for (std::size_t i = 0; i < source->size(); ++i) source->read(i, image.data());
  });
}

// IDX (idx:DIR). Input: a 4-byte big-endian length L, L bytes of the images file, then
// the labels file.
inline void parse_idx(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return;
  const std::size_t claimed = (std::size_t(data[0]) << 24) | (std::size_t(data[1]) << 16) | (std::size_t(data[2]) << 8) | data[3];
  const std::size_t images_size = std::min(claimed, size - 4);
  scratch_file("train-images-idx3-ubyte", data + 4, images_size);
  scratch_file("train-labels-idx1-ubyte", data + 4 + images_size, size - 4 - images_size);
  read_every_image("idx:" + scratch_folder(), imagescore::SplitName::Train);
}

// CIFAR binary. Input: one batch file, read as CIFAR-10 and as CIFAR-100.
inline void parse_cifar(const std::uint8_t* data, std::size_t size) {
  scratch_file("test_batch.bin", data, size);
  scratch_file("test.bin", data, size);
  read_every_image("cifar10:" + scratch_folder(), imagescore::SplitName::Test);
  read_every_image("cifar100:" + scratch_folder(), imagescore::SplitName::Test);
}

// CSV manifests (csv:FILE). Input: the manifest; a.png, b.png and c.png (2x2 grey) exist
// next to it.
inline void parse_csv_manifest(const std::uint8_t* data, std::size_t size) {
  static const unsigned char grey_png[] = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
      0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x00, 0x00, 0x00, 0x57, 0xdd, 0x52, 0xf8, 0x00, 0x00, 0x00,
      0x0e, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0xf8, 0xcf, 0xd0, 0xe0, 0x00, 0x00, 0x05, 0x42, 0x01,
      0xc0, 0x70, 0x36, 0x36, 0xd6, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  for (const char* name : {"a.png", "b.png", "c.png"}) scratch_file(name, grey_png, sizeof grey_png);
  read_every_image("csv:" + scratch_file("manifest.csv", data, size), imagescore::SplitName::Train);
}

// PNG and JPEG decoding. Input: an image file. The header is read, then the image decoded
// at its natural channel count and converted (grey <-> RGB).
inline void parse_image(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  expect_only_errors([&] {
    imagescore::ImageShape shape = imagescore::read_image_header(bytes, "fuzz");
    for (int channels : {shape.channels, 4 - shape.channels}) {
      shape.channels = channels;
      std::vector<std::uint8_t> pixels(shape.pixels());
      imagescore::decode_image(bytes, "fuzz", shape, pixels.data());
    }
  });
}

inline void parse_split(const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("split.json", data, size);
  expect_only_errors([&] { imagescore::load_split(path); });
}

inline void parse_profile(const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("profile.st", data, size);
  expect_only_errors([&] { imagescore::load_profiles(path); });
}

inline void parse_experiment(const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("experiment.json", data, size);
  expect_only_errors([&] { imagescore::load_experiment(path); });
}

inline void parse_scores(const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("scores.csv", data, size);
  expect_only_errors([&] { imagescore::read_score_table(path); });
}

// What `select` and `analyze` do with a scores file (the file may claim any class ids,
// bins of scores or sizes). Input: a fusion recipe on the first line (as `--fuse` takes
// it, such as rank:msp+image_score), then the scores file.
inline void parse_select_analyze(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = std::min(input.find('\n'), input.size());
  const std::string recipe = input.substr(0, newline);
  const std::string path = scratch_file("scores.csv", input.data() + std::min(newline + 1, size),
                                        size - std::min(newline + 1, size));
  expect_only_errors([&] {
    imagescore::ScoreTable table = imagescore::read_score_table(path);
    if (table.value_columns.empty()) return;
    for (auto rule : {imagescore::SelectOptions::Rule::Fraction, imagescore::SelectOptions::Rule::Top}) {
      imagescore::SelectOptions options;
      options.rule = rule;
      options.top = 3;
      const std::size_t classes = imagescore::class_count(table, options);
      const auto selected = imagescore::select_rows(table, table.value_columns.front(), options, classes);
      imagescore::selection_json(imagescore::selection_stats(table, selected, classes), table.has_labels());
    }
    imagescore::AnalysisOptions analysis;
    analysis.bootstrap.resamples = 20;
    analysis.binning = imagescore::Binning::Quantile;
    // learned:FILE would open any file the fuzzer names; the fusion file has its own tests.
    if (!recipe.empty() && recipe.rfind("learned:", 0) != 0) analysis.fuse = {recipe};
    if (table.has_labels()) imagescore::analyze_scores(table, &table, analysis);
  });
}

// Option values, as the CLI hands them to the library's parsers (CLI11 splits the command
// line; these give values their meaning). Input: lines, each offered to every parser.
inline void parse_options(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  for (std::size_t begin = 0; begin <= input.size();) {
    const std::size_t end = std::min(input.find('\n', begin), input.size());
    const std::string value = input.substr(begin, end - begin);
    begin = end + 1;
    using namespace imagescore;
    expect_only_errors([&] { parse_image_shape(value); });
    expect_only_errors([&] { parse_normalization(value, 1); });
    expect_only_errors([&] { parse_normalization(value, 3); });
    expect_only_errors([&] { parse_shard(value); });
    expect_only_errors([&] { parse_norm(value); });
    expect_only_errors([&] { parse_scale(value); });
    expect_only_errors([&] { parse_binning(value); });
    expect_only_errors([&] { parse_optimizer(value); });
    expect_only_errors([&] { parse_input_fit(value); });
    expect_only_errors([&] { parse_overlap(value); });
    expect_only_errors([&] { parse_profile_choice(value); });
    expect_only_errors([&] { parse_split_name(value); });
    expect_only_errors([&] { parse_protocol(value); });
    expect_only_errors([&] { parse_arm(value, all_score_columns()); });
    std::vector<std::string> names(1);
    for (char c : value) {
      if (c == ',')
        names.emplace_back();
      else
        names.back().push_back(c);
    }
    expect_only_errors([&] { canonical_score_names(names); });
  }
}

// The container of checkpoints and profiles.
inline void parse_safetensors(const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("file.st", data, size);
  expect_only_errors([&] { imagescore::read_safetensors(path); });
}

// The explorer's request handlers (imagescore serve) over a small folder data set and its
// scores. Input: lines method, path, Host header, then query parameters "key=value" up to
// an empty line, then the body. Every answer must be one of the documented statuses, and
// an error a JSON object with its message; an internal error (500) is a finding.
inline void parse_serve_requests(const std::uint8_t* data, std::size_t size) {
  static const imagescore::Explorer* explorer = [] {
    const std::string folder = scratch_folder() + "/serve";
    const imagescore::ImageShape shape{3, 8, 8};
    std::vector<std::uint8_t> chw(shape.pixels(), 7);
    for (const char* name : {"a/0.png", "a/1.png", "<b>/2.png"}) {
      const std::string png = imagescore::encode_png(shape, chw.data());
      std::filesystem::create_directories(folder + "/" + std::string(name).substr(0, std::string(name).find('/')));
      scratch_file("serve/" + std::string(name), png.data(), png.size());
    }
    auto source = imagescore::open_data("folder:" + folder, imagescore::SplitName::Test);
    std::vector<std::string> columns = imagescore::score_columns();
    columns.push_back("tap:conv1");
    imagescore::ScoreWriter writer(folder + "/scores.csv", columns, source->class_names());
    for (std::size_t i = 0; i < source->size(); ++i) {
      imagescore::ScoreRow row;
      row.id = i;
      row.path = source->path(i);
      row.label = source->label(i);
      row.pred = 0;
      row.values.assign(columns.size(), -double(i));
      writer.write(row);
    }
    writer.commit();
    imagescore::ExplorerOptions options;
    options.scores = folder + "/scores.csv";
    options.data = "folder:" + folder;
    options.cache_bytes = 200;  // a few thumbnails: the cache drops some on every run
    return new imagescore::Explorer(options);
  }();
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::size_t at = 0;
  auto line = [&] {
    const std::size_t end = std::min(input.find('\n', at), input.size());
    std::string text = input.substr(at, end - at);
    at = std::min(end + 1, input.size());
    return text;
  };
  imagescore::ExplorerRequest request;
  request.method = line();
  request.path = line();
  request.host = line();
  for (std::string param = line(); !param.empty() && at < input.size(); param = line()) {
    const std::size_t equals = std::min(param.find('='), param.size());
    request.params.emplace(param.substr(0, equals), param.substr(std::min(equals + 1, param.size())));
  }
  request.body = input.substr(at);
  const imagescore::ExplorerResponse response = explorer->handle(request);
  const int status = response.status;
  if (status != 200 && status != 204 && status != 400 && status != 403 && status != 404 && status != 405 &&
      status != 413) {
    std::fprintf(stderr, "status %d: %s\n", status, response.body.c_str());
    std::abort();
  }
  if (status >= 400 && !nlohmann::json::parse(response.body).contains("error")) std::abort();
}

}  // namespace fuzz
