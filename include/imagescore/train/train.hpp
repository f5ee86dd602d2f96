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

// What an epoch trains each image of its source towards, by position in the source:
// a loss weight and a probability target (StepTargets), and whether the batches keep the
// source's order (a caller that composed the batches itself) instead of a seeded shuffle.
struct EpochTargets {
  std::vector<float> weights;  // empty (every weight 1) or one per image
  std::vector<float> soft;     // empty (the labels) or images x classes probabilities
  bool keep_order = false;
};

// An epoch's order when a share of every batch is pseudo-labelled (positions below
// `labelled` are the labelled images, the `selected` after them the pseudo-labelled
// ones): each batch of `batch_size` holds round(share x batch_size) pseudo-labelled
// images after its labelled ones. The epoch passes once over the labelled images
// (shuffled) and draws the pseudo-labelled ones from a shuffled cycle over them (each
// used equally often, within one). Seeded; share in (0, 1) leaving both kinds.
std::vector<std::size_t> mixed_batch_order(std::size_t labelled, std::size_t selected, std::size_t batch_size,
                                           double share, std::uint64_t seed);

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
  EpochReport train_epoch(const ImageSource& source, int epoch, const EpochTargets& targets = {});
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

// The softmax of every image's logits, in source order (images x classes, row-major).
std::vector<float> predict_probabilities(Model& model, const ImageSource& source, std::size_t batch_size, int threads);

}  // namespace imagescore
