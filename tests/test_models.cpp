// Built-in models: taps, forward, checkpoints, training.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>

#include "imagescore/models/model.hpp"
#include "imagescore/train/train.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using Shape = std::vector<std::int64_t>;

std::vector<std::string> classes(int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

Normalization plain(int channels) {
  return {std::vector<float>(std::size_t(channels), 0.f), std::vector<float>(std::size_t(channels), 1.f)};
}

void expect_taps(const Model& model, const std::vector<std::pair<std::string, Shape>>& expected) {
  ASSERT_EQ(model.taps().size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(model.taps()[i].name, expected[i].first);
    EXPECT_EQ(model.taps()[i].shape, expected[i].second) << expected[i].first;
  }
}

TEST(Models, SmallCnnTaps) {
  auto m = create_model("small-cnn", {1, 28, 28}, classes(10), plain(1), 0);
  expect_taps(*m, {{"conv1", {32, 14, 14}}, {"conv2", {64, 7, 7}}, {"fc1", {128}}, {"output", {10}}});
}

TEST(Models, Vgg16Taps) {
  auto m = create_model("vgg16", {3, 32, 32}, classes(10), plain(3), 0);
  expect_taps(*m, {{"conv1_1", {64, 32, 32}},  {"conv1_2", {64, 16, 16}},  {"conv2_1", {128, 16, 16}},
                   {"conv2_2", {128, 8, 8}},   {"conv3_1", {256, 8, 8}},   {"conv3_2", {256, 8, 8}},
                   {"conv3_3", {256, 4, 4}},   {"conv4_1", {512, 4, 4}},   {"conv4_2", {512, 4, 4}},
                   {"conv4_3", {512, 2, 2}},   {"conv5_1", {512, 2, 2}},   {"conv5_2", {512, 2, 2}},
                   {"conv5_3", {512, 1, 1}},   {"fc1", {512}},             {"fc2", {512}},
                   {"output", {10}}});
}

TEST(Models, ResNet18Taps) {
  auto m = create_model("resnet18", {3, 32, 32}, classes(100), plain(3), 0);
  expect_taps(*m, {{"conv1", {64, 32, 32}},   {"layer1.0", {64, 32, 32}}, {"layer1.1", {64, 32, 32}},
                   {"layer2.0", {128, 16, 16}}, {"layer2.1", {128, 16, 16}}, {"layer3.0", {256, 8, 8}},
                   {"layer3.1", {256, 8, 8}},   {"layer4.0", {512, 4, 4}},   {"layer4.1", {512, 4, 4}},
                   {"avgpool", {512}},          {"output", {100}}});
  // The pooled features feed the classifier (feature scores read them) but are no layer
  // output of the image score: not a default tap.
  const auto defaults = m->default_taps();
  EXPECT_EQ(defaults.size(), 10u);
  EXPECT_EQ(std::count(defaults.begin(), defaults.end(), std::size_t(9)), 0);
  const auto head = m->linear_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->tap, 9u);
  EXPECT_EQ(head->weight.size(), 100u * 512);
  EXPECT_EQ(head->bias.size(), 100u);
}

// The linear head reproduces the logits from its tap.
TEST(Models, LinearHeadGivesTheLogits) {
  auto source = testing::separable_source(3, 4, {1, 8, 8}, 3);
  auto m = create_model("small-cnn", source->shape(), source->class_names(), plain(1), 0);
  const auto head = m->linear_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(m->taps()[head->tap].name, "fc1");
  BatchLoader loader(*source, m->meta().normalization, {});
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  auto out = m->forward(batch, {head->tap});
  const std::size_t d = 128, k = 3;
  for (std::size_t i = 0; i < out.batch; ++i)
    for (std::size_t c = 0; c < k; ++c) {
      double z = head->bias[c];
      for (std::size_t j = 0; j < d; ++j) z += double(head->weight[c * d + j]) * out.taps[0].row(i)[j];
      EXPECT_NEAR(z, out.logits[i * k + c], 1e-4);
    }
}

// Monte Carlo dropout: masks per image, so an image's logits do not depend on its batch;
// other seeds give other logits; without dropout the model refuses.
TEST(Models, DropoutLogitsDependOnTheImageNotTheBatch) {
  auto source = testing::separable_source(3, 10, {1, 8, 8}, 3);
  auto m = create_model("small-cnn", source->shape(), source->class_names(), plain(1), 0);
  auto logits_of = [&](std::size_t batch_size, std::uint64_t seed) {
    LoaderOptions lo;
    lo.batch_size = batch_size;
    BatchLoader loader(*source, m->meta().normalization, lo);
    Batch batch;
    std::vector<float> all;
    while (loader.next(batch)) {
      auto l = m->logits_with_dropout(batch, seed);
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  };
  const auto a = logits_of(7, 1), b = logits_of(30, 1), c = logits_of(30, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  BatchLoader loader(*source, m->meta().normalization, {});
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  EXPECT_NE(m->forward(batch, {}).logits, std::vector<float>(a.begin(), a.begin() + long(batch.size() * 3)));
  auto resnet = create_model("resnet18", {1, 8, 8}, source->class_names(), plain(1), 0);
  EXPECT_FALSE(resnet->has_dropout());
  EXPECT_ERROR_CONTAINS(resnet->logits_with_dropout(batch, 1), "model resnet18: has no dropout layer to sample");
}

TEST(Models, ForwardGivesLogitsAndSoftmaxOutput) {
  auto source = testing::separable_source(3, 2, {1, 8, 8}, 3);
  auto m = create_model("small-cnn", source->shape(), source->class_names(), plain(1), 0);
  BatchLoader loader(*source, m->meta().normalization, {});
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  auto out = m->forward(batch, resolve_taps(*m, {"conv2", "output"}));
  ASSERT_EQ(out.batch, 6u);
  ASSERT_EQ(out.taps.size(), 2u);
  EXPECT_EQ(out.taps[0].numel, 64u * 2 * 2);
  for (std::size_t i = 0; i < out.batch; ++i) {
    double total = 0, z = 0, mx = -1e30;
    for (std::size_t c = 0; c < 3; ++c) mx = std::max(mx, double(out.logits[i * 3 + c]));
    for (std::size_t c = 0; c < 3; ++c) z += std::exp(out.logits[i * 3 + c] - mx);
    for (std::size_t c = 0; c < 3; ++c) {
      double p = out.taps[1].row(i)[c];
      EXPECT_NEAR(p, std::exp(out.logits[i * 3 + c] - mx) / z, 1e-6);
      total += p;
    }
    EXPECT_NEAR(total, 1.0, 1e-6);
  }
}

TEST(Models, ActivationsDoNotDependOnTheBatch) {
  // Every tap of an image, `output` included, is bitwise the same in any batch.
  auto source = testing::separable_source(10, 25, {1, 28, 28}, 9);
  auto m = create_model("small-cnn", source->shape(), source->class_names(), compute_normalization(*source, 1), 5);
  auto ids = resolve_taps(*m, {});
  auto taps_of_first_image = [&](std::size_t batch_size) {
    LoaderOptions lo;
    lo.batch_size = batch_size;
    BatchLoader loader(*source, m->meta().normalization, lo);
    Batch batch;
    loader.next(batch);
    auto out = m->forward(batch, ids);
    std::vector<std::vector<float>> taps;
    for (const auto& t : out.taps) taps.emplace_back(t.row(0), t.row(0) + t.numel);
    return taps;
  };
  // LibTorch alone gives a 128-to-10 linear layer other bits for 16 and 256 rows.
  auto one = taps_of_first_image(1);
  EXPECT_EQ(one, taps_of_first_image(37));
  EXPECT_EQ(one, taps_of_first_image(250));
}

TEST(Models, BadArchitecturesAndShapes) {
  EXPECT_ERROR_CONTAINS(create_model("alexnet", {1, 28, 28}, classes(10), plain(1), 0), "unknown architecture 'alexnet'");
  EXPECT_ERROR_CONTAINS(create_model("vgg16", {1, 28, 28}, classes(10), plain(1), 0), "at least 32x32");
  EXPECT_ERROR_CONTAINS(create_model("small-cnn", {1, 28, 28}, classes(1), plain(1), 0), "at least 2 classes");
  // LibTorch said "tried to allocate 549755813888 bytes".
  EXPECT_ERROR_CONTAINS(create_model("small-cnn", {1, 16384, 16384}, classes(10), plain(1), 0),
                        "small-cnn: a 1x16384x16384 input gives its layer fc1 1073741824 x 128 weights (512 GiB; at most "
                        "1 GiB): resize the images, or use resnet18");
  EXPECT_ERROR_CONTAINS(create_model("vgg16", {3, 2048, 2048}, classes(10), plain(3), 0), "vgg16: a 3x2048x2048 input gives");
  EXPECT_NO_THROW(create_model("small-cnn", {3, 224, 224}, classes(10), plain(3), 0));
  auto m = create_model("small-cnn", {1, 28, 28}, classes(10), plain(1), 0);
  testing::MemorySource wrong({3, 28, 28}, classes(10));
  EXPECT_ERROR_CONTAINS(align_to_model(*m, wrong), "memory: images are 3x28x28 but the model expects 1x28x28");
  EXPECT_ERROR_CONTAINS(resolve_taps(*m, {"conv1", "conv1"}), "given twice");
}

TEST(Models, CheckpointRoundTripGivesIdenticalOutputs) {
  auto source = testing::separable_source(4, 5, {3, 32, 32}, 5);
  testing::TempDir dir;
  for (const auto& arch : builtin_architectures()) {
    auto m = create_model(arch, source->shape(), source->class_names(), compute_normalization(*source, 1), 11);
    TrainOptions o;
    o.epochs = 1;
    o.batch_size = 8;
    o.quiet = true;
    train_model(*m, *source, o);  // moves batch-norm statistics away from their defaults
    const std::string path = dir.file(arch + ".safetensors");
    save_model(*m, path);
    auto back = load_model(path);
    EXPECT_EQ(back->meta().weights_hash, m->meta().weights_hash);
    EXPECT_EQ(back->meta().class_names, source->class_names());
    EXPECT_EQ(back->meta().normalization.mean, m->meta().normalization.mean);
    EXPECT_EQ(back->meta().data_spec, "memory");
    BatchLoader loader(*source, m->meta().normalization, {});
    Batch batch;
    ASSERT_TRUE(loader.next(batch));
    auto ids = resolve_taps(*m, {});
    auto a = m->forward(batch, ids), b = back->forward(batch, ids);
    EXPECT_EQ(a.logits, b.logits) << arch;
    for (std::size_t t = 0; t < ids.size(); ++t)
      EXPECT_EQ(a.taps[t].gather(a.batch), b.taps[t].gather(b.batch)) << arch;
  }
  // A corrupted or foreign file is refused with its name.
  auto bytes = testing::read_bytes(dir.file("small-cnn.safetensors"));
  bytes[bytes.size() - 5] ^= 1;
  testing::write_bytes(dir.file("bad.safetensors"), bytes);
  EXPECT_ERROR_CONTAINS(load_model(dir.file("bad.safetensors")), "bad.safetensors: checksum mismatch");
  // One digit of the normalisation in the header changes every output: refused too, and
  // so is a file whose checksum was removed.
  bytes = testing::read_bytes(dir.file("small-cnn.safetensors"));
  const auto mean = bytes.find("\\\"mean\\\":[0.");
  ASSERT_NE(mean, std::string::npos);
  bytes[mean + 12] = bytes[mean + 12] == '1' ? '2' : '1';
  testing::write_bytes(dir.file("bad.safetensors"), bytes);
  EXPECT_ERROR_CONTAINS(load_model(dir.file("bad.safetensors")), "bad.safetensors: checksum mismatch (file corrupted or edited)");
  bytes = testing::read_bytes(dir.file("small-cnn.safetensors"));
  bytes.replace(bytes.find("imagescore.checksum"), 19, "imagescore.comment ");
  testing::write_bytes(dir.file("bad.safetensors"), bytes);
  EXPECT_ERROR_CONTAINS(load_model(dir.file("bad.safetensors")), "bad.safetensors: has no checksum");
  testing::write_bytes(dir.file("text.safetensors"), "hello");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("text.safetensors")), "text.safetensors");
  EXPECT_ERROR_CONTAINS(load_model(dir.file("missing.safetensors")), "missing.safetensors");
}

std::vector<int> aligned_labels(const Model& model, const ImageSource& source) {
  return align_to_model(model, source)->labels();
}

TEST(Models, DataClassesAreMappedToTheModelsByName) {
  auto m = create_model("small-cnn", {1, 12, 12}, {"a", "b", "c"}, plain(1), 0);
  auto source = [](std::vector<std::string> names, std::vector<int> labels) {
    auto s = std::make_unique<testing::MemorySource>(ImageShape{1, 12, 12}, std::move(names));
    for (int label : labels) s->add(std::vector<std::uint8_t>(144, 0), label);
    return s;
  };
  // A test folder without class b, and one with its classes in another order.
  auto without_b = source({"a", "c"}, {0, 1, 1});
  EXPECT_EQ(aligned_labels(*m, *without_b), (std::vector<int>{0, 2, 2}));
  EXPECT_EQ(align_to_model(*m, *without_b)->class_names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(aligned_labels(*m, *source({"c", "b", "a"}, {0, 1, 2})), (std::vector<int>{2, 1, 0}));
  // Renamed classes are refused, naming them.
  EXPECT_ERROR_CONTAINS(align_to_model(*m, *source({"a", "x", "y"}, {0})),
                        "memory: classes 'x', 'y' are not among the model's classes ('a', 'b', 'c')");
  EXPECT_ERROR_CONTAINS(align_to_model(*m, *source({"b", "q"}, {0})), "memory: class 'q' is not among the model's classes");
  // Numbered classes (IDX, csv:) keep their ids; so do names against a numbered model.
  EXPECT_EQ(aligned_labels(*m, *source({"0", "1"}, {1, 0})), (std::vector<int>{1, 0}));
  EXPECT_ERROR_CONTAINS(align_to_model(*m, *source({"0", "1", "2", "3"}, {0})), "memory: has 4 classes but the model has 3");
  auto numbered = create_model("small-cnn", {1, 12, 12}, classes(3), plain(1), 0);
  EXPECT_EQ(aligned_labels(*numbered, *source({"x", "y"}, {1, 0})), (std::vector<int>{1, 0}));
  // Unlabelled data stay unlabelled.
  auto pool = source({}, {kNoLabel, kNoLabel});
  EXPECT_FALSE(align_to_model(*m, *pool)->labelled());
  EXPECT_EQ(aligned_labels(*m, *pool), (std::vector<int>{kNoLabel, kNoLabel}));
}

TEST(Models, EvaluationMapsClassesByName) {
  auto train = testing::separable_source(4, 30, {1, 12, 12}, 1);
  auto m = create_model("small-cnn", train->shape(), train->class_names(), compute_normalization(*train, 1), 3);
  TrainOptions o;
  o.epochs = 2;
  o.batch_size = 16;
  o.quiet = true;
  train_model(*m, *train, o);
  auto test = testing::separable_source(4, 10, {1, 12, 12}, 2);
  const Evaluation plain_order = evaluate(*m, *test, 16, 1, true);
  const Evaluation reversed = evaluate(*m, *testing::with_classes_reversed(*test), 16, 1, true);
  EXPECT_EQ(reversed.accuracy, plain_order.accuracy);
  EXPECT_EQ(reversed.confusion, plain_order.confusion);
}

TEST(Training, BeatsChanceClearlyOnASeparableSet) {
  auto train = testing::separable_source(4, 40, {1, 12, 12}, 1);
  auto test = testing::separable_source(4, 20, {1, 12, 12}, 2);
  auto m = create_model("small-cnn", train->shape(), train->class_names(), compute_normalization(*train, 1), 3);
  TrainOptions o;
  o.epochs = 4;
  o.batch_size = 16;
  o.quiet = true;
  int epochs_seen = 0;
  auto reports = train_model(*m, *train, o, [&](const EpochReport&) { ++epochs_seen; });
  EXPECT_EQ(epochs_seen, 4);
  EXPECT_LT(reports.back().loss, reports.front().loss);
  auto ev = evaluate(*m, *test, 32, 1, true);
  EXPECT_EQ(ev.images, 80u);
  EXPECT_GE(ev.accuracy, 0.9);  // chance is 0.25
  std::size_t total = 0;
  for (const auto& row : ev.confusion)
    for (auto v : row) total += v;
  EXPECT_EQ(total, 80u);
}

TEST(Training, BadOptions) {
  auto train = testing::separable_source(2, 4, {1, 8, 8}, 1);
  auto m = create_model("small-cnn", train->shape(), train->class_names(), plain(1), 0);
  TrainOptions o;
  o.quiet = true;
  o.optimizer.learning_rate = 0;
  EXPECT_ERROR_CONTAINS(train_model(*m, *train, o), "lr: must be > 0");
  o.optimizer.learning_rate = 1e-3;
  EXPECT_ERROR_CONTAINS(parse_optimizer("adagrad"), "unknown optimizer 'adagrad'");
  testing::MemorySource unlabelled(train->shape(), {});
  unlabelled.add(std::vector<std::uint8_t>(64, 0), kNoLabel);
  o.optimizer.kind = parse_optimizer("sgd");
  EXPECT_ERROR_CONTAINS(train_model(*m, unlabelled, o), "training needs labelled images");
}

}  // namespace
}  // namespace imagescore
