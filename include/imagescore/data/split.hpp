// A stratified, seeded split of a labelled set into a training part (labels used) and an
// additional part (labels hidden), saved as JSON so that every arm of an experiment uses
// the same one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace imagescore {

class ImageSource;

struct DataSplit {
  std::string data_spec;           // where the images come from
  std::uint64_t seed = 0;
  double training_fraction = 0.0;  // share of each class kept in the training part
  std::size_t total = 0;           // images in the source
  std::uint64_t labels_hash = 0;   // identifies the labels the split was made from
  std::vector<std::size_t> training;
  std::vector<std::size_t> additional;
};

// Per class, keeps round(fraction * class size) images (at least one when the class is
// non-empty and fraction > 0) in the training part, chosen by a seeded shuffle. Both
// parts are sorted by index.
DataSplit make_split(const ImageSource& source, double training_fraction, std::uint64_t seed);

void save_split(const DataSplit& split, const std::string& path);
DataSplit load_split(const std::string& path);

// Fails unless `split` was made from a source with these labels.
void check_split_matches(const DataSplit& split, const ImageSource& source, const std::string& split_path);

std::uint64_t hash_labels(const ImageSource& source);

}  // namespace imagescore

namespace imagescore {

// The images a command works on: `spec` opened at `split_name`, or, with a split file,
// the training split of `spec` restricted to `part` ("training" or "additional").
// The additional part keeps its labels in the source (for evaluation only); commands
// that must not see them drop them themselves.
std::unique_ptr<ImageSource> open_data_part(const std::string& spec, const std::string& split_name,
                                            const std::string& split_file, const std::string& part);

}  // namespace imagescore
