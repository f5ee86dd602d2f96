// Data: image sources (readers), normalisation, batching and data-spec parsing.
//
// An ImageSource is a random-access, read-only collection of equally sized 8-bit images
// with optional integer labels. Readers for file-per-image formats decode on demand, so a
// pool of any size is streamed; the fixed-size binary formats (IDX, CIFAR) are held in
// memory as stored (uint8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace imagescore {

struct ImageShape {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::size_t pixels() const { return std::size_t(channels) * height * width; }
  bool operator==(const ImageShape& o) const {
    return channels == o.channels && height == o.height && width == o.width;
  }
  bool operator!=(const ImageShape& o) const { return !(*this == o); }
};

constexpr int kNoLabel = -1;

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual std::size_t size() const = 0;
  virtual ImageShape shape() const = 0;
  // Class names indexed by label id; empty when the source is unlabelled.
  virtual const std::vector<std::string>& class_names() const = 0;
  // Label of image i, or kNoLabel.
  virtual int label(std::size_t i) const = 0;
  // Where image i comes from: its file path, or "<file>#<index>" for binary formats.
  virtual std::string path(std::size_t i) const = 0;
  // Image i's position in the data set it was opened from (a subset keeps the
  // original positions): the `id` column of scores and selections.
  virtual std::size_t id(std::size_t i) const { return i; }
  // Decodes image i into `out` (shape().pixels() bytes, channel-major CHW). Thread-safe.
  // Throws Error naming the file on an unreadable image or one of the wrong size.
  virtual void read(std::size_t i, std::uint8_t* out) const = 0;
  // The data-spec this source was opened from (recorded in outputs).
  virtual std::string spec() const = 0;

  bool labelled() const { return !class_names().empty(); }
  std::vector<int> labels() const;
};

enum class SplitName { Train, Test };
SplitName parse_split_name(const std::string& name);

// Opens a data-spec:
//   fashion-mnist          Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
//   idx:DIR                {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in DIR
//   cifar10:DIR            data_batch_{1..5}.bin / test_batch.bin
//   cifar100:DIR           train.bin / test.bin (fine labels)
//   folder:DIR             DIR/<split>/<class>/*.png|jpg if DIR/<split> exists, else
//                          DIR/<class>/*; images directly in DIR form an unlabelled pool
//   csv:FILE               lines "path[,label]" (paths relative to the file's folder)
// and the kinds other layers register (data_kinds()): detection's voc: and coco:.
// `split` selects the training or test part where the format has one.
std::unique_ptr<ImageSource> open_data(const std::string& spec, SplitName split);
// The same with the split by name: train or test, or where a kind has other parts (a VOC
// folder's lists in ImageSets/Main, such as val), any of those.
std::unique_ptr<ImageSource> open_data(const std::string& spec, const std::string& split_name);

// A kind of data spec, "name:location": `open` opens the part `split` of `location`
// (`spec` is the whole spec, for messages and ImageSource::spec()).
struct DataKind {
  std::string name;    // what comes before the colon
  std::string syntax;  // for messages, such as "voc:DIR[@HxW[,resize]]"
  std::string location;  // what the location names: "folder" or "file"
  std::function<std::unique_ptr<ImageSource>(const std::string& location, const std::string& split,
                                             const std::string& spec)>
      open;
};
// Adds a kind; fails if its name is taken. The data layer's own kinds are there from the
// start; the detection layer registers voc and coco when the library loads.
void register_data_kind(DataKind kind);
// Every kind, in registration order.
std::vector<DataKind> data_kinds();

// A view of a subset of another source (indices into it); `base` must outlive it.
std::unique_ptr<ImageSource> subset(const ImageSource& base, std::vector<std::size_t> indices);
// The same, owning its base.
std::unique_ptr<ImageSource> subset(std::unique_ptr<ImageSource> base, std::vector<std::size_t> indices);
// A subset whose labels are given (pseudo-labels for self-training); `base` must be
// labelled (for its class names) and outlive the view.
std::unique_ptr<ImageSource> relabel(const ImageSource& base, std::vector<std::size_t> indices, std::vector<int> labels);

// A view of every image of `base` under other class names: label l becomes label_map[l],
// an id into `class_names`; `base` must outlive the view.
std::unique_ptr<ImageSource> map_classes(const ImageSource& base, std::vector<std::string> class_names,
                                         std::vector<int> label_map);

// Per-channel normalisation applied as (x / 255 - mean) / std.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;
};
// Mean and standard deviation per channel of x / 255 over every image of the source.
Normalization compute_normalization(const ImageSource& source, int threads);
// A normalisation by name for `channels` channels: "none" (mean 0, deviation 1),
// "imagenet" (torchvision's means and deviations; 3 channels), or "M1,M2,.../S1,S2,..."
// (one mean and one positive deviation per channel). OptionError "normalize" otherwise.
Normalization parse_normalization(const std::string& text, int channels);
// The same, and "auto": compute_normalization of `source`.
Normalization normalization_for(const std::string& text, const ImageSource& source, int threads);

// "CxHxW" (sides 1 to 16384), as `model info` prints an input. OptionError "input" otherwise.
ImageShape parse_image_shape(const std::string& text);

struct Augmentation {
  int crop_padding = 0;       // random crop after zero-padding by this many pixels
  bool horizontal_flip = false;
  bool any() const { return crop_padding > 0 || horizontal_flip; }
};

// The crop and flip of one image under an augmentation.
struct AugmentationDraw {
  int shift_y = 0, shift_x = 0;  // the crop's offset in the zero-padded image
  bool flip = false;
};
// Draws them from `seed` (the loader seeds each image by seed, epoch and its position).
AugmentationDraw draw_augmentation(const Augmentation& augmentation, std::uint64_t seed);
// Crops (from the image padded with 0, the channel mean after normalisation) and flips a
// normalised CHW image into `out` (test-time augmentation; the loader does the same).
void apply_augmentation(const float* image, float* out, const ImageShape& shape, const AugmentationDraw& draw);

// One batch of normalised images (NCHW float) with their labels and source indices.
struct Batch {
  ImageShape shape;
  std::vector<float> pixels;
  std::vector<std::int64_t> labels;  // kNoLabel where unknown
  std::vector<std::size_t> indices;  // positions in the source
  std::size_t size() const { return indices.size(); }
};

struct LoaderOptions {
  std::size_t batch_size = 128;
  bool shuffle = false;
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;  // mixed into the shuffle and augmentation seeds
  Augmentation augmentation;
  int threads = 0;          // decoding threads; <= 0: all hardware threads
};

// Streams batches in order (or in a seeded shuffled order). Decoding runs on a pool of
// threads one batch ahead of the consumer; the content of every batch depends only on
// the options, never on the thread count.
class BatchLoader {
 public:
  BatchLoader(const ImageSource& source, Normalization norm, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Fills `batch` with the next batch; false when done.
  bool next(Batch& batch);
  std::size_t num_batches() const;
  std::size_t num_images() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imagescore
