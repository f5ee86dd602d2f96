#include "imagescore/train/train.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>

#include "../core/device.hpp"
#include "../models/builtin_model.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/progress.hpp"

namespace imagescore {
namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(torch::nn::Module& net, const TrainOptions& o) {
  if (o.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(
        net.parameters(), torch::optim::AdamOptions(o.learning_rate).weight_decay(o.weight_decay));
  if (o.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(
        net.parameters(), torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum).weight_decay(o.weight_decay));
  fail_option("optimizer", "unknown optimizer '" + o.optimizer + "' (expected adam or sgd)");
}

void check_options(const TrainOptions& o) {
  if (o.epochs < 0) fail_option("epochs", "must be >= 0");
  if (o.batch_size == 0) fail_option("batch_size", "must be > 0");
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate)) fail_option("lr", "must be > 0");
  if (!(o.weight_decay >= 0)) fail_option("weight_decay", "must be >= 0");
}

}  // namespace

namespace {

void check_labels(const Model& model, const ImageSource& source) {
  check_compatible(model, source);
  if (!source.labelled()) fail(source.spec(), "training needs labelled images");
  if (source.size() == 0) fail(source.spec(), "no images to train on");
  const auto classes = int(model.meta().num_classes());
  for (std::size_t i = 0; i < source.size(); ++i) {
    int label = source.label(i);
    if (label < 0 || label >= classes)
      fail(source.path(i), "label " + std::to_string(label) + " out of range for a " + std::to_string(classes) +
                               "-class model");
  }
}

}  // namespace

struct Trainer::Impl {
  detail::BuiltinModel* model = nullptr;
  TrainOptions options;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

Trainer::Trainer(Model& model, const TrainOptions& options) : impl_(std::make_unique<Impl>()) {
  check_options(options);
  impl_->model = dynamic_cast<detail::BuiltinModel*>(&model);
  if (!impl_->model) fail("train", "only built-in models can be trained");
  impl_->options = options;
  impl_->optimizer = make_optimizer(impl_->model->net(), options);
}

Trainer::~Trainer() = default;

EpochReport Trainer::train_epoch(const ImageSource& source, int epoch) {
  auto& model = *impl_->model;
  const auto& options = impl_->options;
  check_labels(model, source);
  auto& net = model.net();
  // Seeded per epoch so that a resumed run redoes an epoch identically.
  torch::manual_seed(options.seed * 1000003ULL + std::uint64_t(epoch));
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.shuffle = true;
  lo.seed = options.seed;
  lo.epoch = std::uint64_t(epoch);
  lo.augmentation = options.augmentation;
  lo.threads = options.threads;
  BatchLoader loader(source, model.meta().normalization, lo);
  Progress progress("train epoch " + std::to_string(epoch), loader.num_images(), options.quiet);
  auto start = std::chrono::steady_clock::now();
  net.train();
  double loss_sum = 0;
  std::size_t correct = 0, seen = 0;
  Batch batch;
  try {
    while (loader.next(batch)) {
      auto x = detail::to_device(detail::batch_tensor(batch), model.torch_device());
      auto y = detail::to_device(torch::from_blob(batch.labels.data(), {int64_t(batch.size())}, torch::kInt64),
                                 model.torch_device());
      impl_->optimizer->zero_grad();
      auto logits = net.forward(x, nullptr);
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();
      impl_->optimizer->step();
      double l = loss.item<double>();
      if (!std::isfinite(l))
        fail("train", "loss became " + std::to_string(l) + " in epoch " + std::to_string(epoch) + " (lower the learning rate?)");
      loss_sum += l * double(batch.size());
      correct += std::size_t(logits.argmax(1).eq(y).sum().item<int64_t>());
      seen += batch.size();
      char note[64];
      std::snprintf(note, sizeof note, "loss %.4f", loss_sum / double(seen));
      progress.advance(batch.size(), note);
    }
  } catch (...) {
    net.eval();
    model.weights_changed();
    throw;
  }
  progress.finish();
  net.eval();
  model.weights_changed();
  EpochReport r;
  r.epoch = epoch;
  r.loss = loss_sum / double(seen);
  r.accuracy = double(correct) / double(seen);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images_per_second = double(seen) / r.seconds;
  return r;
}

void Trainer::save_state(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  impl_->optimizer->save(archive);
  write_file_atomic(path, [&](std::ostream& out) { archive.save_to(out); });
}

void Trainer::load_state(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, impl_->model->torch_device());
    impl_->optimizer->load(archive);
  } catch (const c10::Error& e) {
    fail(path, "cannot read the optimizer state (corrupted or from another model)");
  }
}

std::vector<EpochReport> train_model(Model& model, const ImageSource& source, const TrainOptions& options,
                                     const std::function<void(const EpochReport&)>& on_epoch) {
  Trainer trainer(model, options);
  check_labels(model, source);
  std::vector<EpochReport> reports;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    reports.push_back(trainer.train_epoch(source, epoch));
    if (on_epoch) on_epoch(reports.back());
  }
  // The checkpoint remembers how the model was made.
  nlohmann::json history = nlohmann::json::array();
  for (const auto& r : reports)
    history.push_back({{"epoch", r.epoch}, {"loss", r.loss}, {"accuracy", r.accuracy}, {"images_per_second", r.images_per_second}});
  auto& meta = dynamic_cast<detail::BuiltinModel&>(model).mutable_meta();
  meta.data_spec = source.spec();
  meta.training_json = nlohmann::json{{"images", source.size()},
                                      {"epochs", options.epochs},
                                      {"batch_size", options.batch_size},
                                      {"optimizer", options.optimizer},
                                      {"lr", options.learning_rate},
                                      {"weight_decay", options.weight_decay},
                                      {"seed", options.seed},
                                      {"crop_padding", options.augmentation.crop_padding},
                                      {"horizontal_flip", options.augmentation.horizontal_flip},
                                      {"history", history}}
                           .dump();
  return reports;
}

}  // namespace imagescore
