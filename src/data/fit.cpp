// Fitting images of any size to a backbone's fixed input: letterbox or resize.
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "imagescore/data/fit.hpp"
#include "imagescore/data/image_codec.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore {
namespace {

// Same bound as the decoder's per-side limit: refuses sizes that would make every batch
// buffer enormous.
constexpr int kMaxInputSide = 16384;

bool parse_side(const std::string& text, int& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && value >= 1 && value <= kMaxInputSide;
}

// Resizes one 8-bit plane into a region of a larger plane (row stride out_stride).
void resize_plane(const std::uint8_t* in, int in_w, int in_h, std::uint8_t* out, int out_w, int out_h, int out_stride) {
  if (in_w == out_w && in_h == out_h) {
    for (int y = 0; y < out_h; ++y) std::memcpy(out + std::size_t(y) * out_stride, in + std::size_t(y) * in_w, std::size_t(in_w));
    return;
  }
  if (!stbir_resize_uint8(in, in_w, in_h, 0, out, out_w, out_h, out_stride, 1))
    throw Error("stb_image_resize: out of memory resizing " + std::to_string(in_w) + "x" + std::to_string(in_h));
}

class FittedImageSource : public ImageSource {
 public:
  FittedImageSource(std::string spec, std::vector<std::string> paths, InputFit fit)
      : spec_(std::move(spec)), paths_(std::move(paths)), fit_(fit) {}
  std::size_t size() const override { return paths_.size(); }
  ImageShape shape() const override { return {3, fit_.height, fit_.width}; }
  const std::vector<std::string>& class_names() const override { return no_classes_; }
  int label(std::size_t) const override { return kNoLabel; }
  std::string path(std::size_t i) const override { return paths_.at(i); }
  void read(std::size_t i, std::uint8_t* out) const override {
    ImageShape natural;
    const std::vector<std::uint8_t> pixels = decode_rgb(paths_.at(i), natural);
    fit_image(pixels.data(), natural, fit_, out);
  }
  std::string spec() const override { return spec_; }

 private:
  std::string spec_;
  std::vector<std::string> paths_;
  InputFit fit_;
  std::vector<std::string> no_classes_;
};

}  // namespace

InputFit parse_input_fit(const std::string& text) {
  InputFit fit;
  std::string size = text;
  const std::size_t comma = text.find(',');
  if (comma != std::string::npos) {
    const std::string mode = text.substr(comma + 1);
    if (mode != "resize" && mode != "letterbox")
      throw Error("input size '" + text + "': unknown mode '" + mode + "' (expected letterbox or resize)");
    fit.resize = mode == "resize";
    size = text.substr(0, comma);
  }
  const std::size_t x = size.find('x');
  if (x == std::string::npos || !parse_side(size.substr(0, x), fit.height) || !parse_side(size.substr(x + 1), fit.width))
    throw Error("input size '" + text + "': expected HxW or HxW,resize with sides 1 to " + std::to_string(kMaxInputSide) +
                " (for example 224x224)");
  return fit;
}

FitGeometry fit_geometry(int image_width, int image_height, const InputFit& fit) {
  if (fit.resize) return {0, 0, fit.width, fit.height};
  const double scale = std::min(double(fit.width) / image_width, double(fit.height) / image_height);
  FitGeometry g;
  g.content_width = std::clamp(int(std::lround(image_width * scale)), 1, fit.width);
  g.content_height = std::clamp(int(std::lround(image_height * scale)), 1, fit.height);
  g.offset_x = (fit.width - g.content_width) / 2;
  g.offset_y = (fit.height - g.content_height) / 2;
  return g;
}

void fit_image(const std::uint8_t* chw, const ImageShape& shape, const InputFit& fit, std::uint8_t* out) {
  const FitGeometry g = fit_geometry(shape.width, shape.height, fit);
  const std::size_t in_plane = std::size_t(shape.height) * shape.width;
  const std::size_t out_plane = std::size_t(fit.height) * fit.width;
  std::memset(out, 0, out_plane * std::size_t(shape.channels));  // the letterbox padding is black
  for (int c = 0; c < shape.channels; ++c)
    resize_plane(chw + c * in_plane, shape.width, shape.height,
                 out + c * out_plane + std::size_t(g.offset_y) * fit.width + std::size_t(g.offset_x), g.content_width,
                 g.content_height, fit.width);
}

std::pair<std::string, InputFit> split_input_fit(const std::string& location, const std::string& spec) {
  const std::size_t at = location.rfind('@');
  if (at == std::string::npos || location.find('/', at) != std::string::npos) return {location, InputFit{}};
  try {
    return {location.substr(0, at), parse_input_fit(location.substr(at + 1))};
  } catch (const Error& e) {
    throw Error("data spec '" + spec + "': " + e.what());
  }
}

std::unique_ptr<ImageSource> open_fitted_images(std::string spec, std::vector<std::string> paths, InputFit fit) {
  return std::make_unique<FittedImageSource>(std::move(spec), std::move(paths), fit);
}

std::vector<std::uint8_t> resize_image(const std::vector<std::uint8_t>& chw, const ImageShape& shape, int width, int height) {
  std::vector<std::uint8_t> out(std::size_t(shape.channels) * height * width);
  const std::size_t in_plane = std::size_t(shape.height) * shape.width, out_plane = std::size_t(height) * width;
  for (int c = 0; c < shape.channels; ++c)
    resize_plane(chw.data() + c * in_plane, shape.width, shape.height, out.data() + c * out_plane, width, height, width);
  return out;
}

}  // namespace imagescore
