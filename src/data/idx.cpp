// IDX files (MNIST, Fashion-MNIST): a big-endian header followed by uint8 images or labels.
#include <algorithm>
#include <filesystem>
#include <functional>

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

// What an IDX header promises: bytes per item, and the promise in words for messages.
struct IdxClaim {
  std::uint64_t item_bytes;
  std::string what;  // "3 images of 2x3"
};

// Reads an IDX file: its header (length and magic number), then exactly the size that
// the header promises (the count at offset 4 times `claim`'s item size) and not a byte
// more, so that a small gzip file inflating to gigabytes stops there. Counts are below
// 2^32 and items at most kMaxSide^2 bytes, so the size cannot overflow.
std::string read_idx(const std::string& path, std::uint32_t magic, std::size_t header_bytes, const char* kind,
                     const std::function<IdxClaim(const std::string& header, std::uint32_t count)>& claim) {
  bool more = false;
  const std::string header = read_file_prefix(path, header_bytes, more);
  if (header.size() < header_bytes)
    fail(path, "truncated: " + std::to_string(header.size()) + " bytes, shorter than the " +
                   std::to_string(header_bytes) + "-byte IDX header");
  std::uint32_t actual = read_be32(header, 0);
  if (actual != magic)
    fail(path, "wrong magic number " + hex32(actual) + ", expected " + hex32(magic) + " (IDX " + kind + ")");
  const std::uint32_t count = read_be32(header, 4);
  const IdxClaim promise = claim(header, count);
  const std::uint64_t expected = header_bytes + count * promise.item_bytes;
  // The general file limit (read_file's) still bounds a claim of exabytes.
  const std::uint64_t limit = std::min<std::uint64_t>(expected, std::uint64_t(1) << 34);
  std::string data = read_file_prefix(path, limit, more);
  if (more && limit < expected) fail(path, "larger than the limit of " + std::to_string(limit) + " bytes");
  if (more || data.size() != expected) {
    const std::string message = "header says " + promise.what + " (" + std::to_string(expected) +
                                " bytes) but file has " + (more ? "more than " : "") + std::to_string(data.size()) + " bytes";
    fail(path, more ? message + " (extra data at the end)" : "truncated: " + message);
  }
  return data;
}

}  // namespace

std::unique_ptr<ImageSource> open_idx(const std::string& dir, SplitName split,
                                      std::vector<std::string> class_names, const std::string& spec) {
  const std::string prefix = split == SplitName::Train ? "train" : "t10k";
  const std::string images_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");

  std::string images = read_idx(images_path, kImagesMagic, 16, "images", [&](const std::string& header, std::uint32_t n) {
    const std::uint32_t rows = read_be32(header, 8), cols = read_be32(header, 12);
    const std::string dims = std::to_string(rows) + "x" + std::to_string(cols);
    if (rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide)
      fail(images_path, "image size " + dims + " in the header is not supported");
    return IdxClaim{std::uint64_t(rows) * cols, std::to_string(n) + " images of " + dims};
  });
  const std::uint32_t count = read_be32(images, 4), rows = read_be32(images, 8), cols = read_be32(images, 12);
  if (count == 0) fail(images_path, "contains no images");

  std::string label_bytes = read_idx(labels_path, kLabelsMagic, 8, "labels", [](const std::string&, std::uint32_t n) {
    return IdxClaim{1, std::to_string(n) + " labels"};
  });
  const std::uint32_t label_count = read_be32(label_bytes, 4);
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
