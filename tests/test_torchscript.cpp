// TorchScript models: taps by graph rewrite, checked against the activations PyTorch's
// forward hooks captured (tests/fixtures/torchscript/make_fixtures.py), against a twin
// that returns its features explicitly, and on bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/core/safetensors.hpp"
#include "imagescore/score/score.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

const std::string kDir = "tests/fixtures/torchscript/";

std::vector<std::string> names_of(const Model& m, const std::vector<std::size_t>& ids) {
  std::vector<std::string> names;
  for (auto i : ids) names.push_back(m.taps()[i].name);
  return names;
}

// Runs the model on the fixture's inputs and compares every tap PyTorch recorded.
void expect_python_activations(const std::string& name) {
  auto model = load_model(kDir + name + ".pt");
  auto expected = read_safetensors(kDir + name + ".expected.safetensors");
  const auto& input = expected.at("input");
  Batch batch;
  batch.shape = model->meta().input;
  batch.pixels.resize(input.numel());
  std::memcpy(batch.pixels.data(), input.bytes.data(), input.bytes.size());
  for (std::int64_t i = 0; i < input.shape[0]; ++i) {
    batch.indices.push_back(std::size_t(i));
    batch.labels.push_back(kNoLabel);
  }
  auto ids = resolve_taps(*model, {});
  std::vector<std::size_t> all(model->taps().size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  auto out = model->forward(batch, all);
  auto close = [](const float* a, const StoredTensor& b, std::size_t n, const std::string& what) {
    ASSERT_EQ(b.numel(), n) << what;
    const auto* ref = reinterpret_cast<const float*>(b.bytes.data());
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, double(std::fabs(a[i] - ref[i])) / (1.0 + std::fabs(ref[i])));
    EXPECT_LT(worst, 1e-5) << what;
  };
  close(out.logits.data(), expected.at("logits"), out.logits.size(), name + " logits");
  std::size_t compared = 0;
  for (std::size_t t = 0; t + 1 < model->taps().size(); ++t) {
    const auto& tap = model->taps()[t].name;
    if (!expected.has(tap)) continue;  // later calls of a module ("relu#2"): hooks kept the first
    close(out.taps[t].gather(out.batch).data(), expected.at(tap), out.taps[t].numel * out.batch, name + " " + tap);
    ++compared;
  }
  EXPECT_GE(compared, 3u) << name;
}

TEST(TorchScript, ActivationsEqualPythonForwardHooks) {
  expect_python_activations("sequential_cnn");  // traced, Sequential containers, in-place ReLU
  expect_python_activations("resnet_like");     // traced, skip connections, a module called twice
  expect_python_activations("control_flow");    // scripted, with prim::If
}

TEST(TorchScript, DefaultTapsFollowTheSpec) {
  auto seq = load_model(kDir + "sequential_cnn.pt");
  EXPECT_EQ(names_of(*seq, resolve_taps(*seq, {})),
            (std::vector<std::string>{"features.2", "features.6", "classifier.2", "output"}));
  auto res = load_model(kDir + "resnet_like.pt");
  EXPECT_EQ(names_of(*res, resolve_taps(*res, {})), (std::vector<std::string>{"relu", "layer1.0", "layer1.1", "output"}));
  EXPECT_EQ(res->meta().class_names, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(res->meta().input, (ImageShape{3, 16, 16}));
  // Deeper taps can be named; a second call of a module gets "#2".
  EXPECT_EQ(names_of(*res, resolve_taps(*res, {"layer1.0.relu#2", "layer1.1.downsample.0"})),
            (std::vector<std::string>{"layer1.0.relu#2", "layer1.1.downsample.0"}));
  auto flow = load_model(kDir + "control_flow.pt");
  EXPECT_EQ(names_of(*flow, resolve_taps(*flow, {})), (std::vector<std::string>{"stem.1", "output"}));
}

TEST(TorchScript, GraphRewriteScoresEqualTheExplicitTwin) {
  auto source = testing::separable_source(10, 6, {1, 28, 28}, 4);
  auto rewritten = load_model(kDir + "sequential_cnn.pt");
  auto twin = load_model(kDir + "sequential_cnn_twin.pt");
  ASSERT_EQ(names_of(*twin, resolve_taps(*twin, {})), names_of(*rewritten, resolve_taps(*rewritten, {})));
  EXPECT_EQ(twin->meta().weights_hash, rewritten->meta().weights_hash);
  auto run = [&](Model& m) {
    ProfileRunOptions po;
    po.quiet = true;
    auto profiles = build_profiles(m, *source, po);
    ScoreRunOptions so;
    so.quiet = true;
    so.per_tap = true;
    std::vector<std::vector<double>> rows;
    score_images(m, profiles, *source, so, [&](const ScoreRow& r) { rows.push_back(r.values); });
    return rows;
  };
  auto a = run(*rewritten), b = run(*twin);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < a[i].size(); ++j) EXPECT_NEAR(a[i][j], b[i][j], 1e-9) << i << "," << j;
}

TEST(TorchScript, ThePreprocessingFitSizesFolderAndCsvData) {
  testing::TempDir dir;
  testing::write_bytes(dir.file("m.pt"), testing::read_bytes(kDir + "resnet_like.pt"));
  testing::write_bytes(dir.file("m.pt.json"), R"({"input": [3, 16, 16], "fit": "crop=20"})");
  auto model = load_model(dir.file("m.pt"));
  EXPECT_EQ(model->meta().input_fit, "crop=20");
  EXPECT_EQ(spec_for_model("folder:photos", *model), "folder:photos@16x16,crop=20");
  EXPECT_EQ(spec_for_model("csv:/a@b/list.csv", *model), "csv:/a@b/list.csv@16x16,crop=20");
  EXPECT_EQ(spec_for_model("folder:photos@16x16,stretch", *model), "folder:photos@16x16,stretch");  // the spec's own
  EXPECT_EQ(spec_for_model("cifar10:data", *model), "cifar10:data");
  testing::write_bytes(dir.file("m.pt.json"), R"({"input": [3, 16, 16]})");
  EXPECT_EQ(spec_for_model("folder:photos", *load_model(dir.file("m.pt"))), "folder:photos");
}

TEST(TorchScript, RefusesWhatItCannotDo) {
  auto flow = load_model(kDir + "control_flow.pt");
  EXPECT_ERROR_CONTAINS(resolve_taps(*flow, {"left"}),
                        "taps: 'left' is called inside control flow (prim::If or prim::Loop) and cannot be tapped");
  auto frozen = load_model(kDir + "frozen_cnn.pt");
  EXPECT_EQ(names_of(*frozen, resolve_taps(*frozen, {})), (std::vector<std::string>{"output"}));
  EXPECT_ERROR_CONTAINS(resolve_taps(*frozen, {"features.2"}), "no submodule calls to tap (frozen");

  testing::TempDir dir;
  auto bytes = testing::read_bytes(kDir + "resnet_like.pt");
  testing::write_bytes(dir.file("m.pt"), bytes);
  EXPECT_ERROR_CONTAINS(load_model(dir.file("m.pt")), "m.pt: a TorchScript model needs its preprocessing: write");
  testing::write_bytes(dir.file("m.pt.json"), R"({"input": [3, 16, 16], "classes": ["a", "b"]})");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("m.pt")), "names 2 classes but the model outputs 4");
  testing::write_bytes(dir.file("m.pt.json"), R"({"input": [1, 16, 16]})");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("m.pt")), "m.pt: running the model on a blank 1x16x16 input failed");
  testing::write_bytes(dir.file("m.pt.json"), R"({"input": [3, 16]})");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("m.pt")), "m.pt.json: 'input' must be [channels, height, width]");
  testing::write_bytes(dir.file("other.json"), R"({"input": [3, 16, 16], "std": [1, 0, 1]})");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("m.pt"), dir.file("other.json")), "other.json: 'std' values must be > 0");
  // Unknown keys (a typo such as "stds") are refused, not ignored; so is a bad fit.
  testing::write_bytes(dir.file("other.json"), R"({"input": [3, 16, 16], "stds": [1, 1, 1]})");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("m.pt"), dir.file("other.json")),
                        "other.json: unknown key 'stds' (expected input, mean, std, classes, fit)");
  testing::write_bytes(dir.file("other.json"), R"({"input": [3, 16, 16], "fit": "crop=8"})");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("m.pt"), dir.file("other.json")),
                        "other.json: 'fit': input size '16x16,crop=8': the crop 16x16 is larger than the resized image's "
                        "shorter side 8");
  testing::write_bytes(dir.file("junk.pt"), std::string("PK\3\4") + std::string(100, 'x'));
  testing::write_bytes(dir.file("junk.pt.json"), R"({"input": [3, 16, 16]})");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("junk.pt")), "junk.pt: cannot load the TorchScript module");
}

}  // namespace
}  // namespace imagescore
