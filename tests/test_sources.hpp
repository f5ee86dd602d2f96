// In-memory image sources and a fake model for tests that need exact control.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "imagescore/data/data.hpp"
#include "imagescore/data/image_codec.hpp"
#include "imagescore/models/model.hpp"
#include "test_util.hpp"

namespace imagescore::testing {

// Images given as bytes, with labels (or none).
class MemorySource : public ImageSource {
 public:
  MemorySource(ImageShape shape, std::vector<std::string> classes) : shape_(shape), classes_(std::move(classes)) {}
  void add(std::vector<std::uint8_t> pixels, int label) {
    images_.push_back(std::move(pixels));
    labels_.push_back(label);
  }
  std::size_t size() const override { return images_.size(); }
  ImageShape shape() const override { return shape_; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  int label(std::size_t i) const override { return labels_.at(i); }
  std::string path(std::size_t i) const override { return "memory#" + std::to_string(i); }
  void read(std::size_t i, std::uint8_t* out) const override { std::memcpy(out, images_.at(i).data(), shape_.pixels()); }
  std::string spec() const override { return "memory"; }

 private:
  ImageShape shape_;
  std::vector<std::string> classes_;
  std::vector<std::vector<std::uint8_t>> images_;
  std::vector<int> labels_;
};

// The images of `source` under its class names in reverse order (label l becomes k-1-l).
inline std::unique_ptr<MemorySource> with_classes_reversed(const ImageSource& source) {
  auto names = source.class_names();
  std::reverse(names.begin(), names.end());
  auto reversed = std::make_unique<MemorySource>(source.shape(), names);
  const int k = int(names.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    std::vector<std::uint8_t> pixels(source.shape().pixels());
    source.read(i, pixels.data());
    reversed->add(std::move(pixels), k - 1 - source.label(i));
  }
  return reversed;
}

// A separable set: class c has a bright 3x3 patch at a class-specific place, plus noise.
inline std::unique_ptr<MemorySource> separable_source(int classes, int per_class, ImageShape shape, unsigned seed) {
  std::vector<std::string> names;
  for (int c = 0; c < classes; ++c) names.push_back("class" + std::to_string(c));
  auto source = std::make_unique<MemorySource>(shape, names);
  std::uint64_t state = seed * 2654435761u + 1;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return unsigned(state >> 33);
  };
  for (int i = 0; i < per_class; ++i)
    for (int c = 0; c < classes; ++c) {
      std::vector<std::uint8_t> px(shape.pixels());
      for (auto& p : px) p = std::uint8_t(next() % 60);
      int cells_x = shape.width / 3;
      int y0 = (c / cells_x) * 3 % (shape.height - 2), x0 = (c % cells_x) * 3;
      for (int ch = 0; ch < shape.channels; ++ch)
        for (int y = y0; y < y0 + 3; ++y)
          for (int x = x0; x < x0 + 3; ++x) px[std::size_t(ch * shape.height * shape.width + y * shape.width + x)] = 255;
      source->add(std::move(px), c);
    }
  return source;
}

// A model whose taps are the batch's pixels themselves (tap "x": all pixels; tap "neg":
// their negation, never positive), and whose logits are the first pixels of each image.
// It makes hand-computed profiles and scores exact.
class PixelModel : public Model {
 public:
  PixelModel(ImageShape shape, std::vector<std::string> classes) {
    meta_.arch = "pixel";
    meta_.input = shape;
    meta_.class_names = std::move(classes);
    meta_.normalization = {std::vector<float>(std::size_t(shape.channels), 0.f), std::vector<float>(std::size_t(shape.channels), 1.f)};
    meta_.weights_hash = "pixel";
    auto n = std::int64_t(shape.pixels());
    taps_ = {{"x", {n}}, {"neg", {n}}, {"output", {std::int64_t(meta_.class_names.size())}}};
  }
  const ModelMeta& meta() const override { return meta_; }
  const std::vector<TapInfo>& taps() const override { return taps_; }
  ForwardOutput forward(const Batch& batch, const std::vector<std::size_t>& tap_ids) override {
    ForwardOutput out;
    out.batch = batch.size();
    out.num_classes = meta_.class_names.size();
    const std::size_t n = batch.shape.pixels();
    auto store = std::make_shared<std::vector<std::vector<float>>>();
    for (std::size_t i = 0; i < out.batch; ++i)
      for (std::size_t c = 0; c < out.num_classes; ++c) out.logits.push_back(batch.pixels[i * n + c % n]);
    for (auto id : tap_ids) {
      std::vector<float> values(batch.pixels);
      if (id == 1)
        for (auto& v : values) v = -v;
      if (id == 2) values.assign(out.logits.begin(), out.logits.end());  // not a softmax: enough for tests
      store->push_back(std::move(values));
      out.taps.push_back(TapView::contiguous(store->back().data(), out.batch, taps_[id].numel()));
    }
    out.storage = store;
    return out;
  }

 private:
  ModelMeta meta_;
  std::vector<TapInfo> taps_;
};

// A batch made directly from activation values (for PixelModel).
inline Batch batch_of(ImageShape shape, const std::vector<std::vector<float>>& images, const std::vector<std::int64_t>& labels) {
  Batch b;
  b.shape = shape;
  for (std::size_t i = 0; i < images.size(); ++i) {
    b.pixels.insert(b.pixels.end(), images[i].begin(), images[i].end());
    b.labels.push_back(labels[i]);
    b.indices.push_back(i);
  }
  return b;
}

// Names that must reach HTML and JSON as text: an image file and a class (folder) name.
const std::string kNastyFile = "<img src=x onerror=alert(1)>.png";
const std::string kNastyClass = "<b>bold & co";  // no slash: it names a folder

// A folder data set in `folder` (its test split): classes kNastyClass and "plain", three
// 28x28 gray images each (image i of class c has the value 40 i + 100 c), image `nasty` of
// the first class named kNastyFile, the others i.png. Returns its spec.
inline std::string write_nasty_folder(const std::string& folder, int nasty) {
  const ImageShape shape{1, 28, 28};
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 3; ++i) {
      std::vector<std::uint8_t> chw(shape.pixels(), std::uint8_t(40 * i + 100 * c));
      const std::string name = c == 0 && i == nasty ? kNastyFile : std::to_string(i) + ".png";
      write_bytes(folder + "/test/" + (c == 0 ? kNastyClass : std::string("plain")) + "/" + name,
                  encode_png(shape, chw.data()));
    }
  return "folder:" + folder;
}

}  // namespace imagescore::testing
