// The built-in model behind the Model interface. Internal (LibTorch).
#pragma once

#include "imagescore/model.hpp"
#include "nets.hpp"

namespace imagescore::detail {

class BuiltinModel : public Model {
 public:
  BuiltinModel(ModelMeta meta, std::shared_ptr<ClassifierNet> net);
  const ModelMeta& meta() const override;
  const std::vector<TapInfo>& taps() const override;
  ForwardOutput forward(const Batch& batch, const std::vector<std::size_t>& tap_ids) override;

  ClassifierNet& net() { return *net_; }
  ModelMeta& mutable_meta() { return meta_; }
  // Call after the weights changed (training), so that meta().weights_hash is current.
  void weights_changed() { hash_stale_ = true; }

 private:
  ModelMeta meta_;
  std::shared_ptr<ClassifierNet> net_;
  std::vector<TapInfo> taps_;
  mutable bool hash_stale_ = true;
};

// A batch as a tensor view (no copy) of its pixels.
torch::Tensor batch_tensor(const Batch& batch);

// Calls f(name, tensor) for every parameter and buffer, in registration order.
void for_each_state_tensor(torch::nn::Module& module, const std::function<void(const std::string&, torch::Tensor&)>& f);

}  // namespace imagescore::detail
