// The built-in networks as torch::nn modules. Internal: LibTorch never appears in the
// public headers.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "imagescore/data/data.hpp"

namespace imagescore::detail {

// Collects the outputs of the taps a caller asked for, during one forward pass.
class TapRecorder {
 public:
  explicit TapRecorder(std::vector<bool> wanted) : wanted_(std::move(wanted)), values_(wanted_.size()) {}
  void record(std::size_t tap, const torch::Tensor& value) {
    if (tap < wanted_.size() && wanted_[tap]) values_[tap] = value;
  }
  const torch::Tensor& value(std::size_t tap) const { return values_[tap]; }

 private:
  std::vector<bool> wanted_;
  std::vector<torch::Tensor> values_;
};

// Dropout masks drawn per image (for Monte Carlo dropout): row r of a batch is masked by
// draws from its own seed and the dropout site, so an image gets the same masks whatever
// batch it is in, its place there and the thread count.
class RowDropout {
 public:
  explicit RowDropout(std::vector<std::uint64_t> row_seeds) : seeds_(std::move(row_seeds)) {}
  // x (rows x features) with each element kept with probability 1 - p and scaled by 1 / (1 - p).
  torch::Tensor apply(const torch::Tensor& x, double p, int site) const;

 private:
  std::vector<std::uint64_t> seeds_;
};

// A classifier whose forward also reports its taps (all but `output`, which the caller
// derives from the logits), in the order of tap_names().
class ClassifierNet : public torch::nn::Module {
 public:
  // With `dropout`, dropout layers mask by it even in evaluation mode.
  virtual torch::Tensor forward(torch::Tensor x, TapRecorder* taps, const RowDropout* dropout = nullptr) = 0;
  // Names of the hidden taps in forward order (without `output`).
  virtual std::vector<std::string> tap_names() const = 0;
  // Taps that are no layer output in the SPEC's sense (pooled features): not default taps.
  virtual std::vector<std::size_t> pooled_taps() const { return {}; }
  // The last layer (linear) and the tap it reads (dropout before it is the identity in
  // evaluation).
  virtual torch::nn::Linear& head() = 0;
  virtual std::size_t head_tap() const = 0;
  virtual bool has_dropout() const = 0;
};

std::shared_ptr<ClassifierNet> make_net(const std::string& arch, const ImageShape& input, int num_classes);

}  // namespace imagescore::detail
