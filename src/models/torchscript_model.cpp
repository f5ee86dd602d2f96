// TorchScript models. LibTorch has no forward hooks, so taps are obtained by rewriting
// a copy of the module's forward graph: calls of submodules that have children are
// inlined (so that their children's calls become visible), every submodule call is a
// candidate tap named by its module path, and a chosen tap's value is cloned right after
// it is produced and returned with the logits. The module itself is never modified.
#include "torchscript_model.hpp"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "device.hpp"
#include "builtin_model.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/data/fit.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/models/device.hpp"
#include "imagescore/models/taps.hpp"

namespace imagescore::detail {
namespace {

namespace jit = torch::jit;

std::string class_name(const c10::TypePtr& type) {
  auto cls = type->cast<c10::ClassType>();
  if (!cls || !cls->name()) return "";
  // "__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d" -> "Conv2d"
  std::string name = cls->name()->qualifiedName();
  return name.substr(name.rfind('.') + 1);
}

bool has_submodules(const c10::TypePtr& type) {
  auto cls = type->cast<c10::ClassType>();
  if (!cls) return false;
  for (std::size_t i = 0; i < cls->numAttributes(); ++i)
    if (cls->getAttribute(i)->is_module()) return true;
  return false;
}

// The module path of a value reached from the graph's `self` through prim::GetAttr.
bool module_path(jit::Value* v, jit::Value* self, std::string& path) {
  std::vector<std::string> parts;
  while (v != self) {
    jit::Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return false;
    parts.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  path.clear();
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += (path.empty() ? "" : ".") + *it;
  return true;
}

bool is_forward_call(jit::Node* n) {
  return n->kind() == c10::prim::CallMethod && n->s(c10::attr::name).rfind("forward", 0) == 0;
}

struct Call {
  ModuleCall module;  // its name, type and whether it is at the top level
  jit::Value* value;  // the call's output
};

ModuleCall module_call(const std::string& name, const c10::TypePtr& type, bool top_level) {
  return {name, class_name(type), has_submodules(type), top_level};
}

// The forward graph with every call of a module that has children inlined (outside
// control flow), and its submodule calls in execution order.
struct FlatGraph {
  std::shared_ptr<jit::Graph> graph;
  std::vector<Call> calls;
};

void collect_nested_calls(jit::Block* block, jit::Value* self, std::vector<Call>& calls) {
  for (jit::Node* n : block->nodes()) {
    if (is_forward_call(n)) {
      std::string path;
      if (module_path(n->input(0), self, path)) calls.push_back({module_call(path, n->input(0)->type(), false), nullptr});
    }
    for (jit::Block* b : n->blocks()) collect_nested_calls(b, self, calls);
  }
}

FlatGraph flatten_forward(const jit::Module& module) {
  FlatGraph flat;
  flat.graph = module.get_method("forward").graph()->copy();
  jit::Value* self = flat.graph->inputs().at(0);
  std::map<std::string, int> seen;
  // Walk the top-level nodes; an inlined call's body takes its place and is walked next.
  for (jit::Node* n = flat.graph->block()->nodes().front(); n != flat.graph->block()->return_node();) {
    if (!n->blocks().empty()) {
      for (jit::Block* b : n->blocks()) collect_nested_calls(b, self, flat.calls);
      n = n->next();
      continue;
    }
    std::string path;
    if (!is_forward_call(n) || !module_path(n->input(0), self, path)) {
      n = n->next();
      continue;
    }
    int count = ++seen[path];
    const ModuleCall call = module_call(count == 1 ? path : path + "#" + std::to_string(count), n->input(0)->type(), true);
    jit::Node* after = n->next();
    jit::Node* before = n->prev();
    jit::Value* value = n->output(0);
    if (has_submodules(n->input(0)->type())) {
      auto cls = n->input(0)->type()->expect<c10::ClassType>();
      auto& callee = jit::toGraphFunction(cls->getMethod(n->s(c10::attr::name)));
      jit::Value* old_output = n->output(0);
      value = jit::inlineCallTo(n, &callee, callee.graph().get()).at(0);
      // An enclosing module whose output was this call's output now returns the body's.
      for (auto& c : flat.calls)
        if (c.value == old_output) c.value = value;
      flat.calls.push_back({call, value});
      n = before->next();  // the first node of the inlined body
      continue;
    }
    flat.calls.push_back({call, value});
    n = after;
  }
  return flat;
}

class TorchScriptModel : public Model {
 public:
  TorchScriptModel(jit::Module module, ModelMeta meta, const std::string& path)
      : module_(std::move(module)), meta_(std::move(meta)), path_(path) {
    module_.eval();
    torch::NoGradGuard no_grad;
    auto probe = torch::zeros({1, meta_.input.channels, meta_.input.height, meta_.input.width});
    auto result = module_.forward({probe});
    features_convention_ = result.isTuple();
    if (features_convention_) {
      init_from_features(result);
    } else {
      init_from_graph(probe);
    }
  }

  const ModelMeta& meta() const override { return meta_; }
  const std::vector<TapInfo>& taps() const override { return taps_; }
  std::vector<std::size_t> default_taps() const override { return defaults_; }

  ForwardOutput forward(const Batch& batch, const std::vector<std::size_t>& tap_ids) override {
    if (batch.shape != meta_.input) fail(path_, "input images do not have the model's input shape");
    torch::NoGradGuard no_grad;
    const std::size_t hidden = taps_.size() - 1;
    std::vector<std::size_t> wanted;
    for (auto id : tap_ids) {
      if (id >= taps_.size()) fail(path_, "tap index out of range");
      if (id < hidden) wanted.push_back(id);
    }
    return forward_in_chunks(batch, device_, taps_, tap_ids, [&](const torch::Tensor& chunk, int64_t) {
      ChunkOutput out;
      if (features_convention_) {
        auto result = module_.forward({chunk}).toTuple();
        out.logits = result->elements().at(0).toTensor();
        auto features = feature_list(result->elements().at(1));
        for (auto id : wanted) out.taps[id] = features.at(id);
      } else {
        auto outputs = run_graph(wanted, chunk);
        out.logits = outputs.at(0);
        for (std::size_t i = 0; i < wanted.size(); ++i) out.taps[wanted[i]] = outputs.at(i + 1);
      }
      if (out.logits.dim() != 2 || std::size_t(out.logits.size(1)) != meta_.num_classes())
        fail(path_, "the model's output is not [batch, " + std::to_string(meta_.num_classes()) + "] logits");
      return out;
    });
  }

  std::string device() const override { return device_.str(); }
  void to_device(const std::string& device) override {
    device_ = torch_device(device);
    module_.to(device_);
  }

  std::string hash_weights() const {
    std::uint64_t h = 1469598103934665603ULL;
    for (const auto& p : module_.named_parameters(true)) {
      auto t = p.value.detach().contiguous().cpu();
      h = fnv1a64(p.name.data(), p.name.size(), h);
      h = fnv1a64(t.data_ptr(), std::size_t(t.numel()) * t.element_size(), h);
    }
    for (const auto& b : module_.named_buffers(true)) {
      auto t = b.value.contiguous().cpu();
      h = fnv1a64(b.name.data(), b.name.size(), h);
      h = fnv1a64(t.data_ptr(), std::size_t(t.numel()) * t.element_size(), h);
    }
    return hex64(h);
  }
  ModelMeta& mutable_meta() { return meta_; }

 private:
  // The (logits, features) convention: features a dict (names = keys) or a list.
  std::vector<torch::Tensor> feature_list(const c10::IValue& features) const {
    std::vector<torch::Tensor> out;
    if (features.isGenericDict()) {
      for (const auto& item : features.toGenericDict()) out.push_back(item.value().toTensor());
    } else if (features.isList()) {
      for (const auto& item : features.toList()) out.push_back(item.get().toTensor());
    } else if (features.isTensorList()) {
      for (const auto& t : features.toTensorList()) out.push_back(t);
    } else {
      fail(path_, "the model returns a tuple whose second element is not a dict or list of feature tensors");
    }
    return out;
  }

  void init_from_features(const c10::IValue& result) {
    auto tuple = result.toTuple();
    if (tuple->elements().size() != 2 || !tuple->elements()[0].isTensor())
      fail(path_, "a model returning a tuple must return (logits, features)");
    const auto& features = tuple->elements()[1];
    std::vector<std::string> names;
    if (features.isGenericDict()) {
      for (const auto& item : features.toGenericDict()) names.push_back(item.key().toStringRef());
    }
    auto values = feature_list(features);
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::string name = i < names.size() ? names[i] : "features." + std::to_string(i);
      auto sizes = values[i].sizes();
      taps_.push_back({name, std::vector<int64_t>(sizes.begin() + 1, sizes.end())});
      defaults_.push_back(i);
    }
    finish_taps(tuple->elements()[0].toTensor());
  }

  void init_from_graph(const torch::Tensor& probe) {
    auto flat = flatten_forward(module_);
    std::vector<std::size_t> all;
    for (std::size_t i = 0; i < flat.calls.size(); ++i) {
      const auto& c = flat.calls[i];
      if (!c.module.top_level) {
        inside_control_flow_.insert(c.module.name);
        continue;
      }
      if (c.value->type()->kind() != c10::TypeKind::TensorType) continue;
      call_of_tap_.push_back(i);
      taps_.push_back({c.module.name, {}});
    }
    for (std::size_t i = 0; i < taps_.size(); ++i) all.push_back(i);
    auto outputs = run_graph(all, probe);
    for (std::size_t i = 0; i < taps_.size(); ++i) {
      auto sizes = outputs.at(i + 1).sizes();
      taps_[i].shape.assign(sizes.begin() + 1, sizes.end());
    }
    std::vector<ModuleCall> calls;
    for (const auto& c : flat.calls) calls.push_back(c.module);
    auto names = default_tap_names(calls);
    for (std::size_t i = 0; i < taps_.size(); ++i)
      if (std::find(names.begin(), names.end(), taps_[i].name) != names.end()) defaults_.push_back(i);
    finish_taps(outputs.at(0));
  }

  void finish_taps(const torch::Tensor& logits) {
    if (logits.dim() != 2) fail(path_, "the model's output is not [batch, classes] logits");
    if (meta_.class_names.empty())
      for (int64_t c = 0; c < logits.size(1); ++c) meta_.class_names.push_back(std::to_string(c));
    if (int64_t(meta_.class_names.size()) != logits.size(1))
      fail(path_, "the preprocessing names " + std::to_string(meta_.class_names.size()) + " classes but the model outputs " +
                      std::to_string(logits.size(1)));
    taps_.push_back({"output", {logits.size(1)}});
    defaults_.push_back(taps_.size() - 1);
  }

  // Runs forward through a rewritten graph returning the logits and clones of the taps.
  std::vector<torch::Tensor> run_graph(const std::vector<std::size_t>& wanted, const torch::Tensor& input) {
    auto it = functions_.find(wanted);
    if (it == functions_.end()) {
      auto flat = flatten_forward(module_);
      std::vector<jit::Value*> outputs = {flat.graph->outputs().at(0)};
      for (auto id : wanted) {
        const auto& call = flat.calls.at(call_of_tap_.at(id));
        jit::Node* producer = call.value->node();
        jit::WithInsertPoint guard(producer->kind() == c10::prim::Param ? flat.graph->block()->nodes().front() : producer->next());
        // Cloned at once: an in-place operation later in the graph would overwrite it.
        outputs.push_back(flat.graph->insert(c10::aten::clone, {call.value}));
      }
      jit::WithInsertPoint guard(flat.graph->return_node());
      auto* tuple = flat.graph->insertNode(flat.graph->createTuple(outputs));
      flat.graph->eraseOutput(0);
      flat.graph->registerOutput(tuple->output());
      auto fn = std::make_shared<jit::GraphFunction>("imagescore_tapped_forward", flat.graph, nullptr);
      it = functions_.emplace(wanted, fn).first;
    }
    auto result = (*it->second)({module_._ivalue(), input}).toTuple();
    std::vector<torch::Tensor> out;
    for (const auto& v : result->elements()) {
      if (!v.isTensor()) fail(path_, "a tapped value is not a tensor");
      out.push_back(v.toTensor());
    }
    return out;
  }

 public:
  std::string tap_unavailable_reason(const std::string& name) const override {
    if (inside_control_flow_.count(name))
      return "'" + name + "' is called inside control flow (prim::If or prim::Loop) and cannot be tapped";
    if (taps_.size() == 1 && !features_convention_)
      return "the model has no submodule calls to tap (frozen or fully inlined?); export it unfrozen or return "
             "(logits, features)";
    return "";
  }

 private:
  jit::Module module_;
  ModelMeta meta_;
  std::string path_;
  bool features_convention_ = false;
  torch::Device device_ = torch::kCPU;
  std::vector<TapInfo> taps_;
  std::vector<std::size_t> defaults_;
  std::vector<std::size_t> call_of_tap_;
  std::set<std::string> inside_control_flow_;
  std::map<std::vector<std::size_t>, std::shared_ptr<jit::GraphFunction>> functions_;
};

ModelMeta read_preprocessing(const std::string& path) {
  ModelMeta m;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path, 1 << 20));
    if (!j.is_object()) fail(path, "expected a JSON object with input, mean, std, classes and fit");
    for (const auto& [key, value] : j.items())
      if (key != "input" && key != "mean" && key != "std" && key != "classes" && key != "fit")
        fail(path, "unknown key '" + key + "' (expected input, mean, std, classes, fit)");
    auto in = j.at("input").get<std::vector<int>>();
    if (in.size() != 3 || in[0] <= 0 || in[1] <= 0 || in[2] <= 0 || in[1] > 16384 || in[2] > 16384)
      fail(path, "'input' must be [channels, height, width]");
    m.input = {in[0], in[1], in[2]};
    m.normalization.mean = j.value("mean", std::vector<float>(std::size_t(in[0]), 0.f));
    m.normalization.std = j.value("std", std::vector<float>(std::size_t(in[0]), 1.f));
    if (m.normalization.mean.size() != std::size_t(in[0]) || m.normalization.std.size() != std::size_t(in[0]))
      fail(path, "'mean' and 'std' need one value per channel");
    for (float s : m.normalization.std)
      if (!(s > 0)) fail(path, "'std' values must be > 0");
    m.class_names = j.value("classes", std::vector<std::string>{});
    m.input_fit = j.value("fit", std::string{});
    if (!m.input_fit.empty()) {
      try {
        parse_input_fit(std::to_string(in[1]) + "x" + std::to_string(in[2]) + "," + m.input_fit);
      } catch (const Error& e) {
        fail(path, std::string("'fit': ") + e.what());
      }
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("bad preprocessing description: ") + e.what());
  }
  return m;
}

}  // namespace

std::unique_ptr<Model> load_torchscript(const std::string& path, const std::string& preprocess) {
  const std::string description = preprocess.empty() ? path + ".json" : preprocess;
  std::ifstream probe(description);
  if (!probe)
    fail(path, "a TorchScript model needs its preprocessing: write " + description +
                   " with input [C,H,W], mean, std and classes (docs/torchscript.md)");
  ModelMeta meta = read_preprocessing(description);
  jit::Module module;
  try {
    module = jit::load(path);
  } catch (const std::exception& e) {
    std::string what = e.what();
    fail(path, "cannot load the TorchScript module: " + what.substr(0, what.find('\n')));
  }
  meta.arch = "torchscript";
  meta.data_spec = "";
  try {
    auto model = std::make_unique<TorchScriptModel>(std::move(module), meta, path);
    model->mutable_meta().weights_hash = model->hash_weights();
    model->to_device(current_device());
    return model;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // c10::Error and the interpreter's JITException
    std::string what = e.what();
    fail(path, "running the model on a blank " + std::to_string(meta.input.channels) + "x" + std::to_string(meta.input.height) +
                   "x" + std::to_string(meta.input.width) + " input failed: " + what.substr(0, what.find('\n')));
  }
}

}  // namespace imagescore::detail
