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
#include "imagescore/score/registry.hpp"
#include "imagescore/stats/bootstrap.hpp"
#include "imagescore/train/train.hpp"
#include "test_files.hpp"
#include "test_sources.hpp"
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

  auto files = write_selftrain_stats(dir.path() + "/run", 1000, 0);
  const auto& stats = files.paper;
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

TEST(Bootstrap, MeanIntervalOverSeeds) {
  // One value: the interval is that value; constant values likewise.
  auto one = bootstrap_mean_interval({0.5}, 1000, 1);
  EXPECT_EQ(one.low, 0.5);
  EXPECT_EQ(one.high, 0.5);
  // Three values: every resampled mean lies between the smallest and the largest.
  auto three = bootstrap_mean_interval({0.01, 0.02, 0.06}, 5000, 2);
  EXPECT_GE(three.low, 0.01);
  EXPECT_LE(three.high, 0.06);
  EXPECT_LT(three.low, 0.03);
  EXPECT_GT(three.high, 0.03);
  auto again = bootstrap_mean_interval({0.01, 0.02, 0.06}, 5000, 2);
  EXPECT_EQ(three.low, again.low);
  EXPECT_TRUE(std::isnan(bootstrap_mean_interval({}, 10, 1).low));
}

TEST(Experiment, ProtocolOptionsSeedsAndTheirBadValues) {
  using json = nlohmann::json;
  for (const auto& column : all_score_columns()) EXPECT_NO_THROW(column_range(column)) << column;
  const json full = {{"alpha", {0.3}},
                     {"arms", {"baseline", "softmax", "margin"}},
                     {"protocols", {"joint"}},
                     {"seeds", {0, 1, 2}},
                     {"validation_fraction", 0.1},
                     {"threshold", {{"softmax", 0.9}, {"margin", 0.5}}},
                     {"flexmatch", true},
                     {"max_per_class", 100},
                     {"pseudo_weight", 0.5},
                     {"pseudo_batch_share", 0.25},
                     {"soft_targets", true}};
  const auto e = parse_experiment(full, "e.json");
  EXPECT_EQ(parse_experiment(e.to_json(), "again").to_json(), e.to_json());
  EXPECT_EQ(e.seeds, (std::vector<std::uint64_t>{0, 1, 2}));
  EXPECT_EQ(e.pseudo.threshold.at("margin"), 0.5);
  // One repeat shifts both seeds and runs alone.
  const auto second = e.for_seed(2);
  EXPECT_TRUE(second.seeds.empty());
  EXPECT_EQ(second.split_seed, 2u);
  EXPECT_EQ(second.train.seed, 2u);
  // The paper's experiment writes none of the new keys (its run folders still resume).
  const auto paper = preset_experiment("fashion-mnist-small");
  EXPECT_TRUE(paper.pseudo.paper());
  for (const char* key : {"seeds", "threshold", "curriculum", "pseudo_weight", "validation_fraction"})
    EXPECT_FALSE(paper.to_json().contains(key)) << key;
  // A threshold alone needs no alpha; a curriculum replaces it.
  EXPECT_EQ(parse_experiment({{"threshold", 0.95}, {"arms", {"softmax"}}}, "t").alpha, (std::vector<double>{1.0}));
  const auto curriculum = parse_experiment({{"curriculum", {0.5, 1.0}}, {"retrain_epochs", 4}, {"selection_interval", 2},
                                            {"reinitialise", true}},
                                           "c");
  EXPECT_EQ(curriculum.pseudo.curriculum, (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(with_seeds(paper, {3, 4}).seeds, (std::vector<std::uint64_t>{3, 4}));

  auto bad = [&](json j, const std::string& message) {
    if (!j.contains("alpha") && !j.contains("curriculum") && !j.contains("threshold")) j["alpha"] = {0.3};
    EXPECT_ERROR_CONTAINS(parse_experiment(j, "e.json"), message);
  };
  bad({{"treshold", 0.9}}, "e.json: unknown key 'treshold'");
  bad({{"threshold", 1.5}, {"arms", {"softmax"}}}, "e.json: 'threshold' 1.5 of arm 'softmax' is outside the range of msp ([0, 1])");
  bad({{"threshold", 0.5}, {"arms", {"imagescore"}}}, "'threshold' 0.5 of arm 'imagescore' is outside the range of image_score ([-inf, 0])");
  bad({{"threshold", "high"}}, "'threshold' must be a number or an object of numbers per arm");
  bad({{"threshold", {{"softmax", 0.9}}}}, "'threshold' has no value for arm 'imagescore'");
  bad({{"threshold", {{"trust", 0.9}}}, {"arms", {"softmax"}}}, "'threshold' names 'trust', which is not a selecting arm");
  bad({{"threshold", 0.9}, {"flexmatch", true}, {"arms", {"energy"}}}, "'flexmatch' scales thresholds on probabilities; energy");
  bad({{"flexmatch", true}}, "'flexmatch' needs a 'threshold'");
  bad({{"flexmatch", "yes"}}, "'flexmatch' has the wrong type");
  bad({{"curriculum", {0.4, 0.4}}, {"retrain_epochs", 2}}, "'curriculum' must grow: 0.4 follows 0.4");
  bad({{"curriculum", {0.5, 1.5}}, {"retrain_epochs", 2}}, "every 'curriculum' share must be in (0, 1], got 1.5");
  bad({{"curriculum", {0.5, 1.0}}, {"retrain_epochs", 5}},
      "'curriculum' has 2 rounds of 'selection_interval' 1 epochs = 2 epochs, but 'retrain_epochs' is 5");
  bad({{"curriculum", {0.5, 1.0}}, {"retrain_epochs", 2}, {"alpha", {0.3}}}, "'alpha' and 'curriculum' exclude each other");
  bad({{"seeds", json::array()}}, "'seeds' is empty");
  bad({{"seeds", {0, 1, 0}}}, "seed 0 is given twice in 'seeds'");
  bad({{"seeds", {-1}}}, "'seeds' has the wrong type");
  bad({{"pseudo_weight", 0}}, "'pseudo_weight' must be a number > 0");
  bad({{"pseudo_batch_share", 1}}, "'pseudo_batch_share' must be in [0, 1)");
  bad({{"pseudo_batch_share", 0.001}}, "'pseudo_batch_share' 0.001 gives 0 pseudo-labelled images in a batch of 128");
  bad({{"validation_fraction", 1}}, "'validation_fraction' must be in [0, 1)");
  bad({{"max_per_class", -3}}, "'max_per_class' has the wrong type");
  bad({{"global_ranking", true}, {"alpha", {0.3, 0.3}}}, "'global_ranking' ranks all classes together and needs one 'alpha' value, not 2");
  EXPECT_ERROR_CONTAINS(with_seeds(paper, {1, 1}), "--seeds: seed 1 is given twice in 'seeds'");
}

TEST(Training, LossWeightsAndSoftTargets) {
  auto source = testing::separable_source(3, 4, {1, 8, 8}, 3);
  const Normalization norm{{0.f}, {1.f}};
  BatchLoader loader(*source, norm, {});
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  const std::size_t n = batch.size(), k = 3;
  // The first step of equal fresh models, with equal dropout: only the targets differ.
  auto first_loss = [&](const StepTargets& targets) {
    auto model = create_model("small-cnn", source->shape(), source->class_names(), norm, 0);
    auto session = model->start_training({});
    session->begin_epoch(7);
    const double loss = session->step(batch, targets).loss;
    session->end_epoch();
    return loss;
  };
  const double plain = first_loss({});
  std::vector<float> twos(n, 2.0f), one_hot(n * k, 0.0f), uniform(n * k, 1.0f / 3);
  for (std::size_t i = 0; i < n; ++i) one_hot[i * k + std::size_t(batch.labels[i])] = 1.0f;
  EXPECT_NEAR(first_loss({twos.data(), nullptr}), 2 * plain, 1e-5);
  EXPECT_NEAR(first_loss({nullptr, one_hot.data()}), plain, 1e-5);
  // Weight 0 on every image but the first: the mean over the batch is its loss / n.
  std::vector<float> first_only(n, 0.0f);
  first_only[0] = 1.0f;
  const double single = first_loss({first_only.data(), nullptr});
  EXPECT_GT(single, 0);
  EXPECT_LT(single, plain * double(n));
  // A uniform target is the mean negative log-probability, not the label's.
  EXPECT_NE(first_loss({nullptr, uniform.data()}), plain);
}

TEST(Training, MixedBatchesHoldTheirShareOfPseudoLabels) {
  // 10 labelled, 3 pseudo-labelled, batches of 4 with share 0.5: 5 batches of 2 + 2.
  const auto order = mixed_batch_order(10, 3, 4, 0.5, 11);
  ASSERT_EQ(order.size(), 20u);
  std::vector<int> used(13, 0);
  for (std::size_t b = 0; b < 5; ++b)
    for (std::size_t j = 0; j < 4; ++j) {
      const auto position = order[b * 4 + j];
      EXPECT_EQ(position >= 10, j >= 2) << "batch " << b;
      ++used[position];
    }
  for (int i = 0; i < 10; ++i) EXPECT_EQ(used[std::size_t(i)], 1);
  for (int i = 10; i < 13; ++i) EXPECT_TRUE(used[std::size_t(i)] == 3 || used[std::size_t(i)] == 4);
  EXPECT_EQ(mixed_batch_order(10, 3, 4, 0.5, 11), order);
  EXPECT_NE(mixed_batch_order(10, 3, 4, 0.5, 12), order);
  // 9 labelled with 3 per batch: the last batch has 0 left over, the order 3 batches.
  EXPECT_EQ(mixed_batch_order(9, 2, 4, 0.25, 1).size(), 12u);
  EXPECT_ERROR_CONTAINS(mixed_batch_order(9, 2, 4, 0.01, 1), "pseudo_batch_share");
}

TEST(Selftrain, SeedsRepeatTheRunAndResumeExactly) {
  set_threads(1);
  TempDir dir;
  write_idx(dir.path(), "train", 20, 7);
  write_idx(dir.path(), "t10k", 4, 8);
  auto e = tiny_experiment(dir.path());
  e.protocols = {Protocol::Joint};
  e.arms = {Arm{"baseline"}, Arm{"softmax"}};
  e = with_seeds(e, {0, 1});
  SelftrainOptions o;
  o.quiet = true;
  o.threads = 1;
  run_selftrain(e, dir.file("whole"), o);
  // Killed in seed 0, at its end, and in seed 1 (each seed: 1 + 2 x 2 epochs).
  for (int stop : {2, 3, 4}) {
    o.stop_after_epochs = stop;
    EXPECT_ERROR_CONTAINS(run_selftrain(e, dir.file("resumed"), o), "stopped after");
  }
  o.stop_after_epochs = 0;
  run_selftrain(e, dir.file("resumed"), o);
  EXPECT_EQ(read_file(dir.file("whole") + "/epochs.jsonl"), read_file(dir.file("resumed") + "/epochs.jsonl"));
  // Each seed has its own split and records; the top file marks them.
  EXPECT_NE(read_file(dir.file("whole") + "/seed-0/split.json"), read_file(dir.file("whole") + "/seed-1/split.json"));
  const auto all = records(dir.file("whole"));
  ASSERT_EQ(all.size(), 2u * (1 + 2 * 3));
  EXPECT_EQ(all.front()["seed"], 0);
  EXPECT_EQ(all.back()["seed"], 1);
  // Other seeds in the same folder are refused, naming the key.
  EXPECT_ERROR_CONTAINS(run_selftrain(with_seeds(e, {0, 2}), dir.file("whole"), o), "differs in 'seeds'");

  // Over seeds: each arm's final test accuracy, and its paired difference to the baseline.
  const auto files = write_selftrain_stats(dir.file("whole"), 1000, 0);
  const auto& over = files.summary.at("over_seeds");
  EXPECT_EQ(over.at("seeds"), nlohmann::json({0, 1}));
  const auto& rows = over.at("rows");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["arm"], "baseline");
  EXPECT_EQ(rows[1]["arm"], "softmax");
  int wins = 0;
  for (int s = 0; s < 2; ++s) {
    double arm = 0, base = 0;
    for (const auto& r : all)
      if (r["seed"] == s && r["epoch"] == 2) (r["arm"] == "softmax" ? arm : base) = r["test_accuracy"].get<double>();
    EXPECT_EQ(rows[1]["accuracy"][std::size_t(s)].get<double>(), arm);
    EXPECT_EQ(rows[1]["difference"][std::size_t(s)].get<double>(), arm - base);
    wins += arm > base;
  }
  EXPECT_EQ(rows[1]["wins"], wins);
  EXPECT_LE(rows[1]["low"].get<double>(), rows[1]["mean_difference"].get<double>());
  EXPECT_GE(rows[1]["high"].get<double>(), rows[1]["mean_difference"].get<double>());
  EXPECT_NE(files.markdown.find("Seed 1: the paper's tables (epoch bootstrap)"), std::string::npos);
  EXPECT_NE(files.markdown.find("95% interval over seeds"), std::string::npos);
  set_threads(0);
}

TEST(Selftrain, CurriculumRoundsAddKnownCountsAndResumeExactly) {
  set_threads(1);
  TempDir dir;
  write_idx(dir.path(), "train", 20, 9);
  write_idx(dir.path(), "t10k", 4, 10);
  // 200 images: 40 labelled (10 held out for validation, 30 trained on), a pool of 160.
  const auto e = parse_experiment({{"data", "idx:" + dir.path()},
                                   {"training_fraction", 0.2},
                                   {"validation_fraction", 0.25},
                                   {"base_epochs", 1},
                                   {"retrain_epochs", 2},
                                   {"batch_size", 8},
                                   {"protocols", {"joint"}},
                                   {"arms", {"softmax"}},
                                   {"curriculum", {0.5, 1.0}},
                                   {"reinitialise", true},
                                   {"soft_targets", true},
                                   {"pseudo_weight", 0.5},
                                   {"pseudo_batch_share", 0.25}},
                                  "curriculum");
  SelftrainOptions o;
  o.quiet = true;
  o.threads = 1;
  run_selftrain(e, dir.file("whole"), o);
  o.stop_after_epochs = 2;
  EXPECT_ERROR_CONTAINS(run_selftrain(e, dir.file("resumed"), o), "stopped after");
  o.stop_after_epochs = 0;
  run_selftrain(e, dir.file("resumed"), o);
  EXPECT_EQ(read_file(dir.file("whole") + "/epochs.jsonl"), read_file(dir.file("resumed") + "/epochs.jsonl"));
  std::vector<std::size_t> added;
  for (const auto& r : records(dir.file("whole"))) {
    EXPECT_TRUE(r.contains("validation_accuracy"));
    if (r["protocol"] == "joint" && r["epoch"] > 0) added.push_back(r["added"].get<std::size_t>());
  }
  EXPECT_EQ(added, (std::vector<std::size_t>{80, 160}));  // half the pool, then all of it
  // The soft targets are the selecting model's probabilities, one row per added image.
  const auto state = nlohmann::json::parse(read_file(dir.file("whole") + "/runs/joint/softmax/state.json"));
  const auto soft = state["selection"]["soft"].get<std::vector<float>>();
  ASSERT_EQ(soft.size(), 160u * 10);
  for (std::size_t i = 0; i < 160; ++i) {
    double sum = 0;
    for (std::size_t k = 0; k < 10; ++k) sum += soft[i * 10 + k];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  // 30 images trained on, 10 validated on, none of them in the pool.
  const auto split = nlohmann::json::parse(read_file(dir.file("whole") + "/split.json"));
  EXPECT_EQ(split["training"].size(), 40u);
  set_threads(0);
}

TEST(Selftrain, ThresholdAndCapBoundWhatIsAdded) {
  TempDir dir;
  write_idx(dir.path(), "train", 20, 11);
  write_idx(dir.path(), "t10k", 4, 12);
  auto run = [&](const nlohmann::json& extra, const std::string& name) {
    nlohmann::json j = {{"data", "idx:" + dir.path()}, {"training_fraction", 0.2}, {"base_epochs", 2},
                        {"retrain_epochs", 1},           {"batch_size", 8},         {"protocols", {"joint"}},
                        {"arms", {"softmax"}}};
    j.update(extra);
    SelftrainOptions o;
    o.quiet = true;
    run_selftrain(parse_experiment(j, name), dir.file(name), o);
    return nlohmann::json::parse(read_file(dir.file(name) + "/runs/joint/softmax/state.json"))["selection"];
  };
  // Every candidate (threshold 0), at most 3 per class.
  const auto capped = run({{"threshold", 0.0}, {"max_per_class", 3}}, "capped");
  std::map<int, int> per_class;
  for (int label : capped["labels"].get<std::vector<int>>()) ++per_class[label];
  EXPECT_FALSE(per_class.empty());
  for (const auto& [label, count] : per_class) EXPECT_LE(count, 3) << "class " << label;
  // A threshold of 1 keeps only certain candidates: fewer than the whole pool.
  const auto all = run({{"threshold", 0.0}}, "all");
  EXPECT_EQ(all["ids"].size(), 160u);
  const auto strict = run({{"threshold", 1.0}}, "strict");
  EXPECT_LT(strict["ids"].size(), 160u);
  // One share of the whole pool, ranked over all classes: exactly a quarter of 160.
  EXPECT_EQ(run({{"alpha", {0.25}}, {"global_ranking", true}}, "global")["ids"].size(), 40u);
}

}  // namespace
}  // namespace imagescore
