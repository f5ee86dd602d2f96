#include <algorithm>
#include <cmath>
#include <limits>

#include "imagescore/core/error.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/models/taps.hpp"
#include "imagescore/train/train.hpp"

namespace imagescore {

Evaluation evaluate(Model& model, const ImageSource& given, std::size_t batch_size, int threads, bool quiet) {
  const auto aligned = align_to_model(model, given);
  const ImageSource& source = *aligned;
  if (!source.labelled()) fail(source.spec(), "evaluation needs labelled images");
  const std::size_t k = model.meta().num_classes();
  Evaluation ev;
  ev.confusion.assign(k, std::vector<std::size_t>(k, 0));
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.threads = threads;
  BatchLoader loader(source, model.meta().normalization, lo);
  Progress progress("eval", loader.num_images(), quiet);
  Batch batch;
  std::size_t correct = 0;
  while (loader.next(batch)) {
    auto out = model.forward(batch, {});
    for (std::size_t i = 0; i < out.batch; ++i) {
      const float* row = &out.logits[i * k];
      std::size_t pred = std::size_t(std::max_element(row, row + k) - row);
      auto label = std::size_t(batch.labels[i]);
      if (label >= k) fail(source.path(batch.indices[i]), "label out of range for the model");
      ++ev.confusion[label][pred];
      correct += label == pred;
    }
    ev.images += out.batch;
    progress.advance(out.batch);
  }
  progress.finish();
  if (ev.images == 0) fail(source.spec(), "no images to evaluate");
  ev.accuracy = double(correct) / double(ev.images);
  for (std::size_t c = 0; c < k; ++c) {
    std::size_t total = 0;
    for (auto v : ev.confusion[c]) total += v;
    ev.per_class_accuracy.push_back(total ? double(ev.confusion[c][c]) / double(total)
                                          : std::numeric_limits<double>::quiet_NaN());
  }
  return ev;
}

std::vector<float> predict_probabilities(Model& model, const ImageSource& source, std::size_t batch_size, int threads) {
  const std::size_t k = model.meta().num_classes();
  std::vector<float> probabilities(source.size() * k);
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.threads = threads;
  BatchLoader loader(source, model.meta().normalization, lo);
  Batch batch;
  std::size_t done = 0;
  while (loader.next(batch)) {
    auto out = model.forward(batch, {});
    softmax_rows(out.logits.data(), out.batch, k, probabilities.data() + done * k);
    done += out.batch;
  }
  return probabilities;
}

}  // namespace imagescore
