// Training steps of the built-in models: the optimizer and one batch's forward, loss and
// backward pass. The epochs, the data order and the records live in the train layer.
#include <nlohmann/json.hpp>


#include "builtin_model.hpp"
#include "device.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore {
namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(torch::nn::Module& net, const OptimizerOptions& o) {
  switch (o.kind) {
    case Optimizer::Adam:
      return std::make_unique<torch::optim::Adam>(
          net.parameters(), torch::optim::AdamOptions(o.learning_rate).weight_decay(o.weight_decay));
    case Optimizer::Sgd:
      return std::make_unique<torch::optim::SGD>(
          net.parameters(), torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum).weight_decay(o.weight_decay));
  }
  fail_option("optimizer", "unknown optimizer");
}

// mean_i w_i CE_i, with CE_i = -sum_k q_ik log p_ik (q: the soft row, or the label's one-hot).
torch::Tensor weighted_loss(const torch::Tensor& logits, const torch::Tensor& labels, std::size_t n,
                            const StepTargets& targets, const torch::Device& device) {
  const auto rows = int64_t(n), classes = logits.size(1);
  auto log_p = torch::log_softmax(logits, 1);
  torch::Tensor per_image;
  if (targets.soft) {
    auto q = detail::to_device(torch::from_blob(const_cast<float*>(targets.soft), {rows, classes}, torch::kFloat32), device);
    per_image = -(q * log_p).sum(1);
  } else {
    per_image = -log_p.gather(1, labels.unsqueeze(1)).squeeze(1);
  }
  if (targets.weights)
    per_image = per_image * detail::to_device(torch::from_blob(const_cast<float*>(targets.weights), {rows}, torch::kFloat32), device);
  return per_image.mean();
}

class BuiltinTrainingSession : public TrainingSession {
 public:
  BuiltinTrainingSession(detail::BuiltinModel& model, const OptimizerOptions& options)
      : model_(model), optimizer_(make_optimizer(model.net(), options)) {}

  void begin_epoch(std::uint64_t seed) override {
    torch::manual_seed(seed);
    model_.net().train();
  }

  TrainingStep step(const Batch& batch, const StepTargets& targets) override {
    const auto& device = model_.torch_device();
    auto x = detail::to_device(detail::batch_tensor(batch), device);
    auto y = detail::to_device(torch::from_blob(const_cast<std::int64_t*>(batch.labels.data()), {int64_t(batch.size())},
                                                torch::kInt64),
                               device);
    optimizer_->zero_grad();
    auto logits = model_.net().forward(x, nullptr);
    auto loss = targets.weights || targets.soft ? weighted_loss(logits, y, batch.size(), targets, device)
                                               : torch::nn::functional::cross_entropy(logits, y);
    loss.backward();
    optimizer_->step();
    TrainingStep result;
    result.loss = loss.item<double>();
    result.correct = std::size_t(logits.argmax(1).eq(y).sum().item<int64_t>());
    return result;
  }

  void end_epoch() override {
    model_.net().eval();
    model_.refresh_weights_hash();
  }

  void save_state(const std::string& path) const override {
    torch::serialize::OutputArchive archive;
    optimizer_->save(archive);
    write_file_atomic(path, [&](std::ostream& out) { archive.save_to(out); });
  }

  void load_state(const std::string& path) override {
    torch::serialize::InputArchive archive;
    try {
      archive.load_from(path, model_.torch_device());
      optimizer_->load(archive);
    } catch (const c10::Error&) {
      fail(path, "cannot read the optimizer state (corrupted or from another model)");
    }
  }

 private:
  detail::BuiltinModel& model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

}  // namespace

namespace detail {

std::unique_ptr<TrainingSession> start_builtin_training(BuiltinModel& model, const OptimizerOptions& options) {
  options.validate();
  return std::make_unique<BuiltinTrainingSession>(model, options);
}

}  // namespace detail
}  // namespace imagescore
