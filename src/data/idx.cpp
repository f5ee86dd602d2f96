// IDX files (MNIST, Fashion-MNIST): a big-endian header followed by uint8 images or labels.
#include <filesystem>

#include "data_detail.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore::detail {
namespace {

constexpr std::uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr std::uint32_t kMaxSide = 16384;

std::uint32_t read_be32(const std::string& data, std::size_t offset) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(data[offset + i]);
  return value;
}

std::string hex32(std::uint32_t value) {
  static const char digits[] = "0123456789abcdef";
  std::string text = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) text += digits[(value >> shift) & 0xf];
  return text;
}

// The raw file if present, else its gzipped form.
std::string find_idx_file(const std::string& dir, const std::string& name) {
  std::error_code ec;
  for (const char* suffix : {"", ".gz"}) {
    std::string path = (std::filesystem::path(dir) / (name + suffix)).string();
    if (std::filesystem::is_regular_file(path, ec)) return path;
  }
  fail(dir, "has no " + name + " or " + name + ".gz");
}

// Reads a file and checks its header length and magic number.
std::string read_idx(const std::string& path, std::uint32_t magic, std::size_t header_bytes, const char* kind) {
  std::string data = read_file(path);
  if (data.size() < header_bytes)
    fail(path, "truncated: " + std::to_string(data.size()) + " bytes, shorter than the " +
                   std::to_string(header_bytes) + "-byte IDX header");
  std::uint32_t actual = read_be32(data, 0);
  if (actual != magic)
    fail(path, "wrong magic number " + hex32(actual) + ", expected " + hex32(magic) + " (IDX " + kind + ")");
  return data;
}

// Fails unless the file holds exactly header + count * item_bytes bytes; `claim`
// describes the header's promise in the message. Counts are below 2^32 and items at
// most kMaxSide^2 bytes, so the product cannot overflow.
void check_length(const std::string& path, const std::string& data, std::size_t header_bytes, std::uint64_t count,
                  std::uint64_t item_bytes, const std::string& claim) {
  const std::uint64_t expected = header_bytes + count * item_bytes;
  if (expected == data.size()) return;
  const std::string message = "header says " + claim + " (" + std::to_string(expected) + " bytes) but file has " +
                              std::to_string(data.size()) + " bytes";
  fail(path, expected > data.size() ? "truncated: " + message : message + " (extra data at the end)");
}

}  // namespace

std::unique_ptr<ImageSource> open_idx(const std::string& dir, SplitName split,
                                      std::vector<std::string> class_names, const std::string& spec) {
  const std::string prefix = split == SplitName::Train ? "train" : "t10k";
  const std::string images_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");

  std::string images = read_idx(images_path, kImagesMagic, 16, "images");
  const std::uint32_t count = read_be32(images, 4), rows = read_be32(images, 8), cols = read_be32(images, 12);
  const std::string dims = std::to_string(rows) + "x" + std::to_string(cols);
  if (rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide)
    fail(images_path, "image size " + dims + " in the header is not supported");
  check_length(images_path, images, 16, count, std::uint64_t(rows) * cols,
               std::to_string(count) + " images of " + dims);
  if (count == 0) fail(images_path, "contains no images");

  std::string label_bytes = read_idx(labels_path, kLabelsMagic, 8, "labels");
  const std::uint32_t label_count = read_be32(label_bytes, 4);
  check_length(labels_path, label_bytes, 8, label_count, 1, std::to_string(label_count) + " labels");
  if (label_count != count)
    fail(labels_path, "has " + std::to_string(label_count) + " labels but " + images_path + " has " +
                          std::to_string(count) + " images");

  std::vector<int> labels(count);
  for (std::size_t i = 0; i < count; ++i) {
    labels[i] = static_cast<unsigned char>(label_bytes[8 + i]);
    if (labels[i] >= int(class_names.size()))
      fail(labels_path, "label " + std::to_string(labels[i]) + " of image " + std::to_string(i) +
                            " is out of range (" + std::to_string(class_names.size()) + " classes)");
  }
  std::vector<std::uint8_t> pixels(images.begin() + 16, images.end());
  ImageShape shape{1, int(rows), int(cols)};
  return std::make_unique<MemorySource>(spec, shape, std::move(class_names),
                                        std::vector<MemorySource::File>{{images_path, 0}}, std::move(pixels),
                                        std::move(labels));
}

}  // namespace imagescore::detail
