// Feature-space scores on the labelled images' features: the kNN distance (Sun et al.
// 2022) and the trust score (Jiang et al. 2018), with faiss's exact flat index or, on
// request, its approximate inverted-file index.
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/utils/distances.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

#include "fits.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/json.hpp"
#include "imagescore/core/partition.hpp"
#include "imagescore/core/text.hpp"

namespace imagescore::detail {
namespace {

using json = nlohmann::json;
using Labels = faiss::Index::idx_t;

// The trust score's guard against a zero distance to the predicted class (Jiang et al.'s
// min_dist).
constexpr double kMinDistance = 1e-12;

// Exact search on one thread count or many gives the same neighbours only on faiss's
// per-pair path: above this many queries it switches to BLAS products, whose last bits
// depend on the threads and the batch (docs/building.md).
// The same holds for the IVF index: its k-means and its coarse search are flat searches.
void exact_search_per_pair() { faiss::distance_compute_blas_threshold = INT_MAX; }

// The seed of the IVF index's k-means (faiss's own default), fixed so that the lists and
// hence the scores repeat.
constexpr int kIvfSeed = 1234;

// The index over n vectors of x (rows of d floats) that options name.
std::unique_ptr<faiss::Index> new_index(const float* x, std::size_t n, std::size_t d, const FitOptions& options) {
  if (options.knn_index == "exact") {
    auto flat = std::make_unique<faiss::IndexFlatL2>(int(d));
    flat->add(Labels(n), x);
    return flat;
  }
  const std::size_t lists = knn_ivf_lists(n);
  auto ivf = std::make_unique<faiss::IndexIVFFlat>(new faiss::IndexFlatL2(int(d)), d, lists);
  ivf->own_fields = true;
  ivf->cp.seed = kIvfSeed;
  // knn_ivf_lists keeps 39 points per list wherever n allows; below 39 points faiss would
  // only print a warning.
  ivf->cp.min_points_per_centroid = 1;
  ivf->train(Labels(n), x);
  ivf->add(Labels(n), x);
  ivf->nprobe = std::min(options.knn_nprobe, lists);
  return ivf;
}

// k nearest neighbours of n queries. An IVF search can find fewer than k in the lists it
// probes (label -1): such a query is searched again with twice the lists until it has k;
// it depends only on the query, so the scores do not depend on the batch or the threads.
void knn_search(const faiss::Index& index, const float* queries, std::size_t n, std::size_t d, std::size_t k, float* distances,
                Labels* labels) {
  index.search(Labels(n), queries, Labels(k), distances, labels);
  const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(&index);
  if (!ivf) return;
  for (std::size_t i = 0; i < n; ++i) {
    faiss::SearchParametersIVF params;
    params.nprobe = ivf->nprobe;
    while (labels[i * k + k - 1] < 0 && params.nprobe < ivf->nlist) {
      params.nprobe = std::min(2 * params.nprobe, ivf->nlist);
      index.search(1, queries + i * d, Labels(k), distances + i * k, labels + i * k, &params);
    }
  }
}

std::vector<float> normalised(const float* x, std::size_t n, std::size_t d) {
  std::vector<float> out(x, x + n * d);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (std::size_t j = 0; j < d; ++j) norm += double(out[i * d + j]) * out[i * d + j];
    // Sun et al. divide by the norm plus 1e-10; a zero vector stays zero.
    const float scale = float(1.0 / (std::sqrt(norm) + 1e-10));
    for (std::size_t j = 0; j < d; ++j) out[i * d + j] *= scale;
  }
  return out;
}

class FeaturesFit : public FittedScore {
 public:
  FeaturesFit(std::string tap, std::size_t d, std::vector<std::string> classes, const FitOptions& options)
      : tap_(std::move(tap)), d_(d), classes_(std::move(classes)), options_(options) {}

  std::string kind() const override { return "features"; }
  std::vector<std::string> columns() const override { return {"knn", "trust"}; }
  std::vector<std::string> taps() const override { return {tap_}; }
  void check_model(const Model& model, const std::string& where) const override {
    const auto id = resolve_taps(model, {tap_}).front();
    if (model.taps()[id].numel() != d_) fail(where, "feature tap '" + tap_ + "' has another size than in the model");
  }

  void add(const Activations& a, const std::vector<std::int64_t>& labels) override {
    const TapView& view = a.tap(tap_);
    for (std::size_t i = 0; i < a.batch(); ++i) {
      const float* row = view.row(i);
      for (std::size_t j = 0; j < d_; ++j)
        if (!std::isfinite(row[j])) fail("feature tap " + tap_, "a feature is not finite");
      if (labels[i] < 0 || std::size_t(labels[i]) >= classes_.size())
        fail("feature tap " + tap_, "image label " + std::to_string(labels[i]) + " outside the model's classes");
      values_.insert(values_.end(), row, row + d_);
      labels_.push_back(labels[i]);
      ids_.push_back(a.ids.empty() ? std::int64_t(labels_.size() - 1) : std::int64_t(a.ids[i]));
    }
  }

  void merge(const FittedScore& shard) override {
    const auto& other = static_cast<const FeaturesFit&>(shard);
    values_.insert(values_.end(), other.values_.begin(), other.values_.end());
    labels_.insert(labels_.end(), other.labels_.begin(), other.labels_.end());
    ids_.insert(ids_.end(), other.ids_.begin(), other.ids_.end());
  }

  void finish(bool whole) override {
    if (!whole) return;
    exact_search_per_pair();
    const std::size_t n = labels_.size();
    k_ = options_.knn_k > 0 ? options_.knn_k : std::max<std::size_t>(1, std::size_t(std::llround(double(n) / 1000.0)));
    if (k_ > n) fail_option("knn_k", std::to_string(k_) + " exceeds the " + std::to_string(n) + " reference images");
    auto unit = normalised(values_.data(), n, d_);
    all_ = new_index(unit.data(), n, d_, options_);

    members_.assign(classes_.size(), {});
    for (std::size_t i = 0; i < n; ++i) members_[std::size_t(labels_[i])].push_back(i);
    per_class_.clear();
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      if (members_[c].empty()) fail("reference set", "class '" + classes_[c] + "' has no reference images (empty class)");
      members_[c] = density_filtered(members_[c], c);
      std::vector<float> x;
      for (auto i : members_[c]) x.insert(x.end(), values_.begin() + long(i * d_), values_.begin() + long((i + 1) * d_));
      per_class_.push_back(new_index(x.data(), members_[c].size(), d_, options_));
    }
  }

  void score(const Activations& a, const std::vector<int>& pred, const std::vector<std::string>& columns,
             std::vector<double>& values) const override {
    const std::size_t n = a.batch(), m = columns.size();
    values.assign(n * m, 0.0);
    const auto queries = a.tap(tap_).gather(n);
    for (std::size_t c = 0; c < m; ++c) {
      if (columns[c] == "knn") {
        const auto d = knn_distances(queries, n);
        for (std::size_t i = 0; i < n; ++i) values[i * m + c] = -d[i * k_ + k_ - 1];
      } else {
        const auto nearest = nearest_per_class(queries, n);
        for (std::size_t i = 0; i < n; ++i) values[i * m + c] = trust(nearest, i, pred[i]);
      }
    }
  }

  json explain(const Activations& a, std::size_t image, int pred) const override {
    const auto query = std::vector<float>(a.tap(tap_).row(image), a.tap(tap_).row(image) + d_);
    std::vector<Labels> neighbours(k_);
    const auto d = knn_distances(query, 1, &neighbours);
    json knn = json::array();
    for (std::size_t j = 0; j < k_; ++j) {
      const auto i = std::size_t(neighbours[j]);
      knn.push_back({{"id", ids_[i]}, {"label", classes_[std::size_t(labels_[i])]}, {"distance", d[j]}});
    }
    std::vector<Labels> nearest_ids;
    const auto nearest = nearest_per_class(query, 1, &nearest_ids);
    json classes = json::array();
    for (std::size_t c = 0; c < classes_.size(); ++c)
      classes.push_back({{"class", classes_[c]},
                         {"nearest_id", ids_[members_[c][std::size_t(nearest_ids[c])]]},
                         {"distance", nearest[c]}});
    return {{"knn", -d[k_ - 1]}, {"k", k_}, {"neighbours", knn}, {"trust", trust(nearest, 0, pred)},
            {"nearest_per_class", classes}};
  }

  void save(SafetensorsFile& file) const override {
    const auto n = std::int64_t(labels_.size());
    file.tensors.push_back(make_tensor("features/values", DType::F32, {n, std::int64_t(d_)}, values_.data(), values_.size() * 4));
    file.tensors.push_back(make_tensor("features/labels", DType::I64, {n}, labels_.data(), labels_.size() * 8));
    file.tensors.push_back(make_tensor("features/ids", DType::I64, {n}, ids_.data(), ids_.size() * 8));
    file.metadata[fit_metadata_key(kind())] =
        json{{"tap", tap_}, {"neurons", d_}, {"images", n}, {"classes", classes_}}.dump();
  }

  void check_same(const FittedScore& other, const std::string& where) const override {
    const auto& o = static_cast<const FeaturesFit&>(other);
    if (o.tap_ != tap_ || o.d_ != d_ || o.classes_ != classes_) fail(where, "has other features than the first shard");
  }

  // Read from a file.
  void set_data(std::vector<float> values, std::vector<std::int64_t> labels, std::vector<std::int64_t> ids) {
    values_ = std::move(values);
    labels_ = std::move(labels);
    ids_ = std::move(ids);
  }

 private:
  // Jiang et al.'s density filter: drops the share alpha of the class's points whose
  // distance to their k-th nearest point of the class (the point itself first) is largest.
  std::vector<std::size_t> density_filtered(const std::vector<std::size_t>& members, std::size_t c) const {
    if (options_.trust_alpha <= 0) return members;
    const std::size_t k = options_.trust_k;
    if (k > members.size())
      fail_option("trust_k", std::to_string(k) + " exceeds the " + std::to_string(members.size()) + " reference images of class '" +
                                 classes_[c] + "'");
    std::vector<float> x;
    for (auto i : members) x.insert(x.end(), values_.begin() + long(i * d_), values_.begin() + long((i + 1) * d_));
    faiss::IndexFlatL2 index{int(d_)};
    index.add(Labels(members.size()), x.data());
    std::vector<float> d(members.size() * k);
    std::vector<Labels> ids(members.size() * k);
    index.search(Labels(members.size()), x.data(), Labels(k), d.data(), ids.data());
    std::vector<double> radius(members.size());
    for (std::size_t i = 0; i < members.size(); ++i) radius[i] = d[i * k + k - 1];
    const double cutoff = quantile(radius, 1.0 - options_.trust_alpha);
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < members.size(); ++i)
      if (radius[i] <= cutoff) kept.push_back(members[i]);
    return kept;
  }

  // Euclidean distances of each query's k nearest normalised reference features.
  std::vector<double> knn_distances(const std::vector<float>& queries, std::size_t n,
                                    std::vector<Labels>* neighbours = nullptr) const {
    const auto unit = normalised(queries.data(), n, d_);
    std::vector<float> d(n * k_);
    std::vector<Labels> ids(n * k_);
    knn_search(*all_, unit.data(), n, d_, k_, d.data(), ids.data());
    if (neighbours) *neighbours = ids;
    std::vector<double> out(d.size());
    for (std::size_t i = 0; i < d.size(); ++i) out[i] = std::sqrt(std::max(0.0f, d[i]));
    return out;
  }

  // Distance of each query to the nearest (kept) reference image of each class.
  std::vector<double> nearest_per_class(const std::vector<float>& queries, std::size_t n,
                                        std::vector<Labels>* nearest = nullptr) const {
    const std::size_t k = classes_.size();
    std::vector<double> out(n * k);
    std::vector<float> d(n);
    std::vector<Labels> ids(n);
    if (nearest) nearest->assign(k, 0);
    for (std::size_t c = 0; c < k; ++c) {
      knn_search(*per_class_[c], queries.data(), n, d_, 1, d.data(), ids.data());
      for (std::size_t i = 0; i < n; ++i) out[i * k + c] = std::sqrt(std::max(0.0f, d[i]));
      if (nearest) (*nearest)[c] = ids[0];
    }
    return out;
  }

  // Distance to the nearest other class over distance to the predicted class.
  double trust(const std::vector<double>& nearest, std::size_t i, int pred) const {
    const std::size_t k = classes_.size();
    double other = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < k; ++c)
      if (c != std::size_t(pred)) other = std::min(other, nearest[i * k + c]);
    return other / (nearest[i * k + std::size_t(pred)] + kMinDistance);
  }

  std::string tap_;
  std::size_t d_;
  std::vector<std::string> classes_;
  FitOptions options_;
  std::vector<float> values_;  // reference features, N x d, in reference order
  std::vector<std::int64_t> labels_, ids_;
  // Derived by finish(true).
  std::size_t k_ = 1;
  std::unique_ptr<faiss::Index> all_;                    // normalised, every class (kNN)
  std::vector<std::unique_ptr<faiss::Index>> per_class_;  // raw, density-filtered (trust)
  std::vector<std::vector<std::size_t>> members_;         // reference rows in per_class_ order
};

}  // namespace

std::unique_ptr<FittedScore> new_features_fit(const FitContext& context) {
  const std::size_t id = resolve_feature_tap(context.model, context.options.feature_tap);
  const auto& tap = context.model.taps()[id];
  const auto& classes = context.model.meta().class_names;
  const std::uint64_t bytes = knn_features_bytes(context.images, tap.numel(), classes.size(), context.options.knn_index);
  const std::uint64_t limit = memory_limit(context.options.max_bytes);
  if (bytes > limit)
    fail_option("max_memory", "the reference features need " + format_bytes(bytes) + " (" + std::to_string(context.images) +
                                  " images x " + std::to_string(tap.numel()) + " neurons x 3 copies of 4 bytes, labels and ids" +
                                  (context.options.knn_index == "ivf" ? ", the IVF lists" : "") + "), over the limit of " +
                                  format_bytes(limit));
  return std::make_unique<FeaturesFit>(tap.name, tap.numel(), context.model.meta().class_names, context.options);
}

std::unique_ptr<FittedScore> features_fit_from(const SafetensorsFile& file, const json& meta, const FitOptions& options) {
  const std::string where = file.path + ": features";
  const auto tap = json_field<std::string>(meta, "tap", where);
  const auto d = json_field<std::size_t>(meta, "neurons", where);
  const auto n = json_field<std::size_t>(meta, "images", where);
  const auto classes = json_field<std::vector<std::string>>(meta, "classes", where);
  if (d == 0 || d > kMaxFeatureNeurons) fail(where, "bad number of neurons");
  const auto& values = expect_tensor(file, "features/values", DType::F32, {std::int64_t(n), std::int64_t(d)});
  const auto& labels = expect_tensor(file, "features/labels", DType::I64, {std::int64_t(n)});
  const auto& ids = expect_tensor(file, "features/ids", DType::I64, {std::int64_t(n)});
  std::vector<float> v(n * d);
  std::memcpy(v.data(), values.bytes.data(), values.bytes.size());
  for (float x : v)
    if (!std::isfinite(x)) fail(where, "a stored feature is not finite");
  std::vector<std::int64_t> l(n), i(n);
  std::memcpy(l.data(), labels.bytes.data(), labels.bytes.size());
  std::memcpy(i.data(), ids.bytes.data(), ids.bytes.size());
  for (auto label : l)
    if (label < 0 || std::size_t(label) >= classes.size()) fail(where, "a stored label is outside the classes");
  auto fit = std::make_unique<FeaturesFit>(tap, d, classes, options);
  fit->set_data(std::move(v), std::move(l), std::move(i));
  return fit;
}

}  // namespace imagescore::detail

namespace imagescore {

std::size_t knn_ivf_lists(std::size_t n) {
  const auto lists = std::size_t(std::llround(4.0 * std::sqrt(double(n))));
  return std::max<std::size_t>(1, std::min(lists, n / 39));
}

std::uint64_t knn_features_bytes(std::uint64_t n, std::uint64_t d, std::uint64_t classes, const std::string& index) {
  // The features, their normalised copy and the per-class copies (4 bytes each), labels and ids.
  std::uint64_t bytes = n * (3 * 4 * d + 16);
  // The lists' ids (8 bytes per vector in each of the two searches) and the centroids: at
  // most 1 + n/39 of the kNN index and classes + n/39 over the per-class indexes.
  if (index == "ivf") bytes += n * 16 + 4 * d * (1 + classes + 2 * (n / 39));
  return bytes;
}

}  // namespace imagescore
