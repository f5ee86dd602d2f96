// Models: a small abstract interface over a classifier that exposes named activation
// taps (SPEC section 2). LibTorch stays behind this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
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
  // How images of other sizes are fitted to `input` (a fit mode of folder:/csv: specs:
  // crop, crop=S, letterbox, stretch), from a TorchScript preprocessing file; "": none.
  std::string input_fit;
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

// The classifier's last layer when it is linear: logits = weight * tap + bias, with the
// weight row-major (classes x the tap's neurons).
struct LinearHead {
  std::size_t tap = 0;  // position in taps()
  std::vector<float> weight;
  std::vector<float> bias;
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
  // The classifier's last layer, when the model knows it (built-in models do; TorchScript
  // models do not). Feature scores read its tap by default; NAC needs its weights.
  virtual std::optional<LinearHead> linear_head() const { return std::nullopt; }
  // Whether the model has dropout layers that logits_with_dropout can sample.
  virtual bool has_dropout() const { return false; }
  // The logits (batch x classes) with dropout active, for Monte Carlo dropout. Each
  // image's masks are drawn from (seed, its position in the source, batch.indices), so
  // they do not depend on the batch it is in. Fails for a model without dropout.
  virtual std::vector<float> logits_with_dropout(const Batch& batch, std::uint64_t seed);
};

// ---- training ------------------------------------------------------------------------

enum class Optimizer { Adam, Sgd };
Optimizer parse_optimizer(const std::string& name);  // "adam" | "sgd", else OptionError "optimizer"
std::string to_string(Optimizer optimizer);

struct OptimizerOptions {
  Optimizer kind = Optimizer::Adam;  // the paper's
  double learning_rate = 1e-3;
  double momentum = 0.9;             // SGD only
  double weight_decay = 0.0;
  void validate() const;             // OptionError naming lr, momentum or weight_decay
};

// What a step trains each image of a batch towards, beyond its label: a loss weight and
// a probability target (pseudo-labelling's weighted and soft targets). Null pointers: the
// plain cross-entropy with the labels, weight 1.
struct StepTargets {
  const float* weights = nullptr;  // batch.size() values: image i's loss is multiplied by it
  const float* soft = nullptr;     // batch.size() x classes probabilities, row-major
};

// What one optimisation step on a batch gave.
struct TrainingStep {
  double loss = 0;          // mean (weighted) cross-entropy of the batch
  std::size_t correct = 0;  // images whose logits' argmax was their label
};

// A model's training state (its optimizer) between steps, epochs and processes.
class TrainingSession {
 public:
  virtual ~TrainingSession() = default;
  // Puts the model in training mode; `seed` seeds dropout, so that an epoch redone with
  // the same seed gives the same result.
  virtual void begin_epoch(std::uint64_t seed) = 0;
  // One step on a normalised batch whose every label is a class of the model. The loss
  // is the batch mean of weight_i x cross-entropy_i, the cross-entropy taken against
  // targets.soft's row where given, else against the label.
  virtual TrainingStep step(const Batch& batch, const StepTargets& targets = {}) = 0;
  // Back to evaluation mode; the model's weights hash describes the new weights. Safe to
  // call after a failed step.
  virtual void end_epoch() = 0;
  // The optimizer's state, written atomically, and read back (resumable runs).
  virtual void save_state(const std::string& path) const = 0;
  virtual void load_state(const std::string& path) = 0;
};

// A model the toolkit can train and save as a checkpoint: the built-in architectures.
class TrainableModel : public Model {
 public:
  virtual std::unique_ptr<TrainingSession> start_training(const OptimizerOptions& options) = 0;
  // How the model was trained: kept in its checkpoint (meta().data_spec, training_json).
  virtual void record_training(const std::string& data_spec, const std::string& training_json) = 0;
  // Writes the checkpoint (safetensors: weights, and the metadata in meta()), atomically.
  virtual void save(const std::string& path) const = 0;
};

// Architectures the toolkit can build and train.
const std::vector<std::string>& builtin_architectures();

// A freshly initialised built-in model (seeded).
std::unique_ptr<TrainableModel> create_model(const std::string& arch, const ImageShape& input,
                                             const std::vector<std::string>& class_names,
                                             const Normalization& norm, std::uint64_t seed);

// Loads a checkpoint written by save_model, or a TorchScript module (from torch.jit.trace
// or torch.jit.script) whose preprocessing is described by `preprocess` (a JSON file;
// default: the model's path + ".json"). Fails naming the file and the problem.
std::unique_ptr<Model> load_model(const std::string& path, const std::string& preprocess = "");
// Loads a checkpoint written by save_model, to train it further; refuses a TorchScript file.
std::unique_ptr<TrainableModel> load_trainable_model(const std::string& path);
void save_model(const TrainableModel& model, const std::string& path);

// Positions in taps() of the named taps; empty `names` means the default taps.
// Fails on an unknown name, listing the known ones.
std::vector<std::size_t> resolve_taps(const Model& model, const std::vector<std::string>& names);

// The data spec the model reads: a folder: or csv: spec without a size gets the model's
// input and fit mode (`@HxW,MODE`) where the model has one (ModelMeta::input_fit).
std::string spec_for_model(const std::string& spec, const Model& model);

// Checks that the images of `source` fit the model and returns them as the model sees
// them (a view; `source` must outlive it), with labels in the model's class ids. Where
// both name their classes and the names differ (a test folder lacking a class, or with
// its classes in another order), labels are mapped by name, and names the model does not
// have are refused, naming them. Where either side only numbers its classes ("0", "1",
// ...: IDX, csv:, a TorchScript model without names), labels keep their ids.
std::unique_ptr<ImageSource> align_to_model(const Model& model, const ImageSource& source);

}  // namespace imagescore
