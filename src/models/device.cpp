#include "imagescore/models/device.hpp"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include <cstdlib>

#include "device.hpp"
#include "imagescore/core/error.hpp"

namespace imagescore {

namespace {
std::string g_device = "cpu";
}

int cuda_device_count() { return at::hasCUDA() ? int(torch::cuda::device_count()) : 0; }

namespace detail {

torch::Device torch_device(const std::string& device) {
  const std::string index_digits = device.rfind("cuda:", 0) == 0 ? device.substr(5) : "";
  const bool indexed = !index_digits.empty() && index_digits.size() <= 4 &&
                       index_digits.find_first_not_of("0123456789") == std::string::npos;
  const bool cuda = device == "cuda" || indexed;
  if (device != "cpu" && !cuda) fail_option("device", "unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
  if (cuda) {
    const int index = indexed ? std::stoi(index_digits) : 0;
    if (!at::hasCUDA())
      fail_option("device", "'" + device + "': this imagescore is built on a LibTorch without CUDA (docs/gpu.md: build against a CUDA LibTorch)");
    const int count = cuda_device_count();
    if (count == 0) fail_option("device", "'" + device + "': no CUDA GPU is visible");
    if (index >= count) fail_option("device", "'" + device + "': no such GPU (" + std::to_string(count) + " visible)");
    // Float-precision, repeatable GPU arithmetic: TF32 would round convolution inputs to
    // 10-bit mantissas, and cuDNN's benchmark mode picks kernels by timing. cuBLAS needs
    // a fixed workspace to be deterministic (read when its first handle is created).
    auto& context = at::globalContext();
    context.setDeterministicCuDNN(true);
    context.setBenchmarkCuDNN(false);
    context.setAllowTF32CuDNN(false);
    context.setAllowTF32CuBLAS(false);
    setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
  }
  return torch::Device(device);
}

torch::Tensor to_device(const torch::Tensor& host, const torch::Device& device) {
  if (device.is_cpu()) return host;
  // From page-locked memory the copy is asynchronous: the GPU fetches the batch while
  // the CPU goes on.
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

torch::Tensor to_host_async(const torch::Tensor& tensor) {
  if (tensor.device().is_cpu()) return tensor.contiguous();
  auto host = torch::empty(tensor.sizes(), tensor.options().device(torch::kCPU).pinned_memory(true));
  host.copy_(tensor, /*non_blocking=*/true);
  return host;
}

void wait_for(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace detail

void set_device(const std::string& device) {
  detail::torch_device(device);
  g_device = device;
}

const std::string& current_device() { return g_device; }

}  // namespace imagescore
