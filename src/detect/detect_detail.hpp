// Internals of the detection module shared between its source files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "imagescore/data/data.hpp"
#include "imagescore/detect/detect.hpp"

namespace imagescore::detail {

// Splits "PATH@HxW[,resize]" into PATH and the fit (224x224, letter-boxed, without @).
// An '@' followed by a '/' belongs to the path.
std::pair<std::string, InputFit> split_input_fit(const std::string& location, const std::string& spec);

// Images read from files at their own size and fitted to one input size (3 channels).
std::unique_ptr<ImageSource> fitted_image_source(std::string spec, std::vector<std::string> paths, InputFit fit);

// Decodes a PNG or JPEG file at its own size as 3-channel CHW; `shape` receives its size.
std::vector<std::uint8_t> decode_rgb(const std::string& path, ImageShape& shape);

// Resizes a CHW image to width x height (stb_image_resize, default filters).
std::vector<std::uint8_t> resize_image(const std::vector<std::uint8_t>& chw, const ImageShape& shape, int width, int height);

// The last component of a path ("a/b/c.jpg" -> "c.jpg"; also after a backslash).
std::string file_name_of(const std::string& path);

// Clips a box to a width x height image; fails at `where` if nothing of it is left.
void clip_to_image(Box& box, int width, int height, const std::string& where);

// Fails at `where` if two images of `images` share a file name.
void check_unique_file_names(const std::vector<ImageBoxes>& images, const std::string& where);

}  // namespace imagescore::detail
