#include "imagescore/models/taps.hpp"

#include <algorithm>
#include <cmath>
#include <regex>

namespace imagescore {
namespace {

// What role a module plays in the default tap rule, from its class name.
enum class Kind { Container, Conv, Linear, Norm, Activation, Pool, Dropout, Passthrough, Block, Other };

Kind kind_of(const ModuleCall& call) {
  const std::string& n = call.type_name;
  static const std::regex conv("Conv(Transpose)?[123]d"), norm("(BatchNorm|InstanceNorm)[123]d|GroupNorm|LayerNorm"),
      act("ReLU6?|LeakyReLU|PReLU|ELU|SELU|CELU|GELU|SiLU|Mish|Sigmoid|Tanh|Hardswish|Hardsigmoid|Hardtanh|Softplus"),
      pool("(Max|Avg|AdaptiveMax|AdaptiveAvg|LP)Pool[123]d"), drop("(Alpha)?Dropout([123]d)?"),
      pass("Flatten|Identity|Unflatten");
  if (n == "Sequential" || n == "ModuleList" || n == "ModuleDict") return Kind::Container;
  if (std::regex_match(n, conv)) return Kind::Conv;
  if (n == "Linear" || n == "LazyLinear") return Kind::Linear;
  if (std::regex_match(n, norm)) return Kind::Norm;
  if (std::regex_match(n, act)) return Kind::Activation;
  if (std::regex_match(n, pool)) return Kind::Pool;
  if (std::regex_match(n, drop)) return Kind::Dropout;
  if (std::regex_match(n, pass)) return Kind::Passthrough;
  return call.has_children ? Kind::Block : Kind::Other;
}

// Repeated calls and calls inside control flow take no part in the rule.
bool counts(const ModuleCall& c) { return c.top_level && c.name.find('#') == std::string::npos; }

}  // namespace

std::vector<std::string> default_tap_names(const std::vector<ModuleCall>& calls) {
  std::vector<std::string> taps;
  std::string inside_block;  // calls within a block module belong to it
  std::string open;          // the current block's tap candidate
  bool opened_by = false;    // a conv/linear block is open
  Kind open_kind = Kind::Other;
  auto close = [&] {
    if (opened_by && !open.empty()) taps.push_back(open);
    open.clear();
    opened_by = false;
  };
  for (const auto& c : calls) {
    if (!counts(c)) continue;
    if (!inside_block.empty() && c.name.rfind(inside_block + ".", 0) == 0) continue;
    const Kind kind = kind_of(c);
    switch (kind) {
      case Kind::Conv:
      case Kind::Linear:
        close();
        open = c.name;
        opened_by = true;
        open_kind = kind;
        break;
      case Kind::Norm:
      case Kind::Activation:
      case Kind::Pool:
        if (opened_by) {
          open = c.name;
          open_kind = kind;
        }
        break;
      case Kind::Block:
        close();
        taps.push_back(c.name);
        inside_block = c.name;
        break;
      default:
        break;
    }
  }
  // The last block, when it is a bare linear layer, is the classifier.
  if (opened_by && open_kind != Kind::Linear) taps.push_back(open);
  return taps;
}

void softmax_rows(const float* logits, std::size_t rows, std::size_t classes, float* out) {
  for (std::size_t i = 0; i < rows; ++i) {
    const float* z = logits + i * classes;
    const double top = *std::max_element(z, z + classes);
    double total = 0;
    for (std::size_t c = 0; c < classes; ++c) total += std::exp(double(z[c]) - top);
    for (std::size_t c = 0; c < classes; ++c) out[i * classes + c] = float(std::exp(double(z[c]) - top) / total);
  }
}

}  // namespace imagescore
