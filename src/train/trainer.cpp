// Training epochs: the data order, augmentation, progress and the record of a training
// run. The steps themselves are the model's (TrainableModel::start_training).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "imagescore/core/error.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore {
namespace {

void check_options(const TrainOptions& o) {
  if (o.epochs < 0) fail_option("epochs", "must be >= 0");
  if (o.batch_size == 0) fail_option("batch_size", "must be > 0");
  o.optimizer.validate();
}

// The training images with labels in the model's class ids, checked.
std::unique_ptr<ImageSource> training_data(const Model& model, const ImageSource& given) {
  auto aligned = align_to_model(model, given);
  const ImageSource& source = *aligned;
  if (!source.labelled()) fail(source.spec(), "training needs labelled images");
  if (source.size() == 0) fail(source.spec(), "no images to train on");
  const auto classes = int(model.meta().num_classes());
  for (std::size_t i = 0; i < source.size(); ++i) {
    int label = source.label(i);
    if (label < 0 || label >= classes)
      fail(source.path(i), "label " + std::to_string(label) + " out of range for a " + std::to_string(classes) +
                               "-class model");
  }
  return aligned;
}

}  // namespace

struct Trainer::Impl {
  TrainableModel* model = nullptr;
  TrainOptions options;
  std::unique_ptr<TrainingSession> session;
};

Trainer::Trainer(TrainableModel& model, const TrainOptions& options) : impl_(std::make_unique<Impl>()) {
  check_options(options);
  impl_->model = &model;
  impl_->options = options;
  impl_->session = model.start_training(options.optimizer);
}

Trainer::~Trainer() = default;

EpochReport Trainer::train_epoch(const ImageSource& source, int epoch, const EpochTargets& targets) {
  auto& model = *impl_->model;
  auto& session = *impl_->session;
  const auto& options = impl_->options;
  const auto data = training_data(model, source);
  const std::size_t classes = model.meta().num_classes();
  if (!targets.weights.empty() && targets.weights.size() != data->size())
    fail("train", std::to_string(targets.weights.size()) + " loss weights for " + std::to_string(data->size()) + " images");
  if (!targets.soft.empty() && targets.soft.size() != data->size() * classes)
    fail("train", "soft targets hold " + std::to_string(targets.soft.size()) + " values, not images x classes = " +
                      std::to_string(data->size() * classes));
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.shuffle = !targets.keep_order;
  lo.seed = options.seed;
  lo.epoch = std::uint64_t(epoch);
  lo.augmentation = options.augmentation;
  lo.threads = options.threads;
  BatchLoader loader(*data, model.meta().normalization, lo);
  Progress progress("train epoch " + std::to_string(epoch), loader.num_images(), options.quiet);
  auto start = std::chrono::steady_clock::now();
  // Seeded per epoch so that a resumed run redoes an epoch identically.
  session.begin_epoch(options.seed * 1000003ULL + std::uint64_t(epoch));
  double loss_sum = 0;
  std::size_t correct = 0, seen = 0;
  Batch batch;
  std::vector<float> weights, soft;  // the batch's rows of the targets
  try {
    while (loader.next(batch)) {
      StepTargets step_targets;
      if (!targets.weights.empty()) {
        weights.clear();
        for (auto i : batch.indices) weights.push_back(targets.weights[i]);
        step_targets.weights = weights.data();
      }
      if (!targets.soft.empty()) {
        soft.clear();
        for (auto i : batch.indices) soft.insert(soft.end(), targets.soft.begin() + std::ptrdiff_t(i * classes),
                                                 targets.soft.begin() + std::ptrdiff_t((i + 1) * classes));
        step_targets.soft = soft.data();
      }
      const TrainingStep step = session.step(batch, step_targets);
      if (!std::isfinite(step.loss))
        fail("train", "loss became " + std::to_string(step.loss) + " in epoch " + std::to_string(epoch) +
                          " (lower the learning rate?)");
      loss_sum += step.loss * double(batch.size());
      correct += step.correct;
      seen += batch.size();
      char note[64];
      std::snprintf(note, sizeof note, "loss %.4f", loss_sum / double(seen));
      progress.advance(batch.size(), note);
    }
  } catch (...) {
    session.end_epoch();
    throw;
  }
  progress.finish();
  session.end_epoch();
  EpochReport r;
  r.epoch = epoch;
  r.loss = loss_sum / double(seen);
  r.accuracy = double(correct) / double(seen);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images_per_second = double(seen) / r.seconds;
  return r;
}

void Trainer::save_state(const std::string& path) const { impl_->session->save_state(path); }
void Trainer::load_state(const std::string& path) { impl_->session->load_state(path); }

std::vector<std::size_t> mixed_batch_order(std::size_t labelled, std::size_t selected, std::size_t batch_size,
                                           double share, std::uint64_t seed) {
  const auto pseudo = std::size_t(std::llround(share * double(batch_size)));
  if (pseudo == 0 || pseudo >= batch_size || selected == 0)
    fail_option("pseudo_batch_share", "needs both kinds of image in every batch");
  const std::size_t own = batch_size - pseudo;
  const auto labelled_order = seeded_permutation(labelled, seed);
  const auto pseudo_order = seeded_permutation(selected, seed ^ 0x5851f42d4c957f2dULL);
  std::vector<std::size_t> order;
  std::size_t drawn = 0;
  for (std::size_t start = 0; start < labelled; start += own) {
    for (std::size_t i = start; i < std::min(labelled, start + own); ++i) order.push_back(labelled_order[i]);
    for (std::size_t j = 0; j < pseudo; ++j) order.push_back(labelled + pseudo_order[drawn++ % selected]);
  }
  return order;
}

std::vector<EpochReport> train_model(TrainableModel& model, const ImageSource& source, const TrainOptions& options,
                                     const std::function<void(const EpochReport&)>& on_epoch) {
  Trainer trainer(model, options);
  training_data(model, source);  // fails before the first epoch
  std::vector<EpochReport> reports;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    reports.push_back(trainer.train_epoch(source, epoch));
    if (on_epoch) on_epoch(reports.back());
  }
  // The checkpoint remembers how the model was made.
  nlohmann::json history = nlohmann::json::array();
  for (const auto& r : reports)
    history.push_back({{"epoch", r.epoch}, {"loss", r.loss}, {"accuracy", r.accuracy}, {"images_per_second", r.images_per_second}});
  const auto& o = options.optimizer;
  model.record_training(source.spec(), nlohmann::json{{"images", source.size()},
                                                      {"epochs", options.epochs},
                                                      {"batch_size", options.batch_size},
                                                      {"optimizer", to_string(o.kind)},
                                                      {"lr", o.learning_rate},
                                                      {"weight_decay", o.weight_decay},
                                                      {"seed", options.seed},
                                                      {"crop_padding", options.augmentation.crop_padding},
                                                      {"horizontal_flip", options.augmentation.horizontal_flip},
                                                      {"history", history}}
                                           .dump());
  return reports;
}

}  // namespace imagescore
