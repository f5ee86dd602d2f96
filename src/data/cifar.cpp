// CIFAR-10 and CIFAR-100 binary versions: fixed-size records of label byte(s) followed by
// a 32x32 image stored as 1024 red, 1024 green and 1024 blue bytes (already CHW).
#include <filesystem>

#include "data_detail.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore::detail {
namespace {

constexpr std::size_t kImageBytes = 3 * 32 * 32;

struct CifarFormat {
  std::size_t label_offset;  // which label byte of the record is used
  std::size_t record_bytes;
};

// Class names, one a line, from an optional file shipped with the data set.
std::vector<std::string> read_class_names(const std::string& path, std::vector<std::string> fallback) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return fallback;
  std::string text = read_file(path);
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    line.erase(line.find_last_not_of(" \t\r") + 1);
    line.erase(0, line.find_first_not_of(" \t"));
    if (!line.empty()) names.push_back(line);
    start = end + 1;
  }
  if (names.size() != fallback.size())
    fail(path, "has " + std::to_string(names.size()) + " class names, expected " + std::to_string(fallback.size()));
  return names;
}

std::unique_ptr<ImageSource> open_cifar(const std::string& dir, const std::vector<std::string>& file_names,
                                        const CifarFormat& format, std::vector<std::string> class_names,
                                        const std::string& spec) {
  std::vector<MemorySource::File> files;
  std::vector<std::uint8_t> pixels;
  std::vector<int> labels;
  for (const std::string& name : file_names) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    const std::string data = read_file(path);
    if (data.empty()) fail(path, "contains no images");
    if (data.size() % format.record_bytes != 0)
      fail(path, "truncated: " + std::to_string(data.size()) + " bytes is not a whole number of " +
                     std::to_string(format.record_bytes) + "-byte records");
    files.push_back({path, labels.size()});
    const std::size_t records = data.size() / format.record_bytes;
    for (std::size_t r = 0; r < records; ++r) {
      const char* record = data.data() + r * format.record_bytes;
      const int label = static_cast<unsigned char>(record[format.label_offset]);
      if (label >= int(class_names.size()))
        fail(path, "label " + std::to_string(label) + " of record " + std::to_string(r) + " is out of range (" +
                       std::to_string(class_names.size()) + " classes)");
      labels.push_back(label);
      const char* image = record + format.record_bytes - kImageBytes;
      pixels.insert(pixels.end(), image, image + kImageBytes);
    }
  }
  return std::make_unique<MemorySource>(spec, ImageShape{3, 32, 32}, std::move(class_names), std::move(files),
                                        std::move(pixels), std::move(labels));
}

}  // namespace

std::unique_ptr<ImageSource> open_cifar10(const std::string& dir, SplitName split, const std::string& spec) {
  std::vector<std::string> files;
  if (split == SplitName::Train) {
    for (int batch = 1; batch <= 5; ++batch) files.push_back("data_batch_" + std::to_string(batch) + ".bin");
  } else {
    files.push_back("test_batch.bin");
  }
  std::vector<std::string> names = read_class_names(
      (std::filesystem::path(dir) / "batches.meta.txt").string(),
      {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"});
  return open_cifar(dir, files, {0, 1 + kImageBytes}, std::move(names), spec);
}

std::unique_ptr<ImageSource> open_cifar100(const std::string& dir, SplitName split, const std::string& spec) {
  // Records hold the coarse label, then the fine label used here.
  std::vector<std::string> names =
      read_class_names((std::filesystem::path(dir) / "fine_label_names.txt").string(), numbered_class_names(100));
  return open_cifar(dir, {split == SplitName::Train ? "train.bin" : "test.bin"}, {1, 2 + kImageBytes},
                    std::move(names), spec);
}

}  // namespace imagescore::detail
