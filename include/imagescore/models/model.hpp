// Models: a small abstract interface over a classifier that exposes named activation
// taps (SPEC section 2). LibTorch stays behind this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/data/data.hpp"

namespace imagescore {

struct TapInfo {
  std::string name;
  std::vector<std::int64_t> shape;  // per image, without the batch dimension
  std::size_t numel() const;
};

// Everything later commands need to use a model: it travels inside the checkpoint.
struct ModelMeta {
  std::string arch;                  // small-cnn | vgg16 | resnet18
  ImageShape input;
  std::vector<std::string> class_names;
  Normalization normalization;
  std::string data_spec;             // what it was trained on
  std::string training_json = "{}";  // training options and results (JSON text)
  std::string weights_hash;          // FNV-1a 64 of all parameters and buffers, in order
  std::size_t num_classes() const { return class_names.size(); }
};

// A view of one tap's activations for a batch: `numel` floats per image, in blocks of
// `block_rows` consecutive images (the model's evaluation chunks, left where they were
// computed rather than copied into one array).
struct TapView {
  std::vector<const float*> blocks;
  std::size_t block_rows = 0;
  std::size_t numel = 0;
  const float* row(std::size_t i) const { return blocks[i / block_rows] + (i % block_rows) * numel; }
  // Images [0, count) in one array.
  std::vector<float> gather(std::size_t count) const {
    std::vector<float> values;
    values.reserve(count * numel);
    for (std::size_t i = 0; i < count; ++i) values.insert(values.end(), row(i), row(i) + numel);
    return values;
  }
  // A view of `rows` consecutive images stored in one array.
  static TapView contiguous(const float* data, std::size_t rows, std::size_t numel) {
    return {{data}, rows > 0 ? rows : 1, numel};
  }
};

struct ForwardOutput {
  std::size_t batch = 0;
  std::size_t num_classes = 0;
  std::vector<float> logits;         // batch x num_classes
  std::vector<TapView> taps;         // in the order of the requested taps
  std::shared_ptr<void> storage;     // keeps the tap buffers alive
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelMeta& meta() const = 0;
  // All taps in forward order (the last is `output`, the softmax of the logits).
  virtual const std::vector<TapInfo>& taps() const = 0;
  // The taps used when none are named (SPEC section 2): positions in taps(). Built-in
  // models use all of them; imported models a subset (docs/torchscript.md).
  virtual std::vector<std::size_t> default_taps() const;
  // Why a tap of that name cannot be had ("" when the name is simply unknown).
  virtual std::string tap_unavailable_reason(const std::string& name) const { return ""; }
  // The compute device it runs on, and moving it to another (a name set_device()
  // accepts). create_model and load_model place models on current_device().
  virtual std::string device() const { return "cpu"; }
  virtual void to_device(const std::string& device);
  // Runs the model in evaluation mode (no gradients) on a normalised batch. Returns the
  // logits and the activations of the taps at the given positions in taps().
  virtual ForwardOutput forward(const Batch& batch, const std::vector<std::size_t>& tap_ids) = 0;
};

// Architectures the toolkit can build and train.
const std::vector<std::string>& builtin_architectures();

// A freshly initialised built-in model (seeded).
std::unique_ptr<Model> create_model(const std::string& arch, const ImageShape& input,
                                    const std::vector<std::string>& class_names,
                                    const Normalization& norm, std::uint64_t seed);

// Loads a checkpoint written by save_model, or a TorchScript module (from torch.jit.trace
// or torch.jit.script) whose preprocessing is described by `preprocess` (a JSON file;
// default: the model's path + ".json"). Fails naming the file and the problem.
std::unique_ptr<Model> load_model(const std::string& path, const std::string& preprocess = "");
void save_model(const Model& model, const std::string& path);

// Positions in taps() of the named taps; empty `names` means the default taps.
// Fails on an unknown name, listing the known ones.
std::vector<std::size_t> resolve_taps(const Model& model, const std::vector<std::string>& names);

// Fails unless images of `source` fit the model (shape and class count).
void check_compatible(const Model& model, const ImageSource& source);

}  // namespace imagescore
