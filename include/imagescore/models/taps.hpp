// What models from outside the toolkit share with each other: the default-tap rule for the
// module calls of a forward pass (SPEC section 2, docs/torchscript.md) and the `output`
// tap. Free of LibTorch, so that TorchScript models (graph calls) and the Python package
// (a torch.nn.Module's forward hooks) apply one rule and compute one softmax.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace imagescore {

// One call of a submodule in a forward pass, in call order (a module before the calls
// inside it).
struct ModuleCall {
  std::string name;           // module path as in named_modules(); "#2", "#3"... for later calls
  std::string type_name;      // the module's class name: Conv2d, Sequential, BasicBlock
  bool has_children = false;  // the module has submodules of its own
  bool top_level = true;      // false inside control flow (TorchScript's prim::If, prim::Loop)
};

// The default taps: each conv or linear block's output after its norm, activation and
// pooling; each block module (a non-container with children, such as a residual block) as
// a whole; not the classifier (a last bare linear layer, seen through `output`).
std::vector<std::string> default_tap_names(const std::vector<ModuleCall>& calls);

// The `output` tap of `rows` images: each row's softmax of the logits, computed in double
// (so that it does not depend on the batch) and stored as float.
void softmax_rows(const float* logits, std::size_t rows, std::size_t classes, float* out);

}  // namespace imagescore
