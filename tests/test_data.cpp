// Readers, data specs and the batch loader.
#include <png.h>
#include <turbojpeg.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>

#include "imagescore/core/random.hpp"
#include "imagescore/data/data.hpp"
#include "imagescore/data/fit.hpp"
#include "imagescore/data/image_codec.hpp"
#include "test_files.hpp"
#include "test_sources.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::be32;
using testing::encode_jpeg;
using testing::TempDir;
using testing::write_bytes;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// File builders

std::string idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const std::string& pixels) {
  return be32(0x803) + be32(count) + be32(rows) + be32(cols) + pixels;
}

std::string idx_labels(const std::string& labels) { return be32(0x801) + be32(std::uint32_t(labels.size())) + labels; }

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile out = gzopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(gzwrite(out, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  ASSERT_EQ(gzclose(out), Z_OK);
}

// Writes an interleaved (HWC) image as PNG; channels 1, 3 or 4.
void write_png(const std::string& path, int width, int height, int channels, const std::vector<std::uint8_t>& hwc) {
  fs::create_directories(fs::path(path).parent_path());
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = png_uint_32(width);
  image.height = png_uint_32(height);
  image.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, hwc.data(), 0, nullptr)) << image.message;
}

// Pixel (y, x, c) of test image `seed`, distinct across pixels and images.
std::uint8_t pattern(int seed, int y, int x, int c) { return std::uint8_t(seed * 40 + y * 11 + x * 5 + c * 70); }

std::vector<std::uint8_t> pattern_hwc(int seed, int width, int height, int channels) {
  std::vector<std::uint8_t> hwc;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c) hwc.push_back(pattern(seed, y, x, c));
  return hwc;
}

std::vector<std::uint8_t> pattern_chw(int seed, int width, int height, int channels) {
  std::vector<std::uint8_t> chw;
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) chw.push_back(pattern(seed, y, x, c));
  return chw;
}

std::vector<std::uint8_t> read_image(const ImageSource& source, std::size_t i) {
  std::vector<std::uint8_t> pixels(source.shape().pixels());
  source.read(i, pixels.data());
  return pixels;
}

// ---------------------------------------------------------------------------------------
// IDX

// Three 2x3 images with pixel values 0..17 and labels 4, 0, 9.
void write_small_idx(const TempDir& dir, const std::string& prefix) {
  std::string pixels;
  for (int v = 0; v < 18; ++v) pixels += char(v);
  write_bytes(dir.file(prefix + "-images-idx3-ubyte"), idx_images(3, 2, 3, pixels));
  write_bytes(dir.file(prefix + "-labels-idx1-ubyte"), idx_labels(std::string{4, 0, 9}));
}

TEST(Idx, ReadsRawFiles) {
  TempDir dir;
  write_small_idx(dir, "train");
  auto source = open_data("idx:" + dir.path(), SplitName::Train);
  EXPECT_EQ(source->size(), 3u);
  EXPECT_EQ(source->shape(), (ImageShape{1, 2, 3}));
  EXPECT_EQ(source->class_names(), (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(source->labels(), (std::vector<int>{4, 0, 9}));
  EXPECT_EQ(read_image(*source, 1), (std::vector<std::uint8_t>{6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(source->path(2), dir.file("train-images-idx3-ubyte") + "#2");
  EXPECT_EQ(source->spec(), "idx:" + dir.path());
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Test), "has no t10k-images-idx3-ubyte");
}

TEST(Idx, ReadsGzippedFiles) {
  TempDir dir;
  std::string pixels;
  for (int v = 0; v < 8; ++v) pixels += char(200 + v);
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"), idx_images(2, 2, 2, pixels));
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), idx_labels(std::string{7, 3}));
  auto source = open_data("idx:" + dir.path(), SplitName::Test);
  EXPECT_EQ(source->labels(), (std::vector<int>{7, 3}));
  EXPECT_EQ(read_image(*source, 1), (std::vector<std::uint8_t>{204, 205, 206, 207}));
}

TEST(Idx, RejectsTruncatedAndOversizedFiles) {
  TempDir dir;
  write_small_idx(dir, "train");
  const std::string images = dir.file("train-images-idx3-ubyte");
  write_bytes(images, idx_images(3, 2, 3, std::string(14, '\0')));
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Train),
                        images + ": truncated: header says 3 images of 2x3 (34 bytes) but file has 30 bytes");
  write_bytes(images, idx_images(3, 2, 3, std::string(19, '\0')));
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Train),
                        "header says 3 images of 2x3 (34 bytes) but file has more than 34 bytes (extra data at the end)");
  // An absurd count is refused by comparing with the file size, before any allocation.
  write_bytes(images, idx_images(0xffffffffu, 16384, 16384, std::string(10, '\0')));
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Train),
                        "truncated: header says 4294967295 images of 16384x16384 (1152921504338411536 bytes) but file has 26 bytes");
  write_bytes(images, be32(0x803) + be32(1));
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Train),
                        "truncated: 8 bytes, shorter than the 16-byte IDX header");
  write_bytes(images, idx_images(1, 0, 3, ""));
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Train), "image size 0x3 in the header");
}

TEST(Idx, StopsReadingAGzipBombWhereItsHeaderEnds) {
  // One 28x28 image, then 16 MiB of zeros that gzip shrinks to a few KiB (2 GB took
  // 6.45 GB of memory before the size was compared): reading stops after 800 bytes.
  TempDir dir;
  write_small_idx(dir, "train");
  const std::string images = dir.file("train-images-idx3-ubyte");
  std::filesystem::remove(images);
  write_gzip(images + ".gz", idx_images(1, 28, 28, std::string(784 + (std::size_t(16) << 20), '\0')));
  EXPECT_ERROR_CONTAINS(open_data("idx:" + dir.path(), SplitName::Train),
                        images + ".gz: header says 1 images of 28x28 (800 bytes) but file has more than 800 bytes "
                                 "(extra data at the end)");
}

TEST(Idx, RejectsWrongMagicCountMismatchAndBadLabels) {
  TempDir dir;
  write_small_idx(dir, "train");
  const std::string spec = "idx:" + dir.path();
  const std::string labels = dir.file("train-labels-idx1-ubyte");
  write_bytes(labels, be32(0x803) + be32(3) + std::string(3, '\0'));
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Train),
                        labels + ": wrong magic number 0x00000803, expected 0x00000801 (IDX labels)");
  write_bytes(labels, idx_labels(std::string{1, 2}));
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Train), labels + ": has 2 labels but");
  write_bytes(labels, idx_labels(std::string{1, 10, 2}));
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Train),
                        labels + ": label 10 of image 1 is out of range (10 classes)");
  write_bytes(labels, be32(0x801) + be32(5) + std::string(3, '\0'));
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Train), "truncated: header says 5 labels (13 bytes)");
  write_gzip(dir.file("train-images-idx3-ubyte"), be32(0x801) + std::string(20, '\0'));
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Train), "wrong magic number 0x00000801, expected 0x00000803");
}

TEST(Idx, FashionMnistSpecUsesItsClassNames) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto source = open_data("fashion-mnist", SplitName::Test);
  EXPECT_EQ(source->size(), 10000u);
  EXPECT_EQ(source->shape(), (ImageShape{1, 28, 28}));
  ASSERT_EQ(source->class_names().size(), 10u);
  EXPECT_EQ(source->class_names().front(), "T-shirt/top");
  EXPECT_EQ(source->class_names().back(), "Ankle boot");
  EXPECT_EQ(source->label(0), 9);  // the first test image is an ankle boot
  EXPECT_EQ(source->spec(), "fashion-mnist");
}

// ---------------------------------------------------------------------------------------
// CIFAR

// A CIFAR record: label byte(s), then 3072 pixel bytes starting at `first`.
std::string cifar_record(const std::string& label_bytes, int first) {
  std::string record = label_bytes;
  for (int i = 0; i < 3072; ++i) record += char((first + i) & 0xff);
  return record;
}

TEST(Cifar, ReadsCifar10Batches) {
  TempDir dir;
  for (int batch = 1; batch <= 5; ++batch)
    write_bytes(dir.file("data_batch_" + std::to_string(batch) + ".bin"),
                cifar_record(std::string(1, char(batch)), batch) + cifar_record(std::string(1, char(9)), 100 + batch));
  write_bytes(dir.file("test_batch.bin"), cifar_record(std::string(1, char(3)), 7));
  auto train = open_data("cifar10:" + dir.path(), SplitName::Train);
  EXPECT_EQ(train->size(), 10u);
  EXPECT_EQ(train->shape(), (ImageShape{3, 32, 32}));
  EXPECT_EQ(train->labels(), (std::vector<int>{1, 9, 2, 9, 3, 9, 4, 9, 5, 9}));
  EXPECT_EQ(train->class_names().front(), "airplane");
  EXPECT_EQ(train->class_names().back(), "truck");
  EXPECT_EQ(train->path(5), dir.file("data_batch_3.bin") + "#1");
  std::vector<std::uint8_t> image = read_image(*train, 5);
  EXPECT_EQ(image[0], 103);
  EXPECT_EQ(image[1024], std::uint8_t(103 + 1024));  // green plane
  EXPECT_EQ(image[3071], std::uint8_t(103 + 3071));
  auto test = open_data("cifar10:" + dir.path(), SplitName::Test);
  EXPECT_EQ(test->labels(), (std::vector<int>{3}));

  std::string names;
  for (int c = 0; c < 10; ++c) names += "class" + std::to_string(c) + "\r\n";
  write_bytes(dir.file("batches.meta.txt"), names + "\n");
  EXPECT_EQ(open_data("cifar10:" + dir.path(), SplitName::Test)->class_names()[3], "class3");
  write_bytes(dir.file("batches.meta.txt"), "cat\ndog\n");
  EXPECT_ERROR_CONTAINS(open_data("cifar10:" + dir.path(), SplitName::Test),
                        "batches.meta.txt: has 2 class names, expected 10");
}

TEST(Cifar, RejectsBadCifar10Files) {
  TempDir dir;
  const std::string spec = "cifar10:" + dir.path();
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Test), dir.file("test_batch.bin") + ": cannot open");
  write_bytes(dir.file("test_batch.bin"), cifar_record(std::string(1, char(1)), 0) + std::string(100, 'x'));
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Test),
                        "test_batch.bin: truncated: 3173 bytes is not a whole number of 3073-byte records");
  write_bytes(dir.file("test_batch.bin"), cifar_record(std::string(1, char(1)), 0) + cifar_record("\x0a", 0));
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Test),
                        "test_batch.bin: label 10 of record 1 is out of range (10 classes)");
  write_bytes(dir.file("test_batch.bin"), "");
  EXPECT_ERROR_CONTAINS(open_data(spec, SplitName::Test), "test_batch.bin: contains no images");
}

TEST(Cifar, ReadsCifar100FineLabels) {
  TempDir dir;
  write_bytes(dir.file("train.bin"), cifar_record(std::string{char(5), char(77)}, 1) +
                                         cifar_record(std::string{char(19), char(99)}, 2));
  auto source = open_data("cifar100:" + dir.path(), SplitName::Train);
  EXPECT_EQ(source->labels(), (std::vector<int>{77, 99}));
  EXPECT_EQ(source->class_names().size(), 100u);
  EXPECT_EQ(source->class_names()[77], "77");
  EXPECT_EQ(read_image(*source, 1)[0], 2);  // the image starts after both label bytes
  EXPECT_ERROR_CONTAINS(open_data("cifar100:" + dir.path(), SplitName::Test), "test.bin: cannot open");
  write_bytes(dir.file("train.bin"), cifar_record(std::string{char(5), char(100)}, 1));
  EXPECT_ERROR_CONTAINS(open_data("cifar100:" + dir.path(), SplitName::Train),
                        "label 100 of record 0 is out of range (100 classes)");
  write_bytes(dir.file("train.bin"), cifar_record(std::string{char(5), char(1)}, 1).substr(1));
  EXPECT_ERROR_CONTAINS(open_data("cifar100:" + dir.path(), SplitName::Train),
                        "truncated: 3073 bytes is not a whole number of 3074-byte records");
}

// ---------------------------------------------------------------------------------------
// Image folders

TEST(ImageFolder, ReadsClassFoldersInByteOrder) {
  TempDir dir;
  // Class folders and files are ordered by name bytes: "10.png" < "2.png", "Zebra" < "ant".
  write_png(dir.file("train/ant/2.png"), 3, 2, 1, pattern_hwc(1, 3, 2, 1));
  write_png(dir.file("train/ant/10.PNG"), 3, 2, 1, pattern_hwc(2, 3, 2, 1));
  write_png(dir.file("train/Zebra/a.png"), 3, 2, 1, pattern_hwc(3, 3, 2, 1));
  write_bytes(dir.file("train/Zebra/notes.txt"), "ignored");
  write_png(dir.file("test/ant/x.png"), 3, 2, 1, pattern_hwc(4, 3, 2, 1));
  auto source = open_data("folder:" + dir.path(), SplitName::Train);
  EXPECT_EQ(source->shape(), (ImageShape{1, 2, 3}));
  EXPECT_EQ(source->class_names(), (std::vector<std::string>{"Zebra", "ant"}));
  EXPECT_EQ(source->labels(), (std::vector<int>{0, 1, 1}));
  EXPECT_EQ(source->path(1), dir.file("train/ant/10.PNG"));
  EXPECT_EQ(read_image(*source, 0), pattern_chw(3, 3, 2, 1));
  EXPECT_EQ(read_image(*source, 1), pattern_chw(2, 3, 2, 1));
  auto test = open_data("folder:" + dir.path(), SplitName::Test);
  EXPECT_EQ(test->size(), 1u);
  EXPECT_EQ(read_image(*test, 0), pattern_chw(4, 3, 2, 1));
}

TEST(ImageFolder, ConvertsChannelsToTheFirstImage) {
  TempDir dir;
  write_png(dir.file("a/1.png"), 2, 2, 3, pattern_hwc(1, 2, 2, 3));
  std::vector<std::uint8_t> rgba;
  for (std::size_t p = 0; p < 4; ++p) {
    for (int c = 0; c < 3; ++c) rgba.push_back(pattern_hwc(2, 2, 2, 3)[p * 3 + c]);
    rgba.push_back(255);
  }
  write_png(dir.file("a/2.png"), 2, 2, 4, rgba);
  write_png(dir.file("a/3.png"), 2, 2, 1, {10, 20, 30, 40});
  auto source = open_data("folder:" + dir.path(), SplitName::Train);
  EXPECT_EQ(source->shape(), (ImageShape{3, 2, 2}));
  EXPECT_EQ(read_image(*source, 0), pattern_chw(1, 2, 2, 3));
  EXPECT_EQ(read_image(*source, 1), pattern_chw(2, 2, 2, 3));  // alpha dropped
  EXPECT_EQ(read_image(*source, 2), (std::vector<std::uint8_t>{10, 20, 30, 40, 10, 20, 30, 40, 10, 20, 30, 40}));
}

TEST(ImageFolder, ReadsJpegs) {
  TempDir dir;
  std::vector<std::uint8_t> flat_rgb;
  for (int p = 0; p < 16 * 8; ++p) flat_rgb.insert(flat_rgb.end(), {200, 100, 50});
  write_bytes(dir.file("pool/b.JPG"), encode_jpeg(16, 8, 3, flat_rgb));
  write_bytes(dir.file("pool/a.jpeg"), encode_jpeg(16, 8, 1, std::vector<std::uint8_t>(16 * 8, 77)));
  auto source = open_data("folder:" + dir.file("pool"), SplitName::Test);
  // An unlabelled pool; the greyscale JPEG comes first and sets one channel.
  EXPECT_FALSE(source->labelled());
  EXPECT_EQ(source->label(1), kNoLabel);
  EXPECT_EQ(source->shape(), (ImageShape{1, 8, 16}));
  for (std::uint8_t v : read_image(*source, 0)) EXPECT_EQ(v, 77);
  const int grey = int(std::lround(0.299 * 200 + 0.587 * 100 + 0.114 * 50));
  for (std::uint8_t v : read_image(*source, 1)) EXPECT_NEAR(v, grey, 2);

  TempDir colour;
  write_bytes(colour.file("c/x.jpg"), encode_jpeg(16, 8, 3, flat_rgb));
  auto rgb = open_data("folder:" + colour.path(), SplitName::Train);
  EXPECT_EQ(rgb->shape(), (ImageShape{3, 8, 16}));
  std::vector<std::uint8_t> pixels = read_image(*rgb, 0);
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 16 * 8; ++p) EXPECT_NEAR(pixels[c * 128 + p], flat_rgb[c], 2);
}

TEST(FitImages, CropGeometryFollowsTorchvision) {
  // Resize(S): the shorter side to S, the longer to int(S * long / short); CenterCrop:
  // corner int(round(excess / 2.0)), halves rounded to even as Python does.
  auto expect = [](int w, int h, InputFit fit, int ox, int oy, int cw, int ch) {
    const FitGeometry g = fit_geometry(w, h, fit);
    EXPECT_EQ(g.content_width, cw) << w << "x" << h;
    EXPECT_EQ(g.content_height, ch) << w << "x" << h;
    EXPECT_EQ(g.offset_x, ox) << w << "x" << h;
    EXPECT_EQ(g.offset_y, oy) << w << "x" << h;
  };
  const InputFit crop4{4, 4, FitMode::Crop};
  expect(10, 6, crop4, -1, 0, 6, 4);   // int(4 * 10 / 6) = 6, excess 2
  expect(6, 9, crop4, 0, -1, 4, 6);    // tall
  expect(7, 4, crop4, -2, 0, 7, 4);    // excess 3: round(1.5) = 2
  expect(9, 4, crop4, -2, 0, 9, 4);    // excess 5: round(2.5) = 2
  expect(11, 4, crop4, -4, 0, 11, 4);  // excess 7: round(3.5) = 4
  expect(5, 5, crop4, 0, 0, 4, 4);
  expect(8, 8, {4, 4, FitMode::Crop, 6}, -1, -1, 6, 6);   // Resize(6) + CenterCrop(4)
  expect(640, 480, {224, 224, FitMode::Crop, 256}, -58, -16, 341, 256);  // ImageNet's evaluation transform
  EXPECT_ERROR_CONTAINS(fit_geometry(4, 4, {4, 8, FitMode::Crop, 6}), "a 4x4 image resized to 6x6 is smaller than the 8x4 crop");
  // A strip would be enlarged to 268,435,456 x 16,384 pixels before the crop: refused.
  EXPECT_ERROR_CONTAINS(fit_geometry(16384, 1, {16384, 16384, FitMode::Crop}),
                        "a 16384x1 image resized to 268435456x16384 before cropping has a side over 16384 pixels");
  expect(16384, 1, {1, 1, FitMode::Crop}, -8192, 0, 16384, 1);  // within the bound: fine
}

TEST(FitImages, FoldersAndManifestsFitImagesOfAnySize) {
  TempDir dir;
  write_png(dir.file("a/1.png"), 6, 4, 1, pattern_hwc(1, 6, 4, 1));  // wide
  write_png(dir.file("a/2.png"), 4, 4, 1, pattern_hwc(2, 4, 4, 1));
  write_png(dir.file("b/1.png"), 4, 6, 1, pattern_hwc(3, 4, 6, 1));  // tall
  write_png(dir.file("b/2.png"), 12, 8, 1, std::vector<std::uint8_t>(96, 200));
  write_bytes(dir.file("list.csv"), "a/1.png,0\na/2.png,0\nb/1.png,1\nb/2.png,1\n");
  for (const std::string spec : {"folder:" + dir.path() + "@4x4", "csv:" + dir.file("list.csv") + "@4x4,crop"}) {
    SCOPED_TRACE(spec);
    auto source = open_data(spec, SplitName::Train);
    EXPECT_EQ(source->shape(), (ImageShape{1, 4, 4}));
    // No resize needed (the shorter side is 4): the centre 4x4 exactly.
    std::vector<std::uint8_t> expected;
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) expected.push_back(pattern(1, y, x + 1, 0));
    EXPECT_EQ(read_image(*source, 0), expected);
    EXPECT_EQ(read_image(*source, 1), pattern_chw(2, 4, 4, 1));
    expected.clear();
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) expected.push_back(pattern(3, y + 1, x, 0));
    EXPECT_EQ(read_image(*source, 2), expected);
    EXPECT_EQ(read_image(*source, 3), std::vector<std::uint8_t>(16, 200));  // resized 12x8 -> 6x4, uniform stays
  }
  // Letterbox and stretch: a uniform image keeps its value where it lands.
  auto boxed = open_data("folder:" + dir.path() + "@4x4,letterbox", SplitName::Train);
  // 12x8 at scale 1/3 is 4x3 (round(2.67)), one black row below: floor((4 - 3) / 2) = 0 above.
  EXPECT_EQ(read_image(*boxed, 3), (std::vector<std::uint8_t>{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 0, 0, 0, 0}));
  auto stretched = open_data("folder:" + dir.path() + "@4x4,stretch", SplitName::Train);
  EXPECT_EQ(read_image(*stretched, 3), std::vector<std::uint8_t>(16, 200));
  // Without a size, every image must have the first's.
  auto natural = open_data("folder:" + dir.path(), SplitName::Train);
  EXPECT_ERROR_CONTAINS(read_image(*natural, 1), dir.file("a/2.png") + ": image is 4x4, expected 6x4");
  // Bad sizes and crops.
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.path() + "@4x4,cut", SplitName::Train),
                        "data spec 'folder:" + dir.path() + "@4x4,cut': input size '4x4,cut': unknown mode 'cut'");
  EXPECT_ERROR_CONTAINS(open_data("csv:" + dir.file("list.csv") + "@0x4", SplitName::Train), "expected HxW");
  auto wide_crop = open_data("folder:" + dir.path() + "@4x8,crop=6", SplitName::Train);
  EXPECT_ERROR_CONTAINS(read_image(*wide_crop, 1), dir.file("a/2.png") + ": a 4x4 image resized to 6x6 is smaller than the 8x4 crop");
}

TEST(FitImages, LargeJpegsAreDecodedAtAReducedScale) {
  std::vector<std::uint8_t> hwc(64 * 64 * 3);
  for (std::size_t i = 0; i < hwc.size(); ++i) hwc[i] = std::uint8_t((i / 3 % 64) * 4);  // a horizontal ramp
  TempDir dir;
  write_bytes(dir.file("big.jpg"), encode_jpeg(64, 64, 3, hwc));
  write_png(dir.file("big.png"), 64, 64, 3, hwc);
  ImageShape shape;
  decode_reduced(dir.file("big.jpg"), 3, 8, 8, shape);  // 1/4 keeps 16 >= 2 x 8
  EXPECT_EQ(shape, (ImageShape{3, 16, 16}));
  decode_reduced(dir.file("big.jpg"), 1, 4, 4, shape);  // 1/8: 8 >= 2 x 4
  EXPECT_EQ(shape, (ImageShape{1, 8, 8}));
  decode_reduced(dir.file("big.jpg"), 3, 20, 20, shape);  // even 1/2 would leave 32 < 40
  EXPECT_EQ(shape, (ImageShape{3, 64, 64}));
  decode_reduced(dir.file("big.png"), 3, 4, 4, shape);  // PNG: always its own size
  EXPECT_EQ(shape, (ImageShape{3, 64, 64}));
  // The reduced decode is the ramp at a quarter of the size (JPEG loss aside).
  const auto reduced = decode_reduced(dir.file("big.jpg"), 1, 4, 4, shape);
  ASSERT_EQ(shape, (ImageShape{1, 8, 8}));
  EXPECT_NEAR(reduced[0 * 8 + 7], (7 * 8 + 3.5) * 4, 12.0);
  EXPECT_NEAR(reduced[0 * 8 + 0], 3.5 * 4, 12.0);
}

TEST(ImageFolder, RejectsBadImagesAndLayouts) {
  TempDir dir;
  write_png(dir.file("cls/a.png"), 2, 2, 1, {1, 2, 3, 4});
  write_png(dir.file("cls/b.png"), 3, 2, 1, {1, 2, 3, 4, 5, 6});
  write_bytes(dir.file("cls/c.png"), "this is not an image");
  const std::string truncated = encode_jpeg(2, 2, 1, {1, 2, 3, 4});
  write_bytes(dir.file("cls/d.jpg"), truncated.substr(0, truncated.size() / 2));
  write_bytes(dir.file("cls/e.png"), "");
  auto source = open_data("folder:" + dir.path(), SplitName::Train);
  EXPECT_ERROR_CONTAINS(read_image(*source, 1), dir.file("cls/b.png") + ": image is 3x2, expected 2x2");
  EXPECT_ERROR_CONTAINS(read_image(*source, 2), dir.file("cls/c.png") + ": unreadable image (not a PNG or JPEG file)");
  EXPECT_ERROR_CONTAINS(read_image(*source, 3), dir.file("cls/d.jpg") + ": unreadable image (");
  EXPECT_ERROR_CONTAINS(read_image(*source, 4), dir.file("cls/e.png") + ": unreadable image (empty file)");
  // A failed JPEG decode leaves nothing behind for the next image on this thread.
  write_bytes(dir.file("good/a.jpg"), encode_jpeg(5, 3, 3, std::vector<std::uint8_t>(45, 9)));
  EXPECT_EQ(open_data("folder:" + dir.file("good"), SplitName::Train)->shape(), (ImageShape{3, 3, 5}));

  // A PNG signature followed by garbage fails inside libpng.
  write_bytes(dir.file("broken/a.png"), std::string("\x89PNG\r\n\x1a\n", 8) + "garbage garbage garbage");
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("broken"), SplitName::Train),
                        dir.file("broken/a.png") + ": unreadable image (");

  // A link named like an image that leads nowhere, or to itself, is an error, not a skip.
  write_png(dir.file("links/cls/a.png"), 2, 2, 1, {1, 2, 3, 4});
  fs::create_symlink(dir.file("links/cls/gone.png"), dir.file("links/cls/b.png"));
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("links"), SplitName::Train),
                        dir.file("links/cls/b.png") + ": broken or looping symbolic link");
  fs::remove(dir.file("links/cls/b.png"));
  fs::create_symlink(dir.file("links/cls/c.png"), dir.file("links/cls/c.png"));
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("links"), SplitName::Train),
                        dir.file("links/cls/c.png") + ": broken or looping symbolic link");

  fs::create_directories(dir.file("cls2/empty"));
  write_png(dir.file("cls2/full/a.png"), 2, 2, 1, {1, 2, 3, 4});
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("cls2"), SplitName::Train),
                        dir.file("cls2") + ": class folder 'empty' has no images");
  write_png(dir.file("cls2/loose.png"), 2, 2, 1, {1, 2, 3, 4});
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("cls2"), SplitName::Train),
                        "has both class folders and images directly inside");

  fs::create_directories(dir.file("nothing"));
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("nothing"), SplitName::Train),
                        "contains no class folders and no *.png, *.jpg or *.jpeg images");
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("missing"), SplitName::Train),
                        dir.file("missing") + ": no such folder");
  write_png(dir.file("splits/train/a/1.png"), 2, 2, 1, {1, 2, 3, 4});
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.file("splits"), SplitName::Test), "has no 'test' folder");
}

TEST(ImageFolder, ReadsRealCifar10JpegSample) {
  const std::string shared = testing::shared_data_dir();
  const std::string archive = shared + "/cifar10-jpg.tar.zst";
  if (shared.empty() || !fs::exists(archive)) GTEST_SKIP() << "../shared/data not found";
  TempDir dir;
  const std::string command = "zstd -dc '" + archive + "' | tar -x -C '" + dir.path() +
                              "' --wildcards 'test/cat/000*' 'test/dog/000*'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  auto source = open_data("folder:" + dir.path(), SplitName::Test);
  EXPECT_EQ(source->class_names(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(source->size(), 20u);
  EXPECT_EQ(source->shape(), (ImageShape{3, 32, 32}));
  EXPECT_EQ(source->label(9), 0);
  EXPECT_EQ(source->label(10), 1);
  EXPECT_EQ(source->path(10), dir.file("test/dog/0000.jpg"));
  for (std::size_t i = 0; i < source->size(); ++i) {
    std::vector<std::uint8_t> pixels = read_image(*source, i);
    EXPECT_GT(*std::max_element(pixels.begin(), pixels.end()), 0) << source->path(i);
  }
  EXPECT_ERROR_CONTAINS(open_data("folder:" + dir.path(), SplitName::Train), "has no 'train' folder");
}

// ---------------------------------------------------------------------------------------
// CSV manifests

TEST(CsvManifest, ReadsLabelledManifestWithHeader) {
  TempDir dir;
  write_png(dir.file("img/a.png"), 2, 1, 1, {5, 6});
  write_png(dir.file("elsewhere/b.png"), 2, 1, 1, {7, 8});
  write_bytes(dir.file("list.csv"), "path,label\r\nimg/a.png,2\r\n\r\n " + dir.file("elsewhere/b.png") + " , 0 \r\n");
  auto source = open_data("csv:" + dir.file("list.csv"), SplitName::Train);
  EXPECT_EQ(source->size(), 2u);
  EXPECT_EQ(source->labels(), (std::vector<int>{2, 0}));
  EXPECT_EQ(source->class_names(), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(source->path(0), dir.file("img/a.png"));
  EXPECT_EQ(read_image(*source, 1), (std::vector<std::uint8_t>{7, 8}));
}

TEST(CsvManifest, ReadsUnlabelledManifest) {
  TempDir dir;
  write_png(dir.file("a.png"), 2, 1, 1, {5, 6});
  write_png(dir.file("b.png"), 2, 1, 1, {7, 8});
  write_bytes(dir.file("pool.csv"), "path\nb.png\na.png");
  auto source = open_data("csv:" + dir.file("pool.csv"), SplitName::Test);
  EXPECT_FALSE(source->labelled());
  EXPECT_EQ(source->labels(), (std::vector<int>{kNoLabel, kNoLabel}));
  EXPECT_EQ(read_image(*source, 0), (std::vector<std::uint8_t>{7, 8}));
}

TEST(CsvManifest, RejectsBadLines) {
  TempDir dir;
  write_png(dir.file("a.png"), 2, 1, 1, {5, 6});
  const std::string file = dir.file("list.csv");
  auto open = [&](const std::string& text) {
    write_bytes(file, text);
    return open_data("csv:" + file, SplitName::Train);
  };
  EXPECT_ERROR_CONTAINS(open("a.png,1\na.png\n"), file + ":2: has no label but line 1 has one");
  EXPECT_ERROR_CONTAINS(open("path\na.png\na.png,1\n"), file + ":3: has a label but line 2 has none");
  EXPECT_ERROR_CONTAINS(open("a.png,1\na.png,cat\n"), file + ":2: label 'cat' is not an integer");
  EXPECT_ERROR_CONTAINS(open("a.png,-1\n"), file + ":1: label -1 is out of range");
  EXPECT_ERROR_CONTAINS(open("a.png,1,2\n"), file + ":1: expected 'path' or 'path,label', found 3 fields");
  EXPECT_ERROR_CONTAINS(open("a.png\nmissing.png\n"), file + ":2: image " + dir.file("missing.png") + " not found");
  EXPECT_ERROR_CONTAINS(open(",1\n"), file + ":1: empty image path");
  EXPECT_ERROR_CONTAINS(open(std::string("a.png\0.png,1\n", 13)), file + ":1: image path contains a NUL byte");
  EXPECT_ERROR_CONTAINS(open("path,label\n\n"), file + ": lists no images");
  EXPECT_ERROR_CONTAINS(open_data("csv:" + dir.file("absent.csv"), SplitName::Train), "absent.csv: cannot open");
}

// ---------------------------------------------------------------------------------------
// Specs and subsets

TEST(DataSpec, RejectsUnknownKindsAndSplitNames) {
  EXPECT_ERROR_CONTAINS(open_data("mnist:/tmp", SplitName::Train),
                        "data spec 'mnist:/tmp': unknown kind 'mnist' (expected fashion-mnist, idx:DIR");
  EXPECT_ERROR_CONTAINS(open_data("/some/folder", SplitName::Train), "unknown kind '/some/folder'");
  EXPECT_ERROR_CONTAINS(open_data("idx:", SplitName::Train), "data spec 'idx:': missing folder");
  EXPECT_ERROR_CONTAINS(open_data("csv", SplitName::Train), "data spec 'csv': missing file");
  EXPECT_EQ(parse_split_name("train"), SplitName::Train);
  EXPECT_EQ(parse_split_name("test"), SplitName::Test);
  EXPECT_ERROR_CONTAINS(parse_split_name("validation"), "split 'validation': expected train or test");
}

TEST(DataSpec, SubsetViewsChosenImages) {
  TempDir dir;
  write_small_idx(dir, "train");
  auto base = open_data("idx:" + dir.path(), SplitName::Train);
  auto view = subset(*base, {2, 0});
  EXPECT_EQ(view->size(), 2u);
  EXPECT_EQ(view->labels(), (std::vector<int>{9, 4}));
  EXPECT_EQ(view->path(0), base->path(2));
  EXPECT_EQ(read_image(*view, 1), read_image(*base, 0));
  EXPECT_EQ(view->class_names(), base->class_names());
  EXPECT_EQ(view->spec(), base->spec());
  EXPECT_ERROR_CONTAINS(subset(*base, {1, 3}), "subset index 3 out of range for 3 images");
}

// ---------------------------------------------------------------------------------------
// Loader

// n images of C x H x W where pixel p of channel c of image i is (3i + 5c + p) mod 256;
// label i mod 3; reading image `broken` throws.
class PatternSource : public ImageSource {
 public:
  PatternSource(std::size_t n, ImageShape shape, std::size_t broken = std::size_t(-1))
      : n_(n), shape_(shape), broken_(broken) {}
  std::size_t size() const override { return n_; }
  ImageShape shape() const override { return shape_; }
  const std::vector<std::string>& class_names() const override { return names_; }
  int label(std::size_t i) const override { return int(i % 3); }
  std::string path(std::size_t i) const override { return "pattern#" + std::to_string(i); }
  void read(std::size_t i, std::uint8_t* out) const override {
    if (i == broken_) throw Error(path(i) + ": broken image");
    const std::size_t plane = std::size_t(shape_.height) * shape_.width;
    for (std::size_t c = 0; c < std::size_t(shape_.channels); ++c)
      for (std::size_t p = 0; p < plane; ++p) out[c * plane + p] = std::uint8_t(3 * i + 5 * c + p);
  }
  std::string spec() const override { return "pattern"; }

 private:
  std::size_t n_;
  ImageShape shape_;
  std::size_t broken_;
  std::vector<std::string> names_{"a", "b", "c"};
};

Normalization identity(int channels) {
  return {std::vector<float>(channels, 0.0f), std::vector<float>(channels, 1.0f)};
}

std::vector<Batch> all_batches(const ImageSource& source, const Normalization& norm, const LoaderOptions& options) {
  BatchLoader loader(source, norm, options);
  std::vector<Batch> batches;
  for (Batch batch; loader.next(batch);) batches.push_back(batch);
  EXPECT_EQ(batches.size(), loader.num_batches());
  return batches;
}

std::vector<std::size_t> all_indices(const std::vector<Batch>& batches) {
  std::vector<std::size_t> indices;
  for (const Batch& batch : batches) indices.insert(indices.end(), batch.indices.begin(), batch.indices.end());
  return indices;
}

TEST(Loader, SeededPermutationIsFixedAcrossPlatforms) {
  // Reference values from an independent implementation of SplitMix64 + Fisher-Yates.
  EXPECT_EQ(seeded_permutation(10, 42), (std::vector<std::size_t>{0, 9, 5, 8, 6, 4, 7, 2, 1, 3}));
  EXPECT_EQ(seeded_permutation(10, 0), (std::vector<std::size_t>{6, 3, 2, 9, 8, 1, 4, 7, 0, 5}));
  EXPECT_EQ(seeded_permutation(1, 5), (std::vector<std::size_t>{0}));
  EXPECT_TRUE(seeded_permutation(0, 5).empty());
}

TEST(Loader, InOrderBatchesCoverEveryImageOnce) {
  PatternSource source(10, {1, 2, 2});
  LoaderOptions options;
  options.batch_size = 4;
  options.threads = 3;
  std::vector<Batch> batches = all_batches(source, identity(1), options);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].size(), 2u);
  std::vector<std::size_t> expected(10);
  std::iota(expected.begin(), expected.end(), std::size_t(0));
  EXPECT_EQ(all_indices(batches), expected);
  EXPECT_EQ(batches[1].labels, (std::vector<std::int64_t>{1, 2, 0, 1}));
  EXPECT_EQ(batches[1].shape, (ImageShape{1, 2, 2}));
  ASSERT_EQ(batches[1].pixels.size(), 16u);
  // Image 5 is 15, 16, 17, 18.
  EXPECT_FLOAT_EQ(batches[1].pixels[4], 15 / 255.0f);
  EXPECT_FLOAT_EQ(batches[1].pixels[7], 18 / 255.0f);
}

TEST(Loader, ShuffleIsSeededAndPerEpoch) {
  PatternSource source(50, {1, 1, 1});
  LoaderOptions options;
  options.batch_size = 7;
  options.shuffle = true;
  options.seed = 3;
  std::vector<std::size_t> first = all_indices(all_batches(source, identity(1), options));
  std::vector<std::size_t> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::size_t> expected(50);
  std::iota(expected.begin(), expected.end(), std::size_t(0));
  EXPECT_EQ(sorted, expected);
  EXPECT_NE(first, expected);
  EXPECT_EQ(all_indices(all_batches(source, identity(1), options)), first);
  options.seed = 4;
  EXPECT_NE(all_indices(all_batches(source, identity(1), options)), first);
  options.seed = 3;
  options.epoch = 1;
  EXPECT_NE(all_indices(all_batches(source, identity(1), options)), first);
}

TEST(Loader, ContentDoesNotDependOnThreads) {
  PatternSource source(37, {3, 5, 4});
  LoaderOptions options;
  options.batch_size = 8;
  options.shuffle = true;
  options.seed = 11;
  options.augmentation = {2, true};
  Normalization norm{{0.1f, 0.2f, 0.3f}, {0.5f, 0.6f, 0.7f}};
  options.threads = 1;
  std::vector<Batch> one = all_batches(source, norm, options);
  options.threads = 4;
  std::vector<Batch> four = all_batches(source, norm, options);
  ASSERT_EQ(one.size(), four.size());
  for (std::size_t b = 0; b < one.size(); ++b) {
    EXPECT_EQ(one[b].indices, four[b].indices);
    EXPECT_EQ(one[b].labels, four[b].labels);
    EXPECT_EQ(one[b].pixels, four[b].pixels);
  }
}

TEST(Loader, NormalisesPerChannel) {
  PatternSource source(2, {2, 1, 1});
  Normalization norm{{0.5f, 0.0f}, {0.25f, 2.0f}};
  std::vector<Batch> batches = all_batches(source, norm, LoaderOptions{});
  ASSERT_EQ(batches.size(), 1u);
  // Image 1: channel 0 = 3, channel 1 = 8.
  EXPECT_FLOAT_EQ(batches[0].pixels[2], (3 / 255.0f - 0.5f) / 0.25f);
  EXPECT_FLOAT_EQ(batches[0].pixels[3], (8 / 255.0f) / 2.0f);
  EXPECT_ERROR_CONTAINS(BatchLoader(source, identity(3), LoaderOptions{}),
                        "normalisation has 3 channels but the images have 2");
  LoaderOptions zero;
  zero.batch_size = 0;
  EXPECT_ERROR_CONTAINS(BatchLoader(source, norm, zero), "batch size must be at least 1");
}

TEST(Loader, ComputesNormalisationIndependentlyOfThreads) {
  TempDir dir;
  // Two 1x2 images: 0, 255 and 255, 255 -> mean 0.75, std sqrt(0.75 - 0.5625).
  write_bytes(dir.file("train-images-idx3-ubyte"), idx_images(2, 1, 2, std::string("\x00\xff\xff\xff", 4)));
  write_bytes(dir.file("train-labels-idx1-ubyte"), idx_labels(std::string{0, 1}));
  Normalization norm = compute_normalization(*open_data("idx:" + dir.path(), SplitName::Train), 2);
  ASSERT_EQ(norm.mean.size(), 1u);
  EXPECT_FLOAT_EQ(norm.mean[0], 0.75f);
  EXPECT_FLOAT_EQ(norm.std[0], float(std::sqrt(0.1875)));

  PatternSource many(1000, {3, 4, 4});  // several chunks
  Normalization one = compute_normalization(many, 1), three = compute_normalization(many, 3);
  EXPECT_EQ(one.mean, three.mean);
  EXPECT_EQ(one.std, three.std);
  EXPECT_NE(one.mean[0], one.mean[1]);
  EXPECT_ERROR_CONTAINS(compute_normalization(PatternSource(1000, {1, 2, 2}, 700), 2), "pattern#700: broken image");
}

TEST(Loader, AugmentationIsDeterministicCropAndFlip) {
  const int size = 4, pad = 1;
  PatternSource source(64, {1, size, size});
  LoaderOptions options;
  options.batch_size = 64;
  options.seed = 9;
  options.augmentation = {pad, true};
  std::vector<Batch> first = all_batches(source, identity(1), options);
  options.threads = 2;
  EXPECT_EQ(all_batches(source, identity(1), options)[0].pixels, first[0].pixels);
  options.epoch = 1;
  EXPECT_NE(all_batches(source, identity(1), options)[0].pixels, first[0].pixels);

  // Every output is one of the 18 shifted (zero-padded) and possibly mirrored copies.
  std::set<std::pair<int, bool>> seen;
  for (std::size_t i = 0; i < 64; ++i) {
    std::vector<float> image(first[0].pixels.begin() + i * 16, first[0].pixels.begin() + (i + 1) * 16);
    std::vector<std::uint8_t> raw(16);
    source.read(i, raw.data());
    bool matched = false;
    for (int dy = -pad; dy <= pad && !matched; ++dy)
      for (int dx = -pad; dx <= pad && !matched; ++dx)
        for (bool flip : {false, true}) {
          std::vector<float> candidate;
          for (int y = 0; y < size; ++y)
            for (int x = 0; x < size; ++x) {
              int sy = y + dy, sx = (flip ? size - 1 - x : x) + dx;
              bool inside = sy >= 0 && sy < size && sx >= 0 && sx < size;
              candidate.push_back(inside ? raw[sy * size + sx] / 255.0f : 0.0f);
            }
          if (candidate == image) {
            matched = true;
            seen.insert({dy * 3 + dx, flip});
            break;
          }
        }
    EXPECT_TRUE(matched) << "image " << i;
  }
  EXPECT_GT(seen.size(), 9u);  // crops and flips both vary
}

TEST(Loader, RethrowsWorkerErrorsAndStopsCleanly) {
  PatternSource source(40, {1, 2, 2}, 13);
  LoaderOptions options;
  options.batch_size = 5;
  options.threads = 4;
  {
    BatchLoader loader(source, identity(1), options);
    Batch batch;
    ASSERT_TRUE(loader.next(batch));
    ASSERT_TRUE(loader.next(batch));
    EXPECT_ERROR_CONTAINS(loader.next(batch), "pattern#13: broken image");
    EXPECT_ERROR_CONTAINS(loader.next(batch), "pattern#13: broken image");
  }
  {
    // Stopping early with a batch in flight joins the workers without hanging.
    BatchLoader loader(source, identity(1), options);
    Batch batch;
    ASSERT_TRUE(loader.next(batch));
  }
  BatchLoader unused(source, identity(1), options);
  EXPECT_EQ(unused.num_batches(), 8u);
  EXPECT_EQ(unused.num_images(), 40u);
}

}  // namespace
}  // namespace imagescore

namespace imagescore {
namespace {

TEST(Normalization, ByName) {
  auto none = parse_normalization("none", 2);
  EXPECT_EQ(none.mean, (std::vector<float>{0.f, 0.f}));
  EXPECT_EQ(none.std, (std::vector<float>{1.f, 1.f}));
  auto imagenet = parse_normalization("imagenet", 3);
  EXPECT_EQ(imagenet.mean, (std::vector<float>{0.485f, 0.456f, 0.406f}));
  EXPECT_EQ(imagenet.std, (std::vector<float>{0.229f, 0.224f, 0.225f}));
  auto given = parse_normalization("0.5,0.25/2,0.125", 2);
  EXPECT_EQ(given.mean, (std::vector<float>{0.5f, 0.25f}));
  EXPECT_EQ(given.std, (std::vector<float>{2.f, 0.125f}));
  EXPECT_ERROR_CONTAINS(parse_normalization("imagenet", 1), "normalize: imagenet needs 3 input channels");
  EXPECT_ERROR_CONTAINS(parse_normalization("z-score", 1), "normalize: expected auto, none, imagenet or MEANS/STDS, got 'z-score'");
  EXPECT_ERROR_CONTAINS(parse_normalization("0.5/x", 1), "normalize: 'x' is not a number");
  EXPECT_ERROR_CONTAINS(parse_normalization("0.5,0.5/1", 1), "normalize: expected 1 values per list");
  EXPECT_ERROR_CONTAINS(parse_normalization("0.5/0", 1), "normalize: standard deviations must be > 0");
  EXPECT_ERROR_CONTAINS(parse_normalization("0.5/", 1), "normalize: '' is not a number");
  // "auto" is the images' own statistics.
  testing::MemorySource source({1, 1, 2}, {"a"});
  source.add({0, 255}, 0);
  auto automatic = normalization_for("auto", source, 1);
  EXPECT_FLOAT_EQ(automatic.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(automatic.std[0], 0.5f);
  EXPECT_EQ(normalization_for("none", source, 1).std, (std::vector<float>{1.f}));
}

TEST(ImageShapes, ParsedAsCxHxW) {
  EXPECT_EQ(parse_image_shape("3x224x200"), (ImageShape{3, 224, 200}));
  for (const std::string bad : {"3x224", "3x224x", "0x2x2", "3x2x2x2", "ax2x2", "3x2x16385", ""})
    EXPECT_ERROR_CONTAINS(parse_image_shape(bad), "input: expected CxHxW (for example 3x224x224), got '" + bad + "'");
}

}  // namespace
}  // namespace imagescore
