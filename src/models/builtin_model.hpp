// The built-in model behind the Model interface. Internal (LibTorch).
#pragma once

#include <map>

#include "imagescore/models/model.hpp"
#include "nets.hpp"

namespace imagescore::detail {

class BuiltinModel : public TrainableModel {
 public:
  BuiltinModel(ModelMeta meta, std::shared_ptr<ClassifierNet> net);
  const ModelMeta& meta() const override { return meta_; }
  const std::vector<TapInfo>& taps() const override { return taps_; }
  ForwardOutput forward(const Batch& batch, const std::vector<std::size_t>& tap_ids) override;
  std::string device() const override { return device_.str(); }
  void to_device(const std::string& device) override;
  std::vector<std::size_t> default_taps() const override;
  std::optional<LinearHead> linear_head() const override;
  bool has_dropout() const override { return net_->has_dropout(); }
  std::vector<float> logits_with_dropout(const Batch& batch, std::uint64_t seed) override;
  std::unique_ptr<TrainingSession> start_training(const OptimizerOptions& options) override;
  void record_training(const std::string& data_spec, const std::string& training_json) override;
  void save(const std::string& path) const override;

  ClassifierNet& net() { return *net_; }
  const torch::Device& torch_device() const { return device_; }
  // Recomputes meta().weights_hash; training calls it after the weights changed.
  void refresh_weights_hash();

 private:
  ModelMeta meta_;
  std::shared_ptr<ClassifierNet> net_;
  std::vector<TapInfo> taps_;
  torch::Device device_ = torch::kCPU;
};

// The training session of a built-in model (training.cpp).
std::unique_ptr<TrainingSession> start_builtin_training(BuiltinModel& model, const OptimizerOptions& options);

// A batch as a tensor view (no copy) of its pixels.
torch::Tensor batch_tensor(const Batch& batch);

// What a model computes for one chunk of images: logits and the wanted hidden taps.
struct ChunkOutput {
  torch::Tensor logits;
  std::map<std::size_t, torch::Tensor> taps;
};

// Evaluates a batch on `device` in chunks of exactly 32 images on the CPU and 256 on a
// GPU (the last padded with blank images) and assembles the forward output on the host.
// OpenBLAS and oneDNN choose kernels by batch size, which changes the last bits of
// activations (measured: a 128-to-10 linear layer differs between 16 and 256 rows); in
// equal chunks an image's activations are bitwise identical whatever the batch size, its
// position and the thread count (tests check it). The `output` tap is the softmax of
// each row computed in double, for the same reason.
// run_chunk(chunk, first) evaluates the chunk whose row 0 is image `first` of the batch.
ForwardOutput forward_in_chunks(const Batch& batch, const torch::Device& device, const std::vector<TapInfo>& taps,
                                const std::vector<std::size_t>& tap_ids,
                                const std::function<ChunkOutput(const torch::Tensor&, int64_t)>& run_chunk);

// Calls f(name, tensor) for every parameter and buffer, in registration order.
void for_each_state_tensor(torch::nn::Module& module, const std::function<void(const std::string&, torch::Tensor&)>& f);

}  // namespace imagescore::detail
