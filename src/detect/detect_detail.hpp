// Internals of the detection module shared between its source files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "imagescore/data/data.hpp"
#include "imagescore/data/fit.hpp"
#include "imagescore/detect/detect.hpp"

namespace imagescore::detail {

// The last component of a path ("a/b/c.jpg" -> "c.jpg"; also after a backslash).
std::string file_name_of(const std::string& path);

// Clips a box to a width x height image; fails at `where` if nothing of it is left.
void clip_to_image(Box& box, int width, int height, const std::string& where);

// Splits "PATH@HxW[,MODE]" of a voc: or coco: spec: letterbox unless a mode is given;
// crop is refused (it would cut boxes off).
std::pair<std::string, InputFit> split_detection_fit(const std::string& location, const std::string& spec);

// Fails at `where` if two images of `images` share a file name.
void check_unique_file_names(const std::vector<ImageBoxes>& images, const std::string& where);

}  // namespace imagescore::detail
