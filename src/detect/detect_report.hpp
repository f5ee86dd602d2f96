// The report's detection section (used by src/report/report.cpp).
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "imagescore/score/scores_table.hpp"

namespace imagescore::detail {

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

}  // namespace imagescore::detail
