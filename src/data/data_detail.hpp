// Internals of the data layer shared between its source files: the readers behind
// open_data, the in-memory source they build on, and seed mixing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imagescore/data/data.hpp"
#include "imagescore/data/fit.hpp"

namespace imagescore::detail {

// Images held in memory as stored (uint8 CHW), read from one or more binary files.
class MemorySource : public ImageSource {
 public:
  struct File {
    std::string path;
    std::size_t first_image = 0;  // index of the file's first image in the source
  };
  MemorySource(std::string spec, ImageShape shape, std::vector<std::string> class_names,
               std::vector<File> files, std::vector<std::uint8_t> pixels, std::vector<int> labels);
  std::size_t size() const override { return labels_.size(); }
  ImageShape shape() const override { return shape_; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  int label(std::size_t i) const override { return labels_.at(i); }
  std::string path(std::size_t i) const override;  // "<file>#<index within the file>"
  void read(std::size_t i, std::uint8_t* out) const override;
  std::string spec() const override { return spec_; }

 private:
  std::string spec_;
  ImageShape shape_;
  std::vector<std::string> class_names_;
  std::vector<File> files_;
  std::vector<std::uint8_t> pixels_;
  std::vector<int> labels_;
};

// "0", "1", ..., count-1: names for classes known only by number.
std::vector<std::string> numbered_class_names(int count);

// Readers; `spec` is what ImageSource::spec() reports.
std::unique_ptr<ImageSource> open_idx(const std::string& dir, SplitName split,
                                      std::vector<std::string> class_names, const std::string& spec);
std::unique_ptr<ImageSource> open_cifar10(const std::string& dir, SplitName split, const std::string& spec);
std::unique_ptr<ImageSource> open_cifar100(const std::string& dir, SplitName split, const std::string& spec);
// With a fit, images of any size are fitted to it; without, all must have the first's size.
std::unique_ptr<ImageSource> open_image_folder(const std::string& dir, SplitName split, const std::string& spec,
                                               const std::optional<InputFit>& fit);
std::unique_ptr<ImageSource> open_csv_manifest(const std::string& file, const std::string& spec,
                                               const std::optional<InputFit>& fit);

}  // namespace imagescore::detail
