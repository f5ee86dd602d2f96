// Neuron activation coverage (Liu et al., ICLR 2024: NAC-UE) of the classifier's input:
// each neuron's state is sigmoid(alpha * z * dKL/dz), where KL is the divergence of the
// softmax from the uniform distribution; the reference images fill a histogram of states
// per neuron, and an image scores the mean coverage of the intervals its states fall in.
// With a linear classifier logits = W z + b, dKL/dz = W^T (p - 1/K) exactly, so no
// backward pass is needed; models without a known linear head are refused.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fits.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/runtime.hpp"

namespace imagescore::detail {
namespace {

using json = nlohmann::json;

// The authors' M interval edges on [0, 1.2]: half of them log-spaced from 0 up to 0.5
// (log base 1000 of 1 ... sqrt(1000)), the other half mirrored up to 1 (the last raised
// to 1.01), then 1.2; dense near 0 and 1, where sigmoid states pile up.
std::vector<double> state_edges(std::size_t m) {
  const std::size_t half = m / 2;
  std::vector<double> low(half);
  for (std::size_t i = 0; i < half; ++i) {
    const double x = 1.0 + (std::sqrt(1000.0) - 1.0) * double(i) / double(half - 1);
    low[i] = std::log(x) / std::log(1000.0);
  }
  std::vector<double> edges(low.begin(), low.end() - 1);
  for (std::size_t i = half; i-- > 0;) edges.push_back(1.0 - low[i]);
  edges.back() += 0.01;
  edges.push_back(1.2);
  return edges;
}

class NacFit : public FittedScore {
 public:
  NacFit(std::string tap, std::size_t d, std::vector<std::string> classes, std::vector<float> weight, const FitOptions& options)
      : tap_(std::move(tap)), d_(d), classes_(std::move(classes)), weight_(std::move(weight)), options_(options.nac),
        edges_(state_edges(options_.bins)), counts_((edges_.size() - 1) * d_, 0) {}

  std::string kind() const override { return "nac"; }
  std::vector<std::string> columns() const override { return {"nac"}; }
  std::vector<std::string> taps() const override { return {tap_}; }
  void check_model(const Model& model, const std::string& where) const override {
    const auto head = model.linear_head();
    if (!head || model.taps()[head->tap].name != tap_ || head->weight != weight_)
      fail(where, "its NAC statistics are for another classifier than the model's");
  }

  void add(const Activations& a, const std::vector<std::int64_t>&) override {
    const TapView& view = a.tap(tap_);
    for (std::size_t i = 0; i < a.batch(); ++i) {
      const auto bins = state_bins(view.row(i), a.logits(i));
      for (std::size_t j = 0; j < d_; ++j)
        if (bins[j] >= 0) ++counts_[std::size_t(bins[j]) * d_ + j];
    }
  }

  void merge(const FittedScore& shard) override {
    const auto& o = static_cast<const NacFit&>(shard);
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
  }

  void finish(bool whole) override {
    if (!whole) return;
    coverage_.resize(counts_.size());
    for (std::size_t i = 0; i < counts_.size(); ++i) coverage_[i] = std::min(double(counts_[i]) / options_.min_count, 1.0);
  }

  void score(const Activations& a, const std::vector<int>&, const std::vector<std::string>& columns,
             std::vector<double>& values) const override {
    const std::size_t n = a.batch();
    values.assign(n * columns.size(), 0.0);
    if (columns.empty()) return;
    const TapView& view = a.tap(tap_);
    parallel_for(n, 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) values[i] = coverage(view.row(i), a.logits(i));
    });
  }

  json explain(const Activations& a, std::size_t image, int) const override {
    const auto bins = state_bins(a.tap(tap_).row(image), a.logits(image));
    std::size_t uncovered = 0;
    for (std::size_t j = 0; j < d_; ++j) uncovered += bins[j] < 0 || coverage_[std::size_t(bins[j]) * d_ + j] == 0;
    return {{"nac", coverage(a.tap(tap_).row(image), a.logits(image))}, {"neurons", d_}, {"uncovered_neurons", uncovered}};
  }

  void save(SafetensorsFile& file) const override {
    const auto k = std::int64_t(classes_.size()), d = std::int64_t(d_);
    file.tensors.push_back(make_tensor("nac/weight", DType::F32, {k, d}, weight_.data(), weight_.size() * 4));
    file.tensors.push_back(
        make_tensor("nac/counts", DType::I64, {std::int64_t(edges_.size() - 1), d}, counts_.data(), counts_.size() * 8));
    file.metadata[fit_metadata_key(kind())] = json{{"tap", tap_}, {"neurons", d_}, {"classes", classes_}}.dump();
  }

  void check_same(const FittedScore& other, const std::string& where) const override {
    const auto& o = static_cast<const NacFit&>(other);
    if (o.tap_ != tap_ || o.d_ != d_ || o.weight_ != weight_ || o.edges_ != edges_)
      fail(where, "has other NAC statistics than the first shard");
  }

  void set_counts(std::vector<std::int64_t> counts) { counts_ = std::move(counts); }

 private:
  // The interval of each neuron's state, or -1 outside the edges.
  std::vector<int> state_bins(const float* z, const float* logits) const {
    const std::size_t k = classes_.size();
    // p - 1/K, with the softmax in double.
    const double top = *std::max_element(logits, logits + k);
    std::vector<double> p(k);
    double total = 0;
    for (std::size_t c = 0; c < k; ++c) total += p[c] = std::exp(double(logits[c]) - top);
    for (std::size_t c = 0; c < k; ++c) p[c] = p[c] / total - 1.0 / double(k);
    std::vector<int> bins(d_);
    for (std::size_t j = 0; j < d_; ++j) {
      double gradient = 0;
      for (std::size_t c = 0; c < k; ++c) gradient += double(weight_[c * d_ + j]) * p[c];
      const double state = 1.0 / (1.0 + std::exp(-options_.steepness * double(z[j]) * gradient));
      const auto at = std::upper_bound(edges_.begin(), edges_.end(), state) - edges_.begin();
      bins[j] = at == 0 || std::size_t(at) == edges_.size() ? -1 : int(at - 1);
    }
    return bins;
  }

  double coverage(const float* z, const float* logits) const {
    const auto bins = state_bins(z, logits);
    double sum = 0;
    for (std::size_t j = 0; j < d_; ++j)
      if (bins[j] >= 0) sum += coverage_[std::size_t(bins[j]) * d_ + j];
    return sum / double(d_);
  }

  std::string tap_;
  std::size_t d_;
  std::vector<std::string> classes_;
  std::vector<float> weight_;  // the classifier, classes x d
  NacOptions options_;
  std::vector<double> edges_;
  std::vector<std::int64_t> counts_;  // (edges - 1) x d reference states per interval
  std::vector<double> coverage_;      // min(count / O, 1), by finish(true)
};

}  // namespace

std::unique_ptr<FittedScore> new_nac_fit(const FitContext& context) {
  const auto head = context.model.linear_head();
  if (!head)
    fail_option("scores", "nac needs the classifier's weights, which only built-in models expose (" +
                              context.model.meta().arch + " does not)");
  const auto& tap = context.model.taps()[head->tap];
  if (!context.options.feature_tap.empty() && context.options.feature_tap != tap.name)
    fail_option("feature_tap", "nac reads the classifier's input, '" + tap.name + "', not '" + context.options.feature_tap + "'");
  return std::make_unique<NacFit>(tap.name, tap.numel(), context.model.meta().class_names, head->weight, context.options);
}

std::unique_ptr<FittedScore> nac_fit_from(const SafetensorsFile& file, const json& meta, const FitOptions& options) {
  const std::string where = file.path + ": nac";
  const auto tap = json_field<std::string>(meta, "tap", where);
  const auto d = json_field<std::size_t>(meta, "neurons", where);
  const auto classes = json_field<std::vector<std::string>>(meta, "classes", where);
  if (d == 0 || d > kMaxFeatureNeurons) fail(where, "bad number of neurons");
  const auto& weight = expect_tensor(file, "nac/weight", DType::F32, {std::int64_t(classes.size()), std::int64_t(d)});
  const auto& counts = expect_tensor(file, "nac/counts", DType::I64, {std::int64_t(options.nac.bins - 1), std::int64_t(d)});
  std::vector<float> w(classes.size() * d);
  std::memcpy(w.data(), weight.bytes.data(), weight.bytes.size());
  std::vector<std::int64_t> c((options.nac.bins - 1) * d);
  std::memcpy(c.data(), counts.bytes.data(), counts.bytes.size());
  for (auto v : c)
    if (v < 0) fail(where, "a negative count");
  auto fit = std::make_unique<NacFit>(tap, d, classes, std::move(w), options);
  fit->set_counts(std::move(c));
  return fit;
}

}  // namespace imagescore::detail
