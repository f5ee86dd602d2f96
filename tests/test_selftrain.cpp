// Self-training: bootstrap test, assembly rule, experiment files, resume after a kill,
// per-class versus joint selection.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "imagescore/core/io.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/pipeline/assembly.hpp"
#include "imagescore/report/report.hpp"
#include "imagescore/pipeline/selftrain.hpp"
#include "imagescore/stats/bootstrap.hpp"
#include "test_files.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::be32;
using testing::TempDir;

TEST(Bootstrap, KnownAnswers) {
  std::vector<double> a = {85.1, 85.4, 84.9, 85.3, 85.0, 85.2};
  // Identical samples: the difference of resampled means is symmetric around 0.
  EXPECT_NEAR(bootstrap_p_value(a, a, 20000, 1), 0.5, 0.02);
  // Clearly separated samples.
  std::vector<double> higher = {88.0, 88.3, 87.9, 88.1, 88.2, 88.4};
  EXPECT_EQ(bootstrap_p_value(higher, a, 10000, 1), 0.0);
  EXPECT_EQ(bootstrap_p_value(a, higher, 10000, 1), 1.0);
  // Constant, equal samples: every difference is exactly 0 and counts one half.
  EXPECT_EQ(bootstrap_p_value({1, 1}, {1, 1}, 100, 3), 0.5);
  // Seeded: the same seed gives the same p-value.
  std::vector<double> noisy = {85.0, 86.0, 84.5, 85.9, 85.1, 85.6};
  EXPECT_EQ(bootstrap_p_value(noisy, a, 5000, 7), bootstrap_p_value(noisy, a, 5000, 7));
  EXPECT_TRUE(std::isnan(bootstrap_p_value({}, a, 10, 1)));
  EXPECT_ERROR_CONTAINS(bootstrap_p_value(a, a, 0, 1), "resamples: must be > 0");
}

TEST(Assembly, PaperRuleOnAHandMadeExample) {
  // Three models (for classes 0, 1, 2), four images.
  std::vector<std::vector<int>> labels = {
      {0, 0, 1, 2},  // model 0 claims images 0 and 1
      {1, 1, 1, 2},  // model 1 claims images 0, 1 and 2
      {2, 0, 2, 0},  // model 2 claims images 0 and 2
  };
  std::vector<std::vector<double>> scores = {
      {-1.0, -0.2, -9, -9},
      {-2.0, -0.2, -3.0, -9},
      {-0.5, -9, -4.0, -9},
  };
  std::vector<int> base = {1, 1, 0, 2};
  // Image 0: claimed by 0 (-1.0), 1 (-2.0), 2 (-0.5): class 2 has the highest score.
  // Image 1: claimed by 0 and 1 with equal scores: the lower class keeps it.
  // Image 2: claimed by 1 (-3.0) and 2 (-4.0): class 1.
  // Image 3: claimed by nobody: the base model's prediction.
  EXPECT_EQ(assemble_labels(labels, scores, base), (std::vector<int>{2, 0, 1, 2}));
  EXPECT_ERROR_CONTAINS(assemble_labels(labels, {{1}}, base), "assemble");
}

TEST(Experiment, FilesAndPresets) {
  for (const auto& name : preset_names()) {
    auto e = preset_experiment(name);
    EXPECT_NO_THROW(parse_experiment(e.to_json(), name)) << name;
  }
  auto vgg = preset_experiment("paper-cifar10-vgg16");
  EXPECT_EQ(vgg.alpha, (std::vector<double>{0.3, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3}));
  EXPECT_EQ(vgg.base_epochs, 100);
  EXPECT_EQ(vgg.retrain_epochs, 100);
  EXPECT_DOUBLE_EQ(vgg.training_fraction, 0.6);
  EXPECT_EQ(preset_experiment("paper-cifar10-resnet18").alpha[8], 0.4);
  EXPECT_ERROR_CONTAINS(preset_experiment("paper-mnist"), "preset: unknown preset 'paper-mnist'");

  using json = nlohmann::json;
  const json ok = {{"alpha", {0.3}}};
  EXPECT_NO_THROW(parse_experiment(ok, "e.json"));
  auto bad = [&](json j, const std::string& message) {
    for (auto& item : ok.items())
      if (!j.contains(item.key())) j[item.key()] = item.value();
    EXPECT_ERROR_CONTAINS(parse_experiment(j, "e.json"), message);
  };
  bad({{"epochs", 3}}, "e.json: unknown key 'epochs'");
  bad({{"base_epochs", "ten"}}, "e.json: 'base_epochs' has the wrong type");
  bad({{"base_epochs", 0}}, "'base_epochs' must be >= 1");
  bad({{"arms", {"baseline", "magic"}}}, "unknown arm 'magic'");
  bad({{"arms", {"softmax", "softmax"}}}, "arm 'softmax' given twice");
  bad({{"protocols", {"per-image"}}}, "unknown protocol 'per-image'");
  bad({{"alpha", {1.5}}}, "every 'alpha' must be in [0, 1]");
  bad({{"rho", 2.0}}, "e.json: 'rho': must be in (0, 1], got 2");
  bad({{"training_fraction", 1.0}}, "'training_fraction' must be in (0, 1)");
  EXPECT_ERROR_CONTAINS(parse_experiment(json{{"data", "x"}}, "e.json"), "'alpha' is required");
  EXPECT_ERROR_CONTAINS(parse_experiment(json::array(), "e.json"), "must be a JSON object");
  TempDir dir;
  testing::write_bytes(dir.file("broken.json"), "{\"alpha\": [0.3");
  EXPECT_ERROR_CONTAINS(load_experiment(dir.file("broken.json")), "broken.json: not valid JSON");
}

// A tiny separable IDX data set (10 classes, 28x28) on disk.
void write_idx(const std::string& dir, const std::string& prefix, int per_class, unsigned seed) {
  const int n = per_class * 10;
  std::string images = be32(0x803) + be32(std::uint32_t(n)) + be32(28) + be32(28);
  std::string labels = be32(0x801) + be32(std::uint32_t(n));
  std::uint64_t state = seed;
  for (int i = 0; i < n; ++i) {
    const int c = i % 10;
    std::string px(28 * 28, '\0');
    for (auto& p : px) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      p = char((state >> 33) % 90);
    }
    for (int y = 2 + (c / 5) * 12; y < 8 + (c / 5) * 12; ++y)
      for (int x = 1 + (c % 5) * 5; x < 5 + (c % 5) * 5; ++x) px[std::size_t(y * 28 + x)] = char(200);
    images += px;
    labels += char(c);
  }
  testing::write_bytes(dir + "/" + prefix + "-images-idx3-ubyte", images);
  testing::write_bytes(dir + "/" + prefix + "-labels-idx1-ubyte", labels);
}

Experiment tiny_experiment(const std::string& data_dir) {
  return parse_experiment({{"data", "idx:" + data_dir},
                           {"training_fraction", 0.2},
                           {"base_epochs", 1},
                           {"retrain_epochs", 2},
                           {"batch_size", 32},
                           {"alpha", {0.5}},
                           {"keep_checkpoints_every", 1}},
                          "tiny");
}

std::vector<nlohmann::json> records(const std::string& dir) {
  std::istringstream in(read_file(dir + "/epochs.jsonl"));
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(Selftrain, ResumeAfterAKillGivesIdenticalResults) {
  set_threads(1);
  TempDir dir;
  write_idx(dir.path(), "train", 20, 1);
  write_idx(dir.path(), "t10k", 4, 2);
  auto e = tiny_experiment(dir.path());
  e.classes = {0, 3};
  SelftrainOptions o;
  o.quiet = true;
  o.threads = 1;
  run_selftrain(e, dir.file("whole"), o);

  // Killed twice (after 2 and after 3 more epochs), then run to the end.
  for (int stop : {2, 3}) {
    o.stop_after_epochs = stop;
    EXPECT_ERROR_CONTAINS(run_selftrain(e, dir.file("resumed"), o), "stopped after");
  }
  o.stop_after_epochs = 0;
  run_selftrain(e, dir.file("resumed"), o);
  EXPECT_EQ(read_file(dir.file("whole") + "/epochs.jsonl"), read_file(dir.file("resumed") + "/epochs.jsonl"));
  // 1 base epoch + per-class (baseline, 2 classes x 2 arms) + joint (3 arms), each with
  // epoch 0 and 2 retraining epochs.
  EXPECT_EQ(records(dir.file("whole")).size(), 1u + (1 + 4 + 3) * 3);
  // A finished run rerun does nothing; another experiment in the same folder is refused.
  run_selftrain(e, dir.file("whole"), o);
  e.retrain_epochs = 3;
  EXPECT_ERROR_CONTAINS(run_selftrain(e, dir.file("whole"), o), "holds another experiment");
  set_threads(0);
}

TEST(Selftrain, PerClassAddsOnlyItsClassAndJointAddsAll) {
  TempDir dir;
  write_idx(dir.path(), "train", 20, 3);
  write_idx(dir.path(), "t10k", 4, 4);
  auto e = tiny_experiment(dir.path());
  e.retrain_epochs = 1;
  e.arms = {Arm{"softmax"}};
  SelftrainOptions o;
  o.quiet = true;
  run_selftrain(e, dir.path() + "/run", o);
  std::size_t per_class_total = 0, joint = 0;
  for (const auto& r : records(dir.path() + "/run")) {
    if (r["epoch"] != 1) continue;
    if (r["protocol"] == "per-class") per_class_total += r["added"].get<std::size_t>();
    if (r["protocol"] == "joint") joint = r["added"].get<std::size_t>();
  }
  // At epoch 1 every run selects with the same base model: the per-class selections
  // partition the joint one. Half of the 160 pool images, class by class.
  EXPECT_EQ(joint, per_class_total);
  EXPECT_GT(joint, 70u);
  EXPECT_LE(joint, 90u);

  auto stats = write_selftrain_stats(dir.path() + "/run", 1000, 0);
  const auto& tables = stats.tables;
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0].protocol, Protocol::PerClass);
  EXPECT_EQ(tables[0].rows.size(), 10u);
  EXPECT_NE(stats.markdown().find("| baseline | train | diff_tb |"), std::string::npos);

  // The report draws a real run: the base run's records are where the curves start, not
  // rows of their own; per-class runs draw their class.
  ReportOptions ro;
  ro.run_dir = dir.path() + "/run";
  const auto epochs = report_data(ro)["selftrain"]["epochs"];
  EXPECT_EQ(epochs.size(), 10u * 2 + 2);  // 10 per-class runs and the joint run, epochs 0 and 1
  for (const auto& row : epochs) EXPECT_NE(row["protocol"], "base");
}

TEST(Selftrain, FeatureScoresAreArmsToo) {
  // An arm of a fitted feature score (trust, knn) selects with statistics fitted on the
  // labelled part by the current model; it selects as many images as the softmax arm.
  TempDir dir;
  write_idx(dir.path(), "train", 20, 5);
  write_idx(dir.path(), "t10k", 4, 6);
  auto e = parse_experiment({{"data", "idx:" + dir.path()},
                             {"training_fraction", 0.2},
                             {"base_epochs", 1},
                             {"retrain_epochs", 1},
                             {"batch_size", 32},
                             {"alpha", {0.5}},
                             {"protocols", {"joint"}},
                             {"arms", {"softmax", "trust", "knn", "rel_mahalanobis"}}},
                            "feature arms");
  SelftrainOptions o;
  o.quiet = true;
  run_selftrain(e, dir.path() + "/run", o);
  std::map<std::string, std::size_t> added;
  for (const auto& r : records(dir.path() + "/run"))
    if (r["epoch"] == 1 && r["protocol"] == "joint") added[r["arm"].get<std::string>()] = r["added"].get<std::size_t>();
  ASSERT_EQ(added.size(), 4u);
  EXPECT_GT(added["softmax"], 70u);
  for (const char* arm : {"trust", "knn", "rel_mahalanobis"}) EXPECT_EQ(added[arm], added["softmax"]) << arm;
  EXPECT_ERROR_CONTAINS(parse_experiment({{"data", "idx:x"}, {"alpha", {0.5}}, {"arms", {"tust"}}}, "e.json"),
                        "unknown arm 'tust'");
}

}  // namespace
}  // namespace imagescore
