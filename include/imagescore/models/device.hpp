// The compute device models run on (docs/gpu.md).
#pragma once

#include <string>

namespace imagescore {

// The compute device that models are created and loaded on: "cpu" (the default),
// "cuda" (the current GPU) or "cuda:N". Fails naming the problem when the device cannot be
// used (an unknown name, a LibTorch built without CUDA, no such GPU). On a GPU, cuDNN is
// made deterministic and TF32 is switched off, so that activations keep float precision
// and repeat run to run (docs/gpu.md).
void set_device(const std::string& device);
const std::string& current_device();
// Number of CUDA GPUs this LibTorch sees (0 without CUDA support).
int cuda_device_count();

}  // namespace imagescore
