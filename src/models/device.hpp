// Moving tensors between the host and the compute device (internal, LibTorch).
#pragma once

#include <torch/torch.h>

#include <string>

namespace imagescore::detail {

// The LibTorch device of a --device name; validates it and configures the GPU as
// set_device() describes.
torch::Device torch_device(const std::string& device);
// A host tensor on `device`: itself on the CPU, else copied asynchronously through
// page-locked memory (the copy completes before any later work on that device).
torch::Tensor to_device(const torch::Tensor& host, const torch::Device& device);
// A contiguous CPU tensor of the same values. From a GPU the copy into page-locked
// memory is asynchronous: it is complete only after wait_for(device).
torch::Tensor to_host_async(const torch::Tensor& tensor);
void wait_for(const torch::Device& device);

}  // namespace imagescore::detail
