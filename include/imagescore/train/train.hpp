// Training and evaluation of the built-in models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "imagescore/data/data.hpp"
#include "imagescore/models/model.hpp"

namespace imagescore {

struct TrainOptions {
  int epochs = 5;
  std::size_t batch_size = 128;
  OptimizerOptions optimizer;
  std::uint64_t seed = 0;
  Augmentation augmentation;
  int threads = 0;                 // decoding threads
  bool quiet = false;
};

struct EpochReport {
  int epoch = 0;            // 1-based
  double loss = 0;          // mean training loss
  double accuracy = 0;      // training accuracy (on augmented batches)
  double images_per_second = 0;
  double seconds = 0;
};

// Trains a model epoch by epoch, keeping the optimizer state between epochs (and across
// processes through save_state/load_state, for resumable runs).
class Trainer {
 public:
  Trainer(TrainableModel& model, const TrainOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One pass over `source`. The epoch number (1-based) seeds the data order, the
  // augmentation and dropout, so an epoch gives the same result when it is redone.
  EpochReport train_epoch(const ImageSource& source, int epoch);
  void save_state(const std::string& path) const;  // the optimizer's state, atomically
  void load_state(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Trains a model in place on the labelled images of `source` (every image must have a
// label below the model's class count), and records how in its checkpoint metadata.
// `on_epoch` is called after each epoch.
std::vector<EpochReport> train_model(TrainableModel& model, const ImageSource& source, const TrainOptions& options,
                                     const std::function<void(const EpochReport&)>& on_epoch = {});

struct Evaluation {
  std::size_t images = 0;
  double accuracy = 0;
  std::vector<double> per_class_accuracy;           // NaN for a class without test images
  std::vector<std::vector<std::size_t>> confusion;  // [true][predicted]
};

Evaluation evaluate(Model& model, const ImageSource& source, std::size_t batch_size, int threads, bool quiet);

}  // namespace imagescore
