#include "builtin_model.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "imagescore/core/error.hpp"
#include "imagescore/data/fit.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/random.hpp"
#include "imagescore/core/runtime.hpp"
#include "imagescore/models/device.hpp"
#include "imagescore/models/taps.hpp"
#include "imagescore/core/safetensors.hpp"
#include "device.hpp"
#include "torchscript_model.hpp"

namespace imagescore {

const std::vector<std::string>& builtin_architectures() {
  static const std::vector<std::string> names = {"small-cnn", "vgg16", "resnet18"};
  return names;
}

namespace detail {
namespace {

constexpr const char* kMetaKey = "imagescore.model";
// Images per evaluation chunk: small on the CPU, larger where a GPU needs the work.
int64_t eval_chunk(const torch::Device& device) { return device.is_cpu() ? 32 : 256; }

std::string weights_hash(torch::nn::Module& module) {
  std::uint64_t h = 1469598103934665603ULL;
  for_each_state_tensor(module, [&](const std::string& name, torch::Tensor& t) {
    auto c = t.contiguous().cpu();
    h = fnv1a64(name.data(), name.size(), h);
    h = fnv1a64(c.data_ptr(), std::size_t(c.numel()) * c.element_size(), h);
  });
  return hex64(h);
}

nlohmann::json meta_to_json(const ModelMeta& m) {
  return {{"format", "imagescore-model"},
          {"version", 1},
          {"arch", m.arch},
          {"input", {m.input.channels, m.input.height, m.input.width}},
          {"classes", m.class_names},
          {"normalization", {{"mean", m.normalization.mean}, {"std", m.normalization.std}}},
          {"data", m.data_spec},
          {"training", nlohmann::json::parse(m.training_json)},
          {"weights_hash", m.weights_hash}};
}

ModelMeta meta_from_json(const std::string& text, const std::string& path) {
  ModelMeta m;
  try {
    auto j = nlohmann::json::parse(text);
    if (j.at("format") != "imagescore-model") fail(path, "not an imagescore model checkpoint");
    if (j.at("version").get<int>() != 1)
      fail(path, "unsupported checkpoint version " + j.at("version").dump());
    m.arch = j.at("arch").get<std::string>();
    auto in = j.at("input").get<std::vector<int>>();
    if (in.size() != 3 || in[0] <= 0 || in[1] <= 0 || in[2] <= 0) fail(path, "bad input shape in checkpoint");
    m.input = {in[0], in[1], in[2]};
    m.class_names = j.at("classes").get<std::vector<std::string>>();
    m.normalization.mean = j.at("normalization").at("mean").get<std::vector<float>>();
    m.normalization.std = j.at("normalization").at("std").get<std::vector<float>>();
    if (m.normalization.mean.size() != std::size_t(m.input.channels) ||
        m.normalization.std.size() != std::size_t(m.input.channels))
      fail(path, "normalization does not match the input channels");
    m.data_spec = j.value("data", "");
    m.training_json = j.value("training", nlohmann::json::object()).dump();
    m.weights_hash = j.at("weights_hash").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("bad model metadata: ") + e.what());
  }
  return m;
}

// TorchScript files are zip archives; checkpoints are safetensors.
bool is_zip_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

}  // namespace

void for_each_state_tensor(torch::nn::Module& module, const std::function<void(const std::string&, torch::Tensor&)>& f) {
  for (auto& p : module.named_parameters()) f(p.key(), p.value());
  for (auto& b : module.named_buffers()) f(b.key(), b.value());
}

torch::Tensor batch_tensor(const Batch& batch) {
  return torch::from_blob(const_cast<float*>(batch.pixels.data()),
                          {int64_t(batch.size()), batch.shape.channels, batch.shape.height, batch.shape.width},
                          torch::kFloat32);
}

BuiltinModel::BuiltinModel(ModelMeta meta, std::shared_ptr<ClassifierNet> net) : meta_(std::move(meta)), net_(std::move(net)) {
  // Tap shapes come from one forward pass of a blank image.
  torch::NoGradGuard no_grad;
  net_->eval();
  auto names = net_->tap_names();
  TapRecorder recorder(std::vector<bool>(names.size(), true));
  auto logits = net_->forward(torch::zeros({1, meta_.input.channels, meta_.input.height, meta_.input.width}), &recorder);
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto sizes = recorder.value(i).sizes();
    taps_.push_back({names[i], std::vector<int64_t>(sizes.begin() + 1, sizes.end())});
  }
  taps_.push_back({"output", {logits.size(1)}});
  refresh_weights_hash();
}

std::vector<std::size_t> BuiltinModel::default_taps() const {
  const auto pooled = net_->pooled_taps();
  std::vector<std::size_t> ids;
  for (std::size_t i = 0; i < taps_.size(); ++i)
    if (std::find(pooled.begin(), pooled.end(), i) == pooled.end()) ids.push_back(i);
  return ids;
}

std::optional<LinearHead> BuiltinModel::linear_head() const {
  auto& head = net_->head();
  auto weight = head->weight.detach().contiguous().cpu();
  auto bias = head->bias.detach().contiguous().cpu();
  LinearHead h;
  h.tap = net_->head_tap();
  h.weight.assign(weight.data_ptr<float>(), weight.data_ptr<float>() + weight.numel());
  h.bias.assign(bias.data_ptr<float>(), bias.data_ptr<float>() + bias.numel());
  return h;
}

std::vector<float> BuiltinModel::logits_with_dropout(const Batch& batch, std::uint64_t seed) {
  if (!net_->has_dropout()) return Model::logits_with_dropout(batch, seed);
  torch::NoGradGuard no_grad;
  net_->eval();
  std::vector<std::uint64_t> seeds(batch.size());
  for (std::size_t i = 0; i < seeds.size(); ++i) seeds[i] = mix_seed(seed, batch.indices[i]);
  return forward_in_chunks(batch, device_, taps_, {}, [&](const torch::Tensor& chunk, int64_t first) {
           std::vector<std::uint64_t> rows(std::size_t(chunk.size(0)), 0);  // padding rows: any masks
           for (std::size_t r = 0; r < rows.size() && std::size_t(first) + r < seeds.size(); ++r)
             rows[r] = seeds[std::size_t(first) + r];
           const RowDropout dropout(std::move(rows));
           ChunkOutput out;
           out.logits = net_->forward(chunk, nullptr, &dropout);
           return out;
         })
      .logits;
}

void BuiltinModel::refresh_weights_hash() { meta_.weights_hash = weights_hash(*net_); }

std::unique_ptr<TrainingSession> BuiltinModel::start_training(const OptimizerOptions& options) {
  return start_builtin_training(*this, options);
}

void BuiltinModel::record_training(const std::string& data_spec, const std::string& training_json) {
  meta_.data_spec = data_spec;
  meta_.training_json = training_json;
}

ForwardOutput BuiltinModel::forward(const Batch& batch, const std::vector<std::size_t>& tap_ids) {
  if (batch.shape != meta_.input)
    fail("model " + meta_.arch, "input images are " + std::to_string(batch.shape.channels) + "x" +
                                    std::to_string(batch.shape.height) + "x" + std::to_string(batch.shape.width) +
                                    ", the model expects " + std::to_string(meta_.input.channels) + "x" +
                                    std::to_string(meta_.input.height) + "x" + std::to_string(meta_.input.width));
  torch::NoGradGuard no_grad;
  net_->eval();
  const std::size_t hidden = taps_.size() - 1;  // all but `output`
  std::vector<bool> wanted(hidden, false);
  for (auto id : tap_ids) {
    if (id >= taps_.size()) fail("model " + meta_.arch, "tap index out of range");
    if (id < hidden) wanted[id] = true;
  }
  return forward_in_chunks(batch, device_, taps_, tap_ids, [&](const torch::Tensor& chunk, int64_t) {
    TapRecorder recorder(wanted);
    ChunkOutput out;
    out.logits = net_->forward(chunk, &recorder);
    for (std::size_t id = 0; id < hidden; ++id)
      if (wanted[id]) out.taps[id] = recorder.value(id);
    return out;
  });
}

void BuiltinModel::to_device(const std::string& device) {
  device_ = detail::torch_device(device);
  net_->to(device_);
}

ForwardOutput forward_in_chunks(const Batch& batch, const torch::Device& device, const std::vector<TapInfo>& taps,
                                const std::vector<std::size_t>& tap_ids,
                                const std::function<ChunkOutput(const torch::Tensor&, int64_t)>& run_chunk) {
  const auto rows = int64_t(batch.size());
  const int64_t chunk_size = eval_chunk(device);
  auto input = to_device(batch_tensor(batch), device);
  std::vector<torch::Tensor> logit_chunks;
  // Each tap's chunks stay separate blocks on the host: joining them would copy every
  // activation once more.
  struct Storage {
    std::map<std::size_t, std::vector<torch::Tensor>> taps;
    std::vector<float> softmax;
  };
  auto keep = std::make_shared<Storage>();
  for (int64_t start = 0; start < rows; start += chunk_size) {
    auto chunk = input.slice(0, start, std::min(rows, start + chunk_size));
    if (chunk.size(0) < chunk_size)
      chunk = torch::cat({chunk, torch::zeros({chunk_size - chunk.size(0), input.size(1), input.size(2), input.size(3)},
                                              input.options())});
    auto out = run_chunk(chunk, start);
    logit_chunks.push_back(out.logits);
    for (auto& [id, value] : out.taps) keep->taps[id].push_back(to_host_async(value.to(torch::kFloat32)));
  }
  auto logits = to_host_async(torch::cat(logit_chunks).slice(0, 0, rows).to(torch::kFloat32));
  wait_for(device);
  ForwardOutput out;
  out.batch = std::size_t(rows);
  out.num_classes = std::size_t(logits.size(1));
  out.logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  const std::size_t k = out.num_classes;
  for (auto id : tap_ids) {
    if (id + 1 < taps.size()) {
      TapView view;
      view.block_rows = std::size_t(chunk_size);
      view.numel = taps[id].numel();
      for (const auto& block : keep->taps.at(id)) view.blocks.push_back(block.data_ptr<float>());
      out.taps.push_back(std::move(view));
      continue;
    }
    keep->softmax.resize(out.batch * k);
    softmax_rows(out.logits.data(), out.batch, k, keep->softmax.data());
    out.taps.push_back(TapView::contiguous(keep->softmax.data(), out.batch, k));
  }
  out.storage = keep;
  return out;
}

}  // namespace detail

std::unique_ptr<TrainableModel> create_model(const std::string& arch, const ImageShape& input,
                                    const std::vector<std::string>& class_names, const Normalization& norm,
                                    std::uint64_t seed) {
  torch::manual_seed(seed);
  ModelMeta meta;
  meta.arch = arch;
  meta.input = input;
  meta.class_names = class_names;
  meta.normalization = norm;
  auto model = std::make_unique<detail::BuiltinModel>(meta, detail::make_net(arch, input, int(class_names.size())));
  model->to_device(current_device());
  return model;
}

void save_model(const TrainableModel& model, const std::string& path) { model.save(path); }

void detail::BuiltinModel::save(const std::string& path) const {
  SafetensorsFile file;
  file.metadata[detail::kMetaKey] = detail::meta_to_json(meta_).dump();
  detail::for_each_state_tensor(*net_, [&](const std::string& name, torch::Tensor& t) {
    auto c = t.detach().contiguous().cpu();
    StoredTensor st;
    st.name = name;
    if (c.scalar_type() == torch::kFloat32)
      st.dtype = DType::F32;
    else if (c.scalar_type() == torch::kInt64)
      st.dtype = DType::I64;
    else
      fail(path, "unsupported tensor type in " + name);
    st.shape.assign(c.sizes().begin(), c.sizes().end());
    st.bytes.assign(static_cast<const char*>(c.data_ptr()), std::size_t(c.numel()) * c.element_size());
    file.tensors.push_back(std::move(st));
  });
  write_safetensors(path, file);
}

std::unique_ptr<Model> load_model(const std::string& path, const std::string& preprocess) {
  if (detail::is_zip_file(path)) return detail::load_torchscript(path, preprocess);
  if (!preprocess.empty()) fail(path, "is a checkpoint: a preprocessing file applies to TorchScript models only");
  return load_trainable_model(path);
}

std::unique_ptr<TrainableModel> load_trainable_model(const std::string& path) {
  if (detail::is_zip_file(path)) fail(path, "is a TorchScript module: only imagescore checkpoints can be trained further");
  auto file = read_safetensors(path);
  require_checksum(file, "`imagescore train`");
  auto it = file.metadata.find(detail::kMetaKey);
  if (it == file.metadata.end()) fail(path, "not an imagescore model checkpoint (no model metadata)");
  ModelMeta meta = detail::meta_from_json(it->second, path);
  auto net = detail::make_net(meta.arch, meta.input, int(meta.class_names.size()));
  torch::NoGradGuard no_grad;
  std::size_t expected = 0;
  detail::for_each_state_tensor(*net, [&](const std::string& name, torch::Tensor& t) {
    ++expected;
    if (!file.has(name)) fail(path, "missing tensor '" + name + "' for a " + meta.arch);
    const auto& st = file.at(name);
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (st.shape != shape) fail(path, "tensor '" + name + "' has the wrong shape for a " + meta.arch);
    bool type_ok = (t.scalar_type() == torch::kFloat32 && st.dtype == DType::F32) ||
                   (t.scalar_type() == torch::kInt64 && st.dtype == DType::I64);
    if (!type_ok) fail(path, "tensor '" + name + "' has the wrong type");
    std::memcpy(t.data_ptr(), st.bytes.data(), st.bytes.size());
  });
  if (expected != file.tensors.size()) fail(path, "unexpected extra tensors for a " + meta.arch);
  std::string stored_hash = meta.weights_hash;
  auto model = std::make_unique<detail::BuiltinModel>(meta, net);
  if (model->meta().weights_hash != stored_hash)
    fail(path, "weights_hash " + stored_hash + " in the header does not match the weights (" +
                   model->meta().weights_hash + ")");
  model->to_device(current_device());
  return model;
}


namespace {

bool numbered(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] != std::to_string(i)) return false;
  return true;
}

std::string quoted_list(const std::vector<std::string>& names, std::size_t limit = 10) {
  std::string text;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i) text += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > limit) text += " and " + std::to_string(names.size() - limit) + " more";
  return text;
}

// A folder: or csv: spec that gives no size: its images could be fitted with @HxW.
bool unsized_image_files(const std::string& spec) {
  return (spec.rfind("folder:", 0) == 0 || spec.rfind("csv:", 0) == 0) &&
         !split_input_fit(spec.substr(spec.find(':') + 1), spec, FitMode::Crop).second;
}

}  // namespace

std::string spec_for_model(const std::string& spec, const Model& model) {
  const ModelMeta& m = model.meta();
  if (m.input_fit.empty() || !unsized_image_files(spec)) return spec;
  return spec + "@" + std::to_string(m.input.height) + "x" + std::to_string(m.input.width) + "," + m.input_fit;
}

std::unique_ptr<ImageSource> align_to_model(const Model& model, const ImageSource& source) {
  const auto& m = model.meta();
  auto s = source.shape();
  if (s != m.input) {
    const std::string& spec = source.spec();
    const bool sizable = unsized_image_files(spec);
    fail(spec, "images are " + std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width) +
                   " but the model expects " + std::to_string(m.input.channels) + "x" + std::to_string(m.input.height) +
                   "x" + std::to_string(m.input.width) +
                   (sizable ? " (photos of any size: " + spec + "@" + std::to_string(m.input.height) + "x" +
                                  std::to_string(m.input.width) + ")"
                            : ""));
  }
  const auto& names = source.class_names();
  std::vector<int> ids(names.size());
  if (numbered(names) || numbered(m.class_names)) {
    if (names.size() > m.num_classes())
      fail(source.spec(), "has " + std::to_string(names.size()) + " classes but the model has " +
                              std::to_string(m.num_classes()));
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = int(i);
  } else {
    std::unordered_map<std::string, int> model_id;  // 21,841 classes of ImageNet-21k: no quadratic search
    for (std::size_t c = 0; c < m.class_names.size(); ++c) model_id.emplace(m.class_names[c], int(c));
    std::vector<std::string> unknown;
    for (std::size_t i = 0; i < names.size(); ++i) {
      auto at = model_id.find(names[i]);
      if (at == model_id.end())
        unknown.push_back(names[i]);
      else
        ids[i] = at->second;
    }
    if (!unknown.empty())
      fail(source.spec(), "class" + std::string(unknown.size() > 1 ? "es " : " ") + quoted_list(unknown) +
                              (unknown.size() > 1 ? " are" : " is") + " not among the model's classes (" +
                              quoted_list(m.class_names) + ")");
  }
  return map_classes(source, source.labelled() ? m.class_names : std::vector<std::string>{}, std::move(ids));
}

}  // namespace imagescore
