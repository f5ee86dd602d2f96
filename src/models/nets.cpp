#include "nets.hpp"

#include <cstdio>

#include "imagescore/core/error.hpp"
#include "imagescore/core/random.hpp"

namespace imagescore::detail {
namespace nn = torch::nn;
namespace {

// A linear layer that, in evaluation, computes every row as a product of its own (a batched
// product of 1-row matrices). A BLAS product of many rows splits them among threads and
// row blocks, and OpenBLAS's kernels then give a row other last bits depending on the
// thread count and the row's place in the block (measured with its Haswell kernels on an
// AVX-512 CPU); convolutions already run image by image. Training keeps the fast product.
torch::Tensor linear(nn::Linear& layer, const torch::Tensor& x) {
  if (layer->is_training()) return layer->forward(x);
  auto weight = layer->weight.t().unsqueeze(0).expand({x.size(0), -1, -1});
  return torch::bmm(x.unsqueeze(1), weight).squeeze(1) + layer->bias;
}

// The hidden linear layer of small-cnn and vgg16 sees every position of the last feature
// map, so its weights grow with the image: refuse what exceeds 2^28 weights (1 GiB, 4 GiB
// with gradients and Adam's moments) before LibTorch tries to allocate it.
void check_hidden_layer(const char* arch, const ImageShape& in, int64_t inputs, int64_t outputs) {
  constexpr int64_t kMaxWeights = int64_t(1) << 28;
  if (inputs <= kMaxWeights / outputs) return;
  char gib[32];
  std::snprintf(gib, sizeof gib, "%.0f", double(inputs) * double(outputs) * 4.0 / double(1 << 30));
  fail(arch, "a " + std::to_string(in.channels) + "x" + std::to_string(in.height) + "x" + std::to_string(in.width) +
                 " input gives its layer fc1 " + std::to_string(inputs) + " x " + std::to_string(outputs) + " weights (" +
                 gib + " GiB; at most 1 GiB): resize the images, or use resnet18, whose size does not grow with the image");
}

// Dropout: per-image masks when `rows` is given, the layer's own behaviour otherwise.
torch::Tensor drop(nn::Dropout& layer, const torch::Tensor& x, const RowDropout* rows, int site) {
  return rows ? rows->apply(x, layer->options.p(), site) : layer->forward(x);
}

// Small CNN for small inputs such as 28x28: two conv blocks and one hidden linear layer.
class SmallCnn : public ClassifierNet {
 public:
  SmallCnn(const ImageShape& in, int classes) {
    if (in.height < 4 || in.width < 4) fail("small-cnn", "input must be at least 4x4");
    conv1_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in.channels, 32, 3).padding(1)));
    conv2_ = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)));
    int64_t flat = 64 * int64_t(in.height / 4) * (in.width / 4);
    check_hidden_layer("small-cnn", in, flat, 128);
    fc1_ = register_module("fc1", nn::Linear(flat, 128));
    dropout_ = register_module("dropout", nn::Dropout(0.25));
    fc2_ = register_module("fc2", nn::Linear(128, classes));
  }
  torch::Tensor forward(torch::Tensor x, TapRecorder* taps, const RowDropout* rows) override {
    x = torch::max_pool2d(torch::relu(conv1_->forward(x)), 2);
    if (taps) taps->record(0, x);
    x = torch::max_pool2d(torch::relu(conv2_->forward(x)), 2);
    if (taps) taps->record(1, x);
    x = torch::relu(linear(fc1_, x.flatten(1)));
    if (taps) taps->record(2, x);
    return linear(fc2_, drop(dropout_, x, rows, 0));
  }
  std::vector<std::string> tap_names() const override { return {"conv1", "conv2", "fc1"}; }
  nn::Linear& head() override { return fc2_; }
  std::size_t head_tap() const override { return 2; }
  bool has_dropout() const override { return true; }

 private:
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  nn::Linear fc1_{nullptr}, fc2_{nullptr};
  nn::Dropout dropout_{nullptr};
};

// VGG-16 for CIFAR-sized inputs (batch norm; 512-512 classifier with dropout). Each conv
// layer (conv, batch norm, ReLU, and the max-pool that ends its group) is one tap.
class Vgg16 : public ClassifierNet {
 public:
  Vgg16(const ImageShape& in, int classes) {
    if (in.height < 32 || in.width < 32) fail("vgg16", "input must be at least 32x32 (five 2x2 poolings)");
    const std::vector<std::vector<int>> groups = {{64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
    int channels = in.channels;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      for (std::size_t i = 0; i < groups[g].size(); ++i) {
        std::string name = "conv" + std::to_string(g + 1) + "_" + std::to_string(i + 1);
        nn::Sequential layer(nn::Conv2d(nn::Conv2dOptions(channels, groups[g][i], 3).padding(1)),
                             nn::BatchNorm2d(groups[g][i]), nn::ReLU());
        if (i + 1 == groups[g].size()) layer->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
        layers_.push_back(register_module(name, layer));
        names_.push_back(name);
        channels = groups[g][i];
      }
    }
    int64_t flat = int64_t(channels) * (in.height / 32) * (in.width / 32);
    check_hidden_layer("vgg16", in, flat, 512);
    fc1_ = register_module("fc1", nn::Linear(flat, 512));
    fc2_ = register_module("fc2", nn::Linear(512, 512));
    fc3_ = register_module("fc3", nn::Linear(512, classes));
    dropout_ = register_module("dropout", nn::Dropout(0.5));
    names_.push_back("fc1");
    names_.push_back("fc2");
  }
  torch::Tensor forward(torch::Tensor x, TapRecorder* taps, const RowDropout* rows) override {
    std::size_t tap = 0;
    for (auto& layer : layers_) {
      x = layer->forward(x);
      if (taps) taps->record(tap, x);
      ++tap;
    }
    x = torch::relu(linear(fc1_, drop(dropout_, x.flatten(1), rows, 0)));
    if (taps) taps->record(tap, x);
    x = torch::relu(linear(fc2_, drop(dropout_, x, rows, 1)));
    if (taps) taps->record(tap + 1, x);
    return linear(fc3_, x);
  }
  std::vector<std::string> tap_names() const override { return names_; }
  nn::Linear& head() override { return fc3_; }
  std::size_t head_tap() const override { return names_.size() - 1; }
  bool has_dropout() const override { return true; }

 private:
  std::vector<nn::Sequential> layers_;
  std::vector<std::string> names_;
  nn::Linear fc1_{nullptr}, fc2_{nullptr}, fc3_{nullptr};
  nn::Dropout dropout_{nullptr};
};

// ResNet basic block: two 3x3 conv + batch norm, identity or 1x1 projection shortcut.
class BasicBlockImpl : public nn::Module {
 public:
  BasicBlockImpl(int in, int out, int stride) {
    conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(out));
    conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2 = register_module("bn2", nn::BatchNorm2d(out));
    if (stride != 1 || in != out) {
      shortcut = register_module(
          "shortcut", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)), nn::BatchNorm2d(out)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = torch::relu(bn1->forward(conv1->forward(x)));
    y = bn2->forward(conv2->forward(y));
    return torch::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Sequential shortcut{nullptr};
};
TORCH_MODULE(BasicBlock);

// ResNet-18 for CIFAR-sized inputs (3x3 stem, no stem pooling). Taps: the stem and each
// residual block (after its final ReLU), named as in torchvision ("layer2.1").
class ResNet18 : public ClassifierNet {
 public:
  ResNet18(const ImageShape& in, int classes) {
    if (in.height < 8 || in.width < 8) fail("resnet18", "input must be at least 8x8");
    conv1_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in.channels, 64, 3).padding(1).bias(false)));
    bn1_ = register_module("bn1", nn::BatchNorm2d(64));
    names_.push_back("conv1");
    int channels = 64;
    const int widths[4] = {64, 128, 256, 512};
    for (int l = 0; l < 4; ++l) {
      nn::Sequential layer;
      for (int b = 0; b < 2; ++b) {
        layer->push_back(BasicBlock(channels, widths[l], (b == 0 && l > 0) ? 2 : 1));
        names_.push_back("layer" + std::to_string(l + 1) + "." + std::to_string(b));
        channels = widths[l];
      }
      layers_.push_back(register_module("layer" + std::to_string(l + 1), layer));
    }
    fc_ = register_module("fc", nn::Linear(channels, classes));
    names_.push_back("avgpool");
  }
  torch::Tensor forward(torch::Tensor x, TapRecorder* taps, const RowDropout*) override {
    x = torch::relu(bn1_->forward(conv1_->forward(x)));
    if (taps) taps->record(0, x);
    std::size_t tap = 1;
    for (auto& layer : layers_)
      for (auto& block : *layer) {
        x = block.forward(x);
        if (taps) taps->record(tap, x);
        ++tap;
      }
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    if (taps) taps->record(tap, x);
    return linear(fc_, x);
  }
  std::vector<std::string> tap_names() const override { return names_; }
  // The pooled features the classifier reads: a tap for feature scores, not a layer
  // output of the image score.
  std::vector<std::size_t> pooled_taps() const override { return {names_.size() - 1}; }
  nn::Linear& head() override { return fc_; }
  std::size_t head_tap() const override { return names_.size() - 1; }
  bool has_dropout() const override { return false; }

 private:
  nn::Conv2d conv1_{nullptr};
  nn::BatchNorm2d bn1_{nullptr};
  std::vector<nn::Sequential> layers_;
  std::vector<std::string> names_;
  nn::Linear fc_{nullptr};
};

}  // namespace

torch::Tensor RowDropout::apply(const torch::Tensor& x, double p, int site) const {
  const auto rows = x.size(0), features = x.size(1);
  if (std::size_t(rows) > seeds_.size()) fail("dropout", "more rows than seeds");
  auto mask = torch::empty({rows, features}, torch::kFloat32);
  const float keep = float(1.0 / (1.0 - p));
  float* m = mask.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    SplitMix64 rng(mix_seed(seeds_[std::size_t(r)], std::uint64_t(site)));
    for (int64_t f = 0; f < features; ++f) *m++ = rng.uniform() < p ? 0.f : keep;
  }
  return x * mask.to(x.device());
}

std::shared_ptr<ClassifierNet> make_net(const std::string& arch, const ImageShape& input, int num_classes) {
  if (num_classes < 2) fail(arch, "a classifier needs at least 2 classes, got " + std::to_string(num_classes));
  if (arch == "small-cnn") return std::make_shared<SmallCnn>(input, num_classes);
  if (arch == "vgg16") return std::make_shared<Vgg16>(input, num_classes);
  if (arch == "resnet18") return std::make_shared<ResNet18>(input, num_classes);
  fail_option("model", "unknown architecture '" + arch + "' (expected small-cnn, vgg16 or resnet18)");
}

}  // namespace imagescore::detail
