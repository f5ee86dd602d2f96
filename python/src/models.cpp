// Data sources, models (the library's, and models described from Python), the default-tap
// rule and the `output` tap.
#include <algorithm>
#include <limits>
#include <set>

#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/data/split.hpp"
#include "imagescore/models/device.hpp"
#include "imagescore/models/taps.hpp"

namespace imagescore::python {
namespace {

class DescribedModel : public Model {
 public:
  DescribedModel(ModelMeta meta, std::vector<TapInfo> taps, std::vector<std::size_t> defaults)
      : meta_(std::move(meta)), taps_(std::move(taps)), defaults_(std::move(defaults)) {}
  const ModelMeta& meta() const override { return meta_; }
  const std::vector<TapInfo>& taps() const override { return taps_; }
  std::vector<std::size_t> default_taps() const override { return defaults_; }
  ForwardOutput forward(const Batch&, const std::vector<std::size_t>&) override {
    fail("model", "a model described from Python runs in Python (imagescore.torch), not in the library");
  }

 private:
  ModelMeta meta_;
  std::vector<TapInfo> taps_;
  std::vector<std::size_t> defaults_;
};

// A vector moved into a NumPy array that owns it (no copy).
template <typename T>
py::array_t<T> owned_array(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* held = new std::vector<T>(std::move(values));
  py::capsule owner(held, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, held->data(), owner);
}

std::vector<py::ssize_t> batch_shape(std::size_t rows, const std::vector<std::int64_t>& per_image) {
  std::vector<py::ssize_t> shape = {py::ssize_t(rows)};
  for (auto d : per_image) shape.push_back(py::ssize_t(d));
  return shape;
}

py::tuple shape_tuple(const std::vector<std::int64_t>& shape) {
  py::tuple t(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) t[i] = shape[i];
  return t;
}

Normalization normalization_of(const py::object& mean, const py::object& std, int channels) {
  Normalization n = parse_normalization("none", channels);
  if (!mean.is_none()) {
    auto values = double_vector(mean, "mean");
    n.mean.assign(values.begin(), values.end());
  }
  if (!std.is_none()) {
    auto values = double_vector(std, "std");
    n.std.assign(values.begin(), values.end());
  }
  return n;
}

// A source that keeps the one it views alive.
std::shared_ptr<ImageSource> shared_subset(const std::shared_ptr<ImageSource>& base, std::vector<std::size_t> indices) {
  struct Held {
    std::shared_ptr<ImageSource> base;
    std::unique_ptr<ImageSource> view;
  };
  auto held = std::make_shared<Held>();
  held->base = base;
  held->view = subset(*base, std::move(indices));
  return {held, held->view.get()};
}

// Batches of a source normalised as the library does for a model (the CLI's pixels).
class Batches {
 public:
  Batches(std::shared_ptr<ImageSource> source, Normalization norm, LoaderOptions options)
      : source_(std::move(source)), loader_(std::make_unique<BatchLoader>(*source_, std::move(norm), options)) {}
  std::size_t size() const { return loader_->num_batches(); }
  py::tuple next() {
    Batch batch;
    const bool more = interruptible([&] { return loader_->next(batch); });
    if (!more) throw py::stop_iteration();
    const ImageShape s = batch.shape;
    std::vector<std::int64_t> ids(batch.size());
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = std::int64_t(source_->id(batch.indices[i]));
    const auto rows = py::ssize_t(batch.size());
    return py::make_tuple(owned_array(std::move(batch.pixels), {rows, s.channels, s.height, s.width}),
                          owned_array(std::move(batch.labels), {rows}), owned_array(std::move(ids), {rows}));
  }

 private:
  std::shared_ptr<ImageSource> source_;
  std::unique_ptr<BatchLoader> loader_;
};

py::tuple forward(Model& model, py::handle pixels, const std::vector<std::string>& names) {
  py::array a = as_array(pixels, "images");
  const ImageShape input = model.meta().input;
  if (!a.dtype().is(py::dtype::of<float>())) fail("images", "must be float32 (normalised)");
  if (a.ndim() != 4 || a.shape(1) != input.channels || a.shape(2) != input.height || a.shape(3) != input.width)
    fail("images", "must have the shape [images, " + std::to_string(input.channels) + ", " + std::to_string(input.height) +
                       ", " + std::to_string(input.width) + "]");
  auto typed = py::array_t<float, py::array::c_style>::ensure(a);
  const auto taps = chosen_taps(model, names);
  auto ids = resolve_taps(model, names);
  Batch batch;
  batch.shape = input;
  batch.pixels.assign(typed.data(), typed.data() + typed.size());
  batch.labels.assign(std::size_t(a.shape(0)), kNoLabel);
  batch.indices.resize(std::size_t(a.shape(0)));
  ForwardOutput out = interruptible([&] { return model.forward(batch, ids); });
  py::dict activations;
  for (std::size_t l = 0; l < taps.size(); ++l)
    activations[py::str(taps[l].name)] = owned_array(out.taps[l].gather(out.batch), batch_shape(out.batch, taps[l].shape));
  return py::make_tuple(owned_array(std::move(out.logits), {py::ssize_t(out.batch), py::ssize_t(out.num_classes)}),
                        activations);
}

}  // namespace

std::shared_ptr<Model> describe_model(const std::vector<std::string>& classes,
                                      const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& taps,
                                      const std::vector<std::string>& default_taps, const std::string& weights_hash,
                                      const std::string& arch, const std::vector<int>& input_shape) {
  if (classes.empty()) fail_option("classes", "a model needs at least one class");
  ModelMeta meta;
  meta.arch = arch;
  meta.class_names = classes;
  meta.weights_hash = weights_hash;
  if (!input_shape.empty()) {
    if (input_shape.size() != 3) fail_option("input_shape", "expected [channels, height, width]");
    meta.input = {input_shape[0], input_shape[1], input_shape[2]};
  }
  std::vector<TapInfo> infos;
  std::set<std::string> names;
  for (const auto& [name, shape] : taps) {
    if (name.empty() || name == "output") fail_option("taps", "a hidden tap needs a name other than '" + name + "'");
    if (!names.insert(name).second) fail_option("taps", "tap '" + name + "' given twice");
    // The scorer counts a tap's neurons in 32 bits.
    std::uint64_t numel = 1;
    for (auto d : shape) {
      if (d < 1 || std::uint64_t(d) > std::numeric_limits<std::uint32_t>::max() / numel)
        fail_option("taps", "tap '" + name + "' needs positive sizes and fewer than 2^32 values per image");
      numel *= std::uint64_t(d);
    }
    infos.push_back({name, shape});
  }
  infos.push_back({"output", {std::int64_t(classes.size())}});
  std::vector<std::size_t> defaults;
  for (std::size_t i = 0; i < infos.size(); ++i)
    if (infos[i].name == "output" ||
        std::find(default_taps.begin(), default_taps.end(), infos[i].name) != default_taps.end())
      defaults.push_back(i);
  for (const auto& name : default_taps)
    if (name != "output" && !names.count(name)) fail_option("taps", "default tap '" + name + "' is not a tap");
  return std::make_shared<DescribedModel>(std::move(meta), std::move(infos), std::move(defaults));
}

py::list tap_list(const std::vector<TapInfo>& taps) {
  py::list out;
  for (const auto& t : taps) out.append(py::make_tuple(t.name, shape_tuple(t.shape)));
  return out;
}

std::vector<TapInfo> chosen_taps(const Model& model, const std::vector<std::string>& names) {
  std::vector<TapInfo> out;
  for (auto id : resolve_taps(model, names)) out.push_back(model.taps()[id]);
  return out;
}

void bind_models(py::module_& m) {
  py::class_<Batches>(m, "Batches", "Normalised batches of a data source: (images, labels, ids) per step")
      .def("__iter__", [](Batches& b) -> Batches& { return b; })
      .def("__next__", &Batches::next)
      .def("__len__", &Batches::size);

  py::class_<ImageSource, std::shared_ptr<ImageSource>>(m, "DataSource",
                                                        "Images of a data spec, read by the library's readers")
      .def("__len__", &ImageSource::size)
      .def_property_readonly("spec", &ImageSource::spec)
      .def_property_readonly("shape", [](const ImageSource& s) {
        const auto shape = s.shape();
        return py::make_tuple(shape.channels, shape.height, shape.width);
      })
      .def_property_readonly("classes", &ImageSource::class_names)
      .def_property_readonly("labelled", &ImageSource::labelled)
      .def_property_readonly("labels", [](const ImageSource& s) {
        auto labels = s.labels();
        const auto n = py::ssize_t(labels.size());
        return owned_array(std::vector<std::int64_t>(labels.begin(), labels.end()), {n});
      })
      .def("path", [](const ImageSource& s, std::size_t i) {
        if (i >= s.size()) throw py::index_error("image " + std::to_string(i) + " of " + std::to_string(s.size()));
        return s.path(i);
      })
      .def("id", [](const ImageSource& s, std::size_t i) {
        if (i >= s.size()) throw py::index_error("image " + std::to_string(i) + " of " + std::to_string(s.size()));
        return s.id(i);
      })
      .def("read", [](const ImageSource& s, std::size_t i) {
        if (i >= s.size()) throw py::index_error("image " + std::to_string(i) + " of " + std::to_string(s.size()));
        const auto shape = s.shape();
        std::vector<std::uint8_t> pixels(shape.pixels());
        {
          py::gil_scoped_release release;
          s.read(i, pixels.data());
        }
        return owned_array(std::move(pixels), {shape.channels, shape.height, shape.width});
      }, "Image i as uint8 [channels, height, width]")
      .def("subset", [](const std::shared_ptr<ImageSource>& s, py::handle indices) {
        std::vector<std::size_t> positions;
        for (auto i : int_vector(indices, "indices")) {
          if (i < 0 || std::size_t(i) >= s->size())
            fail(s->spec(), "index " + std::to_string(i) + " outside the " + std::to_string(s->size()) + " images");
          positions.push_back(std::size_t(i));
        }
        return shared_subset(s, std::move(positions));
      }, py::arg("indices"))
      .def("batches", [](const std::shared_ptr<ImageSource>& s, py::object mean, py::object std, std::size_t batch_size,
                         int threads) {
        if (batch_size == 0) fail_option("batch_size", "must be at least 1");
        LoaderOptions options;
        options.batch_size = batch_size;
        options.threads = threads;
        return Batches(s, normalization_of(mean, std, s->shape().channels), options);
      }, py::arg("mean") = py::none(), py::arg("std") = py::none(), py::arg("batch_size") = 256, py::arg("threads") = 0,
         "Batches normalised as (x / 255 - mean) / std, exactly as the command line feeds a model");

  m.def("make_split", [](const std::shared_ptr<ImageSource>& source, double fraction, std::uint64_t seed) {
    const DataSplit split = interruptible([&] { return make_split(*source, fraction, seed); });
    auto positions = [](const std::vector<std::size_t>& v) {
      return owned_array(std::vector<std::int64_t>(v.begin(), v.end()), {py::ssize_t(v.size())});
    };
    return py::make_tuple(positions(split.training), positions(split.additional));
  }, py::arg("source"), py::arg("fraction"), py::arg("seed") = 0,
     "(training, additional) positions: per class, round(fraction * class size) images kept labelled, as "
     "`imagescore split` chooses them");

  m.def("open_data", [](const std::string& spec, const std::string& split, const std::string& split_file,
                        const std::string& part) {
    return std::shared_ptr<ImageSource>(interruptible([&] { return open_data_part(spec, split, split_file, part); }));
  }, py::arg("spec"), py::arg("split") = "train", py::arg("split_file") = "", py::arg("part") = "",
        "Opens a data spec (fashion-mnist, idx:DIR, folder:DIR, csv:FILE, ...), optionally one part of a split file");

  py::class_<Model, std::shared_ptr<Model>>(m, "Model", "A model as the library sees it: classes, taps, weights hash")
      .def_static("describe", &describe_model, py::arg("classes"), py::arg("taps"), py::arg("default_taps"),
                  py::arg("weights_hash"), py::arg("arch") = "torchscript", py::arg("input_shape") = std::vector<int>{},
                  "A model that runs in Python, described by its classes and hidden taps ([(name, shape)]); "
                  "`output` is added")
      .def_property_readonly("arch", [](const Model& model) { return model.meta().arch; })
      .def_property_readonly("classes", [](const Model& model) { return model.meta().class_names; })
      .def_property_readonly("weights_hash", [](const Model& model) { return model.meta().weights_hash; })
      .def_property_readonly("input_shape", [](const Model& model) {
        const auto& s = model.meta().input;
        return py::make_tuple(s.channels, s.height, s.width);
      })
      .def_property_readonly("mean", [](const Model& model) { return model.meta().normalization.mean; })
      .def_property_readonly("std", [](const Model& model) { return model.meta().normalization.std; })
      .def_property_readonly("taps", [](const Model& model) { return tap_list(model.taps()); },
                             "Every tap as (name, shape), in forward order; the last is `output`")
      .def_property_readonly("default_taps", [](const Model& model) {
        std::vector<std::string> names;
        for (auto id : model.default_taps()) names.push_back(model.taps()[id].name);
        return names;
      })
      .def_property_readonly("device", &Model::device)
      .def("to_device", &Model::to_device, py::arg("device"))
      .def("forward", &forward, py::arg("images"), py::arg("taps") = std::vector<std::string>{},
           "Logits [images, classes] and a dict of the taps' activations of normalised float32 images");

  m.def("load_model", [](const std::string& path, const std::string& preprocess) {
    return std::shared_ptr<Model>(interruptible([&] { return load_model(path, preprocess); }));
  }, py::arg("path"), py::arg("preprocess") = "", "A checkpoint or a TorchScript file with its preprocessing JSON");

  m.def("default_tap_names", [](const std::vector<std::tuple<std::string, std::string, bool, bool>>& calls) {
    std::vector<ModuleCall> modules;
    for (const auto& [name, type, children, top] : calls) modules.push_back({name, type, children, top});
    return default_tap_names(modules);
  }, py::arg("calls"), "The default taps of module calls given as (name, type name, has children, top level)");

  m.def("output_tap", [](py::handle logits) {
    auto z = float_matrix(logits, "logits", 0);
    const auto rows = std::size_t(z.shape(0)), k = std::size_t(z.shape(1));
    std::vector<float> out(rows * k);
    {
      py::gil_scoped_release release;
      softmax_rows(z.data(), rows, k, out.data());
    }
    return owned_array(std::move(out), {py::ssize_t(rows), py::ssize_t(k)});
  }, py::arg("logits"), "The `output` tap: each row's softmax computed in double, as float32");

  m.def("weights_hash", [](const std::vector<std::pair<std::string, py::buffer>>& tensors) {
    std::uint64_t h = 1469598103934665603ULL;
    for (const auto& [name, buffer] : tensors) {
      py::buffer_info info = buffer.request();
      if (info.ndim != 1 || info.itemsize != 1 || (info.ndim == 1 && info.strides[0] != 1))
        fail("weights_hash", "tensor '" + name + "' must be given as contiguous bytes");
      h = fnv1a64(name.data(), name.size(), h);
      h = fnv1a64(info.ptr, std::size_t(info.size), h);
    }
    return hex64(h);
  }, py::arg("tensors"), "FNV-1a 64 of (name, bytes) pairs in order: the weights hash of a TorchScript model");

  m.def("set_threads", &set_threads, py::arg("threads"), "LibTorch's intra-op threads (<= 0: all cores)");
  m.def("hardware_threads", &hardware_threads);
  m.def("set_device", &set_device, py::arg("device"), "The device library models load on: cpu, cuda or cuda:N");
}

}  // namespace imagescore::python
