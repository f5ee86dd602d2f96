// Fitting images of any size to a model's fixed input: letterboxing or resizing, and
// sources of image files fitted so.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "imagescore/data/data.hpp"

namespace imagescore {

// The backbone's input size and how images are fitted to it: letter-boxed (the default:
// aspect ratio kept, scaled to fit, centred, the rest black) or resized to fill it.
struct InputFit {
  int height = 224;
  int width = 224;
  bool resize = false;  // true: stretched to height x width, aspect ratio lost
};

// Parses "HxW" or "HxW,resize" (height first, like `model info` prints the input).
InputFit parse_input_fit(const std::string& text);

// Where an image of image_width x image_height lands in the input: the content is
// content_width x content_height pixels with its top-left corner at (offset_x, offset_y).
// Letterbox: s = min(W / w, H / h), content = round(w * s) x round(h * s) (at least 1,
// at most W x H), offset = floor((W - content) / 2) on each axis.
struct FitGeometry {
  int offset_x = 0, offset_y = 0;
  int content_width = 0, content_height = 0;
};
FitGeometry fit_geometry(int image_width, int image_height, const InputFit& fit);

// Fits an 8-bit CHW image into `out` (shape.channels x fit.height x fit.width, CHW) with
// stb_image_resize's default filters; an image already of the content size is copied.
void fit_image(const std::uint8_t* chw, const ImageShape& shape, const InputFit& fit, std::uint8_t* out);

// Splits "PATH@HxW[,resize]" into PATH and the fit (224x224, letter-boxed, without @).
// An '@' followed by a '/' belongs to the path.
std::pair<std::string, InputFit> split_input_fit(const std::string& location, const std::string& spec);

// Images read from files at their own size and fitted to one input size (3 channels).
std::unique_ptr<ImageSource> open_fitted_images(std::string spec, std::vector<std::string> paths, InputFit fit);

// Resizes a CHW image to width x height (stb_image_resize, default filters).
std::vector<std::uint8_t> resize_image(const std::vector<std::uint8_t>& chw, const ImageShape& shape, int width, int height);

}  // namespace imagescore
