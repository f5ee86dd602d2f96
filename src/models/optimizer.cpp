// The optimizer options of training (LibTorch-free: experiment files parse them too).
#include <cmath>

#include "imagescore/core/error.hpp"
#include "imagescore/core/names.hpp"
#include "imagescore/models/model.hpp"

namespace imagescore {
namespace {
const EnumName<Optimizer> kOptimizerNames[] = {{Optimizer::Adam, "adam"}, {Optimizer::Sgd, "sgd"}};
}  // namespace

Optimizer parse_optimizer(const std::string& name) { return enum_from_name(kOptimizerNames, name, "optimizer"); }
std::string to_string(Optimizer optimizer) { return enum_name(kOptimizerNames, optimizer); }

void OptimizerOptions::validate() const {
  if (!(learning_rate > 0) || !std::isfinite(learning_rate)) fail_option("lr", "must be > 0");
  if (!(momentum >= 0) || !std::isfinite(momentum)) fail_option("momentum", "must be >= 0");
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay)) fail_option("weight_decay", "must be >= 0");
}

}  // namespace imagescore
