// Fitting images of any size to a model's fixed input: letterboxing or resizing, and
// sources of image files fitted so.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "imagescore/data/data.hpp"

namespace imagescore {

// The model's input size and how images of any size are fitted to it:
//   letterbox  aspect ratio kept, scaled to fit inside, centred, the rest black;
//   stretch    scaled to exactly height x width, aspect ratio lost ("resize" is the older
//              name of this mode, kept for voc: and coco: specs);
//   crop       the shorter side scaled to `crop_resize` (default max(height, width)), the
//              other in proportion (truncated, as torchvision's Resize(S)), then the centre
//              height x width cut out (as torchvision's CenterCrop, offsets rounded half to
//              even like Python's round).
enum class FitMode { Letterbox, Stretch, Crop };
struct InputFit {
  int height = 224;
  int width = 224;
  FitMode mode = FitMode::Letterbox;
  int crop_resize = 0;  // crop: the shorter side's length before cropping; 0: max(height, width)
};
std::string to_string(const InputFit& fit);  // "HxW,mode" as parsed

// Parses "HxW" or "HxW,MODE" with MODE letterbox, stretch, resize (= stretch), crop or
// crop=S (height first, like `model info` prints the input). Without a mode: `mode`.
InputFit parse_input_fit(const std::string& text, FitMode mode = FitMode::Letterbox);

// Where an image of image_width x image_height lands in the input: the content is
// content_width x content_height pixels with its top-left corner at (offset_x, offset_y).
// Letterbox: s = min(W / w, H / h), content = round(w * s) x round(h * s) (at least 1,
// at most W x H), offset = floor((W - content) / 2) on each axis. Crop: content is the
// resized image, larger than the input, and the offsets are negative (minus the crop's
// corner). Fails if a crop is larger than the resized image.
struct FitGeometry {
  int offset_x = 0, offset_y = 0;
  int content_width = 0, content_height = 0;
};
FitGeometry fit_geometry(int image_width, int image_height, const InputFit& fit);

// Fits an 8-bit CHW image into `out` (shape.channels x fit.height x fit.width, CHW); an
// image already of the content size is copied. Letterbox and stretch use stb_image_resize's
// default filters (Mitchell when shrinking, Catmull-Rom when enlarging); crop reproduces
// Pillow's antialiased bilinear resize, the one torchvision's Resize applies to PIL images.
void fit_image(const std::uint8_t* chw, const ImageShape& shape, const InputFit& fit, std::uint8_t* out);

// Splits "PATH@HxW[,MODE]" into PATH and the fit, if any (an '@' followed by a '/'
// belongs to the path); `mode` is the mode when none is given.
std::pair<std::string, std::optional<InputFit>> split_input_fit(const std::string& location, const std::string& spec,
                                                                FitMode mode);

// Decodes image file `path` and fits it into `out` (channels x fit.height x fit.width): a
// large JPEG is decoded at a reduced scale first (decode_reduced).
void read_fitted(const std::string& path, int channels, const InputFit& fit, std::uint8_t* out);

// Images read from files at their own size and fitted to one input size (3 channels).
std::unique_ptr<ImageSource> open_fitted_images(std::string spec, std::vector<std::string> paths, InputFit fit);

// Resizes a CHW image to width x height (stb_image_resize, default filters).
std::vector<std::uint8_t> resize_image(const std::vector<std::uint8_t>& chw, const ImageShape& shape, int width, int height);

}  // namespace imagescore
