#include "imagescore/data/image_codec.hpp"

#include <png.h>
#include <turbojpeg.h>

#include <cstring>
#include <vector>

#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore {
namespace {

// Refuses headers whose size alone would make every batch buffer enormous.
constexpr int kMaxImageSide = 16384;

enum class Format { Png, Jpeg };

[[noreturn]] void unreadable(const std::string& file, const std::string& reason) {
  fail(file, "unreadable image (" + reason + ")");
}

Format detect_format(const std::string& bytes, const std::string& file) {
  static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_signature, 8) == 0) return Format::Png;
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xff &&
      static_cast<unsigned char>(bytes[1]) == 0xd8 && static_cast<unsigned char>(bytes[2]) == 0xff)
    return Format::Jpeg;
  unreadable(file, bytes.empty() ? "empty file" : "not a PNG or JPEG file");
}

void check_size_limit(const ImageShape& shape, const std::string& file) {
  if (shape.width < 1 || shape.height < 1 || shape.width > kMaxImageSide || shape.height > kMaxImageSide)
    unreadable(file, "size " + std::to_string(shape.width) + "x" + std::to_string(shape.height) +
                         " outside 1.." + std::to_string(kMaxImageSide) + " pixels per side");
}

// Owns a libpng simplified-API reader; png_image_free is safe to call after a failure.
struct PngReader {
  png_image image;
  PngReader(const std::string& bytes, const std::string& file) {
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) unreadable(file, image.message);
  }
  ~PngReader() { png_image_free(&image); }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
  ImageShape shape() const {
    return {(image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1, int(image.height), int(image.width)};
  }
};

// A TurboJPEG decompressor for one image: a handle reused after a failed decode can
// report later images as 0x0, so none is shared.
struct JpegDecompressor {
  tjhandle handle;
  explicit JpegDecompressor(const std::string& file) : handle(tjInitDecompress()) {
    if (!handle) unreadable(file, "cannot initialise the JPEG decoder");
  }
  ~JpegDecompressor() { tjDestroy(handle); }
  JpegDecompressor(const JpegDecompressor&) = delete;
  JpegDecompressor& operator=(const JpegDecompressor&) = delete;
};

ImageShape jpeg_shape(tjhandle handle, const std::string& bytes, const std::string& file) {
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(handle, reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<unsigned long>(bytes.size()), &width, &height, &subsampling,
                          &colorspace) != 0)
    unreadable(file, tjGetErrorStr2(handle));
  return {colorspace == TJCS_GRAY ? 1 : 3, height, width};
}

// Interleaved HWC -> planar CHW.
void to_planar(const std::vector<std::uint8_t>& interleaved, const ImageShape& shape, std::uint8_t* out) {
  const std::size_t plane = std::size_t(shape.height) * shape.width;
  for (std::size_t p = 0; p < plane; ++p)
    for (int c = 0; c < shape.channels; ++c) out[c * plane + p] = interleaved[p * shape.channels + c];
}

// Deflate expands data at most 1032 times and a PNG row holds at least a filter byte and
// one bit per pixel: a file too short for the size its header claims is refused before
// the pixel buffer (up to 805 MB) is allocated.
void check_png_can_hold(const ImageShape& shape, std::size_t file_bytes, const std::string& file) {
  const std::uint64_t min_row_bytes = 1 + (std::uint64_t(shape.width) + 7) / 8;
  if (std::uint64_t(file_bytes) * 1032 < std::uint64_t(shape.height) * min_row_bytes)
    unreadable(file, "size " + std::to_string(shape.width) + "x" + std::to_string(shape.height) + " is more than a " +
                         std::to_string(file_bytes) + "-byte PNG can hold");
}

}  // namespace

ImageShape read_image_header(const std::string& bytes, const std::string& file) {
  const bool png = detect_format(bytes, file) == Format::Png;
  ImageShape shape = png ? PngReader(bytes, file).shape() : jpeg_shape(JpegDecompressor(file).handle, bytes, file);
  check_size_limit(shape, file);
  if (png) check_png_can_hold(shape, bytes.size(), file);
  return shape;
}

namespace {

// Decodes into `out` at `expected` size and channels; a JPEG may be decoded at a reduced
// size when `jpeg_scale` (libjpeg-turbo's scaled IDCT) makes its natural size `expected`.
void decode_into(const std::string& bytes, const std::string& file, const ImageShape& expected, tjscalingfactor jpeg_scale,
                 std::uint8_t* out) {
  auto check_size = [&](const ImageShape& actual, tjscalingfactor scale) {
    const int width = TJSCALED(actual.width, scale), height = TJSCALED(actual.height, scale);
    if (width != expected.width || height != expected.height)
      fail(file, "image is " + std::to_string(actual.width) + "x" + std::to_string(actual.height) +
                     ", expected " + std::to_string(expected.width) + "x" + std::to_string(expected.height));
  };
  std::vector<std::uint8_t> interleaved(expected.pixels());
  if (detect_format(bytes, file) == Format::Png) {
    PngReader png(bytes, file);
    check_size(png.shape(), {1, 1});
    png.image.format = expected.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    // Transparent pixels are composited onto black.
    png_color black{0, 0, 0};
    if (!png_image_finish_read(&png.image, &black, interleaved.data(), 0, nullptr))
      unreadable(file, png.image.message);
  } else {
    JpegDecompressor decompressor(file);
    const tjhandle handle = decompressor.handle;
    check_size(jpeg_shape(handle, bytes, file), jpeg_scale);
    // Warnings (such as a truncated stream) also return -1: a partly decoded image is
    // refused rather than silently used, and decoding stops at the first one instead of
    // filling a huge claimed size. A progressive JPEG with thousands of scans would take
    // minutes: more than 500 scans are refused.
    if (tjDecompress2(handle, reinterpret_cast<const unsigned char*>(bytes.data()),
                      static_cast<unsigned long>(bytes.size()), interleaved.data(), expected.width, 0,
                      expected.height, expected.channels == 1 ? TJPF_GRAY : TJPF_RGB,
                      TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0)
      unreadable(file, tjGetErrorStr2(handle));
  }
  to_planar(interleaved, expected, out);
}

}  // namespace

void decode_image(const std::string& bytes, const std::string& file, const ImageShape& expected,
                  std::uint8_t* out) {
  decode_into(bytes, file, expected, {1, 1}, out);
}

std::vector<std::uint8_t> decode_reduced(const std::string& path, int channels, int min_width, int min_height,
                                         ImageShape& shape) {
  const std::string bytes = read_file(path, std::uint64_t(1) << 30);
  const ImageShape natural = read_image_header(bytes, path);
  tjscalingfactor scale{1, 1};
  if (detect_format(bytes, path) == Format::Jpeg) {
    // The smallest of 1/8, 1/4, 1/2 that keeps both sides at least twice the minimum,
    // so that the resize after it still averages several decoded pixels per output pixel.
    for (tjscalingfactor candidate : {tjscalingfactor{1, 8}, tjscalingfactor{1, 4}, tjscalingfactor{1, 2}}) {
      if (TJSCALED(natural.width, candidate) >= 2 * min_width && TJSCALED(natural.height, candidate) >= 2 * min_height) {
        scale = candidate;
        break;
      }
    }
  }
  shape = {channels, TJSCALED(natural.height, scale), TJSCALED(natural.width, scale)};
  std::vector<std::uint8_t> pixels(shape.pixels());
  decode_into(bytes, path, shape, scale, pixels.data());
  return pixels;
}

std::vector<std::uint8_t> decode_rgb(const std::string& path, ImageShape& shape) {
  const std::string bytes = read_file(path, std::uint64_t(1) << 30);
  shape = read_image_header(bytes, path);
  shape.channels = 3;  // greyscale is replicated into RGB by the decoder
  std::vector<std::uint8_t> pixels(shape.pixels());
  decode_image(bytes, path, shape, pixels.data());
  return pixels;
}

}  // namespace imagescore
