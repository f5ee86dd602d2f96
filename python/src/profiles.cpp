// Profiles: built from streamed batches of activations, merged from shards, saved and
// loaded as the command line's files, and built by the library over a data source.
#include <mutex>

#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/score/profile.hpp"

namespace imagescore::python {
namespace {

// ProfileBuilder for batches that come from Python. Calls from several Python threads
// take turns (the GIL is released while the sums are added).
class ProfilesFromBatches {
 public:
  ProfilesFromBatches(const std::shared_ptr<Model>& model, const std::vector<std::string>& taps, const ProfileOptions& options)
      : taps_(chosen_taps(*model, taps)), global_(options.global), builder_(*model, resolve_taps(*model, taps), options) {}

  void add(py::handle activations, py::object labels, py::object images) {
    std::size_t rows = 0;
    std::vector<std::int64_t> class_of;
    if (labels.is_none()) {
      if (!global_) fail("labels", "per-class profiles need a label for every image");
      rows = images.is_none() ? rows_of(activations, "activations") : images.cast<std::size_t>();
    } else {
      class_of = int_vector(labels, "labels");
      rows = class_of.size();
    }
    auto arrays = taps_arrays(activations, taps_, rows);
    ForwardOutput out;
    out.batch = rows;
    for (auto& a : arrays) out.taps.push_back(a.view);
    class_of.resize(rows, 0);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    builder_.add(out, class_of);
  }

  Profiles finish(const std::string& data, const std::pair<std::size_t, std::size_t>& shard) {
    const auto [index, count] = checked_shard(shard);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    Profiles p;
    p.set = builder_.finish(data, count > 1);
    p.set.shard_index = index;
    p.set.shard_count = count;
    return p;
  }

  const std::vector<TapInfo>& taps() const { return taps_; }

 private:
  std::vector<TapInfo> taps_;
  bool global_;
  std::mutex mutex_;
  ProfileBuilder builder_;
};

template <typename T>
py::array_t<T> tap_array(const std::vector<T>& values, const std::vector<std::int64_t>& shape) {
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  py::array_t<T> a(dims);
  std::copy(values.begin(), values.end(), a.mutable_data());
  return a;
}

const TapProfile& find_tap(const ProfileSet& set, std::size_t profile, const std::string& tap) {
  if (profile >= set.profiles.size())
    throw py::index_error("profile " + std::to_string(profile) + " of " + std::to_string(set.profiles.size()));
  for (const auto& t : set.profiles[profile].taps)
    if (t.name == tap) return t;
  fail("tap '" + tap + "'", "is not a tap of the profiles");
}

}  // namespace

std::vector<TapInfo> profile_taps(const ProfileSet& set) {
  std::vector<TapInfo> taps;
  if (!set.profiles.empty())
    for (const auto& t : set.profiles.front().taps) taps.push_back({t.name, t.shape});
  return taps;
}

void bind_profiles(py::module_& m) {
  py::class_<Profiles>(m, "ProfileSet", "Per-class (or global) profiles: the reference activations and masks")
      .def_property_readonly("classes", [](const Profiles& p) { return p.set.class_names; })
      .def_property_readonly("names", [](const Profiles& p) {
        std::vector<std::string> names;
        for (const auto& prof : p.set.profiles) names.push_back(prof.name);
        return names;
      }, "The profiles: one per class, or 'global'")
      .def_property_readonly("counts", [](const Profiles& p) {
        std::vector<std::uint64_t> counts;
        for (const auto& prof : p.set.profiles) counts.push_back(prof.count);
        return counts;
      }, "Reference images per profile")
      .def_property_readonly("taps", [](const Profiles& p) { return tap_list(profile_taps(p.set)); })
      .def_property_readonly("tap_names", [](const Profiles& p) { return p.set.tap_names(); })
      .def_property_readonly("arch", [](const Profiles& p) { return p.set.model_arch; })
      .def_property_readonly("weights_hash", [](const Profiles& p) { return p.set.weights_hash; })
      .def_property_readonly("data", [](const Profiles& p) { return p.set.data_spec; })
      .def_property_readonly("shard", [](const Profiles& p) { return py::make_tuple(p.set.shard_index, p.set.shard_count); })
      .def_property_readonly("options", [](const Profiles& p) {
        py::dict d;
        d["rho"] = p.set.options.rho;
        d["norm"] = to_string(p.set.options.norm);
        d["scale"] = to_string(p.set.options.scale);
        d["global"] = p.set.options.global;
        return d;
      })
      .def_property_readonly("name", [](const Profiles& p) { return p.name; }, "What errors call it: its file or 'profiles'")
      .def("exclusions", [](const Profiles& p) { return p.set.exclusions(); },
           "Taps left out of the score, as 'profile/tap: reason' lines")
      .def("tap", [](const Profiles& p, std::size_t profile, const std::string& tap) {
        const TapProfile& t = find_tap(p.set, profile, tap);
        py::dict d;
        const std::uint64_t count = p.set.profiles[profile].count;
        d["reference"] = t.sum.size() == t.numel() && count > 0
                             ? py::object(tap_array(reference_activation(t, count, p.set.options), t.shape))
                             : py::object(py::none());
        d["mask"] = tap_array(unpack_mask(t), t.shape).attr("astype")("bool");
        d["threshold"] = t.threshold;
        d["mask_count"] = t.mask_count;
        d["excluded"] = t.excluded;
        d["reason"] = t.exclusion_reason;
        return d;
      }, py::arg("profile"), py::arg("tap"),
           "One profile's tap: reference A (None unless the exact sums were kept), mask M, threshold t, exclusion")
      .def("save", [](const Profiles& p, const std::string& path) {
        py::gil_scoped_release release;
        save_profiles(p.set, path);
      }, py::arg("path"), "Writes the profile file the command line reads (atomically)")
      .def("check_model", [](const Profiles& p, const std::shared_ptr<Model>& model) {
        check_profiles_match(p.set, *model, p.name);
      }, py::arg("model"), "Fails unless the profiles were built from this model (weights, classes, taps)")
      .def("__len__", [](const Profiles& p) { return p.set.profiles.size(); });

  m.def("merge_profiles", [](const std::vector<const Profiles*>& shards) {
    std::vector<ProfileSet> sets;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < shards.size(); ++i) {
      if (!shards[i]) fail("merge_profiles", "shard " + std::to_string(i) + " is None");
      sets.push_back(shards[i]->set);
      names.push_back(shards[i]->name == "profiles" ? "profiles[" + std::to_string(i) + "]" : shards[i]->name);
    }
    Profiles merged;
    merged.set = interruptible([&] { return merge_profiles(sets, names); });
    return merged;
  }, py::arg("shards"), "Merges the shards 1..k of one reference set into exactly what one pass gives");

  py::class_<ProfilesFromBatches>(m, "ProfileBuilder", "Adds activations batch by batch; memory does not grow with the images")
      .def(py::init([](const std::shared_ptr<Model>& model, const std::vector<std::string>& taps, double rho,
                       const std::string& norm, const std::string& scale, bool global, bool keep_sums) {
             auto options = profile_options(rho, norm, scale, global);
             options.keep_sums = keep_sums;
             return std::make_unique<ProfilesFromBatches>(model, taps, options);
           }),
           py::arg("model"), py::arg("taps") = std::vector<std::string>{}, py::arg("rho") = 0.5, py::arg("norm") = "linf",
           py::arg("scale") = "mean", py::arg("global_profile") = false, py::arg("keep_sums") = false,
           "keep_sums keeps the exact sums beside the masks: the reference activations, and a file that can be checked "
           "against them")
      .def_property_readonly("taps", [](const ProfilesFromBatches& b) { return tap_list(b.taps()); })
      .def("add", &ProfilesFromBatches::add, py::arg("activations"), py::arg("labels") = py::none(), py::arg("images") = py::none(),
           "Adds one batch: activations by tap (dict, or list in tap order) and one label per image (a global "
           "profile needs none; `images` gives their number where the activations are blocks). After an error, "
           "start a new builder: the batch may have been added in part")
      .def("finish", &ProfilesFromBatches::finish, py::arg("data") = "", py::arg("shard") = std::make_pair(1, 1),
           "The profiles so far; `data` names the reference images, `shard` = (i, k) marks part i of k");
}

}  // namespace imagescore::python
