// Detection mode (SPEC section 6, the paper's section 3.2): object-detection data sets as
// image sources for a backbone (Pascal VOC and COCO, any image size fitted to the
// backbone's input), their boxes, and pseudo-labels: the predicted boxes of the selected
// images written as Pascal VOC XML and COCO JSON. See docs/detection.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imagescore/data/data.hpp"
#include "imagescore/data/fit.hpp"
#include "imagescore/score/scores_table.hpp"

namespace imagescore {

// The images of a Pascal VOC folder, unlabelled (detection profiles are global), fitted
// to `fit`, always 3 channels. `location` is what follows "voc:" in the data spec,
// DIR[@HxW[,resize]]; without @ the input is 224x224, letter-boxed. The images are those
// listed in DIR/ImageSets/Main/<list>.txt, or, when DIR has no ImageSets/Main folder,
// every DIR/Annotations/*.xml (sorted by name); each is DIR/JPEGImages/<name>.jpg (or
// .jpeg or .png).
std::unique_ptr<ImageSource> open_voc_images(const std::string& location, const std::string& list, const std::string& spec);

// The images of a COCO file, in the order of its "images" array, unlabelled and fitted
// like VOC images. `location` is FILE[:IMAGE_DIR][@HxW[,resize]] (the image folder
// defaults to the file's own folder; FILE must not contain ':').
std::unique_ptr<ImageSource> open_coco_images(const std::string& location, const std::string& spec);

// ---- boxes ----------------------------------------------------------------------------

// One box in 0-based, continuous pixel coordinates: COCO's [x, y, w, h] is
// (x, y, x + w, y + h). A VOC box (1-based pixel indices, inclusive) is
// (xmin - 1, ymin - 1, xmax, ymax).
struct Box {
  std::string class_name;
  double xmin = 0, ymin = 0, xmax = 0, ymax = 0;
  bool difficult = false;  // VOC <difficult>1; COCO "iscrowd": 1
  double score = 1.0;      // a prediction's confidence; 1 where the file has none
  bool operator==(const Box& other) const;
};

struct ImageBoxes {
  std::string file_name;  // the image's file name without folder: what matches images
  std::int64_t id = 0;    // the COCO image id; 0 for VOC files
  int width = 0, height = 0, depth = 0;  // from the file; 0 where it does not say
  std::vector<Box> boxes;
  std::string origin;     // the file the boxes were read from (for messages)
};

struct Category {
  std::int64_t id = 0;
  std::string name;
};

struct Detections {
  std::vector<Category> categories;  // COCO's, or for VOC files the names sorted, ids 1..K
  std::vector<ImageBoxes> images;
  // The image with this file name, or null (the readers refuse two images of one name).
  const ImageBoxes* find(const std::string& file_name) const;
};

// One VOC annotation file. Boxes are checked (finite, xmin <= xmax, ymin <= ymax) and,
// where <size> gives the image size, clipped to the image; a box wholly outside the
// image (nothing left after clipping) is an error.
ImageBoxes read_voc_xml(const std::string& path);
// Every *.xml of a folder (a folder of predictions, or an export), sorted by file name.
Detections read_voc_folder(const std::string& dir);
// The annotations of the images open_voc_images(location, list) gives, in its order.
Detections read_voc_annotations(const std::string& location, const std::string& list);

// A COCO data set file (images, annotations, categories); an annotation's optional
// "score" is its confidence.
Detections read_coco(const std::string& path);
// A COCO results file ([{image_id, category_id, bbox, score}, ...]) with the COCO file
// that names its images and categories (its own annotations are ignored).
Detections read_coco_results(const std::string& results_path, const std::string& images_path);
// Predictions in any of the supported forms: a folder of VOC XML files, a COCO data set
// file, or a COCO results file (which needs `coco_images`).
Detections read_predictions(const std::string& predictions, const std::string& coco_images);

// Fails naming the file and the box if a class name is not in `classes`.
void check_classes(const Detections& detections, const std::vector<std::string>& classes);

// A VOC annotation document for one image (whole-pixel coordinates as in read_voc_xml).
std::string voc_xml(const ImageBoxes& image);
// COCO data set JSON text of the detections (boxes as [x, y, w, h]).
std::string coco_json(const Detections& detections);

// ---- pseudo-labels --------------------------------------------------------------------

struct ExportOptions {
  double min_confidence = 0.5;      // boxes scoring below are dropped
  bool keep_empty = false;          // also write selected images left without boxes
  std::vector<std::string> classes; // if given, every predicted class must be one of them
  std::string out_voc;              // folder for <image stem>.xml (empty: none)
  std::string out_coco;             // COCO JSON file (empty: none)
};

struct ExportSummary {
  std::size_t selected = 0;          // images in the selection
  std::size_t written = 0;           // images written (with at least one box unless keep_empty)
  std::size_t boxes = 0;             // boxes written
  std::size_t below_confidence = 0;  // boxes dropped by min_confidence
  std::size_t degenerate = 0;        // boxes empty once clipped and rounded to whole pixels
  std::size_t empty_images = 0;      // selected images left without boxes
  Detections exported;               // exactly what was written
};

// Writes the selected images' predicted boxes (confidence >= min_confidence, clipped to
// the image, rounded to whole pixels) as VOC XML files and one COCO JSON, atomically.
// A selected image is matched to its predictions by file name (the path's last
// component); its size is read from the image file at the selection's path.
ExportSummary export_pseudo_labels(const std::string& selection_path, const Detections& predictions,
                                   const ExportOptions& options);

// ---- the report's detection section ----------------------------------------------

// The HTML report shows the selected and the rejected images with their predicted boxes.
struct DetectionSectionOptions {
  std::string selection;     // selection CSV of the scored images
  std::string predictions;   // folder of VOC XML files or a COCO file
  std::string coco_images;   // with a COCO results file: the file naming its images
  double min_confidence = 0.5;
  std::size_t count = 12;    // images shown of the selected and of the rejected
};

// The selected and the rejected images of `table` (each by `by`, highest first) as
// thumbnails of the original image files with their predicted boxes.
nlohmann::json detection_section(const ScoreTable& table, const std::string& by, const DetectionSectionOptions& options);

}  // namespace imagescore
