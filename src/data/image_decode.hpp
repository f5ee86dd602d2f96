// PNG and JPEG decoding from memory into 8-bit CHW pixels (internal to the data layer).
#pragma once

#include <cstdint>
#include <string>

#include "imagescore/data/data.hpp"

namespace imagescore::detail {

// Width, height and natural channel count (1 for greyscale, 3 for everything else:
// colour, palette and alpha images are read as RGB) from the header alone.
// `file` names the image in error messages.
ImageShape read_image_header(const std::string& bytes, const std::string& file);

// Decodes a PNG or JPEG into `out` (expected.pixels() bytes, CHW), converting to
// expected.channels (grey is replicated into RGB; colour is converted to grey by the
// decoder). Throws Error if the image is unreadable or not expected.height x width.
void decode_image(const std::string& bytes, const std::string& file, const ImageShape& expected,
                  std::uint8_t* out);

}  // namespace imagescore::detail
