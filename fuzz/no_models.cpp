// The fuzz targets link no LibTorch: what loads a model (the explorer's --model, which no
// target gives) fails here as it would on a file that is no model.
#include "imagescore/core/error.hpp"
#include "imagescore/models/model.hpp"

namespace imagescore {

std::unique_ptr<Model> load_model(const std::string& path, const std::string&) {
  fail(path, "no models in the fuzz build");
}

std::unique_ptr<ImageSource> align_to_model(const Model&, const ImageSource& source) {
  fail(source.spec(), "no models in the fuzz build");
}

}  // namespace imagescore
