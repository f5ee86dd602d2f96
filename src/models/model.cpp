// The LibTorch-free part of the model interface: the base class's defaults (its vtable and
// type information live here) and tap lookup, used by the fitted scores, which the fuzz
// targets build without LibTorch.
#include <algorithm>

#include "imagescore/core/error.hpp"
#include "imagescore/models/model.hpp"

namespace imagescore {

std::size_t TapInfo::numel() const {
  std::size_t n = 1;
  for (auto d : shape) n *= std::size_t(d);
  return n;
}

std::vector<float> Model::logits_with_dropout(const Batch&, std::uint64_t) {
  fail("model " + meta().arch, "has no dropout layer to sample (Monte Carlo dropout needs one: small-cnn and vgg16 have)");
}

void Model::to_device(const std::string& device) {
  if (device != "cpu") fail_option("device", "'" + device + "': a " + meta().arch + " model runs on the CPU only");
}

std::vector<std::size_t> Model::default_taps() const {
  std::vector<std::size_t> ids(taps().size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  return ids;
}

std::vector<std::size_t> resolve_taps(const Model& model, const std::vector<std::string>& names) {
  const auto& taps = model.taps();
  if (names.empty()) return model.default_taps();
  std::vector<std::size_t> ids;
  for (const auto& name : names) {
    std::size_t i = 0;
    while (i < taps.size() && taps[i].name != name) ++i;
    if (i == taps.size()) {
      std::string reason = model.tap_unavailable_reason(name);
      if (!reason.empty()) fail_option("taps", reason);
      std::string known;
      for (const auto& t : taps) known += (known.empty() ? "" : ", ") + t.name;
      fail_option("taps", "unknown tap '" + name + "' (the model has: " + known + ")");
    }
    if (std::find(ids.begin(), ids.end(), i) != ids.end()) fail_option("taps", "tap '" + name + "' given twice");
    ids.push_back(i);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace imagescore
