// Reference sets: every fitted score (the image score's profiles, kNN and trust score,
// Mahalanobis, NAC), fitted from streamed batches, merged from shards, saved and loaded as
// the command line's files, and fitted by the library over a data source.
#include <nlohmann/json.hpp>

#include <mutex>

#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/score/fitted.hpp"

namespace imagescore::python {
namespace {

// ReferenceBuilder for batches that come from Python; calls from several threads take turns.
class ReferenceFromBatches {
 public:
  ReferenceFromBatches(const std::shared_ptr<Model>& model, const FitOptions& options, const std::vector<std::string>& scores,
          const std::string& data, std::size_t images)
      : global_(options.profile.global), builder_(*model, options, scores, data, images) {
    for (auto id : builder_.tap_ids()) taps_.push_back(model->taps()[id]);
  }

  void add(py::handle activations, py::object labels, py::object ids, py::object images) {
    std::size_t rows = 0;
    std::vector<std::int64_t> class_of;
    if (labels.is_none()) {
      if (!global_) fail("labels", "per-class profiles need a label for every image");
      rows = images.is_none() ? rows_of(activations, "activations") : images.cast<std::size_t>();
      class_of.assign(rows, kNoLabel);
    } else {
      class_of = int_vector(labels, "labels");
      rows = class_of.size();
    }
    std::vector<std::size_t> positions;
    if (!ids.is_none())
      for (auto id : int_vector(ids, "ids", rows)) {
        if (id < 0) fail("ids", "must not be negative");
        positions.push_back(std::size_t(id));
      }
    auto arrays = taps_arrays(activations, taps_, rows);
    ForwardOutput out;
    out.batch = rows;
    for (auto& a : arrays) out.taps.push_back(a.view);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    builder_.add(out, positions, class_of);
  }

  Reference finish(const std::pair<std::size_t, std::size_t>& shard) {
    const auto [index, count] = checked_shard(shard);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return {std::make_shared<ReferenceSet>(builder_.finish(index, count))};
  }

  const std::vector<TapInfo>& taps() const { return taps_; }

 private:
  bool global_;
  std::vector<TapInfo> taps_;
  std::mutex mutex_;
  ReferenceBuilder builder_;
};

FitOptions fit_options(const std::vector<std::string>& taps, double rho, const std::string& norm, const std::string& scale,
                       bool global, const std::string& feature_tap, std::size_t knn_k, std::size_t trust_k,
                       double trust_alpha, double shrinkage, std::size_t nac_bins, double nac_min_count,
                       double nac_steepness, std::uint64_t max_memory, const std::string& knn_index,
                       std::size_t knn_nprobe) {
  FitOptions o;
  o.profile = profile_options(rho, norm, scale, global);
  o.taps = taps;
  o.feature_tap = feature_tap;
  o.knn_k = knn_k;
  o.trust_k = trust_k;
  o.trust_alpha = trust_alpha;
  o.shrinkage = shrinkage;
  o.nac.bins = nac_bins;
  o.nac.min_count = nac_min_count;
  o.nac.steepness = nac_steepness;
  o.max_bytes = max_memory;
  o.knn_index = knn_index;
  o.knn_nprobe = knn_nprobe;
  o.validate();
  return o;
}

}  // namespace

ProfileOptions profile_options(double rho, const std::string& norm, const std::string& scale, bool global) {
  ProfileOptions o;
  o.rho = rho;
  o.norm = parse_norm(norm);
  o.scale = parse_scale(scale);
  o.global = global;
  o.validate();
  return o;
}

std::pair<std::size_t, std::size_t> checked_shard(const std::pair<std::size_t, std::size_t>& shard) {
  if (shard.second < 1 || shard.first < 1 || shard.first > shard.second)
    fail_option("shard", "must be (i, k) with 1 <= i <= k, got (" + std::to_string(shard.first) + ", " +
                             std::to_string(shard.second) + ")");
  return shard;
}

void bind_reference(py::module_& m) {
  py::class_<Reference>(m, "ReferenceSet",
                        "Every fitted score of one reference set: what `imagescore profile` writes and `score` reads")
      .def_property_readonly("classes", [](const Reference& r) { return r.set->class_names; })
      .def_property_readonly("columns", [](const Reference& r) { return r.set->columns(); },
                             "The score columns its fits provide (image_score, knn, trust, ...)")
      .def_property_readonly("arch", [](const Reference& r) { return r.set->model_arch; })
      .def_property_readonly("weights_hash", [](const Reference& r) { return r.set->weights_hash; })
      .def_property_readonly("data", [](const Reference& r) { return r.set->data_spec; })
      .def_property_readonly("shard", [](const Reference& r) { return py::make_tuple(r.set->shard_index, r.set->shard_count); })
      .def_property_readonly("name", [](const Reference& r) { return r.name; }, "What errors call it: its file or 'profiles'")
      .def_property_readonly("profiles", [](const Reference& r) -> py::object {
        const ProfileSet* profiles = r.set->profiles();
        if (!profiles) return py::none();
        return py::cast(Profiles{*profiles, r.name});
      }, "The image score's profiles (a copy), or None")
      .def("summary", [](const Reference& r) { return py::module_::import("json").attr("loads")(r.set->summary().dump()); },
           "What the file holds: shard, columns, each profile's counts and taps, excluded taps")
      .def("save", [](const Reference& r, const std::string& path) {
        py::gil_scoped_release release;
        save_reference(*r.set, path);
      }, py::arg("path"), "Writes the reference file the command line writes (atomically)")
      .def("check_model", [](const Reference& r, const std::shared_ptr<Model>& model) {
        check_reference_matches(*r.set, *model, r.name);
      }, py::arg("model"), "Fails unless it was fitted with this model (weights, classes, taps)")
      .def_static("from_profiles", [](const Profiles& p) {
        return Reference{std::make_shared<ReferenceSet>(reference_of(p.set)), p.name};
      }, py::arg("profiles"), "A reference set of the image score's profiles alone");

  m.def("load_reference", [](const std::string& path) {
    return Reference{std::make_shared<ReferenceSet>(interruptible([&] { return load_reference(path); })), path};
  }, py::arg("path"), "A reference file, or a profile file of earlier versions (the image score alone)");

  m.def("merge_references", [](const std::vector<const Reference*>& shards) {
    std::vector<ReferenceSet> sets;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < shards.size(); ++i) {
      if (!shards[i]) fail("merge_references", "shard " + std::to_string(i) + " is None");
      // Merging consumes its inputs: each shard is encoded and decoded into a copy.
      sets.push_back(decode_reference(encode_reference(*shards[i]->set), shards[i]->name));
      names.push_back(shards[i]->name == "profiles" ? "profiles[" + std::to_string(i) + "]" : shards[i]->name);
    }
    return Reference{std::make_shared<ReferenceSet>(interruptible([&] { return merge_references(std::move(sets), names); }))};
  }, py::arg("shards"), "Merges the shards 1..k of one reference set into exactly what one pass gives");

  py::class_<ReferenceFromBatches>(m, "ReferenceBuilder",
                      "Fits scores from batches of activations; memory grows only where a score stores features")
      .def(py::init([](const std::shared_ptr<Model>& model, const std::vector<std::string>& scores,
                       const std::vector<std::string>& taps, double rho, const std::string& norm, const std::string& scale,
                       bool global, const std::string& feature_tap, std::size_t knn_k, std::size_t trust_k,
                       double trust_alpha, double shrinkage, std::size_t nac_bins, double nac_min_count,
                       double nac_steepness, std::uint64_t max_memory, const std::string& data, std::size_t images,
                       const std::string& knn_index, std::size_t knn_nprobe) {
             return std::make_unique<ReferenceFromBatches>(model,
                                              fit_options(taps, rho, norm, scale, global, feature_tap, knn_k, trust_k,
                                                          trust_alpha, shrinkage, nac_bins, nac_min_count, nac_steepness,
                                                          max_memory, knn_index, knn_nprobe),
                                              scores, data, images);
           }),
           py::arg("model"), py::arg("scores") = std::vector<std::string>{}, py::arg("taps") = std::vector<std::string>{},
           py::arg("rho") = 0.5, py::arg("norm") = "linf", py::arg("scale") = "mean", py::arg("global_profile") = false,
           py::arg("feature_tap") = "", py::arg("knn_k") = 0, py::arg("trust_k") = 10, py::arg("trust_alpha") = 0.0,
           py::arg("shrinkage") = 1e-3, py::arg("nac_bins") = 50, py::arg("nac_min_count") = 50.0,
           py::arg("nac_steepness") = 100.0, py::arg("max_memory") = 0, py::arg("data") = "", py::arg("images") = 0,
           py::arg("knn_index") = "exact", py::arg("knn_nprobe") = 64,
           "`scores`: registry names (default: every cheap fitted score the model allows); the options are "
           "`imagescore profile`'s; `images`: how many reference images will come (checked against max_memory)")
      .def_property_readonly("taps", [](const ReferenceFromBatches& b) { return tap_list(b.taps()); },
                             "The taps every batch must give, as (name, shape)")
      .def("add", &ReferenceFromBatches::add, py::arg("activations"), py::arg("labels") = py::none(), py::arg("ids") = py::none(),
           py::arg("images") = py::none(),
           "Adds one batch: activations by tap (dict, or list in the order of .taps), one label per image (a "
           "global profile needs none), their ids in the data set (default: positions), and their number where "
           "the activations are blocks. After an error, start a new builder")
      .def("finish", &ReferenceFromBatches::finish, py::arg("shard") = std::make_pair(1, 1),
           "The reference set; `shard` = (i, k) marks it part i of k, for merge_references");

  m.def("fit_reference", [](const std::shared_ptr<Model>& model, const std::shared_ptr<ImageSource>& source,
                            const std::vector<std::string>& scores, const std::vector<std::string>& taps, double rho,
                            const std::string& norm, const std::string& scale, bool global, const std::string& feature_tap,
                            std::size_t knn_k, std::size_t trust_k, double trust_alpha, double shrinkage,
                            std::size_t nac_bins, double nac_min_count, double nac_steepness, std::uint64_t max_memory,
                            const std::pair<std::size_t, std::size_t>& shard, std::size_t batch_size, int threads,
                            bool quiet, const std::string& knn_index, std::size_t knn_nprobe) {
    FitRunOptions o;
    o.fit = fit_options(taps, rho, norm, scale, global, feature_tap, knn_k, trust_k, trust_alpha, shrinkage, nac_bins,
                        nac_min_count, nac_steepness, max_memory, knn_index, knn_nprobe);
    o.scores = scores;
    std::tie(o.shard_index, o.shard_count) = checked_shard(shard);
    if (batch_size == 0) fail_option("batch_size", "must be at least 1");
    o.batch_size = batch_size;
    o.threads = threads;
    o.quiet = quiet;
    return Reference{std::make_shared<ReferenceSet>(interruptible([&] { return fit_reference(*model, *source, o); }))};
  }, py::arg("model"), py::arg("source"), py::arg("scores") = std::vector<std::string>{},
     py::arg("taps") = std::vector<std::string>{}, py::arg("rho") = 0.5, py::arg("norm") = "linf", py::arg("scale") = "mean",
     py::arg("global_profile") = false, py::arg("feature_tap") = "", py::arg("knn_k") = 0, py::arg("trust_k") = 10,
     py::arg("trust_alpha") = 0.0, py::arg("shrinkage") = 1e-3, py::arg("nac_bins") = 50, py::arg("nac_min_count") = 50.0,
     py::arg("nac_steepness") = 100.0, py::arg("max_memory") = 0, py::arg("shard") = std::make_pair(1, 1),
     py::arg("batch_size") = 256, py::arg("threads") = 0, py::arg("quiet") = true, py::arg("knn_index") = "exact",
     py::arg("knn_nprobe") = 64,
     "The fitted scores of a library model over a data source: what `imagescore profile` computes");
}

}  // namespace imagescore::python
