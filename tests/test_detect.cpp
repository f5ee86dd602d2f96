// Detection mode: VOC and COCO readers, letterboxing, pseudo-label export, the report's
// detection section, and the raccoon set end to end (where ../shared/data exists).
#include <turbojpeg.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "imagescore/detect/detect.hpp"
#include "imagescore/models/model.hpp"
#include "imagescore/score/profile.hpp"
#include "imagescore/report/report.hpp"
#include "imagescore/score/score.hpp"
#include "imagescore/select/select.hpp"
#include "imagescore/data/image_codec.hpp"
#include "test_files.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::encode_jpeg;
using testing::TempDir;
using testing::write_bytes;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Builders

// A uniform image as PNG (1 or 3 channels).
std::string uniform_png(int width, int height, int channels, std::uint8_t value) {
  const ImageShape shape{channels, height, width};
  const std::vector<std::uint8_t> chw(shape.pixels(), value);
  return encode_png(shape, chw.data());
}

struct Object {
  std::string name;
  std::string xmin, ymin, xmax, ymax;
  std::string difficult = "0";
};

std::string voc_annotation(const std::string& file_name, int width, int height, const std::vector<Object>& objects) {
  std::string xml = "<annotation>\n  <folder>JPEGImages</folder>\n  <filename>" + file_name + "</filename>\n";
  xml += "  <size><width>" + std::to_string(width) + "</width><height>" + std::to_string(height) +
         "</height><depth>3</depth></size>\n";
  for (const auto& o : objects)
    xml += "  <object><name>" + o.name + "</name><difficult>" + o.difficult + "</difficult><bndbox><xmin>" + o.xmin +
           "</xmin><ymin>" + o.ymin + "</ymin><xmax>" + o.xmax + "</xmax><ymax>" + o.ymax + "</ymax></bndbox></object>\n";
  return xml + "</annotation>\n";
}

// A small VOC folder: a.jpg (40x20 colour), b.png (10x20 grey), c.jpg (30x30 colour);
// lists train = a, b and val = c.
struct SmallVoc {
  TempDir dir;
  std::string root = dir.file("voc");
  SmallVoc() {
    std::vector<std::uint8_t> colour(40 * 20 * 3);
    for (std::size_t i = 0; i < colour.size(); ++i) colour[i] = std::uint8_t(i % 251);
    write_bytes(root + "/JPEGImages/a.jpg", encode_jpeg(40, 20, 3, colour));
    write_bytes(root + "/JPEGImages/b.png", uniform_png(10, 20, 1, 90));
    write_bytes(root + "/JPEGImages/c.jpg", encode_jpeg(30, 30, 3, std::vector<std::uint8_t>(30 * 30 * 3, 150)));
    write_bytes(root + "/Annotations/a.xml", voc_annotation("a.jpg", 40, 20, {{"cat", "1", "1", "10", "20"}, {"dog", "5", "6", "40", "12", "1"}}));
    write_bytes(root + "/Annotations/b.xml", voc_annotation("b.png", 10, 20, {{"dog", "2", "3", "9", "19"}}));
    write_bytes(root + "/Annotations/c.xml", voc_annotation("c.jpg", 30, 30, {{"cat", "3", "3", "28", "28"}}));
    write_bytes(root + "/ImageSets/Main/train.txt", "a\nb\n");
    write_bytes(root + "/ImageSets/Main/val.txt", "c\n");
  }
};

Box box(const std::string& name, double xmin, double ymin, double xmax, double ymax, bool difficult = false, double score = 1) {
  Box b;
  b.class_name = name;
  b.xmin = xmin;
  b.ymin = ymin;
  b.xmax = xmax;
  b.ymax = ymax;
  b.difficult = difficult;
  b.score = score;
  return b;
}

std::vector<std::uint8_t> read_image(const ImageSource& source, std::size_t i) {
  std::vector<std::uint8_t> pixels(source.shape().pixels());
  source.read(i, pixels.data());
  return pixels;
}

// Pixel (c, y, x) of a CHW image of width w and height h.
std::uint8_t at(const std::vector<std::uint8_t>& chw, int w, int h, int c, int y, int x) {
  return chw[(std::size_t(c) * h + y) * w + x];
}

// The same images with the same boxes, in any order (ids and origins aside).
void expect_same_boxes(const std::vector<ImageBoxes>& expected, const Detections& actual) {
  ASSERT_EQ(actual.images.size(), expected.size());
  for (const auto& image : expected) {
    const ImageBoxes* other = actual.find(image.file_name);
    ASSERT_NE(other, nullptr) << image.file_name;
    EXPECT_EQ(other->width, image.width) << image.file_name;
    EXPECT_EQ(other->height, image.height) << image.file_name;
    EXPECT_EQ(other->boxes, image.boxes) << image.file_name;
  }
}

// ---------------------------------------------------------------------------------------
// Fitting images to the input

TEST(Detect, ParsesInputSizes) {
  InputFit fit = parse_input_fit("224x224");
  EXPECT_EQ(fit.height, 224);
  EXPECT_EQ(fit.width, 224);
  EXPECT_EQ(fit.mode, FitMode::Letterbox);
  fit = parse_input_fit("64x96,resize");  // the older name of stretch
  EXPECT_EQ(fit.height, 64);
  EXPECT_EQ(fit.width, 96);
  EXPECT_EQ(fit.mode, FitMode::Stretch);
  EXPECT_EQ(parse_input_fit("64x96,stretch").mode, FitMode::Stretch);
  EXPECT_EQ(parse_input_fit("8x8,letterbox", FitMode::Crop).mode, FitMode::Letterbox);
  EXPECT_EQ(parse_input_fit("8x8", FitMode::Crop).mode, FitMode::Crop);
  fit = parse_input_fit("224x224,crop=256");
  EXPECT_EQ(fit.mode, FitMode::Crop);
  EXPECT_EQ(fit.crop_resize, 256);
  EXPECT_EQ(to_string(fit), "224x224,crop=256");
  EXPECT_EQ(to_string(parse_input_fit("3x4", FitMode::Crop)), "3x4,crop");
  EXPECT_ERROR_CONTAINS(parse_input_fit("224"), "input size '224': expected HxW");
  EXPECT_ERROR_CONTAINS(parse_input_fit("0x5"), "expected HxW");
  EXPECT_ERROR_CONTAINS(parse_input_fit("5x5x3"), "expected HxW");
  EXPECT_ERROR_CONTAINS(open_data("voc:somewhere@64x64,crop", "train"),
                        "data spec 'voc:somewhere@64x64,crop': crop would cut boxes off the images: use letterbox or stretch");
  EXPECT_ERROR_CONTAINS(parse_input_fit("64x64,cut"), "unknown mode 'cut' (expected letterbox, stretch, crop or crop=S)");
  EXPECT_ERROR_CONTAINS(parse_input_fit("64x64,crop=0"), "crop=S needs a side S from 1 to 16384");
  EXPECT_ERROR_CONTAINS(parse_input_fit("224x224,crop=200"),
                        "input size '224x224,crop=200': the crop 224x224 is larger than the resized image's shorter side 200");
}

TEST(Detect, LetterboxGeometry) {
  auto expect = [](int w, int h, InputFit fit, int ox, int oy, int cw, int ch) {
    const FitGeometry g = fit_geometry(w, h, fit);
    EXPECT_EQ(g.offset_x, ox) << w << "x" << h;
    EXPECT_EQ(g.offset_y, oy) << w << "x" << h;
    EXPECT_EQ(g.content_width, cw) << w << "x" << h;
    EXPECT_EQ(g.content_height, ch) << w << "x" << h;
  };
  expect(8, 4, {4, 4}, 0, 1, 4, 2);     // wide: black bands above and below
  expect(3, 6, {4, 4}, 1, 0, 2, 4);     // tall: bands left and right
  expect(5, 3, {4, 4}, 0, 1, 4, 2);     // 3 * 0.8 = 2.4 rounds to 2
  expect(6, 3, {5, 6}, 0, 1, 6, 3);     // scale 1: the image is copied
  expect(2, 2, {7, 5}, 0, 1, 5, 5);     // enlarged; odd band split floor/ceil
  expect(1000, 1, {4, 4}, 0, 1, 4, 1);  // never thinner than one pixel
  expect(8, 4, {4, 4, FitMode::Stretch}, 0, 0, 4, 4);
}

TEST(Detect, LetterboxPixels) {
  // Copied at scale 1: the hand-made 6x3 pattern lands at rows 1-3 of a 5x6 input.
  const ImageShape small{1, 3, 6};
  std::vector<std::uint8_t> pattern(small.pixels());
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = std::uint8_t(10 + i);
  std::vector<std::uint8_t> out(5 * 6, 77);
  fit_image(pattern.data(), small, {5, 6}, out.data());
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 6; ++x)
      EXPECT_EQ(at(out, 6, 5, 0, y, x), y >= 1 && y <= 3 ? 10 + (y - 1) * 6 + x : 0) << y << "," << x;

  // Shrunk: a uniform 8x4 image fills rows 1-2 of a 4x4 input exactly, in every channel.
  const ImageShape wide{3, 4, 8};
  const std::vector<std::uint8_t> grey(wide.pixels(), 200);
  std::vector<std::uint8_t> boxed(3 * 4 * 4);
  fit_image(grey.data(), wide, {4, 4}, boxed.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) EXPECT_EQ(at(boxed, 4, 4, c, y, x), y == 1 || y == 2 ? 200 : 0) << c << y << x;

  // Resized: no band.
  fit_image(grey.data(), wide, {4, 4, FitMode::Stretch}, boxed.data());
  for (auto value : boxed) EXPECT_EQ(value, 200);
}

// ---------------------------------------------------------------------------------------
// VOC

TEST(Detect, VocSourceFollowsTheListsAndFitsEveryImage) {
  SmallVoc voc;
  auto train = open_data("voc:" + voc.root + "@16x16", "train");
  ASSERT_EQ(train->size(), 2u);
  EXPECT_EQ(train->shape(), (ImageShape{3, 16, 16}));
  EXPECT_FALSE(train->labelled());
  EXPECT_EQ(train->label(0), kNoLabel);
  EXPECT_EQ(train->path(0), voc.root + "/JPEGImages/a.jpg");
  EXPECT_EQ(train->path(1), voc.root + "/JPEGImages/b.png");
  EXPECT_EQ(train->spec(), "voc:" + voc.root + "@16x16");
  // b.png: 10x20 grey (90) -> 8x16 at x = 4, replicated into three channels.
  const auto b = read_image(*train, 1);
  for (int c = 0; c < 3; ++c)
    for (int x = 0; x < 16; ++x) EXPECT_EQ(at(b, 16, 16, c, 8, x), x >= 4 && x < 12 ? 90 : 0) << c << "," << x;

  EXPECT_EQ(open_data("voc:" + voc.root + "@16x16", SplitName::Train)->size(), 2u);
  auto val = open_data("voc:" + voc.root, "val");
  ASSERT_EQ(val->size(), 1u);
  EXPECT_EQ(val->shape(), (ImageShape{3, 224, 224}));  // the default input
  auto stretched = open_data("voc:" + voc.root + "@4x8,resize", "val");
  EXPECT_EQ(stretched->shape(), (ImageShape{3, 4, 8}));
  for (auto value : read_image(*stretched, 0)) EXPECT_NEAR(value, 150, 1);
}

TEST(Detect, VocSourceErrors) {
  SmallVoc voc;
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root, "test"), "has no list ImageSets/Main/test.txt (lists: train, val)");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root + "@16", "train"), "input size '16': expected HxW");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.dir.file("absent"), "train"), "absent: no such folder");
  EXPECT_ERROR_CONTAINS(open_data("voc:", "train"), "data spec 'voc:': missing folder");

  write_bytes(voc.root + "/ImageSets/Main/bad.txt", "a\nd\n");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root, "bad"), "JPEGImages/d.jpg: image 'd' not found");
  write_bytes(voc.root + "/ImageSets/Main/twice.txt", "a\n\na\n");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root, "twice"), "twice.txt:3: 'a' is listed twice");
  write_bytes(voc.root + "/ImageSets/Main/flags.txt", "a  1\n");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root, "flags"), "flags.txt:1: expected one image name per line");
  write_bytes(voc.root + "/ImageSets/Main/empty.txt", "\n");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root, "empty"), "empty.txt: lists no images");
  write_bytes(voc.root + "/ImageSets/Main/escape.txt", "../a\n");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root, "escape"), "'../a' is not a plain image name");

  // An unreadable image fails when it is read, naming the file.
  write_bytes(voc.root + "/JPEGImages/a.jpg", "not an image");
  auto train = open_data("voc:" + voc.root + "@8x8", "train");
  EXPECT_ERROR_CONTAINS(read_image(*train, 0), "a.jpg: unreadable image (not a PNG or JPEG file)");
}

TEST(Detect, VocWithoutListsHasEveryAnnotatedImage) {
  SmallVoc voc;
  fs::remove_all(voc.root + "/ImageSets");
  auto all = open_data("voc:" + voc.root + "@8x8", "whatever");
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ(all->path(2), voc.root + "/JPEGImages/c.jpg");
  fs::remove_all(voc.root + "/Annotations");
  EXPECT_ERROR_CONTAINS(open_data("voc:" + voc.root, "train"), "is not a VOC folder");
}

TEST(Detect, ReadsVocAnnotations) {
  SmallVoc voc;
  const Detections train = read_voc_annotations(voc.root + "@16x16", "train");
  ASSERT_EQ(train.images.size(), 2u);
  const ImageBoxes& a = train.images[0];
  EXPECT_EQ(a.file_name, "a.jpg");
  EXPECT_EQ(a.width, 40);
  EXPECT_EQ(a.height, 20);
  EXPECT_EQ(a.depth, 3);
  // VOC's 1-based inclusive pixels become 0-based continuous coordinates.
  EXPECT_EQ(a.boxes, (std::vector<Box>{box("cat", 0, 0, 10, 20), box("dog", 4, 5, 40, 12, true)}));
  EXPECT_EQ(train.images[1].file_name, "b.png");
  ASSERT_EQ(train.categories.size(), 2u);
  EXPECT_EQ(train.categories[0].name, "cat");
  EXPECT_EQ(train.categories[1].id, 2);
  check_classes(train, {"cat", "dog"});
  EXPECT_ERROR_CONTAINS(check_classes(train, {"cat", "bird"}), "a.xml: unknown class 'dog' (classes: cat, bird)");
}

TEST(Detect, VocBoxesOutsideTheImage) {
  TempDir dir;
  // Partly outside: clipped to the 40x20 image.
  write_bytes(dir.file("partly.xml"), voc_annotation("p.jpg", 40, 20, {{"cat", "-5", "3", "50", "25.5"}}));
  EXPECT_EQ(read_voc_xml(dir.file("partly.xml")).boxes, (std::vector<Box>{box("cat", 0, 2, 40, 20)}));
  // Wholly outside: an error.
  write_bytes(dir.file("outside.xml"), voc_annotation("o.jpg", 40, 20, {{"cat", "1", "1", "5", "5"}, {"dog", "45", "1", "60", "5"}}));
  EXPECT_ERROR_CONTAINS(read_voc_xml(dir.file("outside.xml")), "outside.xml: object 2 ('dog'): box lies outside the 40x20 image");
  // Without a size nothing is clipped.
  write_bytes(dir.file("nosize.xml"), "<annotation><filename>n.jpg</filename><object><name>x</name><bndbox><xmin>-4</xmin>"
                                      "<ymin>1</ymin><xmax>500</xmax><ymax>2</ymax></bndbox></object></annotation>");
  EXPECT_EQ(read_voc_xml(dir.file("nosize.xml")).boxes, (std::vector<Box>{box("x", -5, 0, 500, 2)}));
}

TEST(Detect, MalformedVocXml) {
  TempDir dir;
  auto expect_error = [&](const std::string& xml, const std::string& message) {
    write_bytes(dir.file("bad.xml"), xml);
    EXPECT_ERROR_CONTAINS(read_voc_xml(dir.file("bad.xml")), message);
  };
  expect_error("<annotation><object><name>cat</name>", "bad.xml: not valid XML (");
  expect_error("", "bad.xml: not valid XML (");
  expect_error("<html></html>", "bad.xml: no <annotation> element");
  expect_error(voc_annotation("x.jpg", 40, 20, {{"", "1", "1", "2", "2"}}), "bad.xml: object 1: has no <name>");
  expect_error(voc_annotation("x.jpg", 40, 20, {{"cat", "1", "1", "two", "2"}}), "object 1 ('cat'): <xmax> 'two' is not a finite number");
  expect_error(voc_annotation("x.jpg", 40, 20, {{"cat", "1", "1", "nan", "2"}}), "<xmax> 'nan' is not a finite number");
  expect_error(voc_annotation("x.jpg", 40, 20, {{"cat", "9", "1", "2", "2"}}), "object 1 ('cat'): inverted box (xmin 9");
  expect_error(voc_annotation("x.jpg", 40, 20, {{"cat", "1", "1", "2", "2", "yes"}}), "<difficult> 'yes' is not 0 or 1");
  expect_error("<annotation><size><width>wide</width></size></annotation>", "<size><width> 'wide' is not a non-negative integer");
  expect_error("<annotation><object><name>cat</name></object></annotation>", "object 1 ('cat'): has no <bndbox>");
  expect_error("<annotation><object><name>cat</name><bndbox><xmin>1</xmin></bndbox></object></annotation>", "no <ymin>");
  EXPECT_ERROR_CONTAINS(read_voc_xml(dir.file("absent.xml")), "absent.xml: cannot open");
}

TEST(Detect, VocFolderOfPredictions) {
  TempDir dir;
  write_bytes(dir.file("preds/one.xml"), voc_annotation("one.jpg", 40, 20, {{"cat", "1", "1", "10", "10"}}));
  write_bytes(dir.file("preds/two.xml"), voc_annotation("sub/two.jpg", 40, 20, {}));
  write_bytes(dir.file("preds/notes.txt"), "ignored");
  Detections found = read_voc_folder(dir.file("preds"));
  ASSERT_EQ(found.images.size(), 2u);
  EXPECT_EQ(found.images[1].file_name, "two.jpg");  // the folder of <filename> is dropped
  EXPECT_EQ(found.images[0].boxes[0].score, 1.0);   // no <score>: 1
  write_bytes(dir.file("preds/three.xml"), voc_annotation("one.jpg", 40, 20, {}));
  EXPECT_ERROR_CONTAINS(read_voc_folder(dir.file("preds")), "two entries for image 'one.jpg'");
  write_bytes(dir.file("preds/three.xml"), "<annotation></annotation>");
  EXPECT_ERROR_CONTAINS(read_voc_folder(dir.file("preds")), "three.xml: has no <filename>");
  EXPECT_ERROR_CONTAINS(read_voc_folder(dir.file("empty")), "empty: no such folder");
}

// ---------------------------------------------------------------------------------------
// COCO

const char* const kCocoFile = R"({
  "images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 20},
             {"id": 9, "file_name": "pics/c.jpg", "width": 30, "height": 30}],
  "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
  "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [0, 0, 10, 20], "iscrowd": 0},
                  {"id": 2, "image_id": 7, "category_id": 5, "bbox": [4.5, 5, 40, 7], "iscrowd": 1, "score": 0.25},
                  {"id": 3, "image_id": 9, "category_id": 3, "bbox": [2, 2, 25, 25]}]
})";

TEST(Detect, ReadsCoco) {
  TempDir dir;
  write_bytes(dir.file("coco.json"), kCocoFile);
  const Detections coco = read_coco(dir.file("coco.json"));
  ASSERT_EQ(coco.images.size(), 2u);
  EXPECT_EQ(coco.images[0].id, 7);
  EXPECT_EQ(coco.images[1].file_name, "c.jpg");
  // x + w beyond the 40-pixel width is clipped; iscrowd is read as difficult.
  EXPECT_EQ(coco.images[0].boxes, (std::vector<Box>{box("cat", 0, 0, 10, 20), box("dog", 4.5, 5, 40, 12, true, 0.25)}));
  EXPECT_EQ(coco.images[1].boxes, (std::vector<Box>{box("cat", 2, 2, 27, 27)}));
  ASSERT_EQ(coco.categories.size(), 2u);
  EXPECT_EQ(coco.categories[1].id, 5);
  EXPECT_EQ(coco.categories[1].name, "dog");

  // A results file scores boxes of the images file (whose own annotations are ignored).
  write_bytes(dir.file("results.json"), R"([{"image_id": 9, "category_id": 5, "bbox": [1, 1, 2, 3], "score": 0.75}])");
  const Detections results = read_coco_results(dir.file("results.json"), dir.file("coco.json"));
  EXPECT_TRUE(results.images[0].boxes.empty());
  EXPECT_EQ(results.images[1].boxes, (std::vector<Box>{box("dog", 1, 1, 3, 4, false, 0.75)}));
  EXPECT_EQ(read_predictions(dir.file("results.json"), dir.file("coco.json")).images[1].boxes, results.images[1].boxes);
  EXPECT_EQ(read_predictions(dir.file("coco.json"), "").images[0].boxes, coco.images[0].boxes);
}

TEST(Detect, BadCocoFiles) {
  TempDir dir;
  auto expect_error = [&](const std::string& text, const std::string& message) {
    write_bytes(dir.file("bad.json"), text);
    EXPECT_ERROR_CONTAINS(read_coco(dir.file("bad.json")), message);
  };
  const std::string header = R"({"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
                                 "categories": [{"id": 1, "name": "cat"}], "annotations": )";
  expect_error("{\"images\": [", "bad.json: not valid JSON");
  expect_error("[]", "bad.json: expected a JSON object");
  expect_error(R"({"categories": []})", "bad.json: missing \"images\"");
  expect_error(R"({"images": {}, "categories": []})", "\"images\" is not an array");
  expect_error(R"({"images": [{"id": 1}], "categories": []})", "images[0]: missing \"file_name\"");
  expect_error(R"({"images": [{"id": "1", "file_name": "a.jpg"}], "categories": []})", "images[0]: \"id\" is not an integer");
  expect_error(R"({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}], "categories": []})",
               "images[1]: image id 1 appears twice");
  expect_error(R"({"images": [{"id": 1, "file_name": "x/a.jpg"}, {"id": 2, "file_name": "y/a.jpg"}], "categories": []})",
               "two entries for image 'a.jpg'");
  expect_error(header + R"([{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]})", "annotations[0]: unknown image_id 2");
  expect_error(header + R"([{"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1]}]})", "annotations[0]: unknown category_id 4");
  expect_error(header + R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}]})", "\"bbox\" is not [x, y, width, height]");
  expect_error(header + R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 1]}]})", "\"bbox\" has no area");
  expect_error(header + R"([{"image_id": 1, "category_id": 1, "bbox": [20, 0, 5, 5]}]})",
               "annotations[0]: box lies outside the 10x10 image");
  expect_error(header + R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 2}]})", "\"iscrowd\" is not 0 or 1");

  write_bytes(dir.file("coco.json"), kCocoFile);
  write_bytes(dir.file("results.json"), R"([{"image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2]}])");
  EXPECT_ERROR_CONTAINS(read_coco_results(dir.file("results.json"), dir.file("coco.json")), "results.json[0]: missing \"score\"");
  write_bytes(dir.file("results.json"), R"({"annotations": []})");
  EXPECT_ERROR_CONTAINS(read_coco_results(dir.file("results.json"), dir.file("coco.json")), "not a COCO results file");
  EXPECT_ERROR_CONTAINS(read_predictions(dir.path(), dir.file("coco.json")), "coco_images: only used with a COCO results file");
}

TEST(Detect, CocoImagesAsASource) {
  SmallVoc voc;
  const std::string coco = voc.dir.file("coco.json");
  write_bytes(coco, R"({"images": [{"id": 1, "file_name": "c.jpg"}, {"id": 2, "file_name": "b.png"}], "categories": []})");
  auto source = open_data("coco:" + coco + ":" + voc.root + "/JPEGImages@8x8", SplitName::Test);
  ASSERT_EQ(source->size(), 2u);
  EXPECT_EQ(source->shape(), (ImageShape{3, 8, 8}));
  EXPECT_EQ(source->path(1), voc.root + "/JPEGImages/b.png");
  EXPECT_FALSE(source->labelled());
  EXPECT_ERROR_CONTAINS(open_data("coco:" + coco, SplitName::Test), "c.jpg: image of " + coco + " not found");
  EXPECT_ERROR_CONTAINS(open_data("coco:" + coco + ":" + voc.dir.file("nowhere"), SplitName::Test), "nowhere: no such folder");
}

// ---------------------------------------------------------------------------------------
// Export

// A selection of the SmallVoc images (paths as a scores file holds them).
std::string write_selection_file(const TempDir& dir, const std::vector<std::string>& paths) {
  std::string text = "id,path,pseudo_label,score\n";
  for (std::size_t i = 0; i < paths.size(); ++i) text += std::to_string(i) + "," + paths[i] + ",0,0." + std::to_string(9 - i) + "\n";
  write_bytes(dir.file("selection.csv"), text);
  return dir.file("selection.csv");
}

TEST(Detect, ExportRoundTrip) {
  SmallVoc voc;
  const std::string selection = write_selection_file(voc.dir, {voc.root + "/JPEGImages/a.jpg", voc.root + "/JPEGImages/c.jpg",
                                                               voc.root + "/JPEGImages/b.png"});
  const std::string images = voc.dir.file("images.json");
  write_bytes(images, R"({"images": [{"id": 11, "file_name": "a.jpg"}, {"id": 12, "file_name": "b.png"},
                                     {"id": 13, "file_name": "c.jpg"}],
                          "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]})");
  // Image a.jpg is 40x20; the sizes are unknown to the images file and read from the images.
  write_bytes(voc.dir.file("results.json"), R"([
    {"image_id": 11, "category_id": 1, "bbox": [1.4, 2.6, 10.2, 5], "score": 0.9},
    {"image_id": 11, "category_id": 2, "bbox": [30.2, -3, 20, 10], "score": 0.5},
    {"image_id": 11, "category_id": 2, "bbox": [5, 5, 5, 5], "score": 0.49},
    {"image_id": 11, "category_id": 1, "bbox": [39.7, 1, 0.2, 5], "score": 0.8},
    {"image_id": 13, "category_id": 1, "bbox": [0, 0, 3, 3], "score": 0.1}])");
  const Detections predictions = read_predictions(voc.dir.file("results.json"), images);
  ExportOptions options;
  options.out_voc = voc.dir.file("out/voc");
  options.out_coco = voc.dir.file("out/pseudo.json");
  const ExportSummary summary = export_pseudo_labels(selection, predictions, options);
  EXPECT_EQ(summary.selected, 3u);
  EXPECT_EQ(summary.written, 1u);
  EXPECT_EQ(summary.boxes, 2u);
  EXPECT_EQ(summary.below_confidence, 2u);
  EXPECT_EQ(summary.degenerate, 1u);  // 39.7..39.9 rounds to 40..40
  EXPECT_EQ(summary.empty_images, 2u);
  ASSERT_EQ(summary.exported.images.size(), 1u);
  const ImageBoxes& a = summary.exported.images[0];
  EXPECT_EQ(a.id, 11);
  EXPECT_EQ(a.width, 40);
  EXPECT_EQ(a.height, 20);
  // Clipped to the image and rounded to whole pixels.
  EXPECT_EQ(a.boxes, (std::vector<Box>{box("cat", 1, 3, 12, 8, false, 0.9), box("dog", 30, 0, 40, 7, false, 0.5)}));
  EXPECT_EQ(std::distance(fs::directory_iterator(options.out_voc), fs::directory_iterator()), 1);  // a.xml alone

  // What was written reads back identically, through both readers.
  expect_same_boxes(summary.exported.images, read_voc_folder(options.out_voc));
  const Detections coco = read_coco(options.out_coco);
  expect_same_boxes(summary.exported.images, coco);
  EXPECT_EQ(coco.images[0].id, 11);
  ASSERT_EQ(coco.categories.size(), 2u);
  EXPECT_EQ(coco.categories[1].name, "dog");

  // The VOC export is itself a prediction folder: exporting it again changes nothing.
  options.keep_empty = true;
  options.out_voc = voc.dir.file("again/voc");
  options.out_coco = voc.dir.file("again/pseudo.json");
  write_selection_file(voc.dir, {voc.root + "/JPEGImages/a.jpg"});
  const ExportSummary again = export_pseudo_labels(selection, read_voc_folder(voc.dir.file("out/voc")), options);
  expect_same_boxes(summary.exported.images, read_voc_folder(options.out_voc));
  expect_same_boxes(summary.exported.images, read_coco(options.out_coco));
  EXPECT_EQ(again.exported.images[0].id, 1);  // VOC files carry no id: numbered in order
}

TEST(Detect, ExportKeepsEmptyImagesOnRequest) {
  SmallVoc voc;
  const std::string selection = write_selection_file(voc.dir, {voc.root + "/JPEGImages/c.jpg"});
  write_bytes(voc.dir.file("preds/c.xml"), voc_annotation("c.jpg", 30, 30, {}));
  ExportOptions options;
  options.keep_empty = true;
  options.out_coco = voc.dir.file("pseudo.json");
  const ExportSummary summary = export_pseudo_labels(selection, read_voc_folder(voc.dir.file("preds")), options);
  EXPECT_EQ(summary.written, 1u);
  EXPECT_EQ(summary.empty_images, 1u);
  const Detections coco = read_coco(options.out_coco);
  ASSERT_EQ(coco.images.size(), 1u);
  EXPECT_TRUE(coco.images[0].boxes.empty());
  EXPECT_EQ(coco.images[0].width, 30);
}

TEST(Detect, ExportErrors) {
  SmallVoc voc;
  const Detections annotations = read_voc_annotations(voc.root, "train");
  ExportOptions options;
  options.out_coco = voc.dir.file("pseudo.json");
  const std::string selection = write_selection_file(voc.dir, {voc.root + "/JPEGImages/c.jpg"});
  EXPECT_ERROR_CONTAINS(export_pseudo_labels(selection, annotations, options),
                        "selection.csv: no predictions for the selected image 'c.jpg'");
  write_selection_file(voc.dir, {voc.root + "/JPEGImages/a.jpg", voc.dir.file("elsewhere/a.jpg")});
  EXPECT_ERROR_CONTAINS(export_pseudo_labels(selection, annotations, options), "share the file name 'a.jpg'");
  write_selection_file(voc.dir, {voc.dir.file("gone/a.jpg")});
  EXPECT_ERROR_CONTAINS(export_pseudo_labels(selection, annotations, options), "gone/a.jpg: cannot open");
  options.classes = {"cat"};
  EXPECT_ERROR_CONTAINS(export_pseudo_labels(selection, annotations, options), "unknown class 'dog' (classes: cat)");
  options.classes.clear();
  options.out_coco.clear();
  EXPECT_ERROR_CONTAINS(export_pseudo_labels(selection, annotations, options), "nothing to write");
  options.out_coco = voc.dir.file("pseudo.json");
  write_bytes(selection, "id,path,label\n");
  EXPECT_ERROR_CONTAINS(export_pseudo_labels(selection, annotations, options), "not a selection file");
  EXPECT_FALSE(fs::exists(options.out_coco));
}

// ---------------------------------------------------------------------------------------
// Report

TEST(Detect, ReportDrawsTheSelectedAndRejectedImagesWithTheirBoxes) {
  SmallVoc voc;
  auto source = open_data("voc:" + voc.root + "@8x8", "train");
  const std::string scores = voc.dir.file("scores.csv");
  {
    ScoreWriter writer(scores, score_columns());
    for (std::size_t i = 0; i < source->size(); ++i) {
      ScoreRow row;
      row.id = i;
      row.path = source->path(i);
      row.values = std::vector<double>(score_columns().size(), 1.0 - double(i));
      writer.write(row);
    }
    writer.commit();
  }
  write_selection_file(voc.dir, {source->path(0)});
  // A class name that is markup reaches the page only as data.
  write_bytes(voc.dir.file("preds/a.xml"), voc_annotation("a.jpg", 40, 20, {{"&lt;img src=x&gt;", "1", "1", "10", "20"}}));
  ReportOptions options;
  options.scores = scores;
  options.selection = voc.dir.file("selection.csv");
  options.detections = voc.dir.file("preds");
  const nlohmann::json data = report_data(options);
  const nlohmann::json& boxes = data.at("boxes");
  EXPECT_EQ(boxes.at("selected_count"), 1);
  EXPECT_EQ(boxes.at("rejected_count"), 1);
  ASSERT_EQ(boxes.at("selected").size(), 1u);
  const nlohmann::json& card = boxes.at("selected")[0];
  EXPECT_EQ(card.at("width"), 40);
  EXPECT_EQ(card.at("height"), 20);
  EXPECT_EQ(card.at("boxes")[0].at("class"), "<img src=x>");
  EXPECT_EQ(card.at("boxes")[0].at("xmax"), 10.0);
  EXPECT_EQ(card.at("image").get<std::string>().rfind("data:image/png;base64,", 0), 0u);
  EXPECT_EQ(boxes.at("rejected")[0].at("predicted"), false);  // b.png has no prediction file
  const std::string html = report_html(data);
  EXPECT_EQ(html.find("<img src=x>"), std::string::npos);

  options.detections.clear();
  EXPECT_ERROR_CONTAINS(report_data(options), "detections: a selection and detections go together");
  options.detections = voc.dir.file("preds");
  write_bytes(options.selection, "id,path,pseudo_label,score\n5,elsewhere.jpg,0,1\n");
  EXPECT_ERROR_CONTAINS(report_data(options), "image 5 (elsewhere.jpg) is not in " + scores);
}

// ---------------------------------------------------------------------------------------
// The raccoon set (Pascal VOC layout, 200 images, one class), where ../shared/data exists

TEST(Detect, RaccoonProfileScoreSelectExport) {
  const std::string shared = testing::shared_data_dir();
  const std::string archive = shared + "/raccoon-voc.tar.zst";
  if (shared.empty() || !fs::exists(archive)) GTEST_SKIP() << "raccoon-voc.tar.zst not found (../shared/data absent)";
  TempDir dir;
  ASSERT_EQ(std::system(("zstd -dc '" + archive + "' | tar -x -C '" + dir.path() + "'").c_str()), 0);
  const std::string location = dir.file("raccoon-voc") + "@64x64";

  auto train = open_data("voc:" + location, "train");
  auto val = open_data("voc:" + location, "val");
  ASSERT_EQ(train->size(), 160u);
  ASSERT_EQ(val->size(), 40u);

  // A small random backbone: the score measures nothing useful, but every step runs.
  auto model = create_model("small-cnn", {3, 64, 64}, {"0", "1"}, {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}}, 0);
  ProfileRunOptions profile_options;
  profile_options.profile.global = true;
  profile_options.quiet = true;
  profile_options.batch_size = 32;
  const auto start = std::chrono::steady_clock::now();
  const ProfileSet profiles = build_profiles(*model, *train, profile_options);
  ASSERT_EQ(profiles.profiles.size(), 1u);
  EXPECT_EQ(profiles.profiles[0].name, "global");
  EXPECT_EQ(profiles.profiles[0].count, 160u);

  ScoreRunOptions score_options;
  score_options.by = ProfileChoice::Global;
  score_options.quiet = true;
  const std::string scores = dir.file("val_scores.csv");
  ScoreWriter writer(scores, score_value_columns(profiles, false));
  EXPECT_EQ(score_images(*model, profiles, *val, score_options, [&](const ScoreRow& row) { writer.write(row); }), 40u);
  writer.commit();

  const ScoreTable table = read_score_table(scores);
  EXPECT_FALSE(table.has_labels());
  SelectOptions select_options;
  select_options.global = true;
  select_options.fraction = 0.3;
  const auto selected = select_rows(table, "image_score", select_options, 2);
  ASSERT_EQ(selected.size(), 12u);
  write_selection(dir.file("selection.csv"), table, "image_score", selected);
  std::fprintf(stderr, "raccoon: profile of 160, scores of 40, selection of 12 in %.2f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  // The val annotations stand in for a detector's predictions.
  const Detections annotations = read_voc_annotations(location, "val");
  ASSERT_EQ(annotations.images.size(), 40u);
  check_classes(annotations, {"raccoon"});
  ExportOptions export_options;
  export_options.classes = {"raccoon"};
  export_options.out_voc = dir.file("pseudo/voc");
  export_options.out_coco = dir.file("pseudo/coco.json");
  const ExportSummary exported = export_pseudo_labels(dir.file("selection.csv"), annotations, export_options);
  EXPECT_EQ(exported.written, 12u);
  EXPECT_EQ(exported.below_confidence + exported.degenerate + exported.empty_images, 0u);
  // Whole-pixel boxes inside their images pass through unchanged.
  for (const auto& image : exported.exported.images) {
    const ImageBoxes* original = annotations.find(image.file_name);
    ASSERT_NE(original, nullptr);
    EXPECT_EQ(image.boxes, original->boxes) << image.file_name;
    EXPECT_EQ(image.width, original->width);
  }
  expect_same_boxes(exported.exported.images, read_voc_folder(export_options.out_voc));
  expect_same_boxes(exported.exported.images, read_coco(export_options.out_coco));
}

}  // namespace
}  // namespace imagescore
