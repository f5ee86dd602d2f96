// Process-wide runtime settings measured to matter on small shared machines.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace imagescore {

// glibc's default malloc returns large blocks to the kernel after each use, so every
// batch page-faults its tensors in again (3-6x slower LibTorch measured here). This keeps
// freed memory in the heap. `enable=false` restores glibc's defaults (for benchmarks).
void tune_malloc(bool enable = true);

// Sets LibTorch's intra-op thread count (Debian's build defaults to one thread).
// threads <= 0 means all hardware threads.
int set_threads(int threads);

// Number of hardware threads (at least 1).
int hardware_threads();

// The compute device that models are created and loaded on: "cpu" (the default),
// "cuda" (the current GPU) or "cuda:N". Fails naming the problem when the device cannot be
// used (an unknown name, a LibTorch built without CUDA, no such GPU). On a GPU, cuDNN is
// made deterministic and TF32 is switched off, so that activations keep float precision
// and repeat run to run (docs/gpu.md).
void set_device(const std::string& device);
const std::string& current_device();
// Number of CUDA GPUs this LibTorch sees (0 without CUDA support).
int cuda_device_count();

// Calls f(begin, end) on disjoint chunks covering [0, n), on LibTorch's intra-op threads
// (chunks of at least `grain`). Callers keep per-index work independent of the split, so
// results never depend on the thread count. Exceptions reach the caller.
void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f);

}  // namespace imagescore
