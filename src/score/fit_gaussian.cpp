// Gaussian scores of a feature tap: the Mahalanobis distance to the closest class mean
// with a tied covariance (Lee et al. 2018) and the relative Mahalanobis distance (Ren et
// al. 2021). The sums behind means and covariances are exact integers (activations on the
// 2^-32 grid, products on the 2^-64 grid), so shards merge into one pass bit for bit.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "fits.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/core/text.hpp"

namespace imagescore::detail {
namespace {

using json = nlohmann::json;
using Exact = __int128;

constexpr double kGrid = double(std::int64_t(1) << kFixedPointBits);  // 2^32

// A Gaussian of the features: mean(s) and the lower-triangular whitening W = L^-1, where
// L L^T is the (shrunk) covariance; the squared Mahalanobis distance to mean m is
// |W x - W m|^2.
struct Whitening {
  std::size_t d = 0;
  std::vector<double> w;  // d x d, lower triangular, row-major

  std::vector<double> apply(const double* x) const {
    std::vector<double> y(d, 0.0);
    for (std::size_t i = 0; i < d; ++i) {
      double s = 0;
      for (std::size_t j = 0; j <= i; ++j) s += w[i * d + j] * x[j];
      y[i] = s;
    }
    return y;
  }
};

// Shrinks the covariance towards (tr / d) I, factors it and inverts the factor. Fails
// naming `what` if it is not positive definite.
Whitening whitening(std::vector<double> cov, std::size_t d, double shrinkage, const std::string& what) {
  double trace = 0;
  for (std::size_t i = 0; i < d; ++i) trace += cov[i * d + i];
  for (std::size_t i = 0; i < d; ++i)
    for (std::size_t j = 0; j < d; ++j) cov[i * d + j] = (1 - shrinkage) * cov[i * d + j] + (i == j ? shrinkage * trace / double(d) : 0);
  // Cholesky: cov = L L^T.
  std::vector<double> l(d * d, 0.0);
  const double tiny = 1e-12 * std::max(trace / double(d), std::numeric_limits<double>::min());
  for (std::size_t j = 0; j < d; ++j) {
    double diag = cov[j * d + j];
    for (std::size_t k = 0; k < j; ++k) diag -= l[j * d + k] * l[j * d + k];
    if (!(diag > tiny))
      fail(what, "the covariance is singular (feature " + std::to_string(j) +
                     " is constant or a combination of others): give a shrinkage above " + format_double(shrinkage));
    l[j * d + j] = std::sqrt(diag);
    for (std::size_t i = j + 1; i < d; ++i) {
      double s = cov[i * d + j];
      for (std::size_t k = 0; k < j; ++k) s -= l[i * d + k] * l[j * d + k];
      l[i * d + j] = s / l[j * d + j];
    }
  }
  // W = L^-1 by forward substitution, column by column.
  Whitening out;
  out.d = d;
  out.w.assign(d * d, 0.0);
  for (std::size_t c = 0; c < d; ++c)
    for (std::size_t i = c; i < d; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (std::size_t k = c; k < i; ++k) s -= l[i * d + k] * out.w[k * d + c];
      out.w[i * d + c] = s / l[i * d + i];
    }
  return out;
}

double squared_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

class GaussianFit : public FittedScore {
 public:
  GaussianFit(std::string tap, std::size_t d, std::vector<std::string> classes, const FitOptions& options)
      : tap_(std::move(tap)), d_(d), classes_(std::move(classes)), options_(options),
        counts_(classes_.size(), 0), sums_(classes_.size() * d, 0), cross_(d * (d + 1) / 2, 0) {}

  std::string kind() const override { return "gaussian"; }
  std::vector<std::string> columns() const override { return {"mahalanobis", "rel_mahalanobis"}; }
  std::vector<std::string> taps() const override { return {tap_}; }
  void check_model(const Model& model, const std::string& where) const override {
    const auto id = resolve_taps(model, {tap_}).front();
    if (model.taps()[id].numel() != d_) fail(where, "feature tap '" + tap_ + "' has another size than in the model");
  }

  void add(const Activations& a, const std::vector<std::int64_t>& labels) override {
    const TapView& view = a.tap(tap_);
    const std::size_t n = a.batch();
    std::vector<std::int64_t> units(n * d_);
    for (std::size_t i = 0; i < n; ++i) {
      if (labels[i] < 0 || std::size_t(labels[i]) >= classes_.size())
        fail("feature tap " + tap_, "image label " + std::to_string(labels[i]) + " outside the model's classes");
      for (std::size_t j = 0; j < d_; ++j) units[i * d_ + j] = grid_units(view.row(i)[j], "feature tap " + tap_);
      const std::size_t c = std::size_t(labels[i]);
      ++counts_[c];
      for (std::size_t j = 0; j < d_; ++j) sums_[c * d_ + j] += units[i * d_ + j];
    }
    // Row r of the upper triangle, for every image: integer sums in any order are exact.
    parallel_for(d_, 8, [&](std::size_t begin, std::size_t end) {
      for (std::size_t r = begin; r < end; ++r) {
        Exact* row = &cross_[offset(r)];
        for (std::size_t i = 0; i < n; ++i) {
          const Exact xr = units[i * d_ + r];
          const std::int64_t* x = &units[i * d_];
          for (std::size_t j = r; j < d_; ++j) row[j - r] += xr * x[j];
        }
      }
    });
  }

  void merge(const FittedScore& shard) override {
    const auto& o = static_cast<const GaussianFit&>(shard);
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    for (std::size_t i = 0; i < sums_.size(); ++i) sums_[i] += o.sums_[i];
    for (std::size_t i = 0; i < cross_.size(); ++i) cross_[i] += o.cross_[i];
  }

  void finish(bool whole) override {
    if (!whole) return;
    const std::size_t k = classes_.size();
    double n = 0;
    for (std::size_t c = 0; c < k; ++c) {
      if (counts_[c] == 0) fail("reference set", "class '" + classes_[c] + "' has no reference images (empty class)");
      n += double(counts_[c]);
    }
    means_.assign(k, std::vector<double>(d_));
    std::vector<double> mean(d_, 0.0);
    for (std::size_t c = 0; c < k; ++c)
      for (std::size_t j = 0; j < d_; ++j) {
        means_[c][j] = double(sums_[c * d_ + j]) / kGrid / double(counts_[c]);
        mean[j] += double(sums_[c * d_ + j]) / kGrid / n;
      }
    std::vector<double> within(d_ * d_), all(d_ * d_);
    for (std::size_t i = 0; i < d_; ++i)
      for (std::size_t j = i; j < d_; ++j) {
        const double s = double(cross_[offset(i) + j - i]) / kGrid / kGrid;
        double between = 0;
        for (std::size_t c = 0; c < k; ++c) between += double(counts_[c]) * means_[c][i] * means_[c][j];
        within[i * d_ + j] = within[j * d_ + i] = (s - between) / n;
        all[i * d_ + j] = all[j * d_ + i] = (s - n * mean[i] * mean[j]) / n;
      }
    class_ = whitening(std::move(within), d_, options_.shrinkage, "feature tap " + tap_ + " (class covariance)");
    global_ = whitening(std::move(all), d_, options_.shrinkage, "feature tap " + tap_ + " (covariance of all images)");
    white_means_.clear();
    for (const auto& m : means_) white_means_.push_back(class_.apply(m.data()));
    white_mean_ = global_.apply(mean.data());
  }

  void score(const Activations& a, const std::vector<int>&, const std::vector<std::string>& columns,
             std::vector<double>& values) const override {
    const std::size_t n = a.batch(), m = columns.size();
    values.assign(n * m, 0.0);
    const TapView& view = a.tap(tap_);
    parallel_for(n, 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        const auto distances = class_distances(view.row(i));
        const double closest = *std::min_element(distances.begin(), distances.end());
        for (std::size_t c = 0; c < m; ++c)
          values[i * m + c] = columns[c] == "mahalanobis" ? -closest : global_distance(view.row(i)) - closest;
      }
    });
  }

  json explain(const Activations& a, std::size_t image, int) const override {
    const float* x = a.tap(tap_).row(image);
    const auto distances = class_distances(x);
    const double closest = *std::min_element(distances.begin(), distances.end());
    const double global = global_distance(x);
    json per_class = json::object();
    for (std::size_t c = 0; c < classes_.size(); ++c) per_class[classes_[c]] = distances[c];
    return {{"mahalanobis", -closest}, {"rel_mahalanobis", global - closest}, {"squared_distance_per_class", per_class},
            {"squared_distance_to_all", global}};
  }

  void save(SafetensorsFile& file) const override {
    const auto k = std::int64_t(classes_.size()), d = std::int64_t(d_);
    std::vector<std::int64_t> counts(counts_.begin(), counts_.end());
    const auto sums = split_exact(sums_), cross = split_exact(cross_);
    file.tensors.push_back(make_tensor("gaussian/counts", DType::I64, {k}, counts.data(), counts.size() * 8));
    file.tensors.push_back(make_tensor("gaussian/sums", DType::I64, {k * d, 2}, sums.data(), sums.size() * 8));
    file.tensors.push_back(make_tensor("gaussian/cross", DType::I64, {std::int64_t(cross_.size()), 2}, cross.data(), cross.size() * 8));
    file.metadata[fit_metadata_key(kind())] = json{{"tap", tap_}, {"neurons", d_}, {"classes", classes_}}.dump();
  }

  void check_same(const FittedScore& other, const std::string& where) const override {
    const auto& o = static_cast<const GaussianFit&>(other);
    if (o.tap_ != tap_ || o.d_ != d_ || o.classes_ != classes_) fail(where, "has other Gaussian statistics than the first shard");
  }

  void set_sums(std::vector<std::uint64_t> counts, std::vector<Exact> sums, std::vector<Exact> cross) {
    counts_ = std::move(counts);
    sums_ = std::move(sums);
    cross_ = std::move(cross);
  }

 private:
  // Position of (row, row) in the upper triangle, row-major.
  std::size_t offset(std::size_t row) const { return row * (2 * d_ - row + 1) / 2; }

  std::vector<double> class_distances(const float* x) const {
    const std::vector<double> xd(x, x + d_);
    const auto y = class_.apply(xd.data());
    std::vector<double> out;
    for (const auto& m : white_means_) out.push_back(squared_distance(y, m));
    return out;
  }
  double global_distance(const float* x) const {
    const std::vector<double> xd(x, x + d_);
    return squared_distance(global_.apply(xd.data()), white_mean_);
  }

  std::string tap_;
  std::size_t d_;
  std::vector<std::string> classes_;
  FitOptions options_;
  std::vector<std::uint64_t> counts_;
  std::vector<Exact> sums_;   // per class and neuron, 2^-32 units
  std::vector<Exact> cross_;  // upper triangle of sum x x^T over every image, 2^-64 units
  // Derived by finish(true).
  std::vector<std::vector<double>> means_, white_means_;
  std::vector<double> white_mean_;
  Whitening class_, global_;
};

}  // namespace

std::unique_ptr<FittedScore> new_gaussian_fit(const FitContext& context) {
  const auto& tap = context.model.taps()[resolve_feature_tap(context.model, context.options.feature_tap)];
  return std::make_unique<GaussianFit>(tap.name, tap.numel(), context.model.meta().class_names, context.options);
}

std::unique_ptr<FittedScore> gaussian_fit_from(const SafetensorsFile& file, const json& meta, const FitOptions& options) {
  const std::string where = file.path + ": gaussian";
  const auto tap = json_field<std::string>(meta, "tap", where);
  const auto d = json_field<std::size_t>(meta, "neurons", where);
  const auto classes = json_field<std::vector<std::string>>(meta, "classes", where);
  if (d == 0 || d > kMaxFeatureNeurons) fail(where, "bad number of neurons");
  const auto k = std::int64_t(classes.size());
  const auto& counts = expect_tensor(file, "gaussian/counts", DType::I64, {k});
  const auto& sums = expect_tensor(file, "gaussian/sums", DType::I64, {k * std::int64_t(d), 2});
  const auto& cross = expect_tensor(file, "gaussian/cross", DType::I64, {std::int64_t(d * (d + 1) / 2), 2});
  auto c = std::vector<std::int64_t>(std::size_t(k));
  std::memcpy(c.data(), counts.bytes.data(), counts.bytes.size());
  std::vector<std::uint64_t> count;
  for (auto v : c) {
    if (v < 0) fail(where, "a negative count");
    count.push_back(std::uint64_t(v));
  }
  auto fit = std::make_unique<GaussianFit>(tap, d, classes, options);
  fit->set_sums(std::move(count), join_exact(sums), join_exact(cross));
  return fit;
}

}  // namespace imagescore::detail
