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

// Pillow's antialiased bilinear resampling, 8-bit path (its Resample.c): the triangle
// filter stretched by the scale when shrinking, taps normalised to sum 1 and rounded to
// 22-bit fixed point, each pass rounded to 8 bits, horizontal pass first. torchvision's
// Resize applies exactly this to PIL images, so the crop mode reproduces its pixels.
// (stb_image_resize's triangle filter differs at the borders and trips an assertion in
// Debian's build for some scales.)
constexpr int kPilPrecisionBits = 22;

struct PilTaps {
  std::vector<int> first;  // first input pixel of each output pixel
  std::vector<int> count;
  std::vector<std::int32_t> weights;  // `stride` per output pixel
  int stride = 0;
};

PilTaps pil_bilinear_taps(int in_size, int out_size) {
  const double scale = double(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle's support is 1
  PilTaps taps;
  taps.stride = int(std::ceil(support)) * 2 + 1;
  taps.first.resize(std::size_t(out_size));
  taps.count.resize(std::size_t(out_size));
  taps.weights.assign(std::size_t(out_size) * taps.stride, 0);
  std::vector<double> k(std::size_t(taps.stride));
  for (int out = 0; out < out_size; ++out) {
    const double center = (out + 0.5) * scale;
    const int first = std::max(int(center - support + 0.5), 0);
    const int count = std::min(int(center + support + 0.5), in_size) - first;
    double total = 0;
    for (int i = 0; i < count; ++i) {
      const double x = std::fabs((i + first - center + 0.5) / filter_scale);
      k[std::size_t(i)] = x < 1 ? 1 - x : 0;
      total += k[std::size_t(i)];
    }
    for (int i = 0; i < count; ++i) {
      const double w = total != 0 ? k[std::size_t(i)] / total : 0;
      taps.weights[std::size_t(out) * taps.stride + i] =
          std::int32_t(w < 0 ? -0.5 + w * (1 << kPilPrecisionBits) : 0.5 + w * (1 << kPilPrecisionBits));
    }
    taps.first[std::size_t(out)] = first;
    taps.count[std::size_t(out)] = count;
  }
  return taps;
}

std::uint8_t pil_round(std::int32_t sum) {
  return std::uint8_t(std::clamp(sum >> kPilPrecisionBits, 0, 255));
}

// Resizes planes of in_w x in_h to out_w x out_h; the taps are computed once per image
// size, not per channel.
class PilResizer {
 public:
  PilResizer(int in_w, int in_h, int out_w, int out_h)
      : in_w_(in_w), in_h_(in_h), out_w_(out_w), out_h_(out_h), horizontal_(pil_bilinear_taps(in_w, out_w)),
        vertical_(pil_bilinear_taps(in_h, out_h)) {}

  std::vector<std::uint8_t> resize(const std::uint8_t* in) const {
    std::vector<std::uint8_t> rows;
    const std::uint8_t* source = in;
    if (out_w_ != in_w_) {
      rows.resize(std::size_t(out_w_) * in_h_);
      for (int y = 0; y < in_h_; ++y)
        for (int x = 0; x < out_w_; ++x) {
          const std::uint8_t* src = in + std::size_t(y) * in_w_ + horizontal_.first[std::size_t(x)];
          rows[std::size_t(y) * out_w_ + x] = apply(horizontal_, x, [&](int i) { return src[i]; });
        }
      source = rows.data();
    }
    if (out_h_ == in_h_) return rows;  // the width changed (an image of the target size is not resized)
    std::vector<std::uint8_t> out(std::size_t(out_w_) * out_h_);
    for (int y = 0; y < out_h_; ++y) {
      const std::uint8_t* src = source + std::size_t(vertical_.first[std::size_t(y)]) * out_w_;
      for (int x = 0; x < out_w_; ++x)
        out[std::size_t(y) * out_w_ + x] = apply(vertical_, y, [&](int i) { return src[std::size_t(i) * out_w_ + x]; });
    }
    return out;
  }

 private:
  // One output pixel: its taps over the input pixels pixel(0), pixel(1), ...
  template <typename Pixel>
  static std::uint8_t apply(const PilTaps& taps, int out, const Pixel& pixel) {
    std::int32_t sum = 1 << (kPilPrecisionBits - 1);
    const std::int32_t* w = &taps.weights[std::size_t(out) * taps.stride];
    for (int i = 0; i < taps.count[std::size_t(out)]; ++i) sum += pixel(i) * w[i];
    return pil_round(sum);
  }

  int in_w_, in_h_, out_w_, out_h_;
  PilTaps horizontal_, vertical_;
};

// Crop mode: the shorter side's length before cropping.
int crop_side(const InputFit& fit) { return fit.crop_resize ? fit.crop_resize : std::max(fit.height, fit.width); }

class FittedImageSource : public ImageSource {
 public:
  FittedImageSource(std::string spec, std::vector<std::string> paths, InputFit fit)
      : spec_(std::move(spec)), paths_(std::move(paths)), fit_(fit) {}
  std::size_t size() const override { return paths_.size(); }
  ImageShape shape() const override { return {3, fit_.height, fit_.width}; }
  const std::vector<std::string>& class_names() const override { return no_classes_; }
  int label(std::size_t) const override { return kNoLabel; }
  std::string path(std::size_t i) const override { return paths_.at(i); }
  void read(std::size_t i, std::uint8_t* out) const override { read_fitted(paths_.at(i), 3, fit_, out); }
  std::string spec() const override { return spec_; }

 private:
  std::string spec_;
  std::vector<std::string> paths_;
  InputFit fit_;
  std::vector<std::string> no_classes_;
};

}  // namespace

InputFit parse_input_fit(const std::string& text, FitMode default_mode) {
  InputFit fit;
  fit.mode = default_mode;
  std::string size = text;
  const std::size_t comma = text.find(',');
  if (comma != std::string::npos) {
    const std::string mode = text.substr(comma + 1);
    if (mode == "letterbox") {
      fit.mode = FitMode::Letterbox;
    } else if (mode == "stretch" || mode == "resize") {
      fit.mode = FitMode::Stretch;
    } else if (mode == "crop") {
      fit.mode = FitMode::Crop;
    } else if (mode.rfind("crop=", 0) == 0) {
      fit.mode = FitMode::Crop;
      if (!parse_side(mode.substr(5), fit.crop_resize))
        throw Error("input size '" + text + "': crop=S needs a side S from 1 to " + std::to_string(kMaxInputSide));
    } else {
      throw Error("input size '" + text + "': unknown mode '" + mode + "' (expected letterbox, stretch, crop or crop=S)");
    }
    size = text.substr(0, comma);
  }
  const std::size_t x = size.find('x');
  if (x == std::string::npos || !parse_side(size.substr(0, x), fit.height) || !parse_side(size.substr(x + 1), fit.width))
    throw Error("input size '" + text + "': expected HxW or HxW,MODE with sides 1 to " + std::to_string(kMaxInputSide) +
                " (for example 224x224)");
  if (fit.mode == FitMode::Crop && fit.crop_resize != 0 && fit.crop_resize < std::min(fit.height, fit.width))
    throw Error("input size '" + text + "': the crop " + size + " is larger than the resized image's shorter side " +
                std::to_string(fit.crop_resize));
  return fit;
}

std::string to_string(const InputFit& fit) {
  std::string text = std::to_string(fit.height) + "x" + std::to_string(fit.width) + ",";
  switch (fit.mode) {
    case FitMode::Letterbox: return text + "letterbox";
    case FitMode::Stretch: return text + "stretch";
    case FitMode::Crop: return text + (fit.crop_resize ? "crop=" + std::to_string(fit.crop_resize) : "crop");
  }
  return text;
}

FitGeometry fit_geometry(int image_width, int image_height, const InputFit& fit) {
  if (fit.mode == FitMode::Stretch) return {0, 0, fit.width, fit.height};
  if (fit.mode == FitMode::Crop) {
    // torchvision: Resize(S) scales the shorter side to S and the longer to int(S * long /
    // short); CenterCrop's corner is int(round((side - crop) / 2.0)), Python rounding.
    const int side = crop_side(fit);
    const bool wide = image_width > image_height;
    const int short_side = wide ? image_height : image_width, long_side = wide ? image_width : image_height;
    const int scaled_long = int(double(side) * long_side / short_side);
    FitGeometry g;
    g.content_width = wide ? scaled_long : side;
    g.content_height = wide ? side : scaled_long;
    // A thin strip (16384x1) would be enlarged to billions of pixels before the crop.
    if (scaled_long > kMaxInputSide)
      throw Error("a " + std::to_string(image_width) + "x" + std::to_string(image_height) + " image resized to " +
                  std::to_string(g.content_width) + "x" + std::to_string(g.content_height) + " before cropping has a side over " +
                  std::to_string(kMaxInputSide) + " pixels (too elongated for crop: use letterbox or stretch)");
    if (g.content_width < fit.width || g.content_height < fit.height)
      throw Error("a " + std::to_string(image_width) + "x" + std::to_string(image_height) + " image resized to " +
                  std::to_string(g.content_width) + "x" + std::to_string(g.content_height) + " is smaller than the " +
                  std::to_string(fit.width) + "x" + std::to_string(fit.height) + " crop");
    auto corner = [](int excess) {  // round(excess / 2.0), halves to even
      const int half = excess / 2;
      return excess % 2 == 0 || half % 2 == 0 ? half : half + 1;
    };
    g.offset_x = -corner(g.content_width - fit.width);
    g.offset_y = -corner(g.content_height - fit.height);
    return g;
  }
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
  if (fit.mode == FitMode::Crop) {
    const bool resize = g.content_width != shape.width || g.content_height != shape.height;
    std::optional<PilResizer> resizer;
    if (resize) resizer.emplace(shape.width, shape.height, g.content_width, g.content_height);
    std::vector<std::uint8_t> resized;
    for (int c = 0; c < shape.channels; ++c) {
      const std::uint8_t* plane = chw + c * in_plane;
      if (resize) {
        resized = resizer->resize(plane);
        plane = resized.data();
      }
      for (int y = 0; y < fit.height; ++y)
        std::memcpy(out + c * out_plane + std::size_t(y) * fit.width,
                    plane + std::size_t(y - g.offset_y) * g.content_width - g.offset_x, std::size_t(fit.width));
    }
    return;
  }
  std::memset(out, 0, out_plane * std::size_t(shape.channels));  // the letterbox padding is black
  for (int c = 0; c < shape.channels; ++c)
    resize_plane(chw + c * in_plane, shape.width, shape.height,
                 out + c * out_plane + std::size_t(g.offset_y) * fit.width + std::size_t(g.offset_x), g.content_width,
                 g.content_height, fit.width);
}

std::pair<std::string, std::optional<InputFit>> split_input_fit(const std::string& location, const std::string& spec,
                                                                FitMode mode) {
  const std::size_t at = location.rfind('@');
  if (at == std::string::npos || location.find('/', at) != std::string::npos) return {location, std::nullopt};
  try {
    return {location.substr(0, at), parse_input_fit(location.substr(at + 1), mode)};
  } catch (const Error& e) {
    throw Error("data spec '" + spec + "': " + e.what());
  }
}

void read_fitted(const std::string& path, int channels, const InputFit& fit, std::uint8_t* out) {
  const int side = crop_side(fit);
  ImageShape decoded;
  const std::vector<std::uint8_t> pixels = fit.mode == FitMode::Crop
                                               ? decode_reduced(path, channels, side, side, decoded)
                                               : decode_reduced(path, channels, fit.width, fit.height, decoded);
  try {
    fit_image(pixels.data(), decoded, fit, out);
  } catch (const Error& e) {
    fail(path, e.what());
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
