#include "imagescore/data/image_codec.hpp"

#include <png.h>

#include <algorithm>

#include "imagescore/core/error.hpp"

namespace imagescore {

std::string encode_png(const ImageShape& shape, const std::uint8_t* chw) {
  if (shape.channels != 1 && shape.channels != 3) fail("png", "only 1- or 3-channel images can be written");
  // libpng wants interleaved (HWC) rows.
  const std::size_t plane = std::size_t(shape.height) * std::size_t(shape.width);
  std::vector<std::uint8_t> hwc(shape.pixels());
  for (int c = 0; c < shape.channels; ++c)
    for (std::size_t p = 0; p < plane; ++p) hwc[p * std::size_t(shape.channels) + std::size_t(c)] = chw[std::size_t(c) * plane + p];
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = png_uint_32(shape.width);
  image.height = png_uint_32(shape.height);
  image.format = shape.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&image, nullptr, &size, 0, hwc.data(), 0, nullptr)) fail("png", image.message);
  std::string bytes(size, '\0');
  if (!png_image_write_to_memory(&image, bytes.data(), &size, 0, hwc.data(), 0, nullptr)) fail("png", image.message);
  bytes.resize(size);
  return bytes;
}

std::string base64(const std::string& bytes) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t left = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t group = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (left > 1) group |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    if (left > 2) group |= std::uint32_t(std::uint8_t(bytes[i + 2]));
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += left > 1 ? alphabet[(group >> 6) & 63] : '=';
    out += left > 2 ? alphabet[group & 63] : '=';
  }
  return out;
}

std::vector<std::uint8_t> shrink_image(const ImageShape& shape, const std::vector<std::uint8_t>& chw, int max_side,
                                       ImageShape& small) {
  const int factor = std::max(1, (std::max(shape.height, shape.width) + max_side - 1) / max_side);
  // A very thin image is kept whole rather than shrunk to nothing.
  if (factor == 1 || std::min(shape.height, shape.width) < factor) {
    small = shape;
    return chw;
  }
  small = {shape.channels, shape.height / factor, shape.width / factor};
  std::vector<std::uint8_t> shrunk(small.pixels());
  for (int c = 0; c < small.channels; ++c)
    for (int y = 0; y < small.height; ++y)
      for (int x = 0; x < small.width; ++x) {
        unsigned sum = 0;
        for (int dy = 0; dy < factor; ++dy)
          for (int dx = 0; dx < factor; ++dx)
            sum += chw[(std::size_t(c) * std::size_t(shape.height) + std::size_t(y * factor + dy)) * std::size_t(shape.width) +
                       std::size_t(x * factor + dx)];
        shrunk[(std::size_t(c) * std::size_t(small.height) + std::size_t(y)) * std::size_t(small.width) + std::size_t(x)] =
            std::uint8_t(sum / unsigned(factor * factor));
      }
  return shrunk;
}

std::string png_data_url(const ImageShape& shape, const std::vector<std::uint8_t>& chw, int max_side) {
  ImageShape small;
  const auto shrunk = shrink_image(shape, chw, max_side, small);
  return "data:image/png;base64," + base64(encode_png(small, shrunk.data()));
}

}  // namespace imagescore
