// Stratified splits and their files.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>

#include "imagescore/core/random.hpp"
#include "imagescore/data/data.hpp"
#include "imagescore/data/split.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::TempDir;
using testing::write_bytes;

// A labelled source whose images are never read.
class LabelSource : public ImageSource {
 public:
  LabelSource(std::vector<int> labels, int classes, bool labelled = true) : labels_(std::move(labels)) {
    if (labelled)
      for (int c = 0; c < classes; ++c) names_.push_back(std::to_string(c));
  }
  std::size_t size() const override { return labels_.size(); }
  ImageShape shape() const override { return {1, 1, 1}; }
  const std::vector<std::string>& class_names() const override { return names_; }
  int label(std::size_t i) const override { return labels_.at(i); }
  std::string path(std::size_t i) const override { return "labels#" + std::to_string(i); }
  void read(std::size_t, std::uint8_t* out) const override { *out = 0; }
  std::string spec() const override { return "labels"; }

 private:
  std::vector<int> labels_;
  std::vector<std::string> names_;
};

// Classes 0..3 with 10, 5, 1 and 2 images, interleaved.
LabelSource sample_source() {
  std::vector<int> labels;
  for (int i = 0; i < 10; ++i) labels.push_back(0);
  for (int i = 0; i < 5; ++i) labels.push_back(1);
  labels.push_back(2);
  labels.push_back(3);
  labels.push_back(3);
  std::vector<std::size_t> order = seeded_permutation(labels.size(), 1);
  std::vector<int> shuffled;
  for (std::size_t i : order) shuffled.push_back(labels[i]);
  return LabelSource(shuffled, 4);
}

std::vector<int> class_counts(const ImageSource& source, const std::vector<std::size_t>& part) {
  std::vector<int> counts(source.class_names().size(), 0);
  for (std::size_t i : part) ++counts[std::size_t(source.label(i))];
  return counts;
}

TEST(Split, StratifiesPerClass) {
  LabelSource source = sample_source();
  DataSplit split = make_split(source, 0.3, 5);
  // round(3) = 3, round(1.5) = 2, a single image stays in training, round(0.6) = 1.
  EXPECT_EQ(class_counts(source, split.training), (std::vector<int>{3, 2, 1, 1}));
  EXPECT_EQ(class_counts(source, split.additional), (std::vector<int>{7, 3, 0, 1}));
  EXPECT_TRUE(std::is_sorted(split.training.begin(), split.training.end()));
  EXPECT_TRUE(std::is_sorted(split.additional.begin(), split.additional.end()));
  std::vector<std::size_t> all = split.training;
  all.insert(all.end(), split.additional.begin(), split.additional.end());
  std::sort(all.begin(), all.end());
  std::vector<std::size_t> expected(source.size());
  std::iota(expected.begin(), expected.end(), std::size_t(0));
  EXPECT_EQ(all, expected);
  EXPECT_EQ(split.total, source.size());
  EXPECT_EQ(split.seed, 5u);
  EXPECT_EQ(split.data_spec, "labels");
  EXPECT_EQ(split.labels_hash, hash_labels(source));

  // At least one image per class in each part.
  EXPECT_EQ(class_counts(source, make_split(source, 0.01, 5).training), (std::vector<int>{1, 1, 1, 1}));
  EXPECT_EQ(class_counts(source, make_split(source, 0.99, 5).training), (std::vector<int>{9, 4, 1, 1}));
}

TEST(Split, IsDeterministicPerSeed) {
  LabelSource source = sample_source();
  DataSplit a = make_split(source, 0.5, 7), b = make_split(source, 0.5, 7), c = make_split(source, 0.5, 8);
  EXPECT_EQ(a.training, b.training);
  EXPECT_EQ(a.additional, b.additional);
  EXPECT_NE(a.training, c.training);
}

TEST(Split, RejectsBadFractionsAndUnlabelledData) {
  LabelSource source = sample_source();
  for (double fraction : {0.0, 1.0, -0.5, 1.5})
    EXPECT_ERROR_CONTAINS(make_split(source, fraction, 1), "training fraction must be in (0, 1)");
  EXPECT_ERROR_CONTAINS(make_split(source, 1.5, 1), "got 1.5");
  EXPECT_ERROR_CONTAINS(make_split(source, std::numeric_limits<double>::quiet_NaN(), 1),
                        "training fraction must be in (0, 1)");
  EXPECT_ERROR_CONTAINS(make_split(LabelSource({-1, -1}, 0, false), 0.5, 1), "labels: is unlabelled");
}

TEST(Split, HashIdentifiesLabels) {
  EXPECT_EQ(hash_labels(LabelSource({0, 1, 2}, 3)), hash_labels(LabelSource({0, 1, 2}, 3)));
  EXPECT_NE(hash_labels(LabelSource({0, 1, 2}, 3)), hash_labels(LabelSource({0, 2, 1}, 3)));
  EXPECT_NE(hash_labels(LabelSource({0, 1}, 3)), hash_labels(LabelSource({0, 1, 0}, 3)));
}

TEST(Split, SavesAndLoadsExactly) {
  TempDir dir;
  LabelSource source = sample_source();
  DataSplit split = make_split(source, 0.3, std::numeric_limits<std::uint64_t>::max());
  const std::string path = dir.file("split.json");
  save_split(split, path);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);  // no temporary left
  DataSplit loaded = load_split(path);
  EXPECT_EQ(loaded.data_spec, split.data_spec);
  EXPECT_EQ(loaded.seed, split.seed);
  EXPECT_EQ(loaded.training_fraction, split.training_fraction);
  EXPECT_EQ(loaded.total, split.total);
  EXPECT_EQ(loaded.labels_hash, split.labels_hash);
  EXPECT_EQ(loaded.training, split.training);
  EXPECT_EQ(loaded.additional, split.additional);
  EXPECT_NE(testing::read_bytes(path).find("\"format\": \"imagescore-split\""), std::string::npos);
  check_split_matches(loaded, source, path);

  EXPECT_ERROR_CONTAINS(check_split_matches(loaded, LabelSource({0, 1}, 2), path),
                        path + ": made from 18 images but data 'labels' has 2");
  std::vector<int> other = source.labels();
  std::swap(other[0], other[1] == other[0] ? other[17] : other[1]);
  EXPECT_ERROR_CONTAINS(check_split_matches(loaded, LabelSource(other, 4), path),
                        path + ": made from other labels than data 'labels'");
}

TEST(Split, RejectsCorruptFiles) {
  TempDir dir;
  const std::string path = dir.file("split.json");
  auto load = [&](const std::string& text) {
    write_bytes(path, text);
    return load_split(path);
  };
  const std::string head =
      R"({"format": "imagescore-split", "version": 1, "data": "d", "seed": 1, "training_fraction": 0.5, )"
      R"("total": 4, "labels_hash": "00ff", )";
  DataSplit good = load(head + R"("training": [2, 0], "additional": [1])" + "}");
  EXPECT_EQ(good.training, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(good.labels_hash, 0xffu);

  EXPECT_ERROR_CONTAINS(load(head), path + ": not valid JSON");
  EXPECT_ERROR_CONTAINS(load("[1, 2]"), path + ": not an imagescore split file");
  EXPECT_ERROR_CONTAINS(load(R"({"format": "other"})"), "not an imagescore split file");
  EXPECT_ERROR_CONTAINS(load(R"({"format": "imagescore-split", "version": 2})"), "unsupported split version 2");
  EXPECT_ERROR_CONTAINS(load(head + R"("training": [0, 4], "additional": []})"),
                        path + ": field 'training' has 4, not an image index below 4");
  EXPECT_ERROR_CONTAINS(load(head + R"("training": [0, -1], "additional": []})"), "field 'training' has -1");
  EXPECT_ERROR_CONTAINS(load(head + R"("training": [1, 1], "additional": []})"), "index 1 appears twice in 'training'");
  EXPECT_ERROR_CONTAINS(load(head + R"("training": [0, 3], "additional": [3]})"),
                        "index 3 is in both 'training' and 'additional'");
  EXPECT_ERROR_CONTAINS(load(head + R"("training": [0]})"), "missing field 'additional'");
  EXPECT_ERROR_CONTAINS(load(head + R"("training": 3, "additional": []})"), "field 'training' must be an array");
  std::string bad_seed = head;
  bad_seed.replace(bad_seed.find("\"seed\": 1"), 9, "\"seed\": -1");
  EXPECT_ERROR_CONTAINS(load(bad_seed + R"("training": [], "additional": []})"),
                        "field 'seed' must be a non-negative integer");
  std::string bad_hash = head;
  bad_hash.replace(bad_hash.find("00ff"), 4, "xyz");
  EXPECT_ERROR_CONTAINS(load(bad_hash + R"("training": [], "additional": []})"), "field 'labels_hash' must be");
  std::string bad_fraction = head;
  bad_fraction.replace(bad_fraction.find("0.5"), 3, "1.5");
  EXPECT_ERROR_CONTAINS(load(bad_fraction + R"("training": [], "additional": []})"),
                        "field 'training_fraction' must be a number in (0, 1)");
  EXPECT_ERROR_CONTAINS(load_split(dir.file("absent.json")), "absent.json: cannot open");
}

}  // namespace
}  // namespace imagescore
