// Compute devices: --device parsing and refusal everywhere; with IMAGESCORE_TEST_DEVICE
// set (scripts/gpu-check does), the same pipeline on that GPU against the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/models/device.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/train/train.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

// Restores the process-wide device after a test.
struct DeviceGuard {
  std::string saved = current_device();
  ~DeviceGuard() { set_device(saved); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Device, CpuIsTheDefault) {
  EXPECT_EQ(current_device(), "cpu");
  auto source = testing::separable_source(3, 4, {1, 8, 8}, 1);
  auto m = create_model("small-cnn", source->shape(), source->class_names(), compute_normalization(*source, 1), 1);
  EXPECT_EQ(m->device(), "cpu");
}

TEST(Device, UnknownNamesAreRefused) {
  DeviceGuard guard;
  for (const std::string name : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "cuda:12345", ""})
    EXPECT_EQ(error_of([&] { set_device(name); }),
              "device: unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  EXPECT_EQ(current_device(), "cpu");
}

TEST(Device, CudaIsRefusedWhereThereIsNone) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA GPU is visible";
  DeviceGuard guard;
  const auto message = error_of([] { set_device("cuda"); });
  EXPECT_TRUE(message == "device: 'cuda': this imagescore is built on a LibTorch without CUDA (docs/gpu.md: build "
                         "against a CUDA LibTorch)" ||
              message == "device: 'cuda': no CUDA GPU is visible")
      << message;
  EXPECT_EQ(current_device(), "cpu");
  auto source = testing::separable_source(3, 4, {1, 8, 8}, 1);
  auto m = create_model("small-cnn", source->shape(), source->class_names(), compute_normalization(*source, 1), 1);
  EXPECT_NE(error_of([&] { m->to_device("cuda:0"); }).find("device: 'cuda:0': "), std::string::npos);
  EXPECT_EQ(m->device(), "cpu");
}

TEST(Device, ModelsWithoutDeviceSupportStayOnTheCpu) {
  testing::PixelModel m({1, 2, 2}, {"a", "b"});
  EXPECT_NO_THROW(m.to_device("cpu"));
  EXPECT_EQ(error_of([&] { m.to_device("cuda"); }), "device: 'cuda': a pixel model runs on the CPU only");
}

// The GPU under test, or "" (the tests below then skip).
std::string test_device() {
  const char* device = std::getenv("IMAGESCORE_TEST_DEVICE");
  return device && *device ? device : "";
}

#define REQUIRE_TEST_DEVICE()                                                                       \
  const std::string gpu = test_device();                                                            \
  if (gpu.empty()) GTEST_SKIP() << "set IMAGESCORE_TEST_DEVICE=cuda on a GPU machine (scripts/gpu-check)"

TEST(DeviceGpu, ForwardMatchesTheCpu) {
  REQUIRE_TEST_DEVICE();
  auto source = testing::separable_source(4, 30, {3, 32, 32}, 2);
  auto cpu = create_model("resnet18", source->shape(), source->class_names(), compute_normalization(*source, 1), 4);
  auto dev = create_model("resnet18", source->shape(), source->class_names(), compute_normalization(*source, 1), 4);
  dev->to_device(gpu);
  EXPECT_EQ(dev->device().substr(0, 4), "cuda");
  EXPECT_EQ(cpu->meta().weights_hash, dev->meta().weights_hash);
  auto ids = resolve_taps(*cpu, {});
  LoaderOptions lo;
  lo.batch_size = 100;
  BatchLoader loader(*source, cpu->meta().normalization, lo);
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  auto a = cpu->forward(batch, ids), b = dev->forward(batch, ids);
  ASSERT_EQ(a.logits.size(), b.logits.size());
  for (std::size_t i = 0; i < a.logits.size(); ++i) EXPECT_NEAR(a.logits[i], b.logits[i], 1e-3 * (1 + std::fabs(a.logits[i])));
  for (std::size_t l = 0; l < ids.size(); ++l) {
    const auto x = a.taps[l].gather(a.batch), y = b.taps[l].gather(b.batch);
    double worst = 0;
    for (std::size_t k = 0; k < x.size(); ++k) worst = std::max(worst, std::fabs(double(x[k]) - y[k]) / (1 + std::fabs(x[k])));
    EXPECT_LT(worst, 1e-3) << cpu->taps()[ids[l]].name;
  }
}

TEST(DeviceGpu, ProfilesAndScoresRepeatAndAgreeWithTheCpu) {
  REQUIRE_TEST_DEVICE();
  auto source = testing::separable_source(4, 40, {1, 28, 28}, 3);
  auto model = create_model("small-cnn", source->shape(), source->class_names(), compute_normalization(*source, 1), 5);
  TrainOptions to;
  to.epochs = 2;
  to.quiet = true;
  train_model(*model, *source, to);
  ProfileRunOptions po;
  po.quiet = true;
  po.profile.keep_sums = true;  // the sums are compared run to run
  ScoreRunOptions so;
  so.quiet = true;
  auto run = [&] {
    auto profiles = build_profiles(*model, *source, po);
    std::vector<double> scores;
    score_images(*model, profiles, *source, so, [&](const ScoreRow& row) { scores.push_back(row.values[0]); });
    return std::make_pair(profiles, scores);
  };
  const auto [cpu_profiles, cpu_scores] = run();
  model->to_device(gpu);
  const auto [gpu_profiles, gpu_scores] = run();
  const auto [again_profiles, again_scores] = run();
  EXPECT_EQ(gpu_scores, again_scores) << "GPU scores differ run to run";
  std::size_t neurons = 0, same = 0;
  for (std::size_t p = 0; p < cpu_profiles.profiles.size(); ++p)
    for (std::size_t l = 0; l < cpu_profiles.profiles[p].taps.size(); ++l) {
      const auto& a = cpu_profiles.profiles[p].taps[l];
      const auto& b = gpu_profiles.profiles[p].taps[l];
      EXPECT_EQ(b.sum, again_profiles.profiles[p].taps[l].sum) << "GPU profile sums differ run to run";
      for (std::size_t k = 0; k < a.numel(); ++k) same += a.in_mask(k) == b.in_mask(k);
      neurons += a.numel();
    }
  // Masks may differ only where an activation mean sits on its threshold.
  EXPECT_GE(double(same), 0.999 * double(neurons));
  ASSERT_EQ(cpu_scores.size(), gpu_scores.size());
  std::size_t close = 0;
  for (std::size_t i = 0; i < cpu_scores.size(); ++i) close += std::fabs(cpu_scores[i] - gpu_scores[i]) < 1e-2;
  EXPECT_GE(double(close), 0.95 * double(cpu_scores.size()));
}

TEST(DeviceGpu, TrainsAndSavesACheckpointTheCpuReads) {
  REQUIRE_TEST_DEVICE();
  DeviceGuard guard;
  set_device(gpu);
  auto train = testing::separable_source(4, 40, {1, 12, 12}, 1);
  auto model = create_model("small-cnn", train->shape(), train->class_names(), compute_normalization(*train, 1), 3);
  EXPECT_EQ(model->device().substr(0, 4), "cuda");
  TrainOptions o;
  o.epochs = 4;
  o.batch_size = 16;
  o.quiet = true;
  auto reports = train_model(*model, *train, o);
  EXPECT_LT(reports.back().loss, reports.front().loss);
  EXPECT_GE(evaluate(*model, *train, 32, 1, true).accuracy, 0.9);
  testing::TempDir dir;
  save_model(*model, dir.file("m.st"));
  set_device("cpu");
  auto loaded = load_model(dir.file("m.st"));
  EXPECT_EQ(loaded->device(), "cpu");
  EXPECT_EQ(loaded->meta().weights_hash, model->meta().weights_hash);
  EXPECT_GE(evaluate(*loaded, *train, 32, 1, true).accuracy, 0.9);
}

}  // namespace
}  // namespace imagescore
