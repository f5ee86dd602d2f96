// Data-spec parsing and the sources shared by the readers.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "data_detail.hpp"
#include "imagescore/data/fit.hpp"
#include "imagescore/core/error.hpp"

namespace imagescore {
namespace detail {

MemorySource::MemorySource(std::string spec, ImageShape shape, std::vector<std::string> class_names,
                           std::vector<File> files, std::vector<std::uint8_t> pixels, std::vector<int> labels)
    : spec_(std::move(spec)),
      shape_(shape),
      class_names_(std::move(class_names)),
      files_(std::move(files)),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)) {}

std::string MemorySource::path(std::size_t i) const {
  if (i >= size()) fail(spec_, "image " + std::to_string(i) + " out of range");
  auto file = std::upper_bound(files_.begin(), files_.end(), i,
                               [](std::size_t index, const File& f) { return index < f.first_image; }) -
              1;
  return file->path + "#" + std::to_string(i - file->first_image);
}

void MemorySource::read(std::size_t i, std::uint8_t* out) const {
  if (i >= size()) fail(spec_, "image " + std::to_string(i) + " out of range");
  std::memcpy(out, pixels_.data() + i * shape_.pixels(), shape_.pixels());
}

std::vector<std::string> numbered_class_names(int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back(std::to_string(i));
  return names;
}

}  // namespace detail

namespace {

const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// A view of chosen images of another source, which must outlive it.
class SubsetSource : public ImageSource {
 public:
  SubsetSource(const ImageSource& base, std::vector<std::size_t> indices, std::unique_ptr<ImageSource> owned = nullptr)
      : owned_(std::move(owned)), base_(base), indices_(std::move(indices)) {
    for (std::size_t index : indices_)
      if (index >= base_.size())
        fail(base_.spec(), "subset index " + std::to_string(index) + " out of range for " +
                               std::to_string(base_.size()) + " images");
  }
  std::size_t size() const override { return indices_.size(); }
  ImageShape shape() const override { return base_.shape(); }
  const std::vector<std::string>& class_names() const override { return base_.class_names(); }
  int label(std::size_t i) const override { return base_.label(indices_.at(i)); }
  std::string path(std::size_t i) const override { return base_.path(indices_.at(i)); }
  std::size_t id(std::size_t i) const override { return base_.id(indices_.at(i)); }
  void read(std::size_t i, std::uint8_t* out) const override { base_.read(indices_.at(i), out); }
  std::string spec() const override { return base_.spec(); }

 private:
  std::unique_ptr<ImageSource> owned_;  // set when the subset owns its base
  const ImageSource& base_;
  std::vector<std::size_t> indices_;
};

class RelabelledSource : public SubsetSource {
 public:
  RelabelledSource(const ImageSource& base, std::vector<std::size_t> indices, std::vector<int> labels)
      : SubsetSource(base, std::move(indices)), labels_(std::move(labels)) {
    if (labels_.size() != size()) fail(base.spec(), "relabel: one label per image needed");
    for (int label : labels_)
      if (label < 0 || std::size_t(label) >= base.class_names().size())
        fail(base.spec(), "relabel: label " + std::to_string(label) + " out of range");
  }
  int label(std::size_t i) const override { return labels_.at(i); }

 private:
  std::vector<int> labels_;
};

class ClassMappedSource : public ImageSource {
 public:
  ClassMappedSource(const ImageSource& base, std::vector<std::string> class_names, std::vector<int> label_map)
      : base_(base), class_names_(std::move(class_names)), label_map_(std::move(label_map)) {
    if (label_map_.size() != base.class_names().size()) fail(base.spec(), "map_classes: one class id per class needed");
    for (int label : label_map_)
      if (label < 0 || std::size_t(label) >= class_names_.size())
        fail(base.spec(), "map_classes: class id " + std::to_string(label) + " out of range");
  }
  std::size_t size() const override { return base_.size(); }
  ImageShape shape() const override { return base_.shape(); }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  int label(std::size_t i) const override {
    const int label = base_.label(i);
    return label == kNoLabel ? kNoLabel : label_map_.at(std::size_t(label));
  }
  std::string path(std::size_t i) const override { return base_.path(i); }
  std::size_t id(std::size_t i) const override { return base_.id(i); }
  void read(std::size_t i, std::uint8_t* out) const override { base_.read(i, out); }
  std::string spec() const override { return base_.spec(); }

 private:
  const ImageSource& base_;
  std::vector<std::string> class_names_;
  std::vector<int> label_map_;
};

}  // namespace

std::unique_ptr<ImageSource> map_classes(const ImageSource& base, std::vector<std::string> class_names,
                                         std::vector<int> label_map) {
  return std::make_unique<ClassMappedSource>(base, std::move(class_names), std::move(label_map));
}

std::vector<int> ImageSource::labels() const {
  std::vector<int> result(size());
  for (std::size_t i = 0; i < result.size(); ++i) result[i] = label(i);
  return result;
}

SplitName parse_split_name(const std::string& name) {
  if (name == "train") return SplitName::Train;
  if (name == "test") return SplitName::Test;
  throw Error("split '" + name + "': expected train or test");
}

namespace {

std::string split_label(SplitName split) { return split == SplitName::Train ? "train" : "test"; }

// The kinds, guarded: registrars of other layers run while the library loads, and
// commands may open data from several threads.
struct KindRegistry {
  std::mutex mutex;
  std::vector<DataKind> kinds;
  KindRegistry() {
    auto by_split = [](auto open) {
      return [open](const std::string& location, const std::string& split, const std::string& spec) {
        return open(location, parse_split_name(split), spec);
      };
    };
    kinds = {
        {"idx", "idx:DIR", "folder", by_split([](const std::string& dir, SplitName split, const std::string& spec) {
           return detail::open_idx(dir, split, detail::numbered_class_names(10), spec);
         })},
        {"cifar10", "cifar10:DIR", "folder", by_split(detail::open_cifar10)},
        {"cifar100", "cifar100:DIR", "folder", by_split(detail::open_cifar100)},
        {"folder", "folder:DIR[@HxW[,MODE]]", "folder",
         by_split([](const std::string& location, SplitName split, const std::string& spec) {
           auto [dir, fit] = split_input_fit(location, spec, FitMode::Crop);
           return detail::open_image_folder(dir, split, spec, fit);
         })},
        {"csv", "csv:FILE[@HxW[,MODE]]", "file", [](const std::string& location, const std::string&, const std::string& spec) {
           auto [file, fit] = split_input_fit(location, spec, FitMode::Crop);
           return detail::open_csv_manifest(file, spec, fit);
         }},
    };
  }
};

KindRegistry& registry() {
  static KindRegistry instance;
  return instance;
}

}  // namespace

void register_data_kind(DataKind kind) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& k : r.kinds)
    if (k.name == kind.name) throw Error("data kind '" + kind.name + "' is registered twice");
  r.kinds.push_back(std::move(kind));
}

std::vector<DataKind> data_kinds() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.kinds;
}

std::unique_ptr<ImageSource> open_data(const std::string& spec, SplitName split) {
  return open_data(spec, split_label(split));
}

std::unique_ptr<ImageSource> open_data(const std::string& spec, const std::string& split_name) {
  if (spec == "fashion-mnist") {
    std::error_code ec;
    if (!std::filesystem::is_directory(kFashionMnistDir, ec))
      throw Error("data spec 'fashion-mnist': " + std::string(kFashionMnistDir) +
                  " not found (install Debian's dataset-fashion-mnist)");
    return detail::open_idx(kFashionMnistDir, parse_split_name(split_name),
                            {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot"},
                            spec);
  }
  const std::size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string location = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const auto kinds = data_kinds();
  auto kind = std::find_if(kinds.begin(), kinds.end(), [&](const DataKind& k) { return k.name == name; });
  if (kind == kinds.end()) {
    std::string known = "fashion-mnist";
    for (const auto& k : kinds) known += ", " + k.syntax;
    throw Error("data spec '" + spec + "': unknown kind '" + name + "' (expected " + known + ")");
  }
  if (location.empty())
    throw Error("data spec '" + spec + "': missing " + kind->location);
  return kind->open(location, split_name, spec);
}

std::unique_ptr<ImageSource> subset(const ImageSource& base, std::vector<std::size_t> indices) {
  return std::make_unique<SubsetSource>(base, std::move(indices));
}

std::unique_ptr<ImageSource> relabel(const ImageSource& base, std::vector<std::size_t> indices, std::vector<int> labels) {
  return std::make_unique<RelabelledSource>(base, std::move(indices), std::move(labels));
}

std::unique_ptr<ImageSource> subset(std::unique_ptr<ImageSource> base, std::vector<std::size_t> indices) {
  const ImageSource& ref = *base;
  return std::make_unique<SubsetSource>(ref, std::move(indices), std::move(base));
}

}  // namespace imagescore
