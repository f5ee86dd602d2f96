// TorchScript models behind the Model interface (internal).
#pragma once

#include <memory>
#include <string>

#include "imagescore/models/model.hpp"

namespace imagescore::detail {

// Loads a TorchScript module; `preprocess` is its JSON description (default: path + ".json").
std::unique_ptr<Model> load_torchscript(const std::string& path, const std::string& preprocess);

}  // namespace imagescore::detail
