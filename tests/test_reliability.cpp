// Reliability: the fuzzers' seed and regression inputs replayed through the parsers,
// hostile sizes refused before anything is allocated for them, sets too small to make
// sense, and interruption (docs/reliability.md).
#include <filesystem>
#include <functional>
#include <map>

#include "imagescore/core/io.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/score/scores_table.hpp"
#include "parsers.hpp"
#include "test_files.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::be32;
using testing::TempDir;
using testing::write_bytes;
namespace fs = std::filesystem;

// Every file of fuzz/corpus/<target> and fuzz/regressions/<target> (inputs that once
// crashed a parser) goes through the parser: an Error is fine, anything else fails.
TEST(Reliability, FuzzCorporaAndRegressionsFailOnlyWithErrors) {
  const std::map<std::string, std::function<void(const std::uint8_t*, std::size_t)>> parsers = {
      {"idx", fuzz::parse_idx},           {"cifar", fuzz::parse_cifar},
      {"csv_manifest", fuzz::parse_csv_manifest}, {"image", fuzz::parse_image},
      {"split", fuzz::parse_split},       {"profile", fuzz::parse_profile},
      {"experiment", fuzz::parse_experiment},     {"scores", fuzz::parse_scores},
      {"select_analyze", fuzz::parse_select_analyze}, {"options", fuzz::parse_options},
      {"safetensors", fuzz::parse_safetensors}, {"serve_requests", fuzz::parse_serve_requests}};
  for (const auto& [target, parse] : parsers) {
    std::size_t seeds = 0;
    for (const char* folder : {"fuzz/corpus/", "fuzz/regressions/"}) {
      std::error_code ec;
      if (!fs::is_directory(folder + target, ec)) continue;
      for (const auto& entry : fs::directory_iterator(folder + target)) {
        const std::string bytes = testing::read_bytes(entry.path().string());
        try {
          parse(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        } catch (const std::exception& e) {
          ADD_FAILURE() << entry.path() << ": " << e.what();
        }
        seeds += std::string(folder) == "fuzz/corpus/";
      }
    }
    EXPECT_GT(seeds, 0u) << "no seed corpus for " << target;
  }
}

TEST(Reliability, IdxHeaderClaimingBillionsOfHugeImagesIsRefused) {
  TempDir dir;
  // 4,294,967,295 images of 16384x16384 (2^60 bytes) in a 20-byte file.
  write_bytes(dir.file("train-images-idx3-ubyte"), be32(0x803) + be32(0xffffffff) + be32(16384) + be32(16384) + "abcd");
  write_bytes(dir.file("train-labels-idx1-ubyte"), be32(0x801) + be32(1) + std::string(1, '\0'));
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Train), "truncated: header says 4294967295 images");
}

TEST(Reliability, ImageHeadersClaimingHugeSizesAreRefused) {
  const std::string dir = "fuzz/corpus/image/";
  EXPECT_ERROR_CONTAINS(read_image_header(testing::read_bytes(dir + "too_large.png"), "large.png"),
                        "large.png: unreadable image (size 100000x3 outside 1..16384 pixels per side)");
  // 16384x16384 RGB (805 MB of pixels) claimed by a 66-byte PNG: refused from the header.
  EXPECT_ERROR_CONTAINS(read_image_header(testing::read_bytes(dir + "huge_header.png"), "huge.png"),
                        "huge.png: unreadable image (size 16384x16384 is more than a 66-byte PNG can hold)");
}

TEST(Reliability, ProfileTapShapesFromTheFileAreChecked) {
  // The description says [-2, -2] for 4 stored sums: its product is 4 again in unsigned
  // arithmetic, which must not pass.
  EXPECT_ERROR_CONTAINS(load_profiles("fuzz/corpus/profile/negative_tap_shape.st"),
                        "negative_tap_shape.st: tap 'conv1' has a bad shape [-2, -2]");
}

TEST(Reliability, ExperimentNumbersMustFitTheirType) {
  // nlohmann's plain casts made 1e300 -> size_t undefined and -1 -> size_t wrap.
  EXPECT_ERROR_CONTAINS(parse_experiment({{"alpha", {0.3}}, {"batch_size", 1e300}}, "e.json"),
                        "e.json: 'batch_size' has the wrong type (1e+300)");
  EXPECT_ERROR_CONTAINS(parse_experiment({{"alpha", {0.3}}, {"pool_limit", -1}}, "e.json"),
                        "e.json: 'pool_limit' has the wrong type (-1)");
  EXPECT_ERROR_CONTAINS(parse_experiment({{"alpha", {0.3}}, {"classes", {1, 2.5}}}, "e.json"),
                        "e.json: 'classes' has the wrong type ([1,2.5])");
  EXPECT_NO_THROW(parse_experiment({{"alpha", {0.3}}, {"lr", 1}, {"base_epochs", 3}}, "e.json"));
}

TEST(Reliability, SplitNeedsAtLeastTwoImages) {
  TempDir dir;
  write_bytes(dir.file("one.csv"), "a.png,0\n");
  write_bytes(dir.file("a.png"), testing::read_bytes("fuzz/corpus/image/grey.png"));
  auto one = open_data("csv:" + dir.file("one.csv"), SplitName::Train);
  EXPECT_ERROR_CONTAINS(make_split(*one, 0.5, 0), "has 1 image; a split needs at least 2");
  auto none = subset(*one, {});
  EXPECT_ERROR_CONTAINS(make_split(*none, 0.5, 0), "has 0 images; a split needs at least 2");
}

TEST(Reliability, EndlessDevicesAreRefusedAsInputs) {
  EXPECT_ERROR_CONTAINS(read_file("/dev/zero"), "/dev/zero: is a device, expected a file");
  EXPECT_ERROR_CONTAINS(open_data("csv:/dev/urandom", SplitName::Train), "/dev/urandom: is a device, expected a file");
  EXPECT_ERROR_CONTAINS(read_score_table("/dev/zero"), "/dev/zero: is a device, expected a file");
}

TEST(Reliability, ThreadCountIsBoundedByTheCores) {
  EXPECT_EQ(max_threads(), 4 * hardware_threads());
  EXPECT_ERROR_CONTAINS(set_threads(max_threads() + 1), "threads: must be at most " + std::to_string(max_threads()) +
                                                            " (4 per core), got " + std::to_string(max_threads() + 1));
  EXPECT_ERROR_CONTAINS(set_threads(99999), "got 99999");
  EXPECT_EQ(set_threads(1), 1);
}

// Interruption sets a process-wide flag, so these run in a child process.
TEST(ReliabilityDeathTest, InterruptStopsProgressAndBatchLoops) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        request_interrupt();
        try {
          Progress progress("test", 10, true);
          progress.advance(1);
        } catch (const Error& e) {
          if (std::string(e.what()) == "interrupted") std::exit(3);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "");
  EXPECT_EXIT(
      {
        TempDir dir;
        write_bytes(dir.file("a.png"), testing::read_bytes("fuzz/corpus/image/grey.png"));
        write_bytes(dir.file("m.csv"), "a.png\n");
        auto source = open_data("csv:" + dir.file("m.csv"), SplitName::Train);
        BatchLoader loader(*source, {{0.f}, {1.f}}, {});
        request_interrupt();
        Batch batch;
        try {
          loader.next(batch);
        } catch (const Error& e) {
          if (std::string(e.what()) == "interrupted") std::exit(3);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "");
}

// A writer that fails (as an interrupted one does) leaves neither the output nor its
// temporary file.
TEST(Reliability, FailedWritesLeaveNoFiles) {
  TempDir dir;
  EXPECT_THROW(write_file_atomic(dir.file("out.st"),
                                 [](std::ostream& out) {
                                   out << "half";
                                   throw Error("interrupted");
                                 }),
               Error);
  {
    ScoreWriter writer(dir.file("scores.csv"), {"msp"});
    writer.write({0, "a.png", 1, 1, {0.5}});
  }  // destroyed without commit, as when an exception unwinds the scoring loop
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
}  // namespace imagescore
