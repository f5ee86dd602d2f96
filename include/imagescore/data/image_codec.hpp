// Image files: PNG and JPEG decoding into 8-bit CHW pixels, PNG encoding of such pixels,
// and data URLs for thumbnails. Every error names the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imagescore/data/data.hpp"

namespace imagescore {

// Width, height and natural channel count (1 for greyscale, 3 for everything else:
// colour, palette and alpha images are read as RGB) from the header alone.
// `file` names the image in error messages.
ImageShape read_image_header(const std::string& bytes, const std::string& file);

// Decodes a PNG or JPEG into `out` (expected.pixels() bytes, CHW), converting to
// expected.channels (grey is replicated into RGB; colour is converted to grey by the
// decoder). Throws Error if the image is unreadable or not expected.height x width.
void decode_image(const std::string& bytes, const std::string& file, const ImageShape& expected,
                  std::uint8_t* out);

// Reads and decodes a PNG or JPEG file with `channels` (1 or 3) channels, CHW. A JPEG whose
// sides are at least 4x min_width x min_height is decoded at 1/2, 1/4 or 1/8 of its size
// (libjpeg-turbo's scaled decoding: the smallest that keeps both sides at least twice the
// minimum); others at their own size. `shape` receives the decoded size.
std::vector<std::uint8_t> decode_reduced(const std::string& path, int channels, int min_width, int min_height,
                                         ImageShape& shape);

// Reads and decodes a PNG or JPEG file at its own size as 3-channel CHW (greyscale is
// replicated); `shape` receives its size.
std::vector<std::uint8_t> decode_rgb(const std::string& path, ImageShape& shape);

// PNG bytes of a 1- or 3-channel image given channel-major (CHW), as the sources give it.
std::string encode_png(const ImageShape& shape, const std::uint8_t* chw);

// Standard base64 (RFC 4648, with padding).
std::string base64(const std::string& bytes);

// An image shrunk by an integer box filter so that no side exceeds max_side (a very thin
// image, which would shrink to nothing, is kept whole); `small` receives its size.
std::vector<std::uint8_t> shrink_image(const ImageShape& shape, const std::vector<std::uint8_t>& chw, int max_side,
                                       ImageShape& small);

// "data:image/png;base64,..." of an image shrunk by shrink_image (a report of thousands
// of thumbnails stays small).
std::string png_data_url(const ImageShape& shape, const std::vector<std::uint8_t>& chw, int max_side);

}  // namespace imagescore
