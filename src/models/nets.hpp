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

// A classifier whose forward also reports its taps (all but `output`, which the caller
// derives from the logits), in the order of tap_names().
class ClassifierNet : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x, TapRecorder* taps) = 0;
  // Names of the hidden taps in forward order (without `output`).
  virtual std::vector<std::string> tap_names() const = 0;
};

std::shared_ptr<ClassifierNet> make_net(const std::string& arch, const ImageShape& input, int num_classes);

}  // namespace imagescore::detail
