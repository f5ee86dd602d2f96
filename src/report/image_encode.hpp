// Thumbnails for the HTML report: 8-bit images to PNG (libpng) to base64 data URLs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imagescore/data/data.hpp"

namespace imagescore::detail {

// PNG bytes of a 1- or 3-channel image given channel-major (CHW), as the sources give it.
std::string encode_png(const ImageShape& shape, const std::uint8_t* chw);

// Standard base64 (RFC 4648, with padding).
std::string base64(const std::string& bytes);

// "data:image/png;base64,..." of an image, shrunk by an integer box filter so that no
// side exceeds max_side (a report of thousands of thumbnails stays small).
std::string png_data_url(const ImageShape& shape, const std::vector<std::uint8_t>& chw, int max_side);

}  // namespace imagescore::detail
