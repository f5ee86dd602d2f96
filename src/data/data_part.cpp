#include "imagescore/data/data.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/data/split.hpp"

namespace imagescore {

std::unique_ptr<ImageSource> open_data_part(const std::string& spec, const std::string& split_name,
                                            const std::string& split_file, const std::string& part) {
  if (split_file.empty()) {
    if (!part.empty()) fail_option("part", "needs a split file");
    return open_data(spec, split_name);
  }
  if (part != "training" && part != "additional")
    fail_option("part", "expected training or additional, got '" + part + "'");
  auto split = load_split(split_file);
  // A split always divides a training set.
  auto source = open_data(spec.empty() ? split.data_spec : spec, SplitName::Train);
  check_split_matches(split, *source, split_file);
  return subset(std::move(source), part == "training" ? split.training : split.additional);
}

}  // namespace imagescore
